//! Analyzer benchmark: a generated run of 10 million events (`LINECUT_BENCH_QUICK=1`: 1 million),
//! analysed end to end (`analyze_dir`: read, analyse, write the three reports).
//!
//! The run: 10 subscribers on one topic through the proxy, a publish every 10 ms, a cut in the
//! middle. Each publish is one `published` line, and per subscriber one proxy `mqtt_packet`
//! line and one `message` line, so the mix is what a busy real run writes. Prints events/s,
//! MB/s and the process's peak memory against the input size.

use std::io::{BufWriter, Write};
use std::path::Path;
use std::time::Instant;

const SUBSCRIBERS: u64 = 10;
const T0: i64 = 1_800_000_000_000_000;

fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kib| kib / 1024.0)
}

fn header(out: &mut impl Write, source: &str) {
    writeln!(out, r#"{{"ts_us":{T0},"source":"{source}","type":"header","schema":"linecut-events","schema_version":1,"producer":"bench","producer_version":"0"}}"#).unwrap();
}

/// Writes the run; returns (events, bytes).
fn generate(dir: &Path, events: u64) -> (u64, u64) {
    std::fs::create_dir_all(dir).unwrap();
    let publishes = events / (1 + 2 * SUBSCRIBERS);
    let period = 10_000i64;
    let cut = (
        T0 + publishes as i64 * period / 2,
        T0 + publishes as i64 * period / 2 + 120_000_000,
    );
    let layout = linecut_events::RunLayout::new(dir);
    let meta = linecut_events::RunMeta {
        linecut_version: "bench".into(),
        scenario: "bench".into(),
        broker: "rumqttd 0.20 (embedded)".into(),
        subscriber_client: "rumqttc 0.25".into(),
        status: linecut_events::RunStatus::Complete,
        experiment_start_us: Some(T0),
        expectations: [("lost".to_string(), "0".to_string())].into(),
        ..Default::default()
    };
    linecut_events::run_dir::write_json(&layout.meta(), &meta).unwrap();
    let open = |name: &str| {
        BufWriter::with_capacity(1 << 20, std::fs::File::create(dir.join(name)).unwrap())
    };
    let (mut p, mut s, mut x) = (
        open("publisher.jsonl"),
        open("subscriber.jsonl"),
        open("proxy.jsonl"),
    );
    header(&mut p, "publisher");
    header(&mut s, "subscriber");
    header(&mut x, "proxy");
    for n in 1..=SUBSCRIBERS {
        writeln!(x, r#"{{"ts_us":{T0},"source":"proxy","type":"conn_opened","conn":{n},"client_addr":"127.0.0.1:{}","listen_addr":"127.0.0.1:1"}}"#, 40000 + n).unwrap();
        writeln!(x, r#"{{"ts_us":{T0},"source":"proxy","type":"mqtt_packet","conn":{n},"dir":"up","fate":"forwarded","packet_type":"CONNECT","len":30,"client_id":"sub-{n}","keepalive_s":60}}"#).unwrap();
        writeln!(s, r#"{{"ts_us":{T0},"source":"subscriber","type":"connack","client":"sub-{n}","code":0,"session_present":false}}"#).unwrap();
        writeln!(s, r#"{{"ts_us":{T0},"source":"subscriber","type":"subscribe_sent","client":"sub-{n}","topics":[{{"filter":"bench/#","qos":0}}],"reason":"first"}}"#).unwrap();
        writeln!(s, r#"{{"ts_us":{},"source":"subscriber","type":"suback","client":"sub-{n}","packet_id":1,"codes":[0]}}"#, T0 + 1).unwrap();
    }
    writeln!(x, r#"{{"ts_us":{},"source":"proxy","type":"fault_started","fault":1,"spec":"cut:for=2m","kind":"cut"}}"#, cut.0).unwrap();
    writeln!(
        x,
        r#"{{"ts_us":{},"source":"proxy","type":"fault_ended","fault":1,"kind":"cut"}}"#,
        cut.1
    )
    .unwrap();
    for seq in 1..=publishes {
        let ts = T0 + 10 + seq as i64 * period;
        writeln!(p, r#"{{"ts_us":{ts},"source":"publisher","type":"published","client":"pub","topic":"bench/t","seq":{seq},"qos":0,"retain":false,"payload_len":64}}"#).unwrap();
        let lost = (cut.0..cut.1).contains(&ts);
        for n in 1..=SUBSCRIBERS {
            let fate = if lost { "held" } else { "forwarded" };
            writeln!(x, r#"{{"ts_us":{},"source":"proxy","type":"mqtt_packet","conn":{n},"dir":"down","fate":"{fate}","packet_type":"PUBLISH","len":75,"topic":"bench/t","qos":0,"dup":false,"retain":false,"payload_len":64}}"#, ts + 100).unwrap();
            if !lost {
                writeln!(s, r#"{{"ts_us":{},"source":"subscriber","type":"message","client":"sub-{n}","topic":"bench/t","qos":0,"dup":false,"retain":false,"payload_len":64,"seq":{seq},"pub_ts_us":{ts}}}"#, ts + 300).unwrap();
            }
        }
    }
    for mut w in [p, s, x] {
        w.flush().unwrap();
    }
    let bytes = ["publisher.jsonl", "subscriber.jsonl", "proxy.jsonl"]
        .iter()
        .map(|f| std::fs::metadata(dir.join(f)).unwrap().len())
        .sum();
    (publishes * (1 + 2 * SUBSCRIBERS), bytes)
}

fn main() {
    let quick = std::env::var_os("LINECUT_BENCH_QUICK").is_some();
    let events = if quick { 1_000_000 } else { 10_000_000 };
    let dir = std::env::temp_dir().join(format!("linecut-analyzer-bench-{}", std::process::id()));
    let started = Instant::now();
    let (written, bytes) = generate(&dir, events);
    println!(
        "linecut analyzer benchmark: generated {written} events ({:.0} MB) in {:.1} s",
        bytes as f64 / 1e6,
        started.elapsed().as_secs_f64()
    );
    let rss_before = peak_rss_mib();
    // The same steps as `analyze_dir`, timed one by one.
    let started = Instant::now();
    let run = linecut_analyzer::load(&dir).unwrap();
    let loaded = started.elapsed().as_secs_f64();
    let report = linecut_analyzer::analyze(&run);
    let analysed = started.elapsed().as_secs_f64();
    linecut_analyzer::write_reports(&dir, &report, &run).unwrap();
    let took = started.elapsed().as_secs_f64();
    println!(
        "  read {loaded:.2} s, analyse {:.2} s, write reports {:.2} s",
        analysed - loaded,
        took - analysed
    );
    assert_eq!(report.data.len(), SUBSCRIBERS as usize);
    assert!(report.data[0].lost > 0, "the cut loses messages");
    println!(
        "analyze: {:.2} M events/s, {:.0} MB/s, {:.1} s; peak memory {:.0} MiB for {:.0} MiB of input ({:.0}% of it; {:.0} MiB before analysing) (goals: > 2 M events/s, memory well under the input)",
        written as f64 / took / 1e6,
        bytes as f64 / took / 1e6,
        took,
        peak_rss_mib(),
        bytes as f64 / (1 << 20) as f64,
        100.0 * peak_rss_mib() / (bytes as f64 / (1 << 20) as f64),
        rss_before
    );
    let _ = std::fs::remove_dir_all(&dir);
}
