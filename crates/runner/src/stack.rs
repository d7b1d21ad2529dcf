//! The parts every run stands on, started in order and stopped in reverse: the broker, the three
//! events files, and what stands between the subscribers and the broker — the proxy, or in
//! namespace mode the run's network with its capture and link fault schedule (a [`Front`]).
//!
//! [`Stack::start`] returns only a whole stack: if a later part cannot start, the parts already
//! started are stopped before the error comes back (their own `Drop`s do it: mosquitto is
//! terminated, the events files are flushed, the proxy's stop sender is dropped, which ends it).
//! [`Stack::stop`] is the orderly path and says what did not stop cleanly.

use crate::brokers;
use crate::front::{Faults, Front, FrontLog};
use crate::links::LinkFront;
use crate::{io, RunError, VERSION};
use linecut_broker::{EmbeddedBroker, EmbeddedConfig, MosquittoBroker, ProgramBroker};
use linecut_capture::PcapTap;
use linecut_events::{EventLog, EventSink, RunLayout, Source};
use linecut_model::{NetworkMode, Protocol};
use linecut_proxy::{Proxy, ProxyConfig, ProxyHandle};
use linecut_scenario::{BrokerSpec, Scenario};
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a part gets to stop before it is reported as not having stopped cleanly.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

pub(crate) enum RunningBroker {
    Embedded(EmbeddedBroker),
    Mosquitto(MosquittoBroker),
    Program(ProgramBroker),
    External(String),
}

impl RunningBroker {
    /// Starts the broker on loopback, or on `ip` (a namespace run's bridge); `program` is the
    /// broker program [`brokers::prepare`] found for a `BrokerSpec::Program`.
    pub fn start(
        spec: &BrokerSpec,
        program: Option<&brokers::Prepared>,
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
            BrokerSpec::Program(p) => {
                let prepared = program.ok_or_else(|| {
                    RunError::Client(format!("the broker {} was not prepared", p.spec().kind))
                })?;
                let launch = prepared.launch(layout.dir())?;
                RunningBroker::Program(ProgramBroker::start_on(&launch, layout.dir(), ip)?)
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
            RunningBroker::Program(b) => b.addr().to_string(),
            RunningBroker::External(a) => a.clone(),
        }
    }

