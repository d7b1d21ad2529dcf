//! The settings of linecut's subscribers, its publisher and the mosquitto it starts: each with
//! one `Default` (the only place a default is written) and one `validate` (the only place a rule
//! is written).
//!
//! Every door builds these: the scenario checker from a file, the CLI from flags, the sweep
//! through the scenario. The agents take them as they are, plus a broker address. A rule's
//! error names the field with the scenario's spelling (`keepalive`, `client_id`); the scenario
//! checker turns that into file, line and column, the CLI into a flag (`--keepalive`).

use crate::duration::MAX_DURATION;
use crate::policy::{ReconnectPolicy, ResubscribePolicy};
use crate::protocol::{Protocol, Topic};
use crate::text::{check_text, TextUse};
use std::time::Duration;

/// A rule a setting breaks: the field (scenario spelling) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: &'static str,
    pub message: String,
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

fn error(field: &'static str, message: impl Into<String>) -> FieldError {
    FieldError {
        field,
        message: message.into(),
    }
}

/// The largest payload MQTT can carry in one packet (its remaining length is at most 256 MiB).
pub const MAX_PAYLOAD: usize = 256 * 1024 * 1024;
/// The longest MQTT string (client ids, topics).
pub const MAX_MQTT_STRING: usize = 65_535;
/// The longest connect timeout a setting may ask for.
pub const MAX_CONNECT_TIMEOUT_S: u64 = 3600;
/// The largest fleet one run may start (each subscriber holds sockets on both sides of the
/// proxy; the runner also checks the descriptor limit of the machine it runs on).
pub const MAX_SUBSCRIBERS: u32 = 100_000;

/// Everything about the subscribers of a run (one, or a fleet of `count`).
#[derive(Debug, Clone, PartialEq)]
pub struct SubscriberSettings {
    /// The client id; with `count > 1`, `{n}` is replaced by 1..N (or `-N` is appended).
    pub client_id: String,
    pub count: u32,
    /// Whole seconds; 0 turns keepalive off.
    pub keepalive_s: u16,
    pub clean_session: bool,
    pub topics: Vec<Topic>,
    /// TCP connect plus CONNACK, whole seconds.
    pub connect_timeout_s: u64,
    pub reconnect: ReconnectPolicy,
    pub resubscribe: ResubscribePolicy,
    pub protocol: Protocol,
    /// The Last Will each subscriber leaves with the broker, if any.
    pub will: Option<Will>,
    /// MQTT 5's Session Expiry Interval, whole seconds: how long the broker keeps the session
    /// after the connection ends (absent: 0, the session ends with the connection).
    pub session_expiry_s: Option<u32>,
    /// MQTT 5's Receive Maximum: QoS 1 and 2 deliveries the client takes unacknowledged.
    pub receive_maximum: Option<u16>,
}

/// A subscriber's Last Will: what the broker publishes when it drops the connection without a
/// DISCONNECT. `{client_id}` in the topic or the payload becomes each subscriber's id, so the
/// watcher can tell whose will it heard.
#[derive(Debug, Clone, PartialEq)]
pub struct Will {
    pub topic: String,
    pub payload: String,
    pub qos: u8,
    pub retain: bool,
    /// MQTT 5's Will Delay Interval, whole seconds: the broker waits this long after the drop,
    /// and publishes nothing if the session resumes first.
    pub delay_s: Option<u32>,
}

impl Will {
    /// The placeholder `topic` and `payload` may hold.
    pub const CLIENT_ID: &'static str = "{client_id}";

    /// The payload when a scenario gives none: the client's id, so every will names its client.
    pub fn default_payload() -> String {
        Will::CLIENT_ID.to_string()
    }

    /// Topic and payload as subscriber `client_id` leaves them.
    pub fn for_client(&self, client_id: &str) -> (String, String) {
        (
            self.topic.replace(Will::CLIENT_ID, client_id),
            self.payload.replace(Will::CLIENT_ID, client_id),
        )
    }

    fn validate(&self, s: &SubscriberSettings, errors: &mut Vec<FieldError>) {
        if self.topic.is_empty() {
            errors.push(error("will.topic", "a will needs a topic"));
        } else if self.topic.contains(['+', '#']) {
            errors.push(error(
                "will.topic",
                format!(
                    "`{}`: a will is published, and a topic one publishes to has no wildcards",
                    self.topic.escape_debug()
                ),
            ));
        } else if let Err(e) = check_text(&self.topic, TextUse::Argument) {
            errors.push(error(
                "will.topic",
                format!("`{}` {e}", self.topic.escape_debug()),
            ));
        }
        if let Err(e) = check_text(&self.payload, TextUse::Argument) {
            errors.push(error("will.payload", e.to_string()));
        }
        if self.qos > 2 {
            errors.push(error("will.qos", "must be 0, 1 or 2"));
        }
        if self.delay_s.is_some() && s.protocol != Protocol::V5 {
            errors.push(error(
                "will.delay",
                "MQTT 3.1.1 has no Will Delay Interval: set `mqtt = \"5\"` or remove `delay`",
            ));
        }
        let ids_it = |t: &str| t.contains(Will::CLIENT_ID);
        if s.count > 1 && !ids_it(&self.topic) && !ids_it(&self.payload) {
            errors.push(error(
                "will.payload",
                "with count > 1 every subscriber would leave the same will, and the watcher could not tell whose it heard: put {client_id} in the topic or the payload",
            ));
        }
    }
}

