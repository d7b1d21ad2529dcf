//! Round-trip and contract tests for the event schema: every variant survives JSON and back, the
//! envelope carries `ts_us`/`source`/`type`, and files are read back with line-numbered errors.

use super::*;
use std::io::Cursor;

fn one_of_each() -> Vec<EventKind> {
    vec![
        EventKind::Header(Header::new("linecut-proxy", "0.1.0")),
        EventKind::ProxyStarted(ProxyStarted {
            listen: "127.0.0.1:1".into(),
            upstream: "127.0.0.1:2".into(),
            control: Some("127.0.0.1:3".into()),
        }),
        EventKind::ProxyStopped(ProxyStopped { connections: 7 }),
        EventKind::ConnOpened(ConnOpened {
            conn: 1,
            client_addr: "127.0.0.1:5000".into(),
            listen_addr: "127.0.0.1:1".into(),
        }),
        EventKind::UpstreamConnected(UpstreamConnected {
            conn: 1,
            local_addr: "127.0.0.1:5001".into(),
            upstream_addr: "127.0.0.1:2".into(),
            connect_us: 120,
        }),
        EventKind::UpstreamFailed(UpstreamFailed {
            conn: 2,
            upstream_addr: "127.0.0.1:2".into(),
            error: "Connection refused".into(),
        }),
        EventKind::LegClosed(LegClosed {
            conn: 1,
            leg: Leg::Upstream,
            by: ClosedBy::Peer,
            how: CloseHow::Rst,
            reason: None,
        }),
        EventKind::ConnClosed(ConnClosed {
            conn: 1,
            bytes_up: 10,
            bytes_down: 20,
            duration_us: 30,
            client_id: Some("sub-1".into()),
        }),
        EventKind::MqttPacket(MqttPacket {
            conn: 1,
            dir: Direction::Down,
            fate: Fate::Held,
            packet_type: "PUBLISH".into(),
            len: 40,
            topic: Some("t/1".into()),
            qos: Some(1),
            dup: Some(false),
            retain: Some(false),
            packet_id: Some(9),
            payload_len: Some(30),
            ..Default::default()
        }),
        EventKind::MqttPacket(MqttPacket {
            conn: 1,
            dir: Direction::Up,
            fate: Fate::Forwarded,
            packet_type: "SUBSCRIBE".into(),
            len: 12,
            packet_id: Some(1),
            topics: Some(vec![TopicFilter {
                filter: "t/#".into(),
                qos: Some(1),
            }]),
            ..Default::default()
        }),
        EventKind::RawBytes(RawBytes {
            conn: 3,
            dir: Direction::Up,
            fate: Fate::Dropped,
            len: 5,
        }),
        EventKind::MqttMalformed(MqttMalformed {
            conn: 3,
            dir: Direction::Up,
            error: "bad".into(),
            offset: 14,
        }),
        EventKind::PublishSuppressed(PublishSuppressed {
            conn: 1,
            dir: Direction::Down,
            count: 100,
            bytes: 4000,
        }),
        EventKind::FaultStarted(FaultStarted {
            fault: 1,
            spec: "cut:at=1s,for=2s".into(),
            kind: "cut".into(),
            scheduled_us: Some(1_000_000),
            lateness_us: Some(80),
            applied: Vec::new(),
        }),
        EventKind::FaultEnded(FaultEnded {
            fault: 1,
            kind: "cut".into(),
            scheduled_us: None,
            lateness_us: None,
            applied: Vec::new(),
        }),
        EventKind::FaultAction(FaultAction {
            fault: 2,
            kind: "reset".into(),
            action: "reset".into(),
            conn: Some(1),
            detail: None,
        }),
        EventKind::ConnectAttempt(ConnectAttempt {
            client: "sub-1".into(),
            attempt: 2,
            broker: "127.0.0.1:1".into(),
            delay_ms: 250,
        }),
        EventKind::Connack(Connack {
            client: "sub-1".into(),
            code: 0,
            session_present: true,
        }),
        EventKind::SubscribeSent(SubscribeSent {
            client: "sub-1".into(),
            topics: vec![TopicFilter {
                filter: "t/#".into(),
                qos: Some(1),
            }],
            reason: SubscribeReason::SessionLost,
        }),
        EventKind::Suback(Suback {
            client: "sub-1".into(),
            packet_id: 1,
            codes: vec![1],
        }),
        EventKind::PingSent(ClientRef {
            client: "sub-1".into(),
        }),
        EventKind::PingReceived(ClientRef {
            client: "sub-1".into(),
        }),
        EventKind::Message(Message {
            client: "sub-1".into(),
            topic: "t/1".into(),
            qos: 1,
            dup: true,
            retain: false,
            packet_id: Some(4),
            payload_len: 64,
            seq: Some(17),
            pub_ts_us: Some(1_700_000_000_000_000),
            foreign: false,
        }),
        EventKind::Message(Message {
            client: "sub-1".into(),
            topic: "t/1".into(),
            qos: 0,
            dup: false,
            retain: false,
            packet_id: None,
            payload_len: 3,
            seq: None,
            pub_ts_us: None,
            foreign: true,
        }),
        EventKind::Published(Published {
            client: "pub".into(),
            topic: "t/1".into(),
            seq: 17,
            qos: 1,
            retain: false,
            payload_len: 64,
        }),
        EventKind::Puback(Puback {
            client: "pub".into(),
            packet_id: 4,
            topic: Some("t/1".into()),
            seq: Some(17),
        }),
        EventKind::Disconnected(Disconnected {
            client: "sub-1".into(),
            cause: DisconnectCause::KeepaliveTimeout,
            error: "Mqtt state: Last pingreq isn't acked".into(),
        }),
        EventKind::AgentStopped(AgentStopped {
            clients: 1,
            messages: 10,
            incomplete: false,
        }),
        EventKind::ClientInfo(ClientInfo {
            client: "sub".into(),
            library: "paho-mqtt".into(),
            version: "2.1.0".into(),
            detail: Some("python 3.11.7".into()),
        }),
        EventKind::ClientExited(ClientExited {
            client: "sub".into(),
            kind: "paho-python".into(),
            code: Some(1),
            signal: None,
            expected: false,
            lines: 12,
            unmatched_lines: 1,
            first_unmatched: Some("Traceback (most recent call last):".into()),
        }),
    ]
}

