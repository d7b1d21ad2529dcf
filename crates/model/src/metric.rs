//! The metrics a report carries and an expectation may name: one registry.
//!
//! [`Metric`] lists them with their names (as `report.json` and `[expect]` spell them), their
//! scope, and whether they are timings (which get a fleet distribution: `.min`, `.p50`, `.p90`,
//! `.p99`, `.max`). The analyzer reads each one's value in one exhaustive match, so a metric
//! added here does not compile until the analyzer can report it; the scenario checker parses
//! `[expect]` keys with [`MetricName::parse`], so a typo is an error at `linecut validate`, not
//! after a run.

use std::fmt;

/// Where a metric is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricScope {
    /// Per subscriber and fault window (`fault2.reconnect_s` names the second window's).
    Window,
    /// Per subscriber over the whole run.
    Run,
}

macro_rules! metrics {
    ($($variant:ident => $name:literal, $scope:ident, $timing:literal, $doc:literal;)*) => {
        /// A metric linecut reports.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum Metric {
            $(#[doc = $doc] $variant,)*
        }

        impl Metric {
            /// Every metric, in the order reports list them.
            pub const ALL: &'static [Metric] = &[$(Metric::$variant,)*];

            /// The name `report.json` and `[expect]` use.
            pub const fn name(self) -> &'static str {
                match self {
                    $(Metric::$variant => $name,)*
                }
            }

            pub const fn scope(self) -> MetricScope {
                match self {
                    $(Metric::$variant => MetricScope::$scope,)*
                }
            }

            /// Whether the metric is a time with a fleet distribution.
            pub const fn is_timing(self) -> bool {
                match self {
                    $(Metric::$variant => $timing,)*
                }
            }

            /// What the metric measures, for documentation and help.
            pub const fn doc(self) -> &'static str {
                match self {
                    $(Metric::$variant => $doc,)*
                }
            }
        }
    };
}

metrics! {
    ClientDetectS => "client_detect_s", Window, true, "seconds from the outage's start until the client gave up its connection";
    BrokerDetectS => "broker_detect_s", Window, true, "seconds from the outage's start until the broker dropped the client";
    ReconnectS => "reconnect_s", Window, true, "seconds from the outage's end until the client had a CONNACK again";
    ResubscribeS => "resubscribe_s", Window, true, "seconds from the outage's end until the client had a SUBACK again";
    FirstFreshS => "first_fresh_s", Window, true, "seconds from the outage's end until the first message published after it arrived";
    WillS => "will_s", Window, true, "seconds from the outage's start until the will watcher received the client's Last Will";
    StaleDataS => "stale_data_s", Window, true, "seconds from the outage's end until the broker's stale data or FIN reached a connection the client had left (negative: before the end)";
    ConnectAttempts => "connect_attempts", Window, false, "connection attempts the client made in the window";
    WireDetectS => "wire_detect_s", Window, false, "client_detect_s as seen on the wire";
    WireReconnectS => "wire_reconnect_s", Window, false, "reconnect_s as seen on the wire";
    WireResubscribeS => "wire_resubscribe_s", Window, false, "resubscribe_s as seen on the wire";
    Published => "published", Run, false, "messages published on the subscriber's topics while it was subscribed";
    Delivered => "delivered", Run, false, "messages the subscriber received";
    Lost => "lost", Run, false, "messages published and never delivered (except in the last second before the subscriber stopped)";
    Duplicates => "duplicates", Run, false, "messages received more than once";
    Delivery => "delivery", Run, false, "whether the subscriber got what its QoS and session promised: 1 as promised, 0 broken, none when not decidable (conditions `as-promised`, `broken`)";
    OutOfOrder => "out_of_order", Run, false, "messages received after a later one";
    Late => "late", Run, false, "messages published during an outage and delivered after it";
    LateMaxDelayS => "late_max_delay_s", Run, false, "the longest delay of a late message, seconds";
    DataGapReceiveS => "data_gap_receive_s", Run, false, "the longest stretch without deliveries by receive time, seconds";
    DataGapPublishS => "data_gap_publish_s", Run, false, "the longest stretch without deliveries by publish time, seconds";
    Reconnects => "reconnects", Run, false, "successful connections after the first";
    Foreign => "foreign", Run, false, "messages not in linecut's payload format";
    Pings => "pings", Run, false, "PINGREQs the client sent";
    PingIntervalS => "ping_interval_s", Run, false, "the median time between the client's PINGREQs, seconds";
}

