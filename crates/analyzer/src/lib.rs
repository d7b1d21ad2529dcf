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
//! | `stale_data_s` | outage end to the broker's stale data or FIN reaching a connection the client had left |
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
//!
//! Modules, one per question: `load` (reading a run directory), `capture` (reading a packet
//! capture as a run), `wire` (the wire's view of each client), `index` (what the proxy log says
//! about each connection, built once), `window` (detection and recovery per fault window),
//! `story` (what the events prove), `bands` (the rules detections are judged by), `data`
//! (whole-run data metrics), `timeline`, `expect` (expectations and the metric values),
//! `report` (the types of `report.json`), `markdown` and `svg` (rendering). This file only
//! orchestrates: it groups events by client and calls the others.

pub mod bands;
mod capture;
mod data;
mod expect;
pub mod frames;
mod index;
mod load;
mod markdown;
mod report;
mod retain;
mod story;
mod svg;
mod timeline;
mod unexpected;
mod window;
mod wire;

pub use capture::{load_capture, CaptureCheck, CaptureCheckRow, CaptureInfo};
use data::data_metrics;
pub use expect::metric_value;
use expect::{check, timing};
use index::ConnIndex;
use linecut_model::Metric;
pub use linecut_model::{topic_matches, Condition};
use linecut_mqtt::PacketType;
pub use load::{check_fast_message_path, load, Delivery, Publish, Run, Wire};
pub use report::{
    Band, DataMetrics, Distribution, ExpectationResult, Report, Retransmitted, SessionFacts,
    StaleData, TimelineEntry, Told, UnexpectedDisconnect, Verdict, WindowMetrics, WindowReport,
    WireDifference,
};
pub use retain::{Folded, DETAIL};
pub use story::{DetectHow, Story};
use timeline::{client_warnings, timeline};
use window::{window_metrics, windows, RunContext};

use linecut_events::run_dir::file;
use linecut_events::{Direction, DisconnectCause, Event, EventKind, RunLayout};
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