impl Default for SubscriberSettings {
    fn default() -> Self {
        SubscriberSettings {
            client_id: "linecut-sub".into(),
            count: 1,
            // MQTT clients' usual default (paho's included), and the 2014 experiment's.
            keepalive_s: 60,
            clean_session: true,
            topics: vec![Topic {
                name: "linecut/#".into(),
                qos: 0,
            }],
            connect_timeout_s: 5,
            // paho's schedule: 1, 2, 4 ... 120 s.
            reconnect: ReconnectPolicy::Exponential {
                min: Duration::from_secs(1),
                max: Duration::from_secs(120),
                jitter: 0.0,
            },
            resubscribe: ResubscribePolicy::Always,
            protocol: Protocol::V311,
            will: None,
            session_expiry_s: None,
            receive_maximum: None,
        }
    }
}

impl SubscriberSettings {
    /// The rules every subscriber obeys, whichever client it is.
    pub fn validate(&self) -> Vec<FieldError> {
        let mut errors = Vec::new();
        if self.client_id.is_empty() {
            if !self.clean_session {
                errors.push(error(
                    "client_id",
                    "an empty client id needs clean_session = true (the broker could not find \
                     the session again)",
                ));
            }
        } else if let Err(e) = check_text(&self.client_id, TextUse::Argument) {
            // Client ids reach clients under test as arguments.
            errors.push(error("client_id", e.to_string()));
        }
        if self.count == 0 {
            errors.push(error("count", "must be at least 1"));
        } else if self.count > MAX_SUBSCRIBERS {
            errors.push(error(
                "count",
                format!("at most {MAX_SUBSCRIBERS} subscribers in one run"),
            ));
        }
        if self.topics.is_empty() {
            errors.push(error("topics", "a subscriber needs at least one topic"));
        }
        for t in &self.topics {
            if let Err(e) = check_text(&t.name, TextUse::Argument) {
                errors.push(error("topics", format!("`{}` {e}", t.name.escape_debug())));
            }
        }
        check_connect_timeout(self.connect_timeout_s, &mut errors);
        if let Some(will) = &self.will {
            will.validate(self, &mut errors);
        }
        if self.protocol != Protocol::V5 {
            if self.session_expiry_s.is_some() {
                errors.push(error(
                    "session_expiry",
                    "MQTT 3.1.1 has no Session Expiry Interval (its session lives while clean_session = false): set `mqtt = \"5\"` or remove it",
                ));
            }
            if self.receive_maximum.is_some() {
                errors.push(error(
                    "receive_maximum",
                    "MQTT 3.1.1 has no Receive Maximum: set `mqtt = \"5\"` or remove it",
                ));
            }
        }
        if self.receive_maximum == Some(0) {
            errors.push(error(
                "receive_maximum",
                "must be 1 to 65535 (MQTT 5 makes 0 a protocol error)",
            ));
        }
        errors
    }

    /// [`validate`](Self::validate) plus the rules of linecut's own agent (rumqttc).
    pub fn validate_for_agent(&self) -> Vec<FieldError> {
        let mut errors = self.validate();
        check_agent_keepalive(self.protocol, self.keepalive_s, &mut errors);
        errors
    }
}

/// Everything about the publisher, linecut's reference stream.
#[derive(Debug, Clone, PartialEq)]
pub struct PublisherSettings {
    pub client_id: String,
    pub keepalive_s: u16,
    /// Each topic has its own sequence.
    pub topics: Vec<String>,
    pub qos: u8,
    pub retain: bool,
    /// Payload size in bytes (padded; at least the payload stamp's own length).
    pub size: usize,
    /// Time between publishes to each topic.
    pub interval: Duration,
    pub connect_timeout_s: u64,
    pub reconnect: ReconnectPolicy,
    pub protocol: Protocol,
}

impl Default for PublisherSettings {
    fn default() -> Self {
        PublisherSettings {
            client_id: "linecut-pub".into(),
            keepalive_s: 30,
            topics: vec!["linecut/data".into()],
            qos: 0,
            retain: false,
            size: 64,
            interval: Duration::from_secs(1),
            connect_timeout_s: 5,
            // It is the reference stream, not a client under test: back quickly, steadily.
            reconnect: ReconnectPolicy::Fixed(Duration::from_millis(200)),
            protocol: Protocol::V311,
        }
    }
}

