//! When the rest of the system heard the subscriber was gone: the first of its wills the
//! watcher received in the window, and where that will stands against the client's own way
//! back — before it, with it (the broker publishing the old connection's will as the new one
//! takes the session over), or after it, when the backend was told "offline" about a device
//! that was connected again.

use super::{View, Window};
use crate::bands::{Rule, Watched};
use crate::clients::{secs, SAME_MOMENT_US};
use crate::report::{Band, Verdict};
use linecut_model::BrokerFamily;

/// The will of one window, as the watcher heard it.
pub(crate) struct Heard {
    /// When the watcher received it.
    pub at: Option<i64>,
    /// The client's accepted CONNACK on its new connection, when the will came at or after it.
    pub after_connack: Option<i64>,
}

impl Heard {
    /// The will came at the client's CONNACK (within the same moment): the broker published the
    /// old connection's will as the new one took the session over.
    pub fn at_takeover(&self) -> bool {
        match (self.at, self.after_connack) {
            (Some(at), Some(connack)) => at - connack <= SAME_MOMENT_US,
            _ => false,
        }
    }
}

/// The first will in `wills` (the watcher's times for this client, in order) between the
/// outage start and the window's horizon; `connack`, the client's way back.
pub(crate) fn heard(wills: &[i64], w: &Window, v: &View, connack: Option<i64>) -> Heard {
    let at = wills
        .iter()
        .copied()
        .find(|t| *t >= w.start && *t < v.horizon);
    // A will a moment before the CONNACK is the takeover too: the broker sends the old
    // connection's will before it answers the new one.
    let after_connack = at
        .zip(connack)
        .filter(|(at, connack)| *at >= connack - SAME_MOMENT_US)
        .map(|(_, connack)| connack);
    Heard { at, after_connack }
}

/// Whether the broker publishes the old connection's will when a new connection with the same
/// client id takes over, for the session the client asked for: mosquitto does when the old
/// session was clean (3.1.1) or had no expiry (MQTT 5), and then only without a Will Delay
/// Interval (a delayed will is cleared by the takeover; `handle_connect.c`). rumqttd fires the
/// pending will when the new connection starts clean (`server/broker.rs`).
pub(crate) fn takeover_publishes(
    broker: BrokerFamily,
    clean: Option<bool>,
    session_expiry_s: Option<u32>,
    delay_s: Option<u32>,
) -> Option<(bool, &'static str)> {
    let clean_or_ends = clean == Some(true) || session_expiry_s == Some(0);
    match broker {
        BrokerFamily::Mosquitto => Some((
            clean_or_ends && delay_s.unwrap_or(0) == 0,
            "mosquitto publishes the old connection's will on a takeover when its session was clean (3.1.1) or had no expiry (MQTT 5), and never when the will had a delay (handle_connect.c)",
        )),
        BrokerFamily::Rumqttd => Some((
            clean == Some(true),
            "rumqttd publishes the pending will when the new connection starts with a clean session, and cancels it otherwise (server/broker.rs)",
        )),
        BrokerFamily::Aedes => Some((
            true,
            "aedes closes the old connection on a takeover (aedes.js `registerClient`) and publishes its will as for any close without DISCONNECT (lib/client.js `close`)",
        )),
        _ => None,
    }
}

/// Whether the broker leaves the old connection running when a new one with the same client id
/// connects, for the session the new connection asks for, and the rule in words. amqtt 0.12.1
/// with a clean session deletes the old session's subscriptions and queues (broker.py:508-511,
/// `_delete_session` :912-924) and never stops the old connection's handler: the takeover at
/// :568-575 is reached only by a persistent session. The old connection lives on until it ends
/// by itself, and its will is published then (`_handle_disconnect`, :674-692).
pub(crate) fn keeps_old_connection(
    broker: BrokerFamily,
    clean: Option<bool>,
) -> Option<&'static str> {
    (broker == BrokerFamily::Amqtt && clean == Some(true)).then_some(
        "amqtt, for a new connection with a clean session, deletes the old session's subscriptions and leaves the old connection running until it ends by itself, publishing its will then (broker.py `_delete_session`; its takeover is for persistent sessions only)",
    )
}

/// The verdict on the window's will: by the broker's drop band, or, for a will that came with
/// the takeover, by the broker's takeover rule.
pub(crate) fn judge(
    heard: &Heard,
    band: Rule,
    watched: Watched,
    takeover: Option<(bool, &'static str)>,
    w: &Window,
) -> Band {
    let measured = heard.at.map(|t| secs(t - w.start));
    if !heard.at_takeover() {
        return band.judge(measured, watched);
    }
    let mut b = band.judge(measured, watched);
    match takeover {
        Some((publishes, rule)) => {
            b.rule = format!("{rule}; when the broker drops the client first: {}", b.rule);
            (b.verdict, b.why) = if publishes {
                (
                    Verdict::Inside,
                    format!(
                        "{:.3} s: the will came with the client's new connection taking the session over, as the broker's takeover rule gives",
                        measured.unwrap_or_default()
                    ),
                )
            } else {
                (
                    Verdict::Outside,
                    format!(
                        "{:.3} s: the will came with the client's new connection taking the session over, which the broker's takeover rule does not give for this session",
                        measured.unwrap_or_default()
                    ),
                )
            };
        }
        None => {
            b.verdict = Verdict::NotDecidable;
            b.why =
                "the will came with the takeover, and no takeover rule is known for this broker"
                    .into();
        }
    }
    b
}
