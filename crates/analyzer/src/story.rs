//! What a window's events prove, as types: how each side's detection was seen ([`DetectHow`])
//! and the stories the events tell ([`Story`]). The words a report prints are their `Display`;
//! `report.json` carries those same words, and code that needs to know which story it has
//! matches on the variant, never on the text.

use linecut_events::DisconnectCause;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// How a detection was seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DetectHow {
    /// The client said so, with its cause (`keepalive_timeout`, …).
    Cause(DisconnectCause),
    /// The client closed its socket, as the proxy saw on the wire.
    SocketClosed,
    /// The client opened a new connection, as the proxy saw on the wire.
    NewConnection,
    /// The broker closed its leg, as the proxy saw.
    Proxy,
    /// The broker's log says it dropped the client.
    BrokerLog,
}

impl DetectHow {
    /// The name `report.json` uses.
    pub fn name(self) -> String {
        match self {
            DetectHow::Cause(cause) => crate::clients::cause_name(cause),
            DetectHow::SocketClosed => "socket_closed".into(),
            DetectHow::NewConnection => "new_connection".into(),
            DetectHow::Proxy => "proxy".into(),
            DetectHow::BrokerLog => "broker_log".into(),
        }
    }

    fn from_name(name: &str) -> Option<DetectHow> {
        Some(match name {
            "socket_closed" => DetectHow::SocketClosed,
            "new_connection" => DetectHow::NewConnection,
            "proxy" => DetectHow::Proxy,
            "broker_log" => DetectHow::BrokerLog,
            cause => DetectHow::Cause(
                serde_json::from_value(serde_json::Value::String(cause.to_string())).ok()?,
            ),
        })
    }
}

impl fmt::Display for DetectHow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

impl Serialize for DetectHow {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.name())
    }
}

impl<'de> Deserialize<'de> for DetectHow {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        DetectHow::from_name(&name)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown detection `{name}`")))
    }
}

/// A story a window's events prove.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Story {
    /// The client's own verdict was its keepalive rule.
    PingTimeout,
    /// The broker dropped the client before (or without) the client giving up.
    BrokerTimedOut,
    /// The client's new connection came while the broker still held the old one.
    SessionTakeover,
    /// Held data or a FIN reached a connection the client had already closed.
    StaleDataAfterAbandon,
    /// Neither side gave up.
    RodeThrough,
    /// The connection had already ended when the fault began.
    DownBeforeFault,
    /// The broker published the client's will once the client had come back: with its new
    /// connection taking the session over, or after its CONNACK.
    WillWhileConnected,
    /// The broker sent a DISCONNECT with a reason code (MQTT 5): it said why.
    BrokerSaidWhy,
    /// The client closed a new connection itself right after its CONNECT, without waiting for
    /// the broker's answer.
    ClosedBeforeConnack,
    /// The client's new connection came while the broker still held the old one, and the
    /// broker, by its rule, kept the old one open beside it instead of taking it over.
    OldConnectionKept,
}

impl Story {
    const ALL: [Story; 10] = [
        Story::PingTimeout,
        Story::BrokerTimedOut,
        Story::SessionTakeover,
        Story::StaleDataAfterAbandon,
        Story::RodeThrough,
        Story::DownBeforeFault,
        Story::WillWhileConnected,
        Story::BrokerSaidWhy,
        Story::ClosedBeforeConnack,
        Story::OldConnectionKept,
    ];

    /// The words reports print.
    pub const fn words(self) -> &'static str {
        match self {
            Story::PingTimeout => "client timed out waiting for PINGRESP",
            Story::BrokerTimedOut => "broker timed the client out",
            Story::SessionTakeover => "new connection took over the old session",
            Story::StaleDataAfterAbandon => {
                "the broker's side reached a connection the client had already abandoned"
            }
            Story::RodeThrough => "rode through the outage without reconnecting",
            Story::DownBeforeFault => "the connection had already ended when the fault began",
            Story::WillWhileConnected => {
                "the backend heard the client's will once the client had come back"
            }
            Story::BrokerSaidWhy => "the broker said why it ended the connection",
            Story::ClosedBeforeConnack => {
                "the client closed a new connection itself right after its CONNECT, without waiting for the broker's answer"
            }
            Story::OldConnectionKept => {
                "the broker kept the old connection open beside the client's new one"
            }
        }
    }
}

impl fmt::Display for Story {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.words())
    }
}

impl Serialize for Story {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.words())
    }
}

impl<'de> Deserialize<'de> for Story {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let words = String::deserialize(d)?;
        Story::ALL
            .into_iter()
            .find(|s| s.words() == words)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown story `{words}`")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stories_and_detections_read_back_as_they_are_written() {
        for story in Story::ALL {
            let text = serde_json::to_string(&story).unwrap();
            assert_eq!(serde_json::from_str::<Story>(&text).unwrap(), story);
        }
        for how in [
            DetectHow::Cause(DisconnectCause::KeepaliveTimeout),
            DetectHow::SocketClosed,
            DetectHow::NewConnection,
            DetectHow::Proxy,
            DetectHow::BrokerLog,
        ] {
            let text = serde_json::to_string(&how).unwrap();
            assert_eq!(serde_json::from_str::<DetectHow>(&text).unwrap(), how);
        }
    }
}
