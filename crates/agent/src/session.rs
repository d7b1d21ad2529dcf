//! The MQTT client behind an agent, reduced to what the agent's logic needs.
//!
//! The subscriber's behaviour (re-subscribe policy, back-off, what it logs) is the same whatever
//! client library speaks MQTT for it. [`Session`] is that boundary: it turns the library's events
//! into [`SessionEvent`]s and its errors into classified causes, and everything above it is plain
//! state logic. [`V4Session`] adapts rumqttc's MQTT 3.1.1 client and [`V5Session`] its MQTT 5
//! client; [`ClientSession`] is either, chosen by the options.

use crate::classify::classify;
use linecut_events::DisconnectCause;
use linecut_model::{Protocol, Topic, Will};
use rumqttc::{AsyncClient, Event, EventLoop, Incoming, MqttOptions, Outgoing, QoS};
use std::time::Duration;

/// What happened on the connection, library-neutral.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionEvent {
    ConnAck {
        code: u8,
        session_present: bool,
    },
    SubAck {
        packet_id: u16,
        codes: Vec<u8>,
    },
    Publish {
        topic: String,
        qos: u8,
        dup: bool,
        retain: bool,
        packet_id: Option<u16>,
        payload: Vec<u8>,
    },
    PubAck {
        packet_id: u16,
    },
    /// A PUBLISH with QoS > 0 was written with this packet id.
    PublishSent {
        packet_id: u16,
    },
    PingSent,
    PingReceived,
    /// The DISCONNECT the agent asked for is on the wire.
    DisconnectSent,
    Other,
}

/// A connection error, classified, with the library's own text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionError {
    pub cause: DisconnectCause,
    pub text: String,
}

/// An MQTT client connection that reconnects when polled after an error.
pub trait Session: Send {
    /// Drives the connection; after an error, the next call reconnects.
    fn poll(
        &mut self,
    ) -> impl std::future::Future<Output = Result<SessionEvent, SessionError>> + Send;
    /// A handle for queueing requests from this or another task.
    fn requests(&self) -> Requests;
}

/// Queues requests on a session's connection.
#[derive(Clone)]
pub struct Requests {
    inner: RequestsInner,
}

#[derive(Clone)]
enum RequestsInner {
    V4(AsyncClient),
    V5(rumqttc::v5::AsyncClient),
}

impl Requests {
    /// Queues a SUBSCRIBE without waiting (safe to call from the poll loop).
    pub fn subscribe(&self, topics: &[Topic]) -> Result<(), SessionError> {
        match &self.inner {
            RequestsInner::V4(client) => {
                let filters = topics
                    .iter()
                    .map(|t| rumqttc::SubscribeFilter::new(t.name.clone(), qos(t.qos)));
                client.try_subscribe_many(filters).map_err(request_error)
            }
            RequestsInner::V5(client) => {
                let filters = topics
                    .iter()
                    .map(|t| rumqttc::v5::mqttbytes::v5::Filter::new(t.name.clone(), qos5(t.qos)));
                client.try_subscribe_many(filters).map_err(request_error5)
            }
        }
    }

    /// Queues a PUBLISH, waiting while the request queue is full.
    pub async fn publish(
        &self,
        topic: &str,
        q: u8,
        retain: bool,
        payload: Vec<u8>,
    ) -> Result<(), SessionError> {
        match &self.inner {
            RequestsInner::V4(client) => client
                .publish(topic, qos(q), retain, payload)
                .await
                .map_err(request_error),
            RequestsInner::V5(client) => client
                .publish(topic, qos5(q), retain, payload)
                .await
                .map_err(request_error5),
        }
    }

    /// Queues a DISCONNECT without waiting.
    pub fn disconnect(&self) -> Result<(), SessionError> {
        match &self.inner {
            RequestsInner::V4(client) => client.try_disconnect().map_err(request_error),
            RequestsInner::V5(client) => client.try_disconnect().map_err(request_error5),
        }
    }
}

fn qos(q: u8) -> QoS {
    match q {
        0 => QoS::AtMostOnce,
        1 => QoS::AtLeastOnce,
        _ => QoS::ExactlyOnce,
    }
}

fn qos5(q: u8) -> rumqttc::v5::mqttbytes::QoS {
    use rumqttc::v5::mqttbytes::QoS;
    match q {
        0 => QoS::AtMostOnce,
        1 => QoS::AtLeastOnce,
        _ => QoS::ExactlyOnce,
    }
}

fn request_error5(e: rumqttc::v5::ClientError) -> SessionError {
    SessionError {
        cause: DisconnectCause::Other,
        text: e.to_string(),
    }
}

fn request_error(e: rumqttc::ClientError) -> SessionError {
    SessionError {
        cause: DisconnectCause::Other,
        text: e.to_string(),
    }
}

