//! Stage one: the file as written. Every value keeps its byte span, unknown keys are rejected
//! (with the closest known key as a suggestion), and wrong types fail here with their location.

use crate::error::{closest, Locator, Problem};
use serde::Deserialize;
use toml::Spanned;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawScenario {
    pub name: Option<Spanned<String>>,
    pub description: Option<String>,
    pub duration: Spanned<String>,
    pub broker: Option<RawBroker>,
    pub publisher: Option<RawPublisher>,
    pub subscriber: Option<RawSubscriber>,
    #[serde(default, rename = "fault")]
    pub faults: Vec<Spanned<RawFault>>,
    /// Metric to condition; spanned so a bad key or condition is reported where it stands.
    pub expect: Option<std::collections::BTreeMap<Spanned<String>, Spanned<toml::Value>>>,
    /// Axes for `linecut sweep` (checked by the sweep, which applies them to this file; a
    /// plain run ignores the section).
    pub sweep: Option<Spanned<toml::Table>>,
    pub capture: Option<RawCapture>,
    /// Seed for the faults' phase draws (`jitter`); drawn at random when absent.
    pub seed: Option<Spanned<i64>>,
    pub network: Option<Spanned<RawNetwork>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNetwork {
    pub mode: Option<Spanned<String>>,
    pub profile: Option<Spanned<String>>,
    pub tcp_syn_retries: Option<Spanned<i64>>,
    pub tcp_retries2: Option<Spanned<i64>>,
    pub tcp_keepalive_time: Option<Spanned<String>>,
    pub tcp_keepalive_intvl: Option<Spanned<String>>,
    pub tcp_keepalive_probes: Option<Spanned<i64>>,
    pub tcp_user_timeout: Option<Spanned<String>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCapture {
    pub pcap: Option<bool>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBroker {
    pub kind: Option<Spanned<String>>,
    pub address: Option<Spanned<String>>,
    pub persistence: Option<bool>,
    pub persistent_client_expiration: Option<Spanned<String>>,
    pub max_keepalive: Option<Spanned<u16>>,
    pub max_queued_messages: Option<Spanned<u32>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPublisher {
    pub topics: Option<Vec<Spanned<String>>>,
    pub interval: Option<Spanned<String>>,
    pub rate: Option<Spanned<f64>>,
    pub qos: Option<Spanned<u8>>,
    pub retain: Option<bool>,
    pub size: Option<Spanned<u32>>,
    pub mqtt: Option<Spanned<String>>,
    pub keepalive: Option<Spanned<String>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSubscriber {
    pub count: Option<Spanned<u32>>,
    pub client_id: Option<Spanned<String>>,
    pub keepalive: Option<Spanned<String>>,
    pub clean_session: Option<bool>,
    pub topics: Option<Vec<Spanned<String>>>,
    pub connect_timeout: Option<Spanned<String>>,
    pub reconnect: Option<Spanned<String>>,
    pub resubscribe: Option<Spanned<String>>,
    pub mqtt: Option<Spanned<String>>,
    pub client: Option<Spanned<String>>,
    pub paho: Option<Spanned<String>>,
    pub python: Option<Spanned<String>>,
    pub command: Option<Spanned<Vec<String>>>,
    pub pattern: Option<Spanned<String>>,
    pub library: Option<Spanned<String>>,
    pub will: Option<Spanned<RawWill>>,
    pub session_expiry: Option<Spanned<String>>,
    pub receive_maximum: Option<Spanned<u16>>,
}

/// `[subscriber] will = { topic, payload, qos, retain, delay }`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWill {
    pub topic: Option<Spanned<String>>,
    pub payload: Option<Spanned<String>>,
    pub qos: Option<Spanned<u8>>,
    pub retain: Option<bool>,
    pub delay: Option<Spanned<String>>,
}

/// One `[[fault]]`: the keys of `linecut proxy --fault`, as a table, every key and value with
/// its place in the file. Which keys a kind takes, and of what type, is the fault kind's
/// descriptor's business (`linecut_proxy::faults::KINDS`), not a list kept here.
pub type RawFault = std::collections::BTreeMap<Spanned<String>, Spanned<toml::Value>>;

/// A stage-one error as a located problem, with a suggestion for a misspelt key.
pub fn problem(error: &toml::de::Error, text: &str, locate: &Locator<'_>) -> Problem {
    let span = error.span().unwrap_or(0..0);
    let (line, column) = locate.at(span.start);
    let message = error.message().trim().to_string();
    let at_span = text
        .get(span.clone())
        .unwrap_or("")
        .trim()
        .trim_matches('"');
    // toml says "unknown field `x`, expected one of `a`, `b`".
    let unknown = message
        .strip_prefix("unknown field `")
        .and_then(|m| m.split('`').next());
    let suggestion = unknown.and_then(|word| {
        let expected: Vec<&str> = message
            .split("expected")
            .nth(1)
            .map(|list| list.split('`').skip(1).step_by(2).collect())
            .unwrap_or_default();
        closest(word, expected).map(|s| format!("`{s}`"))
    });
    let field = unknown
        .or(message
            .strip_prefix("missing field `")
            .and_then(|m| m.split('`').next()))
        .unwrap_or(if at_span.is_empty() {
            "(file)"
        } else {
            at_span
        })
        .to_string();
    Problem {
        line,
        column,
        field,
        message,
        suggestion,
    }
}
