//! `cut`: the cable is pulled (or the radio lost), later restored.
//!
//! Nothing crosses in the cut direction(s) while it lasts, but nothing is lost either: a real
//! path that comes back delivers what TCP kept retransmitting. So bytes, FIN and RST read during
//! the cut are **held** and delivered in order when it ends — this is how the 2014 experiment saw
//! the broker's stale data and FIN arrive on a connection the client had already abandoned.
//!
//! Holding is bounded (`hold`, default 1 MiB per direction): past it the proxy stops reading, so the
//! sender feels back-pressure exactly as with a full TCP window. `give_up` models TCP's
//! retransmission limit: a connection whose bytes have been held that long is reset.

use super::{Fault, KeyDef, KeyType, KindDescriptor, Pacing, WriteContext, WriteEffect};
use crate::spec::{fmt_duration, Keys, SpecError};
use std::sync::Arc;
use std::time::Duration;

/// The most a cut may hold per direction of one connection: held bytes live in memory.
pub const MAX_HOLD: usize = 1 << 30;

/// Default bound on bytes held per direction of a connection.
pub const DEFAULT_HOLD: usize = 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cut {
    pub hold: usize,
    pub give_up: Option<Duration>,
}

impl Cut {
    pub fn from_keys(keys: &mut Keys) -> Result<Self, SpecError> {
        let hold = keys.bytes("hold")?.map_or(DEFAULT_HOLD as u64, |b| b);
        if hold > MAX_HOLD as u64 {
            return Err(SpecError::at(
                "hold",
                format!("`hold={hold}` is more than linecut holds per direction (1GiB)"),
            ));
        }
        let hold = hold as usize;
        let give_up = keys.duration("give_up")?;
        if give_up == Some(Duration::ZERO) {
            return Err(SpecError::at("give_up", "`give_up` must be longer than 0s"));
        }
        Ok(Cut { hold, give_up })
    }
}

/// `cut`: a pulled cable or lost radio: nothing crosses; bytes and closes are held and delivered in order when it ends.
pub const DESCRIPTOR: KindDescriptor = KindDescriptor {
    name: "cut",
    doc: "a pulled cable or lost radio: nothing crosses; bytes and closes are held and delivered in order when it ends",
    keys: &[
        KeyDef {
            name: "hold",
            ty: KeyType::Bytes,
            doc: "bytes held per direction of a connection before the sender feels back-pressure (default 1MiB, at most 1GiB)",
        },
        KeyDef {
            name: "give_up",
            ty: KeyType::Duration,
            doc: "reset a connection held longer than this (like TCP's retransmission limit)",
        },
    ],
    instant: false,
    build: |keys| Ok(Arc::new(Cut::from_keys(keys)?)),
};

impl Fault for Cut {
    fn descriptor(&self) -> &'static KindDescriptor {
        &DESCRIPTOR
    }

    fn params(&self) -> Vec<(&'static str, String)> {
        let mut params = Vec::new();
        if self.hold != DEFAULT_HOLD {
            params.push(("hold", self.hold.to_string()));
        }
        if let Some(g) = self.give_up {
            params.push(("give_up", fmt_duration(g)));
        }
        params
    }

    fn on_write(&self, _unit: &WriteContext, _pacing: &mut Pacing) -> WriteEffect {
        WriteEffect::Hold {
            give_up: self.give_up,
        }
    }

    fn hold_limit(&self) -> Option<usize> {
        Some(self.hold)
    }
}
