//! The will watcher: the rest of the system, as far as a run can stand for it. A subscriber on
//! the subscribers' will topics, connected straight to the broker (no fault touches it), that
//! records every will it receives, with whose will it is.
//!
//! A will is told from other traffic on its topic by its exact topic and payload, which
//! `[subscriber] will` makes unique per subscriber (`{client_id}` in one of them). The watcher
//! says when it is subscribed, so a run can start its subscribers only once no will can be
//! missed.

use crate::connection::{next_or_stop, Connection};
use crate::session::{Session, SessionEvent};
use linecut_events::{
    EventKind, EventSink, Suback, SubscribeReason, SubscribeSent, TopicFilter, WillReceived,
};
use linecut_model::{ReconnectPolicy, Topic};
use std::collections::HashMap;
use std::time::Duration;
use tokio::sync::watch;

/// One subscriber's will, as the watcher expects to hear it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpectedWill {
    pub client: String,
    pub topic: String,
    pub payload: Vec<u8>,
}

/// What the watcher listens for.
#[derive(Debug, Clone)]
pub struct WatcherOptions {
    pub client_id: String,
    pub wills: Vec<ExpectedWill>,
}

/// The QoS the watcher subscribes with: 1, so a will published at QoS 1 or 2 is not dropped on
/// the way to it (QoS 2 adds nothing to when it arrives, and not every broker grants it).
const WATCH_QOS: u8 = 1;

/// It is not under test: back at once after a failure, steadily (as the publisher).
const RECONNECT: ReconnectPolicy = ReconnectPolicy::Fixed(Duration::from_millis(200));

impl WatcherOptions {
    /// The filters to subscribe to: each will topic once.
    pub fn topics(&self) -> Vec<Topic> {
        let mut topics: Vec<Topic> = Vec::new();
        for w in &self.wills {
            if !topics.iter().any(|t| t.name == w.topic) {
                topics.push(Topic {
                    name: w.topic.clone(),
                    qos: WATCH_QOS,
                });
            }
        }
        topics
    }
}

/// Runs the watcher on `session` until `stop` turns true; `subscribed` turns true at its first
/// SUBACK. Returns the wills it received.
pub async fn run_watcher<S: Session>(
    options: &WatcherOptions,
    mut session: S,
    sink: &EventSink,
    mut stop: watch::Receiver<bool>,
    subscribed: watch::Sender<bool>,
) -> u64 {
    let whose: HashMap<(&str, &[u8]), &str> = options
        .wills
        .iter()
        .map(|w| ((w.topic.as_str(), w.payload.as_slice()), w.client.as_str()))
        .collect();
    let topics = options.topics();
    let requests = session.requests();
    let mut connection = Connection::start(&options.client_id, "broker", RECONNECT, sink);
    let mut received = 0;
    while let Some(polled) = next_or_stop(&mut session, &mut stop).await {
        match polled {
            Ok(SessionEvent::ConnAck {
                code,
                session_present,
            }) => {
                connection.connack(code, session_present);
                // A clean session each time: subscribe on every connection.
                if code == 0 && requests.subscribe(&topics).is_ok() {
                    sink.emit(EventKind::SubscribeSent(SubscribeSent {
                        client: options.client_id.clone(),
                        topics: topics
                            .iter()
                            .map(|t| TopicFilter {
                                filter: t.name.clone(),
                                qos: Some(t.qos),
                            })
                            .collect(),
                        reason: SubscribeReason::Always,
                    }));
                }
            }
            Ok(SessionEvent::SubAck { packet_id, codes }) => {
                sink.emit(EventKind::Suback(Suback {
                    client: options.client_id.clone(),
                    packet_id,
                    codes,
                }));
                subscribed.send_replace(true);
            }
            Ok(SessionEvent::Publish {
                topic,
                qos,
                retain,
                payload,
                ..
            }) => {
                received += 1;
                let client = whose
                    .get(&(topic.as_str(), payload.as_slice()))
                    .map(|c| c.to_string());
                sink.emit(EventKind::WillReceived(WillReceived {
                    client,
                    topic,
                    qos,
                    retain,
                    payload_len: payload.len() as u32,
                }));
            }
            Ok(_) => {}
            Err(error) => {
                if !connection.failed(error, &mut stop).await {
                    break;
                }
            }
        }
    }
    received
}
