//! A matrix: several sweeps over the same implementations, one per outage, read side by side.
//! Its rows are client libraries (a `subscriber.client` axis, or a `subscriber.paho` axis for
//! the Python library's series: the client matrix) or brokers (a `broker.kind` axis: the broker
//! matrix). `matrix.md` and `matrix.json` say per row and outage,
//! for a client, when it noticed (against its own band), how it came back, whether it
//! re-subscribed and had to, and what it lost; for a broker, when it dropped the silent client
//! (against its band), what it did when the client came back while it still held the old
//! connection, and when the backend heard the will. Then every surprise the runs hold (a
//! verdict outside its band, a client that never came back, a reconnect long after the restore,
//! a subscription lost, a disconnect no outage explains), each with the run that shows it.
//!
//! A matrix is found, not declared: a directory with two or more sweeps among its children whose
//! plans vary one of those axes and nothing else (an axis given a single value is a setting, as
//! `--set subscriber.client=paho-python` beside `--set subscriber.paho=1.0,1.6`). Sweeps of the
//! same scenario and settings are one column, so rows added later by another sweep (paho-mqtt's
//! older series beside the libraries) join the table instead of making columns of their own.
//! Everything is read from the runs' `report.json` files, so `linecut report` regenerates it
//! with the sweeps.

use crate::exec::{is_complete, run_dir};
use crate::report::median;
use crate::{read_plan, SweepError};
use linecut_analyzer::{Report, Story, Verdict};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// What a matrix's rows are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Rows {
    Clients,
    Brokers,
}

/// The axes a matrix's rows come from, and what they make the rows.
pub const ROW_AXES: [(&str, Rows); 3] = [
    ("subscriber.client", Rows::Clients),
    ("subscriber.paho", Rows::Clients),
    ("broker.kind", Rows::Brokers),
];

/// The kind of rows an axis path gives, if it is a row axis.
fn rows_of(path: &str) -> Option<Rows> {
    ROW_AXES.iter().find(|(a, _)| *a == path).map(|(_, r)| *r)
}

/// The kind of rows a sweep's plan gives: exactly one axis with more than one value, a row axis,
/// and every other axis a single value.
fn plan_rows(plan: &crate::Plan) -> Option<Rows> {
    let mut varying = plan.axes.iter().filter(|a| a.values.len() > 1);
    let axis = varying.next()?;
    if varying.next().is_some() {
        return None;
    }
    rows_of(&axis.path)
}

/// A cell's row: the values of its row axes in the order of `ROW_AXES`, whatever order the
/// sweep gave them (`mqttjs`, `paho-python 1.0`).
fn row_label(cell: &crate::Cell, rows: Rows) -> Option<String> {
    let words: Vec<&str> = ROW_AXES
        .iter()
        .filter(|(_, r)| *r == rows)
        .filter_map(|(axis, _)| cell.values.iter().find(|(p, _)| p == axis))
        .map(|(_, v)| v.as_str())
        .collect();
    (!words.is_empty()).then(|| words.join(" "))
}

/// What makes two sweeps one column: the scenario and the settings that are not rows.
fn column_key(plan: &crate::Plan) -> (String, Vec<(String, Vec<String>)>) {
    let settings = plan
        .axes
        .iter()
        .filter(|a| a.values.len() == 1 && rows_of(&a.path).is_none())
        .map(|a| (a.path.clone(), a.values.clone()))
        .collect();
    (plan.scenario_name.clone(), settings)
}

/// Where a new row goes: after the rows of the same implementation (`paho-python 1.0` after
/// `paho-python`), else last.
fn insert_row(rows: &mut Vec<String>, label: &str) {
    if rows.iter().any(|r| r == label) {
        return;
    }
    let kind = label.split(' ').next().unwrap_or(label);
    match rows.iter().rposition(|r| r.split(' ').next() == Some(kind)) {
        Some(i) => rows.insert(i + 1, label.to_string()),
        None => rows.push(label.to_string()),
    }
}

/// A reconnect this long after the restore is a surprise worth naming: longer than any of the
/// libraries' first retry (1–5 s) plus the kernel's SYN retransmissions up to the third
/// (1 + 2 + 4 s, TCP_TIMEOUT_INIT doubling) plus the 30 s connect timeouts MQTT.js, Paho C and
/// Paho Go use.
const SLOW_RECONNECT_S: f64 = 40.0;

