//! The analyzer: a run directory in, a report out.
//!
//! It answers the questions of the 2014 experiment with numbers, per fault window and per
//! subscriber:
//!
//! | metric | meaning |
//! |---|---|
//! | `outage_start_us`, `outage_end_us` | the fault's actual window, from the proxy log |
//! | `client_detect_s` | outage start to the client giving up: its own disconnect event, or (black-box) it closed its socket or opened a new connection; null if it never did |
//! | `broker_detect_s` | outage start to the broker closing its side (the proxy's broker leg), or its log saying it timed the client out; null if never |
//! | `reconnect_s` | outage end to the first accepted CONNACK after the client gave up |
//! | `resubscribe_s` | outage end to the SUBACK after that CONNACK |
//! | `connect_attempts` | attempts from giving up to coming back, with how each failed |
//! | `first_fresh_s` | outage end to the delivery of the first message published after it |
//! | `session_present`, `resubscribed` | what the reconnect's CONNACK said, and whether SUBSCRIBE was sent again |
//! | `wire_detect_s`, `wire_reconnect_s`, `wire_resubscribe_s` | the same timings from the proxy's view of the wire alone (socket closed or new CONNECT; CONNACK and SUBACK written to the client) |
//!
//! A client that reports nothing about itself (mosquitto_sub, most programs under test) is
//! measured from the wire: its CONNECT, CONNACK, SUBSCRIBE, SUBACK, PINGREQ and PINGRESP as the
//! proxy saw them ([`wire`]) stand in for its own events, and `reported_by_client` is false. A
//! client that does report (linecut's agent, linecut's paho script) is measured from its own
//! events, and the `wire_*` timings next to them show how far its view and the wire's differ.
//!
//! For a fleet, each window also carries the distribution (min, p50, p90, p99, max) of every
//! timing across subscribers; an expectation such as `client_detect_s.p99 = "<= 4"` checks it.
//!
//! And per subscriber over the whole run: `published` (on its topics while it was subscribed),
//! `delivered`, `lost` (published but never delivered, except in the last second before it
//! stopped, which may still have been in flight), `duplicates`,
//! `out_of_order`, `late` (published during an outage, delivered after it), `data_gap_receive_s`
//! and `data_gap_publish_s` (the longest stretch without deliveries by receive and by publish
//! time), `reconnects`, `foreign`.
//!
//! Next to each detection time stands the band the protocol gives for the client library and
//! broker that produced the run (see [`bands`]), and whether the measurement fell inside it. The
//! stories — "client timed out waiting for PINGRESP", "broker timed the client out", "new
//! connection took over the old session", "data and FIN arrived on a connection the client had
//! already abandoned", "rode through the outage without reconnecting" — are recognised from the
//! same events.
//!
//! Deterministic: the same run directory always gives byte-identical reports (ordered maps,
//! fixed float formatting, no wall-clock reads).

pub mod bands;
mod capture;
mod index;
mod load;
mod markdown;
mod story;
mod svg;
mod window;
mod wire;

pub use capture::{load_capture, CaptureCheck, CaptureCheckRow, CaptureInfo};
use index::ConnIndex;
use linecut_model::metric::Stat;
pub use linecut_model::{topic_matches, Condition};
use linecut_model::{Metric, MetricName};
pub use load::{check_fast_message_path, load, Delivery, Publish, Run};
pub use story::{DetectHow, Story};
use window::{window_metrics, RunContext};

use linecut_events::run_dir::file;
use linecut_events::{ClosedBy, Direction, DisconnectCause, Event, EventKind, Leg, RunLayout};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Name and version of `report.json`'s schema; bumped when a field changes meaning.
pub const REPORT_SCHEMA: &str = "linecut-report";
pub const REPORT_SCHEMA_VERSION: u32 = 1;
/// A client's own report this soon after the wire's sign of the same event explains it.
const SAME_MOMENT_US: i64 = 100_000;
/// Messages published this close to a subscriber's stop are not counted as lost.
const STOP_GRACE_US: i64 = 1_000_000;

