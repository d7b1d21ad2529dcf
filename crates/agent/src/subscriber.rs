//! The subscriber: connect, subscribe, receive, and log everything an outage analysis needs —
//! then reconnect and re-subscribe according to policy when the connection dies.
//!
//! The loop is plain state logic over a [`Session`]: it never sleeps to synchronise, only to
//! honour the reconnect policy, and every state change it makes is an event in the log.

use crate::connection::{next_or_stop, Connection};
use crate::options::SubscriberOptions;
use crate::session::{Session, SessionEvent};
use linecut_events::{
    DisconnectCause, Disconnected, EventKind, EventSink, Message, Suback, SubscribeReason,
    SubscribeSent, TopicFilter,
};
use linecut_model::payload;
use linecut_model::ResubscribePolicy;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::watch;

/// Live counters shared by running subscribers, for progress displays and for waiting until a
/// fleet is subscribed. Updated as events happen; read at any time.
#[derive(Debug, Default)]
pub struct Progress {
    /// Subscribers with a live connection (CONNACK accepted, no error since).
    pub connected: AtomicU32,
    /// Subscribers that have had at least one SUBACK.
    pub subscribed: AtomicU32,
    /// Messages delivered, all subscribers together.
    pub messages: AtomicU64,
}

/// What one subscriber did, for summaries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SubscriberStats {
    pub messages: u64,
    pub foreign: u64,
    pub connacks: u32,
    pub disconnects: u32,
}

/// Resolves once `stop` says true (or its sender is gone).
pub(crate) async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// Runs one subscriber until `stop` turns true, then disconnects cleanly.
pub async fn run_subscriber<S: Session>(
    options: &SubscriberOptions,
    client_id: &str,
    mut session: S,
    sink: &EventSink,
    mut stop: watch::Receiver<bool>,
    progress: &Progress,
) -> SubscriberStats {
    let requests = session.requests();
    let mut acked_once = false;
    let client = client_id.to_string();
    let mut stats = SubscriberStats::default();
    let mut connection =
        Connection::start(client_id, &options.broker, options.settings.reconnect, sink);
    let mut subscribed_once = false;
    let mut connected = false;
    loop {
        let Some(polled) = next_or_stop(&mut session, &mut stop).await else {
            break;
        };
        match polled {
            Ok(SessionEvent::ConnAck {
                code,
                session_present,
            }) => {
                stats.connacks += 1;
                connection.connack(code, session_present);
                if code != 0 {
                    continue;
                }
                if !connected {
                    progress.connected.fetch_add(1, Ordering::Relaxed);
                }
                connected = true;
                let reason = if !subscribed_once {
                    Some(SubscribeReason::First)
                } else {
                    match options.settings.resubscribe {
                        ResubscribePolicy::Always => Some(SubscribeReason::Always),
                        ResubscribePolicy::WhenSessionLost if !session_present => {
                            Some(SubscribeReason::SessionLost)
                        }
                        _ => None,
                    }
                };
                if let Some(reason) = reason {
                    match requests.subscribe(&options.settings.topics) {
                        Ok(()) => {
                            subscribed_once = true;
                            sink.emit(EventKind::SubscribeSent(SubscribeSent {
                                client: client.clone(),
                                topics: options
                                    .settings
                                    .topics
                                    .iter()
                                    .map(|t| TopicFilter {
                                        filter: t.name.clone(),
                                        qos: Some(t.qos),
                                    })
                                    .collect(),
                                reason,
                            }));
                        }
                        Err(e) => tracing::warn!("{client}: cannot queue SUBSCRIBE: {}", e.text),
                    }
                }
            }
            Ok(SessionEvent::SubAck { packet_id, codes }) => {
                if !acked_once {
                    acked_once = true;
                    progress.subscribed.fetch_add(1, Ordering::Relaxed);
                }
                sink.emit(EventKind::Suback(Suback {
                    client: client.clone(),
                    packet_id,
                    codes,
                }));
            }
            Ok(SessionEvent::Publish {
                topic,
                qos,
                dup,
                retain,
                packet_id,
                payload,
            }) => {
                let stamp = payload::decode(&payload);
                stats.messages += 1;
                progress.messages.fetch_add(1, Ordering::Relaxed);
                stats.foreign += u64::from(stamp.is_none());
                sink.emit(EventKind::Message(Message {
                    client: client.clone(),
                    topic,
                    qos,
                    dup,
                    retain,
                    packet_id,
                    payload_len: payload.len() as u32,
                    seq: stamp.map(|s| s.seq),
                    pub_ts_us: stamp.map(|s| s.pub_ts_us),
                    foreign: stamp.is_none(),
                }));
            }
            Ok(SessionEvent::PingSent) => connection.ping_sent(),
            Ok(SessionEvent::PingReceived) => connection.ping_received(),
            Ok(_) => {}
            Err(error) => {
                if connected {
                    progress.connected.fetch_sub(1, Ordering::Relaxed);
                }
                connected = false;
                stats.disconnects += 1;
                if !connection.failed(error, &mut stop).await {
                    break;
                }
            }
        }
    }
    if connected {
        progress.connected.fetch_sub(1, Ordering::Relaxed);
    }
    if connected && requests.disconnect().is_ok() {
        // Drive the loop until the DISCONNECT is written (or the connection is already gone).
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            loop {
                match session.poll().await {
                    Ok(SessionEvent::DisconnectSent) | Err(_) => break,
                    Ok(_) => {}
                }
            }
        })
        .await;
    }
    sink.emit(EventKind::Disconnected(Disconnected {
        client,
        cause: DisconnectCause::Requested,
        error: "stopped".into(),
    }));
    stats
}
