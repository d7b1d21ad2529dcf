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
//! Anything that ends a run early — a signal, a subscriber that never subscribes, a part that
//! fails to start or dies, a failed events file — still closes the run directory, so the files
//! are kept, `summary.json` is written and the run is marked `incomplete` with the reason.
//! That is owned by values, not by straight-line code: [`run_dir::RunDir`] marks an unclosed
//! run incomplete when dropped, and [`stack::Stack`] stops what it started in reverse order.
//!
//! Modules: `run_dir` (the directory guard), `stack` (broker, events files, proxy), `subjects`
//! (agents or clients under test, chosen once), `client` (clients under test as processes),
//! `display` (the progress line), `phase` (the faults' drawn start offsets).

mod brokers;
pub mod client;
mod display;
mod front;
pub mod installs;
mod links;
mod phase;
mod restart;
mod run_dir;
mod stack;
mod subjects;

pub use display::{output_closed, say, DisplayMode};
pub use linecut_events::RunStatus;

use display::Reporter;
use linecut_agent::{
    fleet_ids, publisher_session, run_publisher, run_watcher, ExpectedWill, PublisherOptions,
    SubscriberOptions, WatcherOptions,
};
use linecut_broker::BrokerError;
use linecut_events::{now_us, AgentStopped, EventKind, RunSummary};
use linecut_model::{ClientFamily, ClientIdentity, PublisherSettings};
use linecut_scenario::Scenario;
use run_dir::RunDir;
use stack::Stack;
use std::future::Future;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use subjects::Subjects;
use tokio::sync::watch;

