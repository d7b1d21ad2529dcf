//! `linecut sweep` end to end: real runs (embedded broker, proxy, rumqttc agents) as separate
//! processes, compared in one report; shards merged; an interrupted sweep resumed; bad axes
//! refused before anything runs.

use std::path::{Path, PathBuf};
use std::process::Output;

mod common;

use common::linecut;

fn temp_dir(name: &str) -> PathBuf {
    common::temp_dir("sweep", name)
}

/// 2 × 2 cells of 5 s: keepalive 1 s or 2 s, a cut of 0.5 s (ridden through) or 3.5 s (detected).
/// The phase is fixed, and these tests check the machinery, not the phase. The long cut must
/// hold until rumqttc's tick that finds its PINGREQ unanswered, with room to spare: with K = 2 s
/// the subscriber connects a few ms before t = 0, pings at about t+2 s (lost) and checks at about
/// t+4 s. A 3 s cut ended at t+4.000 s, 5 ms after that check, and the proxy's release of the held
/// PINGRESP at the restore won the race once on a loaded machine. Ending at t+4.5 s leaves 0.5 s
/// for timer and scheduling lateness.
const MINI: &str = r#"
name = "mini"
duration = "5s"
[publisher]
interval = "200ms"
[subscriber]
keepalive = "1s"
reconnect = "immediate"
[[fault]]
kind = "cut"
at = "1s"
for = "3500ms"
[sweep]
"subscriber.keepalive" = ["1s", "2s"]
"fault.cut.for" = ["500ms", "3500ms"]
phase = "fixed"
"#;

fn write_scenario(dir: &Path) -> PathBuf {
    let path = dir.join("mini.toml");
    std::fs::write(&path, MINI).unwrap();
    path
}

fn sweep(args: &[&str]) -> Output {
    let out = linecut().arg("sweep").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The rows of a sweep, keyed by cell: axis values and how many runs completed.
fn rows(dir: &Path) -> Vec<(String, String, u64)> {
    let report = json(&dir.join("sweep.json"));
    report["cells"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["cell"].as_str().unwrap().to_string(),
                c["values"].to_string(),
                c["complete_runs"].as_u64().unwrap(),
            )
        })
        .collect()
}

