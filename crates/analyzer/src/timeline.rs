//! The timeline: the moments a reader needs to follow a run (faults, gaps in the data, the
//! clients' and the wire's events near an outage, the broker's verdicts and reason codes, the
//! wills the watcher heard), in time order, and the warnings about clients under test.

use crate::clients::{cause_name, secs, Client};
use crate::report::TimelineEntry;
use crate::window::Window;
use crate::Run;
use linecut_events::{ClosedBy, Direction, DisconnectCause, EventKind, Leg, MqttPacket};
use linecut_mqtt::{reason_name, PacketType, Version};
use std::collections::{BTreeMap, HashMap};

pub(crate) fn timeline(
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
        // A library may report one disconnect twice (paho 2.1 on a keepalive timeout): a
        // disconnect with no attempt since the previous one, at the same moment, is the same.
        let mut last_disconnect: Option<i64> = None;
        for e in &c.events {
            match &e.kind {
                EventKind::ConnectAttempt(_) | EventKind::Connack(_) => last_disconnect = None,
                EventKind::Disconnected(_) => {
                    if last_disconnect
                        .is_some_and(|t| e.ts_us - t <= crate::clients::SAME_MOMENT_US)
                    {
                        continue;
                    }
                    last_disconnect = Some(e.ts_us);
                }
                _ => {}
            }
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
    // Reason codes are read with the version of the connection they came on.
    let mut versions: HashMap<u64, Version> = HashMap::new();
    for e in &run.proxy {
        match &e.kind {
            EventKind::MqttPacket(p) => {
                if let Some(v) = p.protocol_version.and_then(Version::from_level) {
                    versions.insert(p.conn, v);
                }
                if let Some(what) = coded(p, versions.get(&p.conn).copied()) {
                    push(e.ts_us, None, format!("conn {}: {what}", p.conn));
                }
            }
            EventKind::LegClosed(l) => {
                let who = match (l.leg, l.by) {
                    // A capture has no proxy: what closed a leg on the path is the network.
                    (Leg::Client, ClosedBy::Proxy)
                        if e.source == linecut_events::Source::Capture =>
                    {
                        "the network closed the client's connection"
                    }
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
    for e in run.watcher.iter().flatten() {
        if let EventKind::WillReceived(w) = &e.kind {
            push(
                e.ts_us,
                w.client.as_deref(),
                match &w.client {
                    Some(_) => format!("the will watcher receives its will on {}", w.topic),
                    None => format!(
                        "the will watcher receives a message on {} that is no subscriber's will",
                        w.topic
                    ),
                },
            );
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

/// A packet whose code is news: a DISCONNECT with a reason (the broker's, or the client's
/// other than a normal one), or a CONNACK that refuses. Named as the specification names it.
fn coded(p: &MqttPacket, version: Option<Version>) -> Option<String> {
    let kind = p.kind()?;
    let (code, from_broker) = match kind {
        PacketType::Disconnect => (p.reason_code?, p.dir == Direction::Down),
        PacketType::ConnAck => (p.return_code.filter(|c| *c != 0)?, true),
        _ => return None,
    };
    if kind == PacketType::Disconnect && code == 0 && !from_broker {
        return None;
    }
    let name = version
        .and_then(|v| reason_name(v, kind, code))
        .map(|n| format!(" ({n})"))
        .unwrap_or_default();
    Some(format!(
        "the {} sends {} 0x{code:02X}{name}",
        if from_broker { "broker" } else { "client" },
        kind.name()
    ))
}

pub(crate) fn exit_text(x: &linecut_events::ClientExited) -> String {
    match (x.code, x.signal) {
        (Some(c), _) => format!("exit status {c}"),
        (None, Some(s)) => format!("signal {s}"),
        _ => "status unknown".into(),
    }
}

/// Warnings about clients under test: early exits, and output that was not understood.
pub(crate) fn client_warnings(run: &Run) -> Vec<String> {
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
