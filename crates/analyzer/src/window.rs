//! One fault window as one subscriber lived it: when the client and the broker gave up the
//! connection, how and when the client came back, what arrived late, and the stories those
//! events prove. Asked of the connection index, so a fleet costs what its connections cost.

use crate::bands;
use crate::index::{first_at_or_after, ConnIndex};
use crate::story::{DetectHow, Story};
use crate::{cause_name, first, secs, Client, Run, WindowMetrics, SAME_MOMENT_US};
use linecut_events::broker_log::BrokerLogKind;
use linecut_events::{DisconnectCause, EventKind};
use linecut_model::{BrokerFamily, ClientFamily};
use std::collections::{BTreeMap, BTreeSet};

/// One fault's outage window: from its start to its end (or the run's end).
pub(crate) struct Window {
    pub fault: u64,
    pub kind: String,
    pub spec: String,
    pub start: i64,
    pub end: i64,
}

pub(crate) fn windows(run: &Run, run_end: i64) -> Vec<Window> {
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

/// What every window of a run is measured against.
pub(crate) struct RunContext<'a> {
    pub run: &'a Run,
    pub index: &'a ConnIndex,
    /// The keepalive the bands are drawn for.
    pub keepalive_s: Option<u16>,
    pub client_library: ClientFamily,
    pub broker: BrokerFamily,
}

