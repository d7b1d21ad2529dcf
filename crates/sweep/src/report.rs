//! The comparison: every cell's runs folded into one row (median and min–max per metric over
//! repeats), a plain-language summary computed from those rows, and `sweep.json`, `sweep.csv`
//! and `sweep.md`. Read from the runs' `report.json` files only, so a sweep's reports can be
//! regenerated (and merged across shards) from what the runs stored.

use crate::exec::{is_complete, run_dir};
use crate::plan::Plan;
use crate::SweepError;
use linecut_analyzer::{Report, Verdict};
use linecut_model::Metric;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::Path;

pub const SWEEP_SCHEMA: &str = "linecut-sweep";
pub const SWEEP_SCHEMA_VERSION: u32 = 1;

/// The metrics compared, in table order: timings from the first fault window, then whole-run.
pub const METRICS: [&str; 11] = [
    Metric::ClientDetectS.name(),
    Metric::BrokerDetectS.name(),
    Metric::ReconnectS.name(),
    Metric::ResubscribeS.name(),
    Metric::FirstFreshS.name(),
    Metric::StaleDataS.name(),
    Metric::Lost.name(),
    Metric::Late.name(),
    Metric::DataGapPublishS.name(),
    Metric::Reconnects.name(),
    Metric::PingIntervalS.name(),
];

/// The will's column, in sweeps whose subscribers leave one (the others keep their columns).
const WILL: &str = Metric::WillS.name();

/// The columns of `report`: [`METRICS`], and the will's where the watcher listened.
fn columns(report: &SweepReport) -> Vec<&'static str> {
    let mut columns = METRICS.to_vec();
    if report.cells.iter().any(|r| !r.will.is_empty()) {
        columns.insert(2, WILL);
    }
    columns
}

/// The window metrics compared (the timings of the first fault window).
const WINDOW_METRICS: [Metric; 6] = [
    Metric::ClientDetectS,
    Metric::BrokerDetectS,
    Metric::ReconnectS,
    Metric::ResubscribeS,
    Metric::FirstFreshS,
    Metric::StaleDataS,
];

/// The whole-run metrics compared.
const RUN_METRICS: [Metric; 5] = [
    Metric::Lost,
    Metric::Late,
    Metric::DataGapPublishS,
    Metric::Reconnects,
    Metric::PingIntervalS,
];

/// One metric of one cell over its runs (and subscribers).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Stat {
    pub median: f64,
    pub min: f64,
    pub max: f64,
    /// Values present, out of `of` (a detection that never happened has no value).
    pub count: usize,
    pub of: usize,
}

impl Stat {
    fn of(values: &[Option<f64>]) -> Option<Stat> {
        let mut v: Vec<f64> = values.iter().flatten().copied().collect();
        let median = median(v.clone())?;
        v.sort_by(f64::total_cmp);
        Some(Stat {
            median: round(median),
            min: v[0],
            max: v[v.len() - 1],
            count: v.len(),
            of: values.len(),
        })
    }
}

fn round(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// A protocol band as the runs' reports gave it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BandRange {
    pub low_s: f64,
    pub high_s: f64,
}

/// One run's detection outcome, for plots and verdict counts: its time (None: never), and
/// the verdict against its band.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Point {
    pub repeat: u32,
    pub value: Option<f64>,
    pub verdict: Option<Verdict>,
    /// The value came after the line had returned.
    pub after_outage: bool,
}

/// A disconnect no fault explains, in one run of a cell.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Unexpected {
    pub repeat: u32,
    pub t_s: f64,
    pub by: String,
    pub cause: String,
    /// It came while a weak-link fault was on: a false disconnect.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub weak_link: bool,
}

/// A proportion with its 95% Wilson score interval: the interval stays inside [0, 1] and
/// behaves for the small counts a sweep has (0 of 6 is not "0%, certainly").
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Rate {
    pub hits: usize,
    pub n: usize,
    pub low: f64,
    pub high: f64,
}

impl Rate {
    pub fn of(hits: usize, n: usize) -> Rate {
        if n == 0 {
            return Rate {
                hits,
                n,
                low: 0.0,
                high: 1.0,
            };
        }
        let z = 1.96_f64;
        let (nf, p) = (n as f64, hits as f64 / n as f64);
        let denom = 1.0 + z * z / nf;
        let centre = (p + z * z / (2.0 * nf)) / denom;
        let half = z / denom * (p * (1.0 - p) / nf + z * z / (4.0 * nf * nf)).sqrt();
        Rate {
            hits,
            n,
            low: round((centre - half).max(0.0)),
            high: round((centre + half).min(1.0)),
        }
    }

