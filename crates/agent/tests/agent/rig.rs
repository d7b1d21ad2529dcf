//! Test rig: embedded broker, proxy in front of it, a subscriber through the proxy and a
//! publisher straight to the broker, each writing a real events file that tests read as it grows.

use linecut_agent::{
    publisher_session, run_publisher, run_subscriber, subscriber_session, PublisherOptions,
    PublisherStats, SubscriberOptions, SubscriberStats,
};
use linecut_broker::{EmbeddedBroker, EmbeddedConfig};
use linecut_events::{Event, EventKind, EventLog, EventSink, Source};
use linecut_proxy::{FaultSpec, Proxy, ProxyConfig, ProxyHandle};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub const PROMPT: Duration = Duration::from_secs(15);

/// One embedded broker for the whole test binary (rumqttd cannot be stopped); tests keep apart
/// by topic and client id.
fn embedded() -> &'static EmbeddedBroker {
    static BROKER: OnceLock<EmbeddedBroker> = OnceLock::new();
    BROKER
        .get_or_init(|| EmbeddedBroker::start(EmbeddedConfig::default()).expect("embedded broker"))
}

/// The broker's MQTT 3.1.1 listener.
pub fn broker() -> SocketAddr {
    embedded().addr()
}

/// The broker's MQTT 5 listener.
pub fn broker_v5() -> SocketAddr {
    embedded().addr_v5()
}

pub fn unique(name: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{name}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

pub fn temp_path(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(unique("linecut-agent-test"));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

/// Reads the events written so far (the writer flushes every 20 ms; a torn last line is skipped).
pub fn events_so_far(path: &Path) -> Vec<Event> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .skip(1)
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// Waits until `check` holds for the events written so far; returns them.
pub async fn wait_for(path: &Path, what: &str, check: impl Fn(&[Event]) -> bool) -> Vec<Event> {
    let deadline = Instant::now() + PROMPT;
    loop {
        let events = events_so_far(path);
        if check(&events) {
            return events;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub struct Proxied {
    pub addr: SocketAddr,
    pub handle: ProxyHandle,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Proxied {
    pub async fn start() -> Proxied {
        Proxied::start_to(broker()).await
    }

    pub async fn start_to(upstream: SocketAddr) -> Proxied {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let proxy = Proxy::new(
            ProxyConfig::new(upstream.to_string()),
            EventSink::disabled(Source::Proxy),
        );
        let handle = proxy.handle();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(proxy.run(listener, None, async move {
            let _ = stopped.await;
        }));
        Proxied {
            addr,
            handle,
            stop: Some(stop),
        }
    }

    /// Starts a fault now; returns its id and the wall-clock time it became active.
    pub async fn fault(&self, spec: &str) -> (u64, i64) {
        let spec = FaultSpec::parse(spec).unwrap();
        let instant = spec.is_instant();
        let id = self.handle.add_fault(spec);
        if !instant {
            let deadline = Instant::now() + PROMPT;
            while !self.handle.is_active(id) {
                assert!(Instant::now() < deadline);
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
        (id, linecut_events::now_us())
    }
}

impl Drop for Proxied {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// A running agent: its events file, its stop switch, its task.
pub struct Running<T> {
    pub events: PathBuf,
    stop: watch::Sender<bool>,
    task: JoinHandle<T>,
    log: Option<EventLog>,
}

impl<T> Running<T> {
    pub async fn stop(mut self) -> (T, Vec<Event>) {
        let _ = self.stop.send(true);
        let result = tokio::time::timeout(PROMPT, self.task)
            .await
            .expect("the agent should stop")
            .unwrap();
        self.log.take().unwrap().finish().unwrap();
        (result, events_so_far(&self.events))
    }
}

pub fn start_subscriber(options: SubscriberOptions) -> Running<SubscriberStats> {
    options.validate().unwrap();
    let events = temp_path("subscriber.jsonl");
    let (log, sink) = EventLog::create(&events, Source::Subscriber, "test", "0").unwrap();
    let (stop, stopped) = watch::channel(false);
    let task = tokio::spawn(async move {
        let id = options.settings.client_id.clone();
        let session = subscriber_session(&options, &id);
        run_subscriber(&options, &id, session, &sink, stopped, &Default::default()).await
    });
    Running {
        events,
        stop,
        task,
        log: Some(log),
    }
}

pub fn start_publisher(options: PublisherOptions) -> Running<PublisherStats> {
    options.validate().unwrap();
    let events = temp_path("publisher.jsonl");
    let (log, sink) = EventLog::create(&events, Source::Publisher, "test", "0").unwrap();
    let (stop, stopped) = watch::channel(false);
    let task = tokio::spawn(async move {
        let session = publisher_session(&options);
        run_publisher(&options, session, &sink, stopped).await
    });
    Running {
        events,
        stop,
        task,
        log: Some(log),
    }
}

/// A publisher straight to the broker on `topic`, every `interval`.
pub fn publisher(topic: &str, interval_ms: u64, qos: u8) -> PublisherOptions {
    let mut options = PublisherOptions::new(broker().to_string());
    options.settings.client_id = unique("pub");
    options.settings.topics = vec![topic.to_string()];
    options.settings.interval = Duration::from_millis(interval_ms);
    options.settings.qos = qos;
    options
}

/// A subscriber through `proxy` to `topic` with keepalive `k` seconds.
pub fn subscriber(proxy: &Proxied, topic: &str, k: u16) -> SubscriberOptions {
    let mut options = SubscriberOptions::new(proxy.addr.to_string(), unique("sub"));
    options.settings.keepalive_s = k;
    options.settings.topics = vec![linecut_model::Topic::parse(topic).unwrap()];
    options.settings.reconnect = linecut_model::ReconnectPolicy::Immediate;
    options
}

pub fn messages(events: &[Event]) -> Vec<&linecut_events::Message> {
    events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Message(m) => Some(m),
            _ => None,
        })
        .collect()
}

pub fn count(events: &[Event], type_name: &str) -> usize {
    events
        .iter()
        .filter(|e| e.kind.type_name() == type_name)
        .count()
}

/// rumqttc's detection band for a silent outage: its ping timer fires every K, and a PINGREQ
/// still unanswered at the next tick is the verdict, so between K and 2K after the outage
/// starts. The slack covers the proxy's and the runtime's scheduling on a loaded 2-core machine.
pub fn detection_band(k: u16) -> (i64, i64) {
    let k_us = i64::from(k) * 1_000_000;
    let slack = 250_000;
    (k_us - slack, 2 * k_us + slack)
}
