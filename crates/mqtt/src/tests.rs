//! Decoder tests: annotated byte fixtures, rumqttc's codec as an oracle on the same bytes, stream
//! behaviour at every split point, and a no-panic sweep over arbitrary input.

use super::*;
use bytes::BytesMut;

fn packet(bytes: &[u8], version: Option<Version>) -> Packet<'_> {
    match decode(bytes, version) {
        Decoded::Packet { header, packet } => {
            assert_eq!(header.total_len(), bytes.len(), "packet must use all bytes");
            packet
        }
        other => panic!("expected a packet, got {other:?}"),
    }
}

#[rustfmt::skip]
const CONNECT_V311: &[u8] = &[
    0x10, 0x12,                   // CONNECT, remaining 18
    0x00, 0x04, b'M', b'Q', b'T', b'T', // protocol name
    0x04,                         // level 4 = 3.1.1
    0x02,                         // flags: clean session
    0x00, 0x3c,                   // keepalive 60
    0x00, 0x06, b's', b'u', b'b', b'-', b'0', b'1', // client id "sub-01"
];

#[test]
fn connect_311_fixture_yields_client_id_keepalive_and_clean_session() {
    let Packet::Connect(c) = packet(CONNECT_V311, None) else {
        panic!()
    };
    assert_eq!(c.version, Version::V3_1_1);
    assert_eq!(c.client_id, "sub-01");
    assert_eq!(c.keepalive_s, 60);
    assert!(c.clean_session);
    assert!(!c.will);
}

#[test]
fn connect_31_mqisdp_is_accepted() {
    #[rustfmt::skip]
    let bytes = [
        0x10, 0x11,
        0x00, 0x06, b'M', b'Q', b'I', b's', b'd', b'p',
        0x03, 0x00, 0x00, 0x0a,   // level 3, no clean session, keepalive 10
        0x00, 0x03, b'a', b'b', b'c',
    ];
    let Packet::Connect(c) = packet(&bytes, None) else {
        panic!()
    };
    assert_eq!(c.version, Version::V3_1);
    assert!(!c.clean_session);
    assert_eq!(c.keepalive_s, 10);
}

#[test]
fn connect_v5_with_properties_and_will() {
    #[rustfmt::skip]
    let bytes = [
        0x10, 0x1b,
        0x00, 0x04, b'M', b'Q', b'T', b'T', 0x05,
        0x06,                   // clean start + will (QoS 0)
        0x00, 0x02,             // keepalive 2
        0x05, 0x11, 0, 0, 0, 10, // properties: session expiry 10
        0x00, 0x01, b'x',       // client id
        0x00,                   // will properties: none
        0x00, 0x01, b'w',       // will topic
        0x00, 0x02, b'h', b'i', // will payload
    ];
    let Packet::Connect(c) = packet(&bytes, None) else {
        panic!()
    };
    assert_eq!(c.version, Version::V5);
    assert!(c.will && c.clean_session);
    assert_eq!((c.client_id, c.keepalive_s), ("x", 2));
}

#[test]
fn connack_311_session_present_and_code() {
    let Packet::ConnAck(a) = packet(&[0x20, 0x02, 0x01, 0x00], None) else {
        panic!()
    };
    assert!(a.session_present);
    assert_eq!(a.code, 0);
    let Packet::ConnAck(a) = packet(&[0x20, 0x02, 0x00, 0x05], None) else {
        panic!()
    };
    assert_eq!(a.code, 5, "not authorised");
}

#[test]
fn publish_qos1_fixture() {
    #[rustfmt::skip]
    let bytes = [
        0x3b, 0x09,             // PUBLISH, DUP, QoS 1, RETAIN
        0x00, 0x03, b'a', b'/', b'b',
        0x00, 0x07,             // packet id 7
        b'h', b'i',             // payload
    ];
    let Packet::Publish(p) = packet(&bytes, None) else {
        panic!()
    };
    assert!(p.dup && p.retain);
    assert_eq!(
        (p.qos, p.topic, p.packet_id, p.payload),
        (1, "a/b", Some(7), &b"hi"[..])
    );
}

