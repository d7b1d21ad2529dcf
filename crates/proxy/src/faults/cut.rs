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

use super::{Fault, Pacing, WriteContext, WriteEffect};
use crate::spec::{fmt_duration, Keys, SpecError};
use std::time::Duration;

/// Default bound on bytes held per direction of a connection.
pub const DEFAULT_HOLD: usize = 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cut {
    pub hold: usize,
    pub give_up: Option<Duration>,
}

impl Cut {
    pub fn from_keys(keys: &mut Keys) -> Result<Self, SpecError> {
        let hold = keys.bytes("hold")?.map_or(DEFAULT_HOLD, |b| b as usize);
        let give_up = keys.duration("give_up")?;
        if give_up == Some(Duration::ZERO) {
            return Err(SpecError::new("`give_up` must be longer than 0s"));
        }
        Ok(Cut { hold, give_up })
    }
}

impl Fault for Cut {
    fn kind(&self) -> &'static str {
        "cut"
    }

    fn keys(&self) -> &'static [&'static str] {
        &["hold", "give_up"]
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
