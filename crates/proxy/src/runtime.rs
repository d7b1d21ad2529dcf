//! The running proxy: [`Proxy`], its configuration and handle, and the shutdown-driven run loop.
//! Only built with the `runtime` feature (the default); the fault vocabulary (`spec`, `faults`)
//! needs none of it.

use crate::board::{FaultBoard, FaultInfo};
use crate::conn::ConnHandle;
use crate::conn::ConnRegistry;
use crate::scheduler::{ScheduleHandle, Scheduler};
use crate::spec::FaultSpec;
use crate::wirelog::WireLog;
use crate::{control, server};
use linecut_events::{EventKind, EventSink, ProxyStarted, ProxyStopped};
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;

/// Everything that shapes a proxy except its listener and faults.
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    /// The broker, as `host:port` (resolved on every connection).
    pub upstream: String,
    pub wire_log: WireLog,
    /// Live connections at most; beyond it, accepting pauses.
    pub max_connections: usize,
    /// How long to wait for the broker to accept a connection.
    pub connect_timeout: Duration,
    /// Largest MQTT packet decoded whole; larger ones stream through.
    pub max_buffered_packet: usize,
    /// Bytes a direction may queue before the proxy stops reading from its sender.
    pub queue_limit: usize,
    /// Where both legs of every connection are written as a pcap, if anywhere.
    pub pcap: Option<Arc<linecut_capture::PcapTap>>,
}

impl ProxyConfig {
    pub fn new(upstream: impl Into<String>) -> Self {
        ProxyConfig {
            upstream: upstream.into(),
            wire_log: WireLog::default(),
            max_connections: 20_000,
            connect_timeout: Duration::from_secs(5),
            max_buffered_packet: 1024 * 1024,
            queue_limit: 1024 * 1024,
            pcap: None,
        }
    }
}

/// State shared by every task of one proxy.
pub(crate) struct Shared {
    pub events: EventSink,
    pub board: Arc<FaultBoard>,
    pub conns: Arc<ConnRegistry>,
    pub config: ProxyConfig,
    /// Whether the listening socket is open (a `refuse` fault closes it).
    pub listening: Arc<AtomicBool>,
}

/// Errors that stop a proxy.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
}

/// What a finished run did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunSummary {
    pub connections: u64,
}

/// A proxy, configured and with its schedule clock started, not yet serving.
pub struct Proxy {
    shared: Arc<Shared>,
    scheduler: Scheduler,
}

impl Proxy {
    /// Creates the proxy. The schedule's clock (`at=0s`) starts now.
    pub fn new(config: ProxyConfig, events: EventSink) -> Proxy {
        let conns = Arc::new(ConnRegistry::default());
        let board = Arc::new(FaultBoard::new(conns.clone(), events.clone()));
        let scheduler = Scheduler::start(board.clone(), Instant::now());
        Proxy {
            shared: Arc::new(Shared {
                events,
                board,
                conns,
                config,
                listening: Arc::new(AtomicBool::new(false)),
            }),
            scheduler,
        }
    }

    /// Adds a fault to the schedule (its `at` counts from proxy start); returns its id.
    pub fn schedule(&self, spec: FaultSpec) -> u64 {
        self.scheduler.handle().add_scheduled(spec)
    }

    /// A handle for adding and removing faults and listing connections while the proxy runs.
    pub fn handle(&self) -> ProxyHandle {
        ProxyHandle {
            board: self.shared.board.clone(),
            conns: self.shared.conns.clone(),
            schedule: self.scheduler.handle().clone(),
            listening: self.shared.listening.clone(),
        }
    }

