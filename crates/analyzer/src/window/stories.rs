//! What a window's events prove, told in words with their evidence: the client was down
//! before the fault, its ping went unanswered, the broker timed it out first, the broker took
//! the session over, stale data reached the abandoned connection, the backend heard the will
//! while the client was back, or it rode the outage out.

use super::broker::Dropped;
use super::client::GaveUp;
use super::{RunContext, View, Window};
use crate::bands::Watched;
use crate::clients::{first, secs, Client};
use crate::index::ConnIndex;
use crate::report::{StaleData, Told};
use crate::story::{DetectHow, Story};
use crate::Run;
use linecut_events::broker_log::BrokerLogKind;
use linecut_events::{DisconnectCause, EventKind};
use std::collections::BTreeSet;

/// The stories window `w` proves for client `c`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn told(
    ctx: &RunContext<'_>,
    c: &Client,
    w: &Window,
    v: &View,
    gave_up: &GaveUp<'_>,
    broker: &Dropped<'_>,
    stale: Option<&StaleData>,
    watched: Watched,
    will: Option<&super::will::Heard>,
) -> Vec<Told> {
    let (run, index) = (ctx.run, ctx.index);
    let (detect, broker_detect, log_line) = (gave_up.detect, broker.detect, broker.log_line);
    let (connected_at_start, horizon) = (v.connected_at_start, v.horizon);
    let into = |ts: i64| format!("{:.3} s into the outage", secs(ts - w.start));
    let mut stories = Vec::new();
    if !connected_at_start {
        stories.push(Told {
            story: Story::DownBeforeFault,
            evidence: ended_before(index, run, c, &v.opened_before, w.start),
        });
    }
    if let Some((ts, DetectHow::Cause(DisconnectCause::KeepaliveTimeout))) = detect {
        let ping = c
            .events
            .iter()
            .rev()
            .find(|e| e.ts_us < ts && matches!(e.kind, EventKind::PingSent(_)));
        let answered = ping.is_some_and(|p| {
            first(&c.events, p.ts_us, ts, |e| {
                matches!(e.kind, EventKind::PingReceived(_))
            })
            .is_some()
        });
        let evidence = match ping {
            Some(p) if !answered => format!(
                "it reported keepalive_timeout {}; its last PINGREQ, sent {}, got no PINGRESP",
                into(ts),
                if p.ts_us >= w.start {
                    into(p.ts_us)
                } else {
                    format!("{:.3} s before the outage", secs(w.start - p.ts_us))
                }
            ),
            _ => format!("it reported keepalive_timeout {}", into(ts)),
        };
        stories.push(Told {
            story: Story::PingTimeout,
            evidence,
        });
    }
    // A broker that found its connection reset did not time the client out.
    let reset_under_it =
        log_line.is_some_and(|l| l.kind == linecut_events::broker_log::BrokerLogKind::Closed);
    if let Some((b, how)) = &broker_detect {
        if detect.as_ref().is_none_or(|d| *b < d.0) && !reset_under_it {
            let evidence = match (how, log_line) {
                (DetectHow::Proxy, Some(_)) => format!(
                    "the broker closed its side {} (the proxy saw it), and its log says the client exceeded its keepalive",
                    into(*b)
                ),
                (DetectHow::Proxy, None) => {
                    format!("the broker closed its side {} (the proxy saw it)", into(*b))
                }
                _ => format!("the broker's log says it dropped the client {}", into(*b)),
            };
            stories.push(Told {
                story: Story::BrokerTimedOut,
                evidence,
            });
        }
    }
    // Takeover: the new connection's CONNECT came while the broker still held the old one.
    if let Some(new) = gave_up.reconnect_packet {
        // The broker's own drop (seen on the wire, or in its log when the link held its FIN)
        // before the new CONNECT means there was nothing left to take over.
        let old_closed_by_broker_before = broker_detect.is_some_and(|(b, _)| b <= new);
        let log_takeover = run.broker_log.iter().any(|l| {
            l.ts_us >= w.start
                && l.ts_us < horizon
                && l.kind == BrokerLogKind::Takeover
                && l.client == c.id
        });
        let wire_takeover = !old_closed_by_broker_before
            && !v.live.is_empty()
            && upstream_still_open(index, &v.live, new);
        if wire_takeover || log_takeover {
            stories.push(Told {
                story: Story::SessionTakeover,
                evidence: if log_takeover {
                    format!(
                        "the new CONNECT came {} and the broker's log reports the old connection taken over",
                        into(new)
                    )
                } else {
                    format!(
                        "the new CONNECT came {} while the broker's side of the old connection was still open",
                        into(new)
                    )
                },
            });
        }
    }
    if let Some(st) = stale {
        stories.push(Told {
            story: Story::StaleDataAfterAbandon,
            evidence: super::stale::stale_evidence(st),
        });
    }
    // MQTT 5: a DISCONNECT from the broker carries its reason.
    for &(ts, conn, code) in ctx.broker_reasons {
        if ts < w.start || ts >= horizon || !c.conns.contains(&conn) {
            continue;
        }
        let name = linecut_mqtt::reason_name(
            linecut_mqtt::Version::V5,
            linecut_mqtt::PacketType::Disconnect,
            code,
        )
        .map(|n| format!(" ({n})"))
        .unwrap_or_default();
        stories.push(Told {
            story: Story::BrokerSaidWhy,
            evidence: format!(
                "it sent DISCONNECT 0x{code:02X}{name} on conn {conn} {}",
                into(ts)
            ),
        });
    }
    if let Some((at, connack)) = will.and_then(|h| h.at.zip(h.after_connack)) {
        stories.push(Told {
            story: Story::WillWhileConnected,
            evidence: format!(
                "the watcher received its will {} and {:.3} s {} the client's CONNACK on its new connection ({}){}",
                into(at),
                secs((at - connack).abs()),
                if at >= connack { "after" } else { "before" },
                into(connack),
                if at < connack {
                    ": the broker published it as the new connection took the session over"
                } else {
                    ""
                }
            ),
        });
    }
    if connected_at_start && detect.is_none() && broker_detect.is_none() {
        stories.push(Told {
            story: Story::RodeThrough,
            evidence: format!(
                "no disconnect from either side in the {:.3} s watched from the outage start",
                watched.watched_s
            ),
        });
    }
    stories
}

