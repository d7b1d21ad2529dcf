//! One fault window as one subscriber lived it: when the client and the broker gave up the
//! connection, how and when the client came back, what arrived late, and the stories those
//! events prove. Asked of the connection index, so a fleet costs what its connections cost.
//!
//! Split by question, each a function of the window's [`View`]: [`client`] (when and how the
//! client gave up), [`broker`] (when the broker did), [`recovery`] (how it came back),
//! [`stale`] (what reached the connections it had left, and what the capture shows resent),
//! [`will`] (when the rest of the system heard it was gone) and [`stories`] (what those
//! prove, in words). This file draws the windows, builds the view
//! and the bands, and puts the answers together.

mod broker;
mod client;
mod recovery;
mod stale;
mod stories;
mod will;

use crate::bands;
use crate::clients::{first, secs, Client};
use crate::expect::timing;
use crate::index::{count_in, last_before, ConnIndex};
use crate::report::{Distribution, WindowReport};
use crate::report::{Verdict, WireDifference};
use crate::story::DetectHow;
use crate::{Run, WindowMetrics};
use linecut_events::{DisconnectCause, EventKind};
use linecut_model::Metric;
use linecut_model::{BrokerFamily, ClientFamily};
use std::collections::{BTreeMap, BTreeSet};

/// One fault's outage window: from its start to its end (or the run's end).
#[derive(Clone)]
pub(crate) struct Window {
    pub fault: u64,
    pub kind: String,
    pub spec: String,
    pub start: i64,
    pub end: i64,
    /// The link fault the window is of, read once from its spec (namespace runs; `None` for
    /// the proxy's faults and inferred windows).
    pub link: Option<linecut_model::LinkKind>,
    /// Namespace mode: when the fault's rules were in for each subscriber, and out again
    /// (the window's own times are the last subscriber's).
    pub per_client: std::collections::HashMap<String, (Option<i64>, Option<i64>)>,
}

impl Window {
    /// The window as subscriber `client` lived it, when the run recorded its own times: from
    /// its rules in to its rules out.
    pub fn for_client(&self, client: &str) -> Option<Window> {
        let (start, end) = self.per_client.get(client)?;
        let mut w = self.clone();
        w.per_client.clear();
        w.start = start.unwrap_or(w.start);
        w.end = end.unwrap_or(w.end).max(w.start);
        Some(w)
    }
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
                    link: f
                        .spec
                        .parse::<linecut_model::LinkFaultSpec>()
                        .ok()
                        .map(|s| s.kind),
                    start: e.ts_us,
                    end: run_end,
                    per_client: f
                        .applied
                        .iter()
                        .map(|a| (a.client.clone(), (Some(a.ts_us), None)))
                        .collect(),
                });
                open.push(windows.len() - 1);
            }
            EventKind::FaultEnded(f) => {
                if let Some(pos) = open.iter().position(|&i| windows[i].fault == f.fault) {
                    let w = &mut windows[open.remove(pos)];
                    w.end = e.ts_us;
                    for a in &f.applied {
                        w.per_client.entry(a.client.clone()).or_default().1 = Some(a.ts_us);
                    }
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
    /// The keepalive the client runs on: the client's band is drawn for it.
    pub keepalive_s: Option<u16>,
    /// The keepalive the broker holds the client to (its Server Keep Alive, when it granted
    /// one): the broker's band is drawn for it.
    pub broker_keepalive_s: Option<u16>,
    /// The kernel's TCP_USER_TIMEOUT on the client's socket (namespace mode, seconds).
    pub user_timeout_s: Option<f64>,
    pub client_library: ClientFamily,
    pub broker: BrokerFamily,
    /// The subscriber acknowledges deliveries (QoS > 0): its PUBACKs, which the loader does not
    /// keep, may be the last packet the broker heard, so the broker band cannot use the last
    /// packet seen and falls back to the client's ping rhythm.
    pub acks_hidden: bool,
    /// What watched the wire, and so which of its rules apply ([`crate::Wire`]).
    pub wire: crate::Wire,
    /// When the will watcher received each subscriber's will; `None` when no watcher ran.
    pub wills: Option<&'a std::collections::HashMap<String, Vec<i64>>>,
    /// What the subscriber's CONNECT asked for.
    pub session: &'a crate::report::SessionFacts,
    /// Every DISCONNECT the broker sent with a reason code (MQTT 5): (time, connection, code),
    /// gathered once (they are rare; the wire's events are not).
    pub broker_reasons: &'a [(i64, u64, u8)],
}

/// The DISCONNECTs with a reason code the wire saw the broker send, in time order.
pub(crate) fn broker_reasons(proxy: &[linecut_events::Event]) -> Vec<(i64, u64, u8)> {
    proxy
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::MqttPacket(p)
                if p.dir == linecut_events::Direction::Down
                    && p.kind() == Some(linecut_mqtt::PacketType::Disconnect) =>
            {
                Some((e.ts_us, p.conn, p.reason_code?))
            }
            _ => None,
        })
        .collect()
}

