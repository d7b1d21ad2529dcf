//! The parts every run stands on, started in order and stopped in reverse: the broker, the three
//! events files, and what stands between the subscribers and the broker — the proxy, or in
//! namespace mode the run's network with its capture and link fault schedule ([`Front`]).
//!
//! [`Stack::start`] returns only a whole stack: if a later part cannot start, the parts already
//! started are stopped before the error comes back (their own `Drop`s do it: mosquitto is
//! terminated, the events files are flushed, the proxy's stop sender is dropped, which ends it).
//! [`Stack::stop`] is the orderly path and says what did not stop cleanly.

use crate::links::LinkFront;
use crate::{io, RunError, VERSION};
use linecut_broker::{EmbeddedBroker, EmbeddedConfig, MosquittoBroker};
use linecut_capture::PcapTap;
use linecut_events::{EventLog, EventSink, RunLayout, Source};
use linecut_model::{NetworkMode, Protocol};
use linecut_proxy::{Proxy, ProxyConfig, ProxyHandle};
use linecut_scenario::{BrokerSpec, Scenario};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

/// How long a part gets to stop before it is reported as not having stopped cleanly.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

pub(crate) enum RunningBroker {
    Embedded(EmbeddedBroker),
    Mosquitto(MosquittoBroker),
    External(String),
}

impl RunningBroker {
    /// Starts the broker on loopback, or on `ip` (a namespace run's bridge).
    fn start(
        spec: &BrokerSpec,
        layout: &RunLayout,
        ip: Option<IpAddr>,
    ) -> Result<RunningBroker, RunError> {
        let ip = ip.unwrap_or(IpAddr::from([127, 0, 0, 1]));
        Ok(match spec {
            BrokerSpec::Embedded => {
                linecut_broker::set_embedded_log(Some(&layout.broker_log()))
                    .map_err(io("create broker.log"))?;
                RunningBroker::Embedded(EmbeddedBroker::start(EmbeddedConfig {
                    listen: SocketAddr::new(ip, 0),
                    ..EmbeddedConfig::default()
                })?)
            }
            BrokerSpec::Mosquitto(settings) => {
                RunningBroker::Mosquitto(MosquittoBroker::start_on(settings, layout.dir(), ip)?)
            }
            BrokerSpec::External { address } => RunningBroker::External(address.clone()),
        })
    }

    /// Where a client speaking `protocol` connects.
    pub fn address(&self, protocol: Protocol) -> String {
        match self {
            RunningBroker::Embedded(b) => match protocol {
                Protocol::V311 => b.addr().to_string(),
                Protocol::V5 => b.addr_v5().to_string(),
            },
            RunningBroker::Mosquitto(b) => b.addr().to_string(),
            RunningBroker::External(a) => a.clone(),
        }
    }

    pub fn describe(&self) -> String {
        match self {
            RunningBroker::Embedded(b) => b.describe(),
            RunningBroker::Mosquitto(b) => format!("{} (started by linecut)", b.version()),
            RunningBroker::External(a) => format!("external broker at {a}"),
        }
    }
}

impl Drop for RunningBroker {
    fn drop(&mut self) {
        // rumqttd cannot be stopped; its log file is closed so nothing more lands in this run.
        // (mosquitto stops in its own Drop.)
        if let RunningBroker::Embedded(_) = self {
            let _ = linecut_broker::set_embedded_log(None);
        }
    }
}

/// The three events files and their sinks.
pub(crate) struct Logs {
    /// The proxy's events, or a namespace run's link events.
    front: EventLog,
    subscriber: EventLog,
    publisher: EventLog,
    pub subscriber_sink: EventSink,
    pub publisher_sink: EventSink,
}

impl Logs {
    fn create(layout: &RunLayout, namespace: bool) -> Result<(Logs, EventSink), RunError> {
        let (front, front_sink) = if namespace {
            EventLog::create(&layout.link_events(), Source::Link, "linecut-link", VERSION)?
        } else {
            EventLog::create(
                &layout.proxy_events(),
                Source::Proxy,
                "linecut-proxy",
                VERSION,
            )?
        };
        let (subscriber, subscriber_sink) = EventLog::create(
            &layout.subscriber_events(),
            Source::Subscriber,
            "linecut-subscriber",
            VERSION,
        )?;
        let (publisher, publisher_sink) = EventLog::create(
            &layout.publisher_events(),
            Source::Publisher,
            "linecut-publisher",
            VERSION,
        )?;
        Ok((
            Logs {
                front,
                subscriber,
                publisher,
                subscriber_sink,
                publisher_sink,
            },
            front_sink,
        ))
    }
}

