//! Fault specifications: the `KIND[:key=value,...]` spelling of `linecut proxy --fault`, parsed
//! into a checked [`FaultSpec`]: the fault's kind (its file in `faults/`) plus the
//! [`Schedule`] every fault shares, in either mode ([`linecut_model::schedule`]).
//!
//! The spelling is a public interface (users, scripts and scenario files rely on it), so parsing is
//! strict: unknown keys, repeated keys and impossible combinations are errors that name the key
//! and list what is allowed. The common keys are the schedule's (`at`, `for`, `dir`, `target`
//! with `all`, `new` or `client=PATTERN`, `every`, `count`); kind-specific keys are handed to
//! the kind's own file in `faults/`, which consumes them from [`Keys`].

use crate::faults::{self, Fault};
use linecut_events::Direction;
pub use linecut_model::schedule::{
    fmt_duration, parse_bytes, Dir, KeyDef, KeyType, Keys, Repeat, Schedule, SpecError, Target,
    COMMON_KEYS,
};
/// Client-id globs are one definition for every fault, in either mode.
pub use linecut_model::Glob;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// True when a fault acting in `dir` acts on packets travelling `direction`.
pub fn acts_on(dir: Dir, direction: Direction) -> bool {
    match direction {
        Direction::Up => dir.up(),
        Direction::Down => dir.down(),
    }
}

/// A parsed, checked fault: its kind and its schedule.
#[derive(Debug, Clone)]
pub struct FaultSpec {
    pub fault: Arc<dyn Fault>,
    pub schedule: Schedule,
}

impl FaultSpec {
    pub fn kind(&self) -> &'static str {
        self.fault.kind()
    }

    /// Parses `KIND[:key=value,...]`.
    pub fn parse(text: &str) -> Result<FaultSpec, SpecError> {
        let (kind, keys) = Keys::parse_spec(text)?;
        FaultSpec::from_keys(kind, keys)
    }

    /// Builds a spec from its kind and `key = value` pairs (a scenario's `[[fault]]` table),
    /// with the same rules as [`FaultSpec::parse`].
    pub fn from_pairs(
        kind: &str,
        pairs: impl IntoIterator<Item = (String, String)>,
    ) -> Result<FaultSpec, SpecError> {
        FaultSpec::from_keys(kind, Keys::from_pairs(pairs)?)
    }

    fn from_keys(kind: &str, mut keys: Keys) -> Result<FaultSpec, SpecError> {
        let fault = faults::build(kind, &mut keys)?;
        let schedule = Schedule::take(&mut keys, fault.is_instant())?;
        keys.finish(fault.descriptor().name, fault.descriptor().keys)?;
        let spec = FaultSpec { fault, schedule };
        spec.fault.check(&spec)?;
        Ok(spec)
    }

    /// When occurrence `n` (0-based) starts, relative to proxy start; None past the last one.
    pub fn occurrence_start(&self, n: u32) -> Option<Duration> {
        self.schedule.occurrence_start(n)
    }

    /// True for faults that act once when they start (reset, close) rather than over a window.
    pub fn is_instant(&self) -> bool {
        self.fault.is_instant()
    }

    /// The spec's keys in canonical spelling and order (defaults left out): what `Display`
    /// joins into `KIND:key=value,...` and a scenario writes as a `[[fault]]` table.
    pub fn pairs(&self) -> Vec<(&'static str, String)> {
        let mut pairs = self.schedule.pairs();
        pairs.extend(self.fault.params());
        pairs
    }
}