    pub fn describe(&self) -> String {
        match self {
            RunningBroker::Embedded(b) => b.describe(),
            RunningBroker::Mosquitto(b) => format!("{} (started by linecut)", b.version()),
            RunningBroker::Program(b) => b.describe().to_string(),
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

/// The events files and their sinks: the front's, the subscribers', the publisher's, and the
/// will watcher's when the subscribers leave a will.
pub(crate) struct Logs {
    /// The proxy's events, or a namespace run's link events.
    front: EventLog,
    subscriber: EventLog,
    publisher: EventLog,
    watcher: Option<EventLog>,
    pub subscriber_sink: EventSink,
    pub publisher_sink: EventSink,
    pub watcher_sink: Option<EventSink>,
    /// The front's file, for the faults the run plays itself (the broker's own).
    pub front_sink: EventSink,
}

impl Logs {
    /// Opens the front's events file (`front_log`) and the agents' (the watcher's only when the
    /// subscribers leave a will: no empty files); the front's sink.
    pub fn create(
        layout: &RunLayout,
        front_log: &FrontLog,
        scenario: &Scenario,
    ) -> Result<(Logs, EventSink), RunError> {
        let (watcher, watcher_sink) = match scenario.subscriber.settings.will {
            Some(_) => {
                let (log, sink) = EventLog::create(
                    &layout.watcher_events(),
                    Source::Watcher,
                    "linecut-watcher",
                    VERSION,
                )?;
                (Some(log), Some(sink))
            }
            None => (None, None),
        };
        let (front, front_sink) = front_log.create(layout)?;
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
                watcher,
                subscriber_sink,
                publisher_sink,
                watcher_sink,
                front_sink: front_sink.clone(),
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

/// The proxy's events file.
const PROXY_LOG: FrontLog = FrontLog {
    path: RunLayout::proxy_events,
    source: Source::Proxy,
    writer: "linecut-proxy",
};

impl ProxyTask {
    /// A proxy-mode stack: the broker on loopback, the events files, the proxy in front.
    async fn stack(
        scenario: &Scenario,
        program: Option<&brokers::Prepared>,
        layout: &RunLayout,
    ) -> Result<Stack, RunError> {
        let broker = RunningBroker::start(&scenario.broker, program, layout, None)?;
        let (logs, proxy_sink) = Logs::create(layout, &PROXY_LOG, scenario)?;
        let upstream = broker.address(scenario.subscriber.settings.protocol);
        let proxy = ProxyTask::start(scenario, layout, upstream, proxy_sink).await?;
        Ok(Stack {
            front: Box::new(proxy),
            logs,
            broker,
        })
    }

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

    async fn stop_all(self, problems: &mut Vec<String>) {
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

impl Front for ProxyTask {
    fn subscriber_address(&self, _broker: &str) -> String {
        self.addr.to_string()
    }

    fn namespaces(&self) -> Option<Vec<String>> {
        None
    }

    fn path(&self) -> &'static str {
        "the proxy"
    }

    fn wire_subscribed(&self) -> Option<u32> {
        Some(self.handle.subscribed_clients().len() as u32)
    }

    fn wire_connected(&self) -> Option<u32> {
        Some(self.handle.connections().len() as u32)
    }

    fn schedule(&mut self, faults: &Faults, _ids: Vec<String>, _length: Duration, t0: Instant) {
        for fault in &faults.proxy {
            self.handle.schedule_from(fault.clone(), t0);
        }
    }

    fn active_faults(&self) -> Vec<&'static str> {
        self.handle
            .faults()
            .iter()
            .filter(|f| f.status == linecut_proxy::Status::Active)
            .map(|f| f.kind)
            .collect()
    }

    fn faults_started(&self) -> u32 {
        self.handle.faults().iter().map(|f| f.occurrences).sum()
    }

    fn dead(&self) -> Option<String> {
        if self.task.is_finished() {
            return Some("the proxy stopped mid-run".into());
        }
        if !self.handle.scheduler_alive() {
            return Some("the proxy's fault scheduler stopped mid-run".into());
        }
        None
    }

    fn stop(self: Box<Self>) -> Pin<Box<dyn Future<Output = Vec<String>>>> {
        Box::pin(async move {
            let mut problems = Vec::new();
            self.stop_all(&mut problems).await;
            problems
        })
    }
}

/// What the machine must have for the scenario's kind of network, checked before anything is
/// created: namespace mode's privileges, programs and kernel features, each missing one said
/// with its fix. (The other row of the table of kinds, beside [`Stack::start`].)
pub(crate) fn check_network(scenario: &Scenario) -> Result<(), RunError> {
    match scenario.network.mode {
        NetworkMode::Proxy => Ok(()),
        NetworkMode::Namespace => {
            match linecut_netns::doctor::refusal(&linecut_netns::doctor::checks()) {
                Some(message) => Err(RunError::Machine(message)),
                None => Ok(()),
            }
        }
    }
}

/// Broker, logs and front. Fields drop in declaration order, which is the reverse of the start
/// order: a stack dropped without [`Stack::stop`] still stops the proxy (or removes the
/// network) before closing its log, and the logs before the broker.
pub(crate) struct Stack {
    pub front: Box<dyn Front>,
    pub logs: Logs,
    pub broker: RunningBroker,
}

impl Stack {
    /// Starts the broker, opens the events files, and starts the front: each kind of network
    /// in its own order (namespace mode builds the network first: the broker listens on its
    /// bridge). This table is the one place a kind of network is chosen.
    pub async fn start(
        scenario: &Scenario,
        program: Option<&brokers::Prepared>,
        layout: &RunLayout,
    ) -> Result<Stack, RunError> {
        match scenario.network.mode {
            NetworkMode::Proxy => ProxyTask::stack(scenario, program, layout).await,
            NetworkMode::Namespace => LinkFront::stack(scenario, program, layout),
        }
    }

    /// Where a subscriber speaking `protocol` connects: the front says.
    pub fn subscriber_address(&self, protocol: Protocol) -> String {
        self.front
            .subscriber_address(&self.broker.address(protocol))
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
            RunningBroker::Program(b) => {
                if !b.running() {
                    return Some(format!("the broker ({}) died mid-run", b.describe()));
                }
            }
            RunningBroker::External(_) => {}
        }
        if let Some(dead) = self.front.dead() {
            return Some(dead);
        }
        let logs = [
            Some(&self.logs.front),
            Some(&self.logs.subscriber),
            Some(&self.logs.publisher),
            self.logs.watcher.as_ref(),
        ];
        for log in logs.into_iter().flatten() {
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
        let mut problems = front.stop().await;
        let Logs {
            front: front_log,
            subscriber,
            publisher,
            watcher,
            subscriber_sink,
            publisher_sink,
            watcher_sink,
            front_sink,
        } = logs;
        drop((subscriber_sink, publisher_sink, watcher_sink, front_sink));
        let mut broker = broker;
        match &mut broker {
            RunningBroker::Mosquitto(m) => {
                if let Some(status) = m.exited() {
                    problems.push(format!("the broker (mosquitto) died mid-run: {status}"));
                }
            }
            RunningBroker::Program(b) => {
                if !b.running() {
                    problems.push(format!("the broker ({}) died mid-run", b.describe()));
                } else if !b.stop() {
                    problems.push(format!(
                        "the broker ({}) did not stop within its grace period and was killed",
                        b.describe()
                    ));
                }
            }
            _ => {}
        }
        // Reverse order of start: the broker goes before the events files are closed.
        drop(broker);
        for log in [Some(front_log), Some(subscriber), Some(publisher), watcher]
            .into_iter()
            .flatten()
        {
            let path = log.path().display().to_string();
            if let Err(e) = log.finish() {
                problems.push(format!("events file {path} is damaged: {e}"));
            }
        }
        problems
    }
}