impl PublisherSettings {
    pub fn validate(&self) -> Vec<FieldError> {
        let mut errors = Vec::new();
        if self.client_id.is_empty() {
            errors.push(error("client_id", "the publisher needs a client id"));
        } else if self.client_id.len() > MAX_MQTT_STRING {
            errors.push(error(
                "client_id",
                format!("longer than MQTT allows ({MAX_MQTT_STRING} bytes)"),
            ));
        }
        if self.topics.is_empty() {
            errors.push(error("topics", "the publisher needs at least one topic"));
        }
        for t in &self.topics {
            if t.is_empty() || t.contains(['+', '#']) {
                errors.push(error(
                    "topics",
                    format!("`{t}`: publish topics must be non-empty and have no wildcards"),
                ));
            }
        }
        if self.qos > 2 {
            errors.push(error("qos", "must be 0, 1 or 2"));
        }
        if self.interval < Duration::from_millis(1) {
            errors.push(error("interval", "must be at least 1ms"));
        } else if self.interval > MAX_DURATION {
            errors.push(error("interval", "must be at most 365 days"));
        }
        if self.size > MAX_PAYLOAD {
            errors.push(error(
                "size",
                format!(
                    "{} bytes is larger than an MQTT packet can carry ({MAX_PAYLOAD})",
                    self.size
                ),
            ));
        }
        check_connect_timeout(self.connect_timeout_s, &mut errors);
        // The publisher is always linecut's agent.
        check_agent_keepalive(self.protocol, self.keepalive_s, &mut errors);
        errors
    }
}

fn check_connect_timeout(secs: u64, errors: &mut Vec<FieldError>) {
    if secs == 0 {
        errors.push(error("connect_timeout", "must be at least 1s"));
    } else if secs > MAX_CONNECT_TIMEOUT_S {
        errors.push(error(
            "connect_timeout",
            format!("at most {MAX_CONNECT_TIMEOUT_S}s"),
        ));
    }
}

/// rumqttc's MQTT 5 client accepts only keepalives of 5 s or more (it asserts, and 0 is refused
/// too); its 3.1.1 client accepts 0 or any whole number of seconds.
fn check_agent_keepalive(protocol: Protocol, keepalive_s: u16, errors: &mut Vec<FieldError>) {
    if protocol == Protocol::V5 && keepalive_s < 5 {
        errors.push(error(
            "keepalive",
            format!("{keepalive_s}s: the MQTT 5 client (rumqttc) needs at least 5s"),
        ));
    }
}

/// What a run may set on the mosquitto it starts.
#[derive(Debug, Clone, PartialEq)]
pub struct MosquittoSettings {
    pub persistence: bool,
    /// mosquitto counts this in whole hours (at least one).
    pub persistent_client_expiration: Option<Duration>,
    pub max_keepalive: Option<u16>,
    /// QoS 1 and 2 messages mosquitto queues for a client that is away; more are dropped.
    /// Always written into the configuration, so the run records the limit it ran with.
    pub max_queued_messages: u32,
}

impl MosquittoSettings {
    /// mosquitto's own default (`max_queued_messages`, mosquitto.conf(5)).
    pub const DEFAULT_MAX_QUEUED_MESSAGES: u32 = 1000;
}

impl Default for MosquittoSettings {
    fn default() -> Self {
        MosquittoSettings {
            persistence: false,
            persistent_client_expiration: None,
            max_keepalive: None,
            max_queued_messages: MosquittoSettings::DEFAULT_MAX_QUEUED_MESSAGES,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_obey_the_rules() {
        assert_eq!(SubscriberSettings::default().validate_for_agent(), vec![]);
        assert_eq!(PublisherSettings::default().validate(), vec![]);
    }

    #[test]
    fn each_rule_names_its_field() {
        let fields = |e: Vec<FieldError>| e.into_iter().map(|e| e.field).collect::<Vec<_>>();
        let s = SubscriberSettings {
            client_id: String::new(),
            clean_session: false,
            count: 0,
            topics: vec![],
            connect_timeout_s: 0,
            protocol: Protocol::V5,
            keepalive_s: 2,
            ..SubscriberSettings::default()
        };
        assert_eq!(
            fields(s.validate_for_agent()),
            [
                "client_id",
                "count",
                "topics",
                "connect_timeout",
                "keepalive"
            ]
        );
        assert_eq!(
            fields(s.validate()),
            ["client_id", "count", "topics", "connect_timeout"],
            "a client under test is not held to rumqttc's MQTT 5 keepalive rule"
        );
        let p = PublisherSettings {
            client_id: String::new(),
            topics: vec!["a/#".into()],
            qos: 3,
            interval: Duration::ZERO,
            size: MAX_PAYLOAD + 1,
            ..PublisherSettings::default()
        };
        assert_eq!(
            fields(p.validate()),
            ["client_id", "topics", "qos", "interval", "size"]
        );
    }
}
