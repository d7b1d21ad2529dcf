//! Runs a scenario end to end and leaves a run directory.
//!
//! The order matters and is the same for every run:
//! 1. the run directory is created (never over a previous run unless forced), the scenario is
//!    kept as written and resolved (every default filled in), and `meta.json` is written at
//!    once with status `running`, so even a run killed hard is recognisable;
//! 2. the broker starts (embedded rumqttd, a mosquitto child process, or nothing for an external
//!    broker), then the proxy in front of it;
//! 3. the subscribers connect through the proxy; the experiment clock starts only once every one
//!    of them has its SUBACK, so `at` in the fault schedule means the same thing on every run;
//! 4. the publisher starts (straight to the broker) and the fault schedule is handed to the proxy,
//!    both counted from that moment;
//! 5. after the scenario's duration (or on interrupt) everything stops in reverse order, the
//!    events files are closed, and `meta.json` is rewritten with the final status;
//! 6. the analyzer reads the run directory and writes `report.json` and `report.md`, checking
//!    the scenario's expectations (an incomplete run is analysed as far as it goes).
//!
//! Anything that ends a run early — a signal, a subscriber that never subscribes, a failed
//! events file — still goes through step 5, so the files are kept and the run is marked
//! `incomplete` with the reason.

pub mod client;
mod display;

pub use display::DisplayMode;

use display::Reporter;
use linecut_agent::{fleet_ids, publisher_session, run_fleet, run_publisher, Progress, Protocol};
use linecut_broker::{
    BrokerError, EmbeddedBroker, EmbeddedConfig, MosquittoBroker, MosquittoConfig,
};
use linecut_events::{now_us, AgentStopped, EventKind, EventLog, Source};
use linecut_proxy::{Proxy, ProxyConfig, Status};
use linecut_scenario::{BrokerSpec, Scenario};
use serde::Serialize;
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The client library inside linecut's agents, for reports.
pub const AGENT_CLIENT: &str = "rumqttc 0.25";
/// How long subscribers get to be subscribed before the run is abandoned.
const SUBSCRIBE_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(
        "{0} already holds a run; pass --force to replace it, or --out to choose another directory"
    )]
    Exists(PathBuf),
    #[error("cannot {action}: {source}")]
    Io {
        action: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Broker(#[from] BrokerError),
    #[error(transparent)]
    Events(#[from] linecut_events::WriteError),
    #[error("the scenario's agent options are invalid: {0}")]
    Agent(#[from] linecut_agent::AgentError),
    #[error("client under test: {0}")]
    Client(String),
}

pub(crate) fn io(action: impl Into<String>) -> impl FnOnce(std::io::Error) -> RunError {
    let action = action.into();
    move |source| RunError::Io { action, source }
}

/// How to run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub dir: PathBuf,
    pub force: bool,
    pub display: DisplayMode,
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "status", content = "reason")]
pub enum RunStatus {
    Running,
    Complete,
    Incomplete(String),
}

/// What a run did, as written to `summary.json`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    pub subscribers: u32,
    pub published: u64,
    pub delivered: u64,
    pub foreign: u64,
    pub disconnects: u64,
    pub faults_started: u32,
}

#[derive(Debug, Clone)]
pub struct RunOutcome {
    pub dir: PathBuf,
    pub status: RunStatus,
    pub summary: Summary,
    /// The analysis, or why there is none.
    pub report: Result<linecut_analyzer::Report, String>,
}

/// `meta.json`: what produced the run and how it ended.
#[derive(Debug, Serialize)]
struct Meta {
    linecut_version: &'static str,
    scenario: String,
    description: Option<String>,
    broker: String,
    broker_address: Option<String>,
    subscriber_client: String,
    publisher_client: String,
    host: String,
    started_at: String,
    started_us: i64,
    /// When every subscriber was subscribed: the origin of the fault schedule.
    experiment_start_us: Option<i64>,
    ended_us: Option<i64>,
    duration_s: f64,
    faults: Vec<String>,
    expectations: std::collections::BTreeMap<String, String>,
    #[serde(flatten)]
    status: RunStatus,
    files: Vec<String>,
}

impl Meta {
    fn write(&self, dir: &Path) -> Result<(), RunError> {
        let text = serde_json::to_string_pretty(self).expect("meta serialises");
        write_atomically(&dir.join("meta.json"), text.as_bytes())
    }
}

/// Writes via a temporary file and a rename, so a reader never sees half a file.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), RunError> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).map_err(io(format!("write {}", tmp.display())))?;
    std::fs::rename(&tmp, path).map_err(io(format!("write {}", path.display())))
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

