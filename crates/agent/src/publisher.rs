//! The publisher: a sample on every topic at a fixed interval, each payload stamped with its
//! sequence number and publish time (see `linecut_model::payload`).
//!
//! It connects straight to the broker — not through the proxy — so that the data an experiment
//! loses or delays is lost or delayed on the subscriber's side of the outage only. Publishing and
//! driving the connection run in separate tasks: a publish waiting for room in the request queue
//! must not stop pings and acknowledgements.

use crate::connection::{next_or_stop, Connection};
use crate::options::PublisherOptions;
use crate::session::{Requests, Session, SessionEvent};
use crate::subscriber::stopped;
use linecut_events::{
    now_us, DisconnectCause, Disconnected, EventKind, EventSink, Puback, Published,
};
use linecut_model::payload::{self, Stamp};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PublisherStats {
    pub published: u64,
    pub acknowledged: u64,
    /// Connections the broker accepted (CONNACK with code 0): 0 means it never connected, and
    /// `published` counts messages that never left.
    pub connections: u64,
}

/// What the connection driver counted.
#[derive(Debug, Default, Clone, Copy)]
struct Driven {
    acknowledged: u64,
    connections: u64,
}

/// Messages with QoS > 0 queued but not yet given a packet id, oldest first.
type Unnumbered = Arc<Mutex<VecDeque<(String, u64)>>>;

/// Runs the publisher until `stop` turns true.
pub async fn run_publisher<S: Session + 'static>(
    options: &PublisherOptions,
    session: S,
    sink: &EventSink,
    mut stop: watch::Receiver<bool>,
) -> PublisherStats {
    let requests = session.requests();
    let unnumbered: Unnumbered = Arc::default();
    let (loop_stop_tx, loop_stop) = watch::channel(false);
    let driver = tokio::spawn(drive(
        options.clone(),
        session,
        sink.clone(),
        loop_stop,
        unnumbered.clone(),
    ));
    let mut ticker = tokio::time::interval(options.settings.interval);
    // After a stall, carry on at the set rate rather than bursting to catch up.
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut seqs = vec![0u64; options.settings.topics.len()];
    let mut published = 0;
    'ticks: loop {
        tokio::select! {
            biased;
            _ = stopped(&mut stop) => break,
            _ = ticker.tick() => {}
        }
        for (topic, seq) in options.settings.topics.iter().zip(seqs.iter_mut()) {
            *seq += 1;
            let ts = now_us();
            let body = payload::encode(
                Stamp {
                    seq: *seq,
                    pub_ts_us: ts,
                },
                options.settings.size,
            );
            let len = body.len() as u32;
            if options.settings.qos > 0 {
                lock(&unnumbered).push_back((topic.clone(), *seq));
            }
            let sent = tokio::select! {
                biased;
                _ = stopped(&mut stop) => break 'ticks,
                sent = requests.publish(topic, options.settings.qos, options.settings.retain, body) => sent,
            };
            match sent {
                Ok(()) => {
                    published += 1;
                    sink.emit_at(
                        ts,
                        EventKind::Published(Published {
                            client: options.settings.client_id.clone(),
                            topic: topic.clone(),
                            seq: *seq,
                            qos: options.settings.qos,
                            retain: options.settings.retain,
                            payload_len: len,
                        }),
                    );
                }
                Err(e) => {
                    tracing::warn!("publish of {topic} #{seq} failed: {}", e.text);
                    break 'ticks;
                }
            }
        }
    }
    let driven = finish(&requests, loop_stop_tx, driver).await;
    PublisherStats {
        published,
        acknowledged: driven.acknowledged,
        connections: driven.connections,
    }
}

async fn finish(
    requests: &Requests,
    loop_stop: watch::Sender<bool>,
    mut driver: tokio::task::JoinHandle<Driven>,
) -> Driven {
    let _ = requests.disconnect();
    // Give the driver a moment to write the DISCONNECT, then stop it regardless.
    match tokio::time::timeout(Duration::from_secs(2), &mut driver).await {
        Ok(driven) => driven.unwrap_or_default(),
        Err(_) => {
            let _ = loop_stop.send(true);
            driver.await.unwrap_or_default()
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Drives the publisher's connection: logs it, reconnects by policy, matches PUBACKs to messages.
async fn drive<S: Session>(
    options: PublisherOptions,
    mut session: S,
    sink: EventSink,
    mut stop: watch::Receiver<bool>,
    unnumbered: Unnumbered,
) -> Driven {
    let client = options.settings.client_id.clone();
    let mut numbered: HashMap<u16, (String, u64)> = HashMap::new();
    let mut acknowledged = 0u64;
    let mut connections = 0u64;
    let mut connection = Connection::start(
        &options.settings.client_id,
        &options.broker,
        options.settings.reconnect,
        &sink,
    );
    loop {
        let Some(polled) = next_or_stop(&mut session, &mut stop).await else {
            break;
        };
        match polled {
            Ok(SessionEvent::ConnAck {
                code,
                session_present,
            }) => {
                if code == 0 {
                    connections += 1;
                }
                connection.connack(code, session_present)
            }
            Ok(SessionEvent::PublishSent { packet_id }) => {
                if let Some(message) = lock(&unnumbered).pop_front() {
                    numbered.insert(packet_id, message);
                }
            }
            Ok(SessionEvent::PubAck { packet_id }) => {
                acknowledged += 1;
                let message = numbered.remove(&packet_id);
                sink.emit(EventKind::Puback(Puback {
                    client: client.clone(),
                    packet_id,
                    topic: message.as_ref().map(|m| m.0.clone()),
                    seq: message.map(|m| m.1),
                }));
            }
            Ok(SessionEvent::PingSent) => connection.ping_sent(),
            Ok(SessionEvent::PingReceived) => connection.ping_received(),
            Ok(SessionEvent::DisconnectSent) => {
                sink.emit(EventKind::Disconnected(Disconnected {
                    client: connection.client().to_string(),
                    cause: DisconnectCause::Requested,
                    error: "stopped".into(),
                }));
                break;
            }
            Ok(_) => {}
            Err(error) => {
                if !connection.failed(error, &mut stop).await {
                    break;
                }
            }
        }
    }
    Driven {
        acknowledged,
        connections,
    }
}
