//! The will watcher: the rest of the system, as far as a run can stand for it. A subscriber on
//! the subscribers' will topics, connected straight to the broker (no fault touches it), that
//! records every will it receives, with whose will it is.
//!
//! It speaks MQTT 3.1.1 itself, with linecut's own decoder, instead of through a client
//! library: it is a measuring instrument, and each packet is stamped when the read that brought
//! its bytes returned. A library hands over what it read in its own order — rumqttc reports the
//! connection's end before a PUBLISH that came in the same read, and yields the PUBLISH only
//! after its next CONNACK, which stamped a broker's shutdown will a second late, after the
//! restart (measured).
//!
//! A will is told from other traffic on its topic by its exact topic and payload, which
//! `[subscriber] will` makes unique per subscriber (`{client_id}` in one of them). The watcher
//! says when it is subscribed, so a run can start its subscribers only once no will can be
//! missed.

use crate::classify::classify_io;
use linecut_events::{
    now_us, ClientRef, Connack, ConnectAttempt, DisconnectCause, Disconnected, EventKind,
    EventSink, Suback, SubscribeReason, SubscribeSent, TopicFilter, WillReceived,
};
use linecut_model::Topic;
use linecut_mqtt::{encode, Decoded, Packet, Version};
use std::collections::HashMap;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

/// One subscriber's will, as the watcher expects to hear it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpectedWill {
    pub client: String,
    pub topic: String,
    pub payload: Vec<u8>,
}

/// What the watcher listens for, and where.
#[derive(Debug, Clone)]
pub struct WatcherOptions {
    pub client_id: String,
    /// The broker, as `HOST:PORT`.
    pub broker: String,
    pub wills: Vec<ExpectedWill>,
}

/// The QoS the watcher subscribes with: 1, so a will published at QoS 1 or 2 is not dropped on
/// the way to it (QoS 2 adds nothing to when it arrives).
const WATCH_QOS: u8 = 1;
/// Its keepalive: it is not under test, and pings well inside it.
const KEEPALIVE_S: u16 = 30;
const PING_EVERY: Duration = Duration::from_secs(15);
/// It is not under test: back at once after a failure, steadily (as the publisher).
const RETRY_AFTER: Duration = Duration::from_millis(200);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// The largest packet it takes (a will's payload is a scenario's text).
const MAX_PACKET: usize = 1 << 20;

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

/// How one connection ended.
enum Ended {
    /// Told to stop.
    Stopped,
    Failed(DisconnectCause, String),
}

/// Runs the watcher until `stop` turns true; `subscribed` turns true at its first SUBACK.
/// Returns how many wills (and other messages on the will topics) it received.
pub async fn run_watcher(
    options: &WatcherOptions,
    sink: &EventSink,
    mut stop: watch::Receiver<bool>,
    subscribed: watch::Sender<bool>,
) -> u64 {
    let whose: HashMap<(&str, &[u8]), &str> = options
        .wills
        .iter()
        .map(|w| ((w.topic.as_str(), w.payload.as_slice()), w.client.as_str()))
        .collect();
    let mut watcher = Watcher {
        options,
        whose,
        sink,
        subscribed,
        received: 0,
    };
    let mut attempt = 0;
    loop {
        attempt += 1;
        sink.emit(EventKind::ConnectAttempt(ConnectAttempt {
            client: options.client_id.clone(),
            attempt,
            broker: options.broker.clone(),
            delay_ms: if attempt == 1 {
                0
            } else {
                RETRY_AFTER.as_millis() as u64
            },
        }));
        let ended = watcher.connection(&mut stop).await;
        match ended {
            Ended::Stopped => break,
            Ended::Failed(cause, error) => {
                sink.emit(EventKind::Disconnected(Disconnected {
                    client: options.client_id.clone(),
                    cause,
                    error,
                }));
            }
        }
        tokio::select! {
            biased;
            _ = crate::subscriber::stopped(&mut stop) => break,
            _ = tokio::time::sleep(RETRY_AFTER) => {}
        }
    }
    watcher.received
}

struct Watcher<'a> {
    options: &'a WatcherOptions,
    whose: HashMap<(&'a str, &'a [u8]), &'a str>,
    sink: &'a EventSink,
    subscribed: watch::Sender<bool>,
    received: u64,
}

fn failed(cause: DisconnectCause, what: impl std::fmt::Display) -> Ended {
    Ended::Failed(cause, what.to_string())
}