    pub fn text(&self) -> String {
        format!(
            "{} of {} runs (95% CI {:.0}–{:.0}%)",
            self.hits,
            self.n,
            self.low * 100.0,
            self.high * 100.0
        )
    }
}

/// One row of the comparison.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CellRow {
    pub cell: String,
    pub values: BTreeMap<String, String>,
    pub runs: u32,
    pub complete_runs: u32,
    pub client_library: String,
    pub broker: String,
    pub keepalive_s: Option<f64>,
    /// The first fault window's length as played.
    pub outage_s: Option<f64>,
    pub metrics: BTreeMap<String, Stat>,
    pub client_band: Option<BandRange>,
    pub broker_band: Option<BandRange>,
    pub client_detect: Vec<Point>,
    pub broker_detect: Vec<Point>,
    /// Runs whose client noticed the first fault window, with its interval.
    pub client_noticed: Option<Rate>,
    /// Runs whose connection had already ended when the fault began.
    pub down_before_fault: u32,
    pub unexpected: Vec<Unexpected>,
    /// Each run's median PINGREQ interval, per subscriber.
    pub ping_intervals_s: Vec<f64>,
    /// Each run's fault phase offset (seconds after the planned start), when drawn.
    pub phase_offsets_s: Vec<f64>,
    /// When the will watcher heard each subscriber's will in the first fault window, in
    /// sweeps whose subscribers leave one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub will: Vec<Point>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub will_band: Option<BandRange>,
    /// Runs whose will the watcher heard in the first fault window, with its interval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub will_heard: Option<Rate>,
    /// Of those, the wills that came when the device was connected again.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub will_while_connected: u32,
    /// Each run's delivery verdict, where the QoS promised something (1 or 2).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub delivery: Vec<DeliveryPoint>,
    /// What the keepalive bought and cost, for the decision table.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub choice: Option<crate::choose::Choice>,
}

/// One run's delivery verdict for one subscriber.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeliveryPoint {
    pub repeat: u32,
    pub kept: linecut_analyzer::Kept,
    pub lost_allowed: u64,
    pub lost_promised: u64,
    pub late: u64,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// `sweep.json`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SweepReport {
    pub schema: &'static str,
    pub schema_version: u32,
    pub scenario: String,
    pub axes: Vec<String>,
    pub repeat: u32,
    /// False while some run is missing or incomplete (an interrupted sweep).
    pub complete: bool,
    pub missing_runs: Vec<String>,
    pub summary: Vec<String>,
    pub cells: Vec<CellRow>,
}

fn band(b: &Option<linecut_analyzer::Band>) -> Option<BandRange> {
    b.as_ref().map(|b| BandRange {
        low_s: b.low_s,
        high_s: b.high_s,
    })
}