/// Analyses a run directory and writes `report.json`, `report.md` and `timeline.svg` into it.
pub fn analyze_dir(dir: &Path) -> Result<Report, AnalyzeError> {
    let run = load(dir)?;
    let mut report = analyze(&run);
    // A capture taken during the run (the proxy's, or one put there) is checked against the
    // events: the two views of the same wire must agree.
    let pcap = RunLayout::new(dir).capture();
    // A proxy run's capture is a second view of what the proxy logged; a namespace run's
    // capture is its only view of the wire, already read in.
    if pcap.is_file() && run.meta.network.is_none() {
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
            // Looked up by reference first: a fleet's events would otherwise allocate the id
            // once per event.
            match clients.get_mut(id) {
                Some(c) => c.events.push(e),
                None => {
                    let mut c = new_client(id);
                    c.events.push(e);
                    clients.insert(id.to_string(), c);
                }
            }
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
        EventKind::MqttPacket(p)
            if p.kind() == Some(PacketType::Connect) && p.dir == Direction::Up =>
        {
            p.client_id
                .as_ref()
                .filter(|id| clients.contains_key(id.as_str()))
                .and(p.keepalive_s)
        }
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
    let session = session_facts(run, &clients);
    let ctx = RunContext {
        run,
        index: &index,
        keepalive_s,
        // The descriptions are read into families once; the bands match on families.
        client_library: meta.subscriber_family(),
        broker: linecut_model::BrokerFamily::of(&broker),
        acks_hidden: session.subscribe_qos.is_some_and(|q| q > 0),
        wire_is_capture: run.wire == Wire::Capture,
        // meta.json writes it as the socket option's milliseconds (`2000ms`).
        user_timeout_s: meta
            .network
            .as_ref()
            .and_then(|n| n.tcp.get("tcp_user_timeout"))
            .and_then(|t| linecut_model::parse_duration(t).ok())
            .map(|d| d.as_secs_f64()),
    };
    let mut window_reports = Vec::new();
    let mut settle = Vec::new();
    // A fault played on some subscribers (`target = "client=PATTERN"`) is measured on those
    // only: the others had no outage to notice, ride through or be judged against.
    let targets: Vec<Option<linecut_model::glob::Glob>> = windows
        .iter()
        .map(|w| linecut_model::spec_target(&w.spec))
        .collect();
    let plays_on = |i: usize, client: &str| targets[i].as_ref().is_none_or(|g| g.matches(client));
    for (i, w) in windows.iter().enumerate() {
        let subscribers: Vec<WindowMetrics> = clients
            .values()
            .filter(|c| plays_on(i, &c.id))
            .map(|c| {
                // Faults overlap per subscriber (the review's D5: a reject inside a cut was
                // taken for the cut's end, and the cut's detection credited to the reject).
                // A fault that began while an earlier one on this subscriber was on is inside
                // it: the earlier window measures both.
                let inside = (0..i)
                    .find(|&a| {
                        plays_on(a, &c.id)
                            && windows[a].start <= w.start
                            && w.start < windows[a].end
                    })
                    .map(|a| windows[a].fault);
                if let Some(fault) = inside {
                    return WindowMetrics {
                        client: c.id.clone(),
                        inside_fault: Some(fault),
                        ..WindowMetrics::default()
                    };
                }
                let later = || (i + 1..windows.len()).filter(|&n| plays_on(n, &c.id));
                // This window's analysis runs to the next fault on this subscriber that began
                // after it ended; exclusive, so the run's last event belongs to the last one.
                let horizon = later()
                    .map(|n| windows[n].start)
                    .find(|&start| start >= w.end)
                    .unwrap_or(run_end + 1);
                let overlapped_by = later()
                    .filter(|&n| windows[n].start < w.end)
                    .map(|n| windows[n].fault)
                    .collect();
                // Measured from when the fault reached this subscriber, where the run says.
                let own = w.for_client(&c.id);
                let lived = own.as_ref().unwrap_or(w);
                let mut m = window_metrics(&ctx, c, lived, horizon);
                m.overlapped_by = overlapped_by;
                let seen = window_metrics(&ctx, &wire_clients[c.id.as_str()], lived, horizon);
                m.reported_by_client = !c.from_wire;
                m.wire_detect_s = seen.client_detect_s;
                m.wire_reconnect_s = seen.reconnect_s;
                m.wire_resubscribe_s = seen.resubscribe_s;
                // From the unrounded times: two values rounded to the millisecond would turn
                // a 0.16 ms difference into 1 ms.
                let diff = |a: Option<i64>, b: Option<i64>| {
                    a.zip(b)
                        .map(|(a, b)| ((a - b) as f64 / 10.0).round() / 100.0)
                };
                m.wire_detect_how = seen.client_detect_how;
                // A new connection is not a give-up: when the client's close never crossed
                // (a FIN waits behind unacknowledged data on a cut link), the wire shows no
                // give-up, and a difference against its next SYN would be meaningless.
                let wire_gave_up = seen.client_detect_how != Some(DetectHow::NewConnection)
                    || !ctx.wire_is_capture;
                m.client_minus_wire = WireDifference {
                    detect_ms: diff(m.raw_us[0], seen.raw_us[0].filter(|_| wire_gave_up)),
                    reconnect_ms: diff(m.raw_us[1], seen.raw_us[1]),
                    resubscribe_ms: diff(m.raw_us[2], seen.raw_us[2]),
                };
                m
            })
            .collect();
        // The window's settling time: the latest moment any band allows a detection.
        let latest_s = subscribers
            .iter()
            .flat_map(|m| [&m.client_detect_band, &m.broker_detect_band])
            .flatten()
            .map(|b| b.high_s + b.tolerance_s)
            .fold(0.0, f64::max);
        settle.push(w.start + (latest_s * 1e6) as i64);
        let distribution = Metric::timings()
            .filter_map(|metric| {
                let values: Vec<Option<f64>> = subscribers
                    .iter()
                    .filter(|m| m.inside_fault.is_none())
                    .map(|m| timing(m, metric))
                    .collect();
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
    let window_settle: Vec<(&window::Window, i64)> = windows.iter().zip(settle).collect();
    let unexpected_disconnects: Vec<UnexpectedDisconnect> = clients
        .values()
        .flat_map(|c| unexpected::unexpected_disconnects(run, &index, c, &window_settle, start))
        .collect();
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
        description: meta.description.clone(),
        broker,
        client_library,
        complete: meta.is_complete(),
        incomplete_reason: meta.incomplete_reason().map(str::to_string),
        experiment_start_us: start,
        keepalive_s,
        session,
        network: meta.network.clone(),
        client_rule: keepalive_s.and_then(|k| bands::client_consequence(ctx.client_library, k)),
        phase: meta.phase.clone(),
        windows: window_reports,
        unexpected_disconnects,
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

/// What the first subscriber asked for: clean session from its CONNECT, QoS from its SUBSCRIBE.
fn session_facts(run: &Run, clients: &BTreeMap<String, Client>) -> SessionFacts {
    let conn_client = wire::connection_clients(&run.proxy);
    let mut facts = SessionFacts::default();
    for e in &run.proxy {
        let EventKind::MqttPacket(p) = &e.kind else {
            continue;
        };
        if p.dir != Direction::Up
            || !conn_client
                .get(&p.conn)
                .is_some_and(|id| clients.contains_key(id))
        {
            continue;
        }
        match p.kind() {
            Some(PacketType::Connect) if facts.clean_session.is_none() => {
                facts.clean_session = p.clean_session;
            }
            Some(PacketType::Subscribe) if facts.subscribe_qos.is_none() => {
                facts.subscribe_qos = p
                    .topics
                    .as_ref()
                    .and_then(|t| t.iter().filter_map(|f| f.qos).max());
            }
            _ => {}
        }
        if facts.clean_session.is_some() && facts.subscribe_qos.is_some() {
            break;
        }
    }
    facts
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

#[cfg(test)]
mod tests;