/// The proxy task and what the run needs of it.
pub(crate) struct ProxyTask {
    pub handle: ProxyHandle,
    pub addr: SocketAddr,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<linecut_proxy::RunSummary, linecut_proxy::ProxyError>>,
    pcap: Option<Arc<PcapTap>>,
}

impl ProxyTask {
    async fn start(
        scenario: &Scenario,
        layout: &RunLayout,
        upstream: String,
        sink: EventSink,
    ) -> Result<ProxyTask, RunError> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(io("bind the proxy on 127.0.0.1"))?;
        let addr = listener
            .local_addr()
            .map_err(io("read the proxy address"))?;
        let mut config = ProxyConfig::new(upstream);
        if scenario.capture_pcap {
            let tap = PcapTap::create(&layout.capture()).map_err(io("create capture.pcap"))?;
            config.pcap = Some(Arc::new(tap));
        }
        let pcap = config.pcap.clone();
        let proxy = Proxy::new(config, sink);
        let handle = proxy.handle();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(proxy.run(listener, None, async move {
            let _ = stopped.await;
        }));
        Ok(ProxyTask {
            handle,
            addr,
            stop,
            task,
            pcap,
        })
    }

    async fn stop(self, problems: &mut Vec<String>) {
        let _ = self.stop.send(());
        match tokio::time::timeout(STOP_TIMEOUT, self.task).await {
            Ok(Ok(Ok(_))) => {}
            Ok(Ok(Err(e))) => problems.push(format!("the proxy failed: {e}")),
            Ok(Err(e)) if e.is_panic() => problems.push(format!(
                "the proxy panicked: {}",
                panic_message(e.into_panic())
            )),
            _ => problems.push("the proxy did not stop cleanly".into()),
        }
        if let Some(tap) = self.pcap {
            if let Err(e) = tap.finish() {
                problems.push(format!("capture.pcap is damaged: {e}"));
            }
        }
    }
}

/// The text of a panic payload, when it has one.
pub(crate) fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "no message".into())
}

/// What stands between the subscribers and the broker.
pub(crate) enum Front {
    Proxy(ProxyTask),
    /// Namespace mode: the network, its capture and its link fault schedule, with the sink of
    /// `link.jsonl`.
    Links(Box<LinkFront>, EventSink),
}

/// Broker, logs and front. Fields drop in declaration order, which is the reverse of the start
/// order: a stack dropped without [`Stack::stop`] still stops the proxy (or removes the
/// network) before closing its log, and the logs before the broker.
pub(crate) struct Stack {
    pub front: Front,
    pub logs: Logs,
    pub broker: RunningBroker,
}

impl Stack {
    /// Starts the broker, opens the events files, and starts the proxy in front of the broker
    /// or, in namespace mode, builds the network first (the broker listens on its bridge).
    pub async fn start(scenario: &Scenario, layout: &RunLayout) -> Result<Stack, RunError> {
        if scenario.network.mode == NetworkMode::Namespace {
            let mut links = LinkFront::start(scenario)?;
            let ip = IpAddr::V4(links.topology.host_addr);
            let broker = RunningBroker::start(&scenario.broker, layout, Some(ip))?;
            let port = broker
                .address(scenario.subscriber.settings.protocol)
                .rsplit(':')
                .next()
                .and_then(|p| p.parse().ok())
                .unwrap_or(0);
            links.start_capture(layout, port)?;
            let (logs, link_sink) = Logs::create(layout, true)?;
            return Ok(Stack {
                front: Front::Links(Box::new(links), link_sink),
                logs,
                broker,
            });
        }
        let broker = RunningBroker::start(&scenario.broker, layout, None)?;
        let (logs, proxy_sink) = Logs::create(layout, false)?;
        let upstream = broker.address(scenario.subscriber.settings.protocol);
        let proxy = ProxyTask::start(scenario, layout, upstream, proxy_sink).await?;
        Ok(Stack {
            front: Front::Proxy(proxy),
            logs,
            broker,
        })
    }

