//! What reason and return codes mean: MQTT 5's reason codes (§2.4, table 2-6) and MQTT
//! 3.1.1's CONNACK return codes (§3.2.2.3), by the names the specifications give them, so a
//! report can say "DISCONNECT 0x8E (Session taken over)" rather than a number.

use crate::{PacketType, Version};

/// The name of `code` as `packet` of a connection speaking `version` carries it; `None` for a
/// code that packet cannot carry.
pub fn reason_name(version: Version, packet: PacketType, code: u8) -> Option<&'static str> {
    if version != Version::V5 {
        // MQTT 3.1 and 3.1.1 have return codes in CONNACK only.
        return match (packet, code) {
            (PacketType::ConnAck, 0) => Some("Connection accepted"),
            (PacketType::ConnAck, 1) => Some("unacceptable protocol version"),
            (PacketType::ConnAck, 2) => Some("identifier rejected"),
            (PacketType::ConnAck, 3) => Some("server unavailable"),
            (PacketType::ConnAck, 4) => Some("bad user name or password"),
            (PacketType::ConnAck, 5) => Some("not authorized"),
            _ => None,
        };
    }
    Some(match code {
        0x00 => match packet {
            PacketType::Disconnect => "Normal disconnection",
            PacketType::SubAck => "Granted QoS 0",
            _ => "Success",
        },
        0x01 => "Granted QoS 1",
        0x02 => "Granted QoS 2",
        0x04 => "Disconnect with Will Message",
        0x10 => "No matching subscribers",
        0x11 => "No subscription existed",
        0x18 => "Continue authentication",
        0x19 => "Re-authenticate",
        0x80 => "Unspecified error",
        0x81 => "Malformed Packet",
        0x82 => "Protocol Error",
        0x83 => "Implementation specific error",
        0x84 => "Unsupported Protocol Version",
        0x85 => "Client Identifier not valid",
        0x86 => "Bad User Name or Password",
        0x87 => "Not authorized",
        0x88 => "Server unavailable",
        0x89 => "Server busy",
        0x8A => "Banned",
        0x8B => "Server shutting down",
        0x8C => "Bad authentication method",
        0x8D => "Keep Alive timeout",
        0x8E => "Session taken over",
        0x8F => "Topic Filter invalid",
        0x90 => "Topic Name invalid",
        0x91 => "Packet Identifier in use",
        0x92 => "Packet Identifier not found",
        0x93 => "Receive Maximum exceeded",
        0x94 => "Topic Alias invalid",
        0x95 => "Packet too large",
        0x96 => "Message rate too high",
        0x97 => "Quota exceeded",
        0x98 => "Administrative action",
        0x99 => "Payload format invalid",
        0x9A => "Retain not supported",
        0x9B => "QoS not supported",
        0x9C => "Use another server",
        0x9D => "Server moved",
        0x9E => "Shared Subscriptions not supported",
        0x9F => "Connection rate exceeded",
        0xA0 => "Maximum connect time",
        0xA1 => "Subscription Identifiers not supported",
        0xA2 => "Wildcard Subscriptions not supported",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_read_as_their_specification_names() {
        let v5 = |p, c| reason_name(Version::V5, p, c);
        assert_eq!(v5(PacketType::Disconnect, 0x8E), Some("Session taken over"));
        assert_eq!(v5(PacketType::Disconnect, 0), Some("Normal disconnection"));
        assert_eq!(v5(PacketType::ConnAck, 0x89), Some("Server busy"));
        assert_eq!(v5(PacketType::ConnAck, 0x03), None);
        assert_eq!(
            reason_name(Version::V3_1_1, PacketType::ConnAck, 5),
            Some("not authorized")
        );
        assert_eq!(
            reason_name(Version::V3_1_1, PacketType::Disconnect, 0),
            None
        );
    }
}
