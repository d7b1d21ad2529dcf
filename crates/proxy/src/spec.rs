//! Fault specifications: the `KIND[:key=value,...]` spelling of `linecut proxy --fault`, parsed
//! into a checked [`FaultSpec`].
//!
//! The spelling is a public interface (users, scripts and scenario files rely on it), so parsing is
//! strict: unknown keys, repeated keys and impossible combinations are errors that name the key
//! and list what is allowed. Keys common to every kind are handled here; kind-specific keys are
//! handed to the kind's own file in `faults/`, which consumes them from [`Keys`].
//!
//! Common keys:
//! - `at`: start, relative to proxy start (default `0s`);
//! - `for`: duration (default: open-ended);
//! - `dir`: `up` (client to broker), `down` (broker to client) or `both` (default);
//! - `target`: `all` (default), `new` (connections opened while the fault is active), or
//!   `client=PATTERN` (MQTT client ids matching a glob with `*` and `?`);
//! - `every` / `count`: repeat the fault every interval, `count` times in all (default: forever).

use crate::faults::{self, Fault, KeyDef, KeyType};
use linecut_events::Direction;
use linecut_model::{parse_duration, MAX_DURATION};
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// A fault spec that failed to parse: which key (as data, so a scenario file can point at it)
/// and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct SpecError {
    /// The key at fault (`kind` for the kind itself), when one key is.
    pub key: Option<String>,
    pub message: String,
}

impl SpecError {
    /// An error about the spec as a whole.
    pub fn new(message: impl Into<String>) -> Self {
        SpecError {
            key: None,
            message: message.into(),
        }
    }

    /// An error about one key.
    pub fn at(key: &str, message: impl Into<String>) -> Self {
        SpecError {
            key: Some(key.to_string()),
            message: message.into(),
        }
    }
}

/// The keys every fault kind takes.
pub const COMMON_KEYS: &[KeyDef] = &[
    KeyDef {
        name: "at",
        ty: KeyType::Duration,
        doc: "start, counted from the experiment's start (default 0s)",
    },
    KeyDef {
        name: "for",
        ty: KeyType::Duration,
        doc: "how long each occurrence lasts (default: to the end)",
    },
    KeyDef {
        name: "dir",
        ty: KeyType::Choice(&["up", "down", "both"]),
        doc: "up (client to broker), down (broker to client) or both (default)",
    },
    KeyDef {
        name: "target",
        ty: KeyType::Text,
        doc: "all (default), new (connections opened during the fault) or client=PATTERN (* and ?)",
    },
    KeyDef {
        name: "every",
        ty: KeyType::Duration,
        doc: "repeat the fault at this interval (flapping)",
    },
    KeyDef {
        name: "count",
        ty: KeyType::Count,
        doc: "how many occurrences in all (default: while the run lasts)",
    },
];

/// Which directions of a connection a fault applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DirFilter {
    Up,
    Down,
    Both,
}

impl DirFilter {
    pub fn matches(self, dir: Direction) -> bool {
        match self {
            DirFilter::Both => true,
            DirFilter::Up => dir == Direction::Up,
            DirFilter::Down => dir == Direction::Down,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            DirFilter::Up => "up",
            DirFilter::Down => "down",
            DirFilter::Both => "both",
        }
    }
}

/// Which connections a fault applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    All,
    /// Only connections opened while the fault is active.
    New,
    /// Connections whose CONNECT carried a client id matching this glob.
    Client(Glob),
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::All => f.write_str("all"),
            Target::New => f.write_str("new"),
            Target::Client(glob) => write!(f, "client={}", glob.pattern()),
        }
    }
}

/// Client-id globs are one definition for every fault, in either mode.
pub use linecut_model::Glob;

/// Repetition of a fault: every `every`, `count` occurrences (None = forever).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repeat {
    pub every: Duration,
    pub count: Option<u32>,
}

/// A parsed, checked fault.
#[derive(Debug, Clone)]
pub struct FaultSpec {
    pub fault: Arc<dyn Fault>,
    pub at: Duration,
    pub duration: Option<Duration>,
    pub dir: DirFilter,
    pub target: Target,
    pub repeat: Option<Repeat>,
}

