//! Captures against tshark, on real runs: the proxy's own pcap, and captures taken on loopback
//! by tcpdump and tshark during a run (pcap and pcapng; Ethernet, Linux SLL and SLL2 link
//! types), each read by linecut and by tshark, connection by connection. Needs tshark and
//! tcpdump (the test command installs them) and the right to capture on loopback.

use linecut_capture::{read::read_frames, read_mqtt, Observation};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod common;

use common::linecut;

fn temp_dir(name: &str) -> PathBuf {
    common::temp_dir("capture", name)
}

/// Cuts the line 2 s in for 3 s under a 1 s keepalive: a detection, a reconnect, held data.
const SCENARIO: &str = r#"
name = "capture"
duration = "7s"
[publisher]
interval = "200ms"
[subscriber]
keepalive = "1s"
reconnect = "immediate"
[[fault]]
kind = "cut"
at = "2s"
for = "3s"
[capture]
pcap = true
"#;

fn run_scenario(dir: &Path) -> PathBuf {
    let scenario = dir.join("capture.toml");
    std::fs::write(&scenario, SCENARIO).unwrap();
    let run = dir.join("run");
    let out = linecut()
        .args(["run", "--quiet", "--out"])
        .arg(&run)
        .arg(&scenario)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    run
}

/// The proxy's listening port and the broker's port, from the run's proxy log.
fn ports(run: &Path) -> (u16, u16) {
    let log = std::fs::read_to_string(run.join("proxy.jsonl")).unwrap();
    let started: serde_json::Value = log
        .lines()
        .find(|l| l.contains("\"proxy_started\""))
        .map(|l| serde_json::from_str(l).unwrap())
        .unwrap();
    let port = |key: &str| -> u16 {
        started[key]
            .as_str()
            .unwrap()
            .rsplit(':')
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    (port("listen"), port("upstream"))
}

/// MQTT packet types per connection (keyed by the client's port) and direction, as tshark
/// reads `file` with `port` decoded as MQTT.
fn tshark_packets(file: &Path, port: u16) -> BTreeMap<(u16, &'static str), Vec<String>> {
    let out = Command::new("tshark")
        .arg("-r")
        .arg(file)
        .args(["-o", "tcp.reassemble_out_of_order:TRUE"])
        .args(["-d", &format!("tcp.port=={port},mqtt")])
        .args(["-Y", &format!("mqtt && tcp.port=={port}")])
        .args([
            "-T",
            "fields",
            "-e",
            "tcp.srcport",
            "-e",
            "tcp.dstport",
            "-e",
            "mqtt.msgtype",
        ])
        .output()
        .expect("tshark is installed");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "tshark: {stderr}");
    // tshark opens the file without complaint (only its note about running as root).
    let complaints: Vec<&str> = stderr
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.contains("Running as user"))
        .collect();
    assert!(
        complaints.is_empty(),
        "tshark on {}: {complaints:?}",
        file.display()
    );
    let mut seen: BTreeMap<(u16, &'static str), Vec<String>> = BTreeMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let fields: Vec<&str> = line.split('\t').collect();
        let (src, dst): (u16, u16) = (fields[0].parse().unwrap(), fields[1].parse().unwrap());
        let (client, dir) = if dst == port {
            (src, "up")
        } else {
            (dst, "down")
        };
        for t in fields[2].split(',').filter(|t| !t.is_empty()) {
            seen.entry((client, dir))
                .or_default()
                .push(name(t.parse().unwrap()).into());
        }
    }
    seen
}

fn name(code: u8) -> &'static str {
    [
        "?",
        "CONNECT",
        "CONNACK",
        "PUBLISH",
        "PUBACK",
        "PUBREC",
        "PUBREL",
        "PUBCOMP",
        "SUBSCRIBE",
        "SUBACK",
        "UNSUBSCRIBE",
        "UNSUBACK",
        "PINGREQ",
        "PINGRESP",
        "DISCONNECT",
        "AUTH",
    ][code as usize]
}

