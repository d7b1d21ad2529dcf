//! The keepalive a deployment should choose: per cell (a client and a keepalive, with the
//! sweep's other settings), what the keepalive buys and what it costs, over every outage
//! window of every run, and, against the scenario's `[sweep.goal]`, the cheapest keepalive
//! that met it for each client.
//!
//! Bought: how soon the client noticed a dead connection (median and 95th percentile over
//! every window whose connection was up when it began, "never" counted), whether its
//! connection survived the run's idle-timeout middlebox or how often the middlebox forgot it,
//! and how soon the backend heard its will. Paid: PINGREQs per hour and bytes per day on the
//! wire (every frame of its connections, link, IP and TCP headers included: a namespace run's
//! capture; the proxy sees streams, not frames), each the median over runs of the run's rate.

use crate::plan::{Goal, Plan};
use crate::report::{median, CellRow, SweepReport};
use linecut_analyzer::Report;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write;

/// One cell's answers for the decision table.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Choice {
    /// Windows in which the client's connection was up when the outage began.
    pub windows: u32,
    /// Of those, the ones it never noticed.
    pub never_noticed: u32,
    pub notice_median_s: Option<f64>,
    /// The 95th percentile (nearest rank) of the notice times, a window never noticed
    /// counting as longer than any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notice_p95_s: Option<f64>,
    /// The idle timeout of the middlebox its runs had on the path, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idle_timeout_s: Option<f64>,
    /// Flows the middlebox forgot, per run.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub forgotten: Vec<u32>,
    /// Seconds of run per forgotten flow (median over runs that lost one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub forgotten_every_s: Option<f64>,
    pub pings_per_hour: Option<f64>,
    /// Reconnects per hour over all runs together (every client's, as a rate of the runs'
    /// total time), with a 95% interval: on a link with no outage, each is a false
    /// disconnect.
    pub reconnects: u64,
    pub reconnects_per_hour: Option<PerHour>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wire_bytes_per_day: Option<f64>,
    /// On a weak link: the delivery delay's p99, median over runs, and messages lost per run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delay_p99_s: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub will_median_s: Option<f64>,
}

/// A rate per hour from a count over some hours, with its 95% interval (Poisson: exact for no
/// event, the normal approximation on the count's square root otherwise, which is close
/// enough from a handful of events on).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct PerHour {
    pub rate: f64,
    pub low: f64,
    pub high: f64,
}

impl PerHour {
    pub fn of(count: u64, hours: f64) -> Option<PerHour> {
        if hours <= 0.0 {
            return None;
        }
        let k = count as f64;
        let (low, high) = if count == 0 {
            // P(0 events | rate) = 0.025 at rate = ln 40 ≈ 3.69 events.
            (0.0, 40f64.ln())
        } else {
            let root = k.sqrt();
            (((root - 0.98).max(0.0)).powi(2), (root + 0.98).powi(2))
        };
        Some(PerHour {
            rate: k / hours,
            low: low / hours,
            high: high / hours,
        })
    }

    fn text(&self) -> String {
        format!("{:.1} ({:.1}–{:.1})", self.rate, self.low, self.high)
    }
}

/// What a cell's runs add up to, while they are read.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    idle_timeout_s: Option<f64>,
    notice: Vec<Option<f64>>,
    forgotten: Vec<u32>,
    forgotten_every: Vec<f64>,
    pings_per_hour: Vec<f64>,
    bytes_per_day: Vec<f64>,
    wills: Vec<f64>,
    reconnects: u64,
    /// Subscriber-hours the runs lasted.
    hours: f64,
    delay_p99: Vec<f64>,
}

impl Tally {
    /// A tally for a cell whose scenario puts a middlebox with this idle timeout on the path.
    pub(crate) fn new(idle_timeout_s: Option<f64>) -> Tally {
        Tally {
            idle_timeout_s,
            ..Tally::default()
        }
    }

