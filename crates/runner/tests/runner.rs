//! The runner end to end, in process: real brokers (embedded rumqttd, and mosquitto, which the
//! test command installs), the real proxy and agents, and the run directory they leave.

mod support;

use linecut_runner::{run, DisplayMode, RunError, RunOptions, RunStatus};
use std::path::{Path, PathBuf};

fn temp_dir(name: &str) -> PathBuf {
    linecut_testkit::fresh_path("runner", name)
}

fn scenario(text: &str) -> linecut_scenario::Scenario {
    linecut_scenario::parse(Path::new("test.toml"), text).unwrap()
}

fn options(dir: &Path) -> RunOptions {
    RunOptions {
        dir: dir.to_path_buf(),
        force: false,
        display: DisplayMode::Quiet,
    }
}

const SHORT: &str = r#"
name = "short"
duration = "4s"
[publisher]
interval = "100ms"
[subscriber]
keepalive = "1s"
reconnect = "immediate"
[[fault]]
kind = "cut"
at = "1s"
for = "2s"
[expect]
# At least one: with a 1 s keepalive a loaded machine can delay a PINGRESP past K after the
# restore and cause a second, legitimate reconnect; the tests check the machinery, not that.
reconnects = ">= 1"
"#;

fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn count_type(path: &Path, type_name: &str) -> usize {
    let needle = format!(r#""type":"{type_name}""#);
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter(|l| l.contains(&needle))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_with_the_embedded_broker_leaves_every_file() {
    let dir = temp_dir("embedded");
    let _ = std::fs::remove_dir_all(&dir);
    let outcome = run(&scenario(SHORT), &options(&dir), std::future::pending())
        .await
        .unwrap();
    assert_eq!(outcome.status, RunStatus::Complete);
    for file in [
        "scenario.toml",
        "scenario.resolved.toml",
        "meta.json",
        "proxy.jsonl",
        "subscriber.jsonl",
        "publisher.jsonl",
        "broker.log",
        "summary.json",
    ] {
        assert!(dir.join(file).is_file(), "{file} missing");
    }
    let meta = read_json(&dir.join("meta.json"));
    assert_eq!(meta["status"], "complete");
    // The client library is recorded as a family and version the bands are drawn for.
    assert_eq!(meta["subscriber_identity"]["family"], "rumqttc");
    assert_eq!(meta["broker"], "rumqttd 0.20 (embedded)");
    assert_eq!(meta["faults"][0], "cut:at=1s,for=2s");
    assert_eq!(meta["expectations"]["reconnects"], ">= 1");
    let start = meta["experiment_start_us"].as_i64().unwrap();
    assert!(start >= meta["started_us"].as_i64().unwrap());
    // The fault started 1 s into the experiment (the clock starts at subscription).
    let proxy = std::fs::read_to_string(dir.join("proxy.jsonl")).unwrap();
    let fault_ts = proxy
        .lines()
        .find(|l| l.contains(r#""type":"fault_started""#))
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["ts_us"]
                .as_i64()
                .unwrap()
        })
        .unwrap();
    let offset = fault_ts - start;
    assert!(
        (950_000..1_100_000).contains(&offset),
        "fault began {offset} µs after the start"
    );
    assert!(outcome.summary.delivered > 5 && outcome.summary.published > 20);
    // The run is analysed: reports exist and the expectation (one reconnect) was checked.
    let report = outcome.report.as_ref().unwrap();
    assert!(dir.join("report.json").is_file() && dir.join("report.md").is_file());
    assert_eq!(report.expectations.len(), 1);
    assert!(report.expectations_hold(), "{:?}", report.expectations);
    let m = &report.windows[0].subscribers[0];
    assert_eq!(
        m.client_detect_band.as_ref().unwrap().verdict,
        linecut_analyzer::Verdict::Inside,
        "{m:?}"
    );
    assert!(count_type(&dir.join("subscriber.jsonl"), "disconnected") >= 1);
    assert_eq!(
        count_type(&dir.join("subscriber.jsonl"), "agent_stopped"),
        1
    );
    // A second run into the same directory is refused; --force replaces it.
    let again = run(&scenario(SHORT), &options(&dir), std::future::pending()).await;
    assert!(matches!(again, Err(RunError::Exists(_))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_with_mosquitto_keeps_its_log_and_names_its_version() {
    support::need_mosquitto();
    let dir = temp_dir("mosquitto");
    let _ = std::fs::remove_dir_all(&dir);
    let text = format!("{SHORT}\n[broker]\nkind = \"mosquitto\"\n");
    let outcome = run(&scenario(&text), &options(&dir), std::future::pending())
        .await
        .unwrap();
    assert_eq!(outcome.status, RunStatus::Complete);
    let meta = read_json(&dir.join("meta.json"));
    assert!(
        meta["broker"]
            .as_str()
            .unwrap()
            .starts_with("mosquitto version 2."),
        "{meta}"
    );
    let log = std::fs::read_to_string(dir.join("broker.log")).unwrap();
    assert!(log.contains("New client connected"), "{log}");
    assert!(dir.join("mosquitto.conf").is_file());
    assert!(outcome.summary.delivered > 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_run_is_kept_and_marked_incomplete() {
    let dir = temp_dir("interrupted");
    let _ = std::fs::remove_dir_all(&dir);
    let long = SHORT.replace("duration = \"4s\"", "duration = \"60s\"");
    let meta_path = dir.join("meta.json");
    let watch = meta_path.clone();
    let interrupt = async move {
        // Interrupt once the experiment has started.
        loop {
            let started = std::fs::read_to_string(&watch)
                .map(|t| t.contains("experiment_start_us\": 1"))
                .unwrap_or(false);
            if started {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    };
    let outcome = run(&scenario(&long), &options(&dir), interrupt)
        .await
        .unwrap();
    let RunStatus::Incomplete(reason) = &outcome.status else {
        panic!("{:?}", outcome.status)
    };
    assert!(reason.contains("interrupted"), "{reason}");
    let meta = read_json(&meta_path);
    assert_eq!(meta["status"], "incomplete");
    assert!(meta["reason"].as_str().unwrap().contains("interrupted"));
    assert!(dir.join("subscriber.jsonl").is_file() && dir.join("summary.json").is_file());
    assert_eq!(
        count_type(&dir.join("subscriber.jsonl"), "agent_stopped"),
        1
    );
}

/// Whatever `validate` accepts, the run does not refuse for a reason the file shows: over a
/// grid of extreme values for every number a scenario holds (durations up to 3e11 years,
/// rates from 1e-300 to 1e9, sizes and counts up to their type's limit, keepalives, holds,
/// flapping schedules), a scenario that parses passes the run's own checks, and every deadline
/// the run computes from it (the run's end, each fault occurrence's start and end) exists.
#[test]
fn what_validate_accepts_the_run_does_not_refuse() {
    let durations = ["0s", "1ms", "1s", "365days", "366days", "300000000000y"];
    let mut accepted = 0;
    let mut tried = 0;
    let mut texts = Vec::new();
    for d in durations {
        texts.push(format!(
            "duration = \"{d}\"\n[subscriber]\nkeepalive = \"1s\"\n"
        ));
        texts.push(format!(
            "duration = \"10s\"\n[subscriber]\nkeepalive = \"1s\"\n[[fault]]\nkind = \"cut\"\nat = \"1s\"\nfor = \"{d}\"\n"
        ));
        texts.push(format!(
            "duration = \"10s\"\n[subscriber]\nkeepalive = \"1s\"\n[[fault]]\nkind = \"cut\"\nfor = \"1ms\"\nevery = \"{d}\"\ncount = 4294967295\n"
        ));
        texts.push(format!(
            "duration = \"10s\"\n[subscriber]\nkeepalive = \"1s\"\nreconnect = \"fixed:{d}\"\n[[fault]]\nkind = \"latency\"\ndelay = \"{d}\"\n"
        ));
        texts.push(format!(
            "duration = \"10s\"\n[subscriber]\nkeepalive = \"1s\"\n[publisher]\ninterval = \"{d}\"\n"
        ));
    }
    for rate in ["1e-300", "1e-9", "0.001", "1", "1000", "1001", "1e9"] {
        texts.push(format!(
            "duration = \"10s\"\n[subscriber]\nkeepalive = \"1s\"\n[publisher]\nrate = {rate}\n"
        ));
    }
    for size in ["0", "64", "268435456", "268435457", "4294967295"] {
        texts.push(format!(
            "duration = \"10s\"\n[subscriber]\nkeepalive = \"1s\"\n[publisher]\nsize = {size}\n"
        ));
    }
    for count in ["0", "1", "100000", "100001", "4294967295"] {
        texts.push(format!(
            "duration = \"10s\"\n[subscriber]\nkeepalive = \"1s\"\ncount = {count}\n"
        ));
    }
    for (mqtt, keepalive) in [
        ("3.1.1", "0s"),
        ("5", "1s"),
        ("5", "5s"),
        ("3.1.1", "65535s"),
    ] {
        texts.push(format!(
            "duration = \"20h\"\n[subscriber]\nkeepalive = \"{keepalive}\"\nmqtt = \"{mqtt}\"\n[publisher]\nmqtt = \"{mqtt}\"\nkeepalive = \"{keepalive}\"\n"
        ));
    }
    for hold in ["0", "1KiB", "1GiB", "2GiB", "50GiB"] {
        texts.push(format!(
            "duration = \"10s\"\n[subscriber]\nkeepalive = \"1s\"\n[[fault]]\nkind = \"cut\"\nhold = \"{hold}\"\n"
        ));
    }
    let now = std::time::Instant::now();
    for text in texts {
        tried += 1;
        let Ok(s) = linecut_scenario::parse(std::path::Path::new("grid.toml"), &text) else {
            continue;
        };
        accepted += 1;
        if let Err(e) = linecut_runner::check_options(&s) {
            panic!("validate accepted what the run refuses ({e}):\n{text}");
        }
        assert!(now.checked_add(s.duration).is_some(), "{text}");
        for fault in &s.faults {
            for n in [0, 1, 2, u32::MAX] {
                if let Some(start) = fault.occurrence_start(n) {
                    let end = start.checked_add(fault.schedule.duration.unwrap_or_default());
                    assert!(
                        end.and_then(|e| now.checked_add(e)).is_some(),
                        "occurrence {n} of {fault} has no deadline:\n{text}"
                    );
                }
            }
        }
    }
    // The grid holds both sides of every limit.
    assert!(
        accepted > 10 && accepted < tried,
        "{accepted} of {tried} accepted"
    );
}