/// The sweeps of a matrix directory and what its rows are, or `None` when `dir` is not a
/// matrix. Sweeps in the order of their directory names.
pub fn sweeps_of(dir: &Path) -> Option<(Vec<PathBuf>, Rows)> {
    let children: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .filter(|p| crate::is_sweep_dir(p))
        .collect();
    for (_, rows) in ROW_AXES {
        let mut sweeps: Vec<PathBuf> = children
            .iter()
            .filter(|p| read_plan(p).is_ok_and(|plan| plan_rows(&plan) == Some(rows)))
            .cloned()
            .collect();
        if sweeps.len() >= 2 {
            sweeps.sort();
            return Some((sweeps, rows));
        }
    }
    None
}

/// One run's part in the matrix: its first fault window's first subscriber.
#[derive(Debug, Clone, Serialize)]
pub struct RunFacts {
    /// The run directory, relative to the matrix directory.
    pub run: String,
    /// The fault took the subscriber's connection (the run has a window for it): false when a
    /// middlebox never forgot its flow, for one.
    pub outage: bool,
    pub detect_s: Option<f64>,
    pub verdict: Option<Verdict>,
    pub band: Option<(f64, f64)>,
    /// Seconds after the restore (negative: during the outage).
    pub reconnect_s: Option<f64>,
    pub attempts: u32,
    pub resubscribed: Option<bool>,
    pub session_present: Option<bool>,
    /// Seconds from the restore to the first message published after it that reached the
    /// subscriber.
    pub first_fresh_s: Option<f64>,
    pub lost: u64,
    /// Disconnects no outage explains: (seconds into the run, cause).
    pub unexpected: Vec<(f64, String)>,
    /// When the broker dropped the client, from the outage start, and the verdict on it.
    pub broker_detect_s: Option<f64>,
    pub broker_verdict: Option<Verdict>,
    pub broker_band: Option<(f64, f64)>,
    /// The client's new connection came while the broker still held the old one, and the
    /// broker took the old one over.
    pub takeover: bool,
    /// The same, and the broker kept the old connection open beside the new one.
    pub kept_old: bool,
    /// A new connection the client closed itself before the broker answered its CONNECT: the
    /// report's evidence (the connect's duration among it).
    pub closed_before_connack: Option<String>,
    /// When the backend heard the will, from the outage start.
    pub will_s: Option<f64>,
    /// The will came after the client was connected again: seconds after its CONNACK.
    pub will_after_connack_s: Option<f64>,
}

/// One client library (or broker) under one outage.
#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    /// The row: its row axes' values (`mqttjs`, `paho-python 1.0`, `aedes`).
    pub client: String,
    /// The implementation as the runs named it (`MQTT.js 5.16.0 (...)`, `aedes 1.2.0 (...)`).
    pub library: String,
    pub runs: Vec<RunFacts>,
    /// Runs the plan has that did not finish.
    pub missing: u32,
}

