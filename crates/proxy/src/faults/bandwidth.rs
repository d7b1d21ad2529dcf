//! `bandwidth`: a thin link. Throughput in the affected direction is capped at `rate` bytes per
//! second by pacing writes: each write may start only when the previous bytes would have finished
//! crossing the link, and large units are written in slices of about 20 ms worth, so a slow link
//! trickles rather than bursting.

use super::{Fault, KeyDef, KeyType, KindDescriptor, Pacing, WriteContext, WriteEffect};
use crate::spec::{Keys, SpecError};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bandwidth {
    /// Bytes per second.
    pub rate: u64,
}

impl Bandwidth {
    pub fn from_keys(keys: &mut Keys) -> Result<Self, SpecError> {
        let rate = keys.bytes("rate")?.ok_or_else(|| {
            SpecError::at(
                "rate",
                "`bandwidth` needs `rate` in bytes per second, e.g. bandwidth:rate=10KiB",
            )
        })?;
        Ok(Bandwidth { rate })
    }
}

/// `bandwidth`: a thin link: throughput capped.
pub const DESCRIPTOR: KindDescriptor = KindDescriptor {
    name: "bandwidth",
    doc: "a thin link: throughput capped",
    keys: &[KeyDef {
        name: "rate",
        ty: KeyType::Bytes,
        doc: "bytes per second, e.g. 10KiB (required)",
    }],
    instant: false,
    build: |keys| Ok(Arc::new(Bandwidth::from_keys(keys)?)),
};

impl Fault for Bandwidth {
    fn descriptor(&self) -> &'static KindDescriptor {
        &DESCRIPTOR
    }

    fn params(&self) -> Vec<(&'static str, String)> {
        vec![("rate", self.rate.to_string())]
    }

    fn on_write(&self, unit: &WriteContext, pacing: &mut Pacing) -> WriteEffect {
        match pacing.next_free {
            Some(t) if t > unit.now => WriteEffect::WaitUntil(t),
            _ => WriteEffect::Go,
        }
    }

    fn after_write(&self, bytes: usize, now: Instant, pacing: &mut Pacing) {
        let start = pacing.next_free.map_or(now, |t| t.max(now));
        let cost = Duration::from_secs_f64(bytes as f64 / self.rate as f64);
        pacing.next_free = Some(start + cost);
    }

    fn max_write(&self) -> Option<usize> {
        Some((self.rate / 50).max(1) as usize)
    }
}