const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The version of rumqttc inside linecut's agents (the workspace pins it).
const AGENT_CLIENT_VERSION: &str = "0.25";
/// How long subscribers get to be subscribed before the run is abandoned.
const SUBSCRIBE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the will watcher listens after the subscribers stopped: a will their stop caused
/// would be published as the broker closes their connections, well within this.
const WATCHER_LINGER: Duration = Duration::from_millis(500);
/// How long the publisher gets to stop before the run says it did not stop cleanly.
const PUBLISHER_STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// A placeholder address for checking agent options before any port exists: checking does not
/// depend on which address it is.
const ADDRESS_FOR_CHECKING: &str = "127.0.0.1:1";

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(
        "{0} already holds a run; pass --force to replace it, or --out to choose another directory"
    )]
    Exists(PathBuf),
    #[error("will not replace {dir}: {why}")]
    Refused { dir: PathBuf, why: String },
    #[error("{dir} has less than the {} KiB free a run keeps to record how it ended: {error}", need / 1024)]
    NoRoom {
        dir: PathBuf,
        need: usize,
        error: std::io::Error,
    },
    #[error("cannot {action}: {source}")]
    Io {
        action: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    RunDir(#[from] linecut_events::run_dir::RunDirError),
    #[error(transparent)]
    Broker(#[from] BrokerError),
    #[error(transparent)]
    Events(#[from] linecut_events::WriteError),
    #[error("the scenario's agent options are invalid: {0}")]
    Agent(#[from] linecut_agent::AgentError),
    #[error("client under test: {0}")]
    Client(String),
    #[error("this machine cannot run the scenario: {0}")]
    Machine(String),
    #[error("namespace mode: {0}")]
    Network(String),
    #[error("{error}; the run directory could not record it: {write}")]
    NotRecorded {
        error: Box<RunError>,
        write: Box<RunError>,
    },
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

#[derive(Debug, Clone)]
pub struct RunOutcome {
    pub dir: PathBuf,
    pub status: RunStatus,
    pub summary: RunSummary,
    /// The analysis, or why there is none.
    pub report: Result<linecut_analyzer::Report, String>,
}

/// Whether this machine lets the scenario run: a fleet needs descriptors for every subscriber
/// (the proxy's two legs, the agent's socket when linecut's agent subscribes, the embedded
/// broker's end when it runs inside linecut), and the process limit (`ulimit -n`) caps them.
/// Only a certain failure is refused: the subscribers alone over the limit. (linecut's own
/// files and sockets come on top; a run short of those fails at the step that ran out, and
/// says so.)
pub fn check_machine(scenario: &Scenario) -> Result<(), RunError> {
    stack::check_network(scenario)?;
    let agent = matches!(
        scenario.subscriber.client,
        linecut_scenario::ClientKind::Rumqttc
    );
    let embedded = matches!(scenario.broker, linecut_scenario::BrokerSpec::Embedded);
    let per_subscriber = 2 + u64::from(agent) + u64::from(embedded);
    let count = u64::from(scenario.subscriber.settings.count);
    let need = count * per_subscriber;
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct it is given and reads nothing else.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Ok(());
    }
    if need > limit.rlim_cur {
        return Err(RunError::Machine(format!(
            "subscriber.count: {count} subscribers need at least {need} file descriptors \
             ({per_subscriber} each), but this process may open {} (`ulimit -n`, at most {}); \
             raise the limit or run fewer subscribers",
            limit.rlim_cur, limit.rlim_max
        )));
    }
    Ok(())
}

/// The agents' and the publisher's own checks of the scenario's settings, as the run makes them
/// before anything starts. A scenario `linecut validate` accepted passes them: the rules are
/// the same (`linecut-model`); a test holds that over a grid of extreme values.
pub fn check_options(scenario: &Scenario) -> Result<(), RunError> {
    if let linecut_scenario::ClientKind::Rumqttc = scenario.subscriber.client {
        subscriber_options(scenario, ADDRESS_FOR_CHECKING).validate()?;
    }
    publisher_options(&publisher_settings(scenario), ADDRESS_FOR_CHECKING).validate()?;
    Ok(())
}

/// Runs `scenario`; `interrupt` ends it early (the run is kept, marked incomplete).
pub async fn run(
    scenario: &Scenario,
    options: &RunOptions,
    interrupt: impl Future<Output = ()>,
) -> Result<RunOutcome, RunError> {
    // Everything that can be refused without starting anything is refused before the run
    // directory exists: a machine that cannot hold the fleet, a client that cannot start,
    // options the agents would reject.
    check_machine(scenario)?;
    check_options(scenario)?;
    let mut external = client::prepare(scenario)?;
    let broker_program = brokers::prepare(&scenario.broker)?;
    let publisher = publisher_settings(scenario);

    let agent = format!("rumqttc {AGENT_CLIENT_VERSION} (linecut-agent)");
    let subscriber_client = external.as_ref().map_or_else(
        || {
            let identity = ClientIdentity {
                family: ClientFamily::Rumqttc,
                version: Some(AGENT_CLIENT_VERSION.into()),
            };
            (agent.clone(), identity)
        },
        |p| (p.description.clone(), p.identity.clone()),
    );
    let (proxy_faults, link_faults, phase) = phase::draw(scenario);
    let faults = front::Faults {
        proxy: proxy_faults,
        links: link_faults,
    };
    let mut dir = RunDir::create(
        &options.dir,
        options.force,
        scenario,
        subscriber_client,
        agent,
    )?;
    if let Err(e) = dir.update(|m| m.phase = phase) {
        return Err(dir.fail(&RunSummary::default(), e));
    }
    let mut reporter = Reporter::new(options.display, scenario.duration);
    let mut summary = RunSummary {
        subscribers: scenario.subscriber.settings.count,
        ..RunSummary::default()
    };
    if let Some(prepared) = external.as_mut() {
        let installed = prepared
            .install_script(dir.layout().dir())
            .and_then(|script| dir.update(|m| m.client_script = script));
        if let Err(e) = installed {
            return Err(dir.fail(&summary, e));
        }
    }

    reporter.phase("starting the broker and the proxy");
    let mut stack = match Stack::start(scenario, broker_program.as_ref(), dir.layout()).await {
        Ok(stack) => stack,
        Err(e) => return Err(dir.fail(&summary, e)),
    };
    let broker = stack.broker.describe();
    let subscriber_upstream = stack.broker.address(scenario.subscriber.settings.protocol);
    let network = stack.front.network_record(scenario, &subscriber_upstream);
    if let Err(e) = dir.update(|m| {
        m.broker = broker;
        m.broker_address = Some(subscriber_upstream);
        m.network = network;
    }) {
        drop(stack.stop().await);
        return Err(dir.fail(&summary, e));
    }

    let reason = Experiment {
        scenario,
        faults: &faults,
        external: external.as_ref(),
        publisher,
        stack: &mut stack,
        dir: &mut dir,
        reporter: &mut reporter,
        summary: &mut summary,
    }
    .run(interrupt)
    .await;
    let mut reason = match reason {
        Ok(reason) => reason,
        Err(e) => {
            drop(stack.stop().await);
            return Err(dir.fail(&summary, e));
        }
    };
    for problem in stack.stop().await {
        note(&mut reason, &problem);
    }
    let meta = dir.finish(&summary, reason)?;
    reporter.finish(&meta.status);
    let path = options.dir.clone();
    let report = linecut_analyzer::analyze_dir(&path).map_err(|e| e.to_string());
    Ok(RunOutcome {
        dir: path,
        status: meta.status,
        summary,
        report,
    })
}

/// What steps 3 and 4 work with: the scenario, its faults as drawn, the client under test, and
/// the parts started in steps 1 and 2.
struct Experiment<'a> {
    scenario: &'a Scenario,
    faults: &'a front::Faults,
    external: Option<&'a client::Prepared>,
    publisher: PublisherSettings,
    stack: &'a mut Stack,
    dir: &'a mut RunDir,
    reporter: &'a mut Reporter,
    summary: &'a mut RunSummary,
}

impl Experiment<'_> {
    /// Steps 3 and 4 and the orderly stop of the subjects and the publisher: returns why the run is
    /// incomplete, if it is; an error is a step that could not be taken at all.
    async fn run(self, interrupt: impl Future<Output = ()>) -> Result<Option<String>, RunError> {
        let Experiment {
            scenario,
            faults,
            external,
            publisher,
            stack,
            dir,
            reporter,
            summary,
        } = self;
        tokio::pin!(interrupt);
        let s = &scenario.subscriber.settings;
        let address = stack.subscriber_address(s.protocol);
        reporter.phase("subscribing");
        let (agents_stop, agents_stopped) = watch::channel(false);
        let (exits_tx, mut exits) = tokio::sync::mpsc::unbounded_channel::<client::EarlyExit>();
        let subjects = Subjects::start(subjects::Start {
            scenario,
            external,
            options: subscriber_options(scenario, &address),
            ids: fleet_ids(&s.client_id, s.count),
            address: address
                .parse()
                .map_err(|e| RunError::Client(format!("{address}: {e}")))?,
            netns: stack.front.namespaces(),
            layout: dir.layout(),
            sink: &stack.logs.subscriber_sink,
            stop: agents_stopped.clone(),
            exits: exits_tx,
        })?;

        let (watcher_stop, watcher_stopped) = watch::channel(false);
        let watcher = stack.logs.watcher_sink.clone().map(|sink| {
            let broker = stack.broker.address(linecut_model::Protocol::V311);
            let options = watcher_options(scenario, broker);
            let (ready_tx, ready) = watch::channel(false);
            let task = tokio::spawn(async move {
                run_watcher(&options, &sink, watcher_stopped, ready_tx).await
            });
            (task, ready)
        });
        let watcher_ready = || watcher.as_ref().is_none_or(|(_, ready)| *ready.borrow());

        let mut reason: Option<String> = None;
        let deadline = tokio::time::Instant::now() + SUBSCRIBE_TIMEOUT;
        while subjects.subscribed(stack.front.wire_subscribed()) < s.count || !watcher_ready() {
            tokio::select! {
                Some(exit) = exits.recv() => {
                    reason = Some(subjects.describe_exit(&exit, None));
                    break;
                }
                _ = tokio::time::sleep(Duration::from_millis(5)) => {
                    if let Some(dead) = stack.dead_part() {
                        reason = Some(dead);
                        break;
                    }
                }
                _ = tokio::time::sleep_until(deadline), if !watcher_ready() && subjects.subscribed(stack.front.wire_subscribed()) >= s.count => {
                    reason = Some(format!(
                        "the will watcher was not subscribed within {SUBSCRIBE_TIMEOUT:?} (straight to {}, {})",
                        stack.broker.describe(),
                        stack.broker.address(linecut_model::Protocol::V311),
                    ));
                    break;
                }
                _ = tokio::time::sleep_until(deadline) => {
                    reason = Some(format!(
                        "only {} of {} subscribers were subscribed within {:?} (through {} \
                         to {}, {})",
                        subjects.subscribed(stack.front.wire_subscribed()), s.count, SUBSCRIBE_TIMEOUT,
                        stack.front.path(),
                        stack.broker.describe(),
                        stack.broker.address(s.protocol),
                    ));
                    break;
                }
                _ = &mut interrupt => {
                    reason = Some("interrupted before every subscriber was subscribed".into());
                    break;
                }
            }
        }

        let mut publisher_task = None;
        let mut restarts_started = 0;
        if reason.is_none() {
            let t0 = Instant::now();
            dir.update(|m| m.experiment_start_us = Some(now_us()))?;
            let address = stack.broker.address(publisher.protocol);
            let options = publisher_options(&publisher, &address);
            let (sink, stop) = (stack.logs.publisher_sink.clone(), agents_stopped.clone());
            publisher_task = Some(tokio::spawn(async move {
                let session = publisher_session(&options);
                run_publisher(&options, session, &sink, stop).await
            }));
            stack.front.schedule(
                faults,
                fleet_ids(&s.client_id, s.count),
                scenario.duration,
                t0,
            );
            // The broker's own faults take the ids after the front's.
            let front_faults = (faults.proxy.len() + faults.links.len()) as u64;
            let mut broker_faults =
                restart::BrokerFaults::new(&scenario.broker_faults, t0, front_faults + 1);
            reporter.phase("running");
            let end = tokio::time::Instant::from_std(t0 + scenario.duration);
            loop {
                // Proxy faults or link faults alike (namespace mode showed "no fault" during cuts).
                let mut active = stack.front.active_faults();
                if broker_faults.active() {
                    active.push("restart");
                }
                let next_broker_step = broker_faults.next_at().map(tokio::time::Instant::from_std);
                let (connected, messages) = subjects.progress(stack.front.wire_connected());
                reporter.tick(t0.elapsed(), &active, connected, s.count, messages);
                tokio::select! {
                    _ = tokio::time::sleep_until(end) => break,
                    _ = tokio::time::sleep_until(next_broker_step.unwrap_or(end)), if next_broker_step.is_some() => {
                        if let Err(e) = broker_faults.play(&mut stack.broker, &stack.logs.front_sink).await {
                            reason = Some(format!("{e} {:.1}s into the run", t0.elapsed().as_secs_f64()));
                            break;
                        }
                    }
                    Some(exit) = exits.recv() => {
                        reason = Some(subjects.describe_exit(&exit, Some(t0.elapsed())));
                        break;
                    }
                    _ = tokio::time::sleep(Duration::from_millis(250)) => {
                        if let Some(dead) = stack.dead_part() {
                            reason = Some(format!("{dead} {:.1}s into the run", t0.elapsed().as_secs_f64()));
                            break;
                        }
                    }
                    _ = &mut interrupt => {
                        reason = Some(format!("interrupted {:.1}s into the run", t0.elapsed().as_secs_f64()));
                        break;
                    }
                }
            }
            restarts_started = broker_faults.started;
        }

        reporter.phase("stopping");
        let _ = agents_stop.send(true);
        let mut problems = Vec::new();
        if let Some(task) = publisher_task {
            match tokio::time::timeout(PUBLISHER_STOP_TIMEOUT, task).await {
                Ok(Ok(stats)) => summary.published = stats.published,
                _ => problems.push("the publisher did not stop cleanly".to_string()),
            }
        }
        subjects
            .stop(&stack.logs.subscriber_sink, summary, &mut problems)
            .await;
        if let Some((task, _)) = watcher {
            // A will the subscribers' stop caused (none is due after a DISCONNECT) comes in the
            // broker's loop pass that closes the connection: the watcher listens a moment on.
            tokio::time::sleep(WATCHER_LINGER).await;
            let _ = watcher_stop.send(true);
            match tokio::time::timeout(PUBLISHER_STOP_TIMEOUT, task).await {
                Ok(Ok(wills)) => summary.wills = Some(wills),
                _ => problems.push("the will watcher did not stop cleanly".to_string()),
            }
        }
        for problem in problems {
            note(&mut reason, &problem);
        }
        summary.faults_started = stack.front.faults_started() + restarts_started;
        let incomplete = reason.is_some();
        stack
            .logs
            .subscriber_sink
            .emit(EventKind::AgentStopped(AgentStopped {
                clients: s.count,
                messages: summary.delivered,
                incomplete,
            }));
        stack
            .logs
            .publisher_sink
            .emit(EventKind::AgentStopped(AgentStopped {
                clients: 1,
                messages: summary.published,
                incomplete,
            }));
        Ok(reason)
    }
}

/// The scenario's subscribers as the agents take them, connecting to `broker` (the proxy).
fn subscriber_options(scenario: &Scenario, broker: &str) -> SubscriberOptions {
    SubscriberOptions {
        broker: broker.to_string(),
        settings: scenario.subscriber.settings.clone(),
    }
}

/// The scenario's publisher. Against an external broker that other runs may share (a sweep's
/// parallel cells), its client id carries this process's id, so publishers do not take over
/// one another's session; a broker linecut started serves this run alone.
fn publisher_settings(scenario: &Scenario) -> PublisherSettings {
    let mut settings = scenario.publisher.clone();
    if let linecut_scenario::BrokerSpec::External { .. } = scenario.broker {
        settings.client_id = format!("{}-{}", settings.client_id, std::process::id());
    }
    settings
}

/// The will watcher: every subscriber's will as it will be published. Its client id is unique
/// per process against an external broker, as the publisher's.
fn watcher_options(scenario: &Scenario, broker: String) -> WatcherOptions {
    let s = &scenario.subscriber.settings;
    let mut client_id = "linecut-watcher".to_string();
    if let linecut_scenario::BrokerSpec::External { .. } = scenario.broker {
        client_id = format!("{client_id}-{}", std::process::id());
    }
    let wills = s
        .will
        .iter()
        .flat_map(|will| {
            fleet_ids(&s.client_id, s.count).into_iter().map(move |id| {
                let (topic, payload) = will.for_client(&id);
                ExpectedWill {
                    client: id,
                    topic,
                    payload: payload.into_bytes(),
                }
            })
        })
        .collect();
    WatcherOptions {
        client_id,
        broker,
        wills,
    }
}

fn publisher_options(settings: &PublisherSettings, broker: &str) -> PublisherOptions {
    PublisherOptions {
        broker: broker.to_string(),
        settings: settings.clone(),
    }
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
