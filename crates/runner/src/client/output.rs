//! What a client under test prints, turned into linecut events. Pure: no IO, so every format is
//! tested line by line.
//!
//! Three formats:
//! - **events**: each line is a linecut event (JSON, the `linecut-events` schema), as linecut's
//!   paho script prints them; the client's own timestamps are kept.
//! - **mosquitto_sub `-v`**: `TOPIC PAYLOAD`; the payload is decoded as linecut's payload.
//! - **pattern**: a user's regular expression with named groups `seq` (and optionally `ts`, the
//!   publish time, and `topic`) or `payload`.
//!
//! Lines the format does not recognise are counted, never dropped silently: the runner reports
//! how many there were and the first of them.

use linecut_events::{Event, EventKind, Message};
use linecut_model::payload;
use regex::Regex;

/// How a client's stdout is read.
#[derive(Debug, Clone)]
pub enum OutputFormat {
    Events,
    MosquittoSubVerbose,
    Pattern(Regex),
}

/// What one line said.
#[derive(Debug, Clone, PartialEq)]
pub enum Line {
    /// An event to log; `ts_us` is the client's own stamp when it gave one. Boxed: an event
    /// is far larger than the other answers.
    Event {
        ts_us: Option<i64>,
        kind: Box<EventKind>,
    },
    /// A line this format does not recognise.
    Unmatched,
    /// A line with nothing to say (blank, or a header line).
    Ignored,
}

/// Fills what a line-oriented client cannot say about a message.
#[derive(Debug, Clone)]
pub struct MessageDefaults {
    pub client: String,
    /// The first subscribed topic, for patterns without a `topic` group.
    pub topic: String,
    /// The QoS messages arrive with: the lower of the publisher's and the subscription's.
    pub qos: u8,
}

impl OutputFormat {
    pub fn parse(&self, line: &str, defaults: &MessageDefaults) -> Line {
        let line = line.trim_end_matches(['\r', '\n']);
        if line.trim().is_empty() {
            return Line::Ignored;
        }
        match self {
            OutputFormat::Events => parse_event(line),
            OutputFormat::MosquittoSubVerbose => match line.split_once(' ') {
                Some((topic, body)) => message(defaults, topic, body.as_bytes(), None),
                None => Line::Unmatched,
            },
            OutputFormat::Pattern(regex) => {
                let Some(caps) = regex.captures(line) else {
                    return Line::Unmatched;
                };
                let topic = caps
                    .name("topic")
                    .map_or(defaults.topic.as_str(), |m| m.as_str());
                if let Some(p) = caps.name("payload") {
                    return message(defaults, topic, p.as_str().as_bytes(), None);
                }
                let Some(seq) = caps
                    .name("seq")
                    .and_then(|m| m.as_str().parse::<u64>().ok())
                else {
                    return Line::Unmatched;
                };
                let pub_ts_us = caps.name("ts").and_then(|m| timestamp_us(m.as_str()));
                if caps.name("ts").is_some() && pub_ts_us.is_none() {
                    return Line::Unmatched;
                }
                let stamp = payload::Stamp {
                    seq,
                    pub_ts_us: pub_ts_us.unwrap_or(0),
                };
                message(defaults, topic, &[], Some((stamp, pub_ts_us.is_some())))
            }
        }
    }
}

/// Events a subscriber may report; anything else on a client's stdout is not its to say.
fn parse_event(line: &str) -> Line {
    let Ok(event) = serde_json::from_str::<Event>(line) else {
        return Line::Unmatched;
    };
    match event.kind {
        EventKind::Header(_) => Line::Ignored,
        EventKind::ConnectAttempt(_)
        | EventKind::Connack(_)
        | EventKind::SubscribeSent(_)
        | EventKind::Suback(_)
        | EventKind::PingSent(_)
        | EventKind::PingReceived(_)
        | EventKind::Message(_)
        | EventKind::Disconnected(_)
        | EventKind::ClientInfo(_) => Line::Event {
            ts_us: Some(event.ts_us),
            kind: Box::new(event.kind),
        },
        _ => Line::Unmatched,
    }
}

/// A publish time written as integer microseconds, or as seconds with a fraction.
fn timestamp_us(text: &str) -> Option<i64> {
    if let Ok(us) = text.parse::<i64>() {
        return Some(us);
    }
    let secs: f64 = text.parse().ok()?;
    secs.is_finite().then(|| (secs * 1e6).round() as i64)
}