/// What a window looks like from one subscriber before any question is asked of it.
pub(crate) struct View {
    /// The connections it had open when the outage began.
    pub opened_before: BTreeSet<u64>,
    /// Of those, the ones still up on both sides: only their end can be the fault's doing.
    pub live: BTreeSet<u64>,
    pub connected_at_start: bool,
    /// Where the analysis of this window ends: the subscriber told to stop, or its own
    /// DISCONNECT on the live connection.
    pub horizon: i64,
}

impl View {
    fn of(index: &ConnIndex, c: &Client, w: &Window, horizon: i64) -> View {
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
            client::connected_by_own_events(c, w.start)
        } else {
            !live.is_empty()
        };
        // The analysis of this window ends where the subscriber was told to stop: its own
        // orderly close at the end of the run is not "giving up".
        let horizon = first(
            &c.events,
            w.start,
            horizon,
            |e| matches!(&e.kind, EventKind::Disconnected(d) if d.cause == DisconnectCause::Requested),
        )
        .map_or(horizon, |stop| stop.ts_us);
        // Nor is anything after the client's own DISCONNECT on the live connection (the run's
        // stop as the wire sees it, a moment before the client reports it).
        let horizon = live
            .iter()
            .filter_map(|conn| index.get(*conn)?.disconnect_sent)
            .filter(|t| *t >= w.start)
            .fold(horizon, i64::min);
        View {
            opened_before,
            live,
            connected_at_start,
            horizon,
        }
    }
}

/// Whether anything was published on `c`'s subscribed topics in `[from, to)`.
fn published_to(run: &Run, c: &Client, from: i64, to: i64) -> bool {
    let filters: Vec<&str> = c
        .events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::SubscribeSent(s) => Some(s.topics.iter().map(|t| t.filter.as_str())),
            _ => None,
        })
        .flatten()
        .collect();
    let on_topic: Vec<bool> = run
        .topics
        .iter()
        .map(|t| filters.iter().any(|f| crate::topic_matches(f, t)))
        .collect();
    run.publishes.iter().any(|p| {
        p.ts_us >= from && p.ts_us < to && on_topic.get(p.topic as usize).copied().unwrap_or(false)
    })
}

