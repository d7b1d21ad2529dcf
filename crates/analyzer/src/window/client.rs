//! When and how the client gave up the connection it had when the outage began: its own
//! disconnect, its socket closing, a new CONNECT, or (on a real link) a new attempt's SYN.

use super::{RunContext, View, Window};
use crate::clients::{first, Client, SAME_MOMENT_US};
use crate::story::DetectHow;
use linecut_events::{DisconnectCause, Event, EventKind};

/// What the client did about the outage.
pub(crate) struct GaveUp<'a> {
    /// Its own report of a disconnect that it was not asked for.
    pub own: Option<&'a Event>,
    /// When a new connection's CONNECT crossed the wire.
    pub reconnect_packet: Option<i64>,
    /// The earliest sign, with the reason the client gave when it gave one then.
    pub detect: Option<(i64, DetectHow)>,
}

/// The client's side of window `w`; only when it had a connection for the fault to end.
pub(crate) fn gave_up<'a>(ctx: &RunContext<'_>, c: &'a Client, w: &Window, v: &View) -> GaveUp<'a> {
    let index = ctx.index;
    let own = first(
        &c.events,
        w.start,
        v.horizon,
        |e| matches!(&e.kind, EventKind::Disconnected(d) if d.cause != DisconnectCause::Requested),
    )
    .filter(|_| v.connected_at_start);
    let socket = index.first_in(&v.live, w.start, v.horizon, |f| &f.client_closed_by_peer);
    let later_conns = c.conns.difference(&v.opened_before);
    let reconnect_packet = index
        .first_in(later_conns, w.start, v.horizon, |f| &f.connects)
        .filter(|_| v.connected_at_start);
    // On a real link a new attempt may never get past its SYN during the cut: its first SYN
    // is already the sign that the client left the old connection.
    let attempt_syn = if ctx.wire.attempts_die_at_syn() && v.connected_at_start {
        let later: Vec<u64> = c.conns.difference(&v.opened_before).copied().collect();
        index
            .syn_only_from(&c.conns)
            .iter()
            .chain(&later)
            .filter_map(|conn| index.get(*conn)?.opened_us)
            .filter(|t| *t >= w.start && *t < v.horizon)
            .min()
    } else {
        None
    };
    let mut seen: Vec<(i64, DetectHow)> = Vec::new();
    if let Some(ts) = attempt_syn {
        seen.push((ts, DetectHow::NewConnection));
    }
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
    GaveUp {
        own,
        reconnect_packet,
        detect,
    }
}

/// Whether the client's own events say it was connected at `ts`: an accepted CONNACK before it
/// and no disconnect since.
pub(crate) fn connected_by_own_events(c: &Client, ts: i64) -> bool {
    let mut connected = false;
    for e in c.events.iter().take_while(|e| e.ts_us < ts) {
        match &e.kind {
            EventKind::Connack(a) => connected = a.code == 0,
            EventKind::Disconnected(_) => connected = false,
            _ => {}
        }
    }
    connected
}
