//! What the event log says about real MQTT sessions: a rumqttc client through the proxy to an
//! embedded rumqttd broker, and streams that are not MQTT.

use crate::util::*;
use linecut_events::{Direction, EventKind, Fate};
use rumqttc::{AsyncClient, Event, Incoming, MqttOptions, QoS};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The embedded rumqttd on a free loopback port.
fn start_rumqttd() -> SocketAddr {
    linecut_broker::EmbeddedBroker::start(Default::default())
        .expect("embedded broker")
        .addr()
}

#[tokio::test]
async fn a_real_session_is_logged_packet_by_packet_with_its_fields() {
    let broker = start_rumqttd();
    let rig = Rig::with(RigOptions {
        upstream_override: Some(broker.to_string()),
        ..Default::default()
    })
    .await;
    let mut options = MqttOptions::new("logger-1", rig.addr.ip().to_string(), rig.addr.port());
    options.set_keep_alive(Duration::from_secs(1));
    let (client, mut eventloop) = AsyncClient::new(options, 10);
    client.subscribe("t/#", QoS::AtLeastOnce).await.unwrap();
    client
        .publish("t/1", QoS::AtLeastOnce, false, vec![9u8; 42])
        .await
        .unwrap();
    let (mut got_publish, mut got_pingresp) = (false, false);
    tokio::time::timeout(Duration::from_secs(10), async {
        while !(got_publish && got_pingresp) {
            match eventloop.poll().await.unwrap() {
                Event::Incoming(Incoming::Publish(_)) => got_publish = true,
                Event::Incoming(Incoming::PingResp) => got_pingresp = true,
                _ => {}
            }
        }
    })
    .await
    .expect("a message and a ping response through the proxy");
    client.disconnect().await.unwrap();
    // Drive the loop until the DISCONNECT is on the wire and the connection ends.
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        while eventloop.poll().await.is_ok() {}
    })
    .await;
    let events = rig.stop().await;
    let packets = packet_events(&events);
    let seq: Vec<(Direction, &str)> = packets
        .iter()
        .map(|p| (p.dir, p.packet_type.as_str()))
        .collect();
    let first = |dir: Direction, t: &str| {
        packets
            .iter()
            .find(|p| p.dir == dir && p.packet_type == t)
            .unwrap_or_else(|| panic!("no {t} {dir:?} in {seq:?}"))
    };
    let connect = first(Direction::Up, "CONNECT");
    assert_eq!(connect.client_id.as_deref(), Some("logger-1"));
    assert_eq!(connect.keepalive_s, Some(1));
    assert_eq!(connect.clean_session, Some(true));
    assert_eq!(connect.protocol_version, Some(4));
    let connack = first(Direction::Down, "CONNACK");
    assert_eq!(
        (connack.return_code, connack.session_present),
        (Some(0), Some(false))
    );
    let subscribe = first(Direction::Up, "SUBSCRIBE");
    let topics = subscribe.topics.as_ref().unwrap();
    assert_eq!((topics[0].filter.as_str(), topics[0].qos), ("t/#", Some(1)));
    assert_eq!(first(Direction::Down, "SUBACK").codes, Some(vec![1]));
    let publish_up = first(Direction::Up, "PUBLISH");
    assert_eq!(publish_up.topic.as_deref(), Some("t/1"));
    assert_eq!(
        (publish_up.qos, publish_up.payload_len),
        (Some(1), Some(42))
    );
    assert!(publish_up.packet_id.is_some());
    assert_eq!(
        first(Direction::Down, "PUBACK").packet_id,
        publish_up.packet_id
    );
    assert_eq!(first(Direction::Down, "PUBLISH").payload_len, Some(42));
    first(Direction::Up, "PINGREQ");
    first(Direction::Down, "PINGRESP");
    first(Direction::Up, "DISCONNECT");
    assert!(packets.iter().all(|p| p.fate == Fate::Forwarded));
    assert!(packets.iter().all(|p| p.conn == connect.conn));
}

