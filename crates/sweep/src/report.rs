//! The comparison: every cell's runs folded into one row (median and min–max per metric over
//! repeats), a plain-language summary computed from those rows, and `sweep.json`, `sweep.csv`
//! and `sweep.md`. Read from the runs' `report.json` files only, so a sweep's reports can be
//! regenerated (and merged across shards) from what the runs stored.

use crate::exec::{is_complete, run_dir};
use crate::plan::Plan;
use crate::SweepError;
use linecut_analyzer::Report;
use linecut_model::Metric;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::Path;

pub const SWEEP_SCHEMA: &str = "linecut-sweep";
pub const SWEEP_SCHEMA_VERSION: u32 = 1;

/// The metrics compared, in table order: timings from the first fault window, then whole-run.
pub const METRICS: [&str; 10] = [
    Metric::ClientDetectS.name(),
    Metric::BrokerDetectS.name(),
    Metric::ReconnectS.name(),
    Metric::ResubscribeS.name(),
    Metric::FirstFreshS.name(),
    Metric::Lost.name(),
    Metric::Late.name(),
    Metric::DataGapPublishS.name(),
    Metric::Reconnects.name(),
    PINGS_PER_HOUR,
];

/// The window metrics compared (the timings of the first fault window).
const WINDOW_METRICS: [Metric; 5] = [
    Metric::ClientDetectS,
    Metric::BrokerDetectS,
    Metric::ReconnectS,
    Metric::ResubscribeS,
    Metric::FirstFreshS,
];

/// The whole-run metrics compared.
const RUN_METRICS: [Metric; 4] = [
    Metric::Lost,
    Metric::Late,
    Metric::DataGapPublishS,
    Metric::Reconnects,
];

/// The sweep's own metric: PINGREQs per hour, from each subscriber's median ping interval.
const PINGS_PER_HOUR: &str = "pings_per_hour";

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
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let mid = v.len() / 2;
        let median = if v.len() % 2 == 1 {
            v[mid]
        } else {
            (v[mid - 1] + v[mid]) / 2.0
        };
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