impl FaultSpec {
    pub fn kind(&self) -> &'static str {
        self.fault.kind()
    }

    /// Parses `KIND[:key=value,...]`.
    pub fn parse(text: &str) -> Result<FaultSpec, SpecError> {
        let text = text.trim();
        let (kind, rest) = match text.split_once(':') {
            Some((k, r)) => (k.trim(), r),
            None => (text, ""),
        };
        FaultSpec::from_keys(kind, Keys::parse(rest)?)
    }

    /// Builds a spec from its kind and `key = value` pairs (a scenario's `[[fault]]` table),
    /// with the same rules as [`FaultSpec::parse`].
    pub fn from_pairs(
        kind: &str,
        pairs: impl IntoIterator<Item = (String, String)>,
    ) -> Result<FaultSpec, SpecError> {
        let mut keys = Keys::default();
        for (key, value) in pairs {
            keys.insert(&key, value)?;
        }
        FaultSpec::from_keys(kind, keys)
    }

    fn from_keys(kind: &str, mut keys: Keys) -> Result<FaultSpec, SpecError> {
        let at = keys.duration("at")?.unwrap_or(Duration::ZERO);
        let duration = keys.duration("for")?;
        if duration == Some(Duration::ZERO) {
            return Err(SpecError::at("for", "`for` must be longer than 0s"));
        }
        let dir = match keys.take("dir").as_deref() {
            None | Some("both") => DirFilter::Both,
            Some("up") => DirFilter::Up,
            Some("down") => DirFilter::Down,
            Some(other) => {
                return Err(SpecError::at(
                    "dir",
                    format!("`dir={other}` is not a direction; use up, down or both"),
                ))
            }
        };
        let target = match keys.take("target") {
            None => Target::All,
            Some(t) if t == "all" => Target::All,
            Some(t) if t == "new" => Target::New,
            Some(t) => match t.strip_prefix("client=") {
                Some(pattern) if !pattern.is_empty() => Target::Client(Glob::new(pattern)),
                _ => {
                    return Err(SpecError::at(
                        "target",
                        format!("`target={t}` is not a target; use all, new or client=PATTERN"),
                    ))
                }
            },
        };
        let every = keys.duration("every")?;
        let count = keys.number::<u32>("count")?;
        let fault = faults::build(kind, &mut keys)?;
        let repeat = match (every, count) {
            (None, None) => None,
            (None, Some(_)) => return Err(SpecError::at("count", "`count` needs `every`")),
            (Some(every), count) => {
                if every.is_zero() {
                    return Err(SpecError::at("every", "`every` must be longer than 0s"));
                }
                if count == Some(0) {
                    return Err(SpecError::at("count", "`count` must be at least 1"));
                }
                match duration {
                    // Instant faults (reset, close) act once per occurrence: nothing to end.
                    None if fault.is_instant() => {}
                    None => {
                        return Err(SpecError::at(
                            "every",
                            "a repeating fault needs `for` (each occurrence must end)",
                        ))
                    }
                    Some(d) if d >= every => {
                        return Err(SpecError::at(
                            "for",
                            format!(
                                "`for` ({}) must be shorter than `every` ({})",
                                humantime::format_duration(d),
                                humantime::format_duration(every)
                            ),
                        ))
                    }
                    _ => {}
                }
                if let Some(count) = count {
                    let last = every
                        .checked_mul(count - 1)
                        .and_then(|offset| offset.checked_add(at));
                    if last.is_none_or(|last| last > MAX_DURATION) {
                        return Err(SpecError::at(
                            "count",
                            format!(
                                "`every` x `count` reaches past 365 days (the longest schedule \
                             linecut runs): the last occurrence would start {} in",
                                last.map_or("beyond any clock".into(), |l| {
                                    humantime::format_duration(l).to_string()
                                })
                            ),
                        ));
                    }
                }
                Some(Repeat { every, count })
            }
        };
        keys.finish(fault.descriptor())?;
        let spec = FaultSpec {
            fault,
            at,
            duration,
            dir,
            target,
            repeat,
        };
        spec.fault.check(&spec)?;
        Ok(spec)
    }

    /// When occurrence `n` (0-based) starts, relative to proxy start; None past the last one.
    pub fn occurrence_start(&self, n: u32) -> Option<Duration> {
        match self.repeat {
            None if n == 0 => Some(self.at),
            None => None,
            Some(Repeat { count: Some(c), .. }) if n >= c => None,
            // Past the year any schedule may span (checked when parsed), nothing more starts;
            // an open-ended flap must not overflow its way into a panic.
            Some(Repeat { every, .. }) => every
                .checked_mul(n)
                .and_then(|offset| self.at.checked_add(offset))
                .filter(|start| *start <= MAX_DURATION),
        }
    }

    /// True for faults that act once when they start (reset, close) rather than over a window.
    pub fn is_instant(&self) -> bool {
        self.fault.is_instant()
    }
}

impl FaultSpec {
    /// The spec's keys in canonical spelling and order (defaults left out): what `Display`
    /// joins into `KIND:key=value,...` and a scenario writes as a `[[fault]]` table.
    pub fn pairs(&self) -> Vec<(&'static str, String)> {
        let mut pairs = vec![("at", fmt_duration(self.at))];
        if let Some(d) = self.duration {
            pairs.push(("for", fmt_duration(d)));
        }
        if self.dir != DirFilter::Both {
            pairs.push(("dir", self.dir.as_str().to_string()));
        }
        if self.target != Target::All {
            pairs.push(("target", self.target.to_string()));
        }
        if let Some(r) = self.repeat {
            pairs.push(("every", fmt_duration(r.every)));
            if let Some(c) = r.count {
                pairs.push(("count", c.to_string()));
            }
        }
        pairs.extend(self.fault.params());
        pairs
    }
}