    /// Adds one run of `duration_s` seconds.
    pub(crate) fn add(&mut self, report: &Report, duration_s: f64) {
        let mut forgotten = 0u32;
        for w in &report.windows {
            if w.kind == "idle_timeout" {
                forgotten += 1;
            }
            // A weak link's window is the link's state, not an outage: a give-up in it is a
            // false disconnect (counted as a reconnect), not a notice.
            let weak = w
                .spec
                .parse::<linecut_model::LinkFaultSpec>()
                .is_ok_and(|s| s.kind.is_impairment() || s.kind.name() == "loss");
            if weak {
                continue;
            }
            for m in w.subscribers.iter().filter(|m| m.connected_at_start) {
                self.notice.push(m.client_detect_s);
                self.wills.extend(m.will_s);
            }
        }
        if self.idle_timeout_s.is_some() {
            self.forgotten.push(forgotten);
            if forgotten > 0 {
                self.forgotten_every.push(duration_s / f64::from(forgotten));
            }
        }
        if duration_s > 0.0 {
            for d in &report.data {
                self.reconnects += d.reconnects;
                self.hours += duration_s / 3600.0;
                self.delay_p99.extend(d.delay_s.map(|q| q.p99));
                self.pings_per_hour
                    .push(d.pings as f64 * 3600.0 / duration_s);
                if let Some(wire) = d.wire {
                    self.bytes_per_day
                        .push(wire.bytes as f64 * 86_400.0 / duration_s);
                }
            }
        }
    }

    pub(crate) fn finish(self) -> Choice {
        let never = self.notice.iter().filter(|v| v.is_none()).count();
        let mut seen: Vec<f64> = self.notice.iter().flatten().copied().collect();
        seen.sort_by(f64::total_cmp);
        // Nearest rank over all windows; a never-noticed window ranks above every time.
        let p95 = (!self.notice.is_empty())
            .then(|| ((0.95 * self.notice.len() as f64).ceil() as usize).max(1) - 1)
            .and_then(|rank| seen.get(rank).copied());
        Choice {
            windows: self.notice.len() as u32,
            never_noticed: never as u32,
            notice_median_s: median(seen.clone()),
            notice_p95_s: p95,
            idle_timeout_s: self.idle_timeout_s,
            forgotten: self.forgotten,
            forgotten_every_s: median(self.forgotten_every),
            pings_per_hour: median(self.pings_per_hour),
            reconnects: self.reconnects,
            reconnects_per_hour: PerHour::of(self.reconnects, self.hours),
            wire_bytes_per_day: median(self.bytes_per_day),
            delay_p99_s: median(self.delay_p99),
            will_median_s: median(self.wills),
        }
    }
}

/// Whether a cell met one part of the goal: `None` when its runs did not measure it.
fn meets(choice: &Choice, goal: &Goal) -> Vec<(&'static str, Option<bool>)> {
    let mut out = Vec::new();
    if let Some(limit) = goal.notice_within_s {
        out.push((
            "notice",
            (choice.windows > 0).then(|| {
                choice.never_noticed == 0 && choice.notice_p95_s.is_some_and(|p| p <= limit)
            }),
        ));
    }
    if let Some(timeout) = goal.idle_timeout_s {
        // Only a middlebox at least as patient as the goal's says anything about it.
        let measured = choice.idle_timeout_s.is_some_and(|t| t <= timeout);
        out.push((
            "idle timeout",
            measured.then(|| choice.forgotten.iter().all(|n| *n == 0)),
        ));
    }
    if let Some(limit) = goal.will_within_s {
        out.push(("will", choice.will_median_s.map(|w| w <= limit)));
    }
    out
}

fn secs(v: Option<f64>) -> String {
    v.map_or("—".into(), |v| {
        if v >= 100.0 {
            format!("{v:.0} s")
        } else {
            format!("{v:.1} s")
        }
    })
}

