//! The client libraries linecut ships programs for (MQTT.js, Paho C, aiomqtt, Paho Go), each in
//! a real run: the program in its own namespace against mosquitto on the run's bridge, its
//! cable pulled long enough for its own keepalive rule to give up, then put back. Each must
//! connect, subscribe, receive the publisher's sequence, give up inside its band (the
//! analyzer's rule for the library, drawn from its source: docs/clients.md), report the
//! connects that failed while the cable was out (at once, in its own kernel: network
//! unreachable), and come back with its subscription. Needs root, and the programs installed by
//! scripts/setup-clients (which scripts/test runs).
//!
//! Lengths: keepalive 2 s everywhere (Paho Go's smallest: K = 1 makes its ticker panic); each
//! cable stays out past the band's upper end plus the library's first retry, and the run goes on
//! past the restore for the library's next retry (its back-off, from docs/clients.md) and a few
//! messages.

mod support;
#[path = "../../analyzer/tests/support/tshark_oracle.rs"]
mod tshark_oracle;

use linecut_analyzer::Verdict;
use linecut_testkit::root;

/// A run of `client` with keepalive 2 s and the cable out from 2 s for `out_s`, `duration_s` in
/// all.
fn scenario(client: &str, out_s: u32, duration_s: u32) -> String {
    format!(
        r#"
name = "{client}-unplugged"
duration = "{duration_s}s"
[broker]
kind = "mosquitto"
[publisher]
topics = ["t/lib"]
interval = "250ms"
[subscriber]
client = "{client}"
client_id = "{client}-sub"
keepalive = "2s"
topics = ["t/#:0"]
[network]
mode = "namespace"
[[fault]]
kind = "unplug"
at = "2s"
for = "{out_s}s"
"#
    )
}

/// The subscriber's own events of one type.
fn reported(dir: &std::path::Path, kind: &str) -> Vec<serde_json::Value> {
    std::fs::read_to_string(dir.join("subscriber.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|e| e["type"] == kind)
        .collect()
}

async fn unplugged(client: &str, library: &str, out_s: u32, duration_s: u32) {
    if !root() {
        eprintln!("skipped: needs root");
        return;
    }
    support::need_mosquitto();
    let (report, dir) =
        support::run_complete("lib", client, &scenario(client, out_s, duration_s)).await;
    tshark_oracle::check_run(&dir, tshark_oracle::broker_port(&dir).unwrap());
    // The program names its library as loaded, and the report says which rule it holds it to.
    let info = reported(&dir, "client_info");
    assert_eq!(info.len(), 1, "{info:?}");
    assert_eq!(info[0]["library"], library, "{info:?}");
    let m = &report.windows[0].subscribers[0];
    assert!(m.reported_by_client, "{m:#?}");
    let band = m
        .client_detect_band
        .as_ref()
        .expect("a band for the library");
    assert_eq!(band.verdict, Verdict::Inside, "{client}: {m:#?}");
    // Connects while the cable was out fail in the device's own kernel, and the program says
    // so; the last attempt succeeds after the restore.
    assert!(
        m.connect_attempts >= 2 && !m.attempt_failures.is_empty(),
        "{client}: {m:#?}"
    );
    assert!(m.reconnect_s.is_some_and(|s| s >= 0.0), "{client}: {m:#?}");
    // Clean session: the broker kept nothing, so it had to subscribe again, and did.
    assert_eq!(m.session_present, Some(false), "{client}: {m:#?}");
    assert_eq!(m.resubscribed, Some(true), "{client}: {m:#?}");
    assert!(m.first_fresh_s.is_some(), "{client}: {m:#?}");
    // The publisher's sequence, decoded from linecut's payload, before and after.
    let d = &report.data[0];
    assert!(d.delivered >= 8 && d.foreign == 0, "{client}: {d:#?}");
    assert!(
        !reported(&dir, "ping_sent").is_empty(),
        "{client} reported no PINGREQ"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// MQTT.js gives up 0.5K..1.5K into the outage (1..3 s) and retries every second.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqttjs_gives_up_in_its_band_and_comes_back() {
    unplugged("mqttjs", "mqtt.js", 5, 11).await;
}

/// Paho C gives up 1.5K..2.5K plus two check spacings into the outage (3..5.4 s); its automatic
/// reconnect waits 1 s, then 2 s, then 4 s (±20 %, noticed on its ~3 s retry check).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paho_c_gives_up_in_its_band_and_comes_back() {
    unplugged("paho-c", "paho.mqtt.c", 10, 22).await;
}

/// aiomqtt gives up K..2K+2 s into the outage (2..6 s); the program retries every 5 s, as
/// aiomqtt's documentation shows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aiomqtt_gives_up_in_its_band_and_comes_back() {
    unplugged("aiomqtt", "aiomqtt", 12, 22).await;
}

/// Paho Go gives up once its PINGREQ has gone unanswered for 10 s (PingTimeout), 10..15 s into
/// the outage with K = 2 s; its automatic reconnect tries at once (and fails while the cable is
/// out: 16 s covers the band's end), then after 1, 2, 4, 8 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paho_go_gives_up_in_its_band_and_comes_back() {
    unplugged("paho-go", "paho.mqtt.golang", 16, 30).await;
}