impl fmt::Display for FaultSpec {
    /// The canonical spelling: parsing it gives the same fault back.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .pairs()
            .into_iter()
            .map(|(key, value)| format!("{key}={value}"))
            .collect();
        write!(f, "{}:{}", self.kind(), parts.join(","))
    }
}

pub(crate) fn fmt_duration(d: Duration) -> String {
    if d.is_zero() {
        "0s".to_string()
    } else {
        humantime::format_duration(d).to_string().replace(' ', "")
    }
}

/// The `key=value` pairs of a spec, consumed as they are understood; leftovers are errors.
#[derive(Debug, Default)]
pub struct Keys {
    values: BTreeMap<String, String>,
}

impl Keys {
    fn parse(text: &str) -> Result<Keys, SpecError> {
        let mut keys = Keys::default();
        if text.trim().is_empty() {
            return Ok(keys);
        }
        for part in text.split(',') {
            let part = part.trim();
            let Some((key, value)) = part.split_once('=') else {
                return Err(SpecError::new(format!(
                    "`{part}` is not key=value (keys are separated by commas)"
                )));
            };
            let (key, value) = (key.trim(), value.trim());
            if key.is_empty() || value.is_empty() {
                return Err(SpecError::new(format!(
                    "`{part}` has an empty key or value"
                )));
            }
            keys.insert(key, value.to_string())?;
        }
        Ok(keys)
    }

    pub fn take(&mut self, key: &str) -> Option<String> {
        self.values.remove(key)
    }

    pub fn duration(&mut self, key: &str) -> Result<Option<Duration>, SpecError> {
        let Some(text) = self.take(key) else {
            return Ok(None);
        };
        // Bounded (a year at most): a deadline beyond it would overflow the clock.
        parse_duration(&text).map(Some).map_err(|e| {
            SpecError::at(
                key,
                format!("`{key}={text}` {e}; write e.g. 500ms, 10s, 2m"),
            )
        })
    }

    pub fn number<T: std::str::FromStr>(&mut self, key: &str) -> Result<Option<T>, SpecError> {
        let Some(text) = self.take(key) else {
            return Ok(None);
        };
        text.parse()
            .map(Some)
            .map_err(|_| SpecError::at(key, format!("`{key}={text}` is not a whole number")))
    }

    /// A byte count: a number with an optional unit (B, KB, KiB, MB, MiB, GB, GiB).
    pub fn bytes(&mut self, key: &str) -> Result<Option<u64>, SpecError> {
        let Some(text) = self.take(key) else {
            return Ok(None);
        };
        parse_bytes(&text).map(Some).ok_or_else(|| {
            SpecError::at(
                key,
                format!("`{key}={text}` is not a size; write e.g. 1500, 64KiB, 10MB"),
            )
        })
    }

    fn finish(self, kind: &faults::KindDescriptor) -> Result<(), SpecError> {
        if let Some(key) = self.values.keys().next() {
            let allowed: Vec<&str> = COMMON_KEYS
                .iter()
                .chain(kind.keys)
                .map(|k| k.name)
                .collect();
            return Err(SpecError::at(
                key,
                format!(
                    "`{}` has no key `{key}`; keys are: {}",
                    kind.name,
                    allowed.join(", ")
                ),
            ));
        }
        Ok(())
    }

    /// Adds one pair; a key given twice is an error.
    fn insert(&mut self, key: &str, value: String) -> Result<(), SpecError> {
        if self.values.insert(key.to_string(), value).is_some() {
            return Err(SpecError::at(key, format!("`{key}` is given twice")));
        }
        Ok(())
    }
}

/// Parses sizes like `1500`, `64KiB`, `10MB`, `1.5MiB`.
pub fn parse_bytes(text: &str) -> Option<u64> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().ok()?;
    let scale = match unit.trim() {
        "" | "B" => 1.0,
        "KB" | "kB" => 1e3,
        "KiB" => 1024.0,
        "MB" => 1e6,
        "MiB" => 1024.0 * 1024.0,
        "GB" => 1e9,
        "GiB" => 1024.0 * 1024.0 * 1024.0,
        _ => return None,
    };
    let value = number * scale;
    (value.is_finite() && value >= 1.0).then_some(value as u64)
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
        assert_eq!(spec.at, Duration::ZERO);
        assert_eq!(spec.duration, None);
        assert_eq!(spec.dir, DirFilter::Both);
        assert_eq!(spec.target, Target::All);
        assert!(spec.repeat.is_none());
    }

    #[test]
    fn the_documented_example_parses_and_prints_canonically() {
        let spec = FaultSpec::parse("cut:at=10s,for=120s,dir=both").unwrap();
        assert_eq!(spec.at, Duration::from_secs(10));
        assert_eq!(spec.duration, Some(Duration::from_secs(120)));
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
