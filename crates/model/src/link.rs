//! A link fault as a namespace scenario writes it: its kind and the kind's own keys, plus the
//! [`Schedule`] every fault shares with the proxy's (`at`, `for`, `dir`, `target`, `every`,
//! `count`, one parser for both modes). No runtime: the runner turns a spec into nftables
//! rules.

use crate::network::{CutLayer, Forget, LinkKind};
use crate::schedule::{spec_text, KeyDef, KeyType, Keys, Schedule, SpecError, Target};
use std::fmt;

/// `idle_timeout`'s own keys, the same in both modes.
pub const IDLE_TIMEOUT_KEYS: [KeyDef; 2] = [
    KeyDef {
        name: "timeout",
        ty: KeyType::Duration,
        doc: "how long a flow may be idle before the middlebox forgets it, whole seconds (the kernel's connection tracking counts in seconds)",
    },
    KeyDef {
        name: "then",
        ty: KeyType::Choice(&Forget::NAMES),
        doc: "what happens to a segment of a forgotten flow: drop (silent, the default), reset (answered with a TCP reset), remap (namespace mode: a new external port, which the broker resets)",
    },
];

/// The link fault kinds' own keys.
pub fn link_keys(kind: &str) -> Option<&'static [KeyDef]> {
    const LAYER: KeyDef = KeyDef {
        name: "layer",
        ty: KeyType::Choice(&["path", "link"]),
        doc: "path (past the first hop, the default) or link (the device's link, ARP included)",
    };
    const PROBABILITY: KeyDef = KeyDef {
        name: "probability",
        ty: KeyType::Text,
        doc: "chance a packet is dropped, 0.000001 to 0.999999",
    };
    match kind {
        "cut" => Some(&[LAYER]),
        "unplug" | "reject" => Some(&[]),
        "loss" => Some(&[PROBABILITY]),
        "idle_timeout" => Some(&IDLE_TIMEOUT_KEYS),
        other => crate::impairment::impairment_keys(other),
    }
}

/// A link fault, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct LinkFaultSpec {
    pub kind: LinkKind,
    pub schedule: Schedule,
}

impl LinkFaultSpec {
    /// Builds a spec from its kind and `key = value` pairs (a scenario's `[[fault]]` table).
    pub fn from_pairs(
        kind: &str,
        pairs: impl IntoIterator<Item = (String, String)>,
    ) -> Result<LinkFaultSpec, SpecError> {
        LinkFaultSpec::from_keys(kind, Keys::from_pairs(pairs)?)
    }

    fn from_keys(kind: &str, mut keys: Keys) -> Result<LinkFaultSpec, SpecError> {
        let own = link_keys(kind).ok_or_else(|| {
            SpecError::new(format!(
                "`{kind}` is not a link fault; a namespace run takes: {}",
                LinkKind::NAMES.join(", ")
            ))
        })?;
        let kind = match kind {
            "cut" => LinkKind::Cut {
                layer: match keys.take("layer") {
                    None => CutLayer::default(),
                    Some(value) => CutLayer::parse(&value).ok_or_else(|| {
                        SpecError::at(
                            "layer",
                            format!(
                                "`layer={value}` is not a layer; use path (past the first hop, the default) or link (the device's link, ARP included)"
                            ),
                        )
                    })?,
                },
            },
            "unplug" => LinkKind::Unplug,
            "reject" => LinkKind::Reject,
            "idle_timeout" => {
                let (timeout_s, then) = take_idle_timeout(&mut keys)?;
                LinkKind::IdleTimeout { timeout_s, then }
            }
            "latency" => LinkKind::Latency(crate::impairment::take_latency(&mut keys)?),
            "bandwidth" => LinkKind::Bandwidth {
                rate: keys.bytes("rate")?.ok_or_else(|| {
                    SpecError::at(
                        "rate",
                        "`bandwidth` needs `rate` in bytes per second, e.g. 16KiB",
                    )
                })?,
            },
            "burst_loss" => LinkKind::BurstLoss(crate::impairment::take_burst_loss(&mut keys)?),
            "duplicate" | "corrupt" => {
                let probability = keys.probability("probability")?.ok_or_else(|| {
                    SpecError::at(
                        "probability",
                        format!("`{kind}` needs `probability`, e.g. 0.01"),
                    )
                })?;
                if kind == "duplicate" {
                    LinkKind::Duplicate { probability }
                } else {
                    LinkKind::Corrupt { probability }
                }
            }
            _ => LinkKind::Loss {
                probability: probability(keys.take("probability"))?,
            },
        };
        let schedule = Schedule::take(&mut keys, false)?;
        keys.finish(kind.name(), own)?;
        if schedule.target == Target::New {
            return Err(SpecError::at(
                "target",
                "`target=new` is the proxy's (connections opened during the fault); a link fault takes all or client=PATTERN",
            ));
        }
        if kind.is_middlebox() {
            check_middlebox_schedule(&schedule)?;
        }
        // A cable is pulled for both directions at once.
        if kind == LinkKind::Unplug && schedule.dir != crate::schedule::Dir::Both {
            return Err(SpecError::at(
                "dir",
                "`unplug` takes the carrier down both ways; it has no direction",
            ));
        }
        Ok(LinkFaultSpec { kind, schedule })
    }