#[test]
fn publish_v5_skips_properties_before_payload() {
    #[rustfmt::skip]
    let bytes = [
        0x30, 0x0a,
        0x00, 0x01, b't',
        0x03, 0x01, 0x01, 0x23, // properties: payload format indicator, then 0x23 (topic alias id byte)
        b'p', b'q', b'r',
    ];
    let Packet::Publish(p) = packet(&bytes, Some(Version::V5)) else {
        panic!()
    };
    assert_eq!(p.payload, b"pqr");
    // The same bytes read as 3.1.1 put the properties into the payload.
    let Packet::Publish(p) = packet(&bytes, Some(Version::V3_1_1)) else {
        panic!()
    };
    assert_eq!(p.payload.len(), 7);
}

#[test]
fn subscribe_and_suback_fixtures() {
    #[rustfmt::skip]
    let sub = [
        0x82, 0x0e,
        0x00, 0x01,                           // packet id 1
        0x00, 0x03, b'a', b'/', b'#', 0x01,   // "a/#" QoS 1
        0x00, 0x03, b'b', b'/', b'+', 0x00,   // "b/+" QoS 0
    ];
    let Packet::Subscribe(s) = packet(&sub, None) else {
        panic!()
    };
    assert_eq!(s.packet_id, 1);
    let filters: Vec<_> = s.filters.map(|f| (f.filter, f.qos())).collect();
    assert_eq!(filters, vec![("a/#", Some(1)), ("b/+", Some(0))]);

    let Packet::SubAck(a) = packet(&[0x90, 0x04, 0x00, 0x01, 0x01, 0x80], None) else {
        panic!()
    };
    assert_eq!((a.packet_id, a.codes), (1, &[1u8, 0x80][..]));
}

#[test]
fn v5_disconnect_with_reason_code_and_no_property_length_is_valid() {
    // mosquitto sends this form; some client codecs reject it.
    let Packet::Disconnect(d) = packet(&[0xe0, 0x01, 0x8e], Some(Version::V5)) else {
        panic!()
    };
    assert_eq!(d.reason_code, Some(0x8e), "session taken over");
    let Packet::Disconnect(d) = packet(&[0xe0, 0x00], None) else {
        panic!()
    };
    assert_eq!(d.reason_code, None);
}

#[test]
fn pings_and_acks() {
    assert_eq!(packet(&[0xc0, 0x00], None), Packet::PingReq);
    assert_eq!(packet(&[0xd0, 0x00], None), Packet::PingResp);
    let Packet::PubAck(a) = packet(&[0x40, 0x02, 0x12, 0x34], None) else {
        panic!()
    };
    assert_eq!(a.packet_id, 0x1234);
    let Packet::PubRel(a) = packet(&[0x62, 0x02, 0x00, 0x01], None) else {
        panic!()
    };
    assert_eq!(a.packet_id, 1);
}

#[test]
fn packet_id_zero_is_reported_not_rejected() {
    // rumqttc writes 0 in packets its event loop has not numbered yet; framing is unaffected.
    let Packet::PubAck(a) = packet(&[0x40, 0x02, 0x00, 0x00], None) else {
        panic!()
    };
    assert_eq!(a.packet_id, 0);
}

#[test]
fn malformed_inputs_are_named() {
    let cases: &[(&[u8], Malformed)] = &[
        (&[0x00, 0x00], Malformed::ReservedPacketType),
        (
            &[0xc1, 0x00],
            Malformed::BadFlags {
                packet: "PINGREQ",
                flags: 1,
            },
        ),
        (
            &[0x80, 0x00],
            Malformed::BadFlags {
                packet: "SUBSCRIBE",
                flags: 0,
            },
        ),
        (&[0x36, 0x00], Malformed::InvalidQos),
        (
            &[0x30, 0xff, 0xff, 0xff, 0xff],
            Malformed::RemainingLengthTooLong,
        ),
        (
            &[0xc0, 0x01, 0x00],
            Malformed::TrailingBytes {
                packet: "PINGREQ",
                extra: 1,
            },
        ),
        (
            &[0x30, 0x03, 0x00, 0x05, b'a'],
            Malformed::Truncated { packet: "PUBLISH" },
        ),
        (
            &[0x30, 0x04, 0x00, 0x02, 0xff, 0xfe],
            Malformed::InvalidUtf8,
        ),
        (
            &[0x82, 0x02, 0x00, 0x01],
            Malformed::NoFilters {
                packet: "SUBSCRIBE",
            },
        ),
        (
            &[0x10, 0x06, 0x00, 0x04, b'H', b'T', b'T', b'P'],
            Malformed::UnknownProtocol,
        ),
    ];
    for (bytes, want) in cases {
        assert_eq!(
            decode(bytes, None),
            Decoded::Malformed(*want),
            "{bytes:02x?}"
        );
    }
    assert_eq!(
        decode(&[0xf0, 0x00], Some(Version::V3_1_1)),
        Decoded::Malformed(Malformed::AuthBeforeV5)
    );
}