#[tokio::test]
async fn a_stream_that_is_not_mqtt_is_forwarded_untouched_and_logged_as_raw() {
    let rig = Rig::start().await;
    let (mut client, mut broker) = rig.pair().await;
    let request = b"GET /status HTTP/1.1\r\nHost: example\r\n\r\n";
    client.write_all(request).await.unwrap();
    assert_eq!(read_exact(&mut broker, request.len()).await, request);
    let garbage: Vec<u8> = (0..=255u8).collect();
    broker.write_all(&garbage).await.unwrap();
    assert_eq!(read_exact(&mut client, garbage.len()).await, garbage);
    drop(client);
    let mut rest = Vec::new();
    let _ = broker.read_to_end(&mut rest).await;
    let events = rig.stop().await;
    let malformed = events
        .iter()
        .filter(|e| matches!(&e.kind, EventKind::MqttMalformed(m) if m.error.contains("not MQTT")))
        .count();
    assert_eq!(malformed, 2, "one per direction");
    let raw: u64 = events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::RawBytes(r) => Some(r.len),
            _ => None,
        })
        .sum();
    assert_eq!(raw as usize, request.len() + garbage.len());
}

#[tokio::test]
async fn publish_floods_are_counted_not_logged_one_by_one_past_the_limit() {
    let rig = Rig::with(RigOptions {
        configure: |c| c.wire_log = linecut_proxy::WireLog::All { publish_limit: 10 },
        ..Default::default()
    })
    .await;
    let (mut client, mut broker) = rig.mqtt_pair("flood").await;
    let one = publish_packet("f", b"x");
    let burst: Vec<u8> = one.iter().copied().cycle().take(one.len() * 500).collect();
    client.write_all(&burst).await.unwrap();
    read_exact(&mut broker, burst.len()).await;
    drop(client);
    let events = rig.stop().await;
    let logged = packet_events(&events)
        .iter()
        .filter(|p| p.packet_type == "PUBLISH")
        .count();
    let suppressed: u64 = events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::PublishSuppressed(s) => Some(s.count),
            _ => None,
        })
        .sum();
    assert_eq!(logged, 10);
    assert_eq!(
        logged as u64 + suppressed,
        500,
        "every PUBLISH is accounted for"
    );
}

/// The reliability review's D9: bytes held for a connection that closed during a cut were
/// logged as two events per packet with no limit (`hold=50GiB` gave a 2.6 GB log). They now
/// obey the PUBLISH-flow budget of every other packet: at most the limit one by one, the rest
/// counted in `publish_suppressed`, every PUBLISH accounted for.
#[tokio::test]
async fn held_bytes_of_an_abandoned_connection_obey_the_publish_budget() {
    let rig = Rig::with(RigOptions {
        configure: |c| c.wire_log = linecut_proxy::WireLog::All { publish_limit: 10 },
        ..Default::default()
    })
    .await;
    // The cut must be active before the client connects, or the proxy would connect upstream
    // and forward the bytes: `fault` returns once the board says it is (a fault scheduled at
    // start-up races the client's connect).
    rig.fault("cut:hold=1MiB").await;
    let mut client = tokio::net::TcpStream::connect(rig.addr).await.unwrap();
    let one = publish_packet("f", b"x");
    let mut bytes = connect_packet("abandoned", 5);
    for _ in 0..500 {
        bytes.extend_from_slice(&one);
    }
    client.write_all(&bytes).await.unwrap();
    // Closed during the cut, before anything reached the broker: the held bytes are abandoned.
    // The FIN follows every byte in the stream, so the proxy reads all 500 PUBLISHes before it
    // sees the end; the connection leaves the registry only after its abandoned bytes are logged.
    drop(client);
    eventually(|| rig.handle.accepted() == 1 && rig.handle.connections().is_empty()).await;
    let events = rig.stop().await;
    let held: Vec<_> = packet_events(&events)
        .into_iter()
        .filter(|p| p.packet_type == "PUBLISH" && p.fate == Fate::Held)
        .collect();
    let suppressed: u64 = events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::PublishSuppressed(s) => Some(s.count),
            _ => None,
        })
        .sum();
    assert_eq!(held.len(), 10);
    assert_eq!(
        held.len() as u64 + suppressed,
        500,
        "every PUBLISH is accounted for"
    );
    assert!(
        packet_events(&events)
            .iter()
            .any(|p| p.packet_type == "CONNECT" && p.fate == Fate::Discarded),
        "control packets are always logged"
    );
}
