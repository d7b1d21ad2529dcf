//! A weak link's impairments, as a namespace scenario writes them: the netem vocabulary
//! (delay with jitter and its distribution, Gilbert-Elliott loss, duplication, corruption,
//! reordering, a rate), spelled like the proxy's `latency` and `bandwidth` where the meaning
//! is the same. Checked values only; the wire that plays them is `linecut_netns::wire`.

use crate::schedule::{KeyDef, KeyType, Keys, SpecError};
use std::time::Duration;

/// How a frame's jitter is drawn: `delay + jitter × X`, with X of mean 0 and deviation 1
/// (uniform: spread over ±jitter instead).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum DelayDistribution {
    /// Evenly over `delay ± jitter`.
    #[default]
    Uniform,
    /// Normal, deviation `jitter`; a draw below zero is sent at once.
    Normal,
    /// Pareto (shape 3) standardised to mean 0 and deviation 1: bounded below at
    /// `delay − jitter/√3`, with a long tail of late frames, as on a congested radio link.
    Pareto,
}

impl DelayDistribution {
    pub const NAMES: [&'static str; 3] = ["uniform", "normal", "pareto"];

    pub fn parse(text: &str) -> Option<DelayDistribution> {
        match text {
            "uniform" => Some(DelayDistribution::Uniform),
            "normal" => Some(DelayDistribution::Normal),
            "pareto" => Some(DelayDistribution::Pareto),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            DelayDistribution::Uniform => "uniform",
            DelayDistribution::Normal => "normal",
            DelayDistribution::Pareto => "pareto",
        }
    }

    /// The largest jitter the distribution takes for `delay` without drawing delays below
    /// zero (or, for the normal, for more than 2.3% of frames: two deviations).
    pub fn max_jitter(self, delay: Duration) -> Duration {
        match self {
            DelayDistribution::Uniform => delay,
            DelayDistribution::Normal => delay / 2,
            DelayDistribution::Pareto => delay.mul_f64(3f64.sqrt()),
        }
    }
}

/// `latency` on a link.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Latency {
    pub delay: Duration,
    pub jitter: Duration,
    pub distribution: DelayDistribution,
    /// How much of each frame's jitter draw is the previous frame's (0: independent).
    pub correlation: f64,
    /// The share of frames sent at once instead of delayed: they overtake the frames still
    /// held (0: the link keeps its order).
    pub reorder: f64,
}

/// `burst_loss`: the Gilbert-Elliott two-state model. The link is good or bad; each frame it
/// moves from good to bad with chance `p` and from bad to good with chance `r`, then is lost
/// with the state's own chance. With the defaults (lose every frame when bad, none when good)
/// bursts last 1/r frames on average and a share p/(p+r) of frames is lost.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BurstLoss {
    pub p: f64,
    pub r: f64,
    pub loss_bad: f64,
    pub loss_good: f64,
}

impl BurstLoss {
    /// The mean length of a run of bad frames.
    pub fn mean_burst(&self) -> f64 {
        1.0 / self.r
    }

    /// The share of frames lost over a long run.
    pub fn loss_rate(&self) -> f64 {
        let bad = self.p / (self.p + self.r);
        bad * self.loss_bad + (1.0 - bad) * self.loss_good
    }
}

/// The longest delay a link may add: longer than any radio link's, short of the run's own
/// timers.
pub const MAX_DELAY: Duration = Duration::from_secs(10);

const DELAY: KeyDef = KeyDef {
    name: "delay",
    ty: KeyType::Duration,
    doc: "added to every frame, at most 10s",
};
const JITTER: KeyDef = KeyDef {
    name: "jitter",
    ty: KeyType::Duration,
    doc: "spread of the delay (uniform: ±jitter; normal and pareto: one deviation)",
};
const DISTRIBUTION: KeyDef = KeyDef {
    name: "distribution",
    ty: KeyType::Choice(&DelayDistribution::NAMES),
    doc: "how the jitter is drawn: uniform (default), normal, pareto",
};
const CORRELATION: KeyDef = KeyDef {
    name: "correlation",
    ty: KeyType::Text,
    doc: "how much of each frame's jitter is the previous frame's, 0 (default) to 0.99",
};
const REORDER: KeyDef = KeyDef {
    name: "reorder",
    ty: KeyType::Text,
    doc: "share of frames sent at once, overtaking the delayed ones, 0 to 1",
};
const PROBABILITY: KeyDef = KeyDef {
    name: "probability",
    ty: KeyType::Text,
    doc: "chance for each frame, between 0 and 1",
};

