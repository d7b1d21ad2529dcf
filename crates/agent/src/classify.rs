//! Turning rumqttc's connection errors into the causes an experiment reports.
//!
//! rumqttc 0.25 reports a missed PINGRESP as `StateError::AwaitPingResp`, a FIN from the peer as
//! `StateError::ConnectionAborted`, and an RST or failed write as an IO error — sometimes wrapped
//! in `StateError::Io`, sometimes in `StateError::Deserialization(mqttbytes::Error::Io)`. The
//! library's own text is always kept next to the cause.

use linecut_events::DisconnectCause;
use rumqttc::{ConnectionError, StateError};
use std::io::ErrorKind;

pub fn classify(error: &ConnectionError) -> DisconnectCause {
    match error {
        ConnectionError::MqttState(StateError::AwaitPingResp) => DisconnectCause::KeepaliveTimeout,
        ConnectionError::MqttState(StateError::ConnectionAborted) => DisconnectCause::ClosedByPeer,
        ConnectionError::MqttState(StateError::Io(e)) | ConnectionError::Io(e) => classify_io(e),
        ConnectionError::MqttState(StateError::Deserialization(rumqttc::mqttbytes::Error::Io(
            e,
        ))) => classify_io(e),
        ConnectionError::NetworkTimeout => DisconnectCause::ConnectTimeout,
        ConnectionError::ConnectionRefused(_) => DisconnectCause::Refused,
        ConnectionError::RequestsDone => DisconnectCause::Requested,
        _ => DisconnectCause::Other,
    }
}

/// The same classification for rumqttc's MQTT 5 client, whose error types are separate.
pub fn classify5(error: &rumqttc::v5::ConnectionError) -> DisconnectCause {
    use rumqttc::v5::{ConnectionError as C, StateError as S};
    match error {
        C::MqttState(S::AwaitPingResp) => DisconnectCause::KeepaliveTimeout,
        C::MqttState(S::ConnectionAborted) => DisconnectCause::ClosedByPeer,
        C::MqttState(S::ServerDisconnect { .. }) => DisconnectCause::ClosedByPeer,
        C::MqttState(S::Io(e)) | C::Io(e) => classify_io(e),
        C::MqttState(S::Deserialization(rumqttc::v5::mqttbytes::Error::Io(e))) => classify_io(e),
        C::Timeout(_) => DisconnectCause::ConnectTimeout,
        C::ConnectionRefused(_) => DisconnectCause::Refused,
        C::RequestsDone => DisconnectCause::Requested,
        _ => DisconnectCause::Other,
    }
}

/// A socket error's cause (the agents' sessions and the will watcher alike).
pub(crate) fn classify_io(error: &std::io::Error) -> DisconnectCause {
    match error.kind() {
        ErrorKind::ConnectionRefused => DisconnectCause::Refused,
        ErrorKind::ConnectionReset | ErrorKind::BrokenPipe | ErrorKind::ConnectionAborted => {
            DisconnectCause::ConnectionReset
        }
        ErrorKind::UnexpectedEof => DisconnectCause::ClosedByPeer,
        ErrorKind::TimedOut => DisconnectCause::ConnectTimeout,
        _ => DisconnectCause::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io;

    #[test]
    fn each_library_error_maps_to_its_cause() {
        let io = |k| io::Error::new(k, "x");
        let cases = [
            (
                ConnectionError::MqttState(StateError::AwaitPingResp),
                DisconnectCause::KeepaliveTimeout,
            ),
            (
                ConnectionError::MqttState(StateError::ConnectionAborted),
                DisconnectCause::ClosedByPeer,
            ),
            (
                ConnectionError::Io(io(ErrorKind::ConnectionRefused)),
                DisconnectCause::Refused,
            ),
            (
                ConnectionError::MqttState(StateError::Io(io(ErrorKind::ConnectionReset))),
                DisconnectCause::ConnectionReset,
            ),
            (
                ConnectionError::MqttState(StateError::Deserialization(
                    rumqttc::mqttbytes::Error::Io(io(ErrorKind::BrokenPipe)),
                )),
                DisconnectCause::ConnectionReset,
            ),
            (
                ConnectionError::NetworkTimeout,
                DisconnectCause::ConnectTimeout,
            ),
            (
                ConnectionError::ConnectionRefused(rumqttc::ConnectReturnCode::NotAuthorized),
                DisconnectCause::Refused,
            ),
            (ConnectionError::FlushTimeout, DisconnectCause::Other),
        ];
        for (error, cause) in cases {
            assert_eq!(classify(&error), cause, "{error}");
        }
    }
}
