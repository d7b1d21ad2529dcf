//! Snapshot tests of the three reports for a small stored run (a 2 s cut under a 1 s keepalive,
//! recorded with `linecut run` and kept in `tests/fixtures/short-cut`). Any change to what the
//! analyzer says shows up here as a reviewable diff; `cargo insta review` accepts it.

use std::path::Path;

#[test]
fn reports_of_a_stored_run_match_their_snapshots() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/short-cut");
    let run = linecut_analyzer::load(&dir).unwrap();
    let report = linecut_analyzer::analyze(&run);
    let [(_, json), (_, markdown), (_, svg)] = linecut_analyzer::render_reports(&report, &run);
    insta::assert_snapshot!("report.json", json);
    insta::assert_snapshot!("report.md", markdown);
    insta::assert_snapshot!("timeline.svg", svg);
}