/// One detection time, for plots: which run, and whether it fell inside its band.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Point {
    pub repeat: u32,
    pub value: f64,
    pub inside: Option<bool>,
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
        };
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
            row.client_library = report.client_library.clone();
            row.broker = report.broker.clone();
            row.keepalive_s = report.keepalive_s.map(f64::from);
            let Some(window) = report.windows.first() else {
                // No fault window: only the whole-run metrics exist.
                fold_data(&report, &mut samples);
                continue;
            };
            row.outage_s = Some(round(
                (window.outage_end_us - window.outage_start_us) as f64 / 1e6,
            ));
            for m in &window.subscribers {
                for metric in WINDOW_METRICS {
                    let value = linecut_analyzer::metric_value(metric, Some(m), None);
                    samples.entry(metric.name()).or_default().push(value);
                }
                if let Some(v) = m.client_detect_s {
                    row.client_detect.push(Point {
                        repeat: r,
                        value: v,
                        inside: m.client_detect_band.as_ref().map(|b| b.inside),
                    });
                }
                if let Some(v) = m.broker_detect_s {
                    row.broker_detect.push(Point {
                        repeat: r,
                        value: v,
                        inside: m.broker_detect_band.as_ref().map(|b| b.inside),
                    });
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

/// Adds each subscriber's whole-run metrics of one run to the cell's samples.
fn fold_data(report: &Report, samples: &mut BTreeMap<&'static str, Vec<Option<f64>>>) {
    for d in &report.data {
        for metric in RUN_METRICS {
            samples
                .entry(metric.name())
                .or_default()
                .push(linecut_analyzer::metric_value(metric, None, Some(d)));
        }
        samples.entry(PINGS_PER_HOUR).or_default().push(
            d.ping_interval_s
                .filter(|i| *i > 0.0)
                .map(|i| round(3600.0 / i)),
        );
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

/// What the data says, in sentences computed from the rows.
fn summarise(report: &SweepReport, plan: &Plan) -> Vec<String> {
    let mut out = Vec::new();
    // (series, keepalive) -> per outage length: runs that detected it, runs, median detection.
    struct Tried {
        outage: f64,
        detected: usize,
        runs: usize,
        median: Option<f64>,
    }
    let mut by_setting: BTreeMap<(String, u64), Vec<Tried>> = BTreeMap::new();
    for row in &report.cells {
        let (Some(k), Some(outage)) = (row.keepalive_s, row.outage_s) else {
            continue;
        };
        let detect = row.metrics.get("client_detect_s");
        by_setting
            .entry((series_of(row, plan), (k * 1000.0) as u64))
            .or_default()
            .push(Tried {
                outage,
                detected: detect.map_or(0, |s| s.count),
                runs: (row.complete_runs as usize).max(1),
                median: detect.map(|s| s.median),
            });
    }
    for ((series, k_ms), mut tried) in by_setting {
        tried.sort_by(|a, b| a.outage.total_cmp(&b.outage));
        let k = k_ms as f64 / 1000.0;
        let who = if series.is_empty() {
            format!("keepalive {}", secs(k))
        } else {
            format!("{series}, keepalive {}", secs(k))
        };
        let mut parts = Vec::new();
        if let Some(r) = tried
            .iter()
            .filter(|t| t.detected == 0)
            .map(|t| t.outage)
            .reduce(f64::max)
        {
            parts.push(format!(
                "rode through outages up to {} without noticing",
                secs(r)
            ));
        }
        for t in tried
            .iter()
            .filter(|t| t.detected > 0 && t.detected < t.runs)
        {
            parts.push(format!(
                "noticed a {} outage in {} of {} runs",
                secs(t.outage),
                t.detected,
                t.runs
            ));
        }
        if let Some(t) = tried.iter().find(|t| t.detected >= t.runs) {
            parts.push(format!(
                "always noticed outages of {} and longer{}",
                secs(t.outage),
                t.median.map_or(String::new(), |d| format!(
                    " (a {} outage after a median of {})",
                    secs(t.outage),
                    secs(d)
                ))
            ));
        }
        out.push(format!("{who}: {}.", parts.join("; ")));
    }
    // The price of a keepalive: PINGREQs per hour per client while it sends nothing else, per
    // series (clients differ: one that checks once a second pings every K + 1 s).
    let mut pings: BTreeMap<String, BTreeMap<u64, Vec<f64>>> = BTreeMap::new();
    for row in &report.cells {
        if let (Some(k), Some(p)) = (row.keepalive_s, row.metrics.get("pings_per_hour")) {
            pings
                .entry(series_of(row, plan))
                .or_default()
                .entry((k * 1000.0) as u64)
                .or_default()
                .push(p.median);
        }
    }
    for (series, by_k) in pings {
        let parts: Vec<String> = by_k
            .into_iter()
            .map(|(k, mut v)| {
                let k = k as f64 / 1000.0;
                v.sort_by(f64::total_cmp);
                format!(
                    "keepalive {}: {:.0} (3600/K = {:.0})",
                    secs(k),
                    v[v.len() / 2],
                    3600.0 / k
                )
            })
            .collect();
        let who = if series.is_empty() {
            String::new()
        } else {
            format!(" ({series})")
        };
        out.push(format!(
            "PINGREQs per hour per client{who}: {}.",
            parts.join("; ")
        ));
    }
    let points: Vec<&Point> = report
        .cells
        .iter()
        .flat_map(|r| r.client_detect.iter().chain(&r.broker_detect))
        .filter(|p| p.inside.is_some())
        .collect();
    if !points.is_empty() {
        let inside = points.iter().filter(|p| p.inside == Some(true)).count();
        out.push(format!(
            "{inside} of {} detection times (client and broker) fell inside the band the protocol and the implementation give for them.",
            points.len()
        ));
    }
    let reconnects: Vec<f64> = report
        .cells
        .iter()
        .filter_map(|r| r.metrics.get("reconnect_s").map(|s| s.max))
        .collect();
    if let Some(worst) = reconnects.iter().copied().reduce(f64::max) {
        out.push(format!(
            "Clients that gave up were back at most {} after the line returned.",
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
    let _ = writeln!(
        w,
        "\n## Cells\n\nTimes in seconds (median, then min–max over repeats; \"never\" when it did not happen; n/m when it happened in n of m runs). Detection times are from the first fault window's start, recovery times from its end.\n"
    );
    let mut header = vec!["cell".to_string()];
    header.extend(plan.axes.iter().map(|a| a.label.clone()));
    header.extend(["library".to_string(), "runs".to_string()]);
    header.extend(METRICS.iter().map(|m| m.to_string()));
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
        cols.extend(METRICS.iter().map(|m| stat_text(row.metrics.get(*m))));
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
    for m in METRICS {
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
        for m in METRICS {
            match row.metrics.get(m) {
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