/// Folds the runs of every cell of `plan` found under `dir`.
pub fn build(plan: &Plan, dir: &Path) -> Result<SweepReport, SweepError> {
    let mut cells = Vec::new();
    let mut missing = Vec::new();
    for cell in &plan.cells {
        let mut row = CellRow {
            cell: cell.name.clone(),
            values: cell
                .values
                .iter()
                .map(|(p, v)| (p.clone(), v.clone()))
                .collect(),
            runs: plan.repeat,
            complete_runs: 0,
            client_library: String::new(),
            broker: String::new(),
            keepalive_s: None,
            outage_s: None,
            metrics: BTreeMap::new(),
            client_band: None,
            broker_band: None,
            client_detect: Vec::new(),
            broker_detect: Vec::new(),
            client_noticed: None,
            down_before_fault: 0,
            unexpected: Vec::new(),
            ping_intervals_s: Vec::new(),
            phase_offsets_s: Vec::new(),
            will: Vec::new(),
            will_band: None,
            will_heard: None,
            will_while_connected: 0,
            delivery: Vec::new(),
            choice: None,
        };
        let mut tally = crate::choose::Tally::new(idle_timeout_s(&cell.name, &cell.scenario));
        let mut samples: BTreeMap<&str, Vec<Option<f64>>> = BTreeMap::new();
        for r in 1..=plan.repeat {
            let run = run_dir(dir, &cell.name, r);
            let report_path = linecut_events::RunLayout::new(&run).report_json();
            if !is_complete(&run) || !report_path.is_file() {
                missing.push(format!("{} r{r}", cell.name));
                continue;
            }
            let text =
                std::fs::read_to_string(&report_path).map_err(crate::io(report_path.clone()))?;
            let report: Report = serde_json::from_str(&text)
                .map_err(|e| SweepError::Report(format!("{}: {e}", report_path.display())))?;
            row.complete_runs += 1;
            row.unexpected
                .extend(report.unexpected_disconnects.iter().map(|u| Unexpected {
                    repeat: r,
                    t_s: u.t_s,
                    by: u.by.clone(),
                    cause: u.cause.clone(),
                    weak_link: u.weak_link.is_some(),
                }));
            row.ping_intervals_s
                .extend(report.data.iter().filter_map(|d| d.ping_interval_s));
            row.delivery.extend(report.data.iter().filter_map(|d| {
                let v = d.delivery.as_ref().filter(|v| v.qos > 0)?;
                Some(DeliveryPoint {
                    repeat: r,
                    kept: v.kept,
                    lost_allowed: v.lost_allowed,
                    lost_promised: v.lost_promised,
                    late: d.late,
                })
            }));
            if let Some(phase) = &report.phase {
                row.phase_offsets_s
                    .extend(phase.faults.first().map(|f| round(f.offset_s)));
            }
            row.client_library = report.client_library.clone();
            row.broker = report.broker.clone();
            row.keepalive_s = report.keepalive_s.map(f64::from);
            tally.add(&report, cell.duration_s);
            let Some(window) = report.windows.first() else {
                // No fault window: only the whole-run metrics exist.
                fold_data(&report, &mut samples);
                continue;
            };
            let outage_s = round((window.outage_end_us - window.outage_start_us) as f64 / 1e6);
            row.outage_s = Some(outage_s);
            for m in &window.subscribers {
                if !m.connected_at_start {
                    row.down_before_fault += 1;
                }
                for metric in WINDOW_METRICS {
                    let value = linecut_analyzer::metric_value(metric, Some(m), None);
                    samples.entry(metric.name()).or_default().push(value);
                }
                let point = |value: Option<f64>, b: &Option<linecut_analyzer::Band>| Point {
                    repeat: r,
                    value,
                    verdict: b.as_ref().map(|b| b.verdict),
                    after_outage: value.is_some_and(|v| v > outage_s),
                };
                // Only a connection that was up when the fault began can detect it.
                if m.connected_at_start {
                    row.client_detect
                        .push(point(m.client_detect_s, &m.client_detect_band));
                    row.broker_detect
                        .push(point(m.broker_detect_s, &m.broker_detect_band));
                }
                // A will, where the watcher listened (a band or a will says it did).
                if m.connected_at_start && (m.will_s.is_some() || m.will_band.is_some()) {
                    row.will.push(point(m.will_s, &m.will_band));
                    row.will_band = row.will_band.take().or_else(|| band(&m.will_band));
                    row.will_while_connected += u32::from(m.will_after_connack_s.is_some());
                    samples.entry(WILL).or_default().push(m.will_s);
                }
                row.client_band = row
                    .client_band
                    .take()
                    .or_else(|| band(&m.client_detect_band));
                row.broker_band = row
                    .broker_band
                    .take()
                    .or_else(|| band(&m.broker_detect_band));
            }
            fold_data(&report, &mut samples);
        }
        for (name, values) in samples {
            if let Some(stat) = Stat::of(&values) {
                row.metrics.insert(name.to_string(), stat);
            }
        }
        if !row.client_detect.is_empty() {
            let hits = row
                .client_detect
                .iter()
                .filter(|p| p.value.is_some())
                .count();
            row.client_noticed = Some(Rate::of(hits, row.client_detect.len()));
        }
        if !row.will.is_empty() {
            let hits = row.will.iter().filter(|p| p.value.is_some()).count();
            row.will_heard = Some(Rate::of(hits, row.will.len()));
        }
        if row.complete_runs > 0 {
            row.choice = Some(tally.finish());
        }
        cells.push(row);
    }
    let mut report = SweepReport {
        schema: SWEEP_SCHEMA,
        schema_version: SWEEP_SCHEMA_VERSION,
        scenario: plan.scenario_name.clone(),
        axes: plan.axes.iter().map(|a| a.path.clone()).collect(),
        repeat: plan.repeat,
        complete: missing.is_empty(),
        missing_runs: missing,
        summary: Vec::new(),
        cells,
    };
    report.summary = summarise(&report, plan);
    Ok(report)
}

