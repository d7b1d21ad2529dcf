//! tshark as the oracle for every frame a report cites.
//!
//! A report's wire claims carry the frame that shows them (`frame`, `ts_us`, `sender`, `src`,
//! `port`, `sign` in `report.json`). This reads the same capture with tshark and checks each
//! claim: the frame exists, it was sent at that time from that address and port, and it is what
//! the report calls it (SYN without ACK, FIN, RST, a retransmission tshark recognises, a PUBLISH,
//! an ARP or neighbour-discovery request or reply). Shared by the analyzer's test of the
//! committed runs and the runner's namespace tests (included by path: it is test code only).

// Each includer uses part of it (the unit tests `check`, the suites `check_run`).
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::Path;

/// One frame as tshark reads it.
#[derive(Debug, Default)]
struct Seen {
    /// Microseconds since the epoch, from tshark's `frame.time_epoch` digits (no float).
    ts_us: i64,
    src: String,
    port: Option<u16>,
    syn: bool,
    ack: bool,
    fin: bool,
    rst: bool,
    tcp_len: u64,
    retransmission: bool,
    arp_opcode: Option<u8>,
    icmpv6_type: Option<u8>,
    mqtt_types: Vec<u8>,
}

const FIELDS: [&str; 17] = [
    "frame.number",
    "frame.time_epoch",
    "ip.src",
    "ipv6.src",
    "tcp.srcport",
    "tcp.flags.syn",
    "tcp.flags.ack",
    "tcp.flags.fin",
    "tcp.flags.reset",
    "tcp.len",
    "tcp.analysis.retransmission",
    "tcp.analysis.fast_retransmission",
    "tcp.analysis.spurious_retransmission",
    "arp.opcode",
    "arp.src.proto_ipv4",
    "icmpv6.type",
    "mqtt.msgtype",
];

fn epoch_us(text: &str) -> i64 {
    let (secs, frac) = text.split_once('.').unwrap_or((text, ""));
    let micros: String = frac.chars().chain(std::iter::repeat('0')).take(6).collect();
    secs.parse::<i64>().unwrap() * 1_000_000 + micros.parse::<i64>().unwrap()
}

/// Every frame of `pcap`, by number, as tshark reads it; `port` is decoded as MQTT.
fn read(pcap: &Path, port: u16) -> HashMap<u64, Seen> {
    read_with(pcap, port, &[])
}

/// As [`read`], with tshark's preferences `prefs` (`-o` values).
fn read_with(pcap: &Path, port: u16, prefs: &[&str]) -> HashMap<u64, Seen> {
    let mut args: Vec<String> = vec![
        "-n".into(),
        "-r".into(),
        pcap.display().to_string(),
        "-d".into(),
        format!("tcp.port=={port},mqtt"),
        "-T".into(),
        "fields".into(),
        "-E".into(),
        "separator=|".into(),
    ];
    for f in FIELDS {
        args.push("-e".into());
        args.push(f.into());
    }
    for p in prefs {
        args.push("-o".into());
        args.push(p.to_string());
    }
    let out = std::process::Command::new("tshark")
        .args(&args)
        .output()
        .expect("tshark is the oracle of these tests: scripts/test --setup installs it");
    // A capture cut short mid-frame is read up to the cut, by tshark as by linecut: tshark
    // says so and exits non-zero, with every whole frame printed.
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() || stderr.contains("cut short in the middle of a packet"),
        "tshark on {}: {stderr}",
        pcap.display(),
    );
    let flag = |v: &str| v == "1" || v == "True";
    let mut frames = HashMap::new();
    for line in String::from_utf8(out.stdout).unwrap().lines() {
        let f: Vec<&str> = line.split('|').collect();
        assert_eq!(f.len(), FIELDS.len(), "{line}");
        let src = [f[2], f[3], f[14]]
            .into_iter()
            .find(|s| !s.is_empty())
            .unwrap_or("")
            // A tunnelled or ICMP-quoted packet lists two addresses: the outer one is first.
            .split(',')
            .next()
            .unwrap()
            .to_string();
        let seen = Seen {
            ts_us: epoch_us(f[1]),
            src,
            port: f[4].split(',').next().and_then(|p| p.parse().ok()),
            syn: flag(f[5]),
            ack: flag(f[6]),
            fin: flag(f[7]),
            rst: flag(f[8]),
            tcp_len: f[9].parse().unwrap_or(0),
            retransmission: [f[10], f[11], f[12]].iter().any(|v| !v.is_empty()),
            arp_opcode: f[13].parse().ok(),
            icmpv6_type: f[15].split(',').next().and_then(|t| t.parse().ok()),
            mqtt_types: f[16].split(',').filter_map(|t| t.parse().ok()).collect(),
        };
        frames.insert(f[0].parse().unwrap(), seen);
    }
    frames
}

