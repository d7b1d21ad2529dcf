//! The flows an idle-timeout middlebox forgot, as outage windows.
//!
//! A NAT or stateful firewall on the path (`idle_timeout`) is there for the whole run; its
//! outages are the flows it forgets. It forgets a flow `timeout` after the flow's last segment
//! either way, so the capture (which sees every segment the middlebox let through, a bare ACK
//! too) says when: the first silence on a connection longer than the timeout ends with the
//! flow forgotten `timeout` after the silence began. Every segment after that is judged by the
//! middlebox, not carried, so later silences on the connection say nothing more.
//!
//! Each forgotten flow becomes a window of its subscriber from that moment until the
//! connection ended for the client: its own close or a reset reaching it, or its next
//! connection, or the run's end. The line itself is fine all along (a
//! new connection gets a new flow), so the window is the dead connection's afterlife: how long
//! the client and the broker took to notice, what each sent into the void, and how long the
//! client took to come back.
//!
//! A `reject` link is the network's too: it answers each of the device's segments with a reset
//! in the broker's name, which the capture on the host end sees as the broker closing the
//! connection while the broker heard nothing ([`reject_resets`]).

use crate::load::Run;
use linecut_events::{
    Applied, CloseHow, ClosedBy, Event, EventKind, FaultEnded, FaultStarted, Leg, Source,
};
use linecut_model::{Forget, LinkFaultSpec, LinkKind};

/// A silence on a connection the capture saw: no segment either way from `since_us` until the
/// segment at `until_us` (capture frame `frame`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quiet {
    pub conn: u64,
    pub since_us: i64,
    pub until_us: i64,
    pub frame: u64,
}

/// The moment the middlebox forgot each connection it forgot: the first silence longer than
/// `timeout_us`, for the connections `behind` says are behind it.
pub(crate) fn forgotten(
    quiet: &[Quiet],
    timeout_us: i64,
    behind: impl Fn(u64) -> bool,
) -> Vec<(u64, i64)> {
    let mut out: Vec<(u64, i64)> = Vec::new();
    for q in quiet {
        // Conntrack's own test: a flow whose timeout has passed is gone at the next lookup.
        if q.until_us - q.since_us > timeout_us
            && behind(q.conn)
            && !out.iter().any(|(conn, _)| *conn == q.conn)
        {
            out.push((q.conn, q.since_us + timeout_us));
        }
    }
    out
}

/// Replaces the middlebox's run-long fault in `run.proxy` with a window per flow it forgot
/// (fault id and spec kept, the subscriber whose flow it was as the one it applied to).
pub(crate) fn forgotten_windows(run: &mut Run) {
    let Some(pos) = run.proxy.iter().position(|e| {
        matches!(&e.kind, EventKind::FaultStarted(f)
            if f.spec.parse::<LinkFaultSpec>().is_ok_and(|s| s.kind.is_middlebox()))
    }) else {
        return;
    };
    let start = run.proxy.remove(pos);
    let EventKind::FaultStarted(fault) = start.kind else {
        return;
    };
    let Ok(LinkFaultSpec {
        kind: LinkKind::IdleTimeout { timeout_s, then },
        ..
    }) = fault.spec.parse::<LinkFaultSpec>()
    else {
        return;
    };
    let conn_client = crate::wire::connection_clients(&run.proxy);
    let client_of = |conn: u64| conn_client.get(&conn);
    // The subscribers it stood in front of: those its rules were in for.
    let behind =
        |conn: u64| client_of(conn).is_some_and(|c| fault.applied.iter().any(|a| &a.client == c));
    let mut quiet = run.quiet.clone();
    quiet.sort_by_key(|q| q.until_us);
    // The run's end as the analysis takes it: its latest event of any kind.
    let run_end = run
        .proxy
        .iter()
        .chain(&run.subscriber)
        .chain(&run.publisher)
        .map(|e| e.ts_us)
        .max()
        .unwrap_or(0);
    // The proxy says when it forgot a connection; a capture shows it.
    let told: Vec<(u64, i64)> = run
        .proxy
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::FaultAction(a)
                if a.fault == fault.fault && a.action == linecut_events::ACTION_FORGOT =>
            {
                Some((a.conn?, e.ts_us))
            }
            _ => None,
        })
        .collect();
    let found = if told.is_empty() {
        forgotten(&quiet, i64::from(timeout_s) * 1_000_000, behind)
    } else {
        told
    };
    // A reset on a forgotten flow is the network's: said so before the ends are read, so that
    // one reaching the client ends its dead connection.
    if then != Forget::Drop {
        for (conn, at) in &found {
            own_the_resets(run, *conn, *at, then);
        }
    }
    // When each connection's client side closed, and when each client opened a connection:
    // gathered in one pass, so a fleet's many forgotten flows do not each rescan the log.
    let mut client_closes: std::collections::HashMap<u64, Vec<i64>> = Default::default();
    let mut opens: std::collections::HashMap<&str, Vec<(i64, u64)>> = Default::default();
    for e in &run.proxy {
        match &e.kind {
            EventKind::LegClosed(l) if l.leg == Leg::Client => {
                client_closes.entry(l.conn).or_default().push(e.ts_us)
            }
            EventKind::ConnOpened(o) => {
                if let Some(c) = conn_client.get(&o.conn) {
                    opens.entry(c.as_str()).or_default().push((e.ts_us, o.conn));
                }
            }
            _ => {}
        }
    }
    let mut windows = Vec::new();
    for (conn, at) in found {
        let Some(client) = conn_client.get(&conn).cloned() else {
            continue;
        };
        // The client's side closing (its own close, or a reset reaching it: the broker's
        // close does not cross a forgotten flow), or the client's next connection.
        let closed = client_closes
            .get(&conn)
            .and_then(|t| t.iter().copied().find(|t| *t >= at));
        let reopened = opens
            .get(client.as_str())
            .and_then(|o| o.iter().find(|(t, c)| *t >= at && *c != conn))
            .map(|(t, _)| *t);
        let end = closed.into_iter().chain(reopened).min().unwrap_or(run_end);
        windows.push((client, at, end));
    }
    for (client, at, end) in windows {
        let applied = |ts_us| {
            vec![Applied {
                client: client.clone(),
                ts_us,
            }]
        };
        run.proxy.push(Event {
            ts_us: at,
            source: Source::Capture,
            kind: EventKind::FaultStarted(FaultStarted {
                fault: fault.fault,
                spec: fault.spec.clone(),
                kind: fault.kind.clone(),
                scheduled_us: None,
                lateness_us: None,
                applied: applied(at),
            }),
        });
        run.proxy.push(Event {
            ts_us: end,
            source: Source::Capture,
            kind: EventKind::FaultEnded(FaultEnded {
                fault: fault.fault,
                kind: fault.kind.clone(),
                scheduled_us: None,
                lateness_us: None,
                applied: applied(end),
            }),
        });
    }
    // Stable: each window's start stays before its end at the same instant.
    run.proxy.sort_by_key(|e| e.ts_us);
}