#[test]
fn a_small_sweep_runs_isolated_cells_in_parallel_and_compares_them() {
    let dir = temp_dir("full");
    let scenario = write_scenario(&dir);
    let out_dir = dir.join("out");
    let started = std::time::Instant::now();
    let out = sweep(&[
        scenario.to_str().unwrap(),
        "--out",
        out_dir.to_str().unwrap(),
        "--jobs",
        "4",
    ]);
    let wall = started.elapsed().as_secs_f64();
    // Four 5 s cells at once take about one cell's time, not four.
    assert!(wall < 15.0, "took {wall:.1} s");
    for file in [
        "sweep.md",
        "sweep.json",
        "sweep.csv",
        "detection.svg",
        "recovery.svg",
        "sweep-plan.json",
    ] {
        assert!(out_dir.join(file).is_file(), "{file}");
    }
    let report = json(&out_dir.join("sweep.json"));
    assert_eq!(report["complete"], true);
    let cells = report["cells"].as_array().unwrap();
    assert_eq!(cells.len(), 4);
    // Isolation: no two runs used the same broker or proxy address *at the same time*. A port
    // freed by a finished cell may be handed to a later one by the kernel (port 0), so distinct
    // ports would be the wrong thing to count; overlapping lifetimes on one address would not.
    // Each run's lifetime is its meta.json span, which encloses its broker's and proxy's.
    let mut uses = Vec::new();
    for c in cells {
        let run = out_dir
            .join("cells")
            .join(c["cell"].as_str().unwrap())
            .join("r1");
        let meta = json(&run.join("meta.json"));
        let span = (
            meta["started_us"].as_i64().unwrap(),
            meta["ended_us"].as_i64().unwrap(),
        );
        uses.push((
            "broker",
            meta["broker_address"].as_str().unwrap().to_string(),
            span,
        ));
        let proxy_log = std::fs::read_to_string(run.join("proxy.jsonl")).unwrap();
        let started = proxy_log
            .lines()
            .find(|l| l.contains("proxy_started"))
            .unwrap();
        let listen = serde_json::from_str::<serde_json::Value>(started).unwrap()["listen"]
            .as_str()
            .unwrap()
            .to_string();
        uses.push(("proxy", listen, span));
    }
    let spans = uses.iter().filter(|u| u.0 == "broker").map(|u| u.2);
    let overlapping = spans
        .clone()
        .any(|a| spans.clone().any(|b| a != b && a.0 < b.1 && b.0 < a.1));
    assert!(overlapping, "the cells did not run in parallel: {uses:?}");
    for (i, a) in uses.iter().enumerate() {
        for b in &uses[i + 1..] {
            let at_once = a.2 .0 < b.2 .1 && b.2 .0 < a.2 .1;
            assert!(
                !(a.1 == b.1 && at_once),
                "two runs used {} at the same time: {a:?} {b:?}",
                a.1
            );
        }
    }
    // The short cut is ridden through, the long one detected inside rumqttc's K..2K band.
    for c in cells {
        let cut = c["values"]["fault.cut.for"].as_str().unwrap();
        let detect = &c["metrics"]["client_detect_s"];
        if cut == "500ms" {
            assert!(detect.is_null(), "{c}");
        } else {
            let k: f64 = c["keepalive_s"].as_f64().unwrap();
            let median = detect["median"].as_f64().unwrap();
            assert!(median >= k - 0.25 && median <= 2.0 * k + 0.25, "{c}");
        }
    }
    let md = std::fs::read_to_string(out_dir.join("sweep.md")).unwrap();
    assert!(
        md.contains("a 0.5 s outage was noticed in 0 of 1 runs (95% CI 0–79%)"),
        "{md}"
    );
    assert!(
        md.contains("Every run started its fault at the same moment"),
        "{md}"
    );
    assert!(md.contains("PINGREQ interval"), "{md}");
    let csv = std::fs::read_to_string(out_dir.join("sweep.csv")).unwrap();
    assert_eq!(csv.lines().count(), 5);
    assert!(csv.starts_with("cell,subscriber.keepalive,fault.cut.for,"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("4 ran, 0 already done, 0 failed"),
        "{stderr}"
    );

    // Shards: the two halves merged give the same table as the whole.
    let mut shard_dirs = Vec::new();
    for i in 1..=2 {
        let shard = dir.join(format!("shard{i}"));
        sweep(&[
            scenario.to_str().unwrap(),
            "--out",
            shard.to_str().unwrap(),
            "--shard",
            &format!("{i}/2"),
            "--quiet",
        ]);
        assert_eq!(rows(&shard).len(), 2);
        shard_dirs.push(shard);
    }
    let merged = dir.join("merged");
    let out = linecut()
        .args(["report", "merge"])
        .args(&shard_dirs)
        .arg("--out")
        .arg(&merged)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(rows(&merged), rows(&out_dir));

    // Resume: a run that was lost is run again, the others are kept as they were.
    let cells_dir = out_dir.join("cells");
    let first = cells[0]["cell"].as_str().unwrap();
    let kept = cells_dir
        .join(cells[1]["cell"].as_str().unwrap())
        .join("r1/meta.json");
    let kept_before = std::fs::read_to_string(&kept).unwrap();
    std::fs::remove_dir_all(cells_dir.join(first).join("r1")).unwrap();
    let out = sweep(&[
        scenario.to_str().unwrap(),
        "--out",
        out_dir.to_str().unwrap(),
        "--resume",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("1 ran, 3 already done, 0 failed"),
        "{stderr}"
    );
    assert_eq!(std::fs::read_to_string(&kept).unwrap(), kept_before);
    assert_eq!(json(&out_dir.join("sweep.json"))["complete"], true);

    // Without --resume an existing sweep is never overwritten.
    let out = linecut()
        .arg("sweep")
        .arg(&scenario)
        .arg("--out")
        .arg(&out_dir)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--resume"));
}

#[test]
fn bad_axes_exit_2_before_any_cell_runs() {
    let dir = temp_dir("bad");
    let scenario = write_scenario(&dir);
    for (set, expected) in [
        ("subscriber.keepalve=1s", "did you mean `keepalive`?"),
        (
            "subscriber.keepalive=soon",
            "subscriber.keepalive: `soon` is not a duration",
        ),
        ("publisher.qos=high", "publisher.qos"),
        ("fault.latency.delay=5ms", "no fault of kind `latency`"),
        ("subscriber.keepalive", "write PATH=VALUE"),
    ] {
        let out_dir = dir.join("never");
        let out = linecut()
            .arg("sweep")
            .arg(&scenario)
            .args(["--set", set, "--out"])
            .arg(&out_dir)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{set}: {stderr}");
        assert!(stderr.contains(expected), "{set}: {stderr}");
        assert!(!out_dir.exists(), "{set}: nothing may be created");
    }
}

#[test]
fn an_interrupted_sweep_keeps_finished_runs_and_resumes() {
    let dir = temp_dir("interrupt");
    let scenario = write_scenario(&dir);
    let out_dir = dir.join("out");
    // One run at a time, so the interrupt lands with some runs done and some not.
    let mut child = linecut()
        .arg("sweep")
        .arg(&scenario)
        .args(["--jobs", "1", "--quiet", "--out"])
        .arg(&out_dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let cells = out_dir.join("cells");
    let complete_runs = || -> usize {
        std::fs::read_dir(&cells)
            .map(|cells| {
                cells
                    .filter_map(Result::ok)
                    .filter(|c| {
                        std::fs::read_to_string(c.path().join("r1/meta.json"))
                            .is_ok_and(|m| m.contains("\"status\": \"complete\""))
                    })
                    .count()
            })
            .unwrap_or(0)
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while complete_runs() < 1 {
        assert!(std::time::Instant::now() < deadline, "no run finished");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    // SAFETY: kill(2) on our own child, not yet waited for.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGINT);
    }
    let status = child.wait().unwrap();
    assert_eq!(
        status.code(),
        Some(2),
        "an interrupted sweep is not a complete one"
    );
    let report = json(&out_dir.join("sweep.json"));
    assert_eq!(report["complete"], false);
    let missing = report["missing_runs"].as_array().unwrap().len();
    assert!((1..4).contains(&missing), "{report}");
    let kept = complete_runs();
    assert!(
        kept >= 1 && kept + missing == 4,
        "kept {kept}, missing {missing}"
    );
    // Resuming runs exactly what is missing.
    let out = sweep(&[
        scenario.to_str().unwrap(),
        "--out",
        out_dir.to_str().unwrap(),
        "--resume",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("{missing} ran, {kept} already done, 0 failed")),
        "{stderr}"
    );
    assert_eq!(json(&out_dir.join("sweep.json"))["complete"], true);
}

/// With the default phase, each repeat draws its own offset from its own seed, and every run
/// records both: the fault in the proxy's log starts where meta.json says it was scheduled.
#[test]
fn a_random_phase_sweep_draws_and_records_a_phase_per_run() {
    let dir = temp_dir("phase");
    let path = dir.join("phase.toml");
    let text = MINI
        .replace("phase = \"fixed\"\n", "")
        .replace(
            "\"fault.cut.for\" = [\"500ms\", \"3500ms\"]",
            "\"fault.cut.for\" = [\"500ms\"]",
        )
        .replace(
            "\"subscriber.keepalive\" = [\"1s\", \"2s\"]",
            "\"subscriber.keepalive\" = [\"2s\"]",
        );
    std::fs::write(&path, text).unwrap();
    let out_dir = dir.join("out");
    sweep(&[
        path.to_str().unwrap(),
        "--out",
        out_dir.to_str().unwrap(),
        "--repeat",
        "2",
        "--quiet",
    ]);
    let cell = out_dir
        .join("cells")
        .join("subscriber.keepalive-2s__fault.cut.for-500ms");
    let mut offsets = Vec::new();
    for r in ["r1", "r2"] {
        let meta = json(&cell.join(r).join("meta.json"));
        let phase = &meta["phase"];
        let fault = &phase["faults"][0];
        assert_eq!(fault["jitter"], "K", "{meta}");
        assert_eq!(fault["span_s"], 2.0);
        let offset = fault["offset_s"].as_f64().unwrap();
        assert!((0.0..2.0).contains(&offset), "{offset}");
        offsets.push((phase["seed"].as_u64().unwrap(), offset));
        // The proxy started the cut at the planned 1 s plus the offset: its schedule is
        // counted from the experiment start, and the scheduler's own lateness is logged.
        let start = meta["experiment_start_us"].as_i64().unwrap();
        let proxy_log = std::fs::read_to_string(cell.join(r).join("proxy.jsonl")).unwrap();
        let started: serde_json::Value = proxy_log
            .lines()
            .find(|l| l.contains("\"fault_started\""))
            .map(|l| serde_json::from_str(l).unwrap())
            .unwrap();
        let at = (started["ts_us"].as_i64().unwrap() - start) as f64 / 1e6;
        // The experiment clock starts when meta.json is updated, a moment after the proxy's
        // schedule origin; 50 ms covers that and a loaded scheduler.
        assert!(
            (at - (1.0 + offset)).abs() < 0.05,
            "cut at {at}, planned 1 s + {offset}"
        );
    }
    assert_ne!(offsets[0], offsets[1], "each repeat its own seed and phase");
    let plan = json(&out_dir.join("sweep-plan.json"));
    assert_eq!(plan["phase"], "random");
}
