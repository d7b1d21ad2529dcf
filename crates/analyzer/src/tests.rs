//! Analyzer tests on hand-built event logs with known answers: every story and the metrics
//! behind it, expectations, determinism, and bad input.

use super::*;
use linecut_events::*;

const S: i64 = 1_000_000;
const T0: i64 = 1_700_000_000 * S;

fn ev(t_s: f64, source: Source, kind: EventKind) -> Event {
    Event {
        ts_us: T0 + (t_s * S as f64) as i64,
        source,
        kind,
    }
}

fn meta(expect: &[(&str, &str)]) -> RunMeta {
    RunMeta {
        linecut_version: "0.1.0".into(),
        scenario: "unit".into(),
        broker: "mosquitto version 2.0.11".into(),
        subscriber_client: "rumqttc 0.25".into(),
        status: RunStatus::Complete,
        experiment_start_us: Some(T0),
        expectations: expectations(expect),
        ..RunMeta::default()
    }
}

fn expectations(expect: &[(&str, &str)]) -> std::collections::BTreeMap<String, String> {
    expect
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn proxy(t: f64, kind: EventKind) -> Event {
    ev(t, Source::Proxy, kind)
}
fn sub(t: f64, kind: EventKind) -> Event {
    ev(t, Source::Subscriber, kind)
}

fn connect(t: f64, conn: u64) -> Vec<Event> {
    vec![
        proxy(
            t,
            EventKind::ConnOpened(ConnOpened {
                conn,
                client_addr: "127.0.0.1:5".into(),
                listen_addr: "127.0.0.1:6".into(),
            }),
        ),
        proxy(
            t + 0.001,
            EventKind::MqttPacket(MqttPacket {
                conn,
                dir: Direction::Up,
                packet_type: "CONNECT".into(),
                len: 20,
                client_id: Some("s".into()),
                keepalive_s: Some(2),
                ..Default::default()
            }),
        ),
    ]
}

fn leg(t: f64, conn: u64, leg: Leg, by: ClosedBy, how: CloseHow) -> Event {
    proxy(
        t,
        EventKind::LegClosed(LegClosed {
            conn,
            leg,
            by,
            how,
            reason: None,
        }),
    )
}

fn fault(start: f64, end: f64) -> Vec<Event> {
    vec![
        proxy(
            start,
            EventKind::FaultStarted(FaultStarted {
                fault: 1,
                spec: "cut:at=10s,for=10s".into(),
                kind: "cut".into(),
                scheduled_us: None,
                lateness_us: None,
                applied: Vec::new(),
            }),
        ),
        proxy(
            end,
            EventKind::FaultEnded(FaultEnded {
                fault: 1,
                kind: "cut".into(),
                scheduled_us: None,
                lateness_us: None,
                applied: Vec::new(),
            }),
        ),
    ]
}

fn connack(t: f64) -> Event {
    sub(
        t,
        EventKind::Connack(Connack {
            client: "s".into(),
            code: 0,
            session_present: false,
        }),
    )
}
fn subscribed(t: f64) -> Vec<Event> {
    vec![
        sub(
            t,
            EventKind::SubscribeSent(SubscribeSent {
                client: "s".into(),
                topics: vec![TopicFilter {
                    filter: "t/#".into(),
                    qos: Some(0),
                }],
                reason: SubscribeReason::Always,
            }),
        ),
        sub(
            t + 0.01,
            EventKind::Suback(Suback {
                client: "s".into(),
                packet_id: 1,
                codes: vec![0],
            }),
        ),
    ]
}
fn message(t: f64, seq: u64, pub_t: f64) -> Event {
    sub(
        t,
        EventKind::Message(Message {
            client: "s".into(),
            topic: "t/1".into(),
            qos: 0,
            dup: false,
            retain: false,
            packet_id: None,
            payload_len: 64,
            seq: Some(seq),
            pub_ts_us: Some(T0 + (pub_t * S as f64) as i64),
            foreign: false,
        }),
    )
}
fn published(t: f64, seq: u64) -> Event {
    ev(
        t,
        Source::Publisher,
        EventKind::Published(Published {
            client: "p".into(),
            topic: "t/1".into(),
            seq,
            qos: 0,
            retain: false,
            payload_len: 64,
        }),
    )
}
fn disconnected(t: f64, cause: DisconnectCause) -> Event {
    sub(
        t,
        EventKind::Disconnected(Disconnected {
            client: "s".into(),
            cause,
            error: "x".into(),
        }),
    )
}

/// The classic run: K = 2 s, a cut from 10 s to 20 s, the client gives up at 13 s, comes back
/// at 20.1 s; one message a second.
fn classic() -> Run {
    classic_events().compact()
}

fn classic_events() -> Run {
    let mut proxy_events = connect(0.0, 1);
    proxy_events.extend(fault(10.0, 20.0));
    proxy_events.extend(connect(20.05, 2));
    let mut s = vec![connack(0.01)];
    s.extend(subscribed(0.02));
    for seq in 1..=30u64 {
        let p = seq as f64;
        // Messages published during the cut (10..20) are lost; the rest arrive 5 ms later.
        if !(10.0..20.5).contains(&p) {
            s.push(message(p + 0.005, seq, p));
        }
    }
    s.push(disconnected(13.0, DisconnectCause::KeepaliveTimeout));
    s.push(connack(20.1));
    s.extend(subscribed(20.2));
    s.push(disconnected(40.0, DisconnectCause::Requested));
    s.sort_by_key(|e| e.ts_us);
    Run {
        meta: meta(&[
            ("client_detect_s", "2..4"),
            ("lost", "0"),
            ("reconnects", "1"),
        ]),
        proxy: proxy_events,
        subscriber: s,
        publisher: (1..=30).map(|seq| published(seq as f64, seq)).collect(),
        ..Run::default()
    }
}

#[test]
fn client_timeout_is_measured_against_its_band_with_every_recovery_metric() {
    let r = analyze(&classic());
    assert_eq!(r.keepalive_s, Some(2));
    let w = &r.windows[0];
    assert_eq!(
        (w.outage_start_us, w.outage_end_us),
        (T0 + 10 * S, T0 + 20 * S)
    );
    let m = &w.subscribers[0];
    assert_eq!(m.client_detect_s, Some(3.0));
    assert_eq!(
        m.client_detect_how,
        Some(DetectHow::Cause(DisconnectCause::KeepaliveTimeout))
    );
    let band = m.client_detect_band.as_ref().unwrap();
    assert_eq!(
        (band.low_s, band.high_s, band.verdict),
        (2.0, 4.0, Verdict::Inside)
    );
    assert_eq!(m.reconnect_s, Some(0.1));
    assert_eq!(m.resubscribe_s, Some(0.21));
    assert_eq!(m.first_fresh_s, Some(1.005), "seq 21, published at 21 s");
    assert_eq!(
        (m.session_present, m.resubscribed),
        (Some(false), Some(true))
    );
    assert!(m.told(Story::PingTimeout));
    assert!(!m.told(Story::RodeThrough));
    let d = &r.data[0];
    assert_eq!(
        (d.published, d.lost, d.duplicates, d.reconnects),
        (30, 11, 0, 1)
    );
    assert_eq!(
        d.data_gap_publish_s,
        Some(12.0),
        "the hole: seq 9 then seq 21"
    );
}

#[test]
fn expectations_pass_and_fail_with_the_values_behind_them() {
    let r = analyze(&classic());
    let by: BTreeMap<&str, &ExpectationResult> = r
        .expectations
        .iter()
        .map(|e| (e.metric.as_str(), e))
        .collect();
    assert!(by["client_detect_s"].ok);
    assert!(by["reconnects"].ok);
    assert!(!by["lost"].ok, "11 messages were lost");
    assert_eq!(by["lost"].values["s"], Some(11.0));
    assert!(!r.expectations_hold());
    let mut run = classic();
    run.meta.expectations = expectations(&[("wobble", "1")]);
    let r = analyze(&run);
    assert!(!r.expectations[0].ok);
    assert!(r.expectations[0]
        .problem
        .as_deref()
        .unwrap()
        .contains("not a metric"));
}

#[test]
fn a_client_that_never_notices_rode_through_and_fails_a_detection_expectation() {
    let mut run = classic();
    run.subscriber.retain(|e| {
        !matches!(&e.kind, EventKind::Disconnected(d) if d.cause != DisconnectCause::Requested)
            && !matches!(&e.kind, EventKind::Connack(_) | EventKind::SubscribeSent(_) | EventKind::Suback(_) if e.ts_us > T0 + S)
    });
    run.proxy.retain(|e| e.ts_us < T0 + 20 * S + 10_000);
    let r = analyze(&run);
    let m = &r.windows[0].subscribers[0];
    assert_eq!(
        (m.client_detect_s, m.broker_detect_s, m.reconnect_s),
        (None, None, None)
    );
    let told: Vec<Story> = m.stories.iter().map(|t| t.story).collect();
    assert_eq!(told, vec![Story::RodeThrough]);
    // A 10 s outage outlasts the 2–4 s band: "never" violates it.
    let band = m.client_detect_band.as_ref().unwrap();
    assert_eq!(band.verdict, Verdict::Outside, "{band:?}");
    let detect = r
        .expectations
        .iter()
        .find(|e| e.metric == "client_detect_s")
        .unwrap();
    assert!(!detect.ok, "never is not within 2..4");
}

/// The classic run with nobody noticing anything and the cut shortened to `length_s`.
fn unnoticed_cut(length_s: f64) -> Run {
    let mut run = classic();
    run.subscriber.retain(|e| {
        !matches!(&e.kind, EventKind::Disconnected(d) if d.cause != DisconnectCause::Requested)
            && !matches!(&e.kind, EventKind::Connack(_) | EventKind::SubscribeSent(_) | EventKind::Suback(_) if e.ts_us > T0 + S)
    });
    run.proxy
        .retain(|e| e.ts_us < T0 + 20 * S + 10_000 || matches!(e.kind, EventKind::FaultEnded(_)));
    for e in &mut run.proxy {
        if matches!(e.kind, EventKind::FaultEnded(_)) {
            e.ts_us = T0 + 10 * S + (length_s * S as f64) as i64;
        }
    }
    run
}

#[test]
fn a_never_is_judged_by_how_long_the_outage_lasted() {
    // K = 2 s, rule 2–4 s. A 1.5 s cut: never is what the rule predicts.
    let m = &analyze(&unnoticed_cut(1.5)).windows[0].subscribers[0];
    let band = m.client_detect_band.as_ref().unwrap();
    assert_eq!(band.verdict, Verdict::Inside);
    assert!(band.why.contains("as the rule predicts"), "{}", band.why);
    // A 3 s cut: noticed or not depends on the phase, so never is not decidable.
    let m = &analyze(&unnoticed_cut(3.0)).windows[0].subscribers[0];
    let band = m.client_detect_band.as_ref().unwrap();
    assert_eq!(band.verdict, Verdict::NotDecidable);
    assert!(band.why.contains("never is allowed"), "{}", band.why);
    let md = markdown::render(&analyze(&unnoticed_cut(3.0)));
    assert!(md.contains("2.0–4.0 s ±0.1 s: not decidable"), "{md}");
}

/// paho 2.1 reports one keepalive timeout twice, 0.2 ms apart: one give-up, no failed attempt.
#[test]
fn a_disconnect_reported_twice_is_one_give_up_and_no_failed_attempt() {
    let mut run = classic_events();
    run.subscriber
        .push(disconnected(13.0002, DisconnectCause::KeepaliveTimeout));
    run.subscriber.sort_by_key(|e| e.ts_us);
    let r = analyze(&run.compact());
    let m = &r.windows[0].subscribers[0];
    assert_eq!(m.client_detect_s, Some(3.0));
    assert!(m.attempt_failures.is_empty(), "{:?}", m.attempt_failures);
    let gives_up = r
        .timeline
        .iter()
        .filter(|e| e.what.starts_with("gives up the connection"))
        .count();
    assert_eq!(gives_up, 1, "{:#?}", r.timeline);
}

/// A reject rule answers the device's segments with resets in the broker's name: the capture's
/// RST toward the device during the rule is the network's close, and the broker, which heard
/// nothing, did not give up.
#[test]
fn a_reject_rules_reset_is_the_networks_not_the_brokers() {
    let mut run = classic_events();
    run.proxy.retain(|e| {
        !matches!(
            e.kind,
            EventKind::FaultStarted(_) | EventKind::FaultEnded(_)
        )
    });
    run.proxy.push(proxy(
        10.0,
        EventKind::FaultStarted(FaultStarted {
            fault: 1,
            spec: "reject:at=10s,for=10s,dir=up".into(),
            kind: "reject".into(),
            scheduled_us: None,
            lateness_us: None,
            applied: vec![Applied {
                client: "s".into(),
                ts_us: T0 + 10 * S,
            }],
        }),
    ));
    run.proxy
        .push(leg(10.5, 1, Leg::Upstream, ClosedBy::Peer, CloseHow::Rst));
    run.proxy.push(proxy(
        20.0,
        EventKind::FaultEnded(FaultEnded {
            fault: 1,
            kind: "reject".into(),
            scheduled_us: None,
            lateness_us: None,
            applied: Vec::new(),
        }),
    ));
    run.proxy.sort_by_key(|e| e.ts_us);
    let mut run = run.compact();
    crate::middlebox::reject_resets(&mut run);
    let closes: Vec<&LegClosed> = run
        .proxy
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::LegClosed(l) => Some(l),
            _ => None,
        })
        .collect();
    assert_eq!(closes.len(), 1);
    assert_eq!(
        (closes[0].leg, closes[0].by),
        (Leg::Client, ClosedBy::Proxy)
    );
    assert!(closes[0]
        .reason
        .as_deref()
        .is_some_and(|r| r.contains("reject rule")));
}

