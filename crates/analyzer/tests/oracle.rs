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
    // One tshark per run, on every core: a matrix commits hundreds of runs.
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    let chunk = runs.len().div_ceil(workers);
    let checked: usize = std::thread::scope(|scope| {
        let handles: Vec<_> = runs
            .chunks(chunk)
            .map(|part| {
                scope.spawn(move || {
                    part.iter()
                        .map(|run| {
                            let port = tshark_oracle::broker_port(run).unwrap_or_else(|| {
                                panic!("{}: a capture but no broker port", run.display())
                            });
                            tshark_oracle::check_run(run, port)
                        })
                        .sum::<usize>()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).sum()
    });
    // The seed's run alone cites its broker's RST and the retransmission it answered.
    assert!(
        checked >= 2,
        "only {checked} cited frames in {} runs",
        runs.len()
    );
}

/// A namespace run's capture analysed on its own (`linecut analyze CAPTURE`) is read with the
/// rules for real links, as the run's own report read it: the client's give-up on the wire is
/// the first SYN of its new connection (its FIN never crossed the cut), the same moment the
/// run's report found, and the retransmissions and SYN retries during the outage are counted.
/// Before the wire was known from the capture itself, the capture alone put the give-up at the
/// SYN that got through after the restore, 35 s later.
#[test]
fn a_real_link_capture_analysed_alone_finds_the_give_up_its_run_found() {
    let run = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../results/seed-2014-link");
    let port = tshark_oracle::broker_port(&run).unwrap();
    let (captured, _) =
        linecut_analyzer::load_capture(&run.join("capture.pcap"), port, None, None).unwrap();
    let alone = linecut_analyzer::analyze(&captured);
    let own: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("report.json")).unwrap()).unwrap();
    let own_window = &own["windows"][0];
    let own_syn_us = own_window["outage_start_us"].as_i64().unwrap() as f64
        + own_window["subscribers"][0]["wire_detect_s"]
            .as_f64()
            .unwrap()
            * 1e6;
    assert_eq!(
        own_window["subscribers"][0]["wire_detect_how"], "new_connection",
        "the run's report: its first sign on the wire was a new connection"
    );
    let w = &alone.windows[0];
    let m = &w.subscribers[0];
    let alone_syn_us = w.outage_start_us as f64 + m.client_detect_s.unwrap() * 1e6;
    // Both reports round their seconds to the millisecond.
    assert!(
        (alone_syn_us - own_syn_us).abs() <= 2_000.0,
        "alone {alone_syn_us}, the run's {own_syn_us}"
    );
    assert!(
        m.retransmitted.is_some(),
        "a capture's outage counts resends"
    );
    // The inferred outage ends where the new connection began: the report does not time the
    // attempt against that end (it read "began 0.000 s after the line returned").
    assert_eq!(w.kind, "inferred");
    let [_, (_, md), _] = linecut_analyzer::render_reports(&alone, &captured);
    assert!(md.contains("The client was back"), "{md}");
    assert!(!md.contains("Its successful attempt began"), "{md}");
}