/// The impairment kinds' own keys.
pub fn impairment_keys(kind: &str) -> Option<&'static [KeyDef]> {
    const RATE: KeyDef = KeyDef {
        name: "rate",
        ty: KeyType::Bytes,
        doc: "bytes per second the link carries, headers included",
    };
    const GE: [KeyDef; 4] = [
        KeyDef {
            name: "p",
            ty: KeyType::Text,
            doc: "chance per frame that a good link turns bad",
        },
        KeyDef {
            name: "r",
            ty: KeyType::Text,
            doc: "chance per frame that a bad link turns good (bursts last 1/r frames)",
        },
        KeyDef {
            name: "loss_bad",
            ty: KeyType::Text,
            doc: "chance a frame is lost while the link is bad (default 1)",
        },
        KeyDef {
            name: "loss_good",
            ty: KeyType::Text,
            doc: "chance a frame is lost while the link is good (default 0)",
        },
    ];
    match kind {
        "latency" => Some(&[DELAY, JITTER, DISTRIBUTION, CORRELATION, REORDER]),
        "bandwidth" => Some(&[RATE]),
        "burst_loss" => Some(&GE),
        "duplicate" | "corrupt" => Some(&[PROBABILITY]),
        _ => None,
    }
}

/// A share from 0 (included) to 1 (excluded): 0 when not given.
fn share(keys: &mut Keys, key: &str, max: f64) -> Result<f64, SpecError> {
    let Some(text) = keys.take(key) else {
        return Ok(0.0);
    };
    text.parse::<f64>()
        .ok()
        .filter(|v| (0.0..=max).contains(v))
        .ok_or_else(|| {
            SpecError::at(
                key,
                format!("`{key}={text}` must be a number from 0 to {max}"),
            )
        })
}

/// `latency`'s keys, checked together.
pub fn take_latency(keys: &mut Keys) -> Result<Latency, SpecError> {
    let delay = keys
        .duration("delay")?
        .ok_or_else(|| SpecError::at("delay", "`latency` needs `delay`, e.g. 50ms"))?;
    if delay.is_zero() || delay > MAX_DELAY {
        return Err(SpecError::at(
            "delay",
            "must be longer than 0s and at most 10s",
        ));
    }
    let jitter = keys.duration("jitter")?.unwrap_or_default();
    let distribution = match keys.take("distribution") {
        None => DelayDistribution::default(),
        Some(text) => DelayDistribution::parse(&text).ok_or_else(|| {
            SpecError::at(
                "distribution",
                format!(
                    "`distribution={text}` is not one; use {}",
                    DelayDistribution::NAMES.join(", ")
                ),
            )
        })?,
    };
    let max = distribution.max_jitter(delay);
    if jitter > max {
        return Err(SpecError::at(
            "jitter",
            format!(
                "a {} jitter of {} on a delay of {} would draw delays below zero; at most {} (uniform: the delay; normal: half of it; pareto: √3 times it)",
                distribution.name(),
                crate::schedule::fmt_duration(jitter),
                crate::schedule::fmt_duration(delay),
                crate::schedule::fmt_duration(max),
            ),
        ));
    }
    let correlation = share(keys, "correlation", 0.99)?;
    let reorder = share(keys, "reorder", 0.99)?;
    Ok(Latency {
        delay,
        jitter,
        distribution,
        correlation,
        reorder,
    })
}

/// `burst_loss`'s keys, checked together.
pub fn take_burst_loss(keys: &mut Keys) -> Result<BurstLoss, SpecError> {
    let need = |key: &str| {
        SpecError::at(
            key,
            format!("`burst_loss` needs `{key}`, a chance per frame between 0 and 1, e.g. p = 0.01, r = 0.3"),
        )
    };
    let p = keys.probability("p")?.ok_or_else(|| need("p"))?;
    let r = keys.probability("r")?.ok_or_else(|| need("r"))?;
    let loss_bad = match keys.take("loss_bad") {
        None => 1.0,
        Some(text) => text
            .parse::<f64>()
            .ok()
            .filter(|v| *v > 0.0 && *v <= 1.0)
            .ok_or_else(|| {
                SpecError::at(
                    "loss_bad",
                    format!("`loss_bad={text}` must be above 0, at most 1"),
                )
            })?,
    };
    let loss_good = share(keys, "loss_good", 0.99)?;
    Ok(BurstLoss {
        p,
        r,
        loss_bad,
        loss_good,
    })
}

/// A number as a spec writes it back.
fn num(v: f64) -> String {
    format!("{v}")
}

/// `latency`'s keys in canonical spelling (defaults left out).
pub fn latency_params(l: &Latency) -> Vec<(&'static str, String)> {
    let mut out = vec![("delay", crate::schedule::fmt_duration(l.delay))];
    if !l.jitter.is_zero() {
        out.push(("jitter", crate::schedule::fmt_duration(l.jitter)));
    }
    if l.distribution != DelayDistribution::default() {
        out.push(("distribution", l.distribution.name().into()));
    }
    if l.correlation > 0.0 {
        out.push(("correlation", num(l.correlation)));
    }
    if l.reorder > 0.0 {
        out.push(("reorder", num(l.reorder)));
    }
    out
}

/// `burst_loss`'s keys in canonical spelling (defaults left out).
pub fn burst_loss_params(b: &BurstLoss) -> Vec<(&'static str, String)> {
    let mut out = vec![("p", num(b.p)), ("r", num(b.r))];
    if b.loss_bad != 1.0 {
        out.push(("loss_bad", num(b.loss_bad)));
    }
    if b.loss_good > 0.0 {
        out.push(("loss_good", num(b.loss_good)));
    }
    out
}

pub(crate) fn number(v: f64) -> String {
    num(v)
}