/// One column of the matrix: an outage and what every library did under it.
#[derive(Debug, Clone, Serialize)]
pub struct Column {
    /// The directory names of the sweeps it reads (one, or one per group of rows).
    pub sweeps: Vec<String>,
    pub scenario: String,
    pub description: Option<String>,
    /// The fault as the runs name it (`cut:at=10s,for=20s`).
    pub fault: String,
    pub keepalive_s: Option<u16>,
    /// How long the outage lasted (the first window read), for the columns' order.
    pub outage_s: Option<f64>,
    pub entries: Vec<Entry>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Matrix {
    pub schema: &'static str,
    pub schema_version: u32,
    pub rows: Rows,
    pub columns: Vec<Column>,
    /// The rows' axis values, in the order of the first sweep's axis.
    pub clients: Vec<String>,
    pub surprises: Vec<String>,
}

fn first_window_facts(report: &Report, run: String) -> RunFacts {
    let m = report.windows.first().and_then(|w| w.subscribers.first());
    RunFacts {
        run,
        outage: m.is_some(),
        detect_s: m.and_then(|m| m.client_detect_s),
        verdict: m.and_then(|m| m.client_detect_band.as_ref().map(|b| b.verdict)),
        band: m.and_then(|m| m.client_detect_band.as_ref().map(|b| (b.low_s, b.high_s))),
        reconnect_s: m.and_then(|m| m.reconnect_s),
        attempts: m.map_or(0, |m| m.connect_attempts),
        resubscribed: m.and_then(|m| m.resubscribed),
        session_present: m.and_then(|m| m.session_present),
        first_fresh_s: m.and_then(|m| m.first_fresh_s),
        lost: report.data.first().map_or(0, |d| d.lost),
        unexpected: report
            .unexpected_disconnects
            .iter()
            .map(|u| (u.t_s, u.cause.clone()))
            .collect(),
        broker_detect_s: m.and_then(|m| m.broker_detect_s),
        broker_verdict: m.and_then(|m| m.broker_detect_band.as_ref().map(|b| b.verdict)),
        broker_band: m.and_then(|m| m.broker_detect_band.as_ref().map(|b| (b.low_s, b.high_s))),
        takeover: m.is_some_and(|m| m.told(Story::SessionTakeover)),
        kept_old: m.is_some_and(|m| m.told(Story::OldConnectionKept)),
        closed_before_connack: m.and_then(|m| {
            m.stories
                .iter()
                .find(|t| t.story == Story::ClosedBeforeConnack)
                .map(|t| t.evidence.clone())
        }),
        will_s: m.and_then(|m| m.will_s),
        will_after_connack_s: m.and_then(|m| m.will_after_connack_s),
    }
}

/// Reads a matrix from its sweeps' runs.
pub fn build(dir: &Path, sweeps: &[PathBuf], rows: Rows) -> Result<Matrix, SweepError> {
    let mut columns: Vec<Column> = Vec::new();
    let mut keys = Vec::new();
    let mut clients: Vec<String> = Vec::new();
    for sweep in sweeps {
        let plan = read_plan(sweep)?;
        let name = sweep
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
        let key = column_key(&plan);
        let at = match keys.iter().position(|k| *k == key) {
            Some(i) => i,
            None => {
                keys.push(key);
                columns.push(Column {
                    sweeps: Vec::new(),
                    scenario: plan.scenario_name.clone(),
                    description: None,
                    fault: String::new(),
                    keepalive_s: None,
                    outage_s: None,
                    entries: Vec::new(),
                });
                columns.len() - 1
            }
        };
        let column = &mut columns[at];
        column.sweeps.push(name);
        for cell in &plan.cells {
            let Some(client) = row_label(cell, rows) else {
                continue;
            };
            insert_row(&mut clients, &client);
            let mut entry = Entry {
                client: client.clone(),
                library: String::new(),
                runs: Vec::new(),
                missing: 0,
            };
            for r in 1..=plan.repeat {
                let run = run_dir(sweep, &cell.name, r);
                let path = linecut_events::RunLayout::new(&run).report_json();
                if !is_complete(&run) || !path.is_file() {
                    entry.missing += 1;
                    continue;
                }
                let text = std::fs::read_to_string(&path).map_err(crate::io(path.clone()))?;
                let report: Report = serde_json::from_str(&text)
                    .map_err(|e| SweepError::Report(format!("{}: {e}", path.display())))?;
                entry.library.clone_from(match rows {
                    Rows::Clients => &report.client_library,
                    Rows::Brokers => &report.broker,
                });
                column.description = column.description.take().or(report.description.clone());
                column.keepalive_s = column.keepalive_s.or(report.keepalive_s);
                if column.fault.is_empty() {
                    if let Some(w) = report.windows.first() {
                        column.fault = fault_words(&w.spec);
                        column.outage_s = Some((w.outage_end_us - w.outage_start_us) as f64 / 1e6);
                    }
                }
                let relative = run.strip_prefix(dir).unwrap_or(&run).display().to_string();
                entry.runs.push(first_window_facts(&report, relative));
            }
            column.entries.push(entry);
        }
    }
    // Shortest outage first; a middlebox's (a whole-run fault, its windows as long as the
    // flows it forgot) last.
    columns.sort_by(|a, b| {
        let key = |c: &Column| {
            (
                c.fault.starts_with("idle_timeout"),
                c.outage_s.unwrap_or(f64::MAX),
            )
        };
        let (ka, kb) = (key(a), key(b));
        ka.0.cmp(&kb.0).then(ka.1.total_cmp(&kb.1))
    });
    let mut matrix = Matrix {
        schema: "linecut-matrix",
        // 2: a column names every sweep it reads (`sweeps`), not one (`name`).
        schema_version: 2,
        rows,
        columns,
        clients,
        surprises: Vec::new(),
    };
    matrix.surprises = surprises(&matrix);
    Ok(matrix)
}

/// The fault's spec without the phase the sweep drew (`cut:at=10.4s,for=20s` reads `cut
/// for=20s`): the columns compare outages, not phases.
fn fault_words(spec: &str) -> String {
    let (kind, params) = spec.split_once(':').unwrap_or((spec, ""));
    let kept: Vec<&str> = params
        .split(',')
        .filter(|p| !p.is_empty() && !p.starts_with("at="))
        .collect();
    if kept.is_empty() {
        kind.to_string()
    } else {
        format!("{kind} {}", kept.join(","))
    }
}

/// `12.3 (10.1–14.0)`, or `12.3` when every run agreed, or `—`.
fn spread(values: Vec<f64>) -> String {
    let (Some(lo), Some(hi)) = (
        values.iter().copied().reduce(f64::min),
        values.iter().copied().reduce(f64::max),
    ) else {
        return "—".into();
    };
    let mid = median(values).expect("non-empty");
    if (hi - lo).abs() < 0.0005 {
        format!("{mid:.1}")
    } else {
        format!("{mid:.1} ({lo:.1}–{hi:.1})")
    }
}

impl Entry {
    /// When it noticed: median (range) s, how many runs, against the band.
    fn noticed(&self) -> String {
        let n = self.runs.len();
        if n == 0 {
            return "no runs".into();
        }
        if !self.runs.iter().any(|r| r.outage) {
            return format!("no outage in {n} runs: the fault never took its connection");
        }
        let values: Vec<f64> = self.runs.iter().filter_map(|r| r.detect_s).collect();
        let noticed = values.len();
        let inside = self
            .runs
            .iter()
            .filter(|r| r.verdict == Some(Verdict::Inside))
            .count();
        let outside = self
            .runs
            .iter()
            .filter(|r| r.verdict == Some(Verdict::Outside))
            .count();
        let judged = match (self.runs.iter().find_map(|r| r.band), inside, outside) {
            (None, ..) => "no band (not a silent outage)".to_string(),
            (Some((lo, hi)), i, 0) if i == n => format!("band {lo:.1}–{hi:.1}: all inside"),
            (Some((lo, hi)), i, o) => format!("band {lo:.1}–{hi:.1}: {i} inside, {o} outside"),
        };
        if noticed == 0 {
            format!("never in {n} runs; {judged}")
        } else {
            format!("{} s in {noticed}/{n}; {judged}", spread(values))
        }
    }

