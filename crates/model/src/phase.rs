//! A fault's phase as an experiment variable: how far its start may be moved at random, the
//! seeded generator that draws the move, and the record of what was drawn.
//!
//! Why: a client's keepalive timer and the publisher's ticks are periodic. A cut that always
//! starts at the same moment after CONNACK always meets the timer in the same phase, so repeats
//! of a run repeat one phase rather than sampling the library's behaviour. A fault with
//! `start_jitter = "K"` starts at `at` plus an offset drawn uniformly from `[0, K)`; the seed is
//! recorded, so a run can be replayed with the same phase.

use crate::duration::{parse_duration, DurationError};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::time::Duration;

/// How far a fault's start may move: a fixed span, or a multiple of the subscribers' keepalive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Jitter {
    Span(Duration),
    /// `n` keepalive intervals (`"K"` is one, `"2K"` two).
    Keepalives(u32),
}

/// A jitter that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JitterError {
    #[error("`{0}` is not a jitter: write a duration (2s) or a multiple of the keepalive (K, 2K)")]
    Syntax(String),
    #[error("`{0}` {1}")]
    Duration(String, DurationError),
}

impl Jitter {
    pub fn parse(text: &str) -> Result<Jitter, JitterError> {
        let t = text.trim();
        if let Some(n) = t.strip_suffix('K') {
            let n = n.trim();
            if n.is_empty() {
                return Ok(Jitter::Keepalives(1));
            }
            return match n.parse::<u32>() {
                Ok(n) if (1..=1000).contains(&n) => Ok(Jitter::Keepalives(n)),
                _ => Err(JitterError::Syntax(text.to_string())),
            };
        }
        if t.chars().next().is_some_and(|c| c.is_ascii_digit()) {
            return parse_duration(t)
                .map(Jitter::Span)
                .map_err(|e| JitterError::Duration(text.to_string(), e));
        }
        Err(JitterError::Syntax(text.to_string()))
    }

    /// The span in time for a given keepalive (seconds).
    pub fn span(self, keepalive_s: u16) -> Duration {
        match self {
            Jitter::Span(d) => d,
            Jitter::Keepalives(n) => Duration::from_secs(u64::from(keepalive_s) * u64::from(n)),
        }
    }
}

impl fmt::Display for Jitter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Jitter::Keepalives(1) => f.write_str("K"),
            Jitter::Keepalives(n) => write!(f, "{n}K"),
            Jitter::Span(d) if d.is_zero() => f.write_str("0s"),
            Jitter::Span(d) => write!(f, "{}", humantime::format_duration(*d)),
        }
    }
}

/// A small deterministic generator (SplitMix64): the same seed always gives the same phases,
/// on every platform, and it needs no dependency.
#[derive(Debug, Clone)]
pub struct PhaseRng(u64);

impl PhaseRng {
    pub fn new(seed: u64) -> Self {
        PhaseRng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A uniform offset in `[0, span)`, to the microsecond.
    pub fn offset(&mut self, span: Duration) -> Duration {
        let us = span.as_micros().min(u128::from(u64::MAX)) as u64;
        if us == 0 {
            return Duration::ZERO;
        }
        Duration::from_micros(self.next_u64() % us)
    }
}

/// Mixes a name and a number into a seed: a sweep's repeat `r` of cell `name` gets its own
/// phase, the same one every time the sweep is planned.
pub fn derive_seed(base: u64, name: &str, n: u32) -> u64 {
    // FNV-1a over the name, then one SplitMix step over everything.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    PhaseRng::new(base ^ h ^ (u64::from(n) << 32)).next_u64()
}

/// What was drawn for one fault.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaultPhase {
    /// The fault's position in the scenario (1-based, as the proxy numbers faults).
    pub fault: usize,
    /// `at` as written, seconds.
    pub planned_at_s: f64,
    /// The jitter as written (`K`, `2s`).
    pub jitter: String,
    /// The span the offset was drawn from, seconds.
    pub span_s: f64,
    /// The offset drawn, seconds: the fault was scheduled at `planned_at_s + offset_s`.
    pub offset_s: f64,
}

/// `meta.json`'s record of the run's phase: the seed and every offset drawn with it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PhaseRecord {
    pub seed: u64,
    pub faults: Vec<FaultPhase>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_reads_durations_and_keepalive_multiples() {
        assert_eq!(Jitter::parse("K").unwrap(), Jitter::Keepalives(1));
        assert_eq!(Jitter::parse("3K").unwrap(), Jitter::Keepalives(3));
        assert_eq!(
            Jitter::parse("1500ms").unwrap(),
            Jitter::Span(Duration::from_millis(1500))
        );
        for bad in ["", "k", "0K", "xK", "soon", "-1s"] {
            assert!(Jitter::parse(bad).is_err(), "{bad:?} accepted");
        }
        assert!(Jitter::parse("400days").is_err(), "unbounded span accepted");
        assert_eq!(Jitter::Keepalives(2).span(5), Duration::from_secs(10));
        for text in ["K", "2K", "1s 500ms"] {
            assert_eq!(Jitter::parse(text).unwrap().to_string(), text);
        }
    }

    #[test]
    fn offsets_are_uniform_reproducible_and_inside_the_span() {
        let span = Duration::from_secs(2);
        let draw = |seed| {
            let mut rng = PhaseRng::new(seed);
            (0..4000).map(|_| rng.offset(span)).collect::<Vec<_>>()
        };
        let a = draw(7);
        assert_eq!(a, draw(7), "same seed, same phases");
        assert_ne!(a, draw(8));
        assert!(a.iter().all(|o| *o < span));
        // Uniform: each quarter of the span holds 1000 ± 4.5σ (σ = √(4000·¼·¾) ≈ 27) draws.
        let mut quarters = [0u32; 4];
        for o in &a {
            quarters[(o.as_secs_f64() / 0.5) as usize] += 1;
        }
        assert!(
            quarters.iter().all(|q| q.abs_diff(1000) < 122),
            "{quarters:?}"
        );
        assert_eq!(PhaseRng::new(1).offset(Duration::ZERO), Duration::ZERO);
    }

    #[test]
    fn derived_seeds_differ_by_cell_and_repeat() {
        let seeds: std::collections::BTreeSet<u64> = ["a", "b"]
            .iter()
            .flat_map(|n| (1..=5).map(move |r| derive_seed(0, n, r)))
            .collect();
        assert_eq!(seeds.len(), 10);
        assert_eq!(derive_seed(3, "a", 1), derive_seed(3, "a", 1));
    }
}
