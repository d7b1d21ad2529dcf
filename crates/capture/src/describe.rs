//! One MQTT packet as a linecut `mqtt_packet` event: the fields the analysis reads, taken from
//! the zero-copy packet view. Shared by the proxy (packets it forwards) and the capture reader
//! (packets it finds in a capture), so both describe the wire the same way.

use linecut_events::{Direction, Fate, MqttPacket, TopicFilter};
use linecut_mqtt::Packet;

/// Builds the event for one packet (fate filled in later by whoever decides it).
pub fn describe(conn: u64, dir: Direction, len: usize, packet: &Packet<'_>) -> MqttPacket {
    let mut event = MqttPacket {
        conn,
        dir,
        fate: Fate::Forwarded,
        packet_type: packet.packet_type().name().to_string(),
        len: len as u32,
        ..Default::default()
    };
    match packet {
        Packet::Connect(c) => {
            event.client_id = Some(c.client_id.to_string());
            event.keepalive_s = Some(c.keepalive_s);
            event.clean_session = Some(c.clean_session);
            event.protocol_version = Some(c.version.level());
            event.will = Some(c.will);
            event.session_expiry_s = c.properties.session_expiry_s;
            event.receive_maximum = c.properties.receive_maximum;
            event.will_delay_s = c.properties.will_delay_s;
        }
        Packet::ConnAck(a) => {
            event.return_code = Some(a.code);
            event.session_present = Some(a.session_present);
            event.session_expiry_s = a.properties.session_expiry_s;
            event.receive_maximum = a.properties.receive_maximum;
            event.server_keepalive_s = a.properties.server_keepalive_s;
        }
        Packet::Publish(p) => {
            event.topic = Some(p.topic.to_string());
            event.qos = Some(p.qos);
            event.dup = Some(p.dup);
            event.retain = Some(p.retain);
            event.packet_id = p.packet_id;
            event.payload_len = Some(p.payload.len() as u32);
        }
        Packet::PubAck(a)
        | Packet::PubRec(a)
        | Packet::PubRel(a)
        | Packet::PubComp(a)
        | Packet::UnsubAck(a) => {
            event.packet_id = Some(a.packet_id);
            event.reason_code = a.reason_code;
        }
        Packet::Subscribe(s) => {
            event.packet_id = Some(s.packet_id);
            event.topics = Some(
                s.filters
                    .map(|f| TopicFilter {
                        filter: f.filter.to_string(),
                        qos: f.qos(),
                    })
                    .collect(),
            );
        }
        Packet::Unsubscribe(u) => {
            event.packet_id = Some(u.packet_id);
            event.topics = Some(
                u.filters
                    .map(|f| TopicFilter {
                        filter: f.filter.to_string(),
                        qos: None,
                    })
                    .collect(),
            );
        }
        Packet::SubAck(a) => {
            event.packet_id = Some(a.packet_id);
            event.codes = Some(a.codes.to_vec());
        }
        Packet::Disconnect(d) | Packet::Auth(d) => event.reason_code = d.reason_code,
        Packet::PingReq | Packet::PingResp => {}
    }
    event
}
