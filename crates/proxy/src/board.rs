//! The fault board: which faults exist, which are active now, and the actions they take.
//!
//! Every fault (from the command line, a scenario or the control API) gets an id here. The
//! scheduler starts and ends occurrences through the board; the pumps never lock it — they watch an
//! immutable snapshot of the active faults ([`Snapshot`]) that the board republishes on every
//! change, so the hot path costs one atomic check per unit while nothing changes.

use crate::conn::{ConnHandle, ConnRegistry};
use crate::spec::{FaultSpec, Target};
use linecut_events::{Direction, EventKind, EventSink, FaultAction, FaultEnded, FaultStarted};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::sync::watch;

/// One active occurrence of a fault.
#[derive(Debug, Clone)]
pub struct ActiveFault {
    pub id: u64,
    pub spec: Arc<FaultSpec>,
    pub started_at: Instant,
}

impl ActiveFault {
    /// Does this fault target the connection (direction aside)?
    pub fn targets(&self, conn: &ConnHandle) -> bool {
        match &self.spec.schedule.target {
            Target::All => true,
            Target::New => conn.opened_at >= self.started_at,
            Target::Client(glob) => conn.client_id().is_some_and(|id| glob.matches(id)),
        }
    }

    pub fn applies_to(&self, conn: &ConnHandle, dir: Direction) -> bool {
        crate::spec::acts_on(self.spec.schedule.dir, dir) && self.targets(conn)
    }
}

/// The active faults at one moment; replaced, never mutated.
pub type Snapshot = Arc<Vec<ActiveFault>>;

/// Where a fault came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    Schedule,
    Control,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Scheduled,
    Active,
    Finished,
    Removed,
}

/// What the control API lists for a fault.
#[derive(Debug, Clone, Serialize)]
pub struct FaultInfo {
    pub id: u64,
    pub spec: String,
    pub kind: &'static str,
    pub origin: Origin,
    pub status: Status,
    pub occurrences: u32,
}

#[derive(Debug)]
struct Entry {
    spec: Arc<FaultSpec>,
    origin: Origin,
    status: Status,
    occurrences: u32,
}

/// Ended faults the board keeps for `GET /faults`; older ones are dropped (the events file
/// keeps every fault for good).
pub const MAX_ENDED_KEPT: usize = 1000;

#[derive(Debug)]
pub struct FaultBoard {
    entries: Mutex<BoardState>,
    active_tx: watch::Sender<Snapshot>,
    conns: Arc<ConnRegistry>,
    events: EventSink,
}

#[derive(Debug, Default)]
struct BoardState {
    next_id: u64,
    entries: BTreeMap<u64, Entry>,
    active: Vec<ActiveFault>,
}

impl FaultBoard {
    pub fn new(conns: Arc<ConnRegistry>, events: EventSink) -> Self {
        let (active_tx, _) = watch::channel(Arc::new(Vec::new()));
        FaultBoard {
            entries: Mutex::new(BoardState::default()),
            active_tx,
            conns,
            events,
        }
    }

    pub fn subscribe(&self) -> watch::Receiver<Snapshot> {
        self.active_tx.subscribe()
    }

    pub fn snapshot(&self) -> Snapshot {
        self.active_tx.borrow().clone()
    }

    pub(crate) fn register(&self, spec: Arc<FaultSpec>, origin: Origin) -> u64 {
        let mut state = self.lock();
        // The history is bounded: past MAX_ENDED_KEPT ended faults, the oldest are forgotten
        // (their events are in the log; the board is for the live view).
        let ended: Vec<u64> = state
            .entries
            .iter()
            .filter(|(_, e)| matches!(e.status, Status::Finished | Status::Removed))
            .map(|(id, _)| *id)
            .collect();
        if ended.len() >= MAX_ENDED_KEPT {
            for id in &ended[..=ended.len() - MAX_ENDED_KEPT] {
                state.entries.remove(id);
            }
        }
        state.next_id += 1;
        let id = state.next_id;
        state.entries.insert(
            id,
            Entry {
                spec,
                origin,
                status: Status::Scheduled,
                occurrences: 0,
            },
        );
        id
    }

