//! `latency`: a slow or long path. Each unit is delivered `delay ± jitter` after it was *read*
//! (not after the previous unit was written, so delays do not accumulate), and order is kept: a
//! unit whose jitter would overtake its predecessor waits for it, as on a single TCP path.

use super::{Fault, KeyDef, KeyType, KindDescriptor, Pacing, WriteContext, WriteEffect};
use crate::spec::{fmt_duration, Keys, SpecError};
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Latency {
    pub delay: Duration,
    pub jitter: Duration,
}

impl Latency {
    pub fn from_keys(keys: &mut Keys) -> Result<Self, SpecError> {
        let delay = keys.duration("delay")?.ok_or_else(|| {
            SpecError::at("delay", "`latency` needs `delay`, e.g. latency:delay=200ms")
        })?;
        let jitter = keys.duration("jitter")?.unwrap_or(Duration::ZERO);
        if jitter > delay {
            return Err(SpecError::at(
                "jitter",
                format!(
                "`jitter` ({}) cannot exceed `delay` ({}): a unit cannot arrive before it was sent",
                fmt_duration(jitter),
                fmt_duration(delay)
            ),
            ));
        }
        Ok(Latency { delay, jitter })
    }

    /// The delay of one unit given its jitter draw in [-1, 1].
    pub fn delay_for(&self, jitter_unit: f64) -> Duration {
        let jitter = self.jitter.as_secs_f64() * jitter_unit.clamp(-1.0, 1.0);
        Duration::from_secs_f64((self.delay.as_secs_f64() + jitter).max(0.0))
    }
}

/// `latency`: a slow or long path: each unit delivered delay ± jitter after it was read, order kept.
pub const DESCRIPTOR: KindDescriptor = KindDescriptor {
    name: "latency",
    doc: "a slow or long path: each unit delivered delay ± jitter after it was read, order kept",
    keys: &[
        KeyDef {
            name: "delay",
            ty: KeyType::Duration,
            doc: "added delay (required)",
        },
        KeyDef {
            name: "jitter",
            ty: KeyType::Duration,
            doc: "random spread either way, at most the delay",
        },
    ],
    instant: false,
    build: |keys| Ok(Arc::new(Latency::from_keys(keys)?)),
};

impl Fault for Latency {
    fn descriptor(&self) -> &'static KindDescriptor {
        &DESCRIPTOR
    }

    fn params(&self) -> Vec<(&'static str, String)> {
        let mut params = vec![("delay", fmt_duration(self.delay))];
        if !self.jitter.is_zero() {
            params.push(("jitter", fmt_duration(self.jitter)));
        }
        params
    }

    fn on_write(&self, unit: &WriteContext, _pacing: &mut Pacing) -> WriteEffect {
        let due = unit.read_at + self.delay_for(unit.jitter_unit);
        if due > unit.now {
            WriteEffect::WaitUntil(due)
        } else {
            WriteEffect::Go
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_within_its_band() {
        let l = Latency {
            delay: Duration::from_millis(100),
            jitter: Duration::from_millis(20),
        };
        assert_eq!(l.delay_for(0.0), Duration::from_millis(100));
        assert_eq!(l.delay_for(1.0), Duration::from_millis(120));
        assert_eq!(l.delay_for(-1.0), Duration::from_millis(80));
        assert_eq!(
            l.delay_for(7.0),
            Duration::from_millis(120),
            "draws are clamped"
        );
    }
}