#[test]
fn incomplete_packets_say_how_much_is_missing() {
    assert!(matches!(
        decode(&[], None),
        Decoded::Incomplete {
            needed: 1,
            header: None
        }
    ));
    assert!(matches!(
        decode(&[0x30, 0x80], None),
        Decoded::Incomplete { header: None, .. }
    ));
    match decode(&CONNECT_V311[..10], None) {
        Decoded::Incomplete {
            needed,
            header: Some(h),
        } => {
            assert_eq!(needed, CONNECT_V311.len() - 10);
            assert_eq!(h.packet_type, PacketType::Connect);
        }
        other => panic!("{other:?}"),
    }
}

// ---- rumqttc's codec as an oracle -------------------------------------------------------------

fn v4_packets() -> Vec<rumqttc::mqttbytes::v4::Packet> {
    use rumqttc::mqttbytes::v4::*;
    use rumqttc::mqttbytes::QoS;
    let mut connect = Connect::new("oracle-client");
    connect.keep_alive = 7;
    connect.clean_session = false;
    connect.last_will = Some(LastWill::new("will/t", "bye", QoS::AtLeastOnce, true));
    connect.login = Some(Login::new("user", "pw"));
    let mut publish = Publish::new("sensors/42/temp", QoS::AtLeastOnce, vec![7u8; 300]);
    publish.pkid = 99;
    publish.retain = true;
    vec![
        Packet::Connect(connect),
        Packet::ConnAck(ConnAck::new(ConnectReturnCode::Success, true)),
        Packet::Publish(publish),
        Packet::Publish(Publish::new("q0", QoS::AtMostOnce, "x")),
        Packet::PubAck(PubAck::new(99)),
        Packet::PubRec(PubRec::new(3)),
        Packet::PubRel(PubRel::new(3)),
        Packet::PubComp(PubComp::new(3)),
        Packet::Subscribe(Subscribe::new_many([
            SubscribeFilter::new("a/#".into(), QoS::ExactlyOnce),
            SubscribeFilter::new("b".into(), QoS::AtMostOnce),
        ])),
        Packet::SubAck(SubAck::new(
            5,
            vec![
                SubscribeReasonCode::Success(QoS::AtLeastOnce),
                SubscribeReasonCode::Failure,
            ],
        )),
        Packet::Unsubscribe(Unsubscribe::new("a/#")),
        Packet::UnsubAck(UnsubAck::new(6)),
        Packet::PingReq,
        Packet::PingResp,
        Packet::Disconnect,
    ]
}

