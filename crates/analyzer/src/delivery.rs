//! The delivery verdict: did the subscriber get what its QoS and session promised?
//!
//! The promise is read off what the client asked for and what the broker answered: the QoS is
//! the lower of the subscription's and the publisher's; QoS 0 promises nothing (a loss is
//! allowed, and counted). QoS 1 and 2 promise every message published while the subscription
//! lived, as long as the session lived: a lost message is explained only by a session that
//! ended — a reconnect whose CONNACK says `session_present = 0` — and that end is allowed only
//! when the client asked for it (a clean session, or an MQTT 5 Session Expiry Interval shorter
//! than its absence). A session the client asked to keep and the broker lost (a restart without
//! persistence) breaks the promise. QoS 1 allows duplicates (counted, and how many the wire
//! shows flagged DUP); QoS 2 allows none.
//!
//! Each lost message is attributed to the first session end after its publish — up to the
//! SUBACK that restored the subscription, since a message published between the new CONNACK
//! and that SUBACK had no subscription to go to.

use crate::clients::{secs, Client};
use crate::report::DeliveryVerdict;
use crate::report::{Missing, Promise};
use crate::window::Window;
use crate::{Publish, Run};
use linecut_events::EventKind;
use serde::{Deserialize, Serialize};

/// What the run's data said of one subscriber: the messages it was owed and lost, and the ones
/// it got twice.
pub(crate) struct Ledger<'a> {
    /// Everything published on its topics while it was subscribed, in time order.
    pub published: Vec<&'a Publish>,
    pub lost: Vec<&'a Publish>,
    /// (topic, seq) of each message received more than once, once per extra copy.
    pub doubled: Vec<(u32, u64)>,
}

/// The verdict's word.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kept {
    AsPromised,
    Broken,
    /// A loss fell where the session's end may or may not have been the client's choice (its
    /// absence and its session expiry too close to tell).
    NotDecidable,
}

/// One end of the subscriber's session: a reconnect whose CONNACK said the broker had none.
struct SessionEnd {
    /// The CONNACK that said so.
    connack: i64,
    /// The SUBACK that restored the subscription (or the CONNACK, when none came).
    resubscribed: i64,
    /// Why the session ended, if the client asked for it to: `Some(true)` allowed,
    /// `Some(false)` the broker's doing, `None` not decidable.
    allowed: Option<bool>,
    why: String,
}

/// What the client asked of its session: read off its CONNECT (the report's session facts).
pub(crate) struct Asked {
    pub clean: Option<bool>,
    pub session_expiry_s: Option<u32>,
    pub v5: bool,
}

/// The subscriber's session ends, in time order, each judged against what it asked for;
/// `drops`, when the broker was seen dropping its connections (the session's expiry counts
/// from there).
fn session_ends(c: &Client, windows: &[Window], drops: &[i64], asked: &Asked) -> Vec<SessionEnd> {
    let mut ends = Vec::new();
    let mut first = true;
    for (i, e) in c.events.iter().enumerate() {
        let EventKind::Connack(a) = &e.kind else {
            continue;
        };
        if a.code != 0 {
            continue;
        }
        if first {
            first = false;
            continue;
        }
        if a.session_present {
            continue;
        }
        let resubscribed = c.events[i + 1..]
            .iter()
            .take_while(|n| !matches!(&n.kind, EventKind::Connack(_)))
            .find(|n| matches!(&n.kind, EventKind::Suback(_)))
            .map_or(e.ts_us, |n| n.ts_us);
        // The client was away from the start of the outage it came back from (the latest
        // window that began before this CONNACK) — at most: the broker may have noticed later.
        let away_s = windows
            .iter()
            .filter(|w| w.start <= e.ts_us)
            .map(|w| secs(e.ts_us - w.start))
            .reduce(f64::min);
        let (allowed, why) = if asked.clean == Some(true) {
            (
                Some(true),
                if asked.v5 {
                    "the client asked for a clean start".to_string()
                } else {
                    "the client asked for a clean session".to_string()
                },
            )
        } else if asked.v5 && asked.session_expiry_s.unwrap_or(0) == 0 {
            (
                Some(true),
                "the client asked for no Session Expiry Interval: its session ended with its connection"
                    .to_string(),
            )
        } else {
            // Since the broker dropped the connection: known when it was seen doing so.
            let away_from_drop_s = drops
                .iter()
                .filter(|d| **d <= e.ts_us)
                .max()
                .map(|d| secs(e.ts_us - d));
            match (asked.v5, asked.session_expiry_s, away_s) {
                (true, Some(expiry), _)
                    if away_from_drop_s.is_some_and(|a| f64::from(expiry) < a) =>
                {
                    (
                        Some(true),
                        format!(
                            "the client's Session Expiry Interval ({expiry} s) was shorter than the {:.3} s from the broker dropping its connection to its return: the session expired as it asked",
                            away_from_drop_s.unwrap_or_default()
                        ),
                    )
                }
                (true, Some(expiry), Some(away)) if f64::from(expiry) < away => (
                    None,
                    format!("the client's Session Expiry Interval ({expiry} s) was shorter than the {away:.3} s from the outage start to its return, so the session may have expired by the client's own setting"),
                ),
                (true, Some(expiry), _) => (
                    Some(false),
                    format!("the client asked for a session that outlives {expiry} s of absence, and was back sooner, yet the broker had none"),
                ),
                _ => (
                    Some(false),
                    "the client asked to keep its session (clean_session = 0), yet the broker had none".to_string(),
                ),
            }
        };
        ends.push(SessionEnd {
            connack: e.ts_us,
            resubscribed,
            allowed,
            why,
        });
    }
    ends
}

