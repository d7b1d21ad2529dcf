//! The MQTT actors of linecut experiments, built on rumqttc.
//!
//! - [`run_subscriber`] / [`run_fleet`]: subscribers that log every connect attempt, CONNACK,
//!   SUBSCRIBE/SUBACK, PINGREQ/PINGRESP, message (with the publisher's sequence number and publish
//!   time decoded from its payload) and disconnect (with a classified cause and the library's own
//!   text), and reconnect and re-subscribe by explicit policy.
//! - [`run_watcher`]: the will watcher, which records the Last Wills the broker publishes.
//! - [`run_publisher`]: a publisher whose payloads carry a sequence number and publish time in
//!   the format of `linecut_model::payload`.
//!
//! Layout: the settings, their defaults and rules, the policies and the payload format are the
//! model's (`linecut-model`); `options.rs` pairs settings with a broker address and checks them.
//! The client library boundary (`session.rs`, with `classify.rs` reading rumqttc's errors) is
//! separate from the loops that use it (`connection.rs`, `subscriber.rs`, `publisher.rs`,
//! `fleet.rs`).

mod classify;
mod connection;
mod fleet;
pub mod options;
mod publisher;
pub mod session;
mod subscriber;
mod watcher;

pub use classify::classify;
pub use fleet::{fleet_ids, run_fleet, FleetStats};
pub use options::{AgentError, PublisherOptions, SubscriberOptions};
pub use publisher::{run_publisher, PublisherStats};
pub use session::{ClientSession, Session, SessionConfig, SessionEvent, V4Session, V5Session};
pub use subscriber::{run_subscriber, Progress, SubscriberStats};
pub use watcher::{run_watcher, ExpectedWill, WatcherOptions};

/// A session for validated subscriber options and one client id.
pub fn subscriber_session(options: &SubscriberOptions, client_id: &str) -> ClientSession {
    let (host, port) =
        options::parse_broker(&options.broker).expect("options are validated before use");
    ClientSession::new(&SessionConfig {
        host: &host,
        port,
        client_id,
        keepalive_s: options.settings.keepalive_s,
        clean_session: options.settings.clean_session,
        connect_timeout_s: options.settings.connect_timeout_s,
        queue: 16,
        protocol: options.settings.protocol,
        will: options.settings.will.as_ref(),
        session_expiry_s: options.settings.session_expiry_s,
        receive_maximum: options.settings.receive_maximum,
    })
}

/// A session for validated publisher options.
pub fn publisher_session(options: &PublisherOptions) -> ClientSession {
    let (host, port) =
        options::parse_broker(&options.broker).expect("options are validated before use");
    ClientSession::new(&SessionConfig {
        host: &host,
        port,
        client_id: &options.settings.client_id,
        keepalive_s: options.settings.keepalive_s,
        clean_session: true,
        connect_timeout_s: options.settings.connect_timeout_s,
        queue: 64,
        protocol: options.settings.protocol,
        will: None,
        session_expiry_s: None,
        receive_maximum: None,
    })
}