fn message(
    defaults: &MessageDefaults,
    topic: &str,
    body: &[u8],
    known: Option<(payload::Stamp, bool)>,
) -> Line {
    let (stamp, has_ts) = match known {
        Some((stamp, has_ts)) => (Some(stamp), has_ts),
        None => (payload::decode(body), true),
    };
    Line::Event {
        ts_us: None,
        kind: Box::new(EventKind::Message(Message {
            client: defaults.client.clone(),
            topic: topic.to_string(),
            qos: defaults.qos,
            dup: false,
            retain: false,
            packet_id: None,
            payload_len: body.len() as u32,
            seq: stamp.map(|s| s.seq),
            pub_ts_us: stamp.filter(|_| has_ts).map(|s| s.pub_ts_us),
            foreign: stamp.is_none(),
        })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults() -> MessageDefaults {
        MessageDefaults {
            client: "sub".into(),
            topic: "linecut/#".into(),
            qos: 0,
        }
    }

    fn msg(line: Line) -> Message {
        match line {
            Line::Event { kind, .. } => match *kind {
                EventKind::Message(m) => m,
                other => panic!("not a message: {other:?}"),
            },
            other => panic!("not a message: {other:?}"),
        }
    }

    #[test]
    fn mosquitto_sub_lines_decode_linecut_payloads() {
        let m = msg(OutputFormat::MosquittoSubVerbose
            .parse("linecut/sensor lc1/42/1764110000123456/....\n", &defaults()));
        assert_eq!(
            (m.seq, m.pub_ts_us),
            (Some(42), Some(1_764_110_000_123_456))
        );
        assert_eq!(m.topic, "linecut/sensor");
        assert!(!m.foreign);
        let other = msg(OutputFormat::MosquittoSubVerbose.parse("t hello world", &defaults()));
        assert!(other.foreign && other.seq.is_none());
        assert_eq!(
            OutputFormat::MosquittoSubVerbose.parse("no-space", &defaults()),
            Line::Unmatched
        );
        assert_eq!(
            OutputFormat::MosquittoSubVerbose.parse("  \n", &defaults()),
            Line::Ignored
        );
    }

    #[test]
    fn patterns_read_seq_and_timestamps_in_either_unit() {
        let f =
            OutputFormat::Pattern(Regex::new(r"^got (?P<seq>\d+) sent (?P<ts>[\d.]+)$").unwrap());
        let m = msg(f.parse("got 7 sent 1764110000.5", &defaults()));
        assert_eq!((m.seq, m.pub_ts_us), (Some(7), Some(1_764_110_000_500_000)));
        let m = msg(f.parse("got 8 sent 1764110000600000", &defaults()));
        assert_eq!(m.pub_ts_us, Some(1_764_110_000_600_000));
        assert_eq!(f.parse("got x sent 1", &defaults()), Line::Unmatched);
        assert_eq!(f.parse("hello", &defaults()), Line::Unmatched);
        let seq_only = OutputFormat::Pattern(Regex::new(r"#(?P<seq>\d+)").unwrap());
        let m = msg(seq_only.parse("#9", &defaults()));
        assert_eq!((m.seq, m.pub_ts_us), (Some(9), None));
        let payload =
            OutputFormat::Pattern(Regex::new(r"^\[(?P<topic>[^\]]+)\] (?P<payload>\S+)").unwrap());
        let m = msg(payload.parse("[a/b] lc1/3/100/..", &defaults()));
        assert_eq!(
            (m.topic.as_str(), m.seq, m.pub_ts_us),
            ("a/b", Some(3), Some(100))
        );
    }

    #[test]
    fn event_lines_keep_the_clients_timestamp_and_only_subscriber_types() {
        let line = r#"{"ts_us":5,"source":"subscriber","type":"connack","client":"c","code":0,"session_present":false}"#;
        match OutputFormat::Events.parse(line, &defaults()) {
            Line::Event { ts_us, kind } => {
                assert_eq!(ts_us, Some(5));
                assert_eq!(kind.type_name(), "connack");
            }
            other => panic!("{other:?}"),
        }
        let proxy = r#"{"ts_us":5,"source":"proxy","type":"proxy_stopped","connections":1}"#;
        assert_eq!(
            OutputFormat::Events.parse(proxy, &defaults()),
            Line::Unmatched
        );
        assert_eq!(
            OutputFormat::Events.parse("Traceback (most recent call last):", &defaults()),
            Line::Unmatched
        );
        let header = r#"{"ts_us":1,"source":"subscriber","type":"header","schema":"linecut-events","schema_version":1,"producer":"x","producer_version":"1"}"#;
        assert_eq!(
            OutputFormat::Events.parse(header, &defaults()),
            Line::Ignored
        );
    }
}
