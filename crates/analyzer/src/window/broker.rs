//! When the broker dropped the client: its leg of the live connection closing before the
//! client's new CONNECT reached it, or its log's keepalive line.

use super::{RunContext, View, Window};
use crate::clients::Client;
use crate::story::DetectHow;
use linecut_events::broker_log::{BrokerLogEntry, BrokerLogKind};

/// What the broker did about the outage.
pub(crate) struct Dropped<'a> {
    /// When it dropped the client, and how that is known.
    pub detect: Option<(i64, DetectHow)>,
    /// Its log's keepalive line for the client, matched to the close the wire saw or, without
    /// one, in the window.
    pub log_line: Option<&'a BrokerLogEntry>,
}

/// The broker's side of window `w`.
pub(crate) fn dropped<'a>(ctx: &RunContext<'a>, c: &Client, w: &Window, v: &View) -> Dropped<'a> {
    let (run, index) = (ctx.run, ctx.index);
    let fin_waits = ctx.wire.fins_wait_behind_data();
    // It closed its leg of the live connection before the client's new CONNECT reached it (a
    // close after that is the takeover, not a detection), or, when the proxy saw none of the
    // client's connections, its log says it dropped the client (the log has whole seconds, so
    // a line up to 1 s before the outage may be it).
    let reconnect_reached = index.first_in(
        c.conns.difference(&v.opened_before),
        w.start,
        v.horizon,
        |f| &f.up_forwarded,
    );
    let broker_until = reconnect_reached.map_or(v.horizon, |t| t.min(v.horizon));
    let broker_leg = index.first_in(&v.live, w.start, broker_until, |f| {
        &f.upstream_closed_by_peer
    });
    // A middlebox that resets what either side sends on a forgotten flow resets the broker's
    // own send: the broker finds its connection broken (its log's "closed its connection"),
    // which is how it learns the device is gone. Elsewhere that line is the client's own close
    // reaching it, not a detection.
    let resets_broker = matches!(
        w.link,
        Some(linecut_model::LinkKind::IdleTimeout {
            then: linecut_model::Forget::Reset,
            ..
        })
    );
    let drop_line = |kind: BrokerLogKind| {
        kind == BrokerLogKind::KeepaliveTimeout || (resets_broker && kind == BrokerLogKind::Closed)
    };
    let log_line = run
        .broker_log
        .iter()
        .find(|l| {
            drop_line(l.kind)
                && l.client == c.id
                && match broker_leg {
                    // With the proxy's view, the log only confirms the close it saw.
                    Some(ts) => (l.ts_us - ts).abs() <= 2_000_000,
                    None => {
                        (c.conns.is_empty() || fin_waits)
                            && l.ts_us >= w.start - 1_000_000
                            && l.ts_us < broker_until
                    }
                }
        })
        .filter(|_| v.connected_at_start);
    // On a real link the broker's FIN reaches the wire only when its kernel sends it, behind
    // data still unacknowledged (after the restore, when the link held it): its log says
    // when it dropped the client, so the log comes first there.
    let log_in_window = run.broker_log.iter().find(|l| {
        fin_waits
            && v.connected_at_start
            && drop_line(l.kind)
            && l.client == c.id
            && l.ts_us >= w.start - 1_000_000
            && l.ts_us < broker_until
    });
    let detect = match (log_in_window, broker_leg, log_line) {
        (Some(l), _, _) => Some((l.ts_us.max(w.start), DetectHow::BrokerLog)),
        (None, Some(ts), _) => Some((ts, DetectHow::Proxy)),
        (None, None, Some(l)) => Some((l.ts_us.max(w.start), DetectHow::BrokerLog)),
        (None, None, None) => None,
    };
    Dropped { detect, log_line }
}
