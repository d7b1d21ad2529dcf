//! MQTT 5 under faults, end to end against a real mosquitto (installed by the test command):
//! the keepalive the broker grants, and the session the client asks for.

mod support;

use std::path::PathBuf;

async fn run_text(name: &str, text: &str) -> (linecut_analyzer::Report, PathBuf) {
    support::need_mosquitto();
    support::run_complete("mqtt5", name, text).await
}

/// mosquitto's `max_keepalive 10` answers a CONNECT asking for 30 s with Server Keep Alive 10;
/// rumqttc runs on it (MQTT 5.0 §3.2.2.3.14), so a 22 s cut is noticed in 10..20 s, not in the
/// 30..60 s the client asked for, and the report says it asked for 30 and was given 10.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_keep_alive_below_the_clients_changes_the_bands_and_the_report_says_so() {
    let (report, dir) = run_text(
        "server-keepalive",
        r#"
name = "server-keepalive"
duration = "30s"
[broker]
kind = "mosquitto"
max_keepalive = 10
[publisher]
interval = "200ms"
[subscriber]
client_id = "granted"
keepalive = "30s"
mqtt = "5"
reconnect = "immediate"
[[fault]]
kind = "cut"
at = "2s"
for = "22s"
"#,
    )
    .await;
    assert_eq!(report.keepalive_granted_s, Some(10));
    assert_eq!(
        report.keepalive_s,
        Some(10),
        "rumqttc adopts what it is given"
    );
    let m = &report.windows[0].subscribers[0];
    let band = m.client_detect_band.as_ref().unwrap();
    assert_eq!((band.low_s, band.high_s), (10.0, 20.0));
    assert_eq!(band.verdict, linecut_analyzer::Verdict::Inside, "{band:?}");
    let broker = m.broker_detect_band.as_ref().unwrap();
    assert!(broker.rule.contains("floor(1.5K) = 15"), "{}", broker.rule);
    let md = std::fs::read_to_string(dir.join("report.md")).unwrap();
    assert!(
        md.contains("the client asked for 30 s and the broker granted 10 s in its CONNACK (Server Keep Alive)"),
        "{md}"
    );
}
