//! When, which way and on whom a fault acts, in either mode: the one vocabulary the proxy's
//! faults and the namespace links' faults share.
//!
//! A fault, in either mode, is its kind (with the kind's own keys) plus a [`Schedule`]: `at`,
//! `for`, `dir`, `target`, `every` and `count`, spelled and checked the same way everywhere.
//! The `key=value` pairs arrive as [`Keys`] (from `KIND:key=value,...` text or a scenario's
//! `[[fault]]` table); the schedule takes the common ones, the kind takes its own, and what is
//! left over is an error naming the key. Errors carry the key as data ([`SpecError`]) so a
//! scenario file can point at the line and field.

use crate::duration::{parse_duration, MAX_DURATION};
use crate::glob::Glob;
use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

/// A fault spec that does not parse: which key (as data) and why.
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

/// What a key's value is, for documentation and schemas.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyType {
    /// `500ms`, `10s`, `2m` (at most a year).
    Duration,
    /// `1500`, `64KiB`, `10MB`.
    Bytes,
    /// A whole number.
    Count,
    /// One of these words.
    Choice(&'static [&'static str]),
    /// Free text with its own syntax (described in `doc`).
    Text,
}

/// One key a fault takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyDef {
    pub name: &'static str,
    pub ty: KeyType,
    pub doc: &'static str,
}

/// The keys every fault kind takes, in either mode.
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
        doc: "all (default), new (connections opened during the fault; proxy faults only) or client=PATTERN (* and ?)",
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

/// Which way a fault acts, from the subscriber's side: up is client to broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dir {
    Up,
    Down,
    Both,
}

impl Dir {
    pub fn name(self) -> &'static str {
        match self {
            Dir::Up => "up",
            Dir::Down => "down",
            Dir::Both => "both",
        }
    }

    /// True when the fault acts on what the client sends.
    pub fn up(self) -> bool {
        matches!(self, Dir::Up | Dir::Both)
    }

    /// True when the fault acts on what the broker sends.
    pub fn down(self) -> bool {
        matches!(self, Dir::Down | Dir::Both)
    }
}

/// Which connections (proxy) or links (namespace) a fault acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    All,
    /// Only connections opened while the fault is active (the proxy's; a link has no notion
    /// of a connection opening during a fault).
    New,
    /// Subscribers whose client id matches the glob (`*` and `?`).
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

/// Repetition: every `every`, `count` occurrences in all (None: while the run lasts).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repeat {
    pub every: Duration,
    pub count: Option<u32>,
}

/// When, which way and on whom a fault acts, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    /// Start, counted from the experiment's start.
    pub at: Duration,
    /// How long each occurrence lasts; None: to the end of the run.
    pub duration: Option<Duration>,
    pub dir: Dir,
    pub target: Target,
    pub repeat: Option<Repeat>,
}

