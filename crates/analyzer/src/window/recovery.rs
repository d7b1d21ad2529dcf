//! How the client came back after it gave up: its accepted CONNACK, its SUBACK, whether it
//! subscribed again, the attempts and their failures, and its first fresh message.

use super::Window;
use crate::clients::{cause_name, first, Client};
use crate::load::Delivery;
use linecut_events::{Event, EventKind};
use std::collections::BTreeMap;

/// The way back.
pub(crate) struct CameBack<'a> {
    pub connack: Option<&'a Event>,
    pub suback: Option<&'a Event>,
    /// Whether it sent SUBSCRIBE on the new session (before a later CONNACK).
    pub resubscribed: Option<bool>,
    pub attempts: u32,
    pub failures: BTreeMap<String, u32>,
    /// When the attempt that succeeded began.
    pub attempt_started: Option<i64>,
    /// The first message published after the outage that reached it.
    pub fresh: Option<&'a Delivery>,
}

/// The way back from `after` (the give-up, or the outage start when the connection was gone).
pub(crate) fn came_back<'a>(c: &'a Client, w: &Window, after: Option<i64>) -> CameBack<'a> {
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
    // The new connection begins at the attempt that made it, when the client reports its
    // attempts: a client may write SUBSCRIBE right after CONNECT, before the CONNACK reaches
    // it (MQTT 3.1.1 §3.1.4 allows it; aiomqtt does so when it reconnects), and that is a
    // subscription on the new session too.
    let resubscribed = connack.map(|a| {
        let attempt = c
            .events
            .iter()
            .rev()
            .filter(|e| e.ts_us <= a.ts_us && after.is_none_or(|t| e.ts_us > t))
            .find(|e| matches!(e.kind, EventKind::ConnectAttempt(_)));
        first(
            &c.events,
            attempt.map_or(a.ts_us, |e| e.ts_us),
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
        .copied()
        .find(|d| d.ts_us >= w.end && d.pub_ts_us.is_some_and(|p| p > w.end));
    CameBack {
        connack,
        suback,
        resubscribed,
        attempts,
        failures,
        attempt_started,
        fresh,
    }
}
