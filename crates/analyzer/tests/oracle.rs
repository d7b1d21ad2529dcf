//! Every frame a committed report cites, checked against tshark's reading of the committed
//! capture: a wrong story about the wire fails CI.

#[path = "support/tshark_oracle.rs"]
mod tshark_oracle;

use std::path::{Path, PathBuf};

/// The run directories under `dir` that have a capture and a report.
fn runs_with_captures(dir: &Path, out: &mut Vec<PathBuf>) {
    if dir.join("capture.pcap").is_file() && dir.join("report.json").is_file() {
        out.push(dir.to_path_buf());
    }
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            runs_with_captures(&path, out);
        }
    }
}

#[test]
fn every_frame_a_committed_report_cites_is_what_tshark_reads() {
    let results = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../results");
    let mut runs = Vec::new();
    runs_with_captures(&results, &mut runs);
    assert!(!runs.is_empty(), "no committed run has a capture");
    let mut checked = 0;
    for run in &runs {
        let port = tshark_oracle::broker_port(run)
            .unwrap_or_else(|| panic!("{}: a capture but no broker port", run.display()));
        checked += tshark_oracle::check_run(run, port);
    }
    // The seed's run alone cites its broker's RST and the retransmission it answered.
    assert!(
        checked >= 2,
        "only {checked} cited frames in {} runs",
        runs.len()
    );
}
