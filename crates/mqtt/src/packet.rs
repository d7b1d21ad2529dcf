//! Borrowed views of the MQTT control packets and the [`decode`] entry point.
//!
//! Each packet is checked completely when decoded (lengths, UTF-8, reserved bits, trailing
//! bytes), so that a view, once returned, describes bytes that really are that packet, and its
//! accessors cannot fail. The one rule not enforced is "packet identifiers are non-zero": it does
//! not affect framing, some client codecs write 0 before their event loop assigns an id, and an
//! observer that gave up on the stream over it would report less, not more. MQTT 5 property blocks are bounds-checked and skipped: linecut reports
//! what an outage experiment needs (ids, keepalives, codes, topics), not every property.

use crate::cursor::Cursor;
use crate::header::{parse_fixed_header, FixedHeader, PacketType};
use crate::properties::{self, Properties};
use crate::{Malformed, Version};

/// What [`decode`] found at the start of a buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decoded<'a> {
    /// A whole, valid packet occupying the first `header.total_len()` bytes.
    Packet {
        header: FixedHeader,
        packet: Packet<'a>,
    },
    /// The buffer holds the start of a packet; at least `needed` more bytes are required.
    /// `header` is known once the fixed header is complete.
    Incomplete {
        needed: usize,
        header: Option<FixedHeader>,
    },
    /// The bytes are not a valid packet.
    Malformed(Malformed),
}