/// mosquitto timed the client out inside a short cut (its 1.5K counts from the client's last
/// packet) and its reset reached the client: the client learned of the outage from the broker,
/// sooner than its own rule would, and its band is not held against it.
#[test]
fn a_client_told_by_the_brokers_close_is_not_judged_by_its_own_keepalive_rule() {
    let mut run = classic_events();
    run.subscriber.retain(
        |e| !matches!(&e.kind, EventKind::Disconnected(d) if d.cause == DisconnectCause::KeepaliveTimeout),
    );
    run.subscriber
        .push(disconnected(11.0, DisconnectCause::ConnectionReset));
    run.subscriber.sort_by_key(|e| e.ts_us);
    run.proxy
        .push(leg(10.8, 1, Leg::Upstream, ClosedBy::Peer, CloseHow::Rst));
    run.proxy.sort_by_key(|e| e.ts_us);
    let r = analyze(&run.compact());
    let m = &r.windows[0].subscribers[0];
    assert_eq!(m.client_detect_s, Some(1.0), "{m:#?}");
    assert_eq!(m.broker_detect_s, Some(0.8), "{m:#?}");
    let band = m.client_detect_band.as_ref().unwrap();
    assert_eq!(band.verdict, Verdict::NotDecidable, "{band:?}");
    assert!(
        band.why.contains("the broker dropped the connection first"),
        "{band:?}"
    );
}