/// The same, as linecut's capture reader sees it.
fn linecut_packets(file: &Path, port: u16) -> BTreeMap<(u16, &'static str), Vec<String>> {
    let mut clients: BTreeMap<u64, u16> = BTreeMap::new();
    let mut seen: BTreeMap<(u16, &'static str), Vec<String>> = BTreeMap::new();
    let summary = read_mqtt(file, port, |o| match o {
        Observation::Opened { conn, client, .. } => {
            clients.insert(conn, client.port());
        }
        Observation::Packet {
            conn, dir, packet, ..
        } => {
            seen.entry((clients[&conn], dir.as_str()))
                .or_default()
                .push(packet.packet_type().name().to_string());
        }
        _ => {}
    })
    .unwrap();
    assert_eq!(summary.read.stopped, None, "{}", file.display());
    seen
}

/// The same from the proxy's event log: on the client leg, a packet going up once by its
/// final fate (a held one is released or discarded), one going down when it was written.
fn event_log_packets(run: &Path) -> BTreeMap<(u16, &'static str), Vec<String>> {
    let log = std::fs::read_to_string(run.join("proxy.jsonl")).unwrap();
    let mut clients: BTreeMap<u64, u16> = BTreeMap::new();
    let mut seen: BTreeMap<(u16, &'static str), Vec<String>> = BTreeMap::new();
    let mut events: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    events.sort_by_key(|e| e["ts_us"].as_i64().unwrap_or(0));
    for e in events {
        match e["type"].as_str() {
            Some("conn_opened") => {
                let addr = e["client_addr"].as_str().unwrap();
                clients.insert(
                    e["conn"].as_u64().unwrap(),
                    addr.rsplit(':').next().unwrap().parse().unwrap(),
                );
            }
            Some("mqtt_packet") => {
                let (dir, fate) = (e["dir"].as_str().unwrap(), e["fate"].as_str().unwrap());
                let crossed = match dir {
                    "up" => matches!(fate, "forwarded" | "dropped" | "released" | "discarded"),
                    _ => matches!(fate, "forwarded" | "released"),
                };
                let port = clients[&e["conn"].as_u64().unwrap()];
                if crossed {
                    let dir = if dir == "up" { "up" } else { "down" };
                    seen.entry((port, dir))
                        .or_default()
                        .push(e["packet_type"].as_str().unwrap().to_string());
                }
            }
            _ => {}
        }
    }
    seen
}

fn linktypes(file: &Path) -> Vec<i32> {
    let mut types = Vec::new();
    read_frames(file, |f| {
        if !types.contains(&f.linktype) {
            types.push(f.linktype);
        }
    })
    .unwrap();
    types
}

#[test]
fn the_proxys_pcap_matches_tshark_and_the_event_log() {
    let dir = temp_dir("proxy");
    let run = run_scenario(&dir);
    let pcap = run.join("capture.pcap");
    let (proxy_port, broker_port) = ports(&run);
    // Both legs: tshark and linecut read the same MQTT packets, connection by connection.
    for port in [proxy_port, broker_port] {
        let theirs = tshark_packets(&pcap, port);
        assert!(!theirs.is_empty());
        assert_eq!(linecut_packets(&pcap, port), theirs, "port {port}");
    }
    // tshark's packets on the client leg are the proxy's own log of them, one for one.
    assert_eq!(event_log_packets(&run), tshark_packets(&pcap, proxy_port));
    // And the analyzer's comparison of the two agrees.
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("report.json")).unwrap()).unwrap();
    let check = &report["capture_check"];
    assert_eq!(check["agree"], true, "{check}");
    assert!(check["rows"].as_array().unwrap().len() >= 6, "{check}");
    // Analysing the capture alone finds the outage the run had: detected from the wire, inferred.
    let out = linecut()
        .arg("analyze")
        .arg(&pcap)
        .args([
            "--port",
            &proxy_port.to_string(),
            "--client",
            "rumqttc",
            "--out",
        ])
        .arg(dir.join("from-capture"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let from_capture: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("from-capture/report.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        from_capture["windows"][0]["kind"], "inferred",
        "{from_capture}"
    );
    let m = &from_capture["windows"][0]["subscribers"][0];
    assert_eq!(m["reported_by_client"], false);
    assert!(m["reconnect_s"].as_f64().is_some(), "{m}");
    assert!(from_capture["data"][0]["delivered"].as_u64().unwrap() > 10);
}

#[test]
fn an_mqtt5_session_reads_as_tshark_reads_it() {
    let dir = temp_dir("v5");
    let scenario = dir.join("v5.toml");
    std::fs::write(
        &scenario,
        r#"
name = "v5"
duration = "5s"
[publisher]
interval = "200ms"
mqtt = "5"
keepalive = "5s"
[subscriber]
keepalive = "5s"
mqtt = "5"
[capture]
pcap = true
"#,
    )
    .unwrap();
    let run = dir.join("run");
    let out = linecut()
        .args(["run", "--quiet", "--out"])
        .arg(&run)
        .arg(&scenario)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pcap = run.join("capture.pcap");
    let (proxy_port, broker_port) = ports(&run);
    for port in [proxy_port, broker_port] {
        let theirs = tshark_packets(&pcap, port);
        assert!(
            theirs.values().flatten().any(|t| t == "PUBLISH"),
            "{theirs:?}"
        );
        assert_eq!(linecut_packets(&pcap, port), theirs, "port {port}");
    }
}

/// Starts a capture and waits until it is listening.
fn start_capture(program: &str, args: &[&str], file: &Path) -> Child {
    let mut child = Command::new(program)
        .args(args)
        .arg("-w")
        .arg(file)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    let started = loop {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Err(_) => break Err("it did not start capturing".to_string()),
            Ok(line) if line.contains("listening on") || line.contains("Capturing on") => {
                break Ok(())
            }
            Ok(line) if line.contains("ermission") || line.contains("rror") => break Err(line),
            Ok(_) => {}
        }
    };
    if let Err(why) = started {
        let _ = child.kill();
        let _ = child.wait();
        panic!("{program} {args:?}: {why}");
    }
    child
}

/// Opens probe connections on loopback until each capture file holds one of them.
fn wait_until_capturing(files: &[PathBuf]) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let deadline = Instant::now() + Duration::from_secs(20);
    let probe_seen = |file: &Path| {
        let mut seen = false;
        // A file still being written may end mid-record: reading stops there, which is fine.
        let _ = read_frames(file, |f| {
            if let Some(s) = linecut_capture::link::ip_packet(f.linktype, f.data)
                .and_then(linecut_capture::link::tcp_segment)
            {
                seen |= s.dst.port() == port || s.src.port() == port;
            }
        });
        seen
    };
    loop {
        let probe = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        drop(probe);
        let _ = listener.accept();
        if files.iter().all(|f| probe_seen(f)) {
            return;
        }
        assert!(Instant::now() < deadline, "captures never saw the probe");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn stop(mut child: Child) {
    // SAFETY: kill(2) on our own child, not yet waited for.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGINT);
    }
    let _ = child.wait();
}

#[test]
fn captures_by_tcpdump_and_tshark_read_as_tshark_reads_them() {
    let dir = temp_dir("tools");
    let captures = [
        (
            "tcpdump",
            vec!["-i", "lo", "-U", "-s", "0", "tcp"],
            "lo.pcap",
            1,
        ),
        (
            "tcpdump",
            vec!["-i", "any", "-U", "-s", "0", "tcp"],
            "any.pcap",
            276,
        ),
        ("tshark", vec!["-i", "any", "-f", "tcp"], "any.pcapng", 113),
        ("tshark", vec!["-i", "lo", "-f", "tcp"], "lo.pcapng", 1),
    ];
    let children: Vec<Child> = captures
        .iter()
        .map(|(program, args, file, _)| start_capture(program, args, &dir.join(file)))
        .collect();
    // "Listening" is printed before the kernel delivers the first packet to some of them:
    // wait until a probe connection shows up in every file.
    let files: Vec<PathBuf> = captures.iter().map(|c| dir.join(c.2)).collect();
    wait_until_capturing(&files);
    let run = run_scenario(&dir);
    // A fresh probe in every file means everything before it has been written too.
    wait_until_capturing(&files);
    for child in children {
        stop(child);
    }
    let (proxy_port, broker_port) = ports(&run);
    for (_, _, file, linktype) in captures {
        let path = dir.join(file);
        assert_eq!(linktypes(&path), vec![linktype], "{file}");
        for port in [proxy_port, broker_port] {
            let theirs = tshark_packets(&path, port);
            assert!(theirs.len() >= 4, "{file} port {port}: {theirs:?}");
            assert_eq!(linecut_packets(&path, port), theirs, "{file} port {port}");
        }
    }
}

#[test]
fn a_truncated_capture_is_analysed_up_to_the_cut_and_marked() {
    let dir = temp_dir("truncated");
    let run = run_scenario(&dir);
    let bytes = std::fs::read(run.join("capture.pcap")).unwrap();
    let cut = dir.join("cut.pcap");
    std::fs::write(&cut, &bytes[..bytes.len() * 2 / 3 + 7]).unwrap();
    let (proxy_port, _) = ports(&run);
    let out = linecut()
        .arg("analyze")
        .arg(&cut)
        .args(["--port", &proxy_port.to_string()])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "an incomplete reading is not a clean result"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("reading stopped early") && stderr.contains("truncated"),
        "{stderr}"
    );
    let md = std::fs::read_to_string(dir.join("cut-report/report.md")).unwrap();
    assert!(
        md.contains("Reading stopped early") && md.contains("incomplete"),
        "{md}"
    );
    let not_capture = dir.join("notes.txt");
    std::fs::write(&not_capture, "hello\n").unwrap();
    let out = linecut().arg("analyze").arg(&not_capture).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a capture file"));
}
