//! Disconnects no fault explains: a connection that ended outside every fault window and its
//! settling time is a finding of its own (mosquitto dropping a healthy client whose pings come
//! just too late for its whole-second rule is the classic one), reported with its cause.
//!
//! A connection's end belongs to a window when the connection existed during the window (it
//! was open at its start, or opened inside it) and ended before the window's settling time ran
//! out: the latest moment the detection bands allow after the outage start, or one second after
//! the outage end, whichever is later. Everything else, the run's own orderly stop aside, is
//! unexpected.

use crate::clients::{cause_name, secs, Client, SAME_MOMENT_US};
use crate::index::ConnIndex;
use crate::report::UnexpectedDisconnect;
use crate::window::Window;
use crate::Run;
use linecut_events::broker_log::BrokerLogKind;
use linecut_events::{DisconnectCause, EventKind};

/// How long after a window's end a disconnect still counts as the window's: one second for
/// the endpoints to act on a line that is back.
const AFTER_END_US: i64 = 1_000_000;

/// The broker's log line explains a close within this much of it: the log has whole seconds.
const LOG_MATCH_US: i64 = 2_000_000;

pub(crate) fn unexpected_disconnects(
    run: &Run,
    index: &ConnIndex,
    c: &Client,
    windows: &[(&Window, i64)],
    start: i64,
) -> Vec<UnexpectedDisconnect> {
    // The run's stop: closes from then on are the run ending, not findings.
    let stop = c
        .events
        .iter()
        .find(|e| {
            matches!(&e.kind, EventKind::Disconnected(d) if d.cause == DisconnectCause::Requested)
        })
        .map_or(i64::MAX, |e| e.ts_us);
    let mut out = Vec::new();
    for conn in &c.conns {
        let Some(f) = index.get(*conn) else { continue };
        let broker = f.upstream_closed_by_peer.first().copied();
        let client = f.client_closed_by_peer.first().copied();
        let (ts, by) = match (broker, client) {
            (Some(b), Some(cl)) if cl < b => (cl, "client"),
            (Some(b), _) => (b, "broker"),
            (None, Some(cl)) => (cl, "client"),
            (None, None) => continue,
        };
        // The run's stop, or the client closing in order (DISCONNECT first): not a finding.
        if ts >= stop || f.disconnect_sent.is_some_and(|d| d <= ts) {
            continue;
        }
        let opened = f.opened_us.unwrap_or(i64::MIN);
        let explained = windows.iter().any(|(w, settle_until)| {
            let existed = opened < w.end.max(w.start + 1);
            let until = (*settle_until).max(w.end + AFTER_END_US);
            // A connection the client gave up on during the window was abandoned then, however
            // late its end reaches the wire (on a real link, after the restore): it said so, or
            // the wire shows it opening another connection while this one was still open (its
            // socket closed, the kernel answers the broker's next retransmission with a reset).
            let reported = || {
                c.events.iter().any(|e| {
                    e.ts_us >= w.start
                        && e.ts_us < until
                        && matches!(&e.kind, EventKind::Disconnected(d) if d.cause != DisconnectCause::Requested)
                })
            };
            let moved_on = || {
                c.conns.iter().any(|other| {
                    index
                        .get(*other)
                        .and_then(|o| o.opened_us)
                        .is_some_and(|t| t >= w.start && t < until && t < ts)
                })
            };
            let abandoned = opened < w.start && (reported() || moved_on());
            // An attempt begun inside the outage that ended before the broker answered it, how
            // late soever: its connect spanned the outage (a client that closes a connection
            // whose connect took longer than its keepalive: libmosquitto, paho-mqtt 1.0).
            let unanswered_attempt = opened >= w.start
                && opened < w.end
                && f.down_any.first().is_none_or(|d| *d >= ts);
            existed && ts >= w.start && (ts < until || abandoned || unanswered_attempt)
        });
        // A connection the proxy opened during a window and that ended before it finished, or
        // ended unanswered later, is an attempt into the outage, covered by the test above;
        // one that ended before any fault began is a finding like any other.
        if explained {
            continue;
        }
        let (cause, evidence) = if by == "broker" {
            let log = run.broker_log.iter().find(|l| {
                l.kind == BrokerLogKind::KeepaliveTimeout
                    && l.client == c.id
                    && (l.ts_us - ts).abs() <= LOG_MATCH_US
            });
            let silent = crate::index::last_before(&f.up_forwarded, ts)
                .map(|last| {
                    format!(
                        "; the client's last packet had reached it {:.3} s before",
                        secs(ts - last)
                    )
                })
                .unwrap_or_default();
            // What the wire showed of the broker's close, named as it was.
            let how = if f.upstream_resets.binary_search(&ts).is_ok() {
                "reset (RST)"
            } else {
                "FIN"
            };
            let seen = if f.captured {
                format!("the capture shows its {how}")
            } else {
                format!("the proxy saw its {how}")
            };
            match log {
                Some(_) => (
                    "the broker's keepalive check".to_string(),
                    format!("the broker closed the connection ({seen}) and its log says the client exceeded its keepalive{silent}"),
                ),
                None => (
                    "the broker closed it".to_string(),
                    format!("the broker closed its side ({seen}){silent}"),
                ),
            }
        } else {
            let own = c.events.iter().find(|e| {
                (e.ts_us - ts).abs() <= SAME_MOMENT_US
                    && matches!(&e.kind, EventKind::Disconnected(d) if d.cause != DisconnectCause::Requested)
            });
            match own.map(|e| &e.kind) {
                Some(EventKind::Disconnected(d)) => (
                    cause_name(d.cause),
                    format!(
                        "the client reported {} and closed its socket",
                        cause_name(d.cause)
                    ),
                ),
                _ => {
                    let how = if f.client_resets.binary_search(&ts).is_ok() {
                        "reset (RST)"
                    } else {
                        "FIN"
                    };
                    (
                        "the client closed it".to_string(),
                        if f.captured {
                            format!("the capture shows the client's {how}")
                        } else {
                            format!("the proxy saw the client's {how}")
                        },
                    )
                }
            }
        };
        out.push(UnexpectedDisconnect {
            client: c.id.clone(),
            ts_us: ts,
            t_s: secs(ts - start),
            by: by.to_string(),
            cause,
            evidence,
            // Set by the caller, which knows the weak links.
            weak_link: None,
        });
    }
    out.sort_by_key(|u| u.ts_us);
    out
}
