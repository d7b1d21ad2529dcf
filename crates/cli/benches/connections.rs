//! Many-connections benchmark: `linecut analyze` of a capture of a million short MQTT sessions,
//! against the same analysis of a tenth of them, in the same run.
//!
//! Each session is what a fleet of short-lived publishers or a reconnect storm leaves: a TCP
//! handshake, CONNECT (a client id of its own), CONNACK, and then one of two endings:
//! - `clean`: DISCONNECT and a FIN from each side (the least a report needs to describe);
//! - `dropped`: the client's FIN with no DISCONNECT, answered by the broker's RST (each is
//!   the kind of connection a report describes, so the detail kept is full throughout).
//!
//! Memory should follow the connections open at once (one, here), not the connections seen:
//! the goal is at most 64 MiB for a million, and the ratio of peak memory between the full
//! capture and the tenth says whether it is flat.
//!
//! `LINECUT_BENCH_CONNECTIONS` sets the count (default 1,000,000). Run with
//! `cargo bench -p linecut --bench connections` (about 1.4 GB in the temporary directory).

mod support;

use linecut_capture::{LegSide, PcapTap};
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Instant;
use support::{generate_in_child, generation_request, measure};

/// Writes `count` short sessions of one `shape`, one after another, 100 µs apart.
fn generate(path: &Path, shape: &str, count: u64) {
    let tap = PcapTap::create(path).unwrap();
    let broker: SocketAddr = "10.0.0.1:1883".parse().unwrap();
    let mut ts: i64 = 1_764_000_000_000_000;
    for c in 0..count {
        let client: SocketAddr = format!(
            "10.{}.{}.{}:{}",
            1 + (c >> 24) % 200,
            (c >> 16) % 256,
            (c >> 8) % 256,
            // Client ports stay clear of the broker's 1883, so every segment has one reading.
            2000 + c % 60_000
        )
        .parse()
        .unwrap();
        let conn = c + 1;
        tap.open(conn, LegSide::Client, client, broker, ts);
        let connect = linecut_mqtt::encode::connect(&format!("dev-{c:07}"), 60);
        tap.data(conn, LegSide::Client, true, &connect, ts + 10);
        tap.data(conn, LegSide::Client, false, &[0x20, 2, 0, 0], ts + 20);
        if shape == "clean" {
            tap.data(conn, LegSide::Client, true, &[0xe0, 0], ts + 30);
            tap.close(conn, LegSide::Client, true, false, ts + 40);
            tap.close(conn, LegSide::Client, false, false, ts + 50);
        } else {
            tap.close(conn, LegSide::Client, true, false, ts + 40);
            tap.close(conn, LegSide::Client, false, true, ts + 50);
        }
        ts += 100;
    }
    tap.finish().unwrap();
}

/// `linecut analyze` of `file` into `out`: wall seconds and peak MiB.
fn analyze(file: &Path, out: &Path) -> (f64, f64) {
    let mut c = Command::new(env!("CARGO_BIN_EXE_linecut"));
    c.arg("analyze")
        .arg(file)
        .args(["--port", "1883", "--out"])
        .arg(out);
    measure(c)
}

/// What the analysis wrote: its report.json and the size of report.md. Read after every
/// measurement, so this process never holds a report while a child is measured.
fn written(out: &Path) -> (serde_json::Value, u64) {
    let report =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    (
        report,
        std::fs::metadata(out.join("report.md")).unwrap().len(),
    )
}

/// Analyses `count` sessions of `shape` and a tenth of them; prints both and their ratio.
fn case(dir: &Path, shape: &str, count: u64) {
    let (full, tenth) = (
        dir.join(format!("{shape}-full.pcap")),
        dir.join(format!("{shape}-tenth.pcap")),
    );
    let t = Instant::now();
    generate_in_child(&full, &format!("{shape}:{count}"));
    generate_in_child(&tenth, &format!("{shape}:{}", count / 10));
    let size = std::fs::metadata(&full).unwrap().len() as f64 / 1e6;
    println!(
        "{shape} sessions: {count}, {size:.0} MB pcap (generated in {:.1} s)",
        t.elapsed().as_secs_f64()
    );
    let (out, out10) = (
        dir.join(format!("{shape}-report-full")),
        dir.join(format!("{shape}-report-tenth")),
    );
    let (s, mb) = analyze(&full, &out);
    let (s10, mb10) = analyze(&tenth, &out10);
    let (report, md) = written(&out);
    let (_, md10) = written(&out10);
    assert_eq!(
        report["capture"]["connections"].as_u64(),
        Some(count),
        "linecut read every connection"
    );
    let folded = report["capture"]["folded"]["connections"]
        .as_u64()
        .unwrap_or(0);
    println!(
        "  linecut analyze, {count} connections: {s:.2} s ({:.2} µs per connection), peak {mb:.1} MiB (goal ≤ 64), report.md {:.2} MB, {folded} counted not described",
        s * 1e6 / count as f64,
        md as f64 / 1e6
    );
    println!(
        "  linecut analyze, {} connections: {s10:.2} s, peak {mb10:.1} MiB, report.md {:.2} MB",
        count / 10,
        md10 as f64 / 1e6
    );
    println!(
        "  peak memory, full / tenth: {:.2}× (flat is 1×; linear would be 10×)",
        mb / mb10
    );
    for f in [full, tenth] {
        std::fs::remove_file(f).unwrap();
    }
}

fn main() {
    if let Some((what, path)) = generation_request() {
        let (shape, count) = what.split_once(':').unwrap();
        generate(&path, shape, count.parse().unwrap());
        return;
    }
    let count: u64 = std::env::var("LINECUT_BENCH_CONNECTIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let dir = std::env::temp_dir().join(format!("linecut-bench-conns-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for shape in ["clean", "dropped"] {
        case(&dir, shape, count);
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