/// The idle timeout of the middlebox a cell's scenario puts on the path, in either mode.
fn idle_timeout_s(name: &str, scenario: &str) -> Option<f64> {
    let s = linecut_scenario::parse(Path::new(name), scenario).ok()?;
    let link = s.link_faults.iter().find_map(|f| match f.kind {
        linecut_model::LinkKind::IdleTimeout { timeout_s, .. } => Some(f64::from(timeout_s)),
        _ => None,
    });
    link.or_else(|| {
        s.faults
            .iter()
            .find_map(|f| f.fault.idle_timeout())
            .map(|(t, _)| t.as_secs_f64())
    })
}

/// Adds each subscriber's whole-run metrics of one run to the cell's samples.
fn fold_data(report: &Report, samples: &mut BTreeMap<&'static str, Vec<Option<f64>>>) {
    for d in &report.data {
        for metric in RUN_METRICS {
            samples
                .entry(metric.name())
                .or_default()
                .push(linecut_analyzer::metric_value(metric, None, Some(d)));
        }
    }
}

/// A row by its values on every axis, for sentences about one cell.
fn describe_row(row: &CellRow, plan: &Plan) -> String {
    let parts: Vec<String> = plan
        .axes
        .iter()
        .filter_map(|a| row.values.get(&a.path).map(|v| format!("{}={v}", a.label)))
        .collect();
    if parts.is_empty() {
        "every run".into()
    } else {
        parts.join(", ")
    }
}

/// The series a row belongs to: its values on every axis that is neither the keepalive nor the
/// outage length (client kind, broker, QoS…), so like is compared with like.
pub fn series_of(row: &CellRow, plan: &Plan) -> String {
    let parts: Vec<String> = plan
        .axes
        .iter()
        .filter(|a| !is_keepalive_axis(&a.path) && !is_outage_axis(&a.path))
        .filter_map(|a| row.values.get(&a.path).map(|v| format!("{}={v}", a.label)))
        .collect();
    parts.join(", ")
}

pub fn is_keepalive_axis(path: &str) -> bool {
    path.starts_with("subscriber.") && path.ends_with(".keepalive")
}

pub fn is_outage_axis(path: &str) -> bool {
    path.starts_with("fault") && (path.ends_with(".for") || path.ends_with(".duration"))
}

fn secs(v: f64) -> String {
    let text = format!("{v:.3}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    format!("{text} s")
}

/// The median of a list (None when empty).
pub(crate) fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    Some(if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    })
}

/// The sweep axis that switches between the proxy's fault model and real links.
pub const MODE_AXIS: &str = "network.mode";

/// Two medians agree when they differ by no more than this: a quarter second for timings (a
/// scheduling delay on a loaded machine, far below any keepalive), one message for counts.
const AGREE_S: f64 = 0.25;
const AGREE_COUNT: f64 = 1.0;