#[test]
fn every_event_type_round_trips_through_json() {
    for (i, kind) in one_of_each().into_iter().enumerate() {
        let event = Event {
            ts_us: 1_700_000_000_000_000 + i as i64,
            source: Source::Proxy,
            kind,
        };
        let text = serde_json::to_string(&event).unwrap();
        let back: Event = serde_json::from_str(&text).unwrap();
        assert_eq!(back, event, "{text}");
    }
}

#[test]
fn envelope_fields_are_flat_and_type_matches_type_name() {
    for kind in one_of_each() {
        let name = kind.type_name();
        let event = Event {
            ts_us: 42,
            source: Source::Subscriber,
            kind,
        };
        let value = serde_json::to_value(&event).unwrap();
        assert_eq!(value["ts_us"], 42);
        assert_eq!(value["source"], "subscriber");
        assert_eq!(value["type"], name);
    }
}

#[test]
fn optional_fields_are_omitted_not_null() {
    let event = Event {
        ts_us: 1,
        source: Source::Proxy,
        kind: EventKind::MqttPacket(MqttPacket {
            conn: 1,
            packet_type: "PINGREQ".into(),
            len: 2,
            ..Default::default()
        }),
    };
    let text = serde_json::to_string(&event).unwrap();
    assert_eq!(
        text,
        r#"{"ts_us":1,"source":"proxy","type":"mqtt_packet","conn":1,"dir":"up","fate":"forwarded","packet_type":"PINGREQ","len":2}"#
    );
}

#[test]
fn unknown_fields_are_ignored_for_forward_compatibility() {
    let text =
        r#"{"ts_us":5,"source":"proxy","type":"proxy_stopped","connections":3,"added_later":true}"#;
    let event: Event = serde_json::from_str(text).unwrap();
    assert_eq!(
        event.kind,
        EventKind::ProxyStopped(ProxyStopped { connections: 3 })
    );
}

#[test]
fn log_written_by_sinks_reads_back_with_header_first() {
    let dir = std::env::temp_dir().join(format!("linecut-events-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("rt.jsonl");
    let (log, sink) = EventLog::create(&path, Source::Proxy, "test", "9.9.9").unwrap();
    let other = sink.clone();
    let kinds = one_of_each();
    for kind in kinds.iter().skip(1).cloned() {
        sink.emit(kind);
    }
    {
        let mut batch = other.batch();
        batch.push_at(7, EventKind::ProxyStopped(ProxyStopped { connections: 1 }));
        batch.commit();
    }
    log.finish().unwrap();
    // Emitting after the log is finished is harmless.
    sink.emit(EventKind::ProxyStopped(ProxyStopped { connections: 2 }));

    let reader = read_events(&path).unwrap();
    assert_eq!(reader.header().producer, "test");
    assert_eq!(reader.header().schema_version, SCHEMA_VERSION);
    let events: Vec<Event> = reader.map(Result::unwrap).collect();
    assert_eq!(events.len(), kinds.len());
    assert_eq!(events.last().unwrap().ts_us, 7);
    for (got, want) in events.iter().zip(kinds.iter().skip(1)) {
        assert_eq!(&got.kind, want);
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn malformed_line_is_reported_with_its_line_number_and_reading_continues() {
    let text = format!(
        "{}\n{}\nnot json\n{}\n",
        r#"{"ts_us":1,"source":"proxy","type":"header","schema":"linecut-events","schema_version":1,"producer":"p","producer_version":"1"}"#,
        r#"{"ts_us":2,"source":"proxy","type":"proxy_stopped","connections":1}"#,
        r#"{"ts_us":3,"source":"proxy","type":"proxy_stopped","connections":2}"#,
    );
    let reader = EventReader::new(Path::new("run/proxy.jsonl"), Cursor::new(text)).unwrap();
    let items: Vec<_> = reader.collect();
    assert_eq!(items.len(), 3);
    assert!(items[0].is_ok());
    let err = items[1].as_ref().unwrap_err().to_string();
    assert!(
        err.starts_with("run/proxy.jsonl:3: not a linecut event"),
        "{err}"
    );
    assert!(items[2].is_ok());
}

#[test]
fn a_file_without_header_or_with_a_future_version_is_refused() {
    let no_header = r#"{"ts_us":2,"source":"proxy","type":"proxy_stopped","connections":1}"#;
    let err = EventReader::new(Path::new("x.jsonl"), Cursor::new(no_header))
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("x.jsonl:1") && err.contains("expected `header`"),
        "{err}"
    );

    let future = r#"{"ts_us":1,"source":"proxy","type":"header","schema":"linecut-events","schema_version":99,"producer":"p","producer_version":"1"}"#;
    let err = EventReader::new(Path::new("y.jsonl"), Cursor::new(future))
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("schema version 99"), "{err}");

    let empty = EventReader::new(Path::new("z.jsonl"), Cursor::new(""))
        .err()
        .unwrap()
        .to_string();
    assert!(empty.contains("empty"), "{empty}");
}

use std::path::Path;