/// rumqttd restarts its keepalive timer whenever it writes to the client, so while messages
/// are published to a silent subscriber it never drops it. A real link drops the broker's
/// segments before the capture sees them; the publisher's record still shows the broker had
/// them to write, so the "never" is rumqttd's own rule, not a miss.
#[test]
fn rumqttd_writing_the_publishers_messages_to_a_silent_client_is_known_from_the_publisher() {
    let mut run = classic_events();
    run.meta.broker = "rumqttd 0.20 (embedded)".into();
    let r = analyze(&run.compact());
    let m = &r.windows[0].subscribers[0];
    assert_eq!(m.broker_detect_s, None);
    let band = m.broker_detect_band.as_ref().unwrap();
    assert_eq!(band.verdict, Verdict::Inside, "{band:?}");
    assert!(band.why.contains("departs from the spec"), "{band:?}");
}

/// aiomqtt writes SUBSCRIBE right after CONNECT when it reconnects, before the CONNACK reaches
/// it: a subscription on the new connection all the same, which the attempt's report shows.
#[test]
fn a_subscribe_written_before_the_connack_arrives_is_a_resubscription() {
    let mut run = classic_events();
    // Replace the way back: attempt at 20.05, SUBSCRIBE at 20.06, CONNACK at 20.1, SUBACK after.
    run.subscriber
        .retain(|e| e.ts_us < T0 + 20 * S || e.ts_us >= T0 + 21 * S);
    run.subscriber.push(sub(
        20.05,
        EventKind::ConnectAttempt(ConnectAttempt {
            client: "s".into(),
            attempt: 2,
            broker: "b".into(),
            delay_ms: 0,
        }),
    ));
    let mut back = subscribed(20.06);
    back[1].ts_us = T0 + (20.2 * S as f64) as i64;
    run.subscriber.extend(back);
    run.subscriber.push(connack(20.1));
    run.subscriber.sort_by_key(|e| e.ts_us);
    let r = analyze(&run.compact());
    let m = &r.windows[0].subscribers[0];
    assert_eq!(m.reconnect_s, Some(0.1));
    assert_eq!(m.resubscribed, Some(true), "{m:#?}");
}

