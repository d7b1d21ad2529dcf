//! A broker's log, read into typed entries: the lines the analysis uses, from mosquitto's log
//! or from linecut's aedes launcher (`crates/runner/brokers/aedes_broker.mjs`).
//!
//! mosquitto writes `<unix seconds>: <message>` with its default messages; linecut's
//! configuration turns on timestamps and connection messages. Two messages matter:
//! - `Client <id> has exceeded timeout, disconnecting.` — the broker's keepalive verdict;
//! - `Client <id> already connected, closing old connection.` — a new connection with the same
//!   client id took over the session.
//!
//! Everything else (connects, subscribes, config) is skipped. Timestamps have one-second
//! resolution: an entry happened within the second after its time.
//!
//! The aedes launcher writes `<unix seconds>.<microseconds> <event> <details>`; its
//! `keepalive_timeout client <id>` is aedes's keepalive verdict, stamped to the microsecond.
//! (amqtt never times a client out, and its log names no client ids on close: nothing to read.)

/// What a log entry says happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BrokerLogKind {
    /// The broker dropped the client for its keepalive.
    KeepaliveTimeout,
    /// A new connection with the same client id replaced the old one.
    Takeover,
    /// The broker found the client's connection closed or broken under it (a FIN, a reset,
    /// a socket error) without a DISCONNECT.
    Closed,
}

/// One entry of the broker's log that the analysis uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerLogEntry {
    /// The line's time (whole seconds), in microseconds.
    pub ts_us: i64,
    pub client: String,
    pub kind: BrokerLogKind,
    /// The message as mosquitto wrote it, for timelines.
    pub text: String,
}

const TIMEOUT_SUFFIX: &str = " has exceeded timeout, disconnecting.";
const TAKEOVER_SUFFIX: &str = " already connected, closing old connection.";
const CLOSED_SUFFIX: &str = " closed its connection.";
const SOCKET_ERROR_PREFIX: &str = "Socket error on client ";
const SOCKET_ERROR_SUFFIX: &str = ", disconnecting.";

/// Reads one line of mosquitto's log; `None` for lines the analysis does not use.
pub fn parse_mosquitto_line(line: &str) -> Option<BrokerLogEntry> {
    let (ts, text) = line.split_once(": ")?;
    let secs: i64 = ts.trim().parse().ok()?;
    let socket_error = text
        .strip_prefix(SOCKET_ERROR_PREFIX)
        .and_then(|b| b.strip_suffix(SOCKET_ERROR_SUFFIX));
    let body = text.strip_prefix("Client ");
    let (client, kind) = if let Some(client) = socket_error {
        (client, BrokerLogKind::Closed)
    } else if let Some(client) = body.and_then(|b| b.strip_suffix(TIMEOUT_SUFFIX)) {
        (client, BrokerLogKind::KeepaliveTimeout)
    } else if let Some(client) = body.and_then(|b| b.strip_suffix(TAKEOVER_SUFFIX)) {
        (client, BrokerLogKind::Takeover)
    } else if let Some(client) = body
        .and_then(|b| b.strip_suffix(CLOSED_SUFFIX))
        // A connection that never sent CONNECT (a readiness probe) has no client to speak of.
        .filter(|c| *c != "<unknown>")
    {
        (client, BrokerLogKind::Closed)
    } else {
        return None;
    };
    Some(BrokerLogEntry {
        ts_us: secs.checked_mul(1_000_000)?,
        client: client.to_string(),
        kind,
        text: text.to_string(),
    })
}

const LAUNCHER_TIMEOUT: &str = "keepalive_timeout client ";

/// Reads one line of linecut's aedes launcher; `None` for lines the analysis does not use.
pub fn parse_launcher_line(line: &str) -> Option<BrokerLogEntry> {
    let (ts, text) = line.split_once(' ')?;
    let (secs, micros) = ts.split_once('.')?;
    if micros.len() != 6 {
        return None;
    }
    let secs: i64 = secs.parse().ok()?;
    let micros: i64 = micros.parse().ok()?;
    let client = text.strip_prefix(LAUNCHER_TIMEOUT)?;
    Some(BrokerLogEntry {
        ts_us: secs.checked_mul(1_000_000)?.checked_add(micros)?,
        client: client.to_string(),
        kind: BrokerLogKind::KeepaliveTimeout,
        text: text.to_string(),
    })
}

/// Reads a whole log, keeping the entries the analysis uses, in order: each line as mosquitto's
/// or as the aedes launcher's.
pub fn parse_broker_log(text: &str) -> Vec<BrokerLogEntry> {
    text.lines()
        .filter_map(|l| parse_mosquitto_line(l).or_else(|| parse_launcher_line(l)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_broker_verdicts_are_read_and_everything_else_skipped() {
        let log = "1795649978: mosquitto version 2.0.11 starting\n\
                   1795650040: Client paho 2014 has exceeded timeout, disconnecting.\n\
                   1795650100: Client s already connected, closing old connection.\n\
                   1795650101: Client s disconnected.\n\
                   1795650102: Client s closed its connection.\n\
                   1795650103: Socket error on client s, disconnecting.\n\
                   1795650104: Client <unknown> closed its connection.\n\
                   garbage\n\
                   99999999999999999999: Client x has exceeded timeout, disconnecting.\n";
        let entries = parse_broker_log(log);
        assert_eq!(entries.len(), 4);
        assert_eq!(entries[2].kind, BrokerLogKind::Closed);
        assert_eq!(
            (entries[3].kind, entries[3].client.as_str()),
            (BrokerLogKind::Closed, "s")
        );
        assert_eq!(entries[0].client, "paho 2014", "ids may hold spaces");
        assert_eq!(entries[0].kind, BrokerLogKind::KeepaliveTimeout);
        assert_eq!(entries[0].ts_us, 1_795_650_040_000_000);
        assert_eq!(entries[1].kind, BrokerLogKind::Takeover);
        assert_eq!(
            entries[1].text,
            "Client s already connected, closing old connection."
        );
    }

    #[test]
    fn the_aedes_launchers_keepalive_verdict_is_read_to_the_microsecond() {
        let log = "1796553917.652482 listening 127.0.0.1:34161 aedes 1.2.0\n\
                   1796553922.713116 keepalive_timeout client linecut sub\n\
                   1796553922.714929 client_error client linecut sub: keep alive timeout\n\
                   1796553922.71 keepalive_timeout client short\n\
                   x.123456 keepalive_timeout client bad\n";
        let entries = parse_broker_log(log);
        assert_eq!(entries.len(), 1, "{entries:?}");
        assert_eq!(entries[0].kind, BrokerLogKind::KeepaliveTimeout);
        assert_eq!(entries[0].client, "linecut sub");
        assert_eq!(entries[0].ts_us, 1_796_553_922_713_116);
    }
}