#[test]
fn agrees_with_rumqttc_v4_codec_on_every_packet_type() {
    use rumqttc::mqttbytes::v4::Packet as R;
    use rumqttc::mqttbytes::QoS;
    let mut stream = BytesMut::new();
    for p in v4_packets() {
        p.write(&mut stream, 1 << 20).unwrap();
    }
    let bytes = stream.clone().freeze();
    let mut offset = 0;
    let mut version = None;
    let mut oracle = stream;
    for _ in 0..v4_packets().len() {
        let want = R::read(&mut oracle, 1 << 20).unwrap();
        let Decoded::Packet { header, packet } = decode(&bytes[offset..], version) else {
            let got = decode(&bytes[offset..], version);
            panic!("ours failed at offset {offset} on {want:?}: {got:?}")
        };
        offset += header.total_len();
        let qos = |q: QoS| q as u8;
        match (&want, &packet) {
            (R::Connect(w), Packet::Connect(g)) => {
                assert_eq!(g.client_id, w.client_id);
                assert_eq!(g.keepalive_s, w.keep_alive);
                assert_eq!(g.clean_session, w.clean_session);
                assert_eq!(g.will, w.last_will.is_some());
                assert_eq!(g.username, w.login.as_ref().map(|l| l.username.as_str()));
                version = Some(g.version);
            }
            (R::ConnAck(w), Packet::ConnAck(g)) => {
                assert_eq!(g.session_present, w.session_present);
                assert_eq!(g.code, w.code as u8);
            }
            (R::Publish(w), Packet::Publish(g)) => {
                assert_eq!(g.topic, w.topic);
                assert_eq!(g.qos, qos(w.qos));
                assert_eq!(g.retain, w.retain);
                assert_eq!(g.dup, w.dup);
                assert_eq!(g.packet_id.unwrap_or(0), w.pkid);
                assert_eq!(g.payload, &w.payload[..]);
            }
            (R::PubAck(w), Packet::PubAck(g)) => assert_eq!(g.packet_id, w.pkid),
            (R::PubRec(w), Packet::PubRec(g)) => assert_eq!(g.packet_id, w.pkid),
            (R::PubRel(w), Packet::PubRel(g)) => assert_eq!(g.packet_id, w.pkid),
            (R::PubComp(w), Packet::PubComp(g)) => assert_eq!(g.packet_id, w.pkid),
            (R::Subscribe(w), Packet::Subscribe(g)) => {
                assert_eq!(g.packet_id, w.pkid);
                let ours: Vec<_> = g.filters.map(|f| (f.filter.to_string(), f.qos())).collect();
                let theirs: Vec<_> = w
                    .filters
                    .iter()
                    .map(|f| (f.path.clone(), Some(qos(f.qos))))
                    .collect();
                assert_eq!(ours, theirs);
            }
            (R::SubAck(w), Packet::SubAck(g)) => {
                assert_eq!(g.packet_id, w.pkid);
                assert_eq!(g.codes.len(), w.return_codes.len());
            }
            (R::Unsubscribe(w), Packet::Unsubscribe(g)) => {
                assert_eq!(g.packet_id, w.pkid);
                let ours: Vec<_> = g.filters.map(|f| f.filter.to_string()).collect();
                assert_eq!(ours, w.topics);
            }
            (R::UnsubAck(w), Packet::UnsubAck(g)) => assert_eq!(g.packet_id, w.pkid),
            (R::PingReq, Packet::PingReq) | (R::PingResp, Packet::PingResp) => {}
            (R::Disconnect, Packet::Disconnect(_)) => {}
            (w, g) => panic!("disagree: rumqttc {w:?}, ours {g:?}"),
        }
    }
    assert_eq!(offset, bytes.len());
}

