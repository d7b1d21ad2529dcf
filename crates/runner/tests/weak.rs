//! A weak link end to end: rumqttc in a namespace whose frames cross linecut's wire, delayed
//! with jitter, some sent out of order, lost in bursts and duplicated, with QoS 1 data flowing.
//! TCP underneath repairs all of it: every message arrives, once, in order, late; the capture
//! shows the repairs (duplicated and retransmitted segments). Needs root.

mod support;
#[path = "../../analyzer/tests/support/tshark_oracle.rs"]
mod tshark_oracle;

use linecut_testkit::{root, segments};

const WEAK: &str = r#"
name = "weak-link"
duration = "16s"
seed = 42
[broker]
kind = "mosquitto"
[publisher]
topics = ["t/weak"]
interval = "50ms"
qos = 1
[subscriber]
client_id = "weak-sub"
# Long enough that the link's stalls (a burst of losses backs TCP off for a second or two)
# are not taken for an outage: this test is about what TCP repairs.
keepalive = "15s"
topics = ["t/#:1"]
[network]
mode = "namespace"
[[fault]]
kind = "latency"
at = "2s"
for = "10s"
delay = "30ms"
jitter = "10ms"
reorder = 0.1
[[fault]]
kind = "burst_loss"
at = "2s"
for = "10s"
p = 0.02
r = 0.4
[[fault]]
kind = "duplicate"
at = "2s"
for = "10s"
probability = 0.05
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_repairs_a_weak_link_and_the_capture_shows_the_repairs() {
    if !root() {
        eprintln!("skipped: needs root");
        return;
    }
    support::need_mosquitto();
    let (report, dir) = support::run_complete("weak", "weak", WEAK).await;
    tshark_oracle::check_run(&dir, tshark_oracle::broker_port(&dir).unwrap());
    let d = &report.data[0];
    assert!(d.published >= 250, "{d:#?}");
    // The analysis does not count as lost a message still in flight when the run stopped
    // (one published in the last round trip); every other one arrived.
    assert_eq!((d.lost, d.duplicates, d.out_of_order), (0, 0, 0), "{d:#?}");
    assert!(d.delivered + 2 >= d.published, "{d:#?}");
    assert_eq!(d.reconnects, 0, "a weak link is not an outage here: {d:#?}");
    // On the wire: segments the device received twice (the link's duplicates, same sequence
    // number and length from the broker) and the device's own retransmissions of what the
    // link lost.
    let port = tshark_oracle::broker_port(&dir).unwrap();
    let all = segments(&dir.join("capture.pcap"));
    let from_broker: Vec<_> = all
        .iter()
        .filter(|s| s.src.port() == port && s.len > 0)
        .collect();
    let twice = from_broker
        .windows(2)
        .filter(|w| w[0].seq == w[1].seq && w[0].len == w[1].len)
        .count();
    assert!(twice > 0, "no duplicate reached the device");
    let meta = support::read_json(&dir.join("meta.json"));
    assert_eq!(meta["network"]["wire_seed"], 42, "{meta}");
    let _ = std::fs::remove_dir_all(&dir);
}