pub(crate) fn window_metrics(
    ctx: &RunContext<'_>,
    c: &Client,
    w: &Window,
    horizon: i64,
) -> WindowMetrics {
    let index = ctx.index;
    let v = View::of(index, c, w, horizon);
    let gave_up = client::gave_up(ctx, c, w, &v);
    let broker = broker::dropped(ctx, c, w, &v);
    // Recovery: from the give-up, or from the outage start when the connection was already
    // gone (whatever the client did in the window is then an attempt, not a detection).
    let after = gave_up
        .detect
        .map(|d| d.0)
        .or((!v.connected_at_start).then_some(w.start));
    let back = recovery::came_back(c, w, after);

    // Bands apply to silent outages of a connection that was up when they began.
    let inferred = w.kind == crate::capture::INFERRED;
    let middlebox_drops = w.link.is_some_and(|k| k.is_middlebox() && k.is_silent());
    let silent =
        (matches!(w.kind.as_str(), "cut" | "blackhole" | "unplug") || inferred || middlebox_drops)
            && v.connected_at_start;
    let watched = bands::Watched {
        outage_s: secs(w.end - w.start),
        watched_s: secs(v.horizon - w.start),
    };
    let last_heard = v
        .live
        .iter()
        .filter_map(|conn| index.get(*conn))
        .filter_map(|f| last_before(&f.up_forwarded, w.start))
        .max();
    // The broker kept writing to the connection through the outage: seen on the wire, or, where
    // the wire cannot show it (a real link drops the broker's segments before the capture sees
    // them), known from the publisher: every message published on the subscriber's topics during
    // the outage was routed to that connection, and the broker wrote it to its socket.
    let kept_sending = v
        .live
        .iter()
        .filter_map(|conn| index.get(*conn))
        .any(|f| count_in(&f.down_any, w.start, w.end) > 0)
        || (v.connected_at_start && published_to(ctx.run, c, w.start, w.end));
    let client_band = ctx
        .keepalive_s
        .and_then(|k| {
            let rule = bands::client(ctx.client_library, k)?;
            Some(match ctx.user_timeout_s {
                Some(ut) => rule.with_user_timeout(ut, f64::from(k)),
                None => rule,
            })
        })
        .filter(|_| silent);
    let broker_band = ctx
        .broker_keepalive_s
        .and_then(|k| {
            let silent_before = last_heard
                .filter(|_| !ctx.acks_hidden)
                .map(|t| (w.start - t) as f64 / 1e6);
            bands::broker(
                ctx.broker,
                k,
                ctx.client_library,
                silent_before,
                kept_sending,
            )
        })
        .filter(|_| silent);
    let detect = gave_up.detect;
    let broker_detect = broker.detect;
    let detect_s = detect.as_ref().map(|d| secs(d.0 - w.start));
    let broker_s = broker_detect.as_ref().map(|d| secs(d.0 - w.start));

    let stale = stale::stale_data(
        ctx,
        &v,
        w,
        stale::Reconnect {
            connack: back.connack.map(|a| a.ts_us),
            suback: back.suback.map(|a| a.ts_us),
            // The client left its connection when it closed it or, if it said so first, when
            // it gave up (a real link may carry its FIN only after the restore).
            abandoned: gave_up.own.map(|e| e.ts_us),
        },
    );
    let will = ctx.wills.map(|wills| {
        let times = wills.get(&c.id).map_or(&[][..], |t| t.as_slice());
        will::heard(times, w, &v, back.connack.map(|a| a.ts_us))
    });
    let session = ctx.session;
    let will_band = broker_band
        .clone()
        .zip(will.as_ref())
        .and_then(|(b, heard)| {
            let rule = bands::will(
                b,
                ctx.broker,
                session.will_delay_s,
                session.session_expiry_s,
            )?;
            let takeover = will::takeover_publishes(
                ctx.broker,
                session.clean_session,
                session.session_expiry_s,
                session.will_delay_s,
            );
            Some(will::judge(heard, rule, watched, takeover, w))
        });
    let stories = stories::told(
        ctx,
        c,
        w,
        &v,
        &gave_up,
        &broker,
        stale.as_ref(),
        watched,
        will.as_ref(),
    );

    WindowMetrics {
        client: c.id.clone(),
        // Set by the caller, which sees every window.
        inside_fault: None,
        overlapped_by: Vec::new(),
        client_detect_s: detect_s,
        client_detect_how: detect.map(|d| d.1),
        client_detect_band: client_band.map(|b| {
            let mut band = b.judge(detect_s, watched);
            // The broker closed the connection first and its reset or FIN reached the client:
            // the client learned of the outage from the broker, not by its own keepalive rule,
            // so the rule's band says nothing about when.
            let told_by_broker = matches!(
                detect.map(|d| d.1),
                Some(DetectHow::Cause(
                    DisconnectCause::ConnectionReset
                        | DisconnectCause::ClosedByPeer
                        | DisconnectCause::ConnectionLost
                ))
            );
            if let (true, Some(b), Some(d)) = (told_by_broker, broker_s, detect_s) {
                if b <= d && band.verdict == Verdict::Outside {
                    band.verdict = Verdict::NotDecidable;
                    band.why = format!("the broker dropped the connection first ({b:.3} s into the outage) and the client learned of it from the broker's close at {d:.3} s, not by its own keepalive rule");
                }
            }
            band
        }),
        broker_detect_s: broker_s,
        broker_detect_how: broker_detect.map(|d| d.1),
        broker_detect_band: broker_band.map(|b| {
            let mut band = b.judge(broker_s, watched);
            // mosquitto's log stamps whole seconds: a drop read from it happened within the
            // second after its stamp, so a stamp up to 1 s below the band is no evidence of an
            // early drop.
            let whole_second_log = matches!(broker_detect.map(|d| d.1), Some(DetectHow::BrokerLog))
                && broker_detect.is_some_and(|d| d.0 % 1_000_000 == 0 || d.0 == w.start);
            if let (true, Some(m)) = (whole_second_log, broker_s) {
                if band.verdict == Verdict::Outside
                    && m < band.low_s - band.tolerance_s
                    && m + 1.0 >= band.low_s - band.tolerance_s
                {
                    band.verdict = Verdict::Inside;
                    band.why = format!("{m:.3} s is the broker log's whole-second stamp: the drop came within the second after it, which reaches the band");
                }
            }
            if inferred && broker_s.is_none() {
                band.verdict = Verdict::NotDecidable;
                band.why = "the broker's side of this outage is not visible in this capture".into();
            }
            band
        }),
        will_s: will.as_ref().and_then(|h| h.at).map(|t| secs(t - w.start)),
        will_band,
        will_after_connack_s: will
            .as_ref()
            .and_then(|h| h.at.zip(h.after_connack))
            // `+ 0.0`: a will a rounding below the CONNACK is 0.000, not -0.000.
            .map(|(at, connack)| secs(at - connack) + 0.0),
        reconnect_s: back.connack.map(|a| secs(a.ts_us - w.end)),
        resubscribe_s: back.suback.map(|s| secs(s.ts_us - w.end)),
        connect_attempts: back.attempts,
        attempt_failures: back.failures,
        reconnect_attempt_started_s: back.attempt_started.map(|t| secs(t - w.end)),
        first_fresh_s: back.fresh.map(|f| secs(f.ts_us - w.end)),
        session_present: back.connack.and_then(|a| match &a.kind {
            EventKind::Connack(x) => Some(x.session_present),
            _ => None,
        }),
        resubscribed: back.resubscribed,
        reported_by_client: !c.from_wire,
        wire_detect_s: None,
        wire_detect_how: None,
        wire_reconnect_s: None,
        wire_resubscribe_s: None,
        client_minus_wire: WireDifference::default(),
        connected_at_start: v.connected_at_start,
        broker_side_visible: !inferred,
        stale,
        retransmitted: ctx
            .wire
            .shows_retransmissions()
            .then(|| stale::retransmitted(index, &ctx.run.frames, c, w)),
        stories,
        raw_us: [
            detect.map(|d| d.0),
            back.connack.map(|a| a.ts_us - w.end),
            back.suback.map(|s| s.ts_us - w.end),
        ],
    }
}

