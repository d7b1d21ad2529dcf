//! The delivery verdict end to end against a real mosquitto (installed by the test command):
//! what a QoS 1 subscription with a kept session must get across an outage, and what a clean
//! one may lose.

mod support;

use linecut_analyzer::{Kept, Report};

async fn run_text(name: &str, text: &str) -> Report {
    support::need_mosquitto();
    support::run_complete("delivery", name, text).await.0
}

/// A subscriber at QoS 1 (publisher QoS 1, every 200 ms) behind a 6 s cut with keepalive 2 s:
/// it gives up in 2..4 s and comes back when the line does.
fn qos1_cut(name: &str, session: &str) -> String {
    format!(
        r#"
name = "{name}"
duration = "14s"
[broker]
kind = "mosquitto"
[publisher]
interval = "200ms"
qos = 1
[subscriber]
client_id = "{name}"
keepalive = "2s"
topics = ["linecut/#:1"]
reconnect = "immediate"
{session}
[[fault]]
kind = "cut"
at = "3s"
for = "6s"
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kept_session_at_qos_1_loses_nothing_across_a_cut() {
    let text = qos1_cut(
        "kept",
        "clean_session = false\nresubscribe = \"when-session-lost\"",
    ) + "[expect]\ndelivery = \"as-promised\"\nlost = 0\n";
    let report = run_text("kept", &text).await;
    let d = &report.data[0];
    let v = d.delivery.as_ref().expect("a verdict");
    assert_eq!(
        (v.qos, v.kept, v.lost_promised),
        (1, Kept::AsPromised, 0),
        "{v:#?}"
    );
    assert!(d.late > 0, "the outage's messages came after it: {d:#?}");
    assert_eq!(report.windows[0].subscribers[0].session_present, Some(true));
    let failed: Vec<_> = report.expectations.iter().filter(|x| !x.ok).collect();
    assert!(failed.is_empty(), "{failed:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clean_session_at_qos_1_may_lose_the_outages_messages_and_the_verdict_says_why() {
    let report = run_text("clean", &qos1_cut("clean", "clean_session = true")).await;
    let d = &report.data[0];
    let v = d.delivery.as_ref().expect("a verdict");
    assert!(d.lost > 0, "{d:#?}");
    assert_eq!(v.kept, Kept::AsPromised, "{v:#?}");
    assert_eq!((v.lost_allowed, v.lost_promised), (d.lost, 0), "{v:#?}");
    assert!(v.why.contains("asked for a clean session"), "{}", v.why);
}

/// A kept session at QoS 1 while the subscriber is away (a 12 s cut, keepalive 2 s: mosquitto
/// drops it within 10 s and queues for it), and the broker restarted inside that absence.
fn restart_while_away(name: &str, persistence: bool) -> String {
    format!(
        r#"
name = "{name}"
duration = "20s"
[broker]
kind = "mosquitto"
persistence = {persistence}
[publisher]
interval = "200ms"
qos = 1
[subscriber]
client_id = "{name}"
keepalive = "2s"
topics = ["linecut/#:1"]
clean_session = false
resubscribe = "when-session-lost"
reconnect = "immediate"
[[fault]]
kind = "cut"
at = "2s"
for = "12s"
[[fault]]
kind = "restart"
at = "11s"
for = "1s"
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_restart_without_persistence_loses_the_queued_messages_and_the_verdict_names_the_first(
) {
    let report = run_text(
        "restart-volatile",
        &restart_while_away("restart-volatile", false),
    )
    .await;
    assert_eq!(report.windows.len(), 2, "the cut and the restart");
    assert_eq!(report.windows[1].kind, "restart");
    let v = report.data[0].delivery.as_ref().expect("a verdict");
    assert_eq!(v.kept, Kept::Broken, "{v:#?}");
    let first = v.first_missing.as_ref().expect("named");
    assert_eq!(first.session_present, Some(false), "{v:#?}");
    // Queued from the drop (at most 10 s after the cut began at 2 s) until the restart.
    assert!((2.0..=12.0).contains(&first.published_s), "{first:?}");
    assert!(v.why.contains("asked to keep its session"), "{}", v.why);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_restart_with_persistence_keeps_the_queued_messages() {
    let report = run_text(
        "restart-persistent",
        &restart_while_away("restart-persistent", true),
    )
    .await;
    let v = report.data[0].delivery.as_ref().expect("a verdict");
    assert_eq!((v.kept, v.lost_promised), (Kept::AsPromised, 0), "{v:#?}");
    assert_eq!(report.data[0].lost, 0, "{:#?}", report.data[0]);
}

/// mosquitto holds at most `max_queued_messages` for a client that is away, the messages still
/// in flight to it included: with 5, the 20 messages in flight when it dropped the client fill
/// the session, and everything published after the drop is lost as configured, not broken.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_past_the_brokers_queue_limit_are_lost_as_configured() {
    let text = restart_while_away("queue-limit", false)
        .replace("persistence = false", "max_queued_messages = 5")
        .replace(
            "[[fault]]\nkind = \"restart\"\nat = \"11s\"\nfor = \"1s\"\n",
            "",
        );
    assert!(!text.contains("restart\""), "{text}");
    let report = run_text("queue-limit", &text).await;
    let v = report.data[0].delivery.as_ref().expect("a verdict");
    assert!(report.data[0].lost > 0, "{:#?}", report.data[0]);
    assert_eq!((v.kept, v.lost_promised), (Kept::AsPromised, 0), "{v:#?}");
    assert!(v.why.contains("max_queued_messages = 5"), "{}", v.why);
}