/// rumqttc's MQTT 3.1.1 client.
pub struct V4Session {
    client: AsyncClient,
    eventloop: EventLoop,
}

/// Settings a session is built from (already validated).
pub struct SessionConfig<'a> {
    pub host: &'a str,
    pub port: u16,
    pub client_id: &'a str,
    pub keepalive_s: u16,
    pub clean_session: bool,
    pub connect_timeout_s: u64,
    /// Requests (SUBSCRIBE, PUBLISH) that may wait for the connection.
    pub queue: usize,
    pub protocol: Protocol,
    /// The Last Will to leave with the broker (its `{client_id}` becomes `client_id`).
    pub will: Option<&'a Will>,
    /// MQTT 5 only (validated): Session Expiry Interval and Receive Maximum.
    pub session_expiry_s: Option<u32>,
    pub receive_maximum: Option<u16>,
}

impl SessionConfig<'_> {
    /// The will's topic and payload for this client.
    fn will_for_client(&self) -> Option<(&Will, String, String)> {
        self.will.map(|w| {
            let (topic, payload) = w.for_client(self.client_id);
            (w, topic, payload)
        })
    }
}

impl V4Session {
    pub fn new(config: &SessionConfig<'_>) -> V4Session {
        let mut options = MqttOptions::new(config.client_id, config.host, config.port);
        options.set_keep_alive(Duration::from_secs(config.keepalive_s.into()));
        options.set_clean_session(config.clean_session);
        options.set_max_packet_size(1 << 20, 1 << 20);
        if let Some((will, topic, payload)) = config.will_for_client() {
            // Validated: MQTT 3.1.1 wills carry no delay.
            options.set_last_will(rumqttc::LastWill::new(
                topic,
                payload,
                qos(will.qos),
                will.retain,
            ));
        }
        let (client, mut eventloop) = AsyncClient::new(options, config.queue);
        let mut network = eventloop.network_options();
        network.set_connection_timeout(config.connect_timeout_s);
        eventloop.set_network_options(network);
        V4Session { client, eventloop }
    }
}

impl Session for V4Session {
    async fn poll(&mut self) -> Result<SessionEvent, SessionError> {
        let event = self.eventloop.poll().await.map_err(|e| SessionError {
            cause: classify(&e),
            text: e.to_string(),
        })?;
        Ok(match event {
            Event::Incoming(Incoming::ConnAck(a)) => SessionEvent::ConnAck {
                code: a.code as u8,
                session_present: a.session_present,
            },
            Event::Incoming(Incoming::SubAck(a)) => SessionEvent::SubAck {
                packet_id: a.pkid,
                codes: a
                    .return_codes
                    .iter()
                    .map(|c| match c {
                        rumqttc::SubscribeReasonCode::Success(q) => *q as u8,
                        rumqttc::SubscribeReasonCode::Failure => 0x80,
                    })
                    .collect(),
            },
            Event::Incoming(Incoming::Publish(p)) => SessionEvent::Publish {
                topic: p.topic,
                qos: p.qos as u8,
                dup: p.dup,
                retain: p.retain,
                packet_id: (p.pkid != 0).then_some(p.pkid),
                payload: p.payload.to_vec(),
            },
            Event::Incoming(Incoming::PubAck(a)) => SessionEvent::PubAck { packet_id: a.pkid },
            Event::Incoming(Incoming::PingResp) => SessionEvent::PingReceived,
            Event::Outgoing(Outgoing::PingReq) => SessionEvent::PingSent,
            Event::Outgoing(Outgoing::Publish(pkid)) if pkid != 0 => {
                SessionEvent::PublishSent { packet_id: pkid }
            }
            Event::Outgoing(Outgoing::Disconnect) => SessionEvent::DisconnectSent,
            _ => SessionEvent::Other,
        })
    }

    fn requests(&self) -> Requests {
        Requests {
            inner: RequestsInner::V4(self.client.clone()),
        }
    }
}

/// rumqttc's MQTT 5 client.
pub struct V5Session {
    client: rumqttc::v5::AsyncClient,
    eventloop: rumqttc::v5::EventLoop,
}

