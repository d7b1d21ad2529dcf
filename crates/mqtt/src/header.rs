//! The MQTT fixed header: packet type, flags, and the variable-length "remaining length".
//!
//! The fixed header is all a framer needs to find packet boundaries, so it is parsed separately
//! and first: a stream whose fixed headers make sense can be split into packets even when a
//! packet body is something this crate does not understand.

use crate::{Malformed, Version};

/// The largest remaining length four varint bytes can express (256 MiB - 1).
pub const MAX_REMAINING_LENGTH: u32 = 268_435_455;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PacketType {
    Connect = 1,
    ConnAck = 2,
    Publish = 3,
    PubAck = 4,
    PubRec = 5,
    PubRel = 6,
    PubComp = 7,
    Subscribe = 8,
    SubAck = 9,
    Unsubscribe = 10,
    UnsubAck = 11,
    PingReq = 12,
    PingResp = 13,
    Disconnect = 14,
    Auth = 15,
}

impl PacketType {
    /// Upper-case name as in the specification (and in tshark's output).
    pub fn name(self) -> &'static str {
        match self {
            PacketType::Connect => "CONNECT",
            PacketType::ConnAck => "CONNACK",
            PacketType::Publish => "PUBLISH",
            PacketType::PubAck => "PUBACK",
            PacketType::PubRec => "PUBREC",
            PacketType::PubRel => "PUBREL",
            PacketType::PubComp => "PUBCOMP",
            PacketType::Subscribe => "SUBSCRIBE",
            PacketType::SubAck => "SUBACK",
            PacketType::Unsubscribe => "UNSUBSCRIBE",
            PacketType::UnsubAck => "UNSUBACK",
            PacketType::PingReq => "PINGREQ",
            PacketType::PingResp => "PINGRESP",
            PacketType::Disconnect => "DISCONNECT",
            PacketType::Auth => "AUTH",
        }
    }

    /// The wire value (1..=15), as tshark's `mqtt.msgtype` prints it.
    pub fn code(self) -> u8 {
        self as u8
    }

    /// The type a [`name`](Self::name) names (how events files spell packet types). A match,
    /// not a search: the analyzer asks this of every packet event in a run.
    pub fn from_name(name: &str) -> Option<PacketType> {
        use PacketType::*;
        Some(match name {
            "CONNECT" => Connect,
            "CONNACK" => ConnAck,
            "PUBLISH" => Publish,
            "PUBACK" => PubAck,
            "PUBREC" => PubRec,
            "PUBREL" => PubRel,
            "PUBCOMP" => PubComp,
            "SUBSCRIBE" => Subscribe,
            "SUBACK" => SubAck,
            "UNSUBSCRIBE" => Unsubscribe,
            "UNSUBACK" => UnsubAck,
            "PINGREQ" => PingReq,
            "PINGRESP" => PingResp,
            "DISCONNECT" => Disconnect,
            "AUTH" => Auth,
            _ => return None,
        })
    }

    fn from_code(code: u8) -> Option<PacketType> {
        use PacketType::*;
        Some(match code {
            1 => Connect,
            2 => ConnAck,
            3 => Publish,
            4 => PubAck,
            5 => PubRec,
            6 => PubRel,
            7 => PubComp,
            8 => Subscribe,
            9 => SubAck,
            10 => Unsubscribe,
            11 => UnsubAck,
            12 => PingReq,
            13 => PingResp,
            14 => Disconnect,
            15 => Auth,
            _ => return None,
        })
    }

    /// The publish flow's packets: the ones a busy connection has thousands of.
    pub fn is_publish_flow(self) -> bool {
        matches!(
            self,
            PacketType::Publish
                | PacketType::PubAck
                | PacketType::PubRec
                | PacketType::PubRel
                | PacketType::PubComp
        )
    }
}

/// A parsed fixed header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FixedHeader {
    pub packet_type: PacketType,
    /// The low four bits of the first byte.
    pub flags: u8,
    /// Bytes after the fixed header.
    pub remaining_len: u32,
    /// Bytes of the fixed header itself (2 to 5).
    pub header_len: u8,
}

impl FixedHeader {
    /// Whole packet length on the wire.
    pub fn total_len(&self) -> usize {
        self.header_len as usize + self.remaining_len as usize
    }
}

/// Reads a variable byte integer. `Ok(None)` means more bytes are needed.
pub(crate) fn read_varint(bytes: &[u8]) -> Result<Option<(u32, usize)>, Malformed> {
    let mut value: u32 = 0;
    for (i, &byte) in bytes.iter().enumerate().take(4) {
        value |= u32::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Ok(Some((value, i + 1)));
        }
    }
    if bytes.len() >= 4 {
        Err(Malformed::RemainingLengthTooLong)
    } else {
        Ok(None)
    }
}

/// Parses the fixed header at the start of `bytes`. `Ok(None)` means more bytes are needed
/// (at most 5 in all). `version` decides whether AUTH is legal; `None` means not yet known.
pub fn parse_fixed_header(
    bytes: &[u8],
    version: Option<Version>,
) -> Result<Option<FixedHeader>, Malformed> {
    let Some(&first) = bytes.first() else {
        return Ok(None);
    };
    let packet_type = PacketType::from_code(first >> 4).ok_or(Malformed::ReservedPacketType)?;
    let flags = first & 0x0f;
    if packet_type == PacketType::Auth && version.is_some_and(|v| v != Version::V5) {
        return Err(Malformed::AuthBeforeV5);
    }
    let required = match packet_type {
        PacketType::Publish => None,
        PacketType::PubRel | PacketType::Subscribe | PacketType::Unsubscribe => Some(0b0010),
        _ => Some(0),
    };
    if let Some(required) = required {
        if flags != required {
            return Err(Malformed::BadFlags {
                packet: packet_type.name(),
                flags,
            });
        }
    } else if (flags >> 1) & 0b11 == 3 {
        return Err(Malformed::InvalidQos);
    }
    let Some((remaining_len, used)) = read_varint(&bytes[1..])? else {
        return Ok(None);
    };
    Ok(Some(FixedHeader {
        packet_type,
        flags,
        remaining_len,
        header_len: 1 + used as u8,
    }))
}
