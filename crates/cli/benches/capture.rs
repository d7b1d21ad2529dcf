//! Capture benchmark: `linecut analyze` against tshark on the same generated capture of MQTT
//! traffic, in the same run.
//!
//! The capture (default 1 GiB; `LINECUT_BENCH_CAPTURE_MB` sets the size) is written with the
//! proxy's own pcap writer: 50 subscribers on port 1883, each connecting and subscribing, then
//! receiving PUBLISH packets of 60–160 bytes in 1448-byte segments (packets straddle segments,
//! as on a real link), with a PINGREQ now and then. Payloads are not in linecut's
//! format, so the analysis keeps counts, not rows, for them.
//!
//! Measured for both tools: wall time, MB/s, MQTT packets/s and peak resident memory (from the
//! kernel's rusage of the child process). The peer command is the one the issue names:
//! `tshark -r FILE -Y mqtt -T fields -e frame.time_epoch -e tcp.stream -e mqtt.msgtype`.
//! linecut is also run on a quarter of the file, to show its memory does not grow with size.
//!
//! Run with `cargo bench -p linecut --bench capture` (needs tshark, and about 1.3 GiB in the
//! temporary directory).

mod support;

use linecut_capture::{LegSide, PcapTap};
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Instant;
use support::measure;

const SUBSCRIBERS: u64 = 50;
const SEGMENT: usize = 1448;

/// Writes a capture of about `bytes` and returns the MQTT packets in it.
fn generate(path: &Path, bytes: u64) -> u64 {
    let tap = PcapTap::create(path).unwrap();
    let broker: SocketAddr = "10.0.0.1:1883".parse().unwrap();
    let mut ts: i64 = 1_764_000_000_000_000;
    let mut packets = 0u64;
    for c in 0..SUBSCRIBERS {
        let client: SocketAddr = format!("10.0.1.{}:{}", c % 250 + 1, 40_000 + c)
            .parse()
            .unwrap();
        tap.open(c + 1, LegSide::Client, client, broker, ts);
        let connect = linecut_mqtt::encode::connect(&format!("sensor-{c:03}"), 60);
        tap.data(c + 1, LegSide::Client, true, &connect, ts);
        tap.data(c + 1, LegSide::Client, false, &[0x20, 2, 0, 0], ts + 100);
        tap.data(
            c + 1,
            LegSide::Client,
            true,
            &[0x82, 8, 0, 1, 0, 3, b'a', b'/', b'#', 0],
            ts + 200,
        );
        tap.data(c + 1, LegSide::Client, false, &[0x90, 3, 0, 1, 0], ts + 300);
        packets += 4;
    }
    // Round-robin over the subscribers, one segment each, until the file is big enough.
    let mut stream: Vec<Vec<u8>> = vec![Vec::new(); SUBSCRIBERS as usize];
    let mut i = 0u64;
    let mut written = 0u64;
    while written < bytes {
        let c = (i % SUBSCRIBERS) as usize;
        while stream[c].len() < SEGMENT {
            let len = 60 + (i as usize * 37) % 100;
            stream[c].extend_from_slice(&linecut_mqtt::encode::publish(
                "a/sensor",
                &[b'x'; 160][..len],
            ));
            packets += 1;
        }
        let rest = stream[c].split_off(SEGMENT);
        let segment = std::mem::replace(&mut stream[c], rest);
        ts += 20;
        tap.data(c as u64 + 1, LegSide::Client, false, &segment, ts);
        written += (segment.len() + 54 + 16) as u64;
        if i % 10_000 == 0 {
            // Up only: a PINGRESP now could land in the middle of a PUBLISH going down.
            tap.data(c as u64 + 1, LegSide::Client, true, &[0xc0, 0], ts);
            packets += 1;
        }
        i += 1;
    }
    for (c, rest) in stream.iter().enumerate() {
        tap.data(c as u64 + 1, LegSide::Client, false, rest, ts + 1000);
    }
    tap.finish().unwrap();
    packets
}

fn linecut(file: &Path, out: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_linecut"));
    c.arg("analyze")
        .arg(file)
        .args(["--port", "1883", "--out"])
        .arg(out);
    c
}

fn main() {
    let mb: u64 = std::env::var("LINECUT_BENCH_CAPTURE_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024);
    let dir = std::env::temp_dir().join(format!("linecut-bench-capture-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let big = dir.join("big.pcap");
    let small = dir.join("quarter.pcap");
    let t = Instant::now();
    let packets = generate(&big, mb << 20);
    generate(&small, (mb << 20) / 4);
    let size = std::fs::metadata(&big).unwrap().len() as f64 / 1e6;
    println!(
        "capture benchmark: {size:.0} MB pcap, {packets} MQTT packets, {SUBSCRIBERS} connections (generated in {:.1} s)",
        t.elapsed().as_secs_f64()
    );
    let (lc_s, lc_mb) = measure(linecut(&big, &dir.join("report-big")));
    let (lc4_s, lc4_mb) = measure(linecut(&small, &dir.join("report-small")));
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("report-big/report.json")).unwrap())
            .unwrap();
    assert_eq!(
        report["capture"]["mqtt_packets"].as_u64(),
        Some(packets),
        "linecut read every packet"
    );
    let mut tshark = Command::new("tshark");
    tshark.arg("-r").arg(&big).args([
        "-Y",
        "mqtt",
        "-T",
        "fields",
        "-e",
        "frame.time_epoch",
        "-e",
        "tcp.stream",
        "-e",
        "mqtt.msgtype",
    ]);
    let (ts_s, ts_mb) = measure(tshark);
    let row = |name: &str, secs: f64, rss: f64| {
        println!(
            "  {name:<22} {secs:8.2} s {:9.1} MB/s {:12.0} packets/s  peak {rss:7.1} MiB",
            size / secs,
            packets as f64 / secs
        );
    };
    row("linecut analyze", lc_s, lc_mb);
    row("tshark -Y mqtt fields", ts_s, ts_mb);
    println!(
        "  linecut / tshark throughput: {:.1}x (goal >= 50x); linecut {:.0} MB/s (goal >= 300)",
        ts_s / lc_s,
        size / lc_s
    );
    println!(
        "  linecut peak memory: {lc_mb:.1} MiB on the whole file, {lc4_mb:.1} MiB on a quarter of it ({:.2} s)",
        lc4_s
    );
    let _ = std::fs::remove_dir_all(&dir);
}
