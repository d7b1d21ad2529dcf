//! One fault window as one subscriber lived it: when the client and the broker gave up the
//! connection, how and when the client came back, what arrived late, and the stories those
//! events prove. Asked of the connection index, so a fleet costs what its connections cost.

use crate::bands;
use crate::frames::{resolutions, CitedFrame, FrameLedger, Sender, WireSign};
use crate::index::{count_in, first_at_or_after, last_before, ConnIndex};
use crate::report::{Retransmitted, StaleData, Told, Verdict, WireDifference};
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
    /// The kernel's TCP_USER_TIMEOUT on the client's socket (namespace mode, seconds).
    pub user_timeout_s: Option<f64>,
    pub client_library: ClientFamily,
    pub broker: BrokerFamily,
    /// The subscriber acknowledges deliveries (QoS > 0): its PUBACKs, which the loader does not
    /// keep, may be the last packet the broker heard, so the broker band cannot use the last
    /// packet seen and falls back to the client's ping rhythm.
    pub acks_hidden: bool,
    /// The wire is a capture ([`crate::Wire::Capture`]: a namespace run's links, or a capture
    /// analysed), not a proxy: a packet captured during a cut was sent but not delivered, and
    /// the broker's FIN reaches the wire only when its kernel sends it (behind unacknowledged
    /// data), so its log says when it dropped the client.
    pub wire_is_capture: bool,
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
        user_timeout_s,
        client_library,
        broker,
        acks_hidden,
        wire_is_capture,
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
    // Of those, the ones still up on both sides: only their end can be the fault's doing.
    let live: BTreeSet<u64> = opened_before
        .iter()
        .copied()
        .filter(|conn| {
            index.get(*conn).is_some_and(|f| {
                let open_at = |times: &[i64]| times.first().is_none_or(|t| *t >= w.start);
                open_at(&f.client_closed_by_peer)
                    && open_at(&f.upstream_closed)
                    && f.closed_us.is_none_or(|t| t >= w.start)
            })
        })
        .collect();
    let connected_at_start = if c.conns.is_empty() {
        connected_by_own_events(c, w.start)
    } else {
        !live.is_empty()
    };
    // The analysis of this window ends where the subscriber was told to stop: its own orderly
    // close at the end of the run is not "giving up".
    let horizon = first(
        &c.events,
        w.start,
        horizon,
        |e| matches!(&e.kind, EventKind::Disconnected(d) if d.cause == DisconnectCause::Requested),
    )
    .map_or(horizon, |stop| stop.ts_us);
    // Nor is anything after the client's own DISCONNECT on the live connection (the run's stop
    // as the wire sees it, a moment before the client reports it).
    let horizon = live
        .iter()
        .filter_map(|conn| index.get(*conn)?.disconnect_sent)
        .filter(|t| *t >= w.start)
        .fold(horizon, i64::min);
    // Client side: its own disconnect, its socket closing, or a new CONNECT; only when it had
    // a connection for the fault to end.
    let own = first(
        &c.events,
        w.start,
        horizon,
        |e| matches!(&e.kind, EventKind::Disconnected(d) if d.cause != DisconnectCause::Requested),
    )
    .filter(|_| connected_at_start);
    let socket = index.first_in(&live, w.start, horizon, |f| &f.client_closed_by_peer);
    let later_conns = c.conns.difference(&opened_before);
    let reconnect_packet = index
        .first_in(later_conns, w.start, horizon, |f| &f.connects)
        .filter(|_| connected_at_start);
    // On a real link a new attempt may never get past its SYN during the cut: its first SYN
    // is already the sign that the client left the old connection.
    let attempt_syn = if wire_is_capture && connected_at_start {
        let later: Vec<u64> = c.conns.difference(&opened_before).copied().collect();
        index
            .syn_only_from(&c.conns)
            .iter()
            .chain(&later)
            .filter_map(|conn| index.get(*conn)?.opened_us)
            .filter(|t| *t >= w.start && *t < horizon)
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

    // Broker side: it closed its leg of the live connection before the client's new CONNECT
    // reached it (a close after that is the takeover, not a detection), or, when the proxy saw
    // none of the client's connections, its log says it dropped the client (the log has whole
    // seconds, so a line up to 1 s before the outage may be it).
    let reconnect_reached =
        index.first_in(c.conns.difference(&opened_before), w.start, horizon, |f| {
            &f.up_forwarded
        });
    let broker_until = reconnect_reached.map_or(horizon, |t| t.min(horizon));
    let broker_leg = index.first_in(&live, w.start, broker_until, |f| &f.upstream_closed_by_peer);
    let log_line = run
        .broker_log
        .iter()
        .find(|l| {
            l.kind == BrokerLogKind::KeepaliveTimeout
                && l.client == c.id
                && match broker_leg {
                    // With the proxy's view, the log only confirms the close it saw.
                    Some(ts) => (l.ts_us - ts).abs() <= 2_000_000,
                    None => {
                        (c.conns.is_empty() || wire_is_capture)
                            && l.ts_us >= w.start - 1_000_000
                            && l.ts_us < broker_until
                    }
                }
        })
        .filter(|_| connected_at_start);
    // On a real link the broker's FIN reaches the wire only when its kernel sends it, behind
    // data still unacknowledged (after the restore, when the link held it): its log says
    // when it dropped the client, so the log comes first there.
    let log_in_window = run.broker_log.iter().find(|l| {
        wire_is_capture
            && connected_at_start
            && l.kind == BrokerLogKind::KeepaliveTimeout
            && l.client == c.id
            && l.ts_us >= w.start - 1_000_000
            && l.ts_us < broker_until
    });
    let broker_detect = match (log_in_window, broker_leg, log_line) {
        (Some(l), _, _) => Some((l.ts_us.max(w.start), DetectHow::BrokerLog)),
        (None, Some(ts), _) => Some((ts, DetectHow::Proxy)),
        (None, None, Some(l)) => Some((l.ts_us.max(w.start), DetectHow::BrokerLog)),
        (None, None, None) => None,
    };

    // Recovery: from the give-up, or from the outage start when the connection was already
    // gone (whatever the client did in the window is then an attempt, not a detection).
    let after = detect
        .as_ref()
        .map(|d| d.0)
        .or((!connected_at_start).then_some(w.start));
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
    let mut attempt_started = None;
    if let (Some(t), Some(a)) = (after, connack) {
        // A disconnect is an attempt's failure only when an attempt came before it: a library
        // that reports one disconnect twice (paho 2.1 on a keepalive timeout) fails nothing.
        let mut attempt_open = false;
        for e in c
            .events
            .iter()
            .filter(|e| e.ts_us > t && e.ts_us <= a.ts_us)
        {
            match &e.kind {
                EventKind::ConnectAttempt(_) => {
                    attempts += 1;
                    attempt_open = true;
                    attempt_started = Some(e.ts_us);
                }
                EventKind::Disconnected(d) if attempt_open => {
                    *failures.entry(cause_name(d.cause)).or_insert(0) += 1;
                    attempt_open = false;
                }
                _ => {}
            }
        }
    }
    let fresh = c
        .deliveries
        .iter()
        .find(|d| d.ts_us >= w.end && d.pub_ts_us.is_some_and(|p| p > w.end));

    // Bands apply to silent outages of a connection that was up when they began.
    let inferred = w.kind == crate::capture::INFERRED;
    let silent = (matches!(w.kind.as_str(), "cut" | "blackhole" | "unplug") || inferred)
        && connected_at_start;
    let watched = bands::Watched {
        outage_s: secs(w.end - w.start),
        watched_s: secs(horizon - w.start),
    };
    let last_heard = live
        .iter()
        .filter_map(|conn| index.get(*conn))
        .filter_map(|f| last_before(&f.up_forwarded, w.start))
        .max();
    let kept_sending = live
        .iter()
        .filter_map(|conn| index.get(*conn))
        .any(|f| count_in(&f.down_any, w.start, w.end) > 0);
    let client_band = keepalive_s
        .and_then(|k| {
            let rule = bands::client(client_library, k)?;
            Some(match user_timeout_s {
                Some(ut) => rule.with_user_timeout(ut, f64::from(k)),
                None => rule,
            })
        })
        .filter(|_| silent);
    let broker_band = keepalive_s
        .and_then(|k| {
            let silent_before = last_heard
                .filter(|_| !acks_hidden)
                .map(|t| (w.start - t) as f64 / 1e6);
            bands::broker(broker, k, client_library, silent_before, kept_sending)
        })
        .filter(|_| silent);
    let detect_s = detect.as_ref().map(|d| secs(d.0 - w.start));
    let broker_s = broker_detect.as_ref().map(|d| secs(d.0 - w.start));

    // The client left its connection when it closed it or, if it said so first, when it gave
    // up (a real link may carry its FIN only after the restore).
    let abandoned = own.map(|e| e.ts_us);
    let stale = stale_data(
        index,
        &run.frames,
        &live,
        w,
        horizon,
        connack.map(|a| a.ts_us),
        suback.map(|a| a.ts_us),
        abandoned,
        wire_is_capture,
    );
    let into = |ts: i64| format!("{:.3} s into the outage", secs(ts - w.start));
    let mut stories = Vec::new();
    if !connected_at_start {
        stories.push(Told {
            story: Story::DownBeforeFault,
            evidence: ended_before(index, run, c, &opened_before, w.start),
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
    if let Some((b, how)) = &broker_detect {
        if detect.as_ref().is_none_or(|d| *b < d.0) {
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
    if let Some(new) = reconnect_packet {
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
            && !live.is_empty()
            && upstream_still_open(index, &live, new);
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
    if let Some(st) = &stale {
        stories.push(Told {
            story: Story::StaleDataAfterAbandon,
            evidence: stale_evidence(st),
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

    WindowMetrics {
        client: c.id.clone(),
        // Set by the caller, which sees every window.
        inside_fault: None,
        overlapped_by: Vec::new(),
        client_detect_s: detect_s,
        client_detect_how: detect.map(|d| d.1),
        client_detect_band: client_band.map(|b| b.judge(detect_s, watched)),
        broker_detect_s: broker_s,
        broker_detect_how: broker_detect.map(|d| d.1),
        broker_detect_band: broker_band.map(|b| {
            let mut band = b.judge(broker_s, watched);
            if inferred && broker_s.is_none() {
                band.verdict = Verdict::NotDecidable;
                band.why = "the broker's side of this outage is not visible in this capture".into();
            }
            band
        }),
        reconnect_s: connack.map(|a| secs(a.ts_us - w.end)),
        resubscribe_s: suback.map(|s| secs(s.ts_us - w.end)),
        connect_attempts: attempts,
        attempt_failures: failures,
        reconnect_attempt_started_s: attempt_started.map(|t| secs(t - w.end)),
        first_fresh_s: fresh.map(|f| secs(f.ts_us - w.end)),
        session_present: connack.and_then(|a| match &a.kind {
            EventKind::Connack(x) => Some(x.session_present),
            _ => None,
        }),
        resubscribed,
        reported_by_client: !c.from_wire,
        wire_detect_s: None,
        wire_detect_how: None,
        wire_reconnect_s: None,
        wire_resubscribe_s: None,
        client_minus_wire: WireDifference::default(),
        connected_at_start,
        broker_side_visible: !inferred,
        stale,
        retransmitted: wire_is_capture.then(|| retransmitted(index, &run.frames, c, w)),
        stories,
        raw_us: [
            detect.map(|d| d.0),
            connack.map(|a| a.ts_us - w.end),
            suback.map(|s| s.ts_us - w.end),
        ],
    }
}

/// What the capture shows each side resending during the outage, on any of the client's
/// connections, how many connections it tried to open, and the neighbour resolutions its
/// address made (an attempt that dies there never shows as TCP).
fn retransmitted(index: &ConnIndex, frames: &FrameLedger, c: &Client, w: &Window) -> Retransmitted {
    let mut r = Retransmitted::default();
    let mut spacings = Vec::new();
    // Attempts with a SYN only have no client id on the wire: they are the client's if they
    // come from its address (its namespace's), which its identified connections share.
    let attempts = index.syn_only_from(&c.conns);
    let mut ips = BTreeSet::new();
    for (conn, f) in c
        .conns
        .iter()
        .chain(&attempts)
        .filter_map(|conn| Some((*conn, index.get(*conn)?)))
    {
        if let Some(ip) = f
            .client_ip
            .as_deref()
            .and_then(|ip| ip.parse::<std::net::IpAddr>().ok())
        {
            ips.insert(ip);
        }
        // Data (and FIN) retransmissions; SYN retries, which carry no bytes, are counted below.
        let during = |list: &[(i64, u64)]| {
            list.iter()
                .filter(|(t, n)| *t >= w.start && *t < w.end && *n > 0)
                .fold((0, 0), |(n, b), (_, len)| (n + 1, b + len))
        };
        let (n, b) = during(&f.resent_up);
        r.up_segments += n;
        r.up_bytes += b;
        let (n, b) = during(&f.resent_down);
        r.down_segments += n;
        r.down_bytes += b;
        if let Some(opened) = f.opened_us.filter(|t| *t >= w.start && *t < w.end) {
            r.connects_tried += 1;
            // The SYN, then each retry: a resent segment with no bytes.
            let mut syns = vec![opened];
            syns.extend(f.resent_up.iter().filter(|(_, n)| *n == 0).map(|(t, _)| *t));
            r.syn_retries += syns.len() as u64 - 1;
            spacings.extend(syns.windows(2).map(|p| (p[1] - p[0]) as f64 / 1e6));
            r.frames.extend(frames.during(
                conn,
                &[WireSign::Syn, WireSign::SynRetry],
                w.start,
                i64::MAX,
            ));
        }
    }
    if !spacings.is_empty() {
        spacings.sort_by(f64::total_cmp);
        r.syn_spacing_s = Some(secs((spacings[spacings.len() / 2] * 1e6) as i64));
    }
    // Neighbour resolution from the client's address during the outage.
    let requests: Vec<CitedFrame> = ips
        .iter()
        .flat_map(|ip| frames.neighbour_requests(*ip, w.start, w.end))
        .collect();
    let starts = resolutions(&requests);
    r.neighbour_requests = requests.len() as u64;
    r.resolutions = starts.len() as u64;
    r.unanswered_resolutions = starts
        .iter()
        .enumerate()
        .filter(|(i, t)| {
            let until = starts.get(i + 1).copied().unwrap_or(w.end);
            !ips.iter()
                .any(|ip| frames.neighbour_answered(*ip, **t, until))
        })
        .count() as u64;
    let mut gaps: Vec<i64> = starts.windows(2).map(|p| p[1] - p[0]).collect();
    if !gaps.is_empty() {
        gaps.sort_unstable();
        r.resolution_spacing_s = Some(secs(gaps[gaps.len() / 2]));
    }
    r.frames.extend(requests);
    r.frames.sort_by_key(|f| f.frame);
    r
}

/// Whether the client's own events say it was connected at `ts`: an accepted CONNACK before it
/// and no disconnect since.
fn connected_by_own_events(c: &Client, ts: i64) -> bool {
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

/// What reached the live connections after the client had left them.
#[allow(clippy::too_many_arguments)]
fn stale_data(
    index: &ConnIndex,
    frames: &FrameLedger,
    live: &BTreeSet<u64>,
    w: &Window,
    horizon: i64,
    new_connack: Option<i64>,
    new_suback: Option<i64>,
    abandoned: Option<i64>,
    wire_is_capture: bool,
) -> Option<StaleData> {
    let mut out: Option<StaleData> = None;
    for (conn, f) in live
        .iter()
        .filter_map(|conn| Some((*conn, index.get(*conn)?)))
    {
        let closed = first_at_or_after(&f.client_closed_by_peer, w.start);
        let Some(left) = closed.into_iter().chain(abandoned).min() else {
            continue;
        };
        // On a real link what was captured during the cut never arrived: only what crossed
        // after the restore did.
        let after = if wire_is_capture {
            (left + 1).max(w.end)
        } else {
            left + 1
        };
        let fins = if wire_is_capture {
            &f.upstream_closed_by_peer
        } else {
            &f.fin_to_client
        };
        let first_publish =
            first_at_or_after(&f.publishes_released, after).filter(|t| *t < horizon);
        // A broker reset is not its FIN: the capture says which the broker sent.
        let is_reset = |t: &i64| f.upstream_resets.binary_search(t).is_ok();
        let first_fin = fins
            .iter()
            .copied()
            .find(|t| *t >= after && *t < horizon && !is_reset(t));
        let first_broker_rst = if f.captured {
            first_at_or_after(&f.upstream_resets, after).filter(|t| *t < horizon)
        } else {
            None
        };
        let client_resent: u64 = f
            .resent_up
            .iter()
            .filter(|(t, _)| *t >= after && first_broker_rst.is_none_or(|r| *t <= r))
            .filter(|(t, _)| *t < horizon)
            .map(|(_, n)| n)
            .sum();
        // Through a capture every retransmission is known; after the client had left, the
        // ones that crossed after the restore are the stale data arriving.
        let resent_list = if wire_is_capture {
            &f.resent_down
        } else {
            &f.stale_resent
        };
        let resent: Vec<(i64, u64)> = resent_list
            .iter()
            .copied()
            .filter(|(t, _)| *t >= after && *t < horizon)
            .collect();
        let first_resent = resent.first().map(|(t, _)| *t);
        let Some(first) = first_publish
            .into_iter()
            .chain(first_fin)
            .chain(first_resent)
            .chain(first_broker_rst)
            .min()
        else {
            continue;
        };
        let delivered = count_in(&f.publishes_released, after, horizon);
        let discarded = count_in(&f.publishes_discarded, w.start, horizon);
        let held = count_in(&f.publishes_held, w.start, horizon);
        let st = out.get_or_insert(StaleData {
            held_publishes: 0,
            delivered_publishes: 0,
            discarded_publishes: 0,
            fin_delivered: false,
            resent_bytes: 0,
            fin_after_end_s: first_fin.map(|t| secs(t - w.end)),
            answered_by_rst: false,
            broker_rst_after_end_s: first_broker_rst.map(|t| secs(t - w.end)),
            client_resent_bytes: 0,
            broker_fin_held: false,
            first_after_end_s: secs(first - w.end),
            after_new_connack_s: new_connack.map(|a| secs(first - a)),
            after_new_suback_s: new_suback.map(|a| secs(first - a)),
            frames: Vec::new(),
        });
        // The frames that prove each part, when the wire is a capture: the first stale
        // arrival, the broker's FIN or RST, the client's retransmissions the RST answered,
        // and the client's own RST.
        let client_rst = first_at_or_after(&f.client_resets, first).filter(|t| *t < horizon);
        let cited = [
            first_publish.and_then(|t| frames.at(conn, Sender::Broker, WireSign::StalePublish, t)),
            first_resent.and_then(|t| frames.at(conn, Sender::Broker, WireSign::Retransmission, t)),
            first_fin.and_then(|t| frames.at(conn, Sender::Broker, WireSign::Fin, t)),
            first_broker_rst.and_then(|t| frames.at(conn, Sender::Broker, WireSign::Rst, t)),
            client_rst.and_then(|t| frames.at(conn, Sender::Client, WireSign::Rst, t)),
        ];
        st.frames.extend(cited.into_iter().flatten());
        if let Some(rst) = first_broker_rst {
            st.frames.extend(
                frames
                    .during(conn, &[WireSign::Retransmission], after, rst + 1)
                    .filter(|x| x.sender == Sender::Client),
            );
        }
        st.frames.sort_by_key(|x| x.frame);
        st.frames.dedup();
        // Held events may predate the log's start of detail; never report fewer held than
        // delivered and discarded together.
        st.held_publishes += held.max(delivered + discarded);
        st.delivered_publishes += delivered;
        st.discarded_publishes += discarded;
        st.fin_delivered |= first_fin.is_some();
        st.resent_bytes += resent.iter().map(|(_, n)| n).sum::<u64>();
        st.client_resent_bytes += client_resent;
        // The client's reset answers what the broker sent; a reset from the broker's side at
        // the same moment is the broker's, not the client's answer.
        st.answered_by_rst |= first_at_or_after(&f.client_resets, first)
            .is_some_and(|t| t < horizon && first_broker_rst.is_none_or(|r| t < r));
        st.broker_fin_held |= f
            .upstream_closed_by_peer
            .iter()
            .any(|t| *t >= w.start && *t < w.end && !is_reset(t));
    }
    out
}

/// Where the first stale arrival fell against the client's new session: its SUBACK when it
/// had one (what the 2014 post timed it against), else its CONNACK.
fn relative_to_reconnect(st: &StaleData) -> String {
    let (d, what) = match (st.after_new_suback_s, st.after_new_connack_s) {
        (Some(d), _) => (d, "SUBACK"),
        (None, Some(d)) => (d, "CONNACK"),
        (None, None) => return String::new(),
    };
    if d < 0.0 {
        format!(" ({:.3} s before the new {what})", -d)
    } else {
        format!(" ({d:.3} s after the new {what})")
    }
}

/// The stale-data story in words: only the parts that happened, each with the frames that
/// show it when the wire is a capture.
fn stale_evidence(st: &StaleData) -> String {
    use crate::frames::{cite, of};
    let frames = |sender, sign| {
        cite(of(&st.frames, sender, sign))
            .map(|c| format!(" ({c})"))
            .unwrap_or_default()
    };
    let when = format!(
        "{:.3} s after the line returned{}",
        st.first_after_end_s,
        relative_to_reconnect(st)
    );
    let mut parts = Vec::new();
    if st.resent_bytes > 0 {
        parts.push(format!(
            "{} byte(s) the broker had sent during the outage reached the abandoned connection as its kernel retransmitted them, the first {when}{}",
            st.resent_bytes,
            frames(Sender::Broker, WireSign::Retransmission)
        ));
    }
    if st.delivered_publishes > 0 || st.held_publishes > 0 {
        parts.push(format!(
            "{} of {} held PUBLISH(es) delivered to the abandoned connection, the first {when}{}",
            st.delivered_publishes,
            st.held_publishes,
            frames(Sender::Broker, WireSign::StalePublish)
        ));
    }
    if st.discarded_publishes > 0 {
        parts.push(format!(
            "{} discarded when the proxy ended the connection",
            st.discarded_publishes
        ));
    }
    let too = if parts.is_empty() { "" } else { " too" };
    let fin = frames(Sender::Broker, WireSign::Fin);
    parts.push(match (st.fin_after_end_s, st.broker_fin_held) {
        (Some(t), _) if t > 0.0 => format!(
            "the broker's FIN reached the abandoned connection{too}, {t:.3} s after the line returned{}{fin}: the broker had closed the connection some time before, and its FIN waited for the line",
            // The reconnect offset is the first stale arrival's: said here when the FIN was it.
            if t == st.first_after_end_s {
                relative_to_reconnect(st)
            } else {
                String::new()
            }
        ),
        (Some(_), _) => format!("the broker's FIN reached the abandoned connection{too}{fin}"),
        (None, true) => "the broker's FIN discarded".into(),
        // A reset from the broker's side is said below, and says that no FIN came.
        (None, false) if st.broker_rst_after_end_s.is_some() => String::new(),
        (None, false) => "no FIN".into(),
    });
    parts.retain(|p| !p.is_empty());
    if let Some(t) = st.broker_rst_after_end_s {
        let answered = if st.client_resent_bytes > 0 {
            format!(
                ", answering {} byte(s) the client's kernel retransmitted on it{}",
                st.client_resent_bytes,
                frames(Sender::Client, WireSign::Retransmission)
            )
        } else {
            String::new()
        };
        parts.push(format!(
            "the broker's side reset the abandoned connection (RST, not a FIN{}) {t:.3} s after the line returned{answered}{}: the broker had closed that socket before",
            cite(of(&st.frames, Sender::Broker, WireSign::Rst))
                .map(|c| format!("; {c}"))
                .unwrap_or_default(),
            if t == st.first_after_end_s {
                relative_to_reconnect(st)
            } else {
                String::new()
            }
        ));
    }
    if st.answered_by_rst {
        parts.push(format!(
            "the client's side answered with a reset (RST){}",
            frames(Sender::Client, WireSign::Rst)
        ));
    }
    parts.join("; ")
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