fn prepare_dir(dir: &Path, force: bool) -> Result<(), RunError> {
    if dir.exists() {
        let occupied = std::fs::read_dir(dir)
            .map_err(io(format!("read {}", dir.display())))?
            .next()
            .is_some();
        if occupied && !force {
            return Err(RunError::Exists(dir.to_path_buf()));
        }
        if occupied {
            std::fs::remove_dir_all(dir).map_err(io(format!("clear {}", dir.display())))?;
        }
    }
    std::fs::create_dir_all(dir).map_err(io(format!("create {}", dir.display())))
}

enum RunningBroker {
    Embedded(EmbeddedBroker),
    Mosquitto(MosquittoBroker),
    External(String),
}

impl RunningBroker {
    fn start(spec: &BrokerSpec, dir: &Path) -> Result<RunningBroker, RunError> {
        Ok(match spec {
            BrokerSpec::Embedded => {
                linecut_broker::set_embedded_log(Some(&dir.join("broker.log")))
                    .map_err(io("create broker.log"))?;
                RunningBroker::Embedded(EmbeddedBroker::start(EmbeddedConfig::default())?)
            }
            BrokerSpec::Mosquitto(m) => RunningBroker::Mosquitto(MosquittoBroker::start(
                &MosquittoConfig {
                    persistence: m.persistence,
                    persistent_client_expiration: m.persistent_client_expiration,
                    max_keepalive: m.max_keepalive,
                },
                dir,
            )?),
            BrokerSpec::External { address } => RunningBroker::External(address.clone()),
        })
    }

    /// Where a client speaking `protocol` connects.
    fn address(&self, protocol: Protocol) -> String {
        match self {
            RunningBroker::Embedded(b) => match protocol {
                Protocol::V311 => b.addr().to_string(),
                Protocol::V5 => b.addr_v5().to_string(),
            },
            RunningBroker::Mosquitto(b) => b.addr().to_string(),
            RunningBroker::External(a) => a.clone(),
        }
    }

    fn describe(&self) -> String {
        match self {
            RunningBroker::Embedded(b) => b.describe(),
            RunningBroker::Mosquitto(b) => format!("{} (started by linecut)", b.version()),
            RunningBroker::External(a) => format!("external broker at {a}"),
        }
    }
}

