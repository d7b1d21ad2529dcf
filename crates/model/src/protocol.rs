//! MQTT vocabulary shared by every part of linecut: the protocol version a client speaks, a
//! topic (filter) with its QoS, and topic matching.

use std::fmt;

/// The MQTT protocol version a client speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    V311,
    V5,
}

impl Protocol {
    pub fn parse(text: &str) -> Result<Protocol, String> {
        match text {
            "3.1.1" | "4" => Ok(Protocol::V311),
            "5" | "5.0" => Ok(Protocol::V5),
            _ => Err(format!("`{text}` is not an MQTT version; use 3.1.1 or 5")),
        }
    }
}

impl fmt::Display for Protocol {
    /// The spelling scenario files and command lines use (`3.1.1`, `5`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::V311 => "3.1.1",
            Protocol::V5 => "5",
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

impl fmt::Display for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.name, self.qos)
    }
}

/// A broker's address as `HOST:PORT` (IPv6 hosts in brackets), split into host and port.
pub fn parse_address(text: &str) -> Result<(String, u16), String> {
    let (host, port) = text
        .rsplit_once(':')
        .ok_or_else(|| format!("`{text}` is not HOST:PORT"))?;
    let port = port
        .parse::<u16>()
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| format!("`{port}` is not a port number (1-65535)"))?;
    if host.is_empty() {
        return Err(format!("`{text}`: the host is empty"));
    }
    Ok((host.trim_matches(['[', ']']).to_string(), port))
}

/// Whether `topic` matches the subscription `filter` (`+` one level, `#` the rest).
pub fn topic_matches(filter: &str, topic: &str) -> bool {
    let mut f = filter.split('/');
    let mut t = topic.split('/');
    loop {
        match (f.next(), t.next()) {
            (Some("#"), _) => return true,
            (Some("+"), Some(_)) => {}
            (Some(a), Some(b)) if a == b => {}
            (None, None) => return true,
            _ => return false,
        }
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
    fn filters_match_by_level() {
        assert!(topic_matches("a/#", "a/b/c"));
        assert!(topic_matches("a/+/c", "a/b/c"));
        assert!(!topic_matches("a/+", "a/b/c"));
        assert!(topic_matches("a/b", "a/b"));
        assert!(!topic_matches("a/b", "a/c"));
    }

    #[test]
    fn protocols_print_as_they_parse() {
        for p in [Protocol::V311, Protocol::V5] {
            assert_eq!(Protocol::parse(&p.to_string()).unwrap(), p);
        }
    }
}