pub(crate) fn window_metrics(
    ctx: &RunContext<'_>,
    c: &Client,
    w: &Window,
    horizon: i64,
) -> WindowMetrics {
    let RunContext {
        run,
        index,
        keepalive_s,
        client_library,
        broker,
    } = *ctx;
    // The connections this client had open when the outage began.
    let opened_before: BTreeSet<u64> = c
        .conns
        .iter()
        .copied()
        .filter(|conn| {
            index
                .get(*conn)
                .and_then(|f| f.opened_us)
                .is_some_and(|t| t < w.start)
        })
        .collect();
    // The analysis of this window ends where the subscriber was told to stop: its own orderly
    // close at the end of the run is not "giving up".
    let horizon = first(
        &c.events,
        w.start,
        horizon,
        |e| matches!(&e.kind, EventKind::Disconnected(d) if d.cause == DisconnectCause::Requested),
    )
    .map_or(horizon, |stop| stop.ts_us);
    // Client side: its own disconnect, its socket closing, or a new CONNECT.
    let own = first(
        &c.events,
        w.start,
        horizon,
        |e| matches!(&e.kind, EventKind::Disconnected(d) if d.cause != DisconnectCause::Requested),
    );
    let socket = index.first_in(&opened_before, w.start, horizon, |f| {
        &f.client_closed_by_peer
    });
    let later_conns = c.conns.difference(&opened_before);
    let reconnect_packet = index.first_in(later_conns, w.start, horizon, |f| &f.connects);
    let mut seen: Vec<(i64, DetectHow)> = Vec::new();
    if let Some(e) = own {
        if let EventKind::Disconnected(d) = &e.kind {
            seen.push((e.ts_us, DetectHow::Cause(d.cause)));
        }
    }
    if let Some(ts) = socket {
        seen.push((ts, DetectHow::SocketClosed));
    }
    if let Some(ts) = reconnect_packet {
        seen.push((ts, DetectHow::NewConnection));
    }
    // Earliest first; at the same instant, by name, so the choice never depends on order.
    seen.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.name().cmp(&b.1.name())));
    // The time is the earliest sign; the reason is the client's own when it gave one at about
    // the same moment (a library closes its socket and then reports why, so the wire's view of
    // the close can come a few microseconds first).
    let own_reason = own.and_then(|e| match &e.kind {
        EventKind::Disconnected(d) => Some((e.ts_us, DetectHow::Cause(d.cause))),
        _ => None,
    });
    let detect = seen.first().copied().map(|(ts, how)| match own_reason {
        Some((own_ts, cause)) if own_ts - ts <= SAME_MOMENT_US => (ts, cause),
        _ => (ts, how),
    });

    // Broker side: it closed its leg of a connection this client had, or its log says so.
    let broker_leg = index.first_in(&opened_before, w.start, horizon, |f| {
        &f.upstream_closed_by_peer
    });
    let log_line = run.broker_log.iter().find(|l| {
        l.ts_us >= w.start - 1_000_000
            && l.ts_us < horizon
            && l.kind == BrokerLogKind::KeepaliveTimeout
            && l.client == c.id
    });
    let broker_detect = match (broker_leg, log_line) {
        (Some(ts), _) => Some((ts, DetectHow::Proxy)),
        (None, Some(l)) => Some((l.ts_us.max(w.start), DetectHow::BrokerLog)),
        (None, None) => None,
    };

    let after = detect.as_ref().map(|d| d.0);
    let connack = after.and_then(|t| {
        first(
            &c.events,
            t,
            i64::MAX,
            |e| matches!(&e.kind, EventKind::Connack(a) if a.code == 0),
        )
    });
    let next_connack = connack.and_then(|a| {
        first(&c.events, a.ts_us + 1, i64::MAX, |e| {
            matches!(&e.kind, EventKind::Connack(_))
        })
    });
    let suback = connack.and_then(|a| {
        first(&c.events, a.ts_us, i64::MAX, |e| {
            matches!(e.kind, EventKind::Suback(_))
        })
    });
    let resubscribed = connack.map(|a| {
        first(
            &c.events,
            a.ts_us,
            next_connack.map_or(i64::MAX, |n| n.ts_us),
            |e| matches!(e.kind, EventKind::SubscribeSent(_)),
        )
        .is_some()
    });
    let (mut attempts, mut failures) = (0u32, BTreeMap::new());
    if let (Some(t), Some(a)) = (after, connack) {
        for e in c
            .events
            .iter()
            .filter(|e| e.ts_us > t && e.ts_us <= a.ts_us)
        {
            match &e.kind {
                EventKind::ConnectAttempt(_) => attempts += 1,
                EventKind::Disconnected(d) => {
                    *failures.entry(cause_name(d.cause)).or_insert(0) += 1;
                }
                _ => {}
            }
        }
    }
    let fresh = c
        .deliveries
        .iter()
        .find(|d| d.ts_us >= w.end && d.pub_ts_us.is_some_and(|p| p > w.end));

    // Bands apply to silent outages long enough to be detected at all: a cut shorter than the
    // band's lower end is expected to go unnoticed, and "never" is then the right answer.
    let silent = matches!(w.kind.as_str(), "cut" | "blackhole");
    let outage_s = secs(w.end - w.start);
    // Strictly longer: at exactly the lower end the silence the endpoint sees stops short of it.
    let applies = |rule: Option<bands::Rule>| rule.filter(|r| silent && outage_s > r.low_s);
    let client_band = applies(keepalive_s.and_then(|k| bands::client(client_library, k)));
    let broker_band = applies(keepalive_s.and_then(|k| bands::broker(broker, k, client_library)));
    let detect_s = detect.as_ref().map(|d| secs(d.0 - w.start));
    let broker_s = broker_detect.as_ref().map(|d| secs(d.0 - w.start));

    let mut stories = Vec::new();
    if detect.is_some_and(|d| d.1 == DetectHow::Cause(DisconnectCause::KeepaliveTimeout)) {
        stories.push(Story::PingTimeout);
    }
    if let Some((b, _)) = &broker_detect {
        if detect.as_ref().is_none_or(|d| *b < d.0) {
            stories.push(Story::BrokerTimedOut);
        }
    }
    // Takeover: the new connection's CONNECT came while the broker still held the old one.
    if let Some(new) = reconnect_packet {
        let old_closed_by_broker_before = broker_leg.is_some_and(|b| b <= new);
        let log_takeover = run.broker_log.iter().any(|l| {
            l.ts_us >= w.start
                && l.ts_us < horizon
                && l.kind == BrokerLogKind::Takeover
                && l.client == c.id
        });
        if (!old_closed_by_broker_before
            && !opened_before.is_empty()
            && upstream_still_open(index, &opened_before, new))
            || log_takeover
        {
            stories.push(Story::SessionTakeover);
        }
    }
    if stale_delivery(index, &opened_before, w.start, horizon) {
        stories.push(Story::StaleDataAfterAbandon);
    }
    if detect.is_none() && broker_detect.is_none() {
        stories.push(Story::RodeThrough);
    }

    WindowMetrics {
        client: c.id.clone(),
        client_detect_s: detect_s,
        client_detect_how: detect.map(|d| d.1),
        client_detect_band: client_band.map(|b| b.judge(detect_s)),
        broker_detect_s: broker_s,
        broker_detect_how: broker_detect.map(|d| d.1),
        broker_detect_band: broker_band.map(|b| b.judge(broker_s)),
        reconnect_s: connack.map(|a| secs(a.ts_us - w.end)),
        resubscribe_s: suback.map(|s| secs(s.ts_us - w.end)),
        connect_attempts: attempts,
        attempt_failures: failures,
        first_fresh_s: fresh.map(|f| secs(f.ts_us - w.end)),
        session_present: connack.and_then(|a| match &a.kind {
            EventKind::Connack(x) => Some(x.session_present),
            _ => None,
        }),
        resubscribed,
        reported_by_client: !c.from_wire,
        wire_detect_s: None,
        wire_reconnect_s: None,
        wire_resubscribe_s: None,
        stories,
    }
}

/// True if some connection in `conns` still had its broker leg open at `ts`.
fn upstream_still_open(index: &ConnIndex, conns: &BTreeSet<u64>, ts: i64) -> bool {
    conns.iter().any(|conn| {
        index
            .get(*conn)
            .and_then(|f| f.upstream_closed.first())
            .is_none_or(|closed| *closed > ts)
    })
}

/// Held broker data (or its FIN) delivered on a connection after the client had closed it.
fn stale_delivery(index: &ConnIndex, conns: &BTreeSet<u64>, from: i64, until: i64) -> bool {
    conns.iter().filter_map(|conn| index.get(*conn)).any(|f| {
        let Some(closed) = f.client_closed_by_peer.first() else {
            return false;
        };
        first_at_or_after(&f.late_arrivals, from.max(closed + 1)).is_some_and(|t| t < until)
    })
}