/// A reset from the broker's address on a forgotten flow is not the broker ending its
/// connection: with `reset` the middlebox sent it in the broker's name, with `remap` the
/// broker's kernel sent it for a connection it did not know (the segment came from the NAT's
/// new port), while the broker's own connection lived on. Either way it is the network closing
/// the client's connection, and the capture's close is said so.
fn own_the_resets(run: &mut Run, conn: u64, at: i64, then: Forget) {
    let reason = match then {
        Forget::Remap => "the broker's kernel answering a segment from the NAT's new port, a connection it did not know; the broker's own connection lives on",
        _ => "the middlebox's reset, in the broker's name, for a flow it had forgotten",
    };
    network_resets(run, |c, t| c == conn && t >= at, reason);
}

/// Every reset the capture took for the broker's on a connection `mine` claims (connection,
/// time) is said to be the network's, for `reason`.
fn network_resets(run: &mut Run, mine: impl Fn(u64, i64) -> bool, reason: &str) {
    for e in run.proxy.iter_mut() {
        let ts = e.ts_us;
        if let EventKind::LegClosed(l) = &mut e.kind {
            if l.leg == Leg::Upstream && l.how == CloseHow::Rst && mine(l.conn, ts) {
                l.leg = Leg::Client;
                l.by = ClosedBy::Proxy;
                l.reason = Some(reason.into());
            }
        }
    }
}

/// A `reject` link that rejects the device's segments (`dir` up or both) answers each with a
/// reset in the broker's name; the broker hears nothing. A reset the capture saw reach a device
/// the link stood in front of, while the link rejected, is the network's, not the broker's
/// close (the broker's own side lives on until it times the client out or a takeover ends it).
pub(crate) fn reject_resets(run: &mut Run) {
    let mut spans: Vec<(u64, i64, i64, Vec<String>)> = Vec::new();
    for e in &run.proxy {
        match &e.kind {
            EventKind::FaultStarted(f) => {
                let Ok(spec) = f.spec.parse::<LinkFaultSpec>() else {
                    continue;
                };
                if spec.kind == LinkKind::Reject && spec.schedule.dir != linecut_model::Dir::Down {
                    let clients = f.applied.iter().map(|a| a.client.clone()).collect();
                    spans.push((f.fault, e.ts_us, i64::MAX, clients));
                }
            }
            EventKind::FaultEnded(f) => {
                if let Some(span) = spans
                    .iter_mut()
                    .rev()
                    .find(|s| s.0 == f.fault && s.2 == i64::MAX)
                {
                    span.2 = e.ts_us;
                }
            }
            _ => {}
        }
    }
    if spans.is_empty() {
        return;
    }
    let conn_client = crate::wire::connection_clients(&run.proxy);
    network_resets(
        run,
        |conn, t| {
            let client = conn_client.get(&conn);
            spans.iter().any(|(_, from, until, clients)| {
                t >= *from && t <= *until && client.is_some_and(|c| clients.contains(c))
            })
        },
        "the reject rule's reset, in the broker's name, answering the device's segment; the broker heard nothing",
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(conn: u64, since_s: i64, until_s: i64) -> Quiet {
        Quiet {
            conn,
            since_us: since_s * 1_000_000,
            until_us: until_s * 1_000_000,
            frame: 0,
        }
    }

    #[test]
    fn the_first_silence_past_the_timeout_forgets_the_flow_once() {
        let quiet = [
            q(1, 0, 9),
            q(1, 9, 20),
            q(2, 5, 16),
            q(1, 20, 50),
            q(3, 0, 30),
        ];
        // conn 3 is not behind the middlebox.
        let got = forgotten(&quiet, 10_000_000, |c| c != 3);
        assert_eq!(got, vec![(1, 19_000_000), (2, 15_000_000)]);
        // A silence of exactly the timeout: the flow is still there (conntrack's `<= 0`).
        assert!(forgotten(&[q(1, 0, 10)], 10_000_000, |_| true).is_empty());
    }
}