/// The broker's queue for a kept session: for a client that is away (from when the broker
/// dropped it to its next CONNACK) it takes a message only while the session holds fewer than
/// `limit`, in flight ones included, and drops the rest (mosquitto's `db__ready_for_queue`;
/// measured: with a limit of 5, nothing published after the drop survived the 20 messages
/// already in flight).
struct QueueLimit<'a> {
    limit: u32,
    /// Each absence: from the drop to the CONNACK that found the session, with the moment the
    /// client's acknowledgements stopped (the outage's start): every message since then is
    /// still the session's, in flight or queued, and counts against the limit.
    absences: Vec<(i64, i64, i64)>,
    published: &'a [&'a Publish],
}

impl<'a> QueueLimit<'a> {
    fn of(
        run: &Run,
        c: &Client,
        windows: &[Window],
        drops: &[i64],
        ledger: &'a Ledger<'a>,
    ) -> Option<QueueLimit<'a>> {
        // 0 is mosquitto's "no limit".
        let limit = run.max_queued_messages.filter(|l| *l > 0)?;
        let connacks: Vec<i64> = c
            .events
            .iter()
            .filter(
                |e| matches!(&e.kind, EventKind::Connack(a) if a.code == 0 && a.session_present),
            )
            .map(|e| e.ts_us)
            .collect();
        let absences = drops
            .iter()
            .filter_map(|d| {
                let back = connacks.iter().find(|t| *t > d)?;
                let unacked_from = windows
                    .iter()
                    .map(|w| w.start)
                    .filter(|s| s <= d)
                    .max()
                    .unwrap_or(*d);
                Some((unacked_from, *d, *back))
            })
            .collect();
        Some(QueueLimit {
            limit,
            absences,
            published: &ledger.published,
        })
    }

    /// Whether `p`, published while the client was away, found the session's queue full.
    fn dropped(&self, p: &Publish) -> bool {
        let Some(&(from, _, _)) = self
            .absences
            .iter()
            .find(|(_, dropped, back)| p.ts_us >= *dropped && p.ts_us < *back)
        else {
            return false;
        };
        // `published` is in time order (the run's publishes are sorted when loaded).
        let first = self.published.partition_point(|q| q.ts_us < from);
        let this = self.published.partition_point(|q| q.ts_us < p.ts_us);
        this - first >= self.limit as usize
    }
}

