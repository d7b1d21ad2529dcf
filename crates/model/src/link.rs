//! A link fault as a namespace scenario writes it: kind, schedule, direction and target, parsed
//! from `key = value` pairs with the same spelling as the proxy's faults where the meaning is
//! the same (`at`, `for`, `dir`, `target`, `every`, `count`). No runtime: the runner turns a
//! spec into nftables rules.

use crate::duration::parse_duration;
use crate::network::{link_keys, CutLayer, LinkKind, LINK_COMMON_KEYS};
use std::fmt;
use std::time::Duration;

/// Which way a link fault acts, from the subscriber's point of view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkDir {
    /// Client to broker.
    Up,
    /// Broker to client.
    Down,
    Both,
}

impl LinkDir {
    pub fn name(self) -> &'static str {
        match self {
            LinkDir::Up => "up",
            LinkDir::Down => "down",
            LinkDir::Both => "both",
        }
    }

    pub fn up(self) -> bool {
        matches!(self, LinkDir::Up | LinkDir::Both)
    }

    pub fn down(self) -> bool {
        matches!(self, LinkDir::Down | LinkDir::Both)
    }
}

/// Whose links a fault acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkTarget {
    All,
    /// Subscribers whose client id matches the pattern (`*` and `?`).
    Client(String),
}

/// A link fault, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct LinkFaultSpec {
    pub kind: LinkKind,
    pub at: Duration,
    /// None: to the end of the run.
    pub duration: Option<Duration>,
    pub dir: LinkDir,
    pub target: LinkTarget,
    /// Every `every`, `count` occurrences in all (None: while the run lasts).
    pub repeat: Option<(Duration, Option<u32>)>,
}

/// A link fault that does not parse: the key at fault (None for the kind) and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct LinkSpecError {
    pub key: Option<String>,
    pub message: String,
}

fn err(key: &str, message: impl Into<String>) -> LinkSpecError {
    LinkSpecError {
        key: Some(key.to_string()),
        message: message.into(),
    }
}