impl fmt::Display for FaultSpec {
    /// The canonical spelling: parsing it gives the same fault back.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&linecut_model::schedule::spec_text(
            self.kind(),
            &self.pairs(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every key a kind's descriptor declares is one its constructor takes, and the value the
    /// descriptor's type describes is accepted: the descriptor cannot drift from the code.
    #[test]
    fn descriptors_declare_exactly_the_keys_their_kinds_take() {
        for kind in faults::KINDS {
            let pairs: Vec<(String, String)> = kind
                .keys
                .iter()
                .map(|k| {
                    let value = match k.ty {
                        KeyType::Duration => "1s".to_string(),
                        KeyType::Bytes => "1KiB".to_string(),
                        KeyType::Count => "1".to_string(),
                        KeyType::Choice(words) => words[0].to_string(),
                        KeyType::Text => "x".to_string(),
                    };
                    (k.name.to_string(), value)
                })
                .collect();
            let spec = FaultSpec::from_pairs(kind.name, pairs.clone())
                .unwrap_or_else(|e| panic!("{}: {e}", kind.name));
            assert_eq!(spec.kind(), kind.name);
            assert_eq!(spec.is_instant(), kind.instant);
            let mut extra = pairs;
            extra.push(("wobble".to_string(), "1".to_string()));
            let e = FaultSpec::from_pairs(kind.name, extra).unwrap_err();
            assert_eq!(e.key.as_deref(), Some("wobble"), "{}", kind.name);
        }
        for common in COMMON_KEYS {
            assert!(
                faults::KINDS
                    .iter()
                    .all(|k| k.keys.iter().all(|o| o.name != common.name)),
                "`{}` is common and a kind's own",
                common.name
            );
        }
    }

    #[test]
    fn errors_carry_the_key_as_data() {
        for (text, key) in [
            ("cut:for=soon", "for"),
            ("cut:hold=2GiB", "hold"),
            ("latency:delay=1s,jitter=2s", "jitter"),
            ("cut:every=1s,count=0,for=100ms", "count"),
            ("cutt", "kind"),
        ] {
            let e = FaultSpec::parse(text).unwrap_err();
            assert_eq!(e.key.as_deref(), Some(key), "{text}: {e}");
        }
    }

    #[test]
    fn defaults_are_both_directions_all_connections_open_ended_from_zero() {
        let spec = FaultSpec::parse("cut").unwrap();
        assert_eq!(spec.kind(), "cut");
        assert_eq!(spec.schedule.at, Duration::ZERO);
        assert_eq!(spec.schedule.duration, None);
        assert_eq!(spec.schedule.dir, Dir::Both);
        assert_eq!(spec.schedule.target, Target::All);
        assert!(spec.schedule.repeat.is_none());
    }

    #[test]
    fn the_documented_example_parses_and_prints_canonically() {
        let spec = FaultSpec::parse("cut:at=10s,for=120s,dir=both").unwrap();
        assert_eq!(spec.schedule.at, Duration::from_secs(10));
        assert_eq!(spec.schedule.duration, Some(Duration::from_secs(120)));
        assert_eq!(spec.to_string(), "cut:at=10s,for=2m");
        let again = FaultSpec::parse(&spec.to_string()).unwrap();
        assert_eq!(again.to_string(), spec.to_string());
    }

    #[test]
    fn every_kind_round_trips_through_its_canonical_spelling() {
        for text in [
            "cut:at=1s,for=2s,dir=up,hold=64KiB,give_up=30s",
            "blackhole:for=1s,mode=raw",
            "reset:at=3s,target=client=sensor-*",
            "close:at=500ms,target=new",
            "refuse:at=1s,for=4s",
            "latency:delay=100ms,jitter=10ms,dir=down",
            "bandwidth:rate=10KiB",
            "cut:at=1s,for=1s,every=5s,count=3",
            "reset:at=5s,every=5s,count=2",
        ] {
            let spec = FaultSpec::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            let canonical = spec.to_string();
            let again = FaultSpec::parse(&canonical).unwrap();
            assert_eq!(again.to_string(), canonical, "{text}");
        }
    }

    #[test]
    fn errors_name_the_key_and_what_is_wrong() {
        let cases = [
            ("teleport", "unknown fault kind `teleport`"),
            ("cut:for=ten", "`for=ten` is not a duration"),
            ("cut:dir=sideways", "`dir=sideways` is not a direction"),
            ("cut:target=some", "`target=some` is not a target"),
            ("cut:speed=3", "`cut` has no key `speed`"),
            ("cut:for=1s,for=2s", "`for` is given twice"),
            ("cut:for", "`for` is not key=value"),
            ("cut:count=3", "`count` needs `every`"),
            ("cut:every=5s", "a repeating fault needs `for`"),
            ("cut:for=5s,every=5s", "must be shorter than `every`"),
            ("latency", "`latency` needs `delay`"),
            ("bandwidth:rate=fast", "`rate=fast` is not a size"),
            ("blackhole:mode=sometimes", "`mode=sometimes`"),
            ("reset:for=5s", "`reset` acts once when it starts"),
            ("cut:for=0s", "`for` must be longer than 0s"),
        ];
        for (text, want) in cases {
            let err = FaultSpec::parse(text).unwrap_err().to_string();
            assert!(err.contains(want), "{text}: got `{err}`, want `{want}`");
        }
    }

    #[test]
    fn repetition_lists_occurrences_and_stops_after_count() {
        let spec = FaultSpec::parse("cut:at=1s,for=1s,every=5s,count=3").unwrap();
        let starts: Vec<_> = (0..5).map(|n| spec.occurrence_start(n)).collect();
        let s = Duration::from_secs;
        assert_eq!(
            starts,
            vec![Some(s(1)), Some(s(6)), Some(s(11)), None, None]
        );
    }

    #[test]
    fn globs_match_client_ids() {
        let g = Glob::new("sensor-*-?");
        assert!(g.matches("sensor-12-a"));
        assert!(g.matches("sensor--b"));
        assert!(!g.matches("sensor-12"));
        assert!(!g.matches("xsensor-1-a"));
        assert!(Glob::new("*").matches(""));
        assert!(Glob::new("a*b*c").matches("aXXbYYc"));
        assert!(!Glob::new("a*b*c").matches("aXXbYY"));
    }

    #[test]
    fn sizes_accept_common_units() {
        assert_eq!(parse_bytes("1500"), Some(1500));
        assert_eq!(parse_bytes("64KiB"), Some(65536));
        assert_eq!(parse_bytes("10MB"), Some(10_000_000));
        assert_eq!(parse_bytes("1.5MiB"), Some(1_572_864));
        assert_eq!(parse_bytes("0"), None);
        assert_eq!(parse_bytes("ten"), None);
    }
}