/// One decoded packet, borrowing from the input buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet<'a> {
    Connect(Connect<'a>),
    ConnAck(ConnAck),
    Publish(Publish<'a>),
    PubAck(Ack),
    PubRec(Ack),
    PubRel(Ack),
    PubComp(Ack),
    Subscribe(Subscribe<'a>),
    SubAck(SubAck<'a>),
    Unsubscribe(Unsubscribe<'a>),
    UnsubAck(Ack),
    PingReq,
    PingResp,
    Disconnect(Disconnect),
    Auth(Disconnect),
}

impl Packet<'_> {
    pub fn packet_type(&self) -> PacketType {
        match self {
            Packet::Connect(_) => PacketType::Connect,
            Packet::ConnAck(_) => PacketType::ConnAck,
            Packet::Publish(_) => PacketType::Publish,
            Packet::PubAck(_) => PacketType::PubAck,
            Packet::PubRec(_) => PacketType::PubRec,
            Packet::PubRel(_) => PacketType::PubRel,
            Packet::PubComp(_) => PacketType::PubComp,
            Packet::Subscribe(_) => PacketType::Subscribe,
            Packet::SubAck(_) => PacketType::SubAck,
            Packet::Unsubscribe(_) => PacketType::Unsubscribe,
            Packet::UnsubAck(_) => PacketType::UnsubAck,
            Packet::PingReq => PacketType::PingReq,
            Packet::PingResp => PacketType::PingResp,
            Packet::Disconnect(_) => PacketType::Disconnect,
            Packet::Auth(_) => PacketType::Auth,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Connect<'a> {
    pub version: Version,
    pub client_id: &'a str,
    pub keepalive_s: u16,
    pub clean_session: bool,
    pub will: bool,
    pub username: Option<&'a str>,
    /// MQTT 5: the CONNECT's properties, with the will's Will Delay Interval.
    pub properties: Properties,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnAck {
    pub session_present: bool,
    /// 3.1.x return code or MQTT 5 reason code (0 is success in both).
    pub code: u8,
    /// MQTT 5: what the broker granted (Server Keep Alive, Session Expiry, Receive Maximum).
    pub properties: Properties,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Publish<'a> {
    pub dup: bool,
    pub qos: u8,
    pub retain: bool,
    pub topic: &'a str,
    pub packet_id: Option<u16>,
    pub payload: &'a [u8],
}

/// PUBACK, PUBREC, PUBREL, PUBCOMP and UNSUBACK: a packet id and, in MQTT 5, a reason code
/// (for UNSUBACK, the first of its per-filter codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ack {
    pub packet_id: u16,
    pub reason_code: Option<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subscribe<'a> {
    pub packet_id: u16,
    pub filters: FilterIter<'a>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unsubscribe<'a> {
    pub packet_id: u16,
    pub filters: FilterIter<'a>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubAck<'a> {
    pub packet_id: u16,
    /// Granted QoS (0-2) or failure codes (0x80 and up), one per requested filter.
    pub codes: &'a [u8],
}

/// DISCONNECT (and AUTH): an MQTT 5 reason code when present.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Disconnect {
    pub reason_code: Option<u8>,
}

/// One topic filter of a SUBSCRIBE (with its options byte) or UNSUBSCRIBE (without).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubscriptionFilter<'a> {
    pub filter: &'a str,
    pub options: Option<u8>,
}

impl SubscriptionFilter<'_> {
    /// Requested maximum QoS (the low two bits of the options byte).
    pub fn qos(&self) -> Option<u8> {
        self.options.map(|o| o & 0b11)
    }
}

/// Iterator over the (already validated) filters of a SUBSCRIBE or UNSUBSCRIBE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FilterIter<'a> {
    bytes: &'a [u8],
    with_options: bool,
}

impl<'a> Iterator for FilterIter<'a> {
    type Item = SubscriptionFilter<'a>;

    fn next(&mut self) -> Option<Self::Item> {
        let mut cursor = Cursor::new(self.bytes);
        let filter = std::str::from_utf8(cursor.binary()?).ok()?;
        let options = if self.with_options {
            Some(cursor.u8()?)
        } else {
            None
        };
        self.bytes = cursor.rest();
        Some(SubscriptionFilter { filter, options })
    }
}

/// Decodes the packet at the start of `bytes`.
///
/// `version` is the connection's protocol version once its CONNECT has been seen; `None` decodes
/// as 3.1.1 (a CONNECT carries its own version). Never panics, whatever the input.
pub fn decode(bytes: &[u8], version: Option<Version>) -> Decoded<'_> {
    let header = match parse_fixed_header(bytes, version) {
        Err(e) => return Decoded::Malformed(e),
        Ok(None) => {
            // At most five header bytes, and at least one more than we have.
            return Decoded::Incomplete {
                needed: 1,
                header: None,
            };
        }
        Ok(Some(h)) => h,
    };
    let total = header.total_len();
    if bytes.len() < total {
        return Decoded::Incomplete {
            needed: total - bytes.len(),
            header: Some(header),
        };
    }
    let body = &bytes[header.header_len as usize..total];
    match parse_body(header, body, version) {
        Ok(packet) => Decoded::Packet { header, packet },
        Err(e) => Decoded::Malformed(e),
    }
}

/// Parses a packet body whose fixed header has been checked.
pub(crate) fn parse_body(
    header: FixedHeader,
    body: &[u8],
    version: Option<Version>,
) -> Result<Packet<'_>, Malformed> {
    let v5 = version == Some(Version::V5);
    let name = header.packet_type.name();
    let truncated = Malformed::Truncated { packet: name };
    let mut c = Cursor::new(body);
    let packet = match header.packet_type {
        PacketType::Connect => return parse_connect(c),
        PacketType::ConnAck => {
            let flags = c.u8().ok_or(truncated)?;
            if flags & 0xfe != 0 {
                return Err(Malformed::ReservedBit { packet: name });
            }
            let code = c.u8().ok_or(truncated)?;
            let properties = if v5 && c.remaining() > 0 {
                properties::read(&mut c)?
            } else {
                Properties::default()
            };
            Packet::ConnAck(ConnAck {
                session_present: flags & 1 == 1,
                code,
                properties,
            })
        }
        PacketType::Publish => {
            let qos = (header.flags >> 1) & 0b11;
            let topic = utf8(c.binary().ok_or(truncated)?)?;
            let packet_id = if qos > 0 {
                Some(c.u16().ok_or(truncated)?)
            } else {
                None
            };
            if v5 {
                skip_properties(&mut c)?;
            }
            let payload = c.rest();
            c = Cursor::new(&[]);
            Packet::Publish(Publish {
                dup: header.flags & 0b1000 != 0,
                qos,
                retain: header.flags & 1 != 0,
                topic,
                packet_id,
                payload,
            })
        }
        PacketType::PubAck | PacketType::PubRec | PacketType::PubRel | PacketType::PubComp => {
            let packet_id = c.u16().ok_or(truncated)?;
            let mut reason_code = None;
            if v5 && c.remaining() > 0 {
                reason_code = Some(c.u8().ok_or(truncated)?);
                if c.remaining() > 0 {
                    skip_properties(&mut c)?;
                }
            }
            let ack = Ack {
                packet_id,
                reason_code,
            };
            match header.packet_type {
                PacketType::PubAck => Packet::PubAck(ack),
                PacketType::PubRec => Packet::PubRec(ack),
                PacketType::PubRel => Packet::PubRel(ack),
                _ => Packet::PubComp(ack),
            }
        }
        PacketType::Subscribe | PacketType::Unsubscribe => {
            let subscribe = header.packet_type == PacketType::Subscribe;
            let packet_id = c.u16().ok_or(truncated)?;
            if v5 {
                skip_properties(&mut c)?;
            }
            let filters = FilterIter {
                bytes: c.rest(),
                with_options: subscribe,
            };
            let mut count = 0;
            while c.remaining() > 0 {
                utf8(c.binary().ok_or(truncated)?)?;
                if subscribe {
                    let options = c.u8().ok_or(truncated)?;
                    let reserved = if v5 { 0b1100_0000 } else { 0b1111_1100 };
                    if options & reserved != 0 {
                        return Err(Malformed::ReservedBit { packet: name });
                    }
                    if options & 0b11 == 3 {
                        return Err(Malformed::InvalidQos);
                    }
                }
                count += 1;
            }
            if count == 0 {
                return Err(Malformed::NoFilters { packet: name });
            }
            if subscribe {
                Packet::Subscribe(Subscribe { packet_id, filters })
            } else {
                Packet::Unsubscribe(Unsubscribe { packet_id, filters })
            }
        }
        PacketType::SubAck => {
            let packet_id = c.u16().ok_or(truncated)?;
            if v5 {
                skip_properties(&mut c)?;
            }
            let codes = c.rest();
            if codes.is_empty() {
                return Err(truncated);
            }
            c = Cursor::new(&[]);
            Packet::SubAck(SubAck { packet_id, codes })
        }
        PacketType::UnsubAck => {
            let packet_id = c.u16().ok_or(truncated)?;
            let mut reason_code = None;
            if v5 {
                skip_properties(&mut c)?;
                reason_code = c.rest().first().copied();
                c = Cursor::new(&[]);
            }
            Packet::UnsubAck(Ack {
                packet_id,
                reason_code,
            })
        }
        PacketType::PingReq => Packet::PingReq,
        PacketType::PingResp => Packet::PingResp,
        PacketType::Disconnect | PacketType::Auth => {
            // MQTT 5 allows a reason code with no property length (mosquitto sends that form).
            let mut reason_code = None;
            if v5 && c.remaining() > 0 {
                reason_code = Some(c.u8().ok_or(truncated)?);
                if c.remaining() > 0 {
                    skip_properties(&mut c)?;
                }
            }
            let d = Disconnect { reason_code };
            if header.packet_type == PacketType::Auth {
                Packet::Auth(d)
            } else {
                Packet::Disconnect(d)
            }
        }
    };
    if c.remaining() > 0 {
        return Err(Malformed::TrailingBytes {
            packet: name,
            extra: c.remaining(),
        });
    }
    Ok(packet)
}

fn parse_connect(mut c: Cursor<'_>) -> Result<Packet<'_>, Malformed> {
    let truncated = Malformed::Truncated { packet: "CONNECT" };
    let protocol = c.binary().ok_or(truncated)?;
    if protocol != b"MQTT" && protocol != b"MQIsdp" {
        return Err(Malformed::UnknownProtocol);
    }
    let level = c.u8().ok_or(truncated)?;
    let version = match (protocol, level) {
        (b"MQTT", 4) => Version::V3_1_1,
        (b"MQTT", 5) => Version::V5,
        (b"MQIsdp", 3) => Version::V3_1,
        (b"MQTT", other) | (b"MQIsdp", other) => return Err(Malformed::UnsupportedLevel(other)),
        _ => return Err(Malformed::UnknownProtocol),
    };
    let v5 = version == Version::V5;
    let flags = c.u8().ok_or(truncated)?;
    if flags & 1 != 0 {
        return Err(Malformed::ReservedBit { packet: "CONNECT" });
    }
    let will = flags & 0b100 != 0;
    if (flags >> 3) & 0b11 == 3 {
        return Err(Malformed::InvalidQos);
    }
    let keepalive_s = c.u16().ok_or(truncated)?;
    let mut properties = if v5 {
        properties::read(&mut c)?
    } else {
        Properties::default()
    };
    let client_id = utf8(c.binary().ok_or(truncated)?)?;
    if will {
        if v5 {
            properties.will_delay_s = properties::read(&mut c)?.will_delay_s;
        }
        utf8(c.binary().ok_or(truncated)?)?;
        c.binary().ok_or(truncated)?;
    }
    let username = if flags & 0x80 != 0 {
        Some(utf8(c.binary().ok_or(truncated)?)?)
    } else {
        None
    };
    if flags & 0x40 != 0 {
        c.binary().ok_or(truncated)?;
    }
    if c.remaining() > 0 {
        return Err(Malformed::TrailingBytes {
            packet: "CONNECT",
            extra: c.remaining(),
        });
    }
    Ok(Packet::Connect(Connect {
        version,
        client_id,
        keepalive_s,
        clean_session: flags & 0b10 != 0,
        will,
        username,
        properties,
    }))
}

fn skip_properties(c: &mut Cursor<'_>) -> Result<(), Malformed> {
    let len = c.varint().ok_or(Malformed::BadProperties)?;
    c.take(len as usize).ok_or(Malformed::BadProperties)?;
    Ok(())
}

fn utf8(bytes: &[u8]) -> Result<&str, Malformed> {
    std::str::from_utf8(bytes).map_err(|_| Malformed::InvalidUtf8)
}
