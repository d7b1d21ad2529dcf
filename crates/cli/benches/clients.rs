//! What a client kind costs before it measures anything: its first install, and a run's
//! start-up to its first SUBACK. Peers measured in the same run: paho-mqtt 2.1.0's virtual
//! environment (the install linecut had before these clients) for the installs, linecut's own
//! agent (rumqttc, inside the linecut process) for the start-up.
//!
//! Installs go into a fresh directory (`LINECUT_CLIENTS_DIR`) through `scripts/setup-clients`,
//! one client at a time; Debian packages already on the machine are not fetched again (their
//! own times are in docs/clients.md). Start-up: three runs per kind of a 5 s scenario (the
//! shortest run that a 5 s keepalive, mosquitto_sub's least, allows; embedded broker, proxy
//! mode), from the run's start (`meta.json` `started_us`, before the broker starts) to the first
//! SUBACK the proxy forwards; the median is printed.
//!
//! Needs the network for the installs (PyPI, npm), gcc and golang-go for the compiled clients.
//! Run with `cargo bench -p linecut --bench clients`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Seconds `scripts/setup-clients NAME` takes into an empty directory.
fn install(name: &str, into: &Path) -> f64 {
    let started = Instant::now();
    let out = Command::new(root().join("scripts/setup-clients"))
        .arg(name)
        .env("LINECUT_CLIENTS_DIR", into)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    started.elapsed().as_secs_f64()
}

/// The bytes of every file under `path`, in MB (symbolic links not followed).
fn size_mb(path: &Path) -> f64 {
    fn bytes(path: &Path) -> u64 {
        let Ok(meta) = std::fs::symlink_metadata(path) else {
            return 0;
        };
        if !meta.is_dir() {
            return meta.len();
        }
        std::fs::read_dir(path)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| bytes(&e.path()))
            .sum()
    }
    bytes(path) as f64 / (1024.0 * 1024.0)
}

/// Seconds from a run's start to the first SUBACK the proxy forwarded.
fn start_up(client: &str, clients: &Path, dir: &Path) -> f64 {
    let scenario = dir.join(format!("{client}.toml"));
    std::fs::write(
        &scenario,
        format!(
            "name = \"startup\"\nduration = \"5s\"\n[subscriber]\nclient = \"{client}\"\nkeepalive = \"5s\"\n"
        ),
    )
    .unwrap();
    let out_dir = dir.join(format!("run-{client}"));
    let out = Command::new(env!("CARGO_BIN_EXE_linecut"))
        .args(["run", "--plain", "--force", "--out"])
        .arg(&out_dir)
        .arg(&scenario)
        .env("LINECUT_CLIENTS_DIR", clients)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{client}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out_dir.join("meta.json")).unwrap()).unwrap();
    let started = meta["started_us"].as_i64().unwrap();
    let suback = std::fs::read_to_string(out_dir.join("proxy.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|e| e["packet_type"] == "SUBACK")
        .and_then(|e| e["ts_us"].as_i64())
        .expect("a SUBACK");
    (suback - started) as f64 / 1e6
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let dir = std::env::temp_dir().join(format!("linecut-bench-clients-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let fresh = dir.join("clients");

    println!("first install into an empty directory (scripts/setup-clients NAME):");
    println!("| client | seconds | size | against paho-mqtt 2.1.0's venv |");
    println!("|---|---|---|---|");
    // The peer first: paho's three venvs, of which 2.1.0 is one (its share: a third).
    let peer = install("paho", &fresh) / 3.0;
    println!(
        "| paho-python (one of its three venvs) | {peer:.1} | {:.0} MB | 1.00× |",
        size_mb(&fresh.join("paho-2"))
    );
    for (name, subdir) in [
        ("mqttjs", "mqttjs"),
        ("aiomqtt", "aiomqtt"),
        ("paho-c", "paho-c"),
        ("paho-go", "paho-go"),
        ("aedes", "aedes"),
        ("amqtt", "amqtt"),
    ] {
        let s = install(name, &fresh);
        println!(
            "| {name} | {s:.1} | {:.0} MB | {:.2}× |",
            size_mb(&fresh.join(subdir)),
            s / peer
        );
    }

    println!();
    println!("a run's start-up to the first SUBACK (median of 3; embedded broker, proxy mode):");
    println!("| client | seconds | against linecut's agent |");
    println!("|---|---|---|");
    let runs = dir.join("runs");
    std::fs::create_dir_all(&runs).unwrap();
    let agent = median((0..3).map(|_| start_up("rumqttc", &fresh, &runs)).collect());
    println!("| rumqttc (linecut's agent) | {agent:.3} | 1.00× |");
    // Every kind linecut starts but its own agent (the peer) and `command` (nothing to
    // install).
    use linecut_scenario::client::Kind;
    for client in Kind::ALL
        .into_iter()
        .filter(|k| !matches!(k, Kind::Rumqttc | Kind::Command))
        .map(Kind::name)
    {
        let s = median((0..3).map(|_| start_up(client, &fresh, &runs)).collect());
        println!("| {client} | {s:.3} | {:.2}× |", s / agent);
    }
    let _ = std::fs::remove_dir_all(&dir);
}