#[test]
fn agrees_with_rumqttc_v5_codec_on_connect_publish_and_suback() {
    use rumqttc::v5::mqttbytes::v5 as r5;
    use rumqttc::v5::mqttbytes::QoS;
    let mut stream = BytesMut::new();
    let connect = r5::Connect {
        keep_alive: 5,
        client_id: "v5-client".into(),
        clean_start: true,
        properties: Some(r5::ConnectProperties {
            session_expiry_interval: Some(30),
            ..r5::ConnectProperties::new()
        }),
    };
    r5::Packet::Connect(connect, None, None)
        .write(&mut stream, None)
        .unwrap();
    let mut publish = r5::Publish::new("v5/topic", QoS::AtLeastOnce, vec![1u8, 2, 3], None);
    publish.pkid = 11;
    publish.properties = Some(r5::PublishProperties {
        message_expiry_interval: Some(60),
        ..Default::default()
    });
    r5::Packet::Publish(publish)
        .write(&mut stream, None)
        .unwrap();
    let codes = vec![r5::SubscribeReasonCode::Success(QoS::AtMostOnce)];
    let suback = r5::SubAck {
        pkid: 4,
        return_codes: codes,
        properties: None,
    };
    r5::Packet::SubAck(suback).write(&mut stream, None).unwrap();

    let bytes = stream.freeze();
    let Decoded::Packet {
        header,
        packet: Packet::Connect(c),
    } = decode(&bytes, None)
    else {
        panic!()
    };
    assert_eq!(
        (c.version, c.client_id, c.keepalive_s),
        (Version::V5, "v5-client", 5)
    );
    let rest = &bytes[header.total_len()..];
    let Decoded::Packet {
        header,
        packet: Packet::Publish(p),
    } = decode(rest, Some(Version::V5))
    else {
        panic!()
    };
    assert_eq!(
        (p.topic, p.packet_id, p.payload),
        ("v5/topic", Some(11), &[1u8, 2, 3][..])
    );
    let rest = &rest[header.total_len()..];
    let Decoded::Packet {
        packet: Packet::SubAck(s),
        ..
    } = decode(rest, Some(Version::V5))
    else {
        panic!()
    };
    assert_eq!((s.packet_id, s.codes), (4, &[0u8][..]));
}

// ---- stream decoder ---------------------------------------------------------------------------

fn oracle_stream() -> Vec<u8> {
    let mut stream = BytesMut::new();
    for p in v4_packets() {
        p.write(&mut stream, 1 << 20).unwrap();
    }
    stream.to_vec()
}

/// Feeds `chunks` the way the proxy does and returns the sequence of packet types and raw bytes.
fn run_stream(decoder: &mut StreamDecoder, chunks: &[&[u8]]) -> (Vec<PacketType>, usize) {
    let mut buf: Vec<u8> = Vec::new();
    let mut types = Vec::new();
    let mut raw = 0;
    for chunk in chunks {
        buf.extend_from_slice(chunk);
        loop {
            let unit = decoder.next(&buf);
            let len = unit.len();
            match unit {
                Unit::NeedMore => break,
                Unit::Packet { packet, .. } => types.push(packet.packet_type()),
                Unit::OversizedStart { header, .. } | Unit::Frame { header, .. } => {
                    types.push(header.packet_type)
                }
                Unit::Raw { len } => raw += len,
                Unit::Continuation { .. } | Unit::Malformed { .. } => {}
            }
            buf.drain(..len);
        }
    }
    (types, raw)
}

#[test]
fn stream_yields_the_same_packets_at_every_split_point() {
    let stream = oracle_stream();
    let (whole, raw) = run_stream(&mut StreamDecoder::new(Role::Client, 1 << 20), &[&stream]);
    assert_eq!(whole.len(), v4_packets().len());
    assert_eq!(raw, 0);
    for split in 1..stream.len() {
        let (a, b) = stream.split_at(split);
        let mut d = StreamDecoder::new(Role::Client, 1 << 20);
        assert_eq!(
            run_stream(&mut d, &[a, b]),
            (whole.clone(), 0),
            "split at {split}"
        );
        assert_eq!(d.offset(), stream.len() as u64);
    }
}

#[test]
fn frame_mode_finds_the_same_boundaries_and_still_decodes_connect() {
    let stream = oracle_stream();
    let mut full = StreamDecoder::new(Role::Client, 1 << 20);
    let mut framed = StreamDecoder::new(Role::Client, 1 << 20);
    let (mut a, mut b) = (&stream[..], &stream[..]);
    let mut kinds = Vec::new();
    loop {
        let (u, v) = (full.next(a), framed.next_frame(b));
        if u == Unit::NeedMore {
            assert_eq!(v, Unit::NeedMore);
            break;
        }
        assert_eq!(u.len(), v.len());
        let Unit::Packet { packet, .. } = &u else {
            panic!("{u:?}")
        };
        match &v {
            Unit::Frame { header, .. } => assert_eq!(header.packet_type, packet.packet_type()),
            Unit::Packet { .. } => kinds.push(packet.packet_type()),
            other => panic!("{other:?}"),
        }
        a = &a[u.len()..];
        b = &b[v.len()..];
    }
    assert_eq!(
        kinds,
        vec![PacketType::Connect],
        "only CONNECT is decoded in frame mode"
    );
    assert_eq!(framed.version(), Some(Version::V3_1_1));
}

