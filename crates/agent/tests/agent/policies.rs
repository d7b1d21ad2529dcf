//! Re-subscribe and reconnect policies do what they say.

use crate::rig::*;
use linecut_agent::SubscriberOptions;
use linecut_events::{EventKind, SubscribeReason};
use linecut_model::{ReconnectPolicy, ResubscribePolicy};
use std::time::Duration;

/// Runs a subscriber with `policy` and clean session on, resets its connection, and returns
/// (subscribe reasons, whether data flowed after the reconnect).
async fn after_reset(
    policy: ResubscribePolicy,
    clean_session: bool,
) -> (Vec<SubscribeReason>, bool) {
    let proxy = Proxied::start().await;
    let topic = unique("t/policy");
    let mut options = subscriber(&proxy, &format!("{topic}:1"), 5);
    options.settings.resubscribe = policy;
    options.settings.clean_session = clean_session;
    let sub = start_subscriber(options);
    wait_for(&sub.events, "SUBACK", |e| count(e, "suback") == 1).await;
    let publisher = start_publisher(publisher(&topic, 50, 1));
    wait_for(&sub.events, "a message", |e| !messages(e).is_empty()).await;
    proxy.fault("reset").await;
    let events = wait_for(&sub.events, "the reconnect", |e| count(e, "connack") >= 2).await;
    let reconnected_at = events
        .iter()
        .filter(|e| matches!(e.kind, EventKind::Connack(_)))
        .nth(1)
        .unwrap()
        .ts_us;
    // Watch for data published well after the reconnect. If none arrives within this window
    // while the publisher sends every 50 ms, the subscription is gone.
    let flowed = tokio::time::timeout(Duration::from_secs(2), async {
        wait_for(&sub.events, "fresh data", |e| {
            messages(e)
                .iter()
                .any(|m| m.pub_ts_us.unwrap_or(0) > reconnected_at + 200_000)
        })
        .await
    })
    .await
    .is_ok();
    publisher.stop().await;
    let (_, events) = sub.stop().await;
    let reasons = events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::SubscribeSent(s) => Some(s.reason),
            _ => None,
        })
        .collect();
    (reasons, flowed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_always_resubscribes_on_every_connack_and_data_flows_again() {
    let (reasons, flowed) = after_reset(ResubscribePolicy::Always, true).await;
    assert_eq!(
        reasons,
        vec![SubscribeReason::First, SubscribeReason::Always]
    );
    assert!(flowed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_never_with_a_clean_session_loses_the_subscription() {
    let (reasons, flowed) = after_reset(ResubscribePolicy::Never, true).await;
    assert_eq!(reasons, vec![SubscribeReason::First]);
    assert!(
        !flowed,
        "a clean session forgets subscriptions; nothing should arrive"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_when_session_lost_resubscribes_when_connack_says_no_session() {
    let (reasons, flowed) = after_reset(ResubscribePolicy::WhenSessionLost, true).await;
    assert_eq!(
        reasons,
        vec![SubscribeReason::First, SubscribeReason::SessionLost]
    );
    assert!(flowed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exponential_back_off_delays_grow_as_configured() {
    // A port nothing listens on: every attempt is refused at once, so only the policy spaces them.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = dead.local_addr().unwrap();
    drop(dead);
    let mut options = SubscriberOptions::new(addr.to_string(), unique("backoff"));
    options.settings.reconnect = ReconnectPolicy::parse("exponential:min=100ms,max=400ms").unwrap();
    let sub = start_subscriber(options);
    let events = wait_for(&sub.events, "five attempts", |e| {
        count(e, "connect_attempt") >= 5
    })
    .await;
    sub.stop().await;
    let attempts: Vec<(i64, u64)> = events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::ConnectAttempt(a) => Some((e.ts_us, a.delay_ms)),
            _ => None,
        })
        .take(5)
        .collect();
    let delays: Vec<u64> = attempts.iter().map(|a| a.1).collect();
    assert_eq!(delays, vec![0, 100, 200, 400, 400]);
    for pair in attempts.windows(2) {
        let gap = pair[1].0 - pair[0].0;
        let want = pair[1].1 as i64 * 1000;
        assert!(
            gap >= want && gap < want + 300_000,
            "gap {gap} µs for a {want} µs delay"
        );
    }
    let causes: Vec<_> = events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Disconnected(d) => Some(d.cause),
            _ => None,
        })
        .collect();
    assert!(
        causes
            .iter()
            .take(4)
            .all(|c| *c == linecut_events::DisconnectCause::Refused),
        "{causes:?}"
    );
}