/// The broker dropped the connection 0.4 s before the cut began: the fault cannot have been
/// detected on it, and the drop is a finding of its own.
#[test]
fn a_drop_before_the_window_is_no_detection_and_is_reported_as_unexpected() {
    let mut run = classic_events();
    run.proxy
        .push(leg(9.6, 1, Leg::Upstream, ClosedBy::Peer, CloseHow::Fin));
    run.proxy.sort_by_key(|e| e.ts_us);
    run.subscriber.retain(|e| {
        !matches!(&e.kind, EventKind::Disconnected(d) if d.cause == DisconnectCause::KeepaliveTimeout)
    });
    run.subscriber
        .push(disconnected(9.601, DisconnectCause::ConnectionLost));
    run.subscriber.sort_by_key(|e| e.ts_us);
    let r = analyze(&run.compact());
    let m = &r.windows[0].subscribers[0];
    assert!(!m.connected_at_start);
    assert_eq!((m.client_detect_s, m.broker_detect_s), (None, None));
    assert!(
        m.client_detect_band.is_none(),
        "no band for a connection already gone"
    );
    assert!(m.told(Story::DownBeforeFault), "{:?}", m.stories);
    let down = m
        .stories
        .iter()
        .find(|t| t.story == Story::DownBeforeFault)
        .unwrap();
    assert!(
        down.evidence
            .contains("the broker closed it 0.400 s before"),
        "{}",
        down.evidence
    );
    assert_eq!(
        m.reconnect_s,
        Some(0.1),
        "recovery still measured, from the outage start"
    );
    assert_eq!(
        r.unexpected_disconnects.len(),
        1,
        "{:?}",
        r.unexpected_disconnects
    );
    let u = &r.unexpected_disconnects[0];
    assert_eq!((u.by.as_str(), u.t_s), ("broker", 9.6));
}

#[test]
fn a_drop_long_after_the_window_is_unexpected_and_one_inside_it_is_not() {
    let mut run = classic_events();
    // conn 2 (the reconnect) closed by the broker at 28 s, the line healthy since 20 s.
    run.proxy
        .push(leg(28.0, 2, Leg::Upstream, ClosedBy::Peer, CloseHow::Fin));
    run.proxy.sort_by_key(|e| e.ts_us);
    let r = analyze(&run.compact());
    assert_eq!(
        r.unexpected_disconnects.len(),
        1,
        "{:?}",
        r.unexpected_disconnects
    );
    assert_eq!(r.unexpected_disconnects[0].t_s, 28.0);
    let md = markdown::render(&r);
    assert!(md.contains("## Disconnects outside any fault"), "{md}");
    assert!(md.contains("| s | t+28.000 s | broker |"), "{md}");
    // The give-up at 13 s, inside the window, is not a finding.
    assert!(analyze(&classic()).unexpected_disconnects.is_empty());
}

#[test]
fn the_broker_giving_up_first_is_its_own_story() {
    let mut run = classic();
    run.proxy
        .push(leg(12.0, 1, Leg::Upstream, ClosedBy::Peer, CloseHow::Fin));
    run.proxy.sort_by_key(|e| e.ts_us);
    let m = &analyze(&run).windows[0].subscribers[0];
    assert_eq!(m.broker_detect_s, Some(2.0));
    assert_eq!(m.broker_detect_how, Some(DetectHow::Proxy));
    assert!(m.told(Story::BrokerTimedOut));
    assert!(
        !m.told(Story::SessionTakeover),
        "the broker had closed the old one"
    );
}

#[test]
fn a_reconnect_while_the_broker_holds_the_old_connection_is_a_takeover() {
    let run = classic();
    let m = &analyze(&run).windows[0].subscribers[0];
    assert!(m.told(Story::SessionTakeover), "{:?}", m.stories);
}

/// The classic run with a will watcher that heard the subscriber's will at `wills`, its
/// CONNECTs asking for `clean` sessions.
fn with_wills(clean: bool, wills: &[f64]) -> Run {
    let mut run = classic();
    for e in &mut run.proxy {
        if let EventKind::MqttPacket(p) = &mut e.kind {
            if p.packet_type == "CONNECT" {
                p.clean_session = Some(clean);
                p.will = Some(true);
            }
        }
    }
    run.watcher = Some(
        wills
            .iter()
            .map(|t| {
                ev(
                    *t,
                    Source::Watcher,
                    EventKind::WillReceived(WillReceived {
                        client: Some("s".into()),
                        topic: "devices/s/status".into(),
                        qos: 0,
                        retain: false,
                        payload_len: 1,
                    }),
                )
            })
            .collect(),
    );
    run
}

#[test]
fn a_will_with_the_takeover_is_judged_by_the_brokers_takeover_rule() {
    // The client's new connection (CONNACK at 20.1 s) took over the session the broker still
    // held; mosquitto sent the old connection's will just before answering it.
    let m = &analyze(&with_wills(true, &[20.08])).windows[0].subscribers[0];
    assert_eq!(m.will_s, Some(10.08));
    assert_eq!(m.will_after_connack_s, Some(-0.02));
    let band = m.will_band.as_ref().unwrap();
    assert_eq!(band.verdict, Verdict::Inside, "{band:?}");
    assert!(band.why.contains("takeover rule gives"), "{}", band.why);
    assert!(m.told(Story::WillWhileConnected), "{:?}", m.stories);
    // A persistent 3.1.1 session: mosquitto keeps the will on a takeover.
    let m = &analyze(&with_wills(false, &[20.08])).windows[0].subscribers[0];
    assert_eq!(m.will_band.as_ref().unwrap().verdict, Verdict::Outside);
}