/// Every object in `value` that is a cited frame.
fn claims<'a>(value: &'a serde_json::Value, out: &mut Vec<&'a serde_json::Value>) {
    match value {
        serde_json::Value::Object(map) => {
            if ["frame", "ts_us", "sender", "src", "sign"]
                .iter()
                .all(|k| map.contains_key(*k))
            {
                out.push(value);
            }
            for v in map.values() {
                claims(v, out);
            }
        }
        serde_json::Value::Array(list) => {
            for v in list {
                claims(v, out);
            }
        }
        _ => {}
    }
}

/// Checks every frame `report.json` in `run` cites against tshark's reading of the run's
/// `capture.pcap`, whose MQTT port is `port`; returns how many claims were checked. Panics
/// with every wrong claim listed.
pub fn check_run(run: &Path, port: u16) -> usize {
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("report.json")).unwrap()).unwrap();
    check(&report, &run.join("capture.pcap"), port)
}

/// Checks every frame `report` (a report as JSON) cites against tshark's reading of `pcap`
/// (what `linecut analyze CAPTURE` read), whose MQTT port is `port`.
pub fn check(report: &serde_json::Value, pcap: &Path, port: u16) -> usize {
    let run = pcap;
    let mut cited = Vec::new();
    claims(report, &mut cited);
    if cited.is_empty() {
        return 0;
    }
    let frames = read(pcap, port);
    // tshark hands no retransmitted payload to the MQTT dissector: what a retransmission
    // carries is read in a second pass with its sequence analysis off.
    let mut resent: Option<HashMap<u64, Seen>> = None;
    let mut wrong = Vec::new();
    for claim in &cited {
        let n = claim["frame"].as_u64().unwrap();
        let Some(seen) = frames.get(&n) else {
            wrong.push(format!("frame {n} is not in the capture: {claim}"));
            continue;
        };
        let mut fails = Vec::new();
        if seen.ts_us != claim["ts_us"].as_i64().unwrap() {
            fails.push(format!("tshark's time is {}", seen.ts_us));
        }
        if seen.src != claim["src"].as_str().unwrap() {
            fails.push(format!("tshark's sender is {}", seen.src));
        }
        if let Some(port) = claim["port"].as_u64() {
            if seen.port != Some(port as u16) {
                fails.push(format!("tshark's source port is {:?}", seen.port));
            }
        }
        let is = match claim["sign"].as_str().unwrap() {
            "syn" | "syn_retry" => seen.syn && !seen.ack,
            "fin" => seen.fin,
            "rst" => seen.rst,
            "retransmission" => seen.tcp_len > 0 && seen.retransmission,
            "stale_publish" => {
                seen.mqtt_types.contains(&3)
                    || (seen.retransmission
                        && resent
                            .get_or_insert_with(|| {
                                read_with(pcap, port, &["tcp.analyze_sequence_numbers:FALSE"])
                            })
                            .get(&n)
                            .is_some_and(|r| r.mqtt_types.contains(&3)))
            }
            "neighbour_request" => seen.arp_opcode == Some(1) || seen.icmpv6_type == Some(135),
            "neighbour_reply" => seen.arp_opcode == Some(2) || seen.icmpv6_type == Some(136),
            other => panic!("a sign the oracle does not know: {other}"),
        };
        if !is {
            fails.push(format!("tshark reads it as {seen:?}"));
        }
        if !fails.is_empty() {
            wrong.push(format!("frame {n}: {}: {claim}", fails.join("; ")));
        }
    }
    assert!(
        wrong.is_empty(),
        "{}: {} of {} cited frame(s) disagree with tshark:\n{}",
        run.display(),
        wrong.len(),
        cited.len(),
        wrong.join("\n")
    );
    cited.len()
}

/// The broker's port of a namespace run, from its `meta.json`.
pub fn broker_port(run: &Path) -> Option<u16> {
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("meta.json")).ok()?).ok()?;
    meta["network"]["broker_port"].as_u64().map(|p| p as u16)
}
