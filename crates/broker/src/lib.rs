//! Brokers for linecut experiments.
//!
//! [`EmbeddedBroker`] runs rumqttd inside the linecut process, so an experiment needs nothing
//! installed. rumqttd cannot report the port it bound and has no shutdown, which shapes this
//! wrapper: it picks a free loopback port first (binding port 0 and releasing it), starts the
//! broker on its own thread, and waits until the port accepts connections. The broker lives until
//! the process exits; one process runs one experiment, so that is the natural lifetime.
//!
//! Behaviour worth knowing when reading results (rumqttd 0.20): it drops a client after 1.5×
//! its keepalive without a packet, but the timer is reset whenever the broker *sends* to the
//! client, so a dead subscriber that keeps being published to may be detected late or never; it
//! rejects keepalive 0; a duplicate client id drops the older connection.
//!
//! [`MosquittoBroker`] runs the reference broker of the 2014 experiment as a child process with
//! a generated configuration, its log in the run directory, stopped (and reaped) when dropped.
//! [`ProgramBroker`] does the same for another project's broker (aedes, amqtt), started as the
//! caller's [`Launch`] says.

mod log;
mod mosquitto;
mod program;

pub use log::{embedded_log_writer, set_embedded_log, EmbeddedLogWriter};
pub use mosquitto::{MosquittoBroker, READY_WITHIN};
pub use program::{Launch, ProgramBroker, PROGRAM_LOG_FILE};

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

/// The rumqttd version linked in, for reports.
pub const RUMQTTD_VERSION: &str = "0.20";

#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("cannot find a free port on {ip}: {source}")]
    NoPort {
        ip: std::net::IpAddr,
        source: std::io::Error,
    },
    #[error("the embedded broker did not accept connections on {addr} within {waited:?}")]
    NotReady { addr: SocketAddr, waited: Duration },
    #[error("cannot start the embedded broker thread: {0}")]
    Thread(std::io::Error),
    #[error("mosquitto is not installed (looked for `mosquitto` on PATH and in /usr/sbin); install it with `apt-get install mosquitto` (Debian/Ubuntu) or your system's package manager")]
    MosquittoMissing,
    #[error("cannot {action}: {source}")]
    Io {
        action: String,
        source: std::io::Error,
    },
    #[error("mosquitto exited during start-up ({status}); its log: {log}")]
    MosquittoDied { status: String, log: String },
    #[error("{name} exited during start-up ({status}); its log: {log}")]
    ProgramDied {
        name: String,
        status: String,
        log: String,
    },
    #[error("{name} did not accept connections on {addr} within {waited:?}; its log: {log}")]
    ProgramNotReady {
        name: String,
        addr: SocketAddr,
        waited: Duration,
        log: String,
    },
}

/// Settings of the embedded broker that experiments vary.
#[derive(Debug, Clone)]
pub struct EmbeddedConfig {
    /// Where to listen; port 0 picks a free one.
    pub listen: SocketAddr,
    pub max_connections: usize,
    /// Largest PUBLISH payload accepted.
    pub max_payload_size: usize,
    /// How long a new connection may take to send CONNECT.
    pub connect_timeout: Duration,
}

impl Default for EmbeddedConfig {
    fn default() -> Self {
        EmbeddedConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            max_connections: 20_000,
            max_payload_size: 1 << 20,
            connect_timeout: Duration::from_secs(10),
        }
    }
}

/// A running embedded rumqttd: an MQTT 3.1.1 listener and an MQTT 5 listener.
#[derive(Debug)]
pub struct EmbeddedBroker {
    addr: SocketAddr,
    addr_v5: SocketAddr,
}