/// The decision table of `sweep.md`, with the goal's verdict per client; empty when no cell
/// has a keepalive.
pub(crate) fn markdown(report: &SweepReport, plan: &Plan) -> String {
    let rows: Vec<&CellRow> = report
        .cells
        .iter()
        .filter(|r| r.keepalive_s.is_some() && r.choice.is_some())
        .collect();
    if rows.is_empty() {
        return String::new();
    }
    let mut w = String::new();
    let _ = writeln!(w, "\n## The keepalive to choose\n");
    let _ = writeln!(w, "Per cell, over every outage window of every run: how soon the client noticed a dead connection (median and 95th percentile, nearest rank, a window never noticed ranking last), whether its connection survived the idle-timeout middlebox on the path, how soon the backend heard its will, how often it reconnected (on a link with no outage, every reconnect is a false disconnect; the rate is over all runs' time together), how long deliveries took on a weak link (the 99th percentile, median over runs), and what the keepalive cost: PINGREQs per hour and bytes per day on the wire (every frame of its connections, headers included, from the capture; — where the wire is the proxy's) at the run's own rate, so the first connection's set-up (about 1.5 kB) and every reconnect count, medians over runs.\n");
    let goal = &plan.goal;
    let with_goal = !goal.is_empty();
    // The cell's settings as the cells table names them, then the library.
    let mut header: Vec<String> = vec!["cell".into()];
    header.extend(plan.axes.iter().map(|a| a.label.clone()));
    header.extend(
        [
            "library",
            "noticed (median / p95)",
            "middlebox",
            "will (median)",
            "reconnects per hour (95% interval)",
            "delivery delay p99",
            "PINGREQs per hour",
            "bytes per day",
        ]
        .map(String::from),
    );
    if with_goal {
        header.push("meets the goal".into());
    }
    let _ = writeln!(w, "| {} |", header.join(" | "));
    let _ = writeln!(w, "|{}", "---|".repeat(header.len()));
    for row in &rows {
        let c = row.choice.as_ref().expect("filtered");
        let index = report
            .cells
            .iter()
            .position(|r| r.cell == row.cell)
            .map_or(0, |i| i + 1);
        let noticed = if c.windows == 0 {
            "no outage".to_string()
        } else {
            format!(
                "{} / {}{}",
                secs(c.notice_median_s),
                if c.notice_p95_s.is_none() {
                    "never".to_string()
                } else {
                    secs(c.notice_p95_s)
                },
                if c.never_noticed > 0 {
                    format!(" ({} of {} never)", c.never_noticed, c.windows)
                } else {
                    String::new()
                }
            )
        };
        let middlebox = match c.idle_timeout_s {
            None => "—".to_string(),
            Some(t) if c.forgotten.iter().all(|n| *n == 0) => format!(
                "survived {t:.0} s idle timeout ({} runs)",
                c.forgotten.len()
            ),
            Some(t) => format!(
                "{t:.0} s idle timeout forgot it every {} ({} flows in {} runs)",
                secs(c.forgotten_every_s),
                c.forgotten.iter().sum::<u32>(),
                c.forgotten.len()
            ),
        };
        let goal_text = if with_goal {
            let parts = meets(c, goal);
            let text = if parts.iter().any(|(_, m)| m.is_none()) {
                let unmeasured: Vec<&str> = parts
                    .iter()
                    .filter(|(_, m)| m.is_none())
                    .map(|(n, _)| *n)
                    .collect();
                format!("not measured: {}", unmeasured.join(", "))
            } else if parts.iter().all(|(_, m)| *m == Some(true)) {
                "yes".to_string()
            } else {
                let failed: Vec<&str> = parts
                    .iter()
                    .filter(|(_, m)| *m == Some(false))
                    .map(|(n, _)| *n)
                    .collect();
                format!("no: {}", failed.join(", "))
            };
            format!(" {text} |")
        } else {
            String::new()
        };
        let settings: Vec<String> = plan
            .axes
            .iter()
            .map(|a| row.values.get(&a.path).cloned().unwrap_or_default())
            .collect();
        let _ = writeln!(
            w,
            "| {index} | {} | {} | {noticed} | {middlebox} | {} | {} | {} | {} | {} |{goal_text}",
            settings.join(" | "),
            row.client_library.split(" (").next().unwrap_or(""),
            secs(c.will_median_s),
            c.reconnects_per_hour.map_or("—".into(), |r| r.text()),
            secs(c.delay_p99_s),
            c.pings_per_hour.map_or("—".into(), |p| format!("{p:.0}")),
            c.wire_bytes_per_day.map_or("—".into(), bytes),
        );
    }
    if with_goal {
        let _ = writeln!(w);
        for line in verdicts(&rows, goal) {
            let _ = writeln!(w, "- {line}");
        }
    }
    w
}

/// Bytes in the largest unit that keeps them readable.
fn bytes(b: f64) -> String {
    if b >= 1e6 {
        format!("{:.1} MB", b / 1e6)
    } else if b >= 1e3 {
        format!("{:.1} kB", b / 1e3)
    } else {
        format!("{b:.0} B")
    }
}

/// The goal in words.
fn goal_text(goal: &Goal) -> String {
    let mut parts = Vec::new();
    if let Some(s) = goal.notice_within_s {
        parts.push(format!("notice a dead connection within {s} s (p95)"));
    }
    if let Some(s) = goal.idle_timeout_s {
        parts.push(format!("survive a {s} s idle timeout"));
    }
    if let Some(s) = goal.will_within_s {
        parts.push(format!("the will heard within {s} s (median)"));
    }
    parts.join(", ")
}

