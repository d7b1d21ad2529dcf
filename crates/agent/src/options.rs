//! What an experiment can vary about its agents, checked before anything connects.
//!
//! rumqttc asserts (panics) on some invalid options — an empty client id with a persistent
//! session, a keepalive under a second — so every option is validated here first and a bad one
//! becomes an [`AgentError::Invalid`] naming the option and the rule.

use crate::backoff::ReconnectPolicy;
use crate::session::Protocol;
use std::fmt;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("{option}: {message}")]
    Invalid {
        option: &'static str,
        message: String,
    },
}

fn invalid(option: &'static str, message: impl Into<String>) -> AgentError {
    AgentError::Invalid {
        option,
        message: message.into(),
    }
}

/// When a subscriber sends SUBSCRIBE again after reconnecting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResubscribePolicy {
    /// On every CONNACK (the paho idiom: subscribe in `on_connect`).
    Always,
    /// Only when CONNACK says the broker kept no session.
    WhenSessionLost,
    /// Only on the first connection.
    Never,
}

impl ResubscribePolicy {
    pub fn parse(text: &str) -> Result<Self, String> {
        match text {
            "always" => Ok(Self::Always),
            "when-session-lost" => Ok(Self::WhenSessionLost),
            "never" => Ok(Self::Never),
            _ => Err(format!(
                "`{text}` is not a re-subscribe policy; use always, when-session-lost or never"
            )),
        }
    }
}

impl fmt::Display for ResubscribePolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Always => "always",
            Self::WhenSessionLost => "when-session-lost",
            Self::Never => "never",
        })
    }
}

/// A topic filter (or topic) with its QoS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topic {
    pub name: String,
    pub qos: u8,
}

impl Topic {
    /// Parses `NAME` or `NAME:QOS` (QoS 0, 1 or 2; default 0).
    pub fn parse(text: &str) -> Result<Topic, String> {
        let (name, qos) = match text.rsplit_once(':') {
            Some((name, qos)) if !qos.is_empty() && qos.chars().all(|c| c.is_ascii_digit()) => {
                let qos: u8 = qos
                    .parse()
                    .ok()
                    .filter(|q| *q <= 2)
                    .ok_or_else(|| format!("`{text}`: QoS must be 0, 1 or 2"))?;
                (name, qos)
            }
            _ => (text, 0),
        };
        if name.is_empty() {
            return Err(format!("`{text}`: the topic is empty"));
        }
        Ok(Topic {
            name: name.to_string(),
            qos,
        })
    }
}

/// Where the broker is, as `HOST:PORT`.
pub fn parse_broker(text: &str) -> Result<(String, u16), AgentError> {
    let (host, port) = text
        .rsplit_once(':')
        .ok_or_else(|| invalid("broker", format!("`{text}` is not HOST:PORT")))?;
    let port = port
        .parse::<u16>()
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| invalid("broker", format!("`{port}` is not a port number (1-65535)")))?;
    if host.is_empty() {
        return Err(invalid("broker", format!("`{text}`: the host is empty")));
    }
    Ok((host.trim_matches(['[', ']']).to_string(), port))
}

/// Everything about one subscriber.
#[derive(Debug, Clone)]
pub struct SubscriberOptions {
    pub broker: String,
    pub client_id: String,
    /// Whole seconds; 0 turns keepalive off.
    pub keepalive_s: u16,
    pub clean_session: bool,
    pub topics: Vec<Topic>,
    /// TCP connect plus CONNACK, whole seconds.
    pub connect_timeout_s: u64,
    pub reconnect: ReconnectPolicy,
    pub resubscribe: ResubscribePolicy,
    pub protocol: Protocol,
}

impl SubscriberOptions {
    pub fn new(broker: impl Into<String>, client_id: impl Into<String>) -> Self {
        SubscriberOptions {
            broker: broker.into(),
            client_id: client_id.into(),
            keepalive_s: 60,
            clean_session: true,
            topics: vec![Topic {
                name: "linecut/#".into(),
                qos: 0,
            }],
            connect_timeout_s: 5,
            reconnect: ReconnectPolicy::Exponential {
                min: Duration::from_secs(1),
                max: Duration::from_secs(120),
                jitter: 0.0,
            },
            resubscribe: ResubscribePolicy::Always,
            protocol: Protocol::V311,
        }
    }

    pub fn validate(&self) -> Result<(), AgentError> {
        parse_broker(&self.broker)?;
        if self.client_id.is_empty() && !self.clean_session {
            return Err(invalid(
                "client-id",
                "an empty client id needs a clean session (the broker could not find the session again)",
            ));
        }
        if self.client_id.len() > 65_535 {
            return Err(invalid(
                "client-id",
                "longer than MQTT allows (65535 bytes)",
            ));
        }
        if self.topics.is_empty() {
            return Err(invalid("topic", "a subscriber needs at least one topic"));
        }
        if self.connect_timeout_s == 0 {
            return Err(invalid("connect-timeout", "must be at least 1s"));
        }
        check_keepalive(self.protocol, self.keepalive_s)
    }
}

