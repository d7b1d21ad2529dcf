//! What the runner's end-to-end tests share: running a scenario text to completion, and reading
//! what a run left behind.

#![allow(dead_code)] // each test binary uses its own part

use linecut_runner::{run, DisplayMode, RunOptions, RunStatus};
use std::path::{Path, PathBuf};

/// Fails the test, with the fix, when mosquitto is not installed.
pub fn need_mosquitto() {
    assert!(
        std::process::Command::new("sh")
            .args(["-c", "command -v mosquitto || test -x /usr/sbin/mosquitto"])
            .status()
            .unwrap()
            .success(),
        "mosquitto is not installed: run the tests with scripts/test, which installs it"
    );
}

/// Runs scenario `text` into a fresh directory of `suite`, asserts that it completed, and
/// returns its report and directory.
pub async fn run_complete(
    suite: &str,
    name: &str,
    text: &str,
) -> (linecut_analyzer::Report, PathBuf) {
    let dir = linecut_testkit::fresh_path(suite, name);
    let scenario = linecut_scenario::parse(Path::new("test.toml"), text)
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    let options = RunOptions {
        dir: dir.clone(),
        force: false,
        display: DisplayMode::Quiet,
    };
    let outcome = run(&scenario, &options, std::future::pending())
        .await
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(outcome.status, RunStatus::Complete, "{}", dir.display());
    (outcome.report.expect("analysed"), dir)
}

pub fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The wills the run's watcher received: (whose, payload length, time in Unix µs).
pub fn wills_heard(dir: &Path) -> Vec<(String, u64, i64)> {
    std::fs::read_to_string(dir.join("watcher.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|e| e["type"] == "will_received")
        .map(|e| {
            (
                e["client"].as_str().unwrap_or("").to_string(),
                e["payload_len"].as_u64().unwrap(),
                e["ts_us"].as_i64().unwrap(),
            )
        })
        .collect()
}