/// The verdict for subscriber `c`, given its `ledger`, the subscription's QoS, what it asked of
/// its session, and how many of its deliveries the wire showed flagged DUP.
#[allow(clippy::too_many_arguments)]
pub(crate) fn verdict(
    run: &Run,
    c: &Client,
    windows: &[Window],
    drops: &[i64],
    ledger: &Ledger<'_>,
    subscribe_qos: Option<u8>,
    asked: &Asked,
    dup_flagged: Option<u64>,
    start: i64,
) -> Option<DeliveryVerdict> {
    let sub_qos = subscribe_qos?;
    // The publisher's QoS: what its messages on this subscriber's topics carried.
    let pub_qos = run.publishes.iter().map(|p| p.qos).max()?;
    let qos = sub_qos.min(pub_qos);
    let missing = |p: &Publish, session_present: Option<bool>| Missing {
        topic: run.topic_name(p.topic).to_string(),
        seq: p.seq,
        published_s: secs(p.ts_us - start),
        session_present,
    };
    let lost = ledger.lost.len() as u64;
    let duplicates = ledger.doubled.len() as u64;
    let promise = match qos {
        0 => Promise::AtMostOnce,
        1 => Promise::AtLeastOnce,
        _ => Promise::ExactlyOnce,
    };
    let mut v = DeliveryVerdict {
        qos,
        promise,
        kept: Kept::AsPromised,
        why: String::new(),
        lost_allowed: 0,
        lost_promised: 0,
        duplicates,
        duplicates_flagged: dup_flagged,
        first_missing: None,
        first_doubled: None,
    };
    if qos == 0 {
        v.lost_allowed = lost;
        v.why = format!(
            "QoS {qos} (subscription {sub_qos}, publisher {pub_qos}) promises at most once: {lost} lost, which it allows"
        );
        return Some(v);
    }
    let ends = session_ends(c, windows, drops, asked);
    let queue = QueueLimit::of(run, c, windows, drops, ledger);
    let mut undecided = 0u64;
    let mut queue_dropped = 0u64;
    let mut ended_as_asked = 0u64;
    let mut broken_end: Option<&SessionEnd> = None;
    for p in &ledger.lost {
        let end = ends.iter().find(|e| p.ts_us < e.resubscribed);
        if end.is_none() && queue.as_ref().is_some_and(|q| q.dropped(p)) {
            // Kept session, but the broker's queue for it was full.
            queue_dropped += 1;
            v.lost_allowed += 1;
            continue;
        }
        match end.map(|e| e.allowed) {
            Some(Some(true)) => {
                v.lost_allowed += 1;
                ended_as_asked += 1;
            }
            Some(None) => undecided += 1,
            Some(Some(false)) | None => {
                v.lost_promised += 1;
                if v.first_missing.is_none() {
                    v.first_missing = Some(missing(p, end.map(|_| false)));
                    broken_end = end;
                }
            }
        }
    }
    if qos == 2 {
        if let Some(&(topic, seq)) = ledger.doubled.first() {
            let published = run
                .publishes
                .iter()
                .find(|p| p.topic == topic && p.seq == seq);
            v.first_doubled = published.map(|p| missing(p, None));
        }
    }
    let allowed_why = ends
        .iter()
        .find(|e| e.allowed == Some(true))
        .map(|e| e.why.clone());
    v.kept = if v.lost_promised > 0 || (qos == 2 && duplicates > 0) {
        Kept::Broken
    } else if undecided > 0 {
        Kept::NotDecidable
    } else {
        Kept::AsPromised
    };
    let mut parts = vec![format!(
        "QoS {qos} (subscription {sub_qos}, publisher {pub_qos}) promises {}",
        if qos == 1 {
            "at least once"
        } else {
            "exactly once"
        }
    )];
    if let Some(first) = &v.first_missing {
        parts.push(format!(
            "{} message(s) the session promised never arrived, the first seq {} on {} published at t+{:.3} s{}",
            v.lost_promised,
            first.seq,
            first.topic,
            first.published_s,
            match broken_end {
                Some(e) => format!(
                    " ({}: its CONNACK at t+{:.3} s said session_present = 0)",
                    e.why,
                    secs(e.connack - start)
                ),
                None => " (no session end explains it: the session was present on every reconnect after it)".into(),
            }
        ));
    }
    if ended_as_asked > 0 {
        parts.push(format!(
            "{ended_as_asked} lost with a session that ended as the client asked ({})",
            allowed_why.unwrap_or_default()
        ));
    }
    if queue_dropped > 0 {
        let limit = queue.as_ref().map_or(0, |q| q.limit);
        parts.push(format!(
            "{queue_dropped} lost while the client was away and its session already held {limit} or more messages, in flight or queued: the broker's max_queued_messages = {limit} drops the rest"
        ));
    }
    if undecided > 0 {
        let why = ends
            .iter()
            .find(|e| e.allowed.is_none())
            .map(|e| e.why.clone())
            .unwrap_or_default();
        parts.push(format!("{undecided} lost where {why}"));
    }
    if duplicates > 0 {
        let flagged = dup_flagged
            .map(|n| format!(", {n} of the deliveries flagged DUP on the wire"))
            .unwrap_or_default();
        parts.push(if qos == 1 {
            format!("{duplicates} duplicate(s), which QoS 1 allows{flagged}")
        } else {
            let first = v.first_doubled.as_ref();
            format!(
                "{duplicates} duplicate(s), which QoS 2 does not allow{}{flagged}",
                first
                    .map(|f| format!(", the first seq {} on {}", f.seq, f.topic))
                    .unwrap_or_default()
            )
        });
    }
    if lost == 0 && duplicates == 0 {
        parts.push("every message arrived".into());
    }
    v.why = parts.join("; ");
    Some(v)
}
