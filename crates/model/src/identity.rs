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
    /// paho-mqtt for Python: checks about once a second.
    Paho,
    /// MQTT.js: a K/2 interval timer, rescheduled by PINGRESP and acknowledgements.
    MqttJs,
    /// Eclipse Paho C: checks every clamp(K/10, 0.1 s, 5 s), gives up after 1.5K.
    PahoC,
    /// aiomqtt: paho-mqtt for Python, its checks driven once a second by asyncio.
    Aiomqtt,
    /// Eclipse Paho Go: a ping ticker, gives up after a fixed PingTimeout.
    PahoGo,
    /// Anything else: no band.
    Other,
}

impl ClientFamily {
    /// The family a description names (`rumqttc 0.25 (linecut-agent)`, `paho-mqtt 2.1.0 …`,
    /// `mosquitto_sub 2.0.11`, `MQTT.js 5.16.0`, `Eclipse Paho C 1.3.12`, `aiomqtt 2.5.1`,
    /// `Eclipse Paho Go 1.1.1`), read without regard to case.
    pub fn of(description: &str) -> ClientFamily {
        let d = description.to_ascii_lowercase();
        // A name counts where it ends a word: "paho c" names Paho C, "paho client" does not.
        let has = |names: &[&str]| {
            names.iter().any(|n| {
                d.match_indices(n).any(|(i, _)| {
                    !d[i + n.len()..]
                        .chars()
                        .next()
                        .is_some_and(|c| c.is_ascii_alphanumeric())
                })
            })
        };
        // Most specific first: aiomqtt runs on paho-mqtt, and "paho" alone is paho for Python.
        if has(&["rumqttc"]) {
            ClientFamily::Rumqttc
        } else if has(&["mosquitto_sub", "libmosquitto"]) {
            ClientFamily::Libmosquitto
        } else if has(&["aiomqtt"]) {
            ClientFamily::Aiomqtt
        } else if has(&["mqtt.js", "mqttjs"]) {
            ClientFamily::MqttJs
        } else if has(&["paho c", "paho-c", "paho.mqtt.c"]) {
            ClientFamily::PahoC
        } else if has(&["paho go", "paho-go", "paho.mqtt.golang"]) {
            ClientFamily::PahoGo
        } else if has(&["paho"]) {
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
    Aedes,
    Amqtt,
    Other,
}

impl BrokerFamily {
    /// The family a description names (`mosquitto version 2.0.11 …`, `rumqttd 0.20 (embedded)`,
    /// `aedes 1.2.0 …`, `amqtt 0.12.1 …`).
    pub fn of(description: &str) -> BrokerFamily {
        if description.contains("mosquitto") {
            BrokerFamily::Mosquitto
        } else if description.contains("rumqttd") {
            BrokerFamily::Rumqttd
        } else if description.contains("aedes") {
            BrokerFamily::Aedes
        } else if description.contains("amqtt") {
            BrokerFamily::Amqtt
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
            ClientFamily::of("aiomqtt 2.5.1 (paho-mqtt 2.1.0)"),
            ClientFamily::Aiomqtt
        );
        assert_eq!(ClientFamily::of("MQTT.js 5.16.0"), ClientFamily::MqttJs);
        assert_eq!(
            ClientFamily::of("Eclipse Paho C 1.3.12"),
            ClientFamily::PahoC
        );
        assert_eq!(ClientFamily::of("paho.mqtt.golang"), ClientFamily::PahoGo);
        assert_eq!(ClientFamily::of("Paho-MQTT 1.6.1"), ClientFamily::Paho);
        assert_eq!(ClientFamily::of("paho client"), ClientFamily::Paho);
        assert_eq!(
            BrokerFamily::of("mosquitto version 2.0.11 (started by linecut)"),
            BrokerFamily::Mosquitto
        );
        assert_eq!(
            BrokerFamily::of("rumqttd 0.20 (embedded)"),
            BrokerFamily::Rumqttd
        );
        assert_eq!(
            BrokerFamily::of("aedes 1.2.0 (Node v20.20.2, started by linecut)"),
            BrokerFamily::Aedes
        );
        assert_eq!(
            BrokerFamily::of("amqtt 0.12.1 (started by linecut)"),
            BrokerFamily::Amqtt
        );
    }
}