impl EmbeddedBroker {
    /// Starts rumqttd and returns once both listeners accept connections. The MQTT 5 listener
    /// takes a free port on the same address.
    pub fn start(config: EmbeddedConfig) -> Result<EmbeddedBroker, BrokerError> {
        let addr = match config.listen.port() {
            0 => free_port(config.listen)?,
            _ => config.listen,
        };
        let addr_v5 = free_port(SocketAddr::new(config.listen.ip(), 0))?;
        let rumqttd_config = rumqttd_config(&config, addr, addr_v5);
        watch_for_panics();
        std::thread::Builder::new()
            .name("linecut-rumqttd".into())
            .spawn(move || {
                // `start` blocks for the life of the broker and only returns on a startup error,
                // which the readiness wait below reports.
                let _ = rumqttd::Broker::new(rumqttd_config).start();
            })
            .map_err(BrokerError::Thread)?;
        let waited = Duration::from_secs(10);
        let deadline = Instant::now() + waited;
        for listener in [addr, addr_v5] {
            loop {
                if TcpStream::connect_timeout(&listener, Duration::from_millis(200)).is_ok() {
                    break;
                }
                if Instant::now() > deadline {
                    return Err(BrokerError::NotReady {
                        addr: listener,
                        waited,
                    });
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        Ok(EmbeddedBroker { addr, addr_v5 })
    }

    /// The MQTT 3.1.1 listener.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The MQTT 5 listener.
    pub fn addr_v5(&self) -> SocketAddr {
        self.addr_v5
    }

    /// The first panic inside rumqttd, with its place in rumqttd's source: after one the
    /// broker is broken (rumqttd 0.20 unwraps a `Disconnected` on a rejected client id, then
    /// every later connection panics on the poisoned lock), and a run must say so rather than
    /// wait for subscribers that can never connect.
    pub fn panicked(&self) -> Option<String> {
        BROKER_PANIC.get().cloned()
    }

    /// A name for reports, e.g. `rumqttd 0.20 (embedded)`.
    pub fn describe(&self) -> String {
        format!("rumqttd {RUMQTTD_VERSION} (embedded)")
    }
}

/// The first panic raised in rumqttd's code in this process (one process runs one broker).
static BROKER_PANIC: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// Chains a panic hook that remembers the first panic whose location is in rumqttd's source.
/// Installed once; other panics go to the previous hook untouched.
fn watch_for_panics() {
    static INSTALLED: std::sync::Once = std::sync::Once::new();
    INSTALLED.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if let Some(at) = info.location().filter(|l| l.file().contains("rumqttd")) {
                let message = info
                    .payload()
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| info.payload().downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "(no message)".into());
                // The message can quote a client's packet: a few hundred characters are
                // enough to say what broke.
                let message: String = message.chars().take(300).collect();
                let _ = BROKER_PANIC.set(format!(
                    "{message} (rumqttd {RUMQTTD_VERSION}, {}:{})",
                    at.file()
                        .rsplit("rumqttd")
                        .next()
                        .unwrap_or(at.file())
                        .trim_start_matches(|c: char| c != '/')
                        .trim_start_matches('/'),
                    at.line()
                ));
            }
            previous(info);
        }));
    });
}

/// Binds port 0 and releases it: rumqttd cannot tell us which port it bound, so we choose.
pub(crate) fn free_port(on: SocketAddr) -> Result<SocketAddr, BrokerError> {
    let no_port = |source| BrokerError::NoPort {
        ip: on.ip(),
        source,
    };
    TcpListener::bind(on)
        .map_err(no_port)?
        .local_addr()
        .map_err(no_port)
}

fn rumqttd_config(
    config: &EmbeddedConfig,
    addr: SocketAddr,
    addr_v5: SocketAddr,
) -> rumqttd::Config {
    let server = |name: &str, listen: SocketAddr| rumqttd::ServerSettings {
        name: name.into(),
        listen,
        tls: None,
        next_connection_delay_ms: 0,
        connections: rumqttd::ConnectionSettings {
            connection_timeout_ms: config.connect_timeout.as_millis().min(u16::MAX as u128) as u16,
            max_payload_size: config.max_payload_size,
            max_inflight_count: 100,
            auth: None,
            external_auth: None,
            dynamic_filters: true,
        },
    };
    rumqttd::Config {
        id: 0,
        router: rumqttd::RouterConfig {
            max_connections: config.max_connections,
            max_outgoing_packet_count: 200,
            max_segment_size: 100 << 20,
            max_segment_count: 10,
            custom_segment: None,
            initialized_filters: None,
            shared_subscriptions_strategy: Default::default(),
        },
        v4: Some(HashMap::from([(
            "1".to_string(),
            server("linecut-v4", addr),
        )])),
        v5: Some(HashMap::from([(
            "1".to_string(),
            server("linecut-v5", addr_v5),
        )])),
        ws: None,
        cluster: None,
        console: None,
        bridge: None,
        prometheus: None,
        metrics: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    #[test]
    fn the_embedded_broker_answers_connect_with_connack_on_a_free_port() {
        let broker = EmbeddedBroker::start(EmbeddedConfig::default()).unwrap();
        assert!(broker.addr().ip().is_loopback());
        assert_ne!(broker.addr().port(), 0);
        let mut s = TcpStream::connect(broker.addr()).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        #[rustfmt::skip]
        let connect = [0x10, 0x0e, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x04, 0x02, 0x00, 0x05,
                       0x00, 0x02, b'i', b'd'];
        s.write_all(&connect).unwrap();
        let mut connack = [0u8; 4];
        s.read_exact(&mut connack).unwrap();
        assert_eq!(connack, [0x20, 0x02, 0x00, 0x00]);

        // The MQTT 5 listener answers a v5 CONNECT with a v5 CONNACK (with a property length).
        let mut s = TcpStream::connect(broker.addr_v5()).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        #[rustfmt::skip]
        let connect = [0x10, 0x0f, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x05, 0x02, 0x00, 0x05,
                       0x00, 0x00, 0x02, b'i', b'd'];
        s.write_all(&connect).unwrap();
        let mut head = [0u8; 2];
        s.read_exact(&mut head).unwrap();
        assert_eq!(head[0], 0x20);
        let mut body = vec![0u8; head[1] as usize];
        s.read_exact(&mut body).unwrap();
        assert_eq!(
            &body[..2],
            &[0x00, 0x00],
            "session present 0, reason code success"
        );
    }
}
