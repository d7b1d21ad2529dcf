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
mod clients;
mod data;
mod delivery;
mod expect;
pub mod frames;
mod index;
mod load;
mod markdown;
mod middlebox;
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
pub use delivery::Kept;
use expect::check;
pub use expect::metric_value;
use index::ConnIndex;
pub use linecut_model::{topic_matches, Condition};
use linecut_mqtt::PacketType;
pub use load::{check_fast_message_path, load, Delivery, Publish, Run, Wire};
pub use report::{
    Band, DataMetrics, DeliveryVerdict, Distribution, ExpectationResult, Missing, Promise, Report,
    Retransmitted, SessionFacts, StaleData, TimelineEntry, Told, UnexpectedDisconnect, Verdict,
    WindowMetrics, WindowReport, WireCost, WireDifference,
};
pub use retain::{Folded, DETAIL};
pub use story::{DetectHow, Story};
use timeline::{client_warnings, timeline};
use window::{windows, RunContext};

use clients::Client;
use linecut_events::run_dir::file;
use linecut_events::{Direction, EventKind, RunLayout};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Name and version of `report.json`'s schema; bumped when a field changes meaning.
pub const REPORT_SCHEMA: &str = "linecut-report";
pub const REPORT_SCHEMA_VERSION: u32 = 1;
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
    let clients = clients::group(run, &conn_client, &wire_events);
    let asked = clients::keepalive(run, &clients);
    let granted = clients::granted_keepalive(run, &conn_client, &clients);
    // The broker holds the client to what it granted; the client runs on it only if its
    // library adopts the Server Keep Alive.
    let adopts = bands::adopts_server_keepalive(meta.subscriber_family());
    let keepalive_s = granted.filter(|_| adopts).or(asked);
    let wire_clients = clients::wire_views(&clients, &wire_events);

    let client_library = meta.subscriber_client.clone();
    let broker = meta.broker.clone();
    // A weak link (latency, burst loss … on linecut's wire) is the line's condition, not an
    // outage: it draws no window, and a disconnect during it is one no outage explains (a
    // false disconnect, said so). The timeline still shows when it began and ended.
    let all_windows = windows(run, run_end);
    let is_weak = |w: &window::Window| w.link.is_some_and(|k| k.is_impairment());
    let weak: Vec<&window::Window> = all_windows.iter().filter(|w| is_weak(w)).collect();
    let weak_at_stop = weak.iter().any(|w| w.end >= run_end);
    let windows: Vec<window::Window> = all_windows
        .iter()
        .filter(|w| !is_weak(w))
        .cloned()
        .collect();
    let index = ConnIndex::build(&run.proxy);
    let session = session_facts(run, &clients);
    let wills = run.watcher.as_ref().map(|events| {
        let mut wills: std::collections::HashMap<String, Vec<i64>> = Default::default();
        for e in events {
            if let EventKind::WillReceived(w) = &e.kind {
                if let Some(client) = &w.client {
                    wills.entry(client.clone()).or_default().push(e.ts_us);
                }
            }
        }
        wills
    });
    let ctx = RunContext {
        run,
        index: &index,
        keepalive_s,
        broker_keepalive_s: granted.or(asked),
        // The descriptions are read into families once; the bands match on families.
        client_library: meta.subscriber_family(),
        broker: linecut_model::BrokerFamily::of(&broker),
        acks_hidden: session.subscribe_qos.is_some_and(|q| q > 0),
        wire: run.wire,
        wills: wills.as_ref(),
        session: &session,
        broker_reasons: &window::broker_reasons(&run.proxy),
        // meta.json writes it as the socket option's milliseconds (`2000ms`).
        user_timeout_s: meta
            .network
            .as_ref()
            .and_then(|n| n.tcp.get("tcp_user_timeout"))
            .and_then(|t| linecut_model::parse_duration(t).ok())
            .map(|d| d.as_secs_f64()),
    };
    let (window_reports, settle) =
        window::reports(&ctx, &clients, &wire_clients, &windows, run_end);
    let window_settle: Vec<(&window::Window, i64)> = windows.iter().zip(settle).collect();
    let unexpected_disconnects: Vec<UnexpectedDisconnect> = clients
        .values()
        .flat_map(|c| unexpected::unexpected_disconnects(run, &index, c, &window_settle, start))
        .map(|mut u| {
            u.weak_link = weak
                .iter()
                .find(|w| w.start <= u.ts_us && u.ts_us <= w.end)
                .map(|w| w.fault);
            u
        })
        .collect();
    let pings = wire::Pings::of(&run.proxy);
    // When the broker was seen dropping each subscriber, window by window, and the DUP-flagged
    // deliveries per connection: gathered once for every subscriber's verdict.
    let mut drops: std::collections::HashMap<&str, Vec<i64>> = Default::default();
    for w in &window_reports {
        for m in &w.subscribers {
            if let Some(s) = m.broker_detect_s {
                drops
                    .entry(m.client.as_str())
                    .or_default()
                    .push(w.outage_start_us + (s * 1e6) as i64);
            }
        }
    }
    let dups = wire::DupFlags::of(&run.proxy);
    let session_asked = delivery::Asked {
        clean: session.clean_session,
        session_expiry_s: session.session_expiry_s,
        v5: session.protocol_version == Some(5),
    };
    let data: Vec<DataMetrics> = clients
        .values()
        .map(|c| {
            let (mut d, ledger) = data_metrics(run, c, &windows, &pings, weak_at_stop);
            d.delivery = delivery::verdict(
                run,
                c,
                &windows,
                drops.get(c.id.as_str()).map_or(&[][..], Vec::as_slice),
                &ledger,
                session.subscribe_qos,
                &session_asked,
                dups.of_conns(&c.conns),
                start,
            );
            d
        })
        .collect();
    let timeline = timeline(run, &clients, &all_windows, start, keepalive_s);
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
        keepalive_granted_s: granted,
        keepalive_asked_s: asked.filter(|a| granted.is_some_and(|g| g != *a)),
        session: session.clone(),
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
                facts.protocol_version = p.protocol_version;
                facts.will = p.will.filter(|left| *left);
                facts.session_expiry_s = p.session_expiry_s;
                facts.will_delay_s = p.will_delay_s;
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

#[cfg(test)]
mod tests;