impl Schedule {
    /// Takes the common keys out of `keys` and checks them together. `instant` faults (a
    /// reset, a close) act once per occurrence and so may repeat without `for`.
    pub fn take(keys: &mut Keys, instant: bool) -> Result<Schedule, SpecError> {
        let at = keys.duration("at")?.unwrap_or(Duration::ZERO);
        let duration = keys.duration("for")?;
        if duration == Some(Duration::ZERO) {
            return Err(SpecError::at("for", "`for` must be longer than 0s"));
        }
        let dir = match keys.take("dir").as_deref() {
            None | Some("both") => Dir::Both,
            Some("up") => Dir::Up,
            Some("down") => Dir::Down,
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
                    None if instant => {}
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
                                fmt_duration(d),
                                fmt_duration(every)
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
                                last.map_or("beyond any clock".into(), fmt_duration)
                            ),
                        ));
                    }
                }
                Some(Repeat { every, count })
            }
        };
        Ok(Schedule {
            at,
            duration,
            dir,
            target,
            repeat,
        })
    }

    /// When occurrence `n` (0-based) starts, from the experiment's start; None past the last.
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

    /// The common keys in canonical spelling and order, defaults left out (`at` always
    /// written): what a spec's text starts with after `KIND:`.
    pub fn pairs(&self) -> Vec<(&'static str, String)> {
        let mut pairs = vec![("at", fmt_duration(self.at))];
        if let Some(d) = self.duration {
            pairs.push(("for", fmt_duration(d)));
        }
        if self.dir != Dir::Both {
            pairs.push(("dir", self.dir.name().to_string()));
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
        pairs
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

/// A duration as a spec writes it: `0s`, `1m30s`, `5s352ms119us` (no spaces, so the text
/// stays one `key=value` pair).
pub fn fmt_duration(d: Duration) -> String {
    if d.is_zero() {
        "0s".to_string()
    } else {
        humantime::format_duration(d).to_string().replace(' ', "")
    }
}

/// `KIND:key=value,...` as kind, pairs joined: the canonical text of any fault.
pub fn spec_text(kind: &str, pairs: &[(&'static str, String)]) -> String {
    let parts: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!("{kind}:{}", parts.join(","))
}

/// The `key=value` pairs of a spec, consumed as they are understood; leftovers are errors.
#[derive(Debug, Default)]
pub struct Keys {
    values: BTreeMap<String, String>,
}

impl Keys {
    /// Splits `KIND:rest` into the kind and the pairs of `rest`.
    pub fn parse_spec(text: &str) -> Result<(&str, Keys), SpecError> {
        let text = text.trim();
        let (kind, rest) = match text.split_once(':') {
            Some((k, r)) => (k.trim(), r),
            None => (text, ""),
        };
        Ok((kind, Keys::parse(rest)?))
    }

    /// Parses `key=value,key=value`.
    pub fn parse(text: &str) -> Result<Keys, SpecError> {
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

    /// From a scenario's table: the same rules as text.
    pub fn from_pairs(
        pairs: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Keys, SpecError> {
        let mut keys = Keys::default();
        for (key, value) in pairs {
            keys.insert(&key, value)?;
        }
        Ok(keys)
    }

    /// Adds one pair; a key given twice is an error.
    pub fn insert(&mut self, key: &str, value: String) -> Result<(), SpecError> {
        if self.values.insert(key.to_string(), value).is_some() {
            return Err(SpecError::at(key, format!("`{key}` is given twice")));
        }
        Ok(())
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

    /// Every key taken: a key left over is not one of `kind`'s, and the error lists what is.
    /// A size (`1500`, `64KiB`, `10MB`), if given.
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

    /// A probability, if given: a number from 0 to 1 with both ends excluded (a certainty is
    /// not an impairment, and never is no fault).
    pub fn probability(&mut self, key: &str) -> Result<Option<f64>, SpecError> {
        let Some(text) = self.take(key) else {
            return Ok(None);
        };
        text.parse::<f64>()
            .ok()
            .filter(|p| *p > 0.0 && *p < 1.0)
            .map(Some)
            .ok_or_else(|| {
                SpecError::at(
                    key,
                    format!("`{key}={text}` must be a number between 0 and 1, e.g. 0.05"),
                )
            })
    }

    pub fn finish(self, kind: &str, own: &[KeyDef]) -> Result<(), SpecError> {
        if let Some(key) = self.values.keys().next() {
            let allowed: Vec<&str> = COMMON_KEYS.iter().chain(own).map(|k| k.name).collect();
            return Err(SpecError::at(
                key,
                format!(
                    "`{kind}` has no key `{key}`; keys are: {}",
                    allowed.join(", ")
                ),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schedule(text: &str, instant: bool) -> Result<Schedule, SpecError> {
        let mut keys = Keys::parse(text)?;
        let s = Schedule::take(&mut keys, instant)?;
        keys.finish("cut", &[])?;
        Ok(s)
    }

    #[test]
    fn defaults_are_both_directions_everyone_open_ended_from_zero() {
        let s = schedule("", false).unwrap();
        assert_eq!(
            s,
            Schedule {
                at: Duration::ZERO,
                duration: None,
                dir: Dir::Both,
                target: Target::All,
                repeat: None
            }
        );
        assert_eq!(s.pairs(), vec![("at", "0s".to_string())]);
    }

    #[test]
    fn a_flap_lists_its_occurrences_and_prints_canonically() {
        let s = schedule(
            "at=1s,for=1s,every=5s,count=3,dir=down,target=client=s-*",
            false,
        )
        .unwrap();
        let starts: Vec<_> = (0..4).map(|n| s.occurrence_start(n)).collect();
        let sec = Duration::from_secs;
        assert_eq!(
            starts,
            vec![Some(sec(1)), Some(sec(6)), Some(sec(11)), None]
        );
        assert_eq!(
            spec_text("cut", &s.pairs()),
            "cut:at=1s,for=1s,dir=down,target=client=s-*,every=5s,count=3"
        );
        // Compound durations print without spaces, and read back.
        let s = schedule("at=5s 352ms 119us,for=90s", false).unwrap();
        assert_eq!(
            spec_text("cut", &s.pairs()),
            "cut:at=5s352ms119us,for=1m30s"
        );
    }

    #[test]
    fn bad_schedules_name_the_key() {
        for (text, instant, key, want) in [
            ("for=soon", false, "for", "`for=soon` is not a duration"),
            ("for=0s", false, "for", "longer than 0s"),
            ("dir=sideways", false, "dir", "not a direction"),
            ("target=some", false, "target", "not a target"),
            ("count=3", false, "count", "needs `every`"),
            ("every=5s", false, "every", "needs `for`"),
            ("every=0s,for=1s", false, "every", "longer than 0s"),
            ("every=5s,for=1s,count=0", false, "count", "at least 1"),
            ("every=5s,for=5s", false, "for", "shorter than `every`"),
            ("every=300d,for=1s,count=3", false, "count", "past 365 days"),
            ("at=1s,at=2s", false, "at", "given twice"),
            ("speed=3", false, "speed", "`cut` has no key `speed`"),
        ] {
            let e = schedule(text, instant).unwrap_err();
            assert_eq!(e.key.as_deref(), Some(key), "{text}: {e}");
            assert!(e.message.contains(want), "{text}: {e}");
        }
        // An instant fault repeats without `for`.
        assert!(schedule("every=5s,count=2", true).is_ok());
    }
}