#[test]
fn a_will_after_the_client_was_back_is_a_finding_with_both_times() {
    let m = &analyze(&with_wills(true, &[25.0])).windows[0].subscribers[0];
    assert_eq!(m.will_after_connack_s, Some(4.9));
    let told = m
        .stories
        .iter()
        .find(|t| t.story == Story::WillWhileConnected)
        .expect("told");
    assert!(
        told.evidence.contains("15.000 s into the outage")
            && told.evidence.contains("4.900 s after the client's CONNACK")
            && told.evidence.contains("(10.100 s into the outage)"),
        "{}",
        told.evidence
    );
    let md = crate::markdown::render(&analyze(&with_wills(true, &[25.0])));
    assert!(md.contains("4.900 s after its CONNACK"), "{md}");
}

#[test]
fn no_will_is_judged_only_when_a_watcher_listened() {
    // Nobody listened: nothing is said of wills.
    let m = &analyze(&classic()).windows[0].subscribers[0];
    assert!(m.will_s.is_none() && m.will_band.is_none());
    // A watcher heard nothing through a 10 s outage, longer than mosquitto's whole band.
    let m = &analyze(&with_wills(true, &[])).windows[0].subscribers[0];
    let band = m.will_band.as_ref().expect("judged");
    assert_eq!(band.verdict, Verdict::Outside, "{band:?}");
    assert!(band.why.contains("never"), "{}", band.why);
}

#[test]
fn reason_codes_are_named_in_the_timeline_with_the_connections_version() {
    let mut run = classic();
    for e in &mut run.proxy {
        if let EventKind::MqttPacket(p) = &mut e.kind {
            if p.packet_type == "CONNECT" {
                p.protocol_version = Some(5);
            }
        }
    }
    run.proxy.push(proxy(
        20.06,
        EventKind::MqttPacket(MqttPacket {
            conn: 1,
            dir: Direction::Down,
            packet_type: "DISCONNECT".into(),
            len: 3,
            reason_code: Some(0x8e),
            ..Default::default()
        }),
    ));
    run.proxy.sort_by_key(|e| e.ts_us);
    let r = analyze(&run);
    assert!(
        r.timeline
            .iter()
            .any(|t| t.what == "conn 1: the broker sends DISCONNECT 0x8E (Session taken over)"),
        "{:#?}",
        r.timeline
    );
    let m = &r.windows[0].subscribers[0];
    let said = m.stories.iter().find(|t| t.story == Story::BrokerSaidWhy);
    assert!(
        said.is_some_and(|t| t.evidence
            == "it sent DISCONNECT 0x8E (Session taken over) on conn 1 10.060 s into the outage"),
        "{:#?}",
        m.stories
    );
}

#[test]
fn held_data_released_onto_an_abandoned_connection_is_recognised() {
    let mut run = classic();
    run.proxy
        .push(leg(13.0, 1, Leg::Client, ClosedBy::Peer, CloseHow::Fin));
    run.proxy.push(proxy(
        20.01,
        EventKind::MqttPacket(MqttPacket {
            conn: 1,
            dir: Direction::Down,
            fate: Fate::Released,
            packet_type: "PUBLISH".into(),
            len: 70,
            ..Default::default()
        }),
    ));
    run.proxy.sort_by_key(|e| e.ts_us);
    let m = &analyze(&run).windows[0].subscribers[0];
    assert!(m.told(Story::StaleDataAfterAbandon));
    let st = m.stale.as_ref().unwrap();
    assert_eq!((st.delivered_publishes, st.fin_delivered), (1, false));
    let told = m
        .stories
        .iter()
        .find(|t| t.story == Story::StaleDataAfterAbandon)
        .unwrap();
    assert!(
        told.evidence.starts_with("1 of 1 held") && told.evidence.ends_with("no FIN"),
        "{}",
        told.evidence
    );
    // The client's socket closing at 13 s is the same moment as its own verdict.
    assert_eq!(m.client_detect_s, Some(3.0));
}

#[test]
fn duplicates_reordering_and_late_data_are_counted() {
    let mut run = classic_events();
    run.subscriber
        .retain(|e| !matches!(e.kind, EventKind::Message(_)));
    // seq 1,2,3,5,5,4 and 12 (published during the cut, delivered after it).
    for (t, seq) in [(1.0, 1), (2.0, 2), (3.0, 3), (5.0, 5), (5.5, 5), (6.0, 4)] {
        run.subscriber.push(message(t, seq, seq as f64));
    }
    run.subscriber.push(message(20.2, 12, 12.0));
    run.subscriber.sort_by_key(|e| e.ts_us);
    let d = &analyze(&run.compact()).data[0];
    assert_eq!((d.delivered, d.duplicates, d.out_of_order), (7, 1, 1));
    assert_eq!((d.late, d.late_max_delay_s), (1, Some(8.2)));
    assert_eq!(d.lost, 30 - 6, "seqs 1-5 and 12 arrived");
}