    /// How it came back: after the restore, attempts, re-subscribed.
    fn back(&self) -> String {
        let gave_up: Vec<&RunFacts> = self.runs.iter().filter(|r| r.detect_s.is_some()).collect();
        if gave_up.is_empty() {
            return "—".into();
        }
        let back: Vec<f64> = gave_up.iter().filter_map(|r| r.reconnect_s).collect();
        let attempts: Vec<f64> = gave_up.iter().map(|r| f64::from(r.attempts)).collect();
        let never = gave_up.len() - back.len();
        let resub = gave_up
            .iter()
            .filter(|r| r.reconnect_s.is_some())
            .map(|r| (r.resubscribed, r.session_present))
            .collect::<Vec<_>>();
        let had_to = resub.iter().filter(|(_, p)| *p == Some(false)).count();
        let did = resub
            .iter()
            .filter(|(s, p)| *p == Some(false) && *s == Some(true))
            .count();
        let mut text = format!(
            "+{} s, {} attempt(s)",
            spread(back),
            median(attempts).map_or("—".into(), |a| format!("{a:.0}"))
        );
        if never > 0 {
            text.push_str(&format!(", not back in {never}"));
        }
        if had_to > 0 {
            text.push_str(&if did == had_to {
                "; re-subscribed".to_string()
            } else {
                format!("; re-subscribed in {did} of {had_to}")
            });
        }
        text
    }