impl V5Session {
    pub fn new(config: &SessionConfig<'_>) -> V5Session {
        let mut options = rumqttc::v5::MqttOptions::new(config.client_id, config.host, config.port);
        // rumqttc's MQTT 5 client asserts a keepalive of at least 5 s; options are validated
        // against that before a session is built.
        options.set_keep_alive(Duration::from_secs(config.keepalive_s.into()));
        options.set_clean_start(config.clean_session);
        options.set_connection_timeout(config.connect_timeout_s);
        options.set_session_expiry_interval(config.session_expiry_s);
        options.set_receive_maximum(config.receive_maximum);
        if let Some((will, topic, payload)) = config.will_for_client() {
            let properties = will
                .delay_s
                .map(|d| rumqttc::v5::mqttbytes::v5::LastWillProperties {
                    delay_interval: Some(d),
                    payload_format_indicator: None,
                    message_expiry_interval: None,
                    content_type: None,
                    response_topic: None,
                    correlation_data: None,
                    user_properties: Vec::new(),
                });
            options.set_last_will(rumqttc::v5::mqttbytes::v5::LastWill::new(
                topic,
                payload,
                qos5(will.qos),
                will.retain,
                properties,
            ));
        }
        let (client, eventloop) = rumqttc::v5::AsyncClient::new(options, config.queue);
        V5Session { client, eventloop }
    }
}

/// MQTT 5 reason codes as they are on the wire: the packet is re-encoded with rumqttc's own
/// writer and read back with linecut's decoder, so the mapping cannot drift from either.
fn with_wire_packet5<T>(
    packet: rumqttc::v5::mqttbytes::v5::Packet,
    read: impl FnOnce(&linecut_mqtt::Packet<'_>) -> Option<T>,
) -> Option<T> {
    let mut buf = bytes::BytesMut::new();
    packet.write(&mut buf, None).ok()?;
    match linecut_mqtt::decode(&buf, Some(linecut_mqtt::Version::V5)) {
        linecut_mqtt::Decoded::Packet { packet, .. } => read(&packet),
        _ => None,
    }
}

impl Session for V5Session {
    async fn poll(&mut self) -> Result<SessionEvent, SessionError> {
        use rumqttc::v5::mqttbytes::v5::Packet as P;
        use rumqttc::v5::Event as E;
        use rumqttc::Outgoing as O;
        let event = self.eventloop.poll().await.map_err(|e| SessionError {
            cause: crate::classify::classify5(&e),
            text: e.to_string(),
        })?;
        Ok(match event {
            E::Incoming(P::ConnAck(a)) => {
                let session_present = a.session_present;
                let code = with_wire_packet5(P::ConnAck(a), |p| match p {
                    linecut_mqtt::Packet::ConnAck(c) => Some(c.code),
                    _ => None,
                })
                .unwrap_or(0x80);
                SessionEvent::ConnAck {
                    code,
                    session_present,
                }
            }
            E::Incoming(P::SubAck(a)) => {
                let packet_id = a.pkid;
                let codes = with_wire_packet5(P::SubAck(a), |p| match p {
                    linecut_mqtt::Packet::SubAck(s) => Some(s.codes.to_vec()),
                    _ => None,
                })
                .unwrap_or_default();
                SessionEvent::SubAck { packet_id, codes }
            }
            E::Incoming(P::Publish(p)) => SessionEvent::Publish {
                topic: String::from_utf8_lossy(&p.topic).into_owned(),
                qos: p.qos as u8,
                dup: p.dup,
                retain: p.retain,
                packet_id: (p.pkid != 0).then_some(p.pkid),
                payload: p.payload.to_vec(),
            },
            E::Incoming(P::PubAck(a)) => SessionEvent::PubAck { packet_id: a.pkid },
            E::Incoming(P::PingResp(_)) => SessionEvent::PingReceived,
            E::Outgoing(O::PingReq) => SessionEvent::PingSent,
            E::Outgoing(O::Publish(pkid)) if pkid != 0 => {
                SessionEvent::PublishSent { packet_id: pkid }
            }
            E::Outgoing(O::Disconnect) => SessionEvent::DisconnectSent,
            _ => SessionEvent::Other,
        })
    }

    fn requests(&self) -> Requests {
        Requests {
            inner: RequestsInner::V5(self.client.clone()),
        }
    }
}

/// The session an agent's options ask for. Boxed: the two clients differ a lot in size, and a
/// fleet holds thousands of them.
pub enum ClientSession {
    V4(Box<V4Session>),
    V5(Box<V5Session>),
}

impl ClientSession {
    pub fn new(config: &SessionConfig<'_>) -> ClientSession {
        match config.protocol {
            Protocol::V311 => ClientSession::V4(Box::new(V4Session::new(config))),
            Protocol::V5 => ClientSession::V5(Box::new(V5Session::new(config))),
        }
    }
}

impl Session for ClientSession {
    async fn poll(&mut self) -> Result<SessionEvent, SessionError> {
        match self {
            ClientSession::V4(s) => s.poll().await,
            ClientSession::V5(s) => s.poll().await,
        }
    }

    fn requests(&self) -> Requests {
        match self {
            ClientSession::V4(s) => s.requests(),
            ClientSession::V5(s) => s.requests(),
        }
    }
}
