//! The bookkeeping every agent's connection loop shares: numbering and logging connect attempts,
//! logging CONNACKs, pings and disconnects, and sleeping the reconnect policy's delay between
//! a failure and the next attempt. The subscriber and the publisher differ only in what they do
//! with the rest of the session's events.

use crate::session::{Session, SessionError, SessionEvent};
use crate::subscriber::stopped;
use linecut_events::{
    ClientRef, Connack, ConnectAttempt, DisconnectCause, Disconnected, EventKind, EventSink,
};
use linecut_model::ReconnectPolicy;
use tokio::sync::watch;

pub(crate) struct Connection<'a> {
    client: String,
    broker: String,
    policy: ReconnectPolicy,
    sink: &'a EventSink,
    attempt: u32,
    /// Failed attempts since the last accepted CONNACK.
    failures: u32,
    /// An accepted CONNACK came and no failure since: the connection is established.
    established: bool,
    rng: fastrand::Rng,
}

impl<'a> Connection<'a> {
    /// Logs the first connect attempt.
    pub fn start(client: &str, broker: &str, policy: ReconnectPolicy, sink: &'a EventSink) -> Self {
        let connection = Connection {
            client: client.to_string(),
            broker: broker.to_string(),
            policy,
            sink,
            attempt: 1,
            failures: 0,
            established: false,
            rng: fastrand::Rng::new(),
        };
        connection.log_attempt(0);
        connection
    }

    pub fn client(&self) -> &str {
        &self.client
    }

    fn log_attempt(&self, delay_ms: u64) {
        self.sink.emit(EventKind::ConnectAttempt(ConnectAttempt {
            client: self.client.clone(),
            attempt: self.attempt,
            broker: self.broker.clone(),
            delay_ms,
        }));
    }

    /// Logs a CONNACK; an accepted one resets the back-off.
    pub fn connack(&mut self, code: u8, session_present: bool) {
        if code == 0 {
            self.failures = 0;
            self.established = true;
        }
        self.sink.emit(EventKind::Connack(Connack {
            client: self.client.clone(),
            code,
            session_present,
        }));
    }

    pub fn ping_sent(&self) {
        self.sink.emit(EventKind::PingSent(ClientRef {
            client: self.client.clone(),
        }));
    }

    pub fn ping_received(&self) {
        self.sink.emit(EventKind::PingReceived(ClientRef {
            client: self.client.clone(),
        }));
    }

    /// Logs the disconnect, waits the policy's delay and logs the next attempt (the session
    /// reconnects when polled again). False if `stop` came during the wait.
    pub async fn failed(&mut self, error: SessionError, stop: &mut watch::Receiver<bool>) -> bool {
        // A timeout on an established connection is the kernel giving up on unacknowledged
        // data, not a connect that took too long (the library reports both as timed out).
        let cause = match error.cause {
            DisconnectCause::ConnectTimeout if self.established => DisconnectCause::KernelTimeout,
            cause => cause,
        };
        self.established = false;
        self.sink.emit(EventKind::Disconnected(Disconnected {
            client: self.client.clone(),
            cause,
            error: error.text,
        }));
        self.failures += 1;
        let delay = self.policy.delay(self.failures, self.rng.f64());
        if !delay.is_zero() {
            tokio::select! {
                biased;
                _ = stopped(stop) => return false,
                _ = tokio::time::sleep(delay) => {}
            }
        }
        self.attempt += 1;
        self.log_attempt(delay.as_millis() as u64);
        true
    }
}

/// The session's next event, or `None` once `stop` says so (stopping wins a tie).
pub(crate) async fn next_or_stop<S: Session>(
    session: &mut S,
    stop: &mut watch::Receiver<bool>,
) -> Option<Result<SessionEvent, SessionError>> {
    tokio::select! {
        biased;
        _ = stopped(stop) => None,
        polled = session.poll() => Some(polled),
    }
}