    /// When the broker dropped the silent client, against its band.
    fn dropped(&self) -> String {
        let n = self.runs.len();
        if n == 0 {
            return "no runs".into();
        }
        if !self.runs.iter().any(|r| r.outage) {
            return format!("no outage in {n} runs");
        }
        let values: Vec<f64> = self.runs.iter().filter_map(|r| r.broker_detect_s).collect();
        let inside = self
            .runs
            .iter()
            .filter(|r| r.broker_verdict == Some(Verdict::Inside))
            .count();
        let judged = match self.runs.iter().find_map(|r| r.broker_band) {
            None => "no band (not a silent outage)".to_string(),
            Some((lo, hi)) if inside == n => format!("band {lo:.1}–{hi:.1}: all inside"),
            Some((lo, hi)) => format!("band {lo:.1}–{hi:.1}: {inside} of {n} inside"),
        };
        match values.len() {
            0 => format!("never in {n} runs; {judged}"),
            k => format!("{} s in {k}/{n}; {judged}", spread(values)),
        }
    }

    /// What happened when the client came back: a takeover, and the will.
    fn came_back_to(&self) -> String {
        let n = self.runs.len();
        let takeovers = self.runs.iter().filter(|r| r.takeover).count();
        let wills: Vec<f64> = self.runs.iter().filter_map(|r| r.will_s).collect();
        let while_connected = self
            .runs
            .iter()
            .filter(|r| r.will_after_connack_s.is_some())
            .count();
        let kept = self.runs.iter().filter(|r| r.kept_old).count();
        let mut text = if kept > 0 {
            format!("kept the old connection beside the new one in {kept}/{n}, takeover in {takeovers}/{n}")
        } else {
            format!("takeover in {takeovers}/{n}")
        };
        text.push_str(&match wills.len() {
            0 => "; no will".to_string(),
            k => format!("; will at {} s in {k}/{n}", spread(wills)),
        });
        if while_connected > 0 {
            text.push_str(&format!(
                ", {while_connected} of them after the client was back"
            ));
        }
        text
    }