impl LinkFaultSpec {
    /// Builds a spec from its kind and `key = value` pairs.
    pub fn from_pairs(
        kind: &str,
        pairs: impl IntoIterator<Item = (String, String)>,
    ) -> Result<LinkFaultSpec, LinkSpecError> {
        let own = link_keys(kind).ok_or_else(|| LinkSpecError {
            key: None,
            message: format!(
                "`{kind}` is not a link fault; a namespace run takes: {}",
                LinkKind::NAMES.join(", ")
            ),
        })?;
        let mut at = Duration::ZERO;
        let mut duration = None;
        let mut dir = LinkDir::Both;
        let mut target = LinkTarget::All;
        let (mut every, mut count, mut probability) = (None, None, None);
        let mut layer = CutLayer::default();
        for (key, value) in pairs {
            let dur = |v: &str| parse_duration(v).map_err(|e| err(&key, format!("`{v}` {e}")));
            match key.as_str() {
                "at" => at = dur(&value)?,
                "for" => duration = Some(dur(&value)?),
                "every" => every = Some(dur(&value)?),
                "count" => {
                    count = Some(
                        value
                            .parse::<u32>()
                            .ok()
                            .filter(|n| *n >= 1)
                            .ok_or_else(|| err("count", "must be a whole number from 1"))?,
                    )
                }
                "dir" => {
                    dir = match value.as_str() {
                        "up" => LinkDir::Up,
                        "down" => LinkDir::Down,
                        "both" => LinkDir::Both,
                        other => {
                            return Err(err(
                                "dir",
                                format!("`dir={other}` is not a direction; use up, down or both"),
                            ))
                        }
                    }
                }
                "target" => {
                    target = match value.strip_prefix("client=") {
                        _ if value == "all" => LinkTarget::All,
                        Some(p) if !p.is_empty() => LinkTarget::Client(p.to_string()),
                        _ => {
                            return Err(err(
                                "target",
                                format!(
                                    "`target={value}` is not a target; use all or client=PATTERN"
                                ),
                            ))
                        }
                    }
                }
                "layer" if own.contains(&"layer") => {
                    layer = CutLayer::parse(&value).ok_or_else(|| {
                        err(
                            "layer",
                            format!(
                                "`layer={value}` is not a layer; use path (past the first hop, the default) or link (the device's link, ARP included)"
                            ),
                        )
                    })?
                }
                "probability" if own.contains(&"probability") => {
                    // The rule draws in millionths (`numgen … mod 1000000`): a probability that
                    // rounds to 0 or to 1 000 000 of them is refused here, not by nft at the
                    // fault's start.
                    probability = Some(
                        value
                            .parse::<f64>()
                            .ok()
                            .filter(|p| (1.0..=999_999.0).contains(&(p * 1e6).round()))
                            .ok_or_else(|| {
                                err(
                                    "probability",
                                    "must be a number from 0.000001 to 0.999999 (the rule draws in millionths), e.g. 0.2",
                                )
                            })?,
                    )
                }
                other => {
                    let keys: Vec<&str> = LINK_COMMON_KEYS.iter().chain(own).copied().collect();
                    return Err(err(
                        other,
                        format!(
                            "`{kind}` has no key `{other}`; keys are: {}",
                            keys.join(", ")
                        ),
                    ));
                }
            }
        }
        if duration == Some(Duration::ZERO) {
            return Err(err("for", "`for` must be longer than 0s"));
        }
        let kind = match kind {
            "cut" => LinkKind::Cut { layer },
            "unplug" => {
                // A cable is pulled for both directions at once.
                if dir != LinkDir::Both {
                    return Err(err(
                        "dir",
                        "`unplug` takes the carrier down both ways; it has no direction",
                    ));
                }
                LinkKind::Unplug
            }
            "reject" => LinkKind::Reject,
            _ => LinkKind::Loss {
                probability: probability
                    .ok_or_else(|| err("probability", "`loss` needs `probability`, e.g. 0.2"))?,
            },
        };
        let repeat = match (every, count) {
            (None, None) => None,
            (None, Some(_)) => return Err(err("count", "`count` needs `every`")),
            (Some(every), count) => {
                let Some(d) = duration else {
                    return Err(err(
                        "every",
                        "a repeating fault needs `for` (each occurrence must end)",
                    ));
                };
                if d >= every {
                    return Err(err("for", "`for` must be shorter than `every`"));
                }
                Some((every, count))
            }
        };
        Ok(LinkFaultSpec {
            kind,
            at,
            duration,
            dir,
            target,
            repeat,
        })
    }

    /// When occurrence `n` (0-based) starts; None past the last one.
    pub fn occurrence_start(&self, n: u32) -> Option<Duration> {
        match self.repeat {
            None if n == 0 => Some(self.at),
            None => None,
            Some((_, Some(c))) if n >= c => None,
            Some((every, _)) => every.checked_mul(n).and_then(|o| self.at.checked_add(o)),
        }
    }
}

impl fmt::Display for LinkFaultSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = |d: Duration| humantime::format_duration(d).to_string();
        write!(
            f,
            "{}:at={}",
            self.kind.name(),
            if self.at.is_zero() {
                "0s".into()
            } else {
                d(self.at)
            }
        )?;
        if let Some(x) = self.duration {
            write!(f, ",for={}", d(x))?;
        }
        if self.dir != LinkDir::Both {
            write!(f, ",dir={}", self.dir.name())?;
        }
        if let LinkTarget::Client(p) = &self.target {
            write!(f, ",target=client={p}")?;
        }
        if let Some((every, count)) = self.repeat {
            write!(f, ",every={}", d(every))?;
            if let Some(c) = count {
                write!(f, ",count={c}")?;
            }
        }
        match self.kind {
            LinkKind::Loss { probability } => write!(f, ",probability={probability}")?,
            LinkKind::Cut { layer } if layer != CutLayer::default() => {
                write!(f, ",layer={}", layer.name())?
            }
            _ => {}
        }
        Ok(())
    }
}

impl std::str::FromStr for LinkFaultSpec {
    type Err = LinkSpecError;