    /// Starts the next occurrence of fault `id`; false if the fault was removed meanwhile.
    pub(crate) fn start(
        &self,
        id: u64,
        scheduled_us: Option<u64>,
        lateness_us: Option<u64>,
    ) -> bool {
        let spec = {
            let mut state = self.lock();
            let Some(entry) = state.entries.get_mut(&id) else {
                return false;
            };
            if entry.status == Status::Removed {
                return false;
            }
            entry.occurrences += 1;
            entry.status = if entry.spec.is_instant() {
                Status::Finished
            } else {
                Status::Active
            };
            let spec = entry.spec.clone();
            let active = ActiveFault {
                id,
                spec: spec.clone(),
                started_at: Instant::now(),
            };
            // Stamped before the pumps can see the change, so nothing they log because of it
            // can appear to come before it (the thread may be preempted between the two).
            let ts = linecut_events::now_us();
            if !spec.is_instant() {
                state.active.push(active.clone());
                self.publish(&state);
            }
            (spec, active, ts)
        };
        let (spec, active, ts) = spec;
        self.events.emit_at(
            ts,
            EventKind::FaultStarted(FaultStarted {
                fault: id,
                spec: spec.to_string(),
                kind: spec.kind().to_string(),
                scheduled_us,
                lateness_us,
                applied: Vec::new(),
            }),
        );
        if let Some(action) = spec.fault.on_start() {
            for conn in self.conns.live() {
                if active.targets(&conn) {
                    let reason = format!("fault {id} ({})", spec.kind());
                    conn.kill(action, reason);
                    self.events.emit(EventKind::FaultAction(FaultAction {
                        fault: id,
                        kind: spec.kind().to_string(),
                        action: spec.kind().to_string(),
                        conn: Some(conn.id),
                        detail: conn.client_id().map(|c| format!("client_id={c}")),
                    }));
                }
            }
        }
        if spec.is_instant() {
            // An instant fault's window is a point: record its end so every start has one.
            self.events.emit(EventKind::FaultEnded(FaultEnded {
                fault: id,
                kind: spec.kind().to_string(),
                scheduled_us,
                lateness_us,
                applied: Vec::new(),
            }));
        }
        true
    }

    /// Ends the active occurrence of fault `id` (if any).
    pub(crate) fn end(&self, id: u64, scheduled_us: Option<u64>, lateness_us: Option<u64>) {
        let (kind, ts) = {
            let mut state = self.lock();
            let before = state.active.len();
            state.active.retain(|a| a.id != id);
            if state.active.len() == before {
                return;
            }
            // As in `start`: the end is stamped before any pump can act on it.
            let ts = linecut_events::now_us();
            self.publish(&state);
            let Some(entry) = state.entries.get_mut(&id) else {
                return;
            };
            if entry.status == Status::Active {
                entry.status = Status::Scheduled;
            }
            (entry.spec.kind(), ts)
        };
        self.events.emit_at(
            ts,
            EventKind::FaultEnded(FaultEnded {
                fault: id,
                kind: kind.to_string(),
                scheduled_us,
                lateness_us,
                applied: Vec::new(),
            }),
        );
    }

    /// Marks a fault finished once its last occurrence has ended.
    pub(crate) fn finish(&self, id: u64) {
        if let Some(entry) = self.lock().entries.get_mut(&id) {
            if entry.status != Status::Removed {
                entry.status = Status::Finished;
            }
        }
    }

    /// Removes a fault: ends it now if active and cancels future occurrences.
    pub fn remove(&self, id: u64) -> bool {
        {
            let mut state = self.lock();
            let Some(entry) = state.entries.get_mut(&id) else {
                return false;
            };
            entry.status = Status::Removed;
        }
        self.end(id, None, None);
        true
    }

    pub fn list(&self) -> Vec<FaultInfo> {
        self.lock()
            .entries
            .iter()
            .map(|(&id, e)| FaultInfo {
                id,
                spec: e.spec.to_string(),
                kind: e.spec.kind(),
                origin: e.origin,
                status: e.status,
                occurrences: e.occurrences,
            })
            .collect()
    }

    /// A fault's action that took effect at `ts_us`, before it was found (an idle timeout).
    pub(crate) fn emit_action_at(
        &self,
        fault: &ActiveFault,
        action: &str,
        conn: Option<u64>,
        ts_us: i64,
    ) {
        self.events.batch().push_at(
            ts_us,
            EventKind::FaultAction(FaultAction {
                fault: fault.id,
                kind: fault.spec.kind().to_string(),
                action: action.to_string(),
                conn,
                detail: None,
            }),
        );
    }

    pub(crate) fn emit_action(&self, fault: &ActiveFault, action: &str, conn: Option<u64>) {
        self.events.emit(EventKind::FaultAction(FaultAction {
            fault: fault.id,
            kind: fault.spec.kind().to_string(),
            action: action.to_string(),
            conn,
            detail: None,
        }));
    }

    fn publish(&self, state: &BoardState) {
        self.active_tx.send_replace(Arc::new(state.active.clone()));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BoardState> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use linecut_events::Source;

    /// The reliability review's unbounded fault history: a control API client adding and
    /// removing faults forever must not grow the board forever.
    #[test]
    fn the_history_of_ended_faults_is_bounded() {
        let board = FaultBoard::new(
            Arc::new(ConnRegistry::default()),
            EventSink::disabled(Source::Proxy),
        );
        let spec = Arc::new(FaultSpec::parse("cut:for=1s").unwrap());
        for _ in 0..(MAX_ENDED_KEPT + 500) {
            let id = board.register(spec.clone(), Origin::Control);
            assert!(board.remove(id));
        }
        let live = board.register(spec.clone(), Origin::Control);
        let list = board.list();
        assert!(list.len() <= MAX_ENDED_KEPT + 1, "{} kept", list.len());
        assert!(list.iter().any(|f| f.id == live), "the live fault is kept");
    }
}
