//! Per-direction stream state: turning a TCP byte stream into units the proxy can act on.
//!
//! A [`StreamDecoder`] never owns bytes. The caller keeps a buffer, asks [`StreamDecoder::next`]
//! what is at its start, acts on that unit (forward, drop, hold), advances by the unit's length and
//! asks again. This keeps the decoder pure and lets the proxy forward whole packets, which is what
//! makes "drop whole packets" faults leave a stream that still parses.
//!
//! Three things make a real stream harder than a packet:
//! - **Not MQTT at all.** The first packet from a client must be CONNECT, from a broker CONNACK
//!   (or AUTH in MQTT 5). Anything else switches the stream to raw mode for good.
//! - **Desynchronised.** MQTT has no resynchronisation marker, so after a malformed packet the
//!   rest of the stream is raw bytes too; it is still forwarded untouched.
//! - **Oversized packets.** A PUBLISH may be up to 256 MiB; buffering one whole would let one
//!   client exhaust the proxy. Past `max_buffered` bytes a packet is reported by its header and its
//!   bytes stream through as continuation units.

use crate::header::FixedHeader;
use crate::packet::{decode, Decoded, Packet};
use crate::{Malformed, PacketType, Version};

/// Which endpoint wrote the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Client to broker: starts with CONNECT.
    Client,
    /// Broker to client: starts with CONNACK (or AUTH in MQTT 5).
    Broker,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamMode {
    /// Nothing decoded yet.
    Detecting,
    /// Packets are being decoded.
    Mqtt,
    /// Not MQTT, or lost sync: bytes pass through uninterpreted.
    Raw,
}

/// What is at the start of the buffer handed to [`StreamDecoder::next`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unit<'a> {
    /// A whole packet of `len` bytes.
    Packet { len: usize, packet: Packet<'a> },
    /// A whole packet of `len` bytes whose body was not examined ([`StreamDecoder::next_frame`]).
    Frame { len: usize, header: FixedHeader },
    /// The first `len` bytes of a packet larger than the decoder buffers; its remaining bytes
    /// arrive as [`Unit::Continuation`].
    OversizedStart { len: usize, header: FixedHeader },
    /// `len` more bytes of an oversized packet.
    Continuation { len: usize },
    /// `len` bytes of a stream that is not being decoded.
    Raw { len: usize },
    /// Decoding stopped here (consumes nothing); everything after is [`Unit::Raw`].
    Malformed {
        error: StreamError,
        /// Offset of the bad packet in the stream.
        offset: u64,
    },
    /// The buffer holds only part of a packet (or is empty): read more.
    NeedMore,
}