impl Metric {
    pub fn from_name(name: &str) -> Option<Metric> {
        Metric::ALL.iter().copied().find(|m| m.name() == name)
    }

    /// The timings, in registry order.
    pub fn timings() -> impl Iterator<Item = Metric> {
        Metric::ALL.iter().copied().filter(|m| m.is_timing())
    }
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A statistic over a fleet's values of one timing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stat {
    Min,
    P50,
    P90,
    P99,
    Max,
}

impl Stat {
    pub const ALL: [Stat; 5] = [Stat::Min, Stat::P50, Stat::P90, Stat::P99, Stat::Max];

    pub const fn name(self) -> &'static str {
        match self {
            Stat::Min => "min",
            Stat::P50 => "p50",
            Stat::P90 => "p90",
            Stat::P99 => "p99",
            Stat::Max => "max",
        }
    }
}

/// An `[expect]` key: `[faultN.]metric[.stat]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetricName {
    /// The fault window (1-based); `None` is the first.
    pub window: Option<usize>,
    pub metric: Metric,
    pub stat: Option<Stat>,
}

impl MetricName {
    pub fn parse(text: &str) -> Result<MetricName, String> {
        let mut rest = text;
        let mut window = None;
        if let Some((prefix, tail)) = rest.split_once('.') {
            if let Some(n) = prefix.strip_prefix("fault") {
                let n: usize = n.parse().ok().filter(|n| *n >= 1).ok_or_else(|| {
                    format!("`{prefix}` names no fault window; write fault1, fault2, …")
                })?;
                window = Some(n);
                rest = tail;
            }
        }
        let (name, stat) = match rest.split_once('.') {
            Some((name, stat)) => (name, Some(stat)),
            None => (rest, None),
        };
        let metric = Metric::from_name(name).ok_or_else(|| {
            format!(
                "`{name}` is not a metric linecut reports; metrics: {}",
                Metric::ALL
                    .iter()
                    .map(|m| m.name())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })?;
        let stat = match stat {
            None => None,
            Some(s) => {
                let timings = || {
                    Metric::timings()
                        .map(|m| m.name())
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                if !metric.is_timing() {
                    return Err(format!(
                        "`{text}`: only timings have fleet statistics ({})",
                        timings()
                    ));
                }
                Some(Stat::ALL.into_iter().find(|x| x.name() == s).ok_or_else(|| {
                    format!("`{text}`: `{s}` is not a fleet statistic; use .min, .p50, .p90, .p99 or .max")
                })?)
            }
        };
        if window.is_some() && metric.scope() == MetricScope::Run {
            return Err(format!(
                "`{text}`: `{name}` is counted over the whole run, not per fault window; drop the `fault` prefix"
            ));
        }
        Ok(MetricName {
            window,
            metric,
            stat,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_are_unique() {
        for m in Metric::ALL {
            assert_eq!(Metric::from_name(m.name()), Some(*m));
        }
        let mut names: Vec<&str> = Metric::ALL.iter().map(|m| m.name()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), Metric::ALL.len());
    }

    #[test]
    fn expectation_keys_parse_or_say_why_not() {
        let k = MetricName::parse("fault2.client_detect_s.p99").unwrap();
        assert_eq!(
            (k.window, k.metric, k.stat),
            (Some(2), Metric::ClientDetectS, Some(Stat::P99))
        );
        assert_eq!(MetricName::parse("pings").unwrap().metric, Metric::Pings);
        for (bad, why) in [
            ("wobble", "not a metric"),
            ("lost.p99", "only timings"),
            ("client_detect_s.p42", "not a fleet statistic"),
            ("fault0.reconnect_s", "names no fault window"),
            ("fault2.lost", "whole run"),
        ] {
            let e = MetricName::parse(bad).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }
}