impl Watcher<'_> {
    /// One connection, from connect to its end (a DISCONNECT when told to stop).
    async fn connection(&mut self, stop: &mut watch::Receiver<bool>) -> Ended {
        let id = self.options.client_id.clone();
        let connect = TcpStream::connect(self.options.broker.as_str());
        let connected = tokio::select! {
            biased;
            _ = crate::subscriber::stopped(stop) => return Ended::Stopped,
            connected = tokio::time::timeout(CONNECT_TIMEOUT, connect) => connected,
        };
        let mut stream = match connected {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => return failed(classify_io(&e), e),
            Err(_) => return failed(DisconnectCause::ConnectTimeout, "connect timed out"),
        };
        let _ = stream.set_nodelay(true);
        if let Err(e) = stream.write_all(&encode::connect(&id, KEEPALIVE_S)).await {
            return failed(classify_io(&e), e);
        }
        let topics = self.options.topics();
        let mut buf: Vec<u8> = Vec::with_capacity(4096);
        let mut chunk = vec![0u8; 64 * 1024];
        let mut ping = tokio::time::interval(PING_EVERY);
        ping.tick().await;
        loop {
            let n = tokio::select! {
                biased;
                _ = crate::subscriber::stopped(stop) => {
                    let _ = stream.write_all(&encode::disconnect()).await;
                    return Ended::Stopped;
                }
                _ = ping.tick() => {
                    if let Err(e) = stream.write_all(&encode::pingreq()).await {
                        return failed(classify_io(&e), e);
                    }
                    self.sink.emit(EventKind::PingSent(ClientRef { client: id.clone() }));
                    continue;
                }
                read = stream.read(&mut chunk) => match read {
                    Ok(0) => return failed(DisconnectCause::ClosedByPeer, "the broker closed the connection"),
                    Ok(n) => n,
                    Err(e) => return failed(classify_io(&e), e),
                },
            };
            // Every packet these bytes complete is stamped with this read.
            let at = now_us();
            buf.extend_from_slice(&chunk[..n]);
            let mut replies: Vec<Vec<u8>> = Vec::new();
            let mut used = 0;
            loop {
                match linecut_mqtt::decode(&buf[used..], Some(Version::V3_1_1)) {
                    Decoded::Packet { header, packet } => {
                        used += header.total_len();
                        self.handle(packet, at, &topics, &mut replies);
                    }
                    Decoded::Incomplete { .. } if buf.len() - used <= MAX_PACKET => break,
                    Decoded::Incomplete { .. } => {
                        return failed(
                            DisconnectCause::Other,
                            "a packet larger than the watcher takes",
                        )
                    }
                    Decoded::Malformed(e) => {
                        return failed(
                            DisconnectCause::Other,
                            format!("malformed packet from the broker: {e}"),
                        )
                    }
                }
            }
            buf.drain(..used);
            for reply in replies {
                if let Err(e) = stream.write_all(&reply).await {
                    return failed(classify_io(&e), e);
                }
            }
        }
    }

    /// What one packet from the broker means; the packets it calls for go into `replies`.
    fn handle(
        &mut self,
        packet: Packet<'_>,
        at: i64,
        topics: &[Topic],
        replies: &mut Vec<Vec<u8>>,
    ) {
        let id = &self.options.client_id;
        match packet {
            Packet::ConnAck(a) => {
                self.sink.emit_at(
                    at,
                    EventKind::Connack(Connack {
                        client: id.clone(),
                        code: a.code,
                        session_present: a.session_present,
                    }),
                );
                // A clean session each time: subscribe on every connection.
                if a.code == 0 {
                    replies.push(encode::subscribe_all(
                        1,
                        topics.iter().map(|t| (t.name.as_str(), t.qos)),
                    ));
                    self.sink.emit_at(
                        at,
                        EventKind::SubscribeSent(SubscribeSent {
                            client: id.clone(),
                            topics: topics
                                .iter()
                                .map(|t| TopicFilter {
                                    filter: t.name.clone(),
                                    qos: Some(t.qos),
                                })
                                .collect(),
                            reason: SubscribeReason::Always,
                        }),
                    );
                }
            }
            Packet::SubAck(s) => {
                self.sink.emit_at(
                    at,
                    EventKind::Suback(Suback {
                        client: id.clone(),
                        packet_id: s.packet_id,
                        codes: s.codes.to_vec(),
                    }),
                );
                self.subscribed.send_replace(true);
            }
            Packet::Publish(p) => {
                self.received += 1;
                if let Some(packet_id) = p.packet_id.filter(|_| p.qos == 1) {
                    replies.push(encode::puback(packet_id));
                }
                let client = self.whose.get(&(p.topic, p.payload)).map(|c| c.to_string());
                self.sink.emit_at(
                    at,
                    EventKind::WillReceived(WillReceived {
                        client,
                        topic: p.topic.to_string(),
                        qos: p.qos,
                        retain: p.retain,
                        payload_len: p.payload.len() as u32,
                    }),
                );
            }
            Packet::PingResp => {
                self.sink.emit_at(
                    at,
                    EventKind::PingReceived(ClientRef { client: id.clone() }),
                );
            }
            _ => {}
        }
    }
}
