//! The MQTT actors of linecut experiments, built on rumqttc.
//!
//! - [`run_subscriber`] / [`run_fleet`]: subscribers that log every connect attempt, CONNACK,
//!   SUBSCRIBE/SUBACK, PINGREQ/PINGRESP, message (with the publisher's sequence number and publish
//!   time decoded from its payload) and disconnect (with a classified cause and the library's own
//!   text), and reconnect and re-subscribe by explicit policy.
//! - [`run_publisher`]: a publisher whose payloads carry a sequence number and publish time in
//!   the format of [`payload`].
//!
//! Layout: pure parts (`payload.rs`, `backoff.rs`, `options.rs`, `classify.rs`) are separate from
//! the client library boundary (`session.rs`) and from the loops that use it (`subscriber.rs`,
//! `publisher.rs`, `fleet.rs`).

pub mod backoff;
mod classify;
mod connection;
mod fleet;
pub mod options;
pub mod payload;
mod publisher;
pub mod session;
mod subscriber;

pub use backoff::ReconnectPolicy;
pub use classify::classify;
pub use fleet::{fleet_ids, run_fleet, FleetStats};
pub use options::{AgentError, PublisherOptions, ResubscribePolicy, SubscriberOptions, Topic};
pub use publisher::{run_publisher, PublisherStats};
pub use session::{
    ClientSession, Protocol, Session, SessionConfig, SessionEvent, V4Session, V5Session,
};
pub use subscriber::{run_subscriber, Progress, SubscriberStats};

/// A session for validated subscriber options and one client id.
pub fn subscriber_session(options: &SubscriberOptions, client_id: &str) -> ClientSession {
    let (host, port) =
        options::parse_broker(&options.broker).expect("options are validated before use");
    ClientSession::new(&SessionConfig {
        host: &host,
        port,
        client_id,
        keepalive_s: options.keepalive_s,
        clean_session: options.clean_session,
        connect_timeout_s: options.connect_timeout_s,
        queue: 16,
        protocol: options.protocol,
    })
}

/// A session for validated publisher options.
pub fn publisher_session(options: &PublisherOptions) -> ClientSession {
    let (host, port) =
        options::parse_broker(&options.broker).expect("options are validated before use");
    ClientSession::new(&SessionConfig {
        host: &host,
        port,
        client_id: &options.client_id,
        keepalive_s: options.keepalive_s,
        clean_session: true,
        connect_timeout_s: options.connect_timeout_s,
        queue: 64,
        protocol: options.protocol,
    })
}
