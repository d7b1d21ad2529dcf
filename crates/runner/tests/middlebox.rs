//! The idle-timeout middlebox end to end: rumqttc in a namespace, mosquitto on the host, and
//! the host's connection tracking between them forgetting a flow idle for 2 s. Needs root.
//!
//! Timing comes from the protocol and the kernel, not from sleeps: rumqttc pings K = 8 s after
//! its CONNACK and every K after, and gives up at the next tick if unanswered; the publisher
//! sends every 4 s, so the flow is idle 4 s between deliveries, twice the timeout, and the
//! broker's next PUBLISH comes after the flow was forgotten and before the client's first
//! ping. A reset answers the segment that provoked it at once (the same softirq on the host),
//! so "at once" is "before any later segment of that connection".

mod support;
#[path = "../../analyzer/tests/support/tshark_oracle.rs"]
mod tshark_oracle;

use linecut_analyzer::{Report, Verdict};
use linecut_testkit::{root, segments, Segment};
use std::path::{Path, PathBuf};

fn scenario(name: &str, keepalive_s: u32, timeout_s: u32, then: &str, seconds: u32) -> String {
    format!(
        r#"
name = "{name}"
duration = "{seconds}s"
[broker]
kind = "mosquitto"
[publisher]
topics = ["t/nat"]
interval = "4s"
[subscriber]
client_id = "nat-sub"
keepalive = "{keepalive_s}s"
topics = ["t/#:0"]
reconnect = "fixed:1s"
[network]
mode = "namespace"
[[fault]]
kind = "idle_timeout"
timeout = "{timeout_s}s"
then = "{then}"
"#
    )
}

async fn run(name: &str, text: &str) -> (Report, PathBuf) {
    support::need_mosquitto();
    let (report, dir) = support::run_complete("middlebox", name, text).await;
    // Every frame the report cites is what tshark reads.
    tshark_oracle::check_run(&dir, tshark_oracle::broker_port(&dir).unwrap());
    (report, dir)
}

/// The first connection's segments after `from`, and the broker's address.
fn first_flow_after(dir: &Path, from: i64) -> Vec<Segment> {
    let port = tshark_oracle::broker_port(dir).unwrap();
    let all = segments(&dir.join("capture.pcap"));
    let first = all
        .iter()
        .find(|s| s.syn && s.dst.port() == port)
        .expect("the subscriber connected")
        .src;
    all.into_iter()
        .filter(|s| s.ts_us >= from && (s.src == first || s.dst == first))
        .collect()
}

