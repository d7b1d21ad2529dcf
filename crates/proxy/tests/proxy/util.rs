//! Test rig: a proxy between a test-held client socket and a test-held "broker" socket, plus
//! helpers that build MQTT bytes and read what arrived.

use linecut_events::{read_events, Event, EventKind, EventLog, Source};
use linecut_proxy::{FaultSpec, Proxy, ProxyConfig, ProxyHandle, RunSummary};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// How long a test waits for something that should happen promptly before failing.
pub const PROMPT: Duration = Duration::from_secs(5);
/// How long a test watches for something that must *not* happen (e.g. bytes during a cut).
pub const QUIET: Duration = Duration::from_millis(300);

pub struct Rig {
    pub addr: SocketAddr,
    pub control: Option<SocketAddr>,
    pub upstream: std::sync::Arc<TcpListener>,
    pub handle: ProxyHandle,
    events_path: PathBuf,
    log: EventLog,
    stop: oneshot::Sender<()>,
    task: JoinHandle<Result<RunSummary, linecut_proxy::ProxyError>>,
}

pub fn temp_dir(name: &str) -> PathBuf {
    // Numbered: the proxy's tests ask for the same name more than once.
    static N: AtomicU32 = AtomicU32::new(0);
    linecut_testkit::temp_dir(
        &format!("proxy-test-{}", N.fetch_add(1, Ordering::Relaxed)),
        name,
    )
}

pub struct RigOptions {
    pub faults: Vec<&'static str>,
    pub control: bool,
    pub configure: fn(&mut ProxyConfig),
    /// Point the proxy at this address instead of the test-held upstream listener.
    pub upstream_override: Option<String>,
}

impl Default for RigOptions {
    fn default() -> Self {
        RigOptions {
            faults: Vec::new(),
            control: false,
            configure: |_| {},
            upstream_override: None,
        }
    }
}

impl Rig {
    pub async fn start() -> Rig {
        Rig::with(RigOptions::default()).await
    }

