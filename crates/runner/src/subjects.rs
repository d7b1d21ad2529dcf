//! The subscribers under observation, chosen once per run: linecut's own agents (rumqttc, in
//! this process) or clients under test (child processes). The rest of the run asks them the
//! same questions — how many are subscribed, how far along they are, what they counted — and
//! never branches on which kind they are.

use crate::client::{ClientFleet, EarlyExit, Prepared};
use crate::RunError;
use linecut_agent::{run_fleet, FleetStats, Progress, SubscriberOptions};
use linecut_events::{EventSink, RunLayout, RunSummary};
use linecut_scenario::Scenario;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

/// How long the agents get to stop before the run says they did not stop cleanly.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

pub(crate) enum Subjects {
    /// linecut's agents: they report their own progress.
    Agents {
        fleet: JoinHandle<FleetStats>,
        progress: Arc<Progress>,
    },
    /// Clients under test: the proxy tells when they are subscribed and connected.
    Processes(ClientFleet),
}

/// What the runner needs to start the subjects.
pub(crate) struct Start<'a> {
    pub scenario: &'a Scenario,
    pub external: Option<&'a Prepared>,
    pub options: SubscriberOptions,
    pub ids: Vec<String>,
    /// Where the subscribers connect: the proxy, or the broker on a namespace run's bridge.
    pub address: SocketAddr,
    /// In namespace mode, each subscriber's namespace (same order as `ids`).
    pub netns: Option<Vec<String>>,
    pub layout: &'a RunLayout,
    pub sink: &'a EventSink,
    pub stop: watch::Receiver<bool>,
    pub exits: mpsc::UnboundedSender<EarlyExit>,
}

impl Subjects {
    pub fn start(start: Start<'_>) -> Result<Subjects, RunError> {
        Ok(match start.external {
            None if start.netns.is_some() => {
                let progress = Arc::new(Progress::default());
                let fleet = namespaced_agents(
                    start.options,
                    start.ids,
                    start.netns.unwrap_or_default(),
                    start.sink.clone(),
                    start.stop,
                    progress.clone(),
                );
                Subjects::Agents { fleet, progress }
            }
            None => {
                let progress = Arc::new(Progress::default());
                let (options, sink, ids, stop, counters) = (
                    start.options,
                    start.sink.clone(),
                    start.ids,
                    start.stop,
                    progress.clone(),
                );
                let fleet =
                    tokio::spawn(
                        async move { run_fleet(&options, ids, &sink, stop, counters).await },
                    );
                Subjects::Agents { fleet, progress }
            }
            Some(prepared) => Subjects::Processes(ClientFleet::start(
                prepared,
                start.scenario,
                &start.ids,
                start.address,
                start.netns.as_deref(),
                start.layout.dir(),
                start.sink,
                start.scenario.publisher.qos,
                start.exits,
            )?),
        })
    }

    /// How many are subscribed. Agents count their SUBACKs; a client under test is subscribed
    /// when it reported its SUBACK or the front saw one go down to it (`wire`: the proxy's
    /// view, or the capture's), for a client that reports nothing.
    pub fn subscribed(&self, wire: Option<u32>) -> u32 {
        match self {
            Subjects::Agents { progress, .. } => progress.subscribed.load(Ordering::Relaxed),
            Subjects::Processes(clients) => clients.subscribed().max(wire.unwrap_or(0)),
        }
    }

    /// (connected, messages received) for the progress line; `wire` is the front's count of
    /// connections it holds, when it holds them.
    pub fn progress(&self, wire: Option<u32>) -> (u32, u64) {
        match self {
            Subjects::Agents { progress, .. } => (
                progress.connected.load(Ordering::Relaxed),
                progress.messages.load(Ordering::Relaxed),
            ),
            Subjects::Processes(clients) => (
                wire.unwrap_or_else(|| clients.subscribed()),
                clients.messages(),
            ),
        }
    }

    /// Words for a client under test that ended early.
    pub fn describe_exit(&self, exit: &EarlyExit, elapsed: Option<Duration>) -> String {
        let tail = match self {
            Subjects::Processes(clients) => clients
                .stderr_tail(&exit.client)
                .map(|t| format!(" (last stderr line: {t})"))
                .unwrap_or_default(),
            Subjects::Agents { .. } => String::new(),
        };
        let when = elapsed.map_or("before the experiment started".to_string(), |t| {
            format!("{:.1}s into the run", t.as_secs_f64())
        });
        format!(
            "the client under test `{}` {} {when}{tail}",
            exit.client, exit.status
        )
    }

    /// Stops them (the agents' stop signal must have been sent) and adds their counts.
    pub async fn stop(
        self,
        sink: &EventSink,
        summary: &mut RunSummary,
        problems: &mut Vec<String>,
    ) {
        match self {
            Subjects::Agents { fleet, .. } => match tokio::time::timeout(STOP_TIMEOUT, fleet).await
            {
                Ok(Ok(stats)) => {
                    summary.delivered = stats.messages;
                    summary.foreign = stats.foreign;
                    summary.disconnects = stats.disconnects;
                }
                Ok(Err(e)) if e.is_panic() => problems.push(format!(
                    "the subscribers panicked: {}",
                    crate::stack::panic_message(e.into_panic())
                )),
                _ => problems.push("the subscribers did not stop cleanly".into()),
            },
            Subjects::Processes(clients) => {
                (summary.delivered, summary.disconnects) = clients.stop(sink).await;
            }
        }
    }
}

/// linecut's agents in namespace mode: one thread per subscriber that joins the subscriber's
/// namespace and runs its agent on a runtime of its own, so every socket the agent opens
/// belongs to that namespace and crosses its link. The stats of all are summed.
fn namespaced_agents(
    options: SubscriberOptions,
    ids: Vec<String>,
    netns: Vec<String>,
    sink: EventSink,
    stop: watch::Receiver<bool>,
    progress: Arc<Progress>,
) -> JoinHandle<FleetStats> {
    tokio::task::spawn_blocking(move || {
        let threads: Vec<_> = ids
            .into_iter()
            .zip(netns)
            .map(|(id, ns)| {
                let (options, sink, stop, progress) = (
                    options.clone(),
                    sink.clone(),
                    stop.clone(),
                    progress.clone(),
                );
                std::thread::spawn(move || {
                    let joined = linecut_netns::topology::join(&ns);
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build();
                    match (joined, runtime) {
                        (Ok(()), Ok(rt)) => {
                            rt.block_on(run_fleet(&options, vec![id], &sink, stop, progress))
                        }
                        (Err(e), _) => {
                            tracing::error!("subscriber {id}: cannot join namespace {ns}: {e}");
                            FleetStats::default()
                        }
                        (_, Err(e)) => {
                            tracing::error!("subscriber {id}: no runtime: {e}");
                            FleetStats::default()
                        }
                    }
                })
            })
            .collect();
        let mut total = FleetStats::default();
        for t in threads {
            if let Ok(s) = t.join() {
                total.clients += s.clients;
                total.messages += s.messages;
                total.foreign += s.foreign;
                total.disconnects += s.disconnects;
            }
        }
        total
    })
}