#[test]
fn a_stream_that_is_not_mqtt_becomes_raw_and_is_fully_accounted() {
    let http = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    let mut d = StreamDecoder::new(Role::Client, 4096);
    assert!(matches!(
        d.next(http),
        Unit::Malformed {
            error: StreamError::NotMqtt { .. },
            offset: 0
        }
    ));
    assert_eq!(d.mode(), StreamMode::Raw);
    assert_eq!(d.next(http), Unit::Raw { len: http.len() });

    // A valid packet of the wrong kind first is also "not MQTT".
    let mut d = StreamDecoder::new(Role::Broker, 4096);
    assert!(matches!(
        d.next(&[0xc0, 0x00]),
        Unit::Malformed {
            error: StreamError::NotMqtt {
                expected: "CONNACK",
                found: "PINGREQ"
            },
            ..
        }
    ));
}

#[test]
fn garbage_after_valid_packets_switches_to_raw_at_the_right_offset() {
    let mut bytes = CONNECT_V311.to_vec();
    bytes.extend_from_slice(&[0xc0, 0x00]); // PINGREQ
    bytes.extend_from_slice(&[0x00, 0x01, 0x02]); // reserved type 0
    let mut d = StreamDecoder::new(Role::Client, 4096);
    let (types, raw) = run_stream(&mut d, &[&bytes]);
    assert_eq!(types, vec![PacketType::Connect, PacketType::PingReq]);
    assert_eq!(raw, 3);
    assert_eq!(d.offset(), bytes.len() as u64);
}

#[test]
fn oversized_packets_stream_through_without_being_buffered_whole() {
    let mut bytes = CONNECT_V311.to_vec();
    let payload = vec![0xabu8; 10_000];
    let mut publish = vec![0x30];
    let remaining = 2 + 1 + payload.len();
    publish.extend_from_slice(&[(remaining & 0x7f) as u8 | 0x80, (remaining >> 7) as u8]);
    publish.extend_from_slice(&[0x00, 0x01, b't']);
    publish.extend_from_slice(&payload);
    bytes.extend_from_slice(&publish);
    bytes.extend_from_slice(&[0xc0, 0x00]);
    let mut d = StreamDecoder::new(Role::Client, 1024);
    // Feed in 700-byte chunks so the decoder never sees the whole PUBLISH.
    let chunks: Vec<&[u8]> = bytes.chunks(700).collect();
    let (types, raw) = run_stream(&mut d, &chunks);
    assert_eq!(
        types,
        vec![
            PacketType::Connect,
            PacketType::Publish,
            PacketType::PingReq
        ]
    );
    assert_eq!(raw, 0);
    assert_eq!(d.offset(), bytes.len() as u64);
}

/// Deterministic xorshift so failures reproduce without a crate.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn never_panics_on_arbitrary_or_mutated_bytes() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let valid = oracle_stream();
    for round in 0..20_000 {
        let len = (rng.next() % 64) as usize;
        let mut bytes: Vec<u8> = if round % 2 == 0 {
            (0..len).map(|_| rng.next() as u8).collect()
        } else {
            // Mutate a valid stream: flips near packet structure find more edge cases.
            let mut v = valid.clone();
            for _ in 0..1 + rng.next() % 4 {
                let i = (rng.next() as usize) % v.len();
                v[i] = rng.next() as u8;
            }
            v.truncate((rng.next() as usize) % (v.len() + 1));
            v
        };
        for version in [None, Some(Version::V3_1_1), Some(Version::V5)] {
            let _ = decode(&bytes, version);
        }
        let mut d = StreamDecoder::new(Role::Client, 128);
        let mut consumed = 0;
        for _ in 0..bytes.len() + 2 {
            let unit = d.next(&bytes);
            if unit == Unit::NeedMore {
                break;
            }
            let n = unit.len();
            bytes.drain(..n);
            consumed += n;
        }
        assert_eq!(d.offset(), consumed as u64);
    }
}