#[test]
fn mosquitto_log_lines_confirm_the_broker_close_the_proxy_saw() {
    let mut run = classic();
    // The broker closes its side at 14.3 s; its log (whole seconds) says why.
    run.proxy
        .push(leg(14.3, 1, Leg::Upstream, ClosedBy::Peer, CloseHow::Fin));
    // The client's last packet before the cut: a PINGREQ 0.5 s before it.
    run.proxy.push(proxy(
        9.5,
        EventKind::MqttPacket(MqttPacket {
            conn: 1,
            dir: Direction::Up,
            fate: Fate::Forwarded,
            packet_type: "PINGREQ".into(),
            len: 2,
            ..Default::default()
        }),
    ));
    run.proxy.sort_by_key(|e| e.ts_us);
    run.broker_log = linecut_events::broker_log::parse_broker_log(&format!(
        "{}: Client s has exceeded timeout, disconnecting.\n",
        (T0 + 14 * S) / S
    ));
    assert_eq!(run.broker_log.len(), 1);
    let m = &analyze(&run).windows[0].subscribers[0];
    assert_eq!(m.broker_detect_s, Some(4.3));
    assert_eq!(m.broker_detect_how, Some(DetectHow::Proxy));
    let told = m.stories.iter().find(|t| t.story == Story::BrokerTimedOut);
    assert!(
        told.is_none(),
        "the client gave up first (13 s), so the broker's drop is not the story"
    );
    // A log line the proxy's view does not support (a later connection's drop, say) is not
    // taken for this window's detection.
    run.proxy
        .retain(|e| !matches!(&e.kind, EventKind::LegClosed(l) if l.leg == Leg::Upstream));
    let m2 = &analyze(&run).windows[0].subscribers[0];
    assert_eq!(m2.broker_detect_s, None);
    let band = m.broker_detect_band.as_ref().unwrap();
    // floor(1.5 × 2) = 3 s after the last packet, up to 7 s late: 2.5–9.5 s into the cut.
    assert_eq!((band.low_s, band.high_s), (2.5, 9.5));
    assert_eq!(band.verdict, Verdict::Inside, "{band:?}");
}

#[test]
fn reports_are_deterministic_and_tell_the_story_in_markdown() {
    let (a, b) = (analyze(&classic()), analyze(&classic()));
    assert_eq!(
        serde_json::to_string(&a).unwrap(),
        serde_json::to_string(&b).unwrap()
    );
    let md = markdown::render(&a);
    assert_eq!(md, markdown::render(&b));
    assert!(md.contains("## Fault 1: cut from t+10.000 s to t+20.000 s"));
    assert!(
        md.contains("| s | 3.000 s | keepalive_timeout | 2.0–4.0 s ±0.1 s: inside |"),
        "{md}"
    );
    assert!(
        md.contains("t+13.000 s — s: gives up the connection (keepalive_timeout)"),
        "{md}"
    );
    assert!(md.contains("| lost | `0` | s: 11 | **fail** |"), "{md}");
}

