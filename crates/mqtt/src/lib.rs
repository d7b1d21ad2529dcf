//! Zero-copy MQTT control-packet framing for *observing* streams: no IO, no allocation, no panics.
//!
//! linecut sits between clients and brokers and must say what every packet on the wire was, even
//! when the stream is broken, truncated or not MQTT at all. Client libraries' codecs do not fit
//! that job: they allocate per topic, reject MQTT 3.1 (`MQIsdp`), and fail on legal MQTT 5 forms
//! some brokers send (a DISCONNECT with a reason code and no property length). This crate instead
//! gives borrowed views over `&[u8]`:
//!
//! - [`decode`] looks at the start of a buffer and answers "a whole packet of N bytes, here is its
//!   view", "need N more bytes", or "malformed" — never more than that, never a panic.
//! - [`StreamDecoder`] holds the per-direction state of one TCP stream (is it MQTT at all, which
//!   protocol version, how much of an oversized packet is still passing through) and turns a
//!   buffer into [`Unit`]s the proxy can forward, drop or hold one at a time.
//!
//! Protocol versions: 3 (MQTT 3.1), 4 (MQTT 3.1.1) and 5. The version of a connection comes from
//! its CONNECT; everything after that on both directions is decoded with it, because MQTT 5 adds
//! property blocks in the middle of otherwise identical packets.
//!
//! Layout: `header.rs` (fixed header, variable-length integers), `cursor.rs` (bounds-checked
//! reading of the primitive types), `packet.rs` (one view per packet type), `properties.rs` (MQTT 5
//! property blocks), `reason.rs` (what reason codes mean), `stream.rs` (per-stream state).

mod cursor;
pub mod encode;
mod header;
mod packet;
mod properties;
mod reason;
mod stream;

pub use header::{parse_fixed_header, FixedHeader, PacketType, MAX_REMAINING_LENGTH};
pub use packet::{
    decode, Ack, ConnAck, Connect, Decoded, Disconnect, FilterIter, Packet, Publish, SubAck,
    Subscribe, SubscriptionFilter, Unsubscribe,
};
pub use properties::Properties;
pub use reason::reason_name;
pub use stream::{Role, StreamDecoder, StreamError, StreamMode, Unit};

/// MQTT protocol level as carried in CONNECT.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Version {
    /// MQTT 3.1 (`MQIsdp`, level 3).
    V3_1,
    /// MQTT 3.1.1 (level 4).
    V3_1_1,
    /// MQTT 5.0 (level 5).
    V5,
}

impl Version {
    pub fn from_level(level: u8) -> Option<Version> {
        match level {
            3 => Some(Version::V3_1),
            4 => Some(Version::V3_1_1),
            5 => Some(Version::V5),
            _ => None,
        }
    }

    pub fn level(self) -> u8 {
        match self {
            Version::V3_1 => 3,
            Version::V3_1_1 => 4,
            Version::V5 => 5,
        }
    }
}

/// Why bytes are not a valid MQTT packet. Carries no data so that it stays cheap to return.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Malformed {
    #[error("packet type 0 is reserved")]
    ReservedPacketType,
    #[error("AUTH packets exist only in MQTT 5")]
    AuthBeforeV5,
    #[error("fixed-header flags {flags:#06b} are not allowed for {packet}")]
    BadFlags { packet: &'static str, flags: u8 },
    #[error("remaining length uses more than four bytes")]
    RemainingLengthTooLong,
    #[error("{packet} is shorter than its fields")]
    Truncated { packet: &'static str },
    #[error("{packet} has {extra} bytes after its last field")]
    TrailingBytes { packet: &'static str, extra: usize },
    #[error("string is not valid UTF-8")]
    InvalidUtf8,
    #[error("unknown protocol name in CONNECT")]
    UnknownProtocol,
    #[error("unsupported protocol level {0} in CONNECT")]
    UnsupportedLevel(u8),
    #[error("QoS 3 is not a valid QoS")]
    InvalidQos,
    #[error("reserved bit set in {packet}")]
    ReservedBit { packet: &'static str },
    #[error("{packet} must carry at least one topic filter")]
    NoFilters { packet: &'static str },
    #[error("property block overruns the packet")]
    BadProperties,
}

#[cfg(test)]
mod tests;