    pub async fn with_faults(faults: &[&'static str]) -> Rig {
        Rig::with(RigOptions {
            faults: faults.to_vec(),
            ..Default::default()
        })
        .await
    }

    pub async fn with(options: RigOptions) -> Rig {
        let upstream = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let upstream_addr = options
            .upstream_override
            .clone()
            .unwrap_or_else(|| upstream.local_addr().unwrap().to_string());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let control_listener = if options.control {
            Some(TcpListener::bind("127.0.0.1:0").await.unwrap())
        } else {
            None
        };
        let control = control_listener.as_ref().map(|c| c.local_addr().unwrap());
        let events_path = temp_dir("events").join("proxy.jsonl");
        let (log, sink) = EventLog::create(&events_path, Source::Proxy, "test", "0").unwrap();
        let mut config = ProxyConfig::new(upstream_addr);
        (options.configure)(&mut config);
        let proxy = Proxy::new(config, sink);
        for spec in &options.faults {
            proxy.schedule(FaultSpec::parse(spec).unwrap());
        }
        let handle = proxy.handle();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(proxy.run(listener, control_listener, async move {
            let _ = stopped.await;
        }));
        Rig {
            addr,
            control,
            upstream: std::sync::Arc::new(upstream),
            handle,
            events_path,
            log,
            stop,
            task,
        }
    }

    /// Opens a client connection and returns it with the broker side of the same connection.
    pub async fn pair(&self) -> (TcpStream, TcpStream) {
        let client = TcpStream::connect(self.addr).await.unwrap();
        let (broker, _) = tokio::time::timeout(PROMPT, self.upstream.accept())
            .await
            .expect("the proxy should connect upstream")
            .unwrap();
        (client, broker)
    }

    /// A pair that has exchanged CONNECT (with `client_id`) and CONNACK, as MQTT sessions start.
    pub async fn mqtt_pair(&self, client_id: &str) -> (TcpStream, TcpStream) {
        let (mut client, mut broker) = self.pair().await;
        let connect = connect_packet(client_id, 60);
        client.write_all(&connect).await.unwrap();
        assert_eq!(read_exact(&mut broker, connect.len()).await, connect);
        broker.write_all(&CONNACK).await.unwrap();
        assert_eq!(read_exact(&mut client, CONNACK.len()).await, CONNACK);
        (client, broker)
    }

    /// Adds a fault now and waits until it is active.
    pub async fn fault(&self, spec: &str) -> u64 {
        let id = self.handle.add_fault(FaultSpec::parse(spec).unwrap());
        let instant = FaultSpec::parse(spec).unwrap().is_instant();
        if !instant {
            eventually(|| self.handle.is_active(id)).await;
        }
        id
    }

    pub async fn end_fault(&self, id: u64) {
        assert!(self.handle.remove_fault(id));
        eventually(|| !self.handle.is_active(id)).await;
    }

    /// Stops the proxy and returns every event it wrote (header excluded).
    pub async fn stop(self) -> Vec<Event> {
        let _ = self.stop.send(());
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("the proxy should stop")
            .unwrap()
            .unwrap();
        self.log.finish().unwrap();
        read_events(&self.events_path)
            .unwrap()
            .map(Result::unwrap)
            .collect()
    }
}

/// Polls `condition` until it holds (the tests never sleep to synchronise).
pub async fn eventually(mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + PROMPT;
    while !condition() {
        assert!(
            Instant::now() < deadline,
            "condition not met within {PROMPT:?}"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

pub async fn read_exact(stream: &mut TcpStream, n: usize) -> Vec<u8> {
    let mut buf = vec![0u8; n];
    tokio::time::timeout(PROMPT, stream.read_exact(&mut buf))
        .await
        .expect("bytes should arrive")
        .expect("read failed");
    buf
}

/// Asserts that nothing arrives for [`QUIET`].
pub async fn assert_silent(stream: &mut TcpStream, what: &str) {
    let mut buf = [0u8; 1];
    if let Ok(r) = tokio::time::timeout(QUIET, stream.read(&mut buf)).await {
        panic!("{what}: expected silence, got {r:?} ({buf:?})");
    }
}

/// What a read ends with once the peer is gone.
#[derive(Debug, PartialEq, Eq)]
pub enum End {
    Fin,
    Reset,
}

/// Reads (and discards) until end of stream; returns how it ended and how many bytes came.
pub async fn read_to_end(stream: &mut TcpStream) -> (End, usize) {
    let mut total = 0;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match tokio::time::timeout(PROMPT, stream.read(&mut buf))
            .await
            .expect("the stream should end")
        {
            Ok(0) => return (End::Fin, total),
            Ok(n) => total += n,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                return (End::Reset, total)
            }
            Err(e) => panic!("unexpected read error {e}"),
        }
    }
}

// ---- MQTT bytes -------------------------------------------------------------------------------

pub const CONNACK: [u8; 4] = [0x20, 0x02, 0x00, 0x00];
pub const PINGREQ: [u8; 2] = [0xc0, 0x00];
pub const PINGRESP: [u8; 2] = [0xd0, 0x00];

pub fn connect_packet(client_id: &str, keepalive: u16) -> Vec<u8> {
    linecut_mqtt::encode::connect(client_id, keepalive)
}

/// A QoS 0 PUBLISH.
pub fn publish_packet(topic: &str, payload: &[u8]) -> Vec<u8> {
    linecut_mqtt::encode::publish(topic, payload)
}

/// Splits a byte stream into MQTT packet types with the project's decoder; panics if it does
/// not parse as MQTT from the first byte to the last.
pub fn parse_stream(bytes: &[u8], role: linecut_mqtt::Role) -> Vec<&'static str> {
    let mut decoder = linecut_mqtt::StreamDecoder::new(role, 1 << 20);
    let mut rest = bytes;
    let mut types = Vec::new();
    loop {
        match decoder.next(rest) {
            linecut_mqtt::Unit::Packet { len, packet } => {
                types.push(packet.packet_type().name());
                rest = &rest[len..];
            }
            linecut_mqtt::Unit::NeedMore if rest.is_empty() => return types,
            other => panic!("stream does not parse as MQTT: {other:?} after {types:?}"),
        }
    }
}

pub fn packet_events(events: &[Event]) -> Vec<&linecut_events::MqttPacket> {
    events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::MqttPacket(p) => Some(p),
            _ => None,
        })
        .collect()
}
