//! `blackhole`: a middlebox silently eats traffic; the connection stays open.
//!
//! By default whole MQTT packets are discarded, so when the fault ends the stream still parses and
//! the endpoints carry on as if those packets were lost in flight (which TCP would never do, and
//! which is exactly what makes this fault interesting: keepalives go unanswered on a connection
//! that looks healthy). `mode=raw` discards bytes as they are read regardless of packet boundaries,
//! for non-MQTT use; an MQTT stream usually cannot be parsed after that.

use super::{Fault, KeyDef, KeyType, KindDescriptor, ReadEffect};
use crate::spec::{Keys, SpecError};
use std::sync::Arc;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlackholeMode {
    Packet,
    Raw,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blackhole {
    pub mode: BlackholeMode,
}

impl Blackhole {
    pub fn from_keys(keys: &mut Keys) -> Result<Self, SpecError> {
        let mode = match keys.take("mode").as_deref() {
            None | Some("packet") => BlackholeMode::Packet,
            Some("raw") => BlackholeMode::Raw,
            Some(other) => {
                return Err(SpecError::at(
                    "mode",
                    format!("`mode={other}` is not a blackhole mode; use packet or raw"),
                ))
            }
        };
        Ok(Blackhole { mode })
    }
}

/// `blackhole`: a middlebox silently eating traffic: bytes are read and discarded, the connection stays open.
pub const DESCRIPTOR: KindDescriptor = KindDescriptor {
    name: "blackhole",
    doc: "a middlebox silently eating traffic: bytes are read and discarded, the connection stays open",
    keys: &[KeyDef {
        name: "mode",
        ty: KeyType::Choice(&["packet", "raw"]),
        doc: "discard whole MQTT packets (packet, default) or raw bytes (raw)",
    }],
    instant: false,
    build: |keys| Ok(Arc::new(Blackhole::from_keys(keys)?)),
};

impl Fault for Blackhole {
    fn descriptor(&self) -> &'static KindDescriptor {
        &DESCRIPTOR
    }

    fn params(&self) -> Vec<(&'static str, String)> {
        match self.mode {
            BlackholeMode::Packet => Vec::new(),
            BlackholeMode::Raw => vec![("mode", "raw".to_string())],
        }
    }

    fn on_read(&self) -> ReadEffect {
        match self.mode {
            BlackholeMode::Packet => ReadEffect::DropPackets,
            BlackholeMode::Raw => ReadEffect::DropBytes,
        }
    }
}
