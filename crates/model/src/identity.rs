//! Which implementation produced a run: the client library and the broker, as families the
//! detection bands are drawn for.
//!
//! A run names them in words (`meta.json`'s `subscriber_client`, `broker`; `linecut analyze
//! --client "paho-mqtt 1.6"`). Those words are read here, once, into a family; everything that
//! depends on the implementation (the bands) matches on the family, never on the words.

use serde::{Deserialize, Serialize};

/// A client library family with its own keepalive behaviour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientFamily {
    /// rumqttc: pings every K from CONNACK, gives up at the next tick.
    Rumqttc,
    /// libmosquitto (mosquitto_sub and C clients): checks about once a second.
    Libmosquitto,
    /// paho-mqtt: checks about once a second.
    Paho,
    /// Anything else: no band.
    Other,
}

impl ClientFamily {
    /// The family a description names (`rumqttc 0.25 (linecut-agent)`, `paho-mqtt 2.1.0 …`,
    /// `mosquitto_sub 2.0.11`).
    pub fn of(description: &str) -> ClientFamily {
        if description.contains("rumqttc") {
            ClientFamily::Rumqttc
        } else if description.contains("mosquitto_sub") || description.contains("libmosquitto") {
            ClientFamily::Libmosquitto
        } else if description.contains("paho") {
            ClientFamily::Paho
        } else {
            ClientFamily::Other
        }
    }
}

/// Which client library a run's subscribers were, as `meta.json` records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientIdentity {
    pub family: ClientFamily,
    /// The library's version, when it says (`2.1.0`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

/// A broker family with its own keepalive enforcement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BrokerFamily {
    Mosquitto,
    Rumqttd,
    Other,
}

impl BrokerFamily {
    /// The family a description names (`mosquitto version 2.0.11 …`, `rumqttd 0.20 (embedded)`).
    pub fn of(description: &str) -> BrokerFamily {
        if description.contains("mosquitto") {
            BrokerFamily::Mosquitto
        } else if description.contains("rumqttd") {
            BrokerFamily::Rumqttd
        } else {
            BrokerFamily::Other
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptions_name_their_family() {
        assert_eq!(
            ClientFamily::of("rumqttc 0.25 (linecut-agent)"),
            ClientFamily::Rumqttc
        );
        assert_eq!(
            ClientFamily::of("paho-mqtt 2.1.0 (python)"),
            ClientFamily::Paho
        );
        assert_eq!(
            ClientFamily::of("mosquitto_sub 2.0.11"),
            ClientFamily::Libmosquitto
        );
        assert_eq!(ClientFamily::of("my device"), ClientFamily::Other);
        assert_eq!(
            BrokerFamily::of("mosquitto version 2.0.11 (started by linecut)"),
            BrokerFamily::Mosquitto
        );
        assert_eq!(
            BrokerFamily::of("rumqttd 0.20 (embedded)"),
            BrokerFamily::Rumqttd
        );
    }
}
