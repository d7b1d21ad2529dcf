//! `blackhole`: a middlebox silently eats traffic; the connection stays open.
//!
//! By default whole MQTT packets are discarded, so when the fault ends the stream still parses and
//! the endpoints carry on as if those packets were lost in flight (which TCP would never do, and
//! which is exactly what makes this fault interesting: keepalives go unanswered on a connection
//! that looks healthy). `mode=raw` discards bytes as they are read regardless of packet boundaries,
//! for non-MQTT use; an MQTT stream usually cannot be parsed after that.

use super::{Fault, ReadEffect};
use crate::spec::{Keys, SpecError};

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
                return Err(SpecError::new(format!(
                    "`mode={other}` is not a blackhole mode; use packet or raw"
                )))
            }
        };
        Ok(Blackhole { mode })
    }
}

impl Fault for Blackhole {
    fn kind(&self) -> &'static str {
        "blackhole"
    }

    fn keys(&self) -> &'static [&'static str] {
        &["mode"]
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