/// Every window's report, each subscriber it plays on measured in it (by its own events and
/// by the wire's), and each window's settling time: the latest moment any band allows a
/// detection.
pub(crate) fn reports(
    ctx: &RunContext<'_>,
    clients: &BTreeMap<String, Client<'_>>,
    wire_clients: &BTreeMap<&str, Client<'_>>,
    windows: &[Window],
    run_end: i64,
) -> (Vec<WindowReport>, Vec<i64>) {
    let mut window_reports = Vec::new();
    let mut settle = Vec::new();
    // A fault played on some subscribers (`target = "client=PATTERN"`) is measured on those
    // only: the others had no outage to notice, ride through or be judged against.
    let targets: Vec<Option<linecut_model::glob::Glob>> = windows
        .iter()
        .map(|w| linecut_model::spec_target(&w.spec))
        .collect();
    let plays_on = |i: usize, client: &str| targets[i].as_ref().is_none_or(|g| g.matches(client));
    for (i, w) in windows.iter().enumerate() {
        let subscribers: Vec<WindowMetrics> = clients
            .values()
            .filter(|c| plays_on(i, &c.id))
            .map(|c| {
                // Faults overlap per subscriber (the review's D5: a reject inside a cut was
                // taken for the cut's end, and the cut's detection credited to the reject).
                // A fault that began while an earlier one on this subscriber was on is inside
                // it: the earlier window measures both.
                let inside = (0..i)
                    .find(|&a| {
                        plays_on(a, &c.id)
                            && windows[a].start <= w.start
                            && w.start < windows[a].end
                    })
                    .map(|a| windows[a].fault);
                if let Some(fault) = inside {
                    return WindowMetrics {
                        client: c.id.clone(),
                        inside_fault: Some(fault),
                        ..WindowMetrics::default()
                    };
                }
                let later = || (i + 1..windows.len()).filter(|&n| plays_on(n, &c.id));
                // This window's analysis runs to the next fault on this subscriber that began
                // after it ended; exclusive, so the run's last event belongs to the last one.
                let horizon = later()
                    .map(|n| windows[n].start)
                    .find(|&start| start >= w.end)
                    .unwrap_or(run_end + 1);
                let overlapped_by = later()
                    .filter(|&n| windows[n].start < w.end)
                    .map(|n| windows[n].fault)
                    .collect();
                // Measured from when the fault reached this subscriber, where the run says.
                let own = w.for_client(&c.id);
                let lived = own.as_ref().unwrap_or(w);
                let mut m = window_metrics(ctx, c, lived, horizon);
                m.overlapped_by = overlapped_by;
                let seen = window_metrics(ctx, &wire_clients[c.id.as_str()], lived, horizon);
                m.reported_by_client = !c.from_wire;
                m.wire_detect_s = seen.client_detect_s;
                m.wire_reconnect_s = seen.reconnect_s;
                m.wire_resubscribe_s = seen.resubscribe_s;
                // From the unrounded times: two values rounded to the millisecond would turn
                // a 0.16 ms difference into 1 ms.
                let diff = |a: Option<i64>, b: Option<i64>| {
                    a.zip(b)
                        .map(|(a, b)| ((a - b) as f64 / 10.0).round() / 100.0)
                };
                m.wire_detect_how = seen.client_detect_how;
                // A new connection is not a give-up: when the client's close never crossed
                // (a FIN waits behind unacknowledged data on a cut link), the wire shows no
                // give-up, and a difference against its next SYN would be meaningless.
                let wire_gave_up = seen.client_detect_how != Some(DetectHow::NewConnection)
                    || !ctx.wire.fins_wait_behind_data();
                m.client_minus_wire = WireDifference {
                    detect_ms: diff(m.raw_us[0], seen.raw_us[0].filter(|_| wire_gave_up)),
                    reconnect_ms: diff(m.raw_us[1], seen.raw_us[1]),
                    resubscribe_ms: diff(m.raw_us[2], seen.raw_us[2]),
                };
                m
            })
            .collect();
        // The window's settling time: the latest moment any band allows a detection.
        let latest_s = subscribers
            .iter()
            .flat_map(|m| [&m.client_detect_band, &m.broker_detect_band, &m.will_band])
            .flatten()
            .map(|b| b.high_s + b.tolerance_s)
            .fold(0.0, f64::max);
        settle.push(w.start + (latest_s * 1e6) as i64);
        let distribution = Metric::timings()
            .filter_map(|metric| {
                let values: Vec<Option<f64>> = subscribers
                    .iter()
                    .filter(|m| m.inside_fault.is_none())
                    .map(|m| timing(m, metric))
                    .collect();
                Distribution::of(&values).map(|d| (metric.name().to_string(), d))
            })
            .collect();
        window_reports.push(WindowReport {
            fault: w.fault,
            kind: w.kind.clone(),
            spec: w.spec.clone(),
            outage_start_us: w.start,
            outage_end_us: w.end,
            subscribers,
            distribution,
        });
    }
    (window_reports, settle)
}
