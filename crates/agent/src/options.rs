//! What an agent is given: the model's settings and the broker address to connect to, checked
//! before anything connects.
//!
//! rumqttc asserts (panics) on some invalid options — an empty client id with a persistent
//! session, a keepalive under 5 s with MQTT 5 — so every option is validated first, by the
//! settings' own rules (`linecut-model`), and a bad one becomes an [`AgentError`] naming the
//! setting and the rule. Defaults and rules are not written here: they are the model's.

use linecut_model::{FieldError, PublisherSettings, SubscriberSettings};

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("broker: {0}")]
    Broker(String),
    #[error("{}", .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; "))]
    Settings(Vec<FieldError>),
}

impl AgentError {
    /// The settings' errors, if that is what this is.
    pub fn fields(&self) -> &[FieldError] {
        match self {
            AgentError::Settings(errors) => errors,
            AgentError::Broker(_) => &[],
        }
    }
}

/// Where the broker is, as `HOST:PORT`.
pub fn parse_broker(text: &str) -> Result<(String, u16), AgentError> {
    linecut_model::protocol::parse_address(text).map_err(AgentError::Broker)
}

fn check(errors: Vec<FieldError>) -> Result<(), AgentError> {
    if errors.is_empty() {
        Ok(())
    } else {
        Err(AgentError::Settings(errors))
    }
}

/// Subscribers (one, or a fleet) and where they connect.
#[derive(Debug, Clone)]
pub struct SubscriberOptions {
    pub broker: String,
    pub settings: SubscriberSettings,
}

impl SubscriberOptions {
    /// The default settings with `client_id`, connecting to `broker`.
    pub fn new(broker: impl Into<String>, client_id: impl Into<String>) -> Self {
        SubscriberOptions {
            broker: broker.into(),
            settings: SubscriberSettings {
                client_id: client_id.into(),
                ..SubscriberSettings::default()
            },
        }
    }

    pub fn validate(&self) -> Result<(), AgentError> {
        parse_broker(&self.broker)?;
        check(self.settings.validate_for_agent())
    }
}

/// The publisher and where it connects.
#[derive(Debug, Clone)]
pub struct PublisherOptions {
    pub broker: String,
    pub settings: PublisherSettings,
}

impl PublisherOptions {
    /// The default settings, connecting to `broker`.
    pub fn new(broker: impl Into<String>) -> Self {
        PublisherOptions {
            broker: broker.into(),
            settings: PublisherSettings::default(),
        }
    }

    pub fn validate(&self) -> Result<(), AgentError> {
        parse_broker(&self.broker)?;
        check(self.settings.validate())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use linecut_model::Protocol;

    #[test]
    fn invalid_options_name_the_setting() {
        let mut o = SubscriberOptions::new("127.0.0.1:1883", "");
        o.settings.clean_session = false;
        assert!(o
            .validate()
            .unwrap_err()
            .to_string()
            .starts_with("client_id:"));
        let o = SubscriberOptions::new("localhost", "x");
        assert!(o.validate().unwrap_err().to_string().starts_with("broker:"));
        assert!(SubscriberOptions::new("[::1]:1883", "x").validate().is_ok());
        let mut o = SubscriberOptions::new("h:1883", "x");
        (o.settings.protocol, o.settings.keepalive_s) = (Protocol::V5, 2);
        assert!(o
            .validate()
            .unwrap_err()
            .to_string()
            .contains("at least 5s"));
        o.settings.keepalive_s = 5;
        assert!(o.validate().is_ok());
        let mut o = PublisherOptions::new("h:1883");
        o.settings.topics = vec!["a/#".into()];
        assert!(o.validate().unwrap_err().to_string().contains("wildcards"));
        assert!(PublisherOptions::new("h:0")
            .validate()
            .unwrap_err()
            .to_string()
            .starts_with("broker:"));
    }
}