#[derive(Debug, thiserror::Error)]
pub enum AnalyzeError {
    #[error("{0} is not a run directory (no readable meta.json)")]
    NotARun(PathBuf),
    #[error(transparent)]
    Capture(#[from] linecut_capture::CaptureError),
    #[error("{0} is missing")]
    Missing(PathBuf),
    #[error("{0}")]
    Read(String),
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// A detection time's expected band.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Band {
    pub low_s: f64,
    pub high_s: f64,
    pub inside: bool,
    /// The rule the band comes from, in words.
    pub rule: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WindowMetrics {
    pub client: String,
    pub client_detect_s: Option<f64>,
    /// How the client's giving up was seen: its disconnect cause, or `socket_closed` /
    /// `new_connection` when only the wire showed it.
    pub client_detect_how: Option<DetectHow>,
    pub client_detect_band: Option<Band>,
    pub broker_detect_s: Option<f64>,
    /// `proxy` (the broker closed its leg) or `broker_log`.
    pub broker_detect_how: Option<DetectHow>,
    pub broker_detect_band: Option<Band>,
    pub reconnect_s: Option<f64>,
    pub resubscribe_s: Option<f64>,
    pub connect_attempts: u32,
    pub attempt_failures: BTreeMap<String, u32>,
    pub first_fresh_s: Option<f64>,
    pub session_present: Option<bool>,
    pub resubscribed: Option<bool>,
    /// False when the client printed nothing about its connection and the wire stood in for it.
    pub reported_by_client: bool,
    pub wire_detect_s: Option<f64>,
    pub wire_reconnect_s: Option<f64>,
    pub wire_resubscribe_s: Option<f64>,
    pub stories: Vec<Story>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WindowReport {
    pub fault: u64,
    pub kind: String,
    pub spec: String,
    pub outage_start_us: i64,
    pub outage_end_us: i64,
    pub subscribers: Vec<WindowMetrics>,
    /// Each timing's distribution across subscribers (those with a value), for fleets.
    pub distribution: BTreeMap<String, Distribution>,
}

/// min, p50, p90, p99 and max of one timing across a fleet, and how many had no value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Distribution {
    pub count: usize,
    pub missing: usize,
    pub min: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
}

impl Distribution {
    fn of(values: &[Option<f64>]) -> Option<Distribution> {
        let mut v: Vec<f64> = values.iter().flatten().copied().collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        // Nearest-rank percentiles: always a measured value, never an interpolation.
        let rank = |q: f64| v[((q * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1];
        Some(Distribution {
            count: v.len(),
            missing: values.len() - v.len(),
            min: v[0],
            p50: rank(0.50),
            p90: rank(0.90),
            p99: rank(0.99),
            max: v[v.len() - 1],
        })
    }

    fn get(&self, stat: Stat) -> f64 {
        match stat {
            Stat::Min => self.min,
            Stat::P50 => self.p50,
            Stat::P90 => self.p90,
            Stat::P99 => self.p99,
            Stat::Max => self.max,
        }
    }
}

/// A timing of the registry ([`Metric::is_timing`]) from a window's metrics.
fn timing(m: &WindowMetrics, metric: Metric) -> Option<f64> {
    match metric {
        Metric::ClientDetectS => m.client_detect_s,
        Metric::BrokerDetectS => m.broker_detect_s,
        Metric::ReconnectS => m.reconnect_s,
        Metric::ResubscribeS => m.resubscribe_s,
        Metric::FirstFreshS => m.first_fresh_s,
        _ => None,
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataMetrics {
    pub client: String,
    pub published: u64,
    pub delivered: u64,
    pub lost: u64,
    pub duplicates: u64,
    pub out_of_order: u64,
    pub late: u64,
    pub late_max_delay_s: Option<f64>,
    pub data_gap_receive_s: Option<f64>,
    pub data_gap_publish_s: Option<f64>,
    pub reconnects: u64,
    pub foreign: u64,
    /// PINGREQs the client sent, as the proxy saw them.
    pub pings: u64,
    /// The median interval between two PINGREQs on one connection.
    pub ping_interval_s: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExpectationResult {
    pub metric: String,
    pub condition: String,
    /// Value per subscriber (null where the metric has none).
    pub values: BTreeMap<String, Option<f64>>,
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimelineEntry {
    /// Seconds from the experiment start.
    pub t_s: f64,
    pub ts_us: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
    pub what: String,
}

/// Everything `report.json` holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub schema: String,
    pub schema_version: u32,
    pub scenario: String,
    pub broker: String,
    pub client_library: String,
    pub complete: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub incomplete_reason: Option<String>,
    pub experiment_start_us: i64,
    pub keepalive_s: Option<u16>,
    pub windows: Vec<WindowReport>,
    pub data: Vec<DataMetrics>,
    pub expectations: Vec<ExpectationResult>,
    pub timeline: Vec<TimelineEntry>,
    pub warnings: Vec<String>,
    /// When the run was read from a packet capture: what the capture held.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capture: Option<CaptureInfo>,
    /// When a run directory also holds a capture: its MQTT packets against the proxy's log.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capture_check: Option<CaptureCheck>,
}

impl Report {
    /// True when every expectation held (and there were expectations or not).
    pub fn expectations_hold(&self) -> bool {
        self.expectations.iter().all(|e| e.ok)
    }
}

/// Analyses a run directory and writes `report.json`, `report.md` and `timeline.svg` into it.
pub fn analyze_dir(dir: &Path) -> Result<Report, AnalyzeError> {
    let run = load(dir)?;
    let mut report = analyze(&run);
    // A capture taken during the run (the proxy's, or one put there) is checked against the
    // events: the two views of the same wire must agree.
    let pcap = RunLayout::new(dir).capture();
    if pcap.is_file() {
        match capture::check_against(&run, &pcap) {
            Ok(check) => report.capture_check = Some(check),
            Err(e) => report
                .warnings
                .push(format!("capture.pcap could not be compared: {e}")),
        }
    }
    write_reports(dir, &report, &run)?;
    Ok(report)
}

/// Analyses a packet capture (`linecut analyze CAPTURE`) and writes the reports into `out`.
/// `client_library` and `broker`, when known, name the implementations so their detection
/// bands apply.
pub fn analyze_capture(
    path: &Path,
    port: u16,
    client_library: Option<&str>,
    broker: Option<&str>,
    out: &Path,
) -> Result<Report, AnalyzeError> {
    let (run, info) = load_capture(path, port, client_library, broker)?;
    let mut report = analyze(&run);
    report.capture = Some(info);
    std::fs::create_dir_all(out).map_err(|source| AnalyzeError::Write {
        path: out.to_path_buf(),
        source,
    })?;
    write_reports(out, &report, &run)?;
    Ok(report)
}

/// The three reports, as text: `report.json`, `report.md`, `timeline.svg`.
pub fn render_reports(report: &Report, run: &Run) -> [(&'static str, String); 3] {
    let mut json = serde_json::to_string_pretty(report).expect("reports serialise");
    json.push('\n');
    [
        (file::report_json, json),
        (file::report_md, markdown::render(report)),
        (file::timeline_svg, svg::render(report, run)),
    ]
}

pub fn write_reports(dir: &Path, report: &Report, run: &Run) -> Result<(), AnalyzeError> {
    for (name, text) in render_reports(report, run) {
        let path = dir.join(name);
        std::fs::write(&path, text).map_err(|source| AnalyzeError::Write { path, source })?;
    }
    Ok(())
}

/// A disconnect cause as the events spell it (`keepalive_timeout`, …).
fn cause_name(cause: DisconnectCause) -> String {
    serde_json::to_value(cause)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

fn secs(us: i64) -> f64 {
    // Millisecond precision: finer digits would be noise, and fixed rounding keeps reports stable.
    (us as f64 / 1000.0).round() / 1000.0
}

/// One client's events, its deliveries, and the proxy connections that carried it.
struct Client<'a> {
    id: String,
    /// True when `events` are the wire's view (the client reported nothing of its own).
    from_wire: bool,
    events: Vec<&'a Event>,
    deliveries: Vec<&'a Delivery>,
    conns: BTreeSet<u64>,
}

struct Window {
    fault: u64,
    kind: String,
    spec: String,
    start: i64,
    end: i64,
}

fn windows(run: &Run, run_end: i64) -> Vec<Window> {
    let mut windows: Vec<Window> = Vec::new();
    let mut open: Vec<usize> = Vec::new();
    for e in &run.proxy {
        match &e.kind {
            EventKind::FaultStarted(f) => {
                windows.push(Window {
                    fault: f.fault,
                    kind: f.kind.clone(),
                    spec: f.spec.clone(),
                    start: e.ts_us,
                    end: run_end,
                });
                open.push(windows.len() - 1);
            }
            EventKind::FaultEnded(f) => {
                if let Some(pos) = open.iter().position(|&i| windows[i].fault == f.fault) {
                    windows[open.remove(pos)].end = e.ts_us;
                }
            }
            _ => {}
        }
    }
    windows
}

fn client_of(e: &Event) -> Option<&str> {
    match &e.kind {
        EventKind::ConnectAttempt(x) => Some(&x.client),
        EventKind::Connack(x) => Some(&x.client),
        EventKind::SubscribeSent(x) => Some(&x.client),
        EventKind::Suback(x) => Some(&x.client),
        EventKind::PingSent(x) | EventKind::PingReceived(x) => Some(&x.client),
        EventKind::Message(x) => Some(&x.client),
        EventKind::Disconnected(x) => Some(&x.client),
        EventKind::ClientInfo(x) => Some(&x.client),
        EventKind::ClientExited(x) => Some(&x.client),
        _ => None,
    }
}

/// Runs the analysis on loaded events.
pub fn analyze(run: &Run) -> Report {
    let meta = &run.meta;
    let all_ts = run
        .proxy
        .iter()
        .chain(&run.subscriber)
        .chain(&run.publisher)
        .map(|e| e.ts_us);
    let run_end = all_ts.clone().max().unwrap_or(0);
    let start = meta
        .experiment_start_us
        .or_else(|| all_ts.min())
        .unwrap_or(0);

    // Which proxy connections each MQTT client id used, and what the wire saw of each client.
    let conn_client = wire::connection_clients(&run.proxy);
    let wire_events = wire::client_events(&run.proxy, &conn_client);
    let mut clients: BTreeMap<String, Client> = BTreeMap::new();
    let new_client = |id: &str| Client {
        id: id.to_string(),
        from_wire: false,
        events: Vec::new(),
        deliveries: Vec::new(),
        conns: BTreeSet::new(),
    };
    for e in &run.subscriber {
        if let Some(id) = client_of(e) {
            clients
                .entry(id.to_string())
                .or_insert_with(|| new_client(id))
                .events
                .push(e);
        }
    }
    // Deliveries are grouped by their interned client id first: a fleet's run has one row per
    // delivery, and a map lookup by name for each would dominate the analysis.
    let mut by_client: Vec<Vec<&Delivery>> = vec![Vec::new(); run.clients.len()];
    for d in &run.deliveries {
        by_client[d.client as usize].push(d);
    }
    for (client, deliveries) in by_client.into_iter().enumerate() {
        if deliveries.is_empty() {
            continue;
        }
        let id = run.client_name(client as u32);
        clients
            .entry(id.to_string())
            .or_insert_with(|| new_client(id))
            .deliveries
            .extend(deliveries);
    }
    for (conn, id) in &conn_client {
        clients
            .entry(id.clone())
            .or_insert_with(|| new_client(id))
            .conns
            .insert(*conn);
    }
    // Only subscribers are analysed: in a capture, publishers' connections show up too.
    clients.retain(|id, c| {
        !c.events.is_empty()
            || !c.deliveries.is_empty()
            || wire_events.get(id).is_some_and(|w| {
                w.iter()
                    .any(|e| matches!(e.kind, EventKind::SubscribeSent(_)))
            })
    });
    // The first subscriber's CONNECT carries the keepalive the bands are drawn for.
    let keepalive_s = run.proxy.iter().find_map(|e| match &e.kind {
        EventKind::MqttPacket(p) if p.packet_type == "CONNECT" && p.dir == Direction::Up => p
            .client_id
            .as_ref()
            .filter(|id| clients.contains_key(id.as_str()))
            .and(p.keepalive_s),
        _ => None,
    });
    // A client that never reported a CONNACK of its own is measured from the wire.
    for c in clients.values_mut() {
        let reports = c
            .events
            .iter()
            .any(|e| matches!(e.kind, EventKind::Connack(_)));
        if !reports {
            if let Some(seen) = wire_events.get(&c.id) {
                c.events.extend(seen.iter());
                c.events.sort_by_key(|e| e.ts_us);
                c.from_wire = true;
            }
        }
    }
    // The wire's view of every client, for comparison with what the client said.
    let wire_clients: BTreeMap<&str, Client> = clients
        .values()
        .map(|c| {
            let mut events: Vec<&Event> = wire_events
                .get(&c.id)
                .map(|v| v.iter().collect())
                .unwrap_or_default();
            // Where the run told the client to stop still bounds the analysis.
            events.extend(c.events.iter().copied().filter(|e| {
                matches!(&e.kind, EventKind::Disconnected(d) if d.cause == DisconnectCause::Requested)
            }));
            events.sort_by_key(|e| e.ts_us);
            let view = Client {
                id: c.id.clone(),
                from_wire: true,
                events,
                // Only the wire's timings are read from this view, never its deliveries.
                deliveries: Vec::new(),
                conns: c.conns.clone(),
            };
            (c.id.as_str(), view)
        })
        .collect();

    let client_library = meta.subscriber_client.clone();
    let broker = meta.broker.clone();
    let windows = windows(run, run_end);
    let index = ConnIndex::build(&run.proxy);
    let ctx = RunContext {
        run,
        index: &index,
        keepalive_s,
        // The descriptions are read into families once; the bands match on families.
        client_library: linecut_model::ClientFamily::of(&client_library),
        broker: linecut_model::BrokerFamily::of(&broker),
    };
    let mut window_reports = Vec::new();
    for (i, w) in windows.iter().enumerate() {
        let horizon = windows.get(i + 1).map_or(run_end, |n| n.start);
        let subscribers: Vec<WindowMetrics> = clients
            .values()
            .map(|c| {
                let mut m = window_metrics(&ctx, c, w, horizon);
                let seen = window_metrics(&ctx, &wire_clients[c.id.as_str()], w, horizon);
                m.reported_by_client = !c.from_wire;
                m.wire_detect_s = seen.client_detect_s;
                m.wire_reconnect_s = seen.reconnect_s;
                m.wire_resubscribe_s = seen.resubscribe_s;
                m
            })
            .collect();
        let distribution = Metric::timings()
            .filter_map(|metric| {
                let values: Vec<Option<f64>> =
                    subscribers.iter().map(|m| timing(m, metric)).collect();
                Distribution::of(&values).map(|d| (metric.name().to_string(), d))
            })
            .collect();
        window_reports.push(WindowReport {
            fault: w.fault,
            kind: w.kind.clone(),
            spec: w.spec.clone(),
            outage_start_us: w.start,
            outage_end_us: w.end,
            subscribers,
            distribution,
        });
    }
    let pings = wire::Pings::of(&run.proxy);
    let data: Vec<DataMetrics> = clients
        .values()
        .map(|c| data_metrics(run, c, &windows, &pings))
        .collect();
    let timeline = timeline(run, &clients, &windows, start, keepalive_s);
    let mut report = Report {
        schema: REPORT_SCHEMA.into(),
        schema_version: REPORT_SCHEMA_VERSION,
        scenario: meta.scenario.clone(),
        broker,
        client_library,
        complete: meta.is_complete(),
        incomplete_reason: meta.incomplete_reason().map(str::to_string),
        experiment_start_us: start,
        keepalive_s,
        windows: window_reports,
        data,
        expectations: Vec::new(),
        timeline,
        warnings: run
            .warnings
            .iter()
            .cloned()
            .chain(client_warnings(run))
            .collect(),
        capture: None,
        capture_check: None,
    };
    for (metric, condition) in &meta.expectations {
        report.expectations.push(check(&report, metric, condition));
    }
    report
}

/// The first time, at or after `from` and before `until`, that `pick` matches.
fn first<'a>(
    events: &[&'a Event],
    from: i64,
    until: i64,
    pick: impl Fn(&Event) -> bool,
) -> Option<&'a Event> {
    events
        .iter()
        .copied()
        .find(|e| e.ts_us >= from && e.ts_us < until && pick(e))
}

fn data_metrics(run: &Run, c: &Client, windows: &[Window], pings: &wire::Pings) -> DataMetrics {
    let filters: Vec<String> = c
        .events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::SubscribeSent(s) => Some(
                s.topics
                    .iter()
                    .map(|t| t.filter.clone())
                    .collect::<Vec<_>>(),
            ),
            _ => None,
        })
        .flatten()
        .collect();
    let subscribed_at = c
        .events
        .iter()
        .find(|e| matches!(e.kind, EventKind::Suback(_)))
        .map(|e| e.ts_us);
    // Where the subscriber stopped: its orderly disconnect, or (a run cut short) the last thing
    // it did, deliveries included.
    let requested_stop = c.events.iter().rev().find(
        |e| matches!(&e.kind, EventKind::Disconnected(d) if d.cause == DisconnectCause::Requested),
    );
    let last_seen = c
        .events
        .last()
        .map(|e| e.ts_us)
        .max(c.deliveries.last().map(|d| d.ts_us));
    let stopped_at = requested_stop
        .map(|e| e.ts_us)
        .or(last_seen)
        .unwrap_or(i64::MAX);
    // Everything published on this subscriber's topics while it was subscribed…
    let on_topics: Vec<bool> = run
        .topics
        .iter()
        .map(|t| filters.iter().any(|f| topic_matches(f, t)))
        .collect();
    let published: Vec<&Publish> = run
        .publishes
        .iter()
        .filter(|p| {
            on_topics[p.topic as usize]
                && subscribed_at.is_some_and(|s| p.ts_us >= s)
                && p.ts_us < stopped_at
        })
        .collect();
    // …of which the last second's may still have been in flight when it stopped: not "lost".
    // Sorted vectors rather than maps: a busy run has millions of (topic, seq) pairs.
    let mut expected: Vec<(u32, u64)> = published
        .iter()
        .filter(|p| p.ts_us < stopped_at - STOP_GRACE_US)
        .map(|p| (p.topic, p.seq))
        .collect();
    expected.sort_unstable();
    expected.dedup();
    let mut delivered: Vec<(u32, u64)> = c
        .deliveries
        .iter()
        .filter_map(|d| d.seq.map(|seq| (d.topic, seq)))
        .collect();
    delivered.sort_unstable();
    let delivered_count = delivered.len() as u64;
    let before_dedup = delivered.len();
    delivered.dedup();
    let duplicates = (before_dedup - delivered.len()) as u64;
    let lost = expected
        .iter()
        .filter(|k| delivered.binary_search(k).is_err())
        .count() as u64;
    let (mut out_of_order, mut foreign, mut late, mut late_max) = (0u64, 0u64, 0u64, None::<i64>);
    let mut highest: BTreeMap<u32, u64> = BTreeMap::new();
    let (mut receive_times, mut publish_times) = (Vec::new(), Vec::new());
    for d in &c.deliveries {
        let (Some(seq), Some(pub_ts)) = (d.seq, d.pub_ts_us) else {
            foreign += 1;
            continue;
        };
        let top = highest.entry(d.topic).or_insert(0);
        if seq < *top {
            out_of_order += 1;
        }
        *top = (*top).max(seq);
        receive_times.push(d.ts_us);
        publish_times.push(pub_ts);
        if windows
            .iter()
            .any(|w| pub_ts >= w.start && pub_ts < w.end && d.ts_us >= w.end)
        {
            late += 1;
            late_max = Some(late_max.map_or(d.ts_us - pub_ts, |x: i64| x.max(d.ts_us - pub_ts)));
        }
    }
    publish_times.sort_unstable();
    let gap = |times: &[i64]| times.windows(2).map(|p| p[1] - p[0]).max().map(secs);
    let (pings, ping_interval) = pings.stats(&c.conns);
    DataMetrics {
        client: c.id.clone(),
        published: published.len() as u64,
        delivered: delivered_count,
        lost,
        duplicates,
        out_of_order,
        late,
        late_max_delay_s: late_max.map(secs),
        data_gap_receive_s: gap(&receive_times),
        data_gap_publish_s: gap(&publish_times),
        reconnects: c
            .events
            .iter()
            .filter(|e| matches!(&e.kind, EventKind::Connack(a) if a.code == 0))
            .count()
            .saturating_sub(1) as u64,
        foreign: foreign + client_foreign(run, &c.id),
        pings,
        ping_interval_s: ping_interval.map(secs),
    }
}

/// Foreign deliveries a capture counted without keeping rows for them.
fn client_foreign(run: &Run, client: &str) -> u64 {
    // Only captures count foreign deliveries this way; for a run the search is skipped, since
    // it is by name over every client, once per client.
    if run.foreign_counts.is_empty() {
        return 0;
    }
    run.clients
        .iter()
        .position(|c| c == client)
        .and_then(|i| run.foreign_counts.get(&(i as u32)))
        .copied()
        .unwrap_or(0)
}

fn timeline(
    run: &Run,
    clients: &BTreeMap<String, Client>,
    windows: &[Window],
    start: i64,
    keepalive_s: Option<u16>,
) -> Vec<TimelineEntry> {
    let k_us = i64::from(keepalive_s.unwrap_or(60)) * 1_000_000;
    let near_outage = |ts: i64| {
        windows
            .iter()
            .any(|w| ts >= w.start - k_us && ts <= w.end + k_us)
    };
    let mut out = Vec::new();
    let mut push = |ts: i64, client: Option<&str>, what: String| {
        out.push(TimelineEntry {
            t_s: secs(ts - start),
            ts_us: ts,
            client: client.map(str::to_string),
            what,
        });
    };
    for w in windows {
        push(
            w.start,
            None,
            format!("{} begins (fault {}: {})", w.kind, w.fault, w.spec),
        );
        if w.end != w.start {
            push(w.end, None, format!("{} ends (fault {})", w.kind, w.fault));
        }
    }
    for c in clients.values() {
        let id = Some(c.id.as_str());
        // Deliveries: only the first one after a hole (or after an outage) makes the timeline.
        let mut last: Option<i64> = None;
        for d in &c.deliveries {
            let after_gap = last.is_some_and(|l| d.ts_us - l > 2 * k_us.min(5_000_000))
                || windows
                    .iter()
                    .any(|w| last.is_none_or(|l| l < w.end) && d.ts_us >= w.end);
            if after_gap {
                push(
                    d.ts_us,
                    id,
                    format!(
                        "receives seq {} published at t+{:.3} s",
                        d.seq.unwrap_or(0),
                        secs(d.pub_ts_us.unwrap_or(d.ts_us) - start)
                    ),
                );
            }
            last = Some(d.ts_us);
        }
        // Facts read off the wire say so, so nobody takes them for the client's own words.
        let seen = if c.from_wire { " (on the wire)" } else { "" };
        for e in &c.events {
            let wire = e.source == linecut_events::Source::Proxy;
            let seen = if wire { seen } else { "" };
            match &e.kind {
                EventKind::ConnectAttempt(a) if wire && a.attempt > 1 => {
                    push(e.ts_us, id, format!("CONNECT {}{seen}", a.attempt))
                }
                EventKind::ConnectAttempt(a) if a.attempt > 1 => push(
                    e.ts_us,
                    id,
                    format!(
                        "connect attempt {} (after {} ms back-off)",
                        a.attempt, a.delay_ms
                    ),
                ),
                EventKind::Connack(a) => push(
                    e.ts_us,
                    id,
                    format!(
                        "CONNACK code {} session_present={}{seen}",
                        a.code, a.session_present
                    ),
                ),
                EventKind::SubscribeSent(_) if wire => {
                    push(e.ts_us, id, format!("SUBSCRIBE sent{seen}"))
                }
                EventKind::SubscribeSent(s) => push(
                    e.ts_us,
                    id,
                    format!("SUBSCRIBE sent ({:?})", s.reason).to_lowercase(),
                ),
                EventKind::Suback(s) => {
                    push(e.ts_us, id, format!("SUBACK codes {:?}{seen}", s.codes))
                }
                EventKind::PingSent(_) if near_outage(e.ts_us) => {
                    push(e.ts_us, id, format!("sends PINGREQ{seen}"))
                }
                EventKind::PingReceived(_) if near_outage(e.ts_us) => {
                    push(e.ts_us, id, format!("gets PINGRESP{seen}"))
                }
                EventKind::ClientExited(x) => push(
                    e.ts_us,
                    id,
                    format!(
                        "client process {} ({})",
                        if x.expected {
                            "stopped"
                        } else {
                            "ended on its own"
                        },
                        exit_text(x)
                    ),
                ),
                EventKind::Disconnected(d)
                    if d.cause == DisconnectCause::Requested && d.error.starts_with("linecut ") =>
                {
                    push(
                        e.ts_us,
                        id,
                        "linecut asks the client to stop: the run is over".into(),
                    )
                }
                EventKind::Disconnected(d) if d.cause == DisconnectCause::Requested => {
                    push(e.ts_us, id, "disconnects: the run is over".into())
                }
                EventKind::Disconnected(d) => push(
                    e.ts_us,
                    id,
                    format!(
                        "gives up the connection ({}): {}",
                        cause_name(d.cause),
                        d.error
                    ),
                ),
                _ => {}
            }
        }
    }
    for e in &run.proxy {
        match &e.kind {
            EventKind::LegClosed(l) => {
                let who = match (l.leg, l.by) {
                    (Leg::Client, ClosedBy::Peer) => "the client closed its connection",
                    (Leg::Upstream, ClosedBy::Peer) => "the broker closed its connection",
                    (Leg::Client, ClosedBy::Proxy) => "the proxy closed the client's connection",
                    (Leg::Upstream, ClosedBy::Proxy) => "the proxy closed the broker's connection",
                };
                push(
                    e.ts_us,
                    None,
                    format!(
                        "conn {}: {who} ({:?}){}",
                        l.conn,
                        l.how,
                        l.reason
                            .as_ref()
                            .map(|r| format!(": {r}"))
                            .unwrap_or_default()
                    )
                    .replace("(Fin)", "(FIN)")
                    .replace("(Rst)", "(RST)")
                    .replace("(Error)", "(error)"),
                );
            }
            EventKind::ConnOpened(o) => push(
                e.ts_us,
                None,
                format!("conn {}: opened from {}", o.conn, o.client_addr),
            ),
            _ => {}
        }
    }
    for entry in &run.broker_log {
        // mosquitto stamps whole seconds: the event happened within the second after this.
        push(
            entry.ts_us,
            None,
            format!("broker log (1 s resolution): {}", entry.text),
        );
    }
    out.sort_by(|a, b| a.ts_us.cmp(&b.ts_us).then_with(|| a.what.cmp(&b.what)));
    out
}

fn exit_text(x: &linecut_events::ClientExited) -> String {
    match (x.code, x.signal) {
        (Some(c), _) => format!("exit status {c}"),
        (None, Some(s)) => format!("signal {s}"),
        _ => "status unknown".into(),
    }
}

/// Warnings about clients under test: early exits, and output that was not understood.
fn client_warnings(run: &Run) -> Vec<String> {
    let mut out = Vec::new();
    for e in &run.subscriber {
        if let EventKind::ClientExited(x) = &e.kind {
            if !x.expected {
                out.push(format!(
                    "client {} ({}) ended before the run did ({})",
                    x.client,
                    x.kind,
                    exit_text(x)
                ));
            }
            if x.unmatched_lines > 0 {
                out.push(format!(
                    "client {}: {} of {} stdout lines were not understood (first: {:?})",
                    x.client,
                    x.unmatched_lines,
                    x.lines,
                    x.first_unmatched.as_deref().unwrap_or("")
                ));
            }
        }
    }
    out
}

fn check(report: &Report, metric: &str, condition_text: &str) -> ExpectationResult {
    let mut result = ExpectationResult {
        metric: metric.to_string(),
        condition: condition_text.to_string(),
        values: BTreeMap::new(),
        ok: false,
        problem: None,
    };
    // Scenarios are checked when loaded; these errors reach here only from a meta.json that
    // was written by hand or by an older linecut.
    let parsed = MetricName::parse(metric)
        .and_then(|name| Condition::parse(condition_text).map(|condition| (name, condition)));
    let (name, condition) = match parsed {
        Ok(p) => p,
        Err(e) => {
            result.problem = Some(e);
            return result;
        }
    };
    // `faultN.metric` names the N-th fault window; a bare metric, the first.
    let window_index = match name.window {
        Some(n) if n > report.windows.len() => {
            result.problem = Some(format!(
                "`fault{n}` names no fault window; this run has {} (fault1..fault{})",
                report.windows.len(),
                report.windows.len()
            ));
            return result;
        }
        Some(n) => n - 1,
        None => 0,
    };
    let window = report.windows.get(window_index);
    // `metric.p99` (or min, p50, p90, max) checks the fleet's distribution of a timing.
    if let Some(stat) = name.stat {
        let value = window
            .and_then(|w| w.distribution.get(name.metric.name()))
            .map(|d| d.get(stat));
        result.values.insert("fleet".into(), value);
        result.ok = condition.holds(value);
        return result;
    }
    for d in &report.data {
        let m = window.and_then(|w| w.subscribers.iter().find(|m| m.client == d.client));
        result
            .values
            .insert(d.client.clone(), metric_value(name.metric, m, Some(d)));
    }
    result.ok = !result.values.is_empty() && result.values.values().all(|v| condition.holds(*v));
    if result.values.is_empty() {
        result.problem = Some("no subscriber in the run".into());
    }
    result
}

/// A metric's value for one subscriber: `window` holds its window metrics (if the run has that
/// window), `data` its whole-run metrics. One arm per metric of the registry.
pub fn metric_value(
    metric: Metric,
    window: Option<&WindowMetrics>,
    data: Option<&DataMetrics>,
) -> Option<f64> {
    let count = |n: fn(&DataMetrics) -> u64| data.map(|d| n(d) as f64);
    match metric {
        Metric::ClientDetectS
        | Metric::BrokerDetectS
        | Metric::ReconnectS
        | Metric::ResubscribeS
        | Metric::FirstFreshS => window.and_then(|w| timing(w, metric)),
        Metric::ConnectAttempts => window.map(|w| f64::from(w.connect_attempts)),
        Metric::WireDetectS => window.and_then(|w| w.wire_detect_s),
        Metric::WireReconnectS => window.and_then(|w| w.wire_reconnect_s),
        Metric::WireResubscribeS => window.and_then(|w| w.wire_resubscribe_s),
        Metric::Published => count(|d| d.published),
        Metric::Delivered => count(|d| d.delivered),
        Metric::Lost => count(|d| d.lost),
        Metric::Duplicates => count(|d| d.duplicates),
        Metric::OutOfOrder => count(|d| d.out_of_order),
        Metric::Late => count(|d| d.late),
        Metric::LateMaxDelayS => data.and_then(|d| d.late_max_delay_s),
        Metric::DataGapReceiveS => data.and_then(|d| d.data_gap_receive_s),
        Metric::DataGapPublishS => data.and_then(|d| d.data_gap_publish_s),
        Metric::Reconnects => count(|d| d.reconnects),
        Metric::Foreign => count(|d| d.foreign),
        Metric::Pings => count(|d| d.pings),
        Metric::PingIntervalS => data.and_then(|d| d.ping_interval_s),
    }
}

#[cfg(test)]
mod tests;