/// How the connection that was up before the fault ended, in words.
fn ended_before(
    index: &ConnIndex,
    run: &Run,
    c: &Client,
    opened_before: &BTreeSet<u64>,
    start: i64,
) -> String {
    let last = opened_before
        .iter()
        .filter_map(|conn| index.get(*conn))
        .filter_map(|f| {
            let broker = f.upstream_closed_by_peer.first().copied();
            let client = f.client_closed_by_peer.first().copied();
            match (broker, client) {
                (Some(b), Some(cl)) if cl < b => Some((cl, "the client closed it")),
                (Some(b), _) => Some((b, "the broker closed it")),
                (None, Some(cl)) => Some((cl, "the client closed it")),
                (None, None) => f.closed_us.map(|t| (t, "it was closed")),
            }
        })
        .filter(|(t, _)| *t < start)
        .max_by_key(|(t, _)| *t);
    let Some((t, who)) = last else {
        return "the client had no connection when the fault began".into();
    };
    let logged = run.broker_log.iter().any(|l| {
        l.kind == BrokerLogKind::KeepaliveTimeout
            && l.client == c.id
            && (l.ts_us - t).abs() <= 2_000_000
    });
    format!(
        "{who} {:.3} s before the fault began{}",
        secs(start - t),
        if logged {
            " (the broker's log: the client exceeded its keepalive)"
        } else {
            ""
        }
    )
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