    /// The proxy, in proxy mode.
    pub fn proxy(&self) -> Option<&ProxyTask> {
        match &self.front {
            Front::Proxy(p) => Some(p),
            Front::Links(..) => None,
        }
    }

    /// Where a subscriber speaking `protocol` connects: the proxy, or the broker itself on the
    /// bridge.
    pub fn subscriber_address(&self, protocol: Protocol) -> String {
        match &self.front {
            Front::Proxy(p) => p.addr.to_string(),
            Front::Links(..) => self.broker.address(protocol),
        }
    }

    /// In namespace mode, subscribers the wire has seen subscribed.
    pub fn wire_subscribed(&self) -> Option<u32> {
        match &self.front {
            Front::Links(l, _) => Some(l.subscribed()),
            Front::Proxy(_) => None,
        }
    }

    /// The kinds of the faults active now, whichever front plays them.
    pub fn active_faults(&self) -> Vec<&'static str> {
        match &self.front {
            Front::Proxy(p) => p
                .handle
                .faults()
                .iter()
                .filter(|f| f.status == linecut_proxy::Status::Active)
                .map(|f| f.kind)
                .collect(),
            Front::Links(l, _) => l.active(),
        }
    }

    /// Fault occurrences started so far.
    pub fn faults_started(&self) -> u32 {
        match &self.front {
            Front::Proxy(p) => p.handle.faults().iter().map(|f| f.occurrences).sum(),
            Front::Links(l, _) => l.started(),
        }
    }

    /// A part that has died while the run went on, named with how it ended.
    pub fn dead_part(&mut self) -> Option<String> {
        match &mut self.broker {
            RunningBroker::Mosquitto(m) => {
                if let Some(status) = m.exited() {
                    return Some(format!("the broker (mosquitto) died mid-run: {status}"));
                }
            }
            RunningBroker::Embedded(b) => {
                if let Some(panic) = b.panicked() {
                    return Some(format!("the embedded broker panicked: {panic}"));
                }
            }
            RunningBroker::External(_) => {}
        }
        match &self.front {
            Front::Proxy(proxy) => {
                if proxy.task.is_finished() {
                    return Some("the proxy stopped mid-run".into());
                }
                if !proxy.handle.scheduler_alive() {
                    return Some("the proxy's fault scheduler stopped mid-run".into());
                }
            }
            Front::Links(links, _) => {
                if let Some(dead) = links.dead() {
                    return Some(dead);
                }
            }
        }
        for log in [
            &self.logs.front,
            &self.logs.subscriber,
            &self.logs.publisher,
        ] {
            if let Some(error) = log.failure() {
                return Some(format!(
                    "events file {} could not be written ({error})",
                    log.path().display()
                ));
            }
        }
        None
    }

    /// Stops the front, closes the events files, stops the broker; returns what went wrong.
    pub async fn stop(self) -> Vec<String> {
        let Stack {
            front,
            logs,
            broker,
        } = self;
        let mut problems = Vec::new();
        match front {
            Front::Proxy(proxy) => proxy.stop(&mut problems).await,
            Front::Links(links, sink) => {
                links.stop(&mut problems).await;
                drop(sink);
            }
        }
        let Logs {
            front: front_log,
            subscriber,
            publisher,
            subscriber_sink,
            publisher_sink,
        } = logs;
        drop((subscriber_sink, publisher_sink));
        let mut broker = broker;
        if let RunningBroker::Mosquitto(m) = &mut broker {
            if let Some(status) = m.exited() {
                problems.push(format!("the broker (mosquitto) died mid-run: {status}"));
            }
        }
        // Reverse order of start: the broker goes before the events files are closed.
        drop(broker);
        for log in [front_log, subscriber, publisher] {
            let path = log.path().display().to_string();
            if let Err(e) = log.finish() {
                problems.push(format!("events file {path} is damaged: {e}"));
            }
        }
        problems
    }
}