/// Runs `scenario`; `interrupt` ends it early (the run is kept, marked incomplete).
pub async fn run(
    scenario: &Scenario,
    options: &RunOptions,
    interrupt: impl Future<Output = ()>,
) -> Result<RunOutcome, RunError> {
    let dir = options.dir.clone();
    // A client that cannot start is reported before anything is created or started.
    let external = client::prepare(scenario)?;
    prepare_dir(&dir, options.force)?;
    std::fs::write(dir.join("scenario.toml"), &scenario.source)
        .map_err(io("write scenario.toml"))?;
    std::fs::write(dir.join("scenario.resolved.toml"), scenario.resolved_toml())
        .map_err(io("write scenario.resolved.toml"))?;
    let started_us = now_us();
    let mut meta = Meta {
        linecut_version: VERSION,
        scenario: scenario.name.clone(),
        description: scenario.description.clone(),
        broker: String::new(),
        broker_address: None,
        subscriber_client: match &external {
            Some(prepared) => prepared.description.clone(),
            None => format!("{AGENT_CLIENT} (linecut-agent)"),
        },
        publisher_client: format!("{AGENT_CLIENT} (linecut-agent)"),
        host: hostname(),
        started_at: humantime::format_rfc3339_micros(std::time::SystemTime::now()).to_string(),
        started_us,
        experiment_start_us: None,
        ended_us: None,
        duration_s: scenario.duration.as_secs_f64(),
        faults: scenario.faults.iter().map(|f| f.to_string()).collect(),
        expectations: scenario.expect.clone(),
        status: RunStatus::Running,
        files: Vec::new(),
    };
    meta.write(&dir)?;
    let mut reporter = Reporter::new(options.display, scenario.duration);
    tokio::pin!(interrupt);

    reporter.phase("starting the broker");
    let broker = match RunningBroker::start(&scenario.broker, &dir) {
        Ok(b) => b,
        Err(e) => {
            meta.status = RunStatus::Incomplete(e.to_string());
            meta.ended_us = Some(now_us());
            meta.files = list_files(&dir);
            meta.write(&dir)?;
            return Err(e);
        }
    };
    meta.broker = broker.describe();
    let subscriber_upstream = broker.address(scenario.subscriber.protocol);
    meta.broker_address = Some(subscriber_upstream.clone());
    meta.write(&dir)?;

    let (proxy_log, proxy_sink) = EventLog::create(
        &dir.join("proxy.jsonl"),
        Source::Proxy,
        "linecut-proxy",
        VERSION,
    )?;
    let (sub_log, sub_sink) = EventLog::create(
        &dir.join("subscriber.jsonl"),
        Source::Subscriber,
        "linecut-subscriber",
        VERSION,
    )?;
    let (pub_log, pub_sink) = EventLog::create(
        &dir.join("publisher.jsonl"),
        Source::Publisher,
        "linecut-publisher",
        VERSION,
    )?;

    reporter.phase("starting the proxy");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(io("bind the proxy on 127.0.0.1"))?;
    let proxy_addr: SocketAddr = listener
        .local_addr()
        .map_err(io("read the proxy address"))?;
    let mut proxy_config = ProxyConfig::new(subscriber_upstream);
    if scenario.capture_pcap {
        let tap = linecut_capture::PcapTap::create(&dir.join("capture.pcap"))
            .map_err(io("create capture.pcap"))?;
        proxy_config.pcap = Some(Arc::new(tap));
    }
    let pcap = proxy_config.pcap.clone();
    let proxy = Proxy::new(proxy_config, proxy_sink);
    let proxy_handle = proxy.handle();
    let (proxy_stop, proxy_stopped) = tokio::sync::oneshot::channel::<()>();
    let proxy_task = tokio::spawn(proxy.run(listener, None, async move {
        let _ = proxy_stopped.await;
    }));

    let s = &scenario.subscriber;
    let subscriber_options = s.agent_options(&proxy_addr.to_string());
    if external.is_none() {
        subscriber_options.validate()?;
    }
    let p = &scenario.publisher;
    let publisher_options = p.agent_options(
        &broker.address(p.protocol),
        &format!("linecut-pub-{}", std::process::id()),
    );
    publisher_options.validate()?;

    reporter.phase("subscribing");
    let progress = Arc::new(Progress::default());
    let (agents_stop, agents_stopped) = watch::channel(false);
    let ids = fleet_ids(&s.client_id, s.count);
    let (exits_tx, mut exits) = tokio::sync::mpsc::unbounded_channel::<client::EarlyExit>();
    let mut reason: Option<String> = None;
    let (fleet, clients) = match &external {
        None => {
            let (options, sink, stop, progress) = (
                subscriber_options.clone(),
                sub_sink.clone(),
                agents_stopped.clone(),
                progress.clone(),
            );
            let fleet =
                tokio::spawn(async move { run_fleet(&options, ids, &sink, stop, progress).await });
            (Some(fleet), None)
        }
        Some(prepared) => {
            match client::ClientFleet::start(
                prepared, scenario, &ids, proxy_addr, &dir, &sub_sink, p.qos, exits_tx,
            ) {
                Ok(clients) => (None, Some(clients)),
                Err(e) => {
                    reason = Some(e.to_string());
                    (None, None)
                }
            }
        }
    };
    // Agents report their subscriptions; a client under test is subscribed when the proxy has
    // seen a SUBACK go down to it.
    let subscribed = |progress: &Progress| {
        if external.is_some() {
            proxy_handle.subscribed_clients().len() as u32
        } else {
            progress.subscribed.load(Ordering::Relaxed)
        }
    };
    let early_exit = |exit: client::EarlyExit,
                      clients: &Option<client::ClientFleet>,
                      elapsed: Option<Duration>| {
        let tail = clients
            .as_ref()
            .and_then(|c| c.stderr_tail(&exit.client))
            .map(|t| format!(" (last stderr line: {t})"))
            .unwrap_or_default();
        let when = elapsed.map_or("before the experiment started".to_string(), |t| {
            format!("{:.1}s into the run", t.as_secs_f64())
        });
        format!(
            "the client under test `{}` {} {when}{tail}",
            exit.client, exit.status
        )
    };

    let deadline = tokio::time::Instant::now() + SUBSCRIBE_TIMEOUT;
    while reason.is_none() {
        if subscribed(&progress) >= s.count {
            break;
        }
        tokio::select! {
            Some(exit) = exits.recv() => {
                reason = Some(early_exit(exit, &clients, None));
                break;
            }
            _ = tokio::time::sleep(Duration::from_millis(5)) => {}
            _ = tokio::time::sleep_until(deadline) => {
                reason = Some(format!(
                    "only {} of {} subscribers were subscribed within {:?}",
                    subscribed(&progress), s.count, SUBSCRIBE_TIMEOUT
                ));
                break;
            }
            _ = &mut interrupt => {
                reason = Some("interrupted before every subscriber was subscribed".into());
                break;
            }
        }
    }

    let mut publisher = None;
    if reason.is_none() {
        let t0 = Instant::now();
        meta.experiment_start_us = Some(now_us());
        meta.write(&dir)?;
        let (options, sink, stop) = (publisher_options, pub_sink.clone(), agents_stopped.clone());
        publisher = Some(tokio::spawn(async move {
            let session = publisher_session(&options);
            run_publisher(&options, session, &sink, stop).await
        }));
        for fault in &scenario.faults {
            proxy_handle.schedule_from(fault.clone(), t0);
        }
        reporter.phase("running");
        let end = tokio::time::Instant::from_std(t0 + scenario.duration);
        loop {
            let active: Vec<&str> = proxy_handle
                .faults()
                .iter()
                .filter(|f| f.status == Status::Active)
                .map(|f| f.kind)
                .collect();
            let (connected, messages) = match &clients {
                Some(c) => (proxy_handle.connections().len() as u32, c.messages()),
                None => (
                    progress.connected.load(Ordering::Relaxed),
                    progress.messages.load(Ordering::Relaxed),
                ),
            };
            reporter.tick(t0.elapsed(), &active, connected, s.count, messages);
            tokio::select! {
                _ = tokio::time::sleep_until(end) => break,
                Some(exit) = exits.recv() => {
                    reason = Some(early_exit(exit, &clients, Some(t0.elapsed())));
                    break;
                }
                _ = tokio::time::sleep(Duration::from_millis(250)) => {}
                _ = &mut interrupt => {
                    reason = Some(format!("interrupted {:.1}s into the run", t0.elapsed().as_secs_f64()));
                    break;
                }
            }
        }
    }

    reporter.phase("stopping");
    let _ = agents_stop.send(true);
    let mut summary = Summary {
        subscribers: s.count,
        ..Summary::default()
    };
    if let Some(publisher) = publisher {
        match tokio::time::timeout(Duration::from_secs(10), publisher).await {
            Ok(Ok(stats)) => summary.published = stats.published,
            _ => note(&mut reason, "the publisher did not stop cleanly"),
        }
    }
    if let Some(fleet) = fleet {
        match tokio::time::timeout(Duration::from_secs(10), fleet).await {
            Ok(Ok(stats)) => {
                summary.delivered = stats.messages;
                summary.foreign = stats.foreign;
                summary.disconnects = stats.disconnects;
            }
            _ => note(&mut reason, "the subscribers did not stop cleanly"),
        }
    }
    if let Some(clients) = clients {
        (summary.delivered, summary.disconnects) = clients.stop(&sub_sink).await;
    }
    summary.faults_started = proxy_handle.faults().iter().map(|f| f.occurrences).sum();
    let incomplete = reason.is_some();
    sub_sink.emit(EventKind::AgentStopped(AgentStopped {
        clients: s.count,
        messages: summary.delivered,
        incomplete,
    }));
    pub_sink.emit(EventKind::AgentStopped(AgentStopped {
        clients: 1,
        messages: summary.published,
        incomplete,
    }));
    let _ = proxy_stop.send(());
    match tokio::time::timeout(Duration::from_secs(10), proxy_task).await {
        Ok(Ok(Ok(_))) => {}
        _ => note(&mut reason, "the proxy did not stop cleanly"),
    }
    if let Some(tap) = pcap {
        if let Err(e) = tap.finish() {
            note(&mut reason, &format!("capture.pcap is damaged: {e}"));
        }
    }
    match broker {
        RunningBroker::Mosquitto(m) => m.stop(),
        // rumqttd cannot be stopped; its log file is closed so nothing more lands in this run.
        RunningBroker::Embedded(_) => {
            let _ = linecut_broker::set_embedded_log(None);
        }
        RunningBroker::External(_) => {}
    }
    for log in [proxy_log, sub_log, pub_log] {
        let path = log.path().display().to_string();
        if let Err(e) = log.finish() {
            note(&mut reason, &format!("events file {path} is damaged: {e}"));
        }
    }
    let summary_text = serde_json::to_string_pretty(&summary).expect("summary serialises");
    write_atomically(&dir.join("summary.json"), summary_text.as_bytes())?;
    meta.ended_us = Some(now_us());
    meta.status = match &reason {
        None => RunStatus::Complete,
        Some(r) => RunStatus::Incomplete(r.clone()),
    };
    meta.files = list_files(&dir);
    meta.write(&dir)?;
    reporter.finish(&meta.status);
    let report = linecut_analyzer::analyze_dir(&dir).map_err(|e| e.to_string());
    Ok(RunOutcome {
        dir,
        status: meta.status,
        summary,
        report,
    })
}

fn note(reason: &mut Option<String>, what: &str) {
    match reason {
        Some(r) => {
            r.push_str("; ");
            r.push_str(what);
        }
        None => *reason = Some(what.to_string()),
    }
}

fn list_files(dir: &Path) -> Vec<String> {
    let mut files: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| !n.ends_with(".tmp"))
                .collect()
        })
        .unwrap_or_default();
    if !files.iter().any(|f| f == "meta.json") {
        files.push("meta.json".into());
    }
    files.sort();
    files
}