    /// Serves until `shutdown` completes, then closes every connection and returns.
    pub async fn run(
        self,
        listener: TcpListener,
        control: Option<TcpListener>,
        shutdown: impl Future<Output = ()>,
    ) -> Result<RunSummary, ProxyError> {
        let io = |context: &str| {
            let context = context.to_string();
            move |source| ProxyError::Io { context, source }
        };
        let listen = listener
            .local_addr()
            .map_err(io("reading the listen address"))?;
        let control_addr = match &control {
            Some(c) => Some(c.local_addr().map_err(io("reading the control address"))?),
            None => None,
        };
        self.shared
            .events
            .emit(EventKind::ProxyStarted(ProxyStarted {
                listen: listen.to_string(),
                upstream: self.shared.config.upstream.clone(),
                control: control_addr.map(|a| a.to_string()),
            }));
        let (stop_control, control_stopped) = tokio::sync::oneshot::channel::<()>();
        let control_task = control.map(|listener| {
            let state = control::ControlState {
                board: self.shared.board.clone(),
                conns: self.shared.conns.clone(),
                schedule: self.scheduler.handle().clone(),
                listen: listen.to_string(),
                upstream: self.shared.config.upstream.clone(),
            };
            tokio::spawn(control::serve(listener, state, async move {
                let _ = control_stopped.await;
            }))
        });
        let served = server::accept_loop(self.shared.clone(), listener, shutdown).await;
        let _ = stop_control.send(());
        if let Some(task) = control_task {
            let _ = task.await;
        }
        served.map_err(io("serving"))?;
        let connections = self.shared.conns.accepted();
        self.shared
            .events
            .emit(EventKind::ProxyStopped(ProxyStopped { connections }));
        Ok(RunSummary { connections })
    }
}

/// Live access to a running proxy.
#[derive(Clone)]
pub struct ProxyHandle {
    board: Arc<FaultBoard>,
    conns: Arc<ConnRegistry>,
    schedule: ScheduleHandle,
    listening: Arc<AtomicBool>,
}

impl ProxyHandle {
    /// Adds a fault whose `at` counts from now; returns its id.
    pub fn add_fault(&self, spec: FaultSpec) -> u64 {
        self.schedule.add_now(spec)
    }

    /// Schedules a fault whose `at` counts from `base` rather than from proxy start: a runner
    /// starts its clock once every subscriber is subscribed.
    pub fn schedule_from(&self, spec: FaultSpec, base: std::time::Instant) -> u64 {
        self.schedule.add_scheduled_from(spec, base)
    }

    /// Ends a fault now and cancels its later occurrences; false if there is no such fault.
    pub fn remove_fault(&self, id: u64) -> bool {
        self.board.remove(id)
    }

    pub fn faults(&self) -> Vec<FaultInfo> {
        self.board.list()
    }

    /// Whether the fault scheduler still runs (a runner watches it: a schedule that died
    /// would leave faults that never start or never end).
    pub fn scheduler_alive(&self) -> bool {
        self.schedule.is_alive()
    }

    pub fn connections(&self) -> Vec<Arc<ConnHandle>> {
        self.conns.live()
    }

    /// The distinct MQTT client ids of live connections on which a SUBACK has come down: how a
    /// runner knows a client under test is subscribed without asking the client.
    pub fn subscribed_clients(&self) -> std::collections::BTreeSet<String> {
        self.conns
            .live()
            .iter()
            .filter(|c| c.is_subscribed())
            .filter_map(|c| c.client_id().map(str::to_string))
            .collect()
    }

    /// Connections accepted since the proxy started (live or not).
    pub fn accepted(&self) -> u64 {
        self.conns.accepted()
    }

    /// Whether the proxy's listening socket is open. A `refuse` fault closes it shortly after it
    /// becomes active (the accept loop reacts to the change); connects that reach the backlog in
    /// between are reset when it closes, as they would be by a broker going down.
    pub fn is_listening(&self) -> bool {
        self.listening.load(Ordering::Acquire)
    }

    /// Whether fault `id` currently has an active occurrence.
    pub fn is_active(&self, id: u64) -> bool {
        self.board.snapshot().iter().any(|f| f.id == id)
    }
}