    /// The kind's own keys in canonical spelling (defaults left out).
    pub fn params(&self) -> Vec<(&'static str, String)> {
        match self.kind {
            LinkKind::IdleTimeout { timeout_s, then } => {
                let mut out = vec![("timeout", format!("{timeout_s}s"))];
                if then != Forget::default() {
                    out.push(("then", then.name().to_string()));
                }
                out
            }
            LinkKind::Loss { probability } => vec![("probability", probability.to_string())],
            LinkKind::Latency(l) => crate::impairment::latency_params(&l),
            LinkKind::Bandwidth { rate } => vec![("rate", rate.to_string())],
            LinkKind::BurstLoss(b) => crate::impairment::burst_loss_params(&b),
            LinkKind::Duplicate { probability } | LinkKind::Corrupt { probability } => {
                vec![("probability", crate::impairment::number(probability))]
            }
            LinkKind::Cut { layer } if layer != CutLayer::default() => {
                vec![("layer", layer.name().to_string())]
            }
            _ => Vec::new(),
        }
    }
}

/// The longest idle timeout: a day, longer than any middlebox's (home routers and carrier NATs
/// keep idle TCP flows minutes to hours) and than any run.
const MAX_IDLE_TIMEOUT_S: u32 = 86_400;

/// Takes `idle_timeout`'s keys: its timeout in seconds and what it does after.
pub fn take_idle_timeout(keys: &mut Keys) -> Result<(u32, Forget), SpecError> {
    let timeout_s = idle_timeout(keys)?;
    let then = match keys.take("then") {
        None => Forget::default(),
        Some(value) => Forget::parse(&value).ok_or_else(|| {
            SpecError::at(
                "then",
                format!(
                    "`then={value}` is not what a middlebox does with a forgotten flow; use {}",
                    Forget::NAMES.join(", ")
                ),
            )
        })?,
    };
    Ok((timeout_s, then))
}

/// `idle_timeout`'s timeout: whole seconds from 1 s to a day. The kernel's connection tracking
/// keeps a flow's timeout in seconds, so a fraction would be a promise the run cannot keep.
fn idle_timeout(keys: &mut Keys) -> Result<u32, SpecError> {
    let d = keys.duration("timeout")?.ok_or_else(|| {
        SpecError::at(
            "timeout",
            "`idle_timeout` needs `timeout`, how long a flow may be idle, e.g. 30s",
        )
    })?;
    if d.is_zero() || d.subsec_nanos() != 0 || d.as_secs() > u64::from(MAX_IDLE_TIMEOUT_S) {
        return Err(SpecError::at(
            "timeout",
            "must be whole seconds from 1s to 24h (connection tracking counts in seconds), e.g. 30s",
        ));
    }
    Ok(d.as_secs() as u32)
}

/// A middlebox is part of the path, from the run's start to its end, for the devices
/// `target` names: the keys that place an event in time mean nothing to it.
pub fn check_middlebox_schedule(schedule: &Schedule) -> Result<(), SpecError> {
    let why = |key: &str| {
        SpecError::at(
            key,
            format!("`idle_timeout` is a middlebox on the path for the whole run, both ways, so `{key}` has no meaning; `target = \"client=PATTERN\"` puts only some devices behind it"),
        )
    };
    if !schedule.at.is_zero() {
        return Err(why("at"));
    }
    if schedule.duration.is_some() {
        return Err(why("for"));
    }
    if schedule.repeat.is_some() {
        return Err(why("every"));
    }
    if schedule.dir != crate::schedule::Dir::Both {
        return Err(why("dir"));
    }
    Ok(())
}

/// `loss`'s probability. The rule draws in millionths (`numgen … mod 1000000`): a probability
/// that rounds to 0 or to 1 000 000 of them is refused here, not by nft at the fault's start.
fn probability(value: Option<String>) -> Result<f64, SpecError> {
    let value = value
        .ok_or_else(|| SpecError::at("probability", "`loss` needs `probability`, e.g. 0.2"))?;
    value
        .parse::<f64>()
        .ok()
        .filter(|p| (1.0..=999_999.0).contains(&(p * 1e6).round()))
        .ok_or_else(|| {
            SpecError::at(
                "probability",
                "must be a number from 0.000001 to 0.999999 (the rule draws in millionths), e.g. 0.2",
            )
        })
}