/// Per client library: the cheapest keepalive (fewest PINGREQs per hour, then the longest
/// keepalive) among the cells that met every part of the goal, or why none did.
fn verdicts(rows: &[&CellRow], goal: &Goal) -> Vec<String> {
    let mut by_client: BTreeMap<&str, Vec<&CellRow>> = BTreeMap::new();
    for row in rows {
        by_client
            .entry(row.client_library.split(" (").next().unwrap_or(""))
            .or_default()
            .push(row);
    }
    let mut out = Vec::new();
    for (client, rows) in by_client {
        let met: Vec<&&CellRow> = rows
            .iter()
            .filter(|r| {
                let c = r.choice.as_ref().expect("filtered");
                meets(c, goal).iter().all(|(_, m)| *m == Some(true))
            })
            .collect();
        // A keepalive meets the goal only if every cell with it did (other axes vary the
        // conditions it has to meet it in).
        let mut keepalives: Vec<f64> = met.iter().filter_map(|r| r.keepalive_s).collect();
        keepalives.retain(|k| {
            rows.iter()
                .filter(|r| r.keepalive_s == Some(*k))
                .all(|r| met.iter().any(|m| m.cell == r.cell))
        });
        keepalives.sort_by(f64::total_cmp);
        keepalives.dedup();
        match keepalives.last() {
            Some(k) => out.push(format!(
                "{client}: the cheapest keepalive that met the goal ({}) is **{k} s**{}.",
                goal_text(goal),
                if keepalives.len() > 1 {
                    format!(
                        " (also met: {})",
                        keepalives[..keepalives.len() - 1]
                            .iter()
                            .map(|k| format!("{k} s"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                } else {
                    String::new()
                }
            )),
            None => out.push(format!(
                "{client}: none of the keepalives swept met the goal ({}).",
                goal_text(goal)
            )),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_never_noticed_ranks_last_and_fails_a_notice_goal() {
        let tally = Tally {
            notice: vec![Some(3.0), Some(1.0), None, Some(2.0)],
            ..Tally::default()
        };
        let c = tally.finish();
        assert_eq!((c.windows, c.never_noticed), (4, 1));
        assert_eq!(c.notice_median_s, Some(2.0));
        // Nearest rank: the 4th of 4 is the window never noticed.
        assert_eq!(c.notice_p95_s, None);
        let goal = Goal {
            notice_within_s: Some(10.0),
            ..Goal::default()
        };
        assert_eq!(meets(&c, &goal), vec![("notice", Some(false))]);
        let all_seen = Tally {
            notice: (1..=20).map(|s| Some(f64::from(s))).collect(),
            ..Tally::default()
        }
        .finish();
        // The 19th of 20 (ceil(0.95 × 20)).
        assert_eq!(all_seen.notice_p95_s, Some(19.0));
        assert_eq!(meets(&all_seen, &goal), vec![("notice", Some(false))]);
        let goal = Goal {
            notice_within_s: Some(19.0),
            ..Goal::default()
        };
        assert_eq!(meets(&all_seen, &goal), vec![("notice", Some(true))]);
    }

    #[test]
    fn a_rate_per_hour_has_an_interval_that_holds_its_count() {
        let none = PerHour::of(0, 2.0).unwrap();
        assert_eq!(none.rate, 0.0);
        assert!((none.high - 40f64.ln() / 2.0).abs() < 1e-9);
        let some = PerHour::of(9, 0.5).unwrap();
        assert_eq!(some.rate, 18.0);
        assert!(some.low < 18.0 && some.high > 18.0);
        // 9 events: the interval's ends are (3 ∓ 0.98)² ≈ 4.1 and 15.9 events.
        assert!((some.low * 0.5 - 4.08).abs() < 0.01 && (some.high * 0.5 - 15.84).abs() < 0.01);
        assert!(PerHour::of(3, 0.0).is_none());
    }

    #[test]
    fn only_a_middlebox_as_patient_as_the_goal_measures_survival() {
        let goal = Goal {
            idle_timeout_s: Some(30.0),
            ..Goal::default()
        };
        let survived = Choice {
            idle_timeout_s: Some(30.0),
            forgotten: vec![0, 0, 0],
            ..Choice::default()
        };
        assert_eq!(meets(&survived, &goal), vec![("idle timeout", Some(true))]);
        let died = Choice {
            forgotten: vec![0, 2, 0],
            ..survived.clone()
        };
        assert_eq!(meets(&died, &goal), vec![("idle timeout", Some(false))]);
        // Surviving a 60 s middlebox says nothing about a 30 s one.
        let lax = Choice {
            idle_timeout_s: Some(60.0),
            ..survived.clone()
        };
        assert_eq!(meets(&lax, &goal), vec![("idle timeout", None)]);
        assert_eq!(
            meets(&Choice::default(), &goal),
            vec![("idle timeout", None)]
        );
    }
}