/// Drop: the broker's PUBLISH and everything after vanish before the wire, the client's
/// PINGREQ is sent and resent into nothing, and the client gives up in rumqttc's own band.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forgotten_flow_drops_what_either_side_sends_and_the_ping_goes_nowhere() {
    if !root() {
        eprintln!("skipped: needs root");
        return;
    }
    let (report, dir) = run("drop", &scenario("nat-drop", 8, 2, "drop", 18)).await;
    let w = report
        .windows
        .iter()
        .find(|w| w.kind == "idle_timeout")
        .expect("the middlebox forgot the flow");
    let m = &w.subscribers[0];
    assert!(m.connected_at_start, "{m:#?}");
    let after = first_flow_after(&dir, w.outage_start_us);
    let port = tshark_oracle::broker_port(&dir).unwrap();
    assert!(
        after.iter().all(|s| s.src.port() != port),
        "the broker's segments crossed a forgotten flow: {after:?}"
    );
    let sent: Vec<&Segment> = after.iter().filter(|s| s.len > 0).collect();
    assert!(
        sent.iter()
            .any(|a| sent.iter().filter(|b| b.seq == a.seq).count() > 1),
        "the client's PINGREQ was not resent: {after:?}"
    );
    let band = m.client_detect_band.as_ref().expect("a silent outage");
    assert_eq!(band.verdict, Verdict::Inside, "{m:#?}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Reset: the broker's PUBLISH on the forgotten flow is answered with a reset, so the broker
/// drops the client first; the client's PINGREQ is answered with one too, at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forgotten_flow_resets_whichever_side_sends_first() {
    if !root() {
        eprintln!("skipped: needs root");
        return;
    }
    let (report, dir) = run("reset", &scenario("nat-reset", 8, 2, "reset", 14)).await;
    let w = &report.windows[0];
    let m = &w.subscribers[0];
    reset_answers_the_ping(&dir, w.outage_start_us);
    let (client, broker) = (m.client_detect_s.unwrap(), m.broker_detect_s.unwrap());
    assert!(broker < client, "the broker was not reset first: {m:#?}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Remap: the client's PINGREQ leaves on a new port, the broker's kernel resets the connection
/// it does not know, and the broker's own connection lives on until the client's next CONNECT
/// takes it over (unlike `reset`, where the broker's own PUBLISH was reset first).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remapped_flow_is_reset_by_the_broker_which_keeps_its_dead_session() {
    if !root() {
        eprintln!("skipped: needs root");
        return;
    }
    let (report, dir) = run("remap", &scenario("nat-remap", 8, 2, "remap", 12)).await;
    let w = &report.windows[0];
    let m = &w.subscribers[0];
    reset_answers_the_ping(&dir, w.outage_start_us);
    // The client is back 1 s after its reset, well inside mosquitto's 1.5 K = 12 s: the broker
    // never drops the old connection itself, the new CONNECT takes it over.
    assert!(m.client_detect_s.is_some(), "{m:#?}");
    assert_eq!(m.broker_detect_s, None, "{m:#?}");
    assert!(
        m.stories
            .iter()
            .any(|s| s.story == linecut_analyzer::Story::SessionTakeover),
        "{m:#?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// The client's first segment with data after the flow was forgotten is answered by a reset
/// from the broker's address before anything else crosses, and nothing follows it.
fn reset_answers_the_ping(dir: &Path, forgotten_us: i64) {
    let after = first_flow_after(dir, forgotten_us);
    let ping = after
        .iter()
        .position(|s| s.len > 0)
        .expect("the client sent on the forgotten flow");
    let port = tshark_oracle::broker_port(dir).unwrap();
    let next = after.get(ping + 1).expect("an answer");
    assert!(
        next.rst && next.src.port() == port,
        "not a reset: {after:?}"
    );
}

/// A keepalive shorter than the timeout keeps the flow alive: 4 timeouts, nothing forgotten,
/// nothing dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keepalive_shorter_than_the_timeout_keeps_the_flow_alive() {
    if !root() {
        eprintln!("skipped: needs root");
        return;
    }
    // Pings every 2 s against a 3 s timeout; the 4 s publisher alone would not keep it.
    let (report, dir) = run("alive", &scenario("nat-alive", 2, 3, "drop", 12)).await;
    assert!(report.windows.is_empty(), "{:#?}", report.windows);
    let conns = segments(&dir.join("capture.pcap"))
        .iter()
        .filter(|s| s.syn && !s.src.ip().to_string().ends_with(".1"))
        .count();
    assert_eq!(conns, 1, "the client had to reconnect");
    // What the connection cost on the wire is what tshark counts: every frame to or from the
    // broker's port, headers included.
    let port = tshark_oracle::broker_port(&dir).unwrap();
    let lens = std::process::Command::new("tshark")
        .args(["-r"])
        .arg(dir.join("capture.pcap"))
        .args([
            "-Y",
            &format!("tcp.port == {port}"),
            "-T",
            "fields",
            "-e",
            "frame.len",
        ])
        .output()
        .unwrap();
    let lens: Vec<u64> = String::from_utf8_lossy(&lens.stdout)
        .lines()
        .map(|l| l.trim().parse().unwrap())
        .collect();
    let wire = report.data[0].wire.expect("a capture counts the frames");
    assert_eq!(
        (wire.frames, wire.bytes),
        (lens.len() as u64, lens.iter().sum::<u64>())
    );
    let _ = std::fs::remove_dir_all(&dir);
}