impl fmt::Display for LinkFaultSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut pairs = self.schedule.pairs();
        pairs.extend(self.params());
        f.write_str(&spec_text(self.kind.name(), &pairs))
    }
}

impl std::str::FromStr for LinkFaultSpec {
    type Err = SpecError;

    /// Reads back what `Display` writes (`cut:at=5s,for=20s,layer=link`): how the analysis
    /// learns from a run's events which event a fault played. Runs recorded before the
    /// spelling lost its spaces (`at=5s 352ms`) read back too.
    fn from_str(text: &str) -> Result<LinkFaultSpec, SpecError> {
        let (kind, keys) = Keys::parse_spec(text)?;
        LinkFaultSpec::from_keys(kind, keys)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schedule::Dir;
    use crate::Glob;
    use std::time::Duration;

    fn parse(kind: &str, pairs: &[(&str, &str)]) -> Result<LinkFaultSpec, SpecError> {
        LinkFaultSpec::from_pairs(
            kind,
            pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())),
        )
    }

    #[test]
    fn link_faults_parse_with_the_proxys_spelling() {
        let s = parse("cut", &[("at", "5s"), ("for", "20s"), ("dir", "down")]).unwrap();
        assert_eq!((s.kind, s.schedule.dir), (LinkKind::CUT, Dir::Down));
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
        assert_eq!(s.schedule.target, Target::Client(Glob::new("sensor-*")));
        assert_eq!(
            s.schedule.occurrence_start(2),
            Some(Duration::from_secs(20))
        );
        assert_eq!(s.schedule.occurrence_start(3), None);
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
            ("cut", vec![("target", "new")], Some("target")),
            ("blackhole", vec![], None),
            ("latency", vec![], Some("delay")),
            ("latency", vec![("delay", "11s")], Some("delay")),
            (
                "latency",
                vec![("delay", "10ms"), ("jitter", "11ms")],
                Some("jitter"),
            ),
            (
                "latency",
                vec![
                    ("delay", "10ms"),
                    ("jitter", "6ms"),
                    ("distribution", "normal"),
                ],
                Some("jitter"),
            ),
            (
                "latency",
                vec![("delay", "10ms"), ("distribution", "poisson")],
                Some("distribution"),
            ),
            (
                "latency",
                vec![("delay", "10ms"), ("reorder", "1.5")],
                Some("reorder"),
            ),
            ("burst_loss", vec![("p", "0.1")], Some("r")),
            ("burst_loss", vec![("p", "0"), ("r", "0.5")], Some("p")),
            ("duplicate", vec![("probability", "1")], Some("probability")),
            ("corrupt", vec![], Some("probability")),
            ("bandwidth", vec![("rate", "fast")], Some("rate")),
            ("idle_timeout", vec![], Some("timeout")),
            ("idle_timeout", vec![("timeout", "0s")], Some("timeout")),
            ("idle_timeout", vec![("timeout", "1500ms")], Some("timeout")),
            ("idle_timeout", vec![("timeout", "2d")], Some("timeout")),
            (
                "idle_timeout",
                vec![("timeout", "30s"), ("then", "vanish")],
                Some("then"),
            ),
            (
                "idle_timeout",
                vec![("timeout", "30s"), ("at", "5s")],
                Some("at"),
            ),
            (
                "idle_timeout",
                vec![("timeout", "30s"), ("for", "5s")],
                Some("for"),
            ),
            (
                "idle_timeout",
                vec![("timeout", "30s"), ("dir", "up")],
                Some("dir"),
            ),
        ] {
            let e = parse(kind, &pairs).unwrap_err();
            assert_eq!(e.key.as_deref(), key, "{kind} {pairs:?}: {e}");
        }
        let e = parse("blackhole", &[]).unwrap_err();
        assert!(
            e.message
                .contains("cut, unplug, loss, reject, idle_timeout, latency"),
            "{e}"
        );
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
            "idle_timeout:at=0s,timeout=30s",
            "idle_timeout:at=0s,target=client=s-*,timeout=60s,then=remap",
            "latency:at=1s,for=5s,dir=down,delay=20ms,jitter=5ms,distribution=pareto,correlation=0.25,reorder=0.1",
            "bandwidth:at=0s,rate=16384",
            "burst_loss:at=0s,for=1m,p=0.01,r=0.3,loss_bad=0.8,loss_good=0.001",
            "duplicate:at=0s,probability=0.01",
            "corrupt:at=0s,probability=0.001",
        ] {
            let spec: LinkFaultSpec = text.parse().unwrap();
            assert_eq!(spec.to_string(), text);
        }
        assert!("cut:at".parse::<LinkFaultSpec>().is_err());
        // What runs recorded before durations lost their spaces still reads.
        let old: LinkFaultSpec = "cut:at=5s 352ms 119us,for=20s".parse().unwrap();
        assert_eq!(old.to_string(), "cut:at=5s352ms119us,for=20s");
    }
}
