//! Reconnect and re-subscribe policies: how long a client waits before its next connection
//! attempt, and when it sends SUBSCRIBE again.
//!
//! rumqttc reconnects the moment its event loop is polled again after an error; it has no
//! back-off of its own. Experiments need to compare client behaviours (paho waits 1, 2, 4 … up to
//! 120 s), so the policy is explicit: immediate, a fixed delay, or exponential back-off with a
//! floor, a ceiling and jitter. The delay depends only on how many attempts failed in a row, so it
//! is computed here without IO and reset by the caller after a successful CONNACK.

use crate::duration::parse_duration;
use std::fmt;
use std::time::Duration;

/// When a subscriber sends SUBSCRIBE again after reconnecting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResubscribePolicy {
    /// On every CONNACK (the paho idiom: subscribe in `on_connect`).
    Always,
    /// Only when CONNACK says the broker kept no session.
    WhenSessionLost,
    /// Only on the first connection.
    Never,
}

impl ResubscribePolicy {
    pub fn parse(text: &str) -> Result<Self, String> {
        match text {
            "always" => Ok(Self::Always),
            "when-session-lost" => Ok(Self::WhenSessionLost),
            "never" => Ok(Self::Never),
            _ => Err(format!(
                "`{text}` is not a re-subscribe policy; use always, when-session-lost or never"
            )),
        }
    }
}

impl fmt::Display for ResubscribePolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Always => "always",
            Self::WhenSessionLost => "when-session-lost",
            Self::Never => "never",
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ReconnectPolicy {
    Immediate,
    Fixed(Duration),
    Exponential {
        min: Duration,
        max: Duration,
        /// Fraction of the delay drawn at random either way, in [0, 1].
        jitter: f64,
    },
}

impl ReconnectPolicy {
    /// The delay before the next attempt after `failures` failed attempts in a row (1-based).
    /// `draw` is a uniform sample in [0, 1) used for jitter.
    pub fn delay(&self, failures: u32, draw: f64) -> Duration {
        match *self {
            ReconnectPolicy::Immediate => Duration::ZERO,
            ReconnectPolicy::Fixed(d) => d,
            ReconnectPolicy::Exponential { min, max, jitter } => {
                let doublings = failures.saturating_sub(1).min(40);
                let base = min.as_secs_f64() * 2f64.powi(doublings as i32);
                let base = base.min(max.as_secs_f64());
                let factor = 1.0 + jitter * (draw * 2.0 - 1.0);
                Duration::from_secs_f64((base * factor).max(0.0))
            }
        }
    }

    /// Parses `immediate`, `fixed:DURATION` or `exponential:min=D,max=D[,jitter=F]`.
    pub fn parse(text: &str) -> Result<ReconnectPolicy, String> {
        let (kind, rest) = text.split_once(':').unwrap_or((text, ""));
        match kind {
            "immediate" if rest.is_empty() => Ok(ReconnectPolicy::Immediate),
            "fixed" => parse_duration(rest)
                .map(ReconnectPolicy::Fixed)
                .map_err(|e| format!("`fixed:{rest}`: `{rest}` {e}")),
            "exponential" => {
                let (mut min, mut max, mut jitter) = (None, None, 0.0);
                for part in rest.split(',').filter(|p| !p.is_empty()) {
                    let (key, value) = part
                        .split_once('=')
                        .ok_or_else(|| format!("`{part}` is not key=value"))?;
                    let duration =
                        || parse_duration(value).map_err(|e| format!("`{key}={value}` {e}"));
                    match key {
                        "min" => min = Some(duration()?),
                        "max" => max = Some(duration()?),
                        "jitter" => {
                            jitter = value
                                .parse::<f64>()
                                .ok()
                                .filter(|j| (0.0..=1.0).contains(j))
                                .ok_or_else(|| {
                                    format!("`jitter={value}` must be a number from 0 to 1")
                                })?
                        }
                        other => {
                            return Err(format!(
                            "exponential back-off has no key `{other}`; keys are min, max, jitter"
                        ))
                        }
                    }
                }
                let min = min.ok_or("exponential back-off needs min=DURATION")?;
                let max = max.ok_or("exponential back-off needs max=DURATION")?;
                if min.is_zero() || max < min {
                    return Err("exponential back-off needs 0 < min <= max".into());
                }
                Ok(ReconnectPolicy::Exponential { min, max, jitter })
            }
            _ => Err(format!(
                "`{text}` is not a reconnect policy; use immediate, fixed:DURATION or \
                 exponential:min=DURATION,max=DURATION[,jitter=FRACTION]"
            )),
        }
    }
}

impl fmt::Display for ReconnectPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = |d: Duration| humantime::format_duration(d).to_string().replace(' ', "");
        match *self {
            ReconnectPolicy::Immediate => f.write_str("immediate"),
            ReconnectPolicy::Fixed(x) => write!(f, "fixed:{}", d(x)),
            ReconnectPolicy::Exponential { min, max, jitter } => {
                write!(
                    f,
                    "exponential:min={},max={},jitter={jitter}",
                    d(min),
                    d(max)
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exponential_back_off_doubles_from_min_up_to_max() {
        let p = ReconnectPolicy::parse("exponential:min=1s,max=120s").unwrap();
        let secs: Vec<u64> = (1..=9).map(|n| p.delay(n, 0.5).as_secs()).collect();
        assert_eq!(
            secs,
            vec![1, 2, 4, 8, 16, 32, 64, 120, 120],
            "paho's schedule"
        );
    }

    #[test]
    fn jitter_spreads_the_delay_both_ways_within_its_fraction() {
        let p = ReconnectPolicy::parse("exponential:min=1s,max=1s,jitter=0.2").unwrap();
        assert_eq!(p.delay(1, 0.0), Duration::from_millis(800));
        assert_eq!(p.delay(1, 0.5), Duration::from_secs(1));
        assert!(p.delay(1, 0.999_999) <= Duration::from_millis(1200));
    }

    #[test]
    fn policies_parse_and_print_back() {
        for text in [
            "immediate",
            "fixed:500ms",
            "exponential:min=1s,max=2m,jitter=0.1",
        ] {
            let p = ReconnectPolicy::parse(text).unwrap();
            assert_eq!(ReconnectPolicy::parse(&p.to_string()).unwrap(), p);
        }
        assert_eq!(
            ReconnectPolicy::parse("fixed:2s").unwrap().delay(9, 0.3),
            Duration::from_secs(2)
        );
    }

    #[test]
    fn bad_policies_say_what_is_wrong() {
        let err = |t: &str| ReconnectPolicy::parse(t).unwrap_err();
        assert!(err("sometimes").contains("not a reconnect policy"));
        assert!(err("fixed:soon").contains("not a duration"));
        assert!(err("exponential:min=1s").contains("needs max"));
        assert!(err("exponential:min=5s,max=1s").contains("min <= max"));
        assert!(err("exponential:min=1s,max=2s,jitter=3").contains("from 0 to 1"));
        assert!(err("exponential:min=1s,max=2s,step=3").contains("no key `step`"));
    }
}
