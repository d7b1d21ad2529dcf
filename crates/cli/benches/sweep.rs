//! Sweep benchmark: a 12-cell sweep of 20 s cells (keepalive 1/2/5 s × cut 3/10 s ×
//! rumqttc/paho-mqtt, against mosquitto) with `--jobs` at its default.
//!
//! Reports the wall time against the sum of the runs' own times and against the longest wave
//! (ceil(cells / jobs) times the longest run), and the band verdicts of the detections (inside,
//! outside, not decidable): parallelism must not distort what it speeds up. Goals: wall time at
//! most 1.3× the longest wave, no verdict outside its band.
//!
//! Needs mosquitto and the paho virtual environments (`scripts/setup-clients`).
//! Run with `cargo bench -p linecut --bench sweep`.

use std::path::Path;
use std::process::Command;

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let base = std::fs::read_to_string(root.join("scenarios/keepalive-sweep.toml")).unwrap();
    let scenario = base
        .replace("duration = \"30s\"", "duration = \"20s\"")
        .replace("repeat = 6", "repeat = 1");
    assert!(scenario.contains("duration = \"20s\"") && scenario.contains("repeat = 1"));
    let dir = std::env::temp_dir().join(format!("linecut-bench-sweep-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("bench-sweep.toml");
    std::fs::write(&file, scenario).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_linecut"))
        .arg("sweep")
        .arg(&file)
        .arg("--out")
        .arg(dir.join("out"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    // "wall W s for S s of runs (longest L s), J at a time"
    let line = stderr
        .lines()
        .find(|l| l.contains(" of runs (longest "))
        .expect("the sweep's timing line");
    let number_after = |marker: &str| -> f64 {
        let rest = &line[line.find(marker).expect(marker) + marker.len()..];
        rest.split_whitespace()
            .next()
            .unwrap()
            .trim_end_matches(',')
            .parse()
            .unwrap()
    };
    let wall = number_after("wall ");
    let sum = number_after(" for ");
    let longest = number_after("(longest ");
    let jobs = number_after("s), ") as usize;
    let cells = 12usize;
    let waves = cells.div_ceil(jobs);
    let wave_bound = waves as f64 * longest;
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("out/sweep.json")).unwrap())
            .unwrap();
    let (mut inside, mut outside, mut undecided) = (0, 0, 0);
    for cell in report["cells"].as_array().unwrap() {
        for kind in ["client_detect", "broker_detect"] {
            for p in cell[kind].as_array().unwrap() {
                match p["verdict"].as_str() {
                    Some("inside") => inside += 1,
                    Some("outside") => outside += 1,
                    Some("not_decidable") => undecided += 1,
                    _ => {}
                }
            }
        }
    }
    println!("sweep benchmark: {cells} cells of 20 s, --jobs {jobs} (default), {waves} wave(s)");
    println!("  wall time            {wall:8.1} s");
    println!(
        "  sum of run times     {sum:8.1} s  (wall / sum = {:.2})",
        wall / sum
    );
    println!(
        "  longest wave         {wave_bound:8.1} s  (wall / longest wave = {:.2}, goal <= 1.30)",
        wall / wave_bound
    );
    println!(
        "  band verdicts        {inside} inside, {outside} outside, {undecided} not decidable"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