#[test]
fn a_run_directory_with_a_bad_line_is_analysed_and_the_line_is_named() {
    let dir = std::env::temp_dir().join(format!("linecut-analyzer-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("meta.json"),
        serde_json::to_string(&meta(&[])).unwrap(),
    )
    .unwrap();
    let header = r#"{"ts_us":1,"source":"subscriber","type":"header","schema":"linecut-events","schema_version":1,"producer":"t","producer_version":"0"}"#;
    let good = serde_json::to_string(&connack(0.0)).unwrap();
    std::fs::write(
        dir.join("subscriber.jsonl"),
        format!("{header}\n{good}\n{{broken\n"),
    )
    .unwrap();
    let r = analyze_dir(&dir).unwrap();
    assert!(
        r.warnings.iter().any(|w| w.contains("subscriber.jsonl:3")),
        "{:?}",
        r.warnings
    );
    assert!(r
        .warnings
        .iter()
        .any(|w| w.contains("proxy.jsonl is missing")));
    assert!(dir.join("report.json").is_file() && dir.join("report.md").is_file());
    std::fs::remove_file(dir.join("meta.json")).unwrap();
    assert!(matches!(analyze_dir(&dir), Err(AnalyzeError::NotARun(_))));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn fleet_distributions_use_nearest_rank_and_feed_expectations() {
    let values: Vec<Option<f64>> = (1..=100).map(|i| Some(i as f64)).chain([None]).collect();
    let d = Distribution::of(&values).unwrap();
    assert_eq!(
        (d.count, d.missing, d.min, d.p50, d.p90, d.p99, d.max),
        (100, 1, 1.0, 50.0, 90.0, 99.0, 100.0)
    );
    assert!(Distribution::of(&[None, None]).is_none());
    let mut run = classic();
    run.meta.expectations = expectations(&[
        ("client_detect_s.p99", "<= 4"),
        ("client_detect_s.p42", "1"),
    ]);
    let r = analyze(&run);
    let p99 = r
        .expectations
        .iter()
        .find(|e| e.metric == "client_detect_s.p99")
        .unwrap();
    assert!(p99.ok && p99.values["fleet"] == Some(3.0));
    let bad = r
        .expectations
        .iter()
        .find(|e| e.metric == "client_detect_s.p42")
        .unwrap();
    assert!(
        !bad.ok
            && bad
                .problem
                .as_deref()
                .unwrap()
                .contains("not a fleet statistic")
    );
}

#[test]
fn topic_filters_match_as_mqtt_does() {
    assert!(topic_matches("t/#", "t/1"));
    assert!(topic_matches("#", "a/b"));
    assert!(topic_matches("a/+/c", "a/b/c"));
    assert!(!topic_matches("a/+", "a/b/c"));
    assert!(!topic_matches("t/1", "t/2"));
}

/// A client-side capture of a pulled cable, synthesised: paho (K = 2 s) hears nothing from the
/// broker after 5 s, pings at 6 s without answer and closes at 8 s; an attempt at 9 s gets no
/// answer; the attempt at 12 s gets its CONNACK when the line is back at 15 s; at 15.5 s the
/// broker's stale data reaches the first connection and the client's stack answers with RST.
/// With `broker_resets`, the broker had closed that socket instead: at 15.3 s its kernel
/// answers the client's side with RST and no data or FIN ever comes (what a real link showed
/// in the seed re-run).
#[path = "../tests/support/tshark_oracle.rs"]
mod tshark_oracle;

fn captured_pull(path: &std::path::Path, broker_resets: bool, crowd: u64) {
    use linecut_capture::{LegSide, PcapTap};
    use linecut_mqtt::encode;
    let tap = PcapTap::create(path).unwrap();
    let broker: std::net::SocketAddr = "10.0.0.1:1883".parse().unwrap();
    let at = |s: f64| T0 + (s * S as f64) as i64;
    let client =
        |port: u16| -> std::net::SocketAddr { format!("10.0.0.2:{port}").parse().unwrap() };
    let up = |conn: u64, bytes: &[u8], t: f64| tap.data(conn, LegSide::Client, true, bytes, at(t));
    let down =
        |conn: u64, bytes: &[u8], t: f64| tap.data(conn, LegSide::Client, false, bytes, at(t));
    let publish = |seq: u64, t: f64| {
        let stamp = linecut_model::payload::Stamp {
            seq,
            pub_ts_us: at(t - 0.005),
        };
        encode::publish("t/1", &linecut_model::payload::encode(stamp, 32))
    };
    const CONNACK: &[u8] = &[0x20, 0x02, 0x00, 0x00];
    const SUBACK: &[u8] = &[0x90, 0x03, 0x00, 0x01, 0x00];
    const PINGREQ: &[u8] = &[0xc0, 0x00];
    const PINGRESP: &[u8] = &[0xd0, 0x00];
    // Other clients' clean sessions (CONNECT, CONNACK, DISCONNECT, a FIN each way), 100 µs
    // apart from `from` s: half of the crowd before the pull, half after it.
    let sessions = |first: u64, count: u64, from: f64| {
        for n in first..first + count {
            let conn = 100 + n;
            let t = |us: u64| at(from + ((n - first) * 100 + us) as f64 / 1e6);
            let addr = format!("10.0.{}.{}:{}", 1 + n / 250, n % 250, 2000 + n)
                .parse()
                .unwrap();
            tap.open(conn, LegSide::Client, addr, broker, t(0));
            let connect = encode::connect(&format!("crowd-{n}"), 60);
            tap.data(conn, LegSide::Client, true, &connect, t(10));
            tap.data(conn, LegSide::Client, false, CONNACK, t(20));
            tap.data(conn, LegSide::Client, true, &[0xe0, 0x00], t(30));
            tap.close(conn, LegSide::Client, true, false, t(40));
            tap.close(conn, LegSide::Client, false, false, t(50));
        }
    };
    sessions(0, crowd / 2, -1.0);
    tap.open(1, LegSide::Client, client(40001), broker, at(0.0));
    up(1, &encode::connect("s", 2), 0.01);
    down(1, CONNACK, 0.02);
    up(1, &encode::subscribe(1, "t/#", 0), 0.03);
    down(1, SUBACK, 0.04);
    // Frames in time order, as a capture has them.
    for seq in 1..=5u64 {
        let t = seq as f64;
        down(1, &publish(seq, t), t);
        if seq % 2 == 0 {
            up(1, PINGREQ, t + 0.1);
            down(1, PINGRESP, t + 0.101);
        }
    }
    up(1, PINGREQ, 6.0);
    tap.close(1, LegSide::Client, true, false, at(8.0));
    tap.open(2, LegSide::Client, client(40002), broker, at(9.0));
    up(2, &encode::connect("s", 2), 9.01);
    tap.close(2, LegSide::Client, true, false, at(11.01));
    tap.open(3, LegSide::Client, client(40003), broker, at(12.0));
    up(3, &encode::connect("s", 2), 12.01);
    down(3, CONNACK, 15.0);
    up(3, &encode::subscribe(2, "t/#", 0), 15.01);
    down(3, SUBACK, 15.02);
    if broker_resets {
        tap.close(1, LegSide::Client, false, true, at(15.3));
    } else {
        down(1, &publish(6, 6.0), 15.5);
        tap.close(1, LegSide::Client, true, true, at(15.5005));
    }
    down(3, &publish(16, 16.0), 16.0);
    sessions(crowd / 2, crowd - crowd / 2, 17.0);
    tap.finish().unwrap();
}

/// [`captured_pull`] written to a directory of its own (removed by the caller) and analysed.
fn analyzed_pull(
    name: &str,
    broker_resets: bool,
    crowd: u64,
) -> (std::path::PathBuf, Report, crate::capture::CaptureInfo) {
    let dir = std::env::temp_dir().join(format!("linecut-analyzer-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let pcap = dir.join("pull.pcap");
    captured_pull(&pcap, broker_resets, crowd);
    let (run, info) = load_capture(
        &pcap,
        1883,
        Some("paho-mqtt 2.1.0"),
        Some("mosquitto 2.0.11"),
    )
    .unwrap();
    (dir, analyze(&run), info)
}

#[test]
fn a_captured_outage_ends_when_the_broker_is_heard_again_and_shows_its_stale_data() {
    let (dir, r, info) = analyzed_pull("capture", false, 0);
    assert_eq!(info.connections, 3);
    assert_eq!(info.folded, None, "a small capture is described whole");
    assert_eq!(r.windows.len(), 1, "{:#?}", r.windows);
    let w = &r.windows[0];
    // From the broker's last word (5 s) to its CONNACK at 15 s: the unanswered attempt at 9 s
    // is part of the outage, not its end.
    assert_eq!(
        (
            (w.outage_start_us - T0) / 1000,
            (w.outage_end_us - T0) / 1000
        ),
        (5_000, 15_000)
    );
    let m = &w.subscribers[0];
    assert_eq!(m.client_detect_s, Some(3.0), "the client closed at 8 s");
    let band = m
        .client_detect_band
        .as_ref()
        .expect("bands apply to inferred windows");
    assert_eq!(
        (band.low_s, band.high_s, band.verdict),
        (2.0, 5.0, Verdict::Inside)
    );
    assert!(!m.broker_side_visible);
    assert_eq!(m.broker_detect_s, None);
    assert_eq!(
        m.broker_detect_band.as_ref().map(|b| b.verdict),
        Some(Verdict::NotDecidable)
    );
    assert_eq!(m.reconnect_s, Some(0.0));
    assert_eq!(
        m.connect_attempts, 2,
        "the attempt at 9 s and the one at 12 s"
    );
    let st = m
        .stale
        .as_ref()
        .expect("stale data on the first connection");
    assert_eq!((st.delivered_publishes, st.first_after_end_s), (1, 0.5));
    assert!(st.answered_by_rst);
    let told = m
        .stories
        .iter()
        .find(|t| t.story == Story::StaleDataAfterAbandon)
        .unwrap();
    assert!(
        told.evidence.contains("answered with a reset"),
        "{}",
        told.evidence
    );
    // The stale message never reached the application.
    let d = &r.data[0];
    assert_eq!(d.delivered, 6, "seqs 1-5 and 16, not the stale 6");
    let md = markdown::render(&r);
    assert!(md.contains("not visible in this capture"), "{md}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A reset is not a FIN: when the broker's side answers the abandoned connection with RST, the
/// stale-data story says so, and says neither that a FIN arrived nor that the client reset.
#[test]
fn a_broker_reset_on_the_abandoned_connection_is_told_as_a_reset_not_a_fin() {
    let (dir, r, _) = analyzed_pull("capture-rst", true, 0);
    let m = &r.windows[0].subscribers[0];
    let st = m
        .stale
        .as_ref()
        .expect("the broker's reset reached the client");
    assert_eq!(st.broker_rst_after_end_s, Some(0.3));
    assert_eq!(st.fin_after_end_s, None, "no FIN crossed");
    assert!(!st.fin_delivered && !st.answered_by_rst, "{st:?}");
    let told = m
        .stories
        .iter()
        .find(|t| t.story == Story::StaleDataAfterAbandon)
        .unwrap();
    // The reset is cited by its frame in the capture, as the broker's.
    let rst = st
        .frames
        .iter()
        .find(|f| f.sign == crate::frames::WireSign::Rst)
        .expect("the RST's frame is cited");
    assert_eq!(rst.sender, crate::frames::Sender::Broker, "{st:?}");
    // What `linecut analyze CAPTURE` cites, checked against tshark's reading of the capture.
    let checked = tshark_oracle::check(
        &serde_json::to_value(&r).unwrap(),
        &dir.join("pull.pcap"),
        1883,
    );
    assert!(checked >= 1, "{checked}");
    assert!(
        told.evidence.contains(&format!(
            "reset the abandoned connection (RST, not a FIN; frame {})",
            rst.frame
        )) && !told.evidence.contains("FIN reached"),
        "{}",
        told.evidence
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// What the pull's analysis says of client `s`: its one window (start and end, ms from T0),
/// detection, recovery, attempts, stale data, and its deliveries.
fn pull_facts(
    r: &Report,
) -> (
    usize,
    i64,
    i64,
    Option<f64>,
    Option<f64>,
    u32,
    u64,
    f64,
    u64,
) {
    let w = &r.windows[0];
    let m = w.subscribers.iter().find(|m| m.client == "s").unwrap();
    let st = m
        .stale
        .as_ref()
        .expect("stale data on the first connection");
    let d = r.data.iter().find(|d| d.client == "s").unwrap();
    (
        r.windows.len(),
        (w.outage_start_us - T0) / 1000,
        (w.outage_end_us - T0) / 1000,
        m.client_detect_s,
        m.reconnect_s,
        m.connect_attempts,
        st.delivered_publishes,
        st.first_after_end_s,
        d.delivered,
    )
}

/// The same pull among 2,000 other clients' clean sessions, more than a report describes: the
/// crowd is folded into counts as it ends (most of it), the outage's connections are kept
/// whatever came after them, and the window reads exactly as it does alone.
#[test]
fn a_captured_outage_among_thousands_of_sessions_keeps_its_connections_and_the_rest_is_counted() {
    let crowd = 2 * crate::DETAIL as u64;
    let (dir, r, info) = analyzed_pull("capture-crowd", false, crowd);
    assert_eq!(info.connections, crowd + 3);
    let folded = info.folded.as_ref().expect("summarised");
    // Kept: the DETAIL most informative ended connections that are not pinned (the pull's
    // third connection, never closed by DISCONNECT, and the earliest of the crowd), and the
    // two an inferred outage is made of on top.
    assert_eq!(folded.in_detail, crate::DETAIL as u64);
    assert_eq!(folded.connections, crowd - (crate::DETAIL as u64 - 1));
    assert_eq!(
        folded.ended.get("client DISCONNECT"),
        Some(&folded.connections)
    );
    assert_eq!(
        folded.packets.get("DISCONNECT up"),
        Some(&folded.connections)
    );
    let (alone_dir, alone, _) = analyzed_pull("capture-alone", false, 0);
    std::fs::remove_dir_all(&alone_dir).unwrap();
    assert_eq!(pull_facts(&r), pull_facts(&alone));
    // As `linecut analyze CAPTURE` renders it, with what the capture said.
    let mut r = r;
    r.capture = Some(info.clone());
    let md = markdown::render(&r);
    assert!(
        md.contains(&format!(
            "**Summarised**: {} connection(s) are counted, not described",
            folded.connections
        )),
        "{md}"
    );
    // Frames of folded connections are not cited; those cited are still the capture's.
    let checked = tshark_oracle::check(
        &serde_json::to_value(&r).unwrap(),
        &dir.join("pull.pcap"),
        1883,
    );
    assert!(checked >= 1, "{checked}");
    std::fs::remove_dir_all(&dir).unwrap();
}
