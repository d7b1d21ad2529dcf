//! Minimal MQTT 3.1.1 encoders for the packets linecut synthesises itself: test traffic, the
//! captures its benchmarks and tests generate, and the will watcher's few packets (it speaks
//! MQTT itself so that it stamps each packet when its bytes are read). Not a client codec: no
//! properties, QoS 0 PUBLISH only.

/// Appends MQTT's variable-length "remaining length".
pub fn remaining_length(mut len: usize, out: &mut Vec<u8>) {
    loop {
        let mut byte = (len % 128) as u8;
        len /= 128;
        if len > 0 {
            byte |= 0x80;
        }
        out.push(byte);
        if len == 0 {
            break;
        }
    }
}

fn packet(first_byte: u8, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 5);
    out.push(first_byte);
    remaining_length(body.len(), &mut out);
    out.extend_from_slice(body);
    out
}

/// A CONNECT with a clean session and no will, user name or password.
pub fn connect(client_id: &str, keepalive_s: u16) -> Vec<u8> {
    let mut body = vec![0x00, 0x04, b'M', b'Q', b'T', b'T', 0x04, 0x02];
    body.extend_from_slice(&keepalive_s.to_be_bytes());
    body.extend_from_slice(&(client_id.len() as u16).to_be_bytes());
    body.extend_from_slice(client_id.as_bytes());
    packet(0x10, &body)
}

/// A QoS 0 PUBLISH.
pub fn publish(topic: &str, payload: &[u8]) -> Vec<u8> {
    let mut body = Vec::with_capacity(2 + topic.len() + payload.len());
    body.extend_from_slice(&(topic.len() as u16).to_be_bytes());
    body.extend_from_slice(topic.as_bytes());
    body.extend_from_slice(payload);
    packet(0x30, &body)
}

/// A SUBSCRIBE for one filter.
pub fn subscribe(packet_id: u16, filter: &str, qos: u8) -> Vec<u8> {
    subscribe_all(packet_id, [(filter, qos)])
}

/// A SUBSCRIBE for every filter given, each with its QoS.
pub fn subscribe_all<'a>(
    packet_id: u16,
    filters: impl IntoIterator<Item = (&'a str, u8)>,
) -> Vec<u8> {
    let mut body = packet_id.to_be_bytes().to_vec();
    for (filter, qos) in filters {
        body.extend_from_slice(&(filter.len() as u16).to_be_bytes());
        body.extend_from_slice(filter.as_bytes());
        body.push(qos);
    }
    packet(0x82, &body)
}

/// A PUBACK.
pub fn puback(packet_id: u16) -> Vec<u8> {
    packet(0x40, &packet_id.to_be_bytes())
}

/// A PINGREQ.
pub fn pingreq() -> Vec<u8> {
    packet(0xC0, &[])
}

/// A DISCONNECT (MQTT 3.1.1: no reason code).
pub fn disconnect() -> Vec<u8> {
    packet(0xE0, &[])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{decode, Decoded, Packet};

    #[test]
    fn encoded_packets_decode_back() {
        let c = connect("dev-01", 60);
        match decode(&c, None) {
            Decoded::Packet {
                packet: Packet::Connect(p),
                ..
            } => {
                assert_eq!((p.client_id, p.keepalive_s), ("dev-01", 60));
            }
            other => panic!("{other:?}"),
        }
        let payload = vec![b'x'; 200];
        let p = publish("a/b", &payload);
        assert_eq!(&p[..3], &[0x30, 0xcd, 0x01], "two-byte remaining length");
        match decode(&p, None) {
            Decoded::Packet {
                packet: Packet::Publish(p),
                ..
            } => {
                assert_eq!((p.topic, p.payload.len()), ("a/b", 200));
            }
            other => panic!("{other:?}"),
        }
        match decode(&subscribe(7, "s/#", 1), None) {
            Decoded::Packet {
                packet: Packet::Subscribe(s),
                ..
            } => {
                assert_eq!(s.packet_id, 7);
                assert_eq!(s.filters.count(), 1);
            }
            other => panic!("{other:?}"),
        }
        match decode(&subscribe_all(8, [("a/1", 1), ("a/2", 0)]), None) {
            Decoded::Packet {
                packet: Packet::Subscribe(s),
                ..
            } => assert_eq!(s.filters.count(), 2),
            other => panic!("{other:?}"),
        }
        let v = Some(crate::Version::V3_1_1);
        assert!(
            matches!(decode(&puback(9), v), Decoded::Packet { packet: Packet::PubAck(a), .. } if a.packet_id == 9)
        );
        assert!(matches!(
            decode(&pingreq(), v),
            Decoded::Packet {
                packet: Packet::PingReq,
                ..
            }
        ));
        assert!(matches!(
            decode(&disconnect(), v),
            Decoded::Packet {
                packet: Packet::Disconnect(_),
                ..
            }
        ));
    }
}
