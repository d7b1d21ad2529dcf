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
            }),
        ),
        proxy(
            end,
            EventKind::FaultEnded(FaultEnded {
                fault: 1,
                kind: "cut".into(),
                scheduled_us: None,
                lateness_us: None,
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
    assert_eq!((band.low_s, band.high_s, band.inside), (2.0, 4.0, true));
    assert_eq!(m.reconnect_s, Some(0.1));
    assert_eq!(m.resubscribe_s, Some(0.21));
    assert_eq!(m.first_fresh_s, Some(1.005), "seq 21, published at 21 s");
    assert_eq!(
        (m.session_present, m.resubscribed),
        (Some(false), Some(true))
    );
    assert!(m.stories.contains(&Story::PingTimeout));
    assert!(!m.stories.contains(&Story::RodeThrough));
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
    assert_eq!(m.stories, vec![Story::RodeThrough]);
    assert!(!m.client_detect_band.as_ref().unwrap().inside);
    let detect = r
        .expectations
        .iter()
        .find(|e| e.metric == "client_detect_s")
        .unwrap();
    assert!(!detect.ok, "never is not within 2..4");
}

#[test]
fn an_outage_shorter_than_the_band_expects_no_detection() {
    let mut run = classic();
    // Shrink the cut to 1.5 s (K = 2 s): nothing should notice, and no band is judged.
    for e in &mut run.proxy {
        if matches!(e.kind, EventKind::FaultEnded(_)) {
            e.ts_us = T0 + 11_500_000;
        }
    }
    let m = &analyze(&run).windows[0].subscribers[0];
    assert!(m.client_detect_band.is_none());
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
    assert!(m.stories.contains(&Story::BrokerTimedOut));
    assert!(
        !m.stories.contains(&Story::SessionTakeover),
        "the broker had closed the old one"
    );
}

#[test]
fn a_reconnect_while_the_broker_holds_the_old_connection_is_a_takeover() {
    let run = classic();
    let m = &analyze(&run).windows[0].subscribers[0];
    assert!(
        m.stories.contains(&Story::SessionTakeover),
        "{:?}",
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
    assert!(m.stories.contains(&Story::StaleDataAfterAbandon));
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
fn mosquitto_log_lines_count_as_broker_detection_and_takeover() {
    let mut run = classic();
    run.broker_log = linecut_events::broker_log::parse_mosquitto_log(&format!(
        "{}: Client s has exceeded timeout, disconnecting.\n",
        (T0 + 14 * S) / S
    ));
    assert_eq!(run.broker_log.len(), 1);
    let m = &analyze(&run).windows[0].subscribers[0];
    assert_eq!(m.broker_detect_s, Some(4.0));
    assert_eq!(m.broker_detect_how, Some(DetectHow::BrokerLog));
    let band = m.broker_detect_band.as_ref().unwrap();
    assert_eq!((band.low_s, band.high_s, band.inside), (1.0, 9.0, true));
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
        md.contains("| s | 3.000 s | keepalive_timeout | 2.0–4.0 s (inside) |"),
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