/// When `network.mode` is an axis: for every other setting, each metric's median under the
/// proxy against the same under real links, and whether they agree.
fn compare_modes(report: &SweepReport, plan: &Plan) -> Vec<String> {
    if !plan.axes.iter().any(|a| a.path == MODE_AXIS) {
        return Vec::new();
    }
    let mut out = Vec::new();
    // The setting without the mode: every other axis's value.
    let setting = |row: &CellRow| -> String {
        plan.axes
            .iter()
            .filter(|a| a.path != MODE_AXIS)
            .filter_map(|a| row.values.get(&a.path).map(|v| format!("{}={v}", a.label)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut by_setting: BTreeMap<String, BTreeMap<String, &CellRow>> = BTreeMap::new();
    for row in &report.cells {
        if let Some(mode) = row.values.get(MODE_AXIS) {
            by_setting
                .entry(setting(row))
                .or_default()
                .insert(mode.clone(), row);
        }
    }
    for (name, modes) in by_setting {
        let (Some(proxy), Some(link)) = (modes.get("proxy"), modes.get("namespace")) else {
            continue;
        };
        let (mut agree, mut spread, mut differ) = (Vec::new(), Vec::new(), Vec::new());
        for metric in METRICS {
            let (Some(p), Some(l)) = (proxy.metrics.get(metric), link.metrics.get(metric)) else {
                match (proxy.metrics.get(metric), link.metrics.get(metric)) {
                    (Some(p), None) => differ.push(format!(
                        "{metric}: {} under the proxy, never on real links",
                        fmt(p.median)
                    )),
                    (None, Some(l)) => differ.push(format!(
                        "{metric}: never under the proxy, {} on real links",
                        fmt(l.median)
                    )),
                    _ => {}
                }
                continue;
            };
            let tolerance = if metric.ends_with("_s") {
                AGREE_S
            } else {
                AGREE_COUNT
            };
            let diff = l.median - p.median;
            // Medians apart but min–max ranges overlapping: the repeats (the phase) vary more
            // than the modes differ, and five runs cannot tell the models apart.
            let overlap = p.min <= l.max && l.min <= p.max;
            if diff.abs() <= tolerance {
                agree.push(metric.to_string());
            } else if overlap {
                spread.push(format!(
                    "{metric} ({} against {})",
                    fmt(p.median),
                    fmt(l.median)
                ));
            } else {
                differ.push(format!(
                    "{metric}: {} under the proxy, {} on real links ({}{})",
                    fmt(p.median),
                    fmt(l.median),
                    if diff > 0.0 { "+" } else { "" },
                    fmt(round(diff))
                ));
            }
        }
        let who = if name.is_empty() {
            "the proxy and real links".into()
        } else {
            name
        };
        let list = |v: &Vec<String>, sep: &str| {
            if v.is_empty() {
                "nothing".to_string()
            } else {
                v.join(sep)
            }
        };
        out.push(format!(
            "Proxy against real links ({who}), medians over the repeats: they agree (within {AGREE_S} s or one message) on {}; they differ, but by less than the repeats' own spread (min–max ranges overlap), on {}; the proxy's model distorts {}.",
            list(&agree, ", "),
            list(&spread, ", "),
            list(&differ, "; ")
        ));
    }
    out
}

/// What the data says, in sentences computed from the rows. Each rate comes with its n and
/// interval; what the library's rule predicts is said apart from what the phase did.
fn summarise(report: &SweepReport, plan: &Plan) -> Vec<String> {
    let mut out = Vec::new();
    let phased = report.cells.iter().any(|r| !r.phase_offsets_s.is_empty());
    let behind_middlebox = |r: &CellRow| r.choice.as_ref().and_then(|c| c.idle_timeout_s).is_some();
    if !report.cells.is_empty() && report.cells.iter().all(behind_middlebox) {
        out.push("Every run had an idle-timeout middlebox on the path from its start: it forgets a flow a fixed time after the flow's last segment, so where the ping cycle stands is the client's doing, not a phase drawn by the run.".into());
    } else if phased {
        out.push("Each run started its fault at a random point of the client's ping cycle (the planned start plus up to one keepalive, seeded per run and recorded in its meta.json), so the rates below sample the phase; where the rule says \"depends on the phase\", the rate is the share of phases in which the outage was noticed.".into());
    } else {
        out.push("Every run started its fault at the same moment, so repeats repeat one phase of the ping cycle: a rate between 0 and n says little about other phases.".into());
    }
    // (series, keepalive) -> rows in outage order.
    let mut by_setting: BTreeMap<(String, u64), Vec<&CellRow>> = BTreeMap::new();
    for row in &report.cells {
        if let Some(k) = row.keepalive_s {
            by_setting
                .entry((series_of(row, plan), (k * 1000.0) as u64))
                .or_default()
                .push(row);
        }
    }
    for ((series, k_ms), mut rows) in by_setting {
        rows.sort_by(|a, b| {
            a.outage_s
                .unwrap_or(0.0)
                .total_cmp(&b.outage_s.unwrap_or(0.0))
        });
        let k = k_ms as f64 / 1000.0;
        let who = if series.is_empty() {
            format!("keepalive {}", secs(k))
        } else {
            format!("{series}, keepalive {}", secs(k))
        };
        let mut parts = Vec::new();
        for row in &rows {
            // Behind a middlebox a window is a flow it forgot, not an outage of the line.
            if let Some(c) = row.choice.as_ref().filter(|c| c.idle_timeout_s.is_some()) {
                let flows: u32 = c.forgotten.iter().sum();
                let hit = c.forgotten.iter().filter(|n| **n > 0).count();
                let mut text = format!(
                    "behind a {} idle timeout the middlebox forgot the flow in {} ({flows} flow(s) in all)",
                    secs(c.idle_timeout_s.unwrap_or(0.0)),
                    Rate::of(hit, c.forgotten.len()).text(),
                );
                let detect: Vec<f64> = row.client_detect.iter().filter_map(|p| p.value).collect();
                if let Some(m) = median(detect.clone()) {
                    text.push_str(&format!(
                        ", the client noticing a median of {} after it forgot it ({}–{})",
                        secs(m),
                        secs(detect.iter().copied().fold(f64::INFINITY, f64::min)),
                        secs(detect.iter().copied().fold(0.0, f64::max))
                    ));
                }
                let wills: Vec<f64> = row.will.iter().filter_map(|p| p.value).collect();
                if let Some(m) = median(wills.clone()) {
                    text.push_str(&format!(
                        ", the backend hearing its will a median of {} after ({}–{})",
                        secs(m),
                        secs(wills.iter().copied().fold(f64::INFINITY, f64::min)),
                        secs(wills.iter().copied().fold(0.0, f64::max))
                    ));
                }
                parts.push(text);
                continue;
            }
            let (Some(outage), Some(rate)) = (row.outage_s, row.client_noticed) else {
                continue;
            };
            let predicted = row.client_band.as_ref().map(|b| {
                if outage <= b.low_s {
                    "its rule says never"
                } else if outage >= b.high_s {
                    "its rule says always"
                } else {
                    "its rule says it depends on the phase"
                }
            });
            let detect: Vec<f64> = row.client_detect.iter().filter_map(|p| p.value).collect();
            let late = row.client_detect.iter().filter(|p| p.after_outage).count();
            let mut text = format!(
                "a {} outage was noticed in {}{}",
                secs(outage),
                rate.text(),
                predicted.map_or(String::new(), |p| format!(" ({p})"))
            );
            if let Some(m) = median(detect.clone()) {
                text.push_str(&format!(
                    ", after a median of {} ({}–{})",
                    secs(m),
                    secs(detect.iter().copied().fold(f64::INFINITY, f64::min)),
                    secs(detect.iter().copied().fold(0.0, f64::max))
                ));
            }
            if late > 0 {
                text.push_str(&format!(
                    "; in {late} of them the verdict came after the line had returned"
                ));
            }
            if let Some(heard) = row.will_heard {
                let times: Vec<f64> = row.will.iter().filter_map(|p| p.value).collect();
                text.push_str(&format!("; the backend heard its will in {}", heard.text()));
                if let Some(m) = median(times.clone()) {
                    text.push_str(&format!(
                        ", a median of {} after the outage began ({}–{})",
                        secs(m),
                        secs(times.iter().copied().fold(f64::INFINITY, f64::min)),
                        secs(times.iter().copied().fold(0.0, f64::max))
                    ));
                }
                if row.will_while_connected > 0 {
                    text.push_str(&format!(
                        ", {} of them once the device had come back",
                        row.will_while_connected
                    ));
                }
            }
            parts.push(text);
        }
        let down: u32 = rows.iter().map(|r| r.down_before_fault).sum();
        if down > 0 {
            parts.push(format!(
                "in {down} run(s) the connection had already ended before the fault began (not counted above)"
            ));
        }
        if !parts.is_empty() {
            out.push(format!("{who}: {}.", parts.join("; ")));
        }
    }
    // Disconnects no fault explains: the finding that matters most for choosing a keepalive.
    /// Per (series, keepalive): runs with a finding, runs, and how many of each cause.
    #[derive(Default)]
    struct Findings {
        runs_hit: usize,
        runs: usize,
        causes: BTreeMap<String, usize>,
        /// Of them, the ones on a weak link.
        weak: usize,
    }
    let mut unexpected: BTreeMap<(String, u64), Findings> = BTreeMap::new();
    for row in &report.cells {
        let key = (
            series_of(row, plan),
            (row.keepalive_s.unwrap_or(0.0) * 1000.0) as u64,
        );
        let entry = unexpected.entry(key).or_default();
        entry.runs += row.complete_runs as usize;
        let runs: std::collections::BTreeSet<u32> =
            row.unexpected.iter().map(|u| u.repeat).collect();
        entry.runs_hit += runs.len();
        entry.weak += row.unexpected.iter().filter(|u| u.weak_link).count();
        for u in &row.unexpected {
            *entry
                .causes
                .entry(format!("{} ({})", u.by, u.cause))
                .or_default() += 1;
        }
    }
    let total: usize = unexpected
        .values()
        .map(|e| e.causes.values().sum::<usize>())
        .sum();
    if total == 0 {
        out.push("No connection ended outside a fault window in any run.".into());
    } else {
        for (
            (series, k_ms),
            Findings {
                runs_hit,
                runs,
                causes,
                weak,
            },
        ) in unexpected
        {
            if runs_hit == 0 {
                continue;
            }
            let who = if series.is_empty() {
                format!("keepalive {}", secs(k_ms as f64 / 1000.0))
            } else {
                format!("{series}, keepalive {}", secs(k_ms as f64 / 1000.0))
            };
            let all: usize = causes.values().sum();
            let line = if weak == all {
                "The line never went down, only a weak link slowed and thinned it: every one is a false disconnect"
                    .to_string()
            } else if weak > 0 {
                format!("The line never went down; {weak} of them came on a weak link (false disconnects), the rest while it was healthy")
            } else {
                "The line was healthy".to_string()
            };
            out.push(format!(
                "Disconnects with no fault to explain them, {who}: in {} — {}. {line}; see the runs' reports.",
                Rate::of(runs_hit, runs).text(),
                causes
                    .iter()
                    .map(|(c, n)| format!("{n} × {c}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
    }
    // The price of a keepalive: the median over runs of each run's median PINGREQ interval.
    let mut pings: BTreeMap<String, BTreeMap<u64, Vec<f64>>> = BTreeMap::new();
    for row in &report.cells {
        if let Some(k) = row.keepalive_s {
            pings
                .entry(series_of(row, plan))
                .or_default()
                .entry((k * 1000.0) as u64)
                .or_default()
                .extend(row.ping_intervals_s.iter().copied());
        }
    }
    for (series, by_k) in pings {
        let parts: Vec<String> = by_k
            .into_iter()
            .filter_map(|(k, v)| {
                let n = v.len();
                let m = median(v)?;
                Some(format!(
                    "keepalive {}: {} over {n} runs (about {:.0} per hour)",
                    secs(k as f64 / 1000.0),
                    secs(m),
                    3600.0 / m
                ))
            })
            .collect();
        if parts.is_empty() {
            continue;
        }
        let who = if series.is_empty() {
            String::new()
        } else {
            format!(" ({series})")
        };
        out.push(format!(
            "PINGREQ interval{who}, the median over runs of each run's median interval: {}.",
            parts.join("; ")
        ));
    }
    // What the QoS and the session promised, per cell, where they promised something.
    for row in report.cells.iter().filter(|r| !r.delivery.is_empty()) {
        let d = &row.delivery;
        let count = |k: linecut_analyzer::Kept| d.iter().filter(|p| p.kept == k).count();
        let med = |f: fn(&DeliveryPoint) -> u64| {
            median(d.iter().map(|p| f(p) as f64).collect()).unwrap_or(0.0)
        };
        let name = describe_row(row, plan);
        out.push(format!(
            "{name}: the delivery verdict was as promised in {} of {} runs (broken in {}, not decidable in {}); per run a median of {} message(s) lost where the session allowed it, {} lost that it promised, {} delivered late.",
            count(linecut_analyzer::Kept::AsPromised),
            d.len(),
            count(linecut_analyzer::Kept::Broken),
            count(linecut_analyzer::Kept::NotDecidable),
            fmt(med(|p| p.lost_allowed)),
            fmt(med(|p| p.lost_promised)),
            fmt(med(|p| p.late)),
        ));
    }
    let points: Vec<&Point> = report
        .cells
        .iter()
        .flat_map(|r| {
            r.client_detect
                .iter()
                .chain(&r.broker_detect)
                .chain(&r.will)
        })
        .filter(|p| p.verdict.is_some())
        .collect();
    if !points.is_empty() {
        let count = |v: Verdict| points.iter().filter(|p| p.verdict == Some(v)).count();
        let wills = report.cells.iter().any(|r| !r.will.is_empty());
        out.push(format!(
            "Against the bands the protocol and the implementations give (client and broker{}, \"never\" included): {} inside, {} outside, {} not decidable (a \"never\" for an outage shorter than the band's upper end).",
            if wills { " and the will" } else { "" },
            count(Verdict::Inside),
            count(Verdict::Outside),
            count(Verdict::NotDecidable)
        ));
    }
    out.extend(compare_modes(report, plan));
    let reconnects: Vec<f64> = report
        .cells
        .iter()
        .filter_map(|r| r.metrics.get("reconnect_s").map(|s| s.max))
        .collect();
    if let Some(worst) = reconnects.iter().copied().reduce(f64::max) {
        out.push(format!(
            "Clients that gave up were back at most {} after the line returned; under the proxy's model that is mostly the rest of their back-off when the line came back (a phase effect), see each run's report.",
            secs(worst)
        ));
    }
    if !report.complete {
        out.push(format!(
            "Incomplete: {} run(s) missing or unfinished; rerun with --resume to complete.",
            report.missing_runs.len()
        ));
    }
    out
}

fn stat_text(s: Option<&Stat>) -> String {
    match s {
        None => "never".into(),
        Some(s) if s.count < s.of => format!(
            "{} ({}–{}; {}/{} runs)",
            fmt(s.median),
            fmt(s.min),
            fmt(s.max),
            s.count,
            s.of
        ),
        Some(s) if s.min == s.max => fmt(s.median),
        Some(s) => format!("{} ({}–{})", fmt(s.median), fmt(s.min), fmt(s.max)),
    }
}

fn fmt(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e12 {
        format!("{v:.0}")
    } else {
        format!("{v:.3}")
    }
}

/// `sweep.md`.
pub fn markdown(report: &SweepReport, plan: &Plan, plots: &[(&str, &str)]) -> String {
    let mut w = String::new();
    let _ = writeln!(w, "# {} — linecut sweep\n", report.scenario);
    let _ = writeln!(
        w,
        "- Axes: {}\n- Repeats per cell: {}\n- Cells: {}{}\n",
        plan.axes
            .iter()
            .map(|a| format!("`{}` ({})", a.path, a.values.join(", ")))
            .collect::<Vec<_>>()
            .join(" × "),
        report.repeat,
        report.cells.len(),
        if report.complete {
            String::new()
        } else {
            format!(
                "\n- **Incomplete**: {} run(s) missing ({})",
                report.missing_runs.len(),
                report.missing_runs.join(", ")
            )
        }
    );
    let _ = writeln!(w, "## What the data says\n");
    for s in &report.summary {
        let _ = writeln!(w, "- {s}");
    }
    for (file, title) in plots {
        let _ = writeln!(w, "\n![{title}]({file})");
    }
    w.push_str(&crate::choose::markdown(report, plan));
    let _ = writeln!(
        w,
        "\n## Cells\n\nTimes in seconds (median, then min–max over repeats; \"never\" when it did not happen; n/m when it happened in n of m runs). Detection times are from the first fault window's start, recovery times from its end.\n"
    );
    let mut header = vec!["cell".to_string()];
    header.extend(plan.axes.iter().map(|a| a.label.clone()));
    header.extend(["library".to_string(), "runs".to_string()]);
    let columns = columns(report);
    header.extend(columns.iter().map(|m| m.to_string()));
    let _ = writeln!(w, "| {} |", header.join(" | "));
    let _ = writeln!(w, "|{}", "---|".repeat(header.len()));
    for (i, row) in report.cells.iter().enumerate() {
        let mut cols = vec![format!("{}", i + 1)];
        cols.extend(
            plan.axes
                .iter()
                .map(|a| row.values.get(&a.path).cloned().unwrap_or_default()),
        );
        cols.push(
            row.client_library
                .split(" (")
                .next()
                .unwrap_or("")
                .to_string(),
        );
        cols.push(format!("{}/{}", row.complete_runs, row.runs));
        cols.extend(columns.iter().map(|m| stat_text(row.metrics.get(*m))));
        let _ = writeln!(w, "| {} |", cols.join(" | "));
    }
    let _ = writeln!(
        w,
        "\nEach cell's runs are under `cells/<cell>/r<N>/` with their own `report.md`."
    );
    w
}

/// `sweep.csv`: one row per cell; per metric its median, min, max and how many runs had it.
pub fn csv(report: &SweepReport, plan: &Plan) -> String {
    let quote = |s: &str| {
        if s.contains([',', '"', '\n']) {
            format!("\"{}\"", s.replace('"', "\"\""))
        } else {
            s.to_string()
        }
    };
    let mut header: Vec<String> = vec!["cell".into()];
    header.extend(plan.axes.iter().map(|a| quote(&a.path)));
    header.extend([
        "client_library".into(),
        "broker".into(),
        "runs".into(),
        "complete_runs".into(),
    ]);
    let columns = columns(report);
    for m in &columns {
        for part in ["median", "min", "max", "count"] {
            header.push(format!("{m}_{part}"));
        }
    }
    let mut out = header.join(",") + "\n";
    for row in &report.cells {
        let mut cols = vec![quote(&row.cell)];
        cols.extend(
            plan.axes
                .iter()
                .map(|a| quote(row.values.get(&a.path).map_or("", String::as_str))),
        );
        cols.extend([
            quote(&row.client_library),
            quote(&row.broker),
            row.runs.to_string(),
            row.complete_runs.to_string(),
        ]);
        for m in &columns {
            match row.metrics.get(*m) {
                Some(s) => {
                    cols.extend([fmt(s.median), fmt(s.min), fmt(s.max), s.count.to_string()])
                }
                None => cols.extend([String::new(), String::new(), String::new(), "0".into()]),
            }
        }
        out.push_str(&cols.join(","));
        out.push('\n');
    }
    out
}
