//! The subscriber against a real broker: delivery, outage detection, reconnect, ride-through.

use crate::rig::*;
use linecut_events::{DisconnectCause, EventKind};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_arrive_with_sequence_and_timestamps_intact() {
    let proxy = Proxied::start().await;
    let topic = unique("t/intact");
    let sub = start_subscriber(subscriber(&proxy, &format!("{topic}:1"), 2));
    wait_for(&sub.events, "SUBACK", |e| count(e, "suback") == 1).await;
    let publisher = start_publisher(publisher(&topic, 20, 1));
    wait_for(&sub.events, "20 messages", |e| messages(e).len() >= 20).await;
    let (pub_stats, pub_events) = publisher.stop().await;
    let (_, events) = sub.stop().await;
    let received: Vec<_> = messages(&events)
        .into_iter()
        .map(|m| (m.seq, m.pub_ts_us))
        .collect();
    let published: Vec<_> = pub_events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Published(p) => Some((Some(p.seq), Some(e.ts_us))),
            _ => None,
        })
        .collect();
    assert!(pub_stats.published >= 20);
    // Every received message is one that was published, in order, with its timestamp intact.
    assert_eq!(received[..], published[..received.len()]);
    let seqs: Vec<u64> = received.iter().map(|r| r.0.unwrap()).collect();
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>());
    for m in messages(&events) {
        let ts = events
            .iter()
            .find(|e| matches!(&e.kind, EventKind::Message(x) if x == m))
            .unwrap()
            .ts_us;
        let delay = ts - m.pub_ts_us.unwrap();
        assert!(
            (0..2_000_000).contains(&delay),
            "delivered {delay} µs after publishing"
        );
        assert_eq!((m.qos, m.foreign), (1, false));
    }
    // QoS 1 publishes were acknowledged and matched to their sequence numbers.
    assert!(pub_events
        .iter()
        .any(|e| matches!(&e.kind, EventKind::Puback(a) if a.seq == Some(1))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_longer_than_2k_is_detected_between_k_and_2k_then_the_subscriber_comes_back() {
    const K: u16 = 1;
    let proxy = Proxied::start().await;
    let topic = unique("t/cut");
    let sub = start_subscriber(subscriber(&proxy, &topic, K));
    wait_for(&sub.events, "SUBACK", |e| count(e, "suback") == 1).await;
    let publisher = start_publisher(publisher(&topic, 100, 0));
    wait_for(&sub.events, "a message", |e| !messages(e).is_empty()).await;

    let (cut, cut_start) = proxy.fault("cut:for=3s").await;
    let events = wait_for(&sub.events, "the keepalive timeout", |e| {
        count(e, "disconnected") >= 1
    })
    .await;
    let (detected_at, cause) = events
        .iter()
        .find_map(|e| match &e.kind {
            EventKind::Disconnected(d) => Some((e.ts_us, d.cause)),
            _ => None,
        })
        .unwrap();
    assert_eq!(cause, DisconnectCause::KeepaliveTimeout);
    let (low, high) = detection_band(K);
    let took = detected_at - cut_start;
    assert!(
        (low..=high).contains(&took),
        "detected {took} µs after the cut; band {low}..{high}"
    );

    // After the cut: CONNACK again, SUBSCRIBE again (policy always), fresh data flows.
    let _ = cut;
    let events = wait_for(&sub.events, "fresh data after the cut", |e| {
        let cut_end = cut_start + 3_000_000;
        count(e, "connack") >= 2
            && messages(e)
                .iter()
                .any(|m| m.pub_ts_us.unwrap_or(0) > cut_end)
    })
    .await;
    let second_connack = events
        .iter()
        .filter(|e| matches!(e.kind, EventKind::Connack(_)))
        .nth(1)
        .unwrap()
        .ts_us;
    assert!(
        second_connack >= cut_start + 3_000_000 - 50_000,
        "reconnected only once the cut ended"
    );
    assert!(count(&events, "subscribe_sent") >= 2);
    publisher.stop().await;
    sub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_shorter_than_k_causes_no_disconnect_and_no_loss_only_lateness() {
    const K: u16 = 2;
    let proxy = Proxied::start().await;
    let topic = unique("t/blip");
    let sub = start_subscriber(subscriber(&proxy, &topic, K));
    wait_for(&sub.events, "SUBACK", |e| count(e, "suback") == 1).await;
    let publisher = start_publisher(publisher(&topic, 50, 0));
    wait_for(&sub.events, "a message", |e| !messages(e).is_empty()).await;
    let (_, cut_start) = proxy.fault("cut:for=500ms").await;
    let cut_end = cut_start + 500_000;
    wait_for(&sub.events, "data published after the blip", |e| {
        messages(e)
            .iter()
            .any(|m| m.pub_ts_us.unwrap_or(0) > cut_end + 500_000)
    })
    .await;
    let (_, pub_events) = publisher.stop().await;
    let (stats, events) = sub.stop().await;
    assert_eq!(stats.disconnects, 0, "rode through without reconnecting");
    assert_eq!(count(&events, "connack"), 1);
    let seqs: Vec<u64> = messages(&events).iter().filter_map(|m| m.seq).collect();
    let first = seqs[0];
    assert_eq!(
        seqs,
        (first..first + seqs.len() as u64).collect::<Vec<_>>(),
        "nothing lost"
    );
    // Messages published during the blip arrived, late.
    let late = messages(&events)
        .iter()
        .zip(
            events
                .iter()
                .filter(|e| matches!(e.kind, EventKind::Message(_))),
        )
        .filter(|(m, e)| {
            let published = m.pub_ts_us.unwrap();
            (cut_start..cut_end).contains(&published) && e.ts_us >= cut_end - 20_000
        })
        .count();
    assert!(late >= 5, "only {late} late messages");
    assert!(pub_events.len() > seqs.len() / 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_is_reported_as_connection_reset_and_a_foreign_payload_is_counted() {
    let proxy = Proxied::start().await;
    let topic = unique("t/reset");
    let sub = start_subscriber(subscriber(&proxy, &topic, 5));
    wait_for(&sub.events, "SUBACK", |e| count(e, "suback") == 1).await;

    // A message in someone else's format is logged as foreign, not dropped.
    let mut options =
        rumqttc::MqttOptions::new(unique("raw"), broker().ip().to_string(), broker().port());
    options.set_keep_alive(std::time::Duration::from_secs(5));
    let (client, mut eventloop) = rumqttc::AsyncClient::new(options, 10);
    client
        .publish(&topic, rumqttc::QoS::AtLeastOnce, false, "1419926642, 1767")
        .await
        .unwrap();
    let driver = tokio::spawn(async move { while eventloop.poll().await.is_ok() {} });
    let events = wait_for(&sub.events, "the foreign message", |e| {
        !messages(e).is_empty()
    })
    .await;
    let m = messages(&events)[0];
    assert!(m.foreign && m.seq.is_none() && m.payload_len == 16);
    driver.abort();

    proxy.fault("reset").await;
    let events = wait_for(&sub.events, "the reset", |e| count(e, "disconnected") >= 1).await;
    let cause = events.iter().find_map(|e| match &e.kind {
        EventKind::Disconnected(d) => Some(d.cause),
        _ => None,
    });
    assert_eq!(cause, Some(DisconnectCause::ConnectionReset));
    let (stats, _) = sub.stop().await;
    assert_eq!(stats.foreign, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt5_agents_exchange_stamped_messages_through_the_proxy_and_classify_a_reset() {
    use linecut_model::Protocol;
    let proxy = Proxied::start_to(broker_v5()).await;
    let topic = unique("t/v5");
    let mut options = subscriber(&proxy, &format!("{topic}:1"), 5);
    options.settings.protocol = Protocol::V5;
    let sub = start_subscriber(options);
    let events = wait_for(&sub.events, "SUBACK", |e| count(e, "suback") == 1).await;
    let granted = events.iter().find_map(|e| match &e.kind {
        EventKind::Suback(s) => Some(s.codes.clone()),
        _ => None,
    });
    assert_eq!(
        granted,
        Some(vec![1]),
        "QoS 1 granted, read off the wire as MQTT 5"
    );
    let mut publisher_options = publisher(&topic, 30, 1);
    publisher_options.broker = broker_v5().to_string();
    publisher_options.settings.protocol = Protocol::V5;
    publisher_options.settings.keepalive_s = 5;
    let publisher = start_publisher(publisher_options);
    let events = wait_for(&sub.events, "5 messages", |e| messages(e).len() >= 5).await;
    let seqs: Vec<u64> = messages(&events).iter().filter_map(|m| m.seq).collect();
    assert_eq!(seqs[..5], [1, 2, 3, 4, 5]);

    proxy.fault("reset").await;
    let events = wait_for(&sub.events, "the reconnect", |e| count(e, "connack") >= 2).await;
    let cause = events.iter().find_map(|e| match &e.kind {
        EventKind::Disconnected(d) => Some(d.cause),
        _ => None,
    });
    assert_eq!(cause, Some(DisconnectCause::ConnectionReset));
    publisher.stop().await;
    sub.stop().await;
}