    fn lost(&self) -> String {
        spread(self.runs.iter().map(|r| r.lost as f64).collect()).replace(".0", "")
    }
}

/// Everything in the runs a reader should not miss, each with the run that shows it.
fn surprises(m: &Matrix) -> Vec<String> {
    let mut out = Vec::new();
    for column in &m.columns {
        // A fault that took the others' connections and never this one's: something of this
        // client's kept its line from the fault (the run's capture shows what).
        let others_hit = column
            .entries
            .iter()
            .any(|e| e.runs.iter().any(|r| r.outage));
        for e in &column.entries {
            if others_hit && !e.runs.is_empty() && !e.runs.iter().any(|r| r.outage) {
                out.push(format!(
                    "{} ({}): the fault never took its connection in {} runs, where it took the others': `{}`",
                    e.client,
                    column.fault,
                    e.runs.len(),
                    e.runs[0].run
                ));
            }
            for r in &e.runs {
                let at = format!("`{}`", r.run);
                if r.broker_verdict == Some(Verdict::Outside) {
                    let band = r.broker_band.map_or(String::new(), |(lo, hi)| {
                        format!(" (band {lo:.1}–{hi:.1} s)")
                    });
                    out.push(match r.broker_detect_s {
                        Some(d) => format!("{} ({}): the broker dropped the client {d:.3} s into the outage, outside its band{band}: {at}", e.client, column.fault),
                        None => format!("{} ({}): the broker never dropped the silent client, although the outage outlasted its band{band}: {at}", e.client, column.fault),
                    });
                }
                if r.verdict == Some(Verdict::Outside) {
                    let band = r.band.map_or(String::new(), |(lo, hi)| {
                        format!(" (band {lo:.1}–{hi:.1} s)")
                    });
                    out.push(match r.detect_s {
                        Some(d) => format!("{} ({}): gave up {d:.3} s into the outage, outside its band{band}: {at}", e.client, column.fault),
                        None => format!("{} ({}): never noticed, although the outage outlasted its band{band}: {at}", e.client, column.fault),
                    });
                }
                if r.detect_s.is_some() && r.reconnect_s.is_none() {
                    out.push(format!(
                        "{} ({}): gave up and was not back by the end of the run: {at}",
                        e.client, column.fault
                    ));
                }
                if let Some(s) = r.reconnect_s.filter(|s| *s > SLOW_RECONNECT_S) {
                    out.push(format!(
                        "{} ({}): back {s:.1} s after the restore: {at}",
                        e.client, column.fault
                    ));
                }
                if r.session_present == Some(false) && r.resubscribed == Some(false) {
                    out.push(match r.first_fresh_s {
                        None => format!("{} ({}): reconnected to a broker that kept no session and did not subscribe again; nothing published after the restore reached it: {at}", e.client, column.fault),
                        Some(f) => format!("{} ({}): its first connection back ended without subscribing; a later one did (the first fresh message came {f:.1} s after the restore): {at}", e.client, column.fault),
                    });
                }
                if let Some(evidence) = &r.closed_before_connack {
                    out.push(format!(
                        "{} ({}): closed a new connection itself right after its CONNECT, before the broker answered ({evidence}): {at}",
                        e.client, column.fault
                    ));
                }
                for (t, cause) in &r.unexpected {
                    out.push(format!(
                        "{} ({}): a disconnect no outage explains at t+{t:.1} s ({cause}): {at}",
                        e.client, column.fault
                    ));
                }
            }
        }
    }
    out
}

/// `matrix.md`.
pub fn markdown(m: &Matrix) -> String {
    let mut s = String::from(match m.rows {
        Rows::Clients => "# Client matrix\n\nEvery client library under the same outages, each on a real link against the same broker, several runs with the outage at a random point of the ping cycle.",
        Rows::Brokers => "# Broker matrix\n\nEvery broker under the same outages, with the same client on a real link, several runs with the outage at a random point of the ping cycle.",
    });
    s.push_str(" Generated by `linecut report` from the runs' own reports; each column is one outage, read from the sweeps of this directory named beside it.\n\n");
    for c in &m.columns {
        let dirs: Vec<String> = c.sweeps.iter().map(|d| format!("`{d}/`")).collect();
        s.push_str(&format!(
            "- **{}** ({}): {}{}\n",
            c.fault,
            dirs.join(", "),
            c.description.as_deref().unwrap_or(&c.scenario),
            c.keepalive_s
                .map_or(String::new(), |k| format!(" Keepalive {k} s."))
        ));
    }
    let header = |what: &str| {
        let mut h = match m.rows {
            Rows::Clients => format!("\n## {what}\n\n| client | library |"),
            Rows::Brokers => format!("\n## {what}\n\n| broker | version |"),
        };
        for c in &m.columns {
            h.push_str(&format!(" {} |", c.fault));
        }
        h.push_str("\n|---|---|");
        h.push_str(&"---|".repeat(m.columns.len()));
        h.push('\n');
        h
    };
    type Cell = fn(&Entry) -> String;
    let lost: (&str, &str, Cell) = ("What it lost", "Messages published during the run that never reached the subscriber (QoS 0): median (range).", Entry::lost);
    let tables: Vec<(&str, &str, Cell)> = match m.rows {
        Rows::Clients => vec![
            ("When it noticed", "Seconds from the outage start to the client giving up: median (range), in how many runs, against the band its library's rule gives (docs/clients.md; each run's report states the tolerance and its source).", Entry::noticed),
            ("How it came back", "Seconds from the restore to its CONNACK (median, range; negative: during the outage), connection attempts from giving up to that CONNACK, and whether it subscribed again where the broker had kept no session.", Entry::back),
            lost,
        ],
        Rows::Brokers => vec![
            ("When it dropped the silent client", "Seconds from the outage start to the broker closing its side of the client's connection: median (range), in how many runs, against the band its rule gives (docs/clients.md; a \"never\" its own code gives is inside).", Entry::dropped),
            ("When the client came back", "Whether the client's new connection took over one the broker still held (its side still open when the new CONNECT came) or the broker, by its rule, kept the old one open beside it, and when the backend heard the client's will, from the outage start.", Entry::came_back_to),
            ("The client", "How the client (the same in every row) noticed and came back, as in the client matrix.", Entry::noticed),
            lost,
        ],
    };
    for (title, words, cell) in tables {
        s.push_str(&header(title));
        for client in &m.clients {
            let library = m
                .columns
                .iter()
                .flat_map(|c| &c.entries)
                .find(|e| &e.client == client && !e.library.is_empty())
                .map_or("", |e| e.library.as_str());
            let library = library.split(" (").next().unwrap_or(library);
            s.push_str(&format!("| {client} | {library} |"));
            for c in &m.columns {
                let text = c
                    .entries
                    .iter()
                    .find(|e| &e.client == client)
                    .map_or_else(|| "not run".to_string(), cell);
                s.push_str(&format!(" {text} |"));
            }
            s.push('\n');
        }
        s.push_str(&format!("\n{words}\n"));
    }
    s.push_str("\n## Surprises\n\n");
    if m.surprises.is_empty() {
        s.push_str("None: every verdict inside its band, every client back, subscribed again where it had to, and no disconnect without an outage.\n");
    } else {
        for line in &m.surprises {
            s.push_str(&format!("- {line}\n"));
        }
    }
    let missing: u32 = m
        .columns
        .iter()
        .flat_map(|c| &c.entries)
        .map(|e| e.missing)
        .sum();
    if missing > 0 {
        s.push_str(&format!(
            "\n{missing} planned run(s) did not finish and are not counted.\n"
        ));
    }
    s
}

/// Writes `matrix.json` and `matrix.md` into `dir`.
pub fn write(dir: &Path, sweeps: &[PathBuf], rows: Rows) -> Result<Matrix, SweepError> {
    let matrix = build(dir, sweeps, rows)?;
    let files: BTreeMap<&str, String> = [
        (
            "matrix.json",
            serde_json::to_string_pretty(&matrix).expect("matrix serialises") + "\n",
        ),
        ("matrix.md", markdown(&matrix)),
    ]
    .into_iter()
    .collect();
    for (name, text) in files {
        let path = dir.join(name);
        let tmp = dir.join(format!("{name}.tmp"));
        std::fs::write(&tmp, text)
            .and_then(|()| std::fs::rename(&tmp, &path))
            .map_err(crate::io(path))?;
    }
    Ok(matrix)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fault_reads_without_its_phase() {
        assert_eq!(fault_words("cut:at=10.412s,for=20s"), "cut for=20s");
        assert_eq!(
            fault_words("idle_timeout:timeout=30s"),
            "idle_timeout timeout=30s"
        );
        assert_eq!(fault_words("reject:at=3s"), "reject");
    }

    #[test]
    fn spreads_and_notices_say_what_the_runs_did() {
        assert_eq!(spread(vec![]), "—");
        assert_eq!(spread(vec![2.0, 2.0]), "2.0");
        assert_eq!(spread(vec![3.0, 1.0, 2.0]), "2.0 (1.0–3.0)");
        let run = |d: Option<f64>, v: Verdict| RunFacts {
            run: "blip/cells/x/r1".into(),
            outage: true,
            detect_s: d,
            verdict: Some(v),
            band: Some((5.0, 10.0)),
            reconnect_s: d.map(|_| 0.5),
            attempts: 1,
            resubscribed: Some(true),
            session_present: Some(false),
            first_fresh_s: Some(1.0),
            lost: 3,
            unexpected: Vec::new(),
            broker_detect_s: None,
            broker_verdict: None,
            broker_band: None,
            takeover: false,
            kept_old: false,
            closed_before_connack: None,
            will_s: None,
            will_after_connack_s: None,
        };
        let e = Entry {
            client: "mqttjs".into(),
            library: "MQTT.js 5.16.0".into(),
            runs: vec![run(Some(6.0), Verdict::Inside), run(None, Verdict::Outside)],
            missing: 0,
        };
        assert_eq!(
            e.noticed(),
            "6.0 s in 1/2; band 5.0–10.0: 1 inside, 1 outside"
        );
        assert_eq!(e.back(), "+0.5 s, 1 attempt(s); re-subscribed");
        let m = Matrix {
            schema: "linecut-matrix",
            schema_version: 2,
            rows: Rows::Clients,
            columns: vec![Column {
                sweeps: vec!["blip".into()],
                scenario: "s".into(),
                description: None,
                fault: "cut for=3s".into(),
                keepalive_s: Some(5),
                outage_s: Some(3.0),
                entries: vec![e],
            }],
            clients: vec!["mqttjs".into()],
            surprises: Vec::new(),
        };
        let found = surprises(&m);
        assert_eq!(found.len(), 1, "{found:?}");
        // A client whose connection the fault never took, where it took the others'.
        let mut spared = m.columns[0].entries[0].clone();
        spared.client = "paho-go".into();
        for r in &mut spared.runs {
            r.outage = false;
            r.verdict = None;
            r.detect_s = None;
            r.reconnect_s = None;
        }
        assert!(
            spared.noticed().starts_with("no outage in 2 runs"),
            "{}",
            spared.noticed()
        );
        let mut m = m;
        m.columns[0].entries.push(spared);
        let found = surprises(&m);
        assert!(
            found.iter().any(|f| f.starts_with(
                "paho-go (cut for=3s): the fault never took its connection in 2 runs"
            )),
            "{found:?}"
        );
        assert!(
            found[0].contains("never noticed, although the outage outlasted its band"),
            "{found:?}"
        );
        assert!(found[0].contains("`blip/cells/x/r1`"), "{found:?}");
    }

    fn plan(axes: &[(&str, &[&str])]) -> crate::Plan {
        let axes: Vec<crate::plan::PlanAxis> = axes
            .iter()
            .map(|(path, values)| crate::plan::PlanAxis {
                path: (*path).into(),
                label: (*path).into(),
                values: values.iter().map(|v| (*v).into()).collect(),
            })
            .collect();
        let cells = axes[0]
            .values
            .iter()
            .map(|v| crate::Cell {
                name: v.clone(),
                values: axes
                    .iter()
                    .map(|a| {
                        let value = if a.values.len() == 1 { &a.values[0] } else { v };
                        (a.path.clone(), value.clone())
                    })
                    .collect(),
                scenario: String::new(),
                duration_s: 30.0,
            })
            .collect();
        crate::Plan {
            scenario_name: "client-matrix-blip".into(),
            axes,
            repeat: 5,
            phase: crate::PhaseMode::Random,
            cells,
            shard: None,
            goal: crate::Goal::default(),
        }
    }

    /// A sweep of paho-mqtt's series with the client set to paho-python is the same column as
    /// the sweep of libraries over the same scenario, and its rows sit beside paho-python's.
    #[test]
    fn a_second_sweep_of_rows_joins_the_columns_of_the_first() {
        let libraries = plan(&[("subscriber.client", &["rumqttc", "paho-python", "mqttjs"])]);
        let series = plan(&[
            ("subscriber.paho", &["1.0", "1.6"]),
            ("subscriber.client", &["paho-python"]),
        ]);
        assert_eq!(plan_rows(&libraries), Some(Rows::Clients));
        assert_eq!(plan_rows(&series), Some(Rows::Clients));
        assert_eq!(column_key(&libraries), column_key(&series));
        // Two axes that vary compare something else; so does a setting outside the rows.
        let crossed = plan(&[
            ("subscriber.client", &["rumqttc", "mqttjs"]),
            ("subscriber.keepalive", &["5s", "60s"]),
        ]);
        assert_eq!(plan_rows(&crossed), None);
        let other = plan(&[
            ("subscriber.client", &["rumqttc", "mqttjs"]),
            ("subscriber.keepalive", &["60s"]),
        ]);
        assert_ne!(column_key(&other), column_key(&libraries));
        let labels: Vec<String> = series
            .cells
            .iter()
            .filter_map(|c| row_label(c, Rows::Clients))
            .collect();
        assert_eq!(labels, ["paho-python 1.0", "paho-python 1.6"]);
        let mut rows: Vec<String> = libraries
            .cells
            .iter()
            .filter_map(|c| row_label(c, Rows::Clients))
            .collect();
        for label in ["paho-python 1.0", "paho-python 1.6", "paho-go", "mqttjs"] {
            insert_row(&mut rows, label);
        }
        assert_eq!(
            rows,
            [
                "rumqttc",
                "paho-python",
                "paho-python 1.0",
                "paho-python 1.6",
                "mqttjs",
                "paho-go"
            ]
        );
    }
}