impl Unit<'_> {
    /// Bytes this unit consumes from the start of the buffer.
    pub fn len(&self) -> usize {
        match self {
            Unit::Packet { len, .. }
            | Unit::Frame { len, .. }
            | Unit::OversizedStart { len, .. }
            | Unit::Continuation { len }
            | Unit::Raw { len } => *len,
            Unit::Malformed { .. } | Unit::NeedMore => 0,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Why a stream stopped being decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum StreamError {
    #[error("malformed {0}")]
    Packet(Malformed),
    #[error("stream starts with {found}, not {expected}: not MQTT")]
    NotMqtt {
        expected: &'static str,
        found: &'static str,
    },
}

/// Decoding state of one direction of one connection.
#[derive(Debug, Clone)]
pub struct StreamDecoder {
    role: Role,
    mode: StreamMode,
    version: Option<Version>,
    max_buffered: usize,
    /// Bytes of an oversized packet still to pass through.
    continuation_left: u64,
    offset: u64,
}

impl StreamDecoder {
    /// `max_buffered` is the largest packet decoded whole; larger ones stream through.
    pub fn new(role: Role, max_buffered: usize) -> Self {
        StreamDecoder {
            role,
            mode: StreamMode::Detecting,
            version: None,
            max_buffered: max_buffered.max(5),
            continuation_left: 0,
            offset: 0,
        }
    }

    pub fn mode(&self) -> StreamMode {
        self.mode
    }

    pub fn version(&self) -> Option<Version> {
        self.version
    }

    /// Tells a broker-side decoder the version its client's CONNECT announced.
    pub fn set_version(&mut self, version: Version) {
        self.version = Some(version);
    }

    /// Gives up decoding: everything from here on is raw. Used when bytes were discarded without
    /// regard to packet boundaries, after which the stream cannot be trusted to parse.
    /// Treats the stream as MQTT from here without checking that it starts with CONNECT (or
    /// CONNACK): for a capture that began in the middle of a connection.
    pub fn assume_mqtt(&mut self) {
        if self.mode == StreamMode::Detecting {
            self.mode = StreamMode::Mqtt;
        }
    }

    pub fn desync(&mut self) {
        self.mode = StreamMode::Raw;
        self.continuation_left = 0;
    }

    /// Records bytes the caller discarded without asking the decoder (see [`Self::desync`]).
    pub fn skip(&mut self, len: usize) {
        self.offset += len as u64;
    }

    /// Bytes consumed so far (the stream offset of the next unit).
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The largest packet decoded whole; a caller's buffer must be able to hold this much.
    pub fn max_buffered(&self) -> usize {
        self.max_buffered
    }

    /// Like [`Self::next`], but finds packet boundaries from fixed headers alone: a complete
    /// packet comes back as [`Unit::Frame`] without its body being parsed or validated, for the
    /// caller to [`crate::decode`] only if it cares. The first packet of a stream and every
    /// CONNECT are still decoded in full (they decide whether the stream is MQTT and its
    /// version). This is what keeps a busy PUBLISH stream cheap to observe.
    pub fn next_frame<'a>(&mut self, buf: &'a [u8]) -> Unit<'a> {
        if self.mode != StreamMode::Mqtt || self.continuation_left > 0 {
            return self.next(buf);
        }
        match crate::header::parse_fixed_header(buf, self.version) {
            Ok(Some(header))
                if header.packet_type != PacketType::Connect && header.total_len() <= buf.len() =>
            {
                self.consume(Unit::Frame {
                    len: header.total_len(),
                    header,
                })
            }
            // Incomplete, oversized, malformed or CONNECT: the full path handles each.
            _ => self.next(buf),
        }
    }

    /// Classifies the start of `buf`. The caller must then drop `unit.len()` bytes from the front.
    pub fn next<'a>(&mut self, buf: &'a [u8]) -> Unit<'a> {
        if buf.is_empty() {
            return Unit::NeedMore;
        }
        if self.mode == StreamMode::Raw {
            return self.consume(Unit::Raw { len: buf.len() });
        }
        if self.continuation_left > 0 {
            let len = (buf.len() as u64).min(self.continuation_left) as usize;
            self.continuation_left -= len as u64;
            return self.consume(Unit::Continuation { len });
        }
        match decode(buf, self.version) {
            Decoded::Packet { header, packet } => {
                if self.mode == StreamMode::Detecting {
                    if let Err(error) = self.check_first(packet.packet_type()) {
                        return self.stop(error);
                    }
                    self.mode = StreamMode::Mqtt;
                }
                if let Packet::Connect(connect) = &packet {
                    self.version = Some(connect.version);
                }
                self.consume(Unit::Packet {
                    len: header.total_len(),
                    packet,
                })
            }
            Decoded::Incomplete {
                header: Some(header),
                ..
            } if header.total_len() > self.max_buffered => {
                if self.mode == StreamMode::Detecting {
                    if let Err(error) = self.check_first(header.packet_type) {
                        return self.stop(error);
                    }
                    self.mode = StreamMode::Mqtt;
                }
                let len = buf.len().min(header.total_len());
                self.continuation_left = (header.total_len() - len) as u64;
                self.consume(Unit::OversizedStart { len, header })
            }
            Decoded::Incomplete { .. } => Unit::NeedMore,
            Decoded::Malformed(error) => {
                let error = if self.mode == StreamMode::Detecting {
                    self.first_packet_error(buf)
                        .unwrap_or(StreamError::Packet(error))
                } else {
                    StreamError::Packet(error)
                };
                self.stop(error)
            }
        }
    }

    fn consume<'a>(&mut self, unit: Unit<'a>) -> Unit<'a> {
        self.offset += unit.len() as u64;
        unit
    }

    fn stop<'a>(&mut self, error: StreamError) -> Unit<'a> {
        self.mode = StreamMode::Raw;
        Unit::Malformed {
            error,
            offset: self.offset,
        }
    }

    fn expected_first(&self) -> &'static str {
        match self.role {
            Role::Client => "CONNECT",
            Role::Broker => "CONNACK",
        }
    }

    fn check_first(&self, found: PacketType) -> Result<(), StreamError> {
        let ok = match self.role {
            Role::Client => found == PacketType::Connect,
            Role::Broker => matches!(found, PacketType::ConnAck | PacketType::Auth),
        };
        if ok {
            Ok(())
        } else {
            Err(StreamError::NotMqtt {
                expected: self.expected_first(),
                found: found.name(),
            })
        }
    }

    /// A malformed first packet whose type is already wrong is better reported as "not MQTT".
    fn first_packet_error(&self, buf: &[u8]) -> Option<StreamError> {
        let code = buf.first()? >> 4;
        let expected = self.expected_first();
        let is_expected = match self.role {
            Role::Client => code == PacketType::Connect.code(),
            Role::Broker => code == PacketType::ConnAck.code() || code == PacketType::Auth.code(),
        };
        if is_expected {
            None
        } else {
            Some(StreamError::NotMqtt {
                expected,
                found: "bytes that are no MQTT packet",
            })
        }
    }
}