    /// Reads back what `Display` writes (`cut:at=5s,for=20s,layer=link`): how the analysis
    /// learns from a run's events which event a fault played.
    fn from_str(text: &str) -> Result<LinkFaultSpec, LinkSpecError> {
        let (kind, rest) = text.split_once(':').unwrap_or((text, ""));
        let mut pairs = Vec::new();
        for pair in rest.split(',').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').ok_or_else(|| LinkSpecError {
                key: None,
                message: format!("`{pair}` is not key=value"),
            })?;
            pairs.push((key.to_string(), value.to_string()));
        }
        LinkFaultSpec::from_pairs(kind, pairs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(kind: &str, pairs: &[(&str, &str)]) -> Result<LinkFaultSpec, LinkSpecError> {
        LinkFaultSpec::from_pairs(
            kind,
            pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())),
        )
    }

    #[test]
    fn link_faults_parse_with_the_proxys_spelling() {
        let s = parse("cut", &[("at", "5s"), ("for", "20s"), ("dir", "down")]).unwrap();
        assert_eq!((s.kind, s.dir), (LinkKind::CUT, LinkDir::Down));
        assert_eq!(s.to_string(), "cut:at=5s,for=20s,dir=down");
        let s = parse("cut", &[("layer", "link"), ("for", "1s")]).unwrap();
        assert_eq!(
            s.kind,
            LinkKind::Cut {
                layer: CutLayer::Link
            }
        );
        assert_eq!(s.to_string(), "cut:at=0s,for=1s,layer=link");
        assert_eq!(
            parse("unplug", &[("at", "2s")]).unwrap().kind,
            LinkKind::Unplug
        );
        let s = parse("loss", &[("probability", "0.2"), ("for", "10s")]).unwrap();
        assert_eq!(s.kind, LinkKind::Loss { probability: 0.2 });
        let s = parse(
            "reject",
            &[
                ("target", "client=sensor-*"),
                ("every", "10s"),
                ("for", "2s"),
                ("count", "3"),
            ],
        )
        .unwrap();
        assert_eq!(s.target, LinkTarget::Client("sensor-*".into()));
        assert_eq!(s.occurrence_start(2), Some(Duration::from_secs(20)));
        assert_eq!(s.occurrence_start(3), None);
    }

    #[test]
    fn bad_link_faults_name_the_key() {
        for (kind, pairs, key) in [
            ("loss", vec![("for", "1s")], Some("probability")),
            ("loss", vec![("probability", "1.5")], Some("probability")),
            (
                "loss",
                vec![("probability", "0.9999996")],
                Some("probability"),
            ),
            (
                "loss",
                vec![("probability", "0.0000004")],
                Some("probability"),
            ),
            ("loss", vec![("probability", "NaN")], Some("probability")),
            ("cut", vec![("hold", "1KiB")], Some("hold")),
            ("cut", vec![("dir", "sideways")], Some("dir")),
            ("cut", vec![("for", "0s")], Some("for")),
            ("cut", vec![("every", "1s")], Some("every")),
            ("cut", vec![("count", "2")], Some("count")),
            ("cut", vec![("layer", "wire")], Some("layer")),
            ("unplug", vec![("dir", "up")], Some("dir")),
            ("unplug", vec![("layer", "link")], Some("layer")),
            ("latency", vec![], None),
        ] {
            let e = parse(kind, &pairs).unwrap_err();
            assert_eq!(e.key.as_deref(), key, "{kind} {pairs:?}: {e}");
        }
        let e = parse("latency", &[]).unwrap_err();
        assert!(e.message.contains("cut, unplug, loss, reject"), "{e}");
    }

    /// The analysis reads a fault back from its events' spec text: every spelling round-trips.
    #[test]
    fn a_spec_reads_back_from_what_it_prints() {
        for text in [
            "cut:at=5s,for=20s,dir=down",
            "cut:at=0s,for=1s,layer=link",
            "unplug:at=2s,for=3s",
            "loss:at=0s,for=10s,probability=0.2",
            "reject:at=1s,for=2s,target=client=s-*,every=10s,count=3",
        ] {
            let spec: LinkFaultSpec = text.parse().unwrap();
            assert_eq!(spec.to_string(), text);
        }
        assert!("cut:at".parse::<LinkFaultSpec>().is_err());
    }
}
