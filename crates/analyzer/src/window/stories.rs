//! What a window's events prove, told in words with their evidence: the client was down
//! before the fault, its ping went unanswered, the broker timed it out first, the broker took
//! the session over, stale data reached the abandoned connection, the backend heard the will
//! while the client was back, or it rode the outage out.

use super::broker::Dropped;
use super::client::GaveUp;
use super::{RunContext, View, Window};
use crate::bands::Watched;
use crate::clients::{first, secs, Client, SAME_MOMENT_US};
use crate::frames::{cite, CitedFrame, Sender, WireSign};
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
            frames: Vec::new(),
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
            frames: Vec::new(),
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
                frames: Vec::new(),
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
        let kept = super::will::keeps_old_connection(ctx.broker, ctx.session.clean_session);
        if let (true, Some(rule)) = (wire_takeover && !log_takeover, kept) {
            // When the old connection did end: the first close either side made of it after
            // the new CONNECT, once the line was back (a close inside the fault never crossed).
            let ended = v
                .live
                .iter()
                .filter_map(|conn| {
                    let f = index.get(*conn)?;
                    let after = |t: &&i64| **t > new && **t >= w.end;
                    let client = f.client_closed_by_peer.iter().find(after).copied();
                    let broker = f.upstream_closed_by_peer.iter().find(after).copied();
                    let (t, sender) = match (client, broker) {
                        (Some(c), Some(b)) if b < c => (b, Sender::Broker),
                        (Some(c), _) => (c, Sender::Client),
                        (None, Some(b)) => (b, Sender::Broker),
                        (None, None) => return None,
                    };
                    let frame = [WireSign::Rst, WireSign::Fin]
                        .into_iter()
                        .find_map(|sign| ctx.run.frames.at(*conn, sender, sign, t));
                    Some((t, sender, frame))
                })
                .min_by_key(|(t, ..)| *t);
            let mut frames = Vec::new();
            let end = match ended {
                Some((t, sender, frame)) => {
                    frames.extend(frame);
                    format!(
                        "; the old connection ended {:.3} s after the new CONNECT, {}{}",
                        secs(t - new),
                        match sender {
                            Sender::Client =>
                                "when the client's kernel refused the broker's next segment",
                            Sender::Broker => "closed by the broker",
                        },
                        frame.map_or(String::new(), |f| format!(
                            " ({} {}, frame {})",
                            sender.name(),
                            f.sign.name(),
                            f.frame
                        )),
                    )
                }
                None => "; it was still open when the analysis ended".into(),
            };
            stories.push(Told {
                story: Story::OldConnectionKept,
                evidence: format!(
                    "the new CONNECT came {} while the broker's side of the old connection was still open, and {rule}{end}",
                    into(new)
                ),
                frames,
            });
        } else if wire_takeover || log_takeover {
            stories.push(Told {
                story: Story::SessionTakeover,
                frames: Vec::new(),
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
    if let Some((evidence, frames)) = closed_before_connack(ctx, c, w, horizon) {
        stories.push(Told {
            story: Story::ClosedBeforeConnack,
            evidence,
            frames,
        });
    }
    if let Some(st) = stale {
        stories.push(Told {
            story: Story::StaleDataAfterAbandon,
            evidence: super::stale::stale_evidence(st),
            frames: Vec::new(),
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
            frames: Vec::new(),
            evidence: format!(
                "it sent DISCONNECT 0x{code:02X}{name} on conn {conn} {}",
                into(ts)
            ),
        });
    }
    if let Some((at, connack)) = will.and_then(|h| h.at.zip(h.after_connack)) {
        stories.push(Told {
            story: Story::WillWhileConnected,
            frames: Vec::new(),
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
            frames: Vec::new(),
            evidence: format!(
                "no disconnect from either side in the {:.3} s watched from the outage start",
                watched.watched_s
            ),
        });
    }
    stories
}

/// A new connection the client closed itself right after its CONNECT, without waiting for
/// anything to come back (no CONNACK read, no DISCONNECT sent, closed within the same moment),
/// with how long its TCP connect had taken: from the
/// connection's first SYN to its CONNECT. libmosquitto does this when the connect took longer
/// than its keepalive (docs/clients.md); the wire shows the two times, whatever the library.
fn closed_before_connack(
    ctx: &RunContext<'_>,
    c: &Client,
    w: &Window,
    horizon: i64,
) -> Option<(String, Vec<CitedFrame>)> {
    let at = |ts: i64| {
        if ts >= w.end {
            format!("{:.3} s after the restore", secs(ts - w.end))
        } else {
            format!("{:.3} s into the outage", secs(ts - w.start))
        }
    };
    let mut frames = Vec::new();
    let told: Vec<String> = c
        .conns
        .iter()
        .filter_map(|conn| Some((*conn, ctx.index.get(*conn)?)))
        .filter_map(|(conn, f)| {
            let opened = f.opened_us?;
            let connect = *f.connects.first()?;
            let closed = *f.client_closed_by_peer.first()?;
            let answered = f.down_any.first().is_some_and(|d| *d < closed);
            // At once: a client that waited for its CONNACK and gave up (a connect timeout,
            // an attempt into the outage) is an attempt that failed, told as such elsewhere.
            let new_and_unanswered = opened >= w.start
                && opened < horizon
                && connect < horizon
                && closed >= connect
                && closed - connect < SAME_MOMENT_US
                && !answered
                && f.disconnect_sent.is_none();
            if !new_and_unanswered {
                return None;
            }
            let took = secs(connect - opened);
            let longer = ctx
                .keepalive_s
                .filter(|k| took > f64::from(*k))
                .map(|k| format!(", longer than its keepalive of {k} s"))
                .unwrap_or_default();
            let sign = if f.client_resets.binary_search(&closed).is_ok() {
                WireSign::Rst
            } else {
                WireSign::Fin
            };
            let cited: Vec<CitedFrame> = [
                ctx.run.frames.at(conn, Sender::Client, WireSign::Syn, opened),
                ctx.run.frames.at(conn, Sender::Client, sign, closed),
            ]
            .into_iter()
            .flatten()
            .collect();
            let named = cite(&cited).map_or(String::new(), |f| format!(" ({f})"));
            frames.extend(cited);
            Some(format!(
                "conn {conn}: its CONNECT went out {} and the client closed the connection ({}) {:.1} ms later, before any answer from the broker; its TCP connect had taken {took:.3} s from the first SYN{longer}{named}",
                at(connect),
                sign.name(),
                (closed - connect) as f64 / 1e3,
            ))
        })
        .collect();
    (!told.is_empty()).then(|| (told.join("; "), frames))
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
