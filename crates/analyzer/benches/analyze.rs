//! Analyzer benchmark, two generated runs analysed end to end (read, analyse, write the three
//! reports):
//!
//! - **volume**: 10 million events (`LINECUT_BENCH_QUICK=1`: 1 million). 10 subscribers on one
//!   topic through the proxy, a publish every 10 ms, a cut in the middle. Each publish is one
//!   `published` line, and per subscriber one proxy `mqtt_packet` line and one `message` line,
//!   so the mix is what a busy real run writes. Prints events/s, MB/s and the process's peak
//!   memory against the input size.
//! - **fleet**: 1,000 subscribers with a 5 s keepalive, 60 s of pings and deliveries, a 20 s cut
//!   that every subscriber detects (keepalive timeout, the broker dropping it), reconnects after
//!   and subscribes again: the shape of a reconnect storm, where the cost is per client and
//!   connection rather than per event. Prints the analysis time.

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

const FLEET: u64 = 1_000;
const S: i64 = 1_000_000;

/// Writes the fleet run; returns the events written.
fn generate_fleet(dir: &Path) -> u64 {
    std::fs::create_dir_all(dir).unwrap();
    let layout = linecut_events::RunLayout::new(dir);
    let meta = linecut_events::RunMeta {
        linecut_version: "bench".into(),
        scenario: "fleet".into(),
        broker: "mosquitto version 2.0.11 (started by linecut)".into(),
        subscriber_client: "rumqttc 0.25".into(),
        status: linecut_events::RunStatus::Complete,
        experiment_start_us: Some(T0),
        ..Default::default()
    };
    linecut_events::run_dir::write_json(&layout.meta(), &meta).unwrap();
    let open = |path: std::path::PathBuf| {
        BufWriter::with_capacity(1 << 20, std::fs::File::create(path).unwrap())
    };
    let (mut p, mut s, mut x) = (
        open(layout.publisher_events()),
        open(layout.subscriber_events()),
        open(layout.proxy_events()),
    );
    header(&mut p, "publisher");
    header(&mut s, "subscriber");
    header(&mut x, "proxy");
    let mut events = 0u64;
    let (cut_start, cut_end) = (T0 + 20 * S, T0 + 40 * S);
    // Every line is stamped, so each file is written in time order per subscriber; the reader
    // sorts each file by time.
    writeln!(x, r#"{{"ts_us":{cut_start},"source":"proxy","type":"fault_started","fault":1,"spec":"cut:at=20s,for=20s","kind":"cut"}}"#).unwrap();
    writeln!(
        x,
        r#"{{"ts_us":{cut_end},"source":"proxy","type":"fault_ended","fault":1,"kind":"cut"}}"#
    )
    .unwrap();
    for seq in 1..=60i64 {
        let ts = T0 + seq * S;
        writeln!(p, r#"{{"ts_us":{ts},"source":"publisher","type":"published","client":"pub","topic":"bench/t","seq":{seq},"qos":0,"retain":false,"payload_len":64}}"#).unwrap();
        events += 1;
    }
    for n in 1..=FLEET {
        let id = format!("sub-{n}");
        let (old, new) = (n, FLEET + n);
        // Subscribers are spread over the ping phase, so detections spread over K..2K.
        let phase = (n as i64 * 5 * S) / FLEET as i64;
        let detect = cut_start + 5 * S + phase;
        let back = cut_end + 100_000 + (n as i64 % 50) * 1_000;
        let mut lines = vec![
            (
                T0,
                format!(
                    r#""type":"conn_opened","conn":{old},"client_addr":"127.0.0.1:{}","listen_addr":"127.0.0.1:1""#,
                    10_000 + n
                ),
            ),
            (
                T0,
                format!(
                    r#""type":"mqtt_packet","conn":{old},"dir":"up","fate":"forwarded","packet_type":"CONNECT","len":30,"client_id":"{id}","keepalive_s":5"#
                ),
            ),
            (
                cut_start + 27 * S / 4,
                format!(
                    r#""type":"leg_closed","conn":{old},"leg":"upstream","by":"peer","how":"fin""#
                ),
            ),
            (
                detect,
                format!(
                    r#""type":"leg_closed","conn":{old},"leg":"client","by":"peer","how":"fin""#
                ),
            ),
            (
                back,
                format!(
                    r#""type":"conn_opened","conn":{new},"client_addr":"127.0.0.1:{}","listen_addr":"127.0.0.1:1""#,
                    20_000 + n
                ),
            ),
            (
                back,
                format!(
                    r#""type":"mqtt_packet","conn":{new},"dir":"up","fate":"forwarded","packet_type":"CONNECT","len":30,"client_id":"{id}","keepalive_s":5"#
                ),
            ),
        ];
        let mut t = T0 + phase;
        while t < T0 + 60 * S {
            let conn = if t < detect { old } else { new };
            let live = !(cut_start..back).contains(&t);
            if t < detect || t >= back {
                let fate = if live { "forwarded" } else { "held" };
                lines.push((t, format!(r#""type":"mqtt_packet","conn":{conn},"dir":"up","fate":"{fate}","packet_type":"PINGREQ","len":2"#)));
                if live {
                    lines.push((t + 500, format!(r#""type":"mqtt_packet","conn":{conn},"dir":"down","fate":"forwarded","packet_type":"PINGRESP","len":2"#)));
                }
            }
            t += 5 * S;
        }
        for seq in 1..=60i64 {
            let ts = T0 + seq * S;
            if (cut_start..back).contains(&ts) {
                continue;
            }
            let conn = if ts < detect { old } else { new };
            lines.push((ts + 100, format!(r#""type":"mqtt_packet","conn":{conn},"dir":"down","fate":"forwarded","packet_type":"PUBLISH","len":75,"topic":"bench/t","qos":0,"dup":false,"retain":false,"payload_len":64"#)));
        }
        lines.sort_by_key(|(ts, _)| *ts);
        for (ts, body) in &lines {
            writeln!(x, r#"{{"ts_us":{ts},"source":"proxy",{body}}}"#).unwrap();
        }
        events += lines.len() as u64;
        let mut own = vec![
            (
                T0,
                format!(
                    r#""type":"connect_attempt","client":"{id}","attempt":1,"broker":"127.0.0.1:1","delay_ms":0"#
                ),
            ),
            (
                T0 + 1_000,
                format!(r#""type":"connack","client":"{id}","code":0,"session_present":false"#),
            ),
            (
                T0 + 1_000,
                format!(
                    r#""type":"subscribe_sent","client":"{id}","topics":[{{"filter":"bench/#","qos":0}}],"reason":"first""#
                ),
            ),
            (
                T0 + 2_000,
                format!(r#""type":"suback","client":"{id}","packet_id":1,"codes":[0]"#),
            ),
            (
                detect + 10,
                format!(
                    r#""type":"disconnected","client":"{id}","cause":"keepalive_timeout","error":"no PINGRESP""#
                ),
            ),
            (
                back - 1_000,
                format!(
                    r#""type":"connect_attempt","client":"{id}","attempt":2,"broker":"127.0.0.1:1","delay_ms":1000"#
                ),
            ),
            (
                back + 1_000,
                format!(r#""type":"connack","client":"{id}","code":0,"session_present":false"#),
            ),
            (
                back + 1_000,
                format!(
                    r#""type":"subscribe_sent","client":"{id}","topics":[{{"filter":"bench/#","qos":0}}],"reason":"always""#
                ),
            ),
            (
                back + 2_000,
                format!(r#""type":"suback","client":"{id}","packet_id":2,"codes":[0]"#),
            ),
        ];
        for seq in 1..=60i64 {
            let ts = T0 + seq * S;
            if !(cut_start..back).contains(&ts) {
                own.push((ts + 300, format!(r#""type":"message","client":"{id}","topic":"bench/t","qos":0,"dup":false,"retain":false,"payload_len":64,"seq":{seq},"pub_ts_us":{ts}"#)));
            }
        }
        own.sort_by_key(|(ts, _)| *ts);
        for (ts, body) in &own {
            writeln!(s, r#"{{"ts_us":{ts},"source":"subscriber",{body}}}"#).unwrap();
        }
        events += own.len() as u64;
    }
    for mut w in [p, s, x] {
        w.flush().unwrap();
    }
    events
}

/// The fleet case: analysis time for 1,000 subscribers through a cut and a reconnect storm.
fn fleet() {
    let dir = std::env::temp_dir().join(format!("linecut-analyzer-fleet-{}", std::process::id()));
    let events = generate_fleet(&dir);
    let started = Instant::now();
    let run = linecut_analyzer::load(&dir).unwrap();
    let loaded = started.elapsed().as_secs_f64();
    let report = linecut_analyzer::analyze(&run);
    let analysed = started.elapsed().as_secs_f64() - loaded;
    let m = &report.windows[0].subscribers;
    assert_eq!(m.len(), FLEET as usize);
    assert!(m
        .iter()
        .all(|m| m.client_detect_s.is_some() && m.reconnect_s.is_some()));
    println!(
        "fleet: {FLEET} subscribers, {events} events: read {loaded:.3} s, analyse {analysed:.3} s"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

fn main() {
    fleet();
    if std::env::var_os("LINECUT_BENCH_FLEET_ONLY").is_some() {
        return;
    }
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