/// rumqttc's MQTT 5 client accepts only keepalives of 5 s or more (it asserts, and 0 is
/// refused too); its 3.1.1 client accepts 0 or any whole number of seconds.
fn check_keepalive(protocol: Protocol, keepalive_s: u16) -> Result<(), AgentError> {
    if protocol == Protocol::V5 && keepalive_s < 5 {
        return Err(invalid(
            "keepalive",
            format!("{keepalive_s}s: the MQTT 5 client (rumqttc) needs a keepalive of at least 5s"),
        ));
    }
    Ok(())
}

/// Everything about the publisher.
#[derive(Debug, Clone)]
pub struct PublisherOptions {
    pub broker: String,
    pub client_id: String,
    pub keepalive_s: u16,
    pub topics: Vec<String>,
    pub qos: u8,
    pub retain: bool,
    /// Payload size in bytes (at least the header of the payload format).
    pub payload_size: usize,
    /// Time between publishes to each topic.
    pub interval: Duration,
    pub connect_timeout_s: u64,
    pub reconnect: ReconnectPolicy,
    pub protocol: Protocol,
}

impl PublisherOptions {
    pub fn new(broker: impl Into<String>) -> Self {
        PublisherOptions {
            broker: broker.into(),
            client_id: "linecut-publisher".into(),
            keepalive_s: 30,
            topics: vec!["linecut/data".into()],
            qos: 0,
            retain: false,
            payload_size: 64,
            interval: Duration::from_secs(1),
            connect_timeout_s: 5,
            reconnect: ReconnectPolicy::Fixed(Duration::from_millis(200)),
            protocol: Protocol::V311,
        }
    }

    pub fn validate(&self) -> Result<(), AgentError> {
        parse_broker(&self.broker)?;
        if self.client_id.is_empty() {
            return Err(invalid("client-id", "the publisher needs a client id"));
        }
        if self.topics.is_empty() {
            return Err(invalid("topic", "the publisher needs at least one topic"));
        }
        if let Some(t) = self.topics.iter().find(|t| t.contains(['+', '#'])) {
            return Err(invalid(
                "topic",
                format!("`{t}`: wildcards are for subscribing, not publishing"),
            ));
        }
        if self.qos > 2 {
            return Err(invalid("qos", "must be 0, 1 or 2"));
        }
        if self.interval < Duration::from_millis(1) {
            return Err(invalid("interval", "must be at least 1ms"));
        }
        if self.payload_size > 256 * 1024 * 1024 {
            return Err(invalid("size", "larger than an MQTT packet can be"));
        }
        if self.connect_timeout_s == 0 {
            return Err(invalid("connect-timeout", "must be at least 1s"));
        }
        check_keepalive(self.protocol, self.keepalive_s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_parse_with_optional_qos() {
        assert_eq!(
            Topic::parse("a/#").unwrap(),
            Topic {
                name: "a/#".into(),
                qos: 0
            }
        );
        assert_eq!(
            Topic::parse("a/b:2").unwrap(),
            Topic {
                name: "a/b".into(),
                qos: 2
            }
        );
        assert!(Topic::parse("a:3")
            .unwrap_err()
            .contains("QoS must be 0, 1 or 2"));
        assert!(Topic::parse(":1").unwrap_err().contains("empty"));
    }

    #[test]
    fn invalid_subscriber_options_name_the_option() {
        let mut o = SubscriberOptions::new("127.0.0.1:1883", "");
        o.clean_session = false;
        assert!(o
            .validate()
            .unwrap_err()
            .to_string()
            .starts_with("client-id:"));
        let o = SubscriberOptions::new("localhost", "x");
        assert!(o.validate().unwrap_err().to_string().starts_with("broker:"));
        let mut o = SubscriberOptions::new("h:1883", "x");
        o.topics.clear();
        assert!(o.validate().unwrap_err().to_string().starts_with("topic:"));
        let mut o = SubscriberOptions::new("h:1883", "x");
        o.connect_timeout_s = 0;
        assert!(o
            .validate()
            .unwrap_err()
            .to_string()
            .starts_with("connect-timeout:"));
        assert!(SubscriberOptions::new("[::1]:1883", "x").validate().is_ok());
        let mut o = SubscriberOptions::new("h:1883", "x");
        (o.protocol, o.keepalive_s) = (Protocol::V5, 2);
        assert!(o
            .validate()
            .unwrap_err()
            .to_string()
            .contains("at least 5s"));
        o.keepalive_s = 5;
        assert!(o.validate().is_ok());
    }

    #[test]
    fn invalid_publisher_options_name_the_option() {
        let mut o = PublisherOptions::new("h:1883");
        o.topics = vec!["a/#".into()];
        assert!(o.validate().unwrap_err().to_string().contains("wildcards"));
        let mut o = PublisherOptions::new("h:1883");
        o.qos = 3;
        assert!(o.validate().unwrap_err().to_string().starts_with("qos:"));
        let mut o = PublisherOptions::new("h:0");
        o.qos = 0;
        assert!(o.validate().unwrap_err().to_string().starts_with("broker:"));
    }
}
