//! The proxy's fault schedule: its faults on the precise [`Timer`] (within well under 1 ms),
//! each step acting on the board directly (the board is synchronous and publishes to the async
//! pumps through a watch channel). Each step's actual time is logged with its lateness.

use crate::board::{FaultBoard, Origin};
use crate::spec::FaultSpec;
use crate::timer::{Stage, Timer, TimerHandle};
use std::sync::Arc;
use std::time::Instant;

/// The proxy's faults on the timer: each step acts on the board, stamped against `t0` (the
/// proxy's start) with the lateness of the moment the board has it.
struct BoardStage {
    board: Arc<FaultBoard>,
    t0: Instant,
}

impl BoardStage {
    fn stamps(&self, planned: Instant) -> (Option<u64>, Option<u64>) {
        let lateness = Instant::now().saturating_duration_since(planned);
        let scheduled = planned.saturating_duration_since(self.t0);
        (
            Some(scheduled.as_micros() as u64),
            Some(lateness.as_micros() as u64),
        )
    }
}

impl Stage for BoardStage {
    fn start(&mut self, id: u64, planned: Instant) -> bool {
        let (scheduled, late) = self.stamps(planned);
        self.board.start(id, scheduled, late)
    }

    fn end(&mut self, id: u64, planned: Instant) {
        let (scheduled, late) = self.stamps(planned);
        self.board.end(id, scheduled, late);
    }

    fn finish(&mut self, id: u64) {
        self.board.finish(id);
    }
}

/// The proxy's schedule: its faults on a [`Timer`]. Dropping it stops the thread.
pub struct Scheduler {
    /// Owned for its thread, which stops when this is dropped.
    _timer: Timer,
    handle: ScheduleHandle,
}

/// A cloneable way to add faults to a running schedule.
#[derive(Clone)]
pub struct ScheduleHandle {
    timer: TimerHandle,
    board: Arc<FaultBoard>,
    t0: Instant,
}

impl Scheduler {
    /// Starts the thread; `t0` is the proxy's start, the origin of every `at`.
    pub fn start(board: Arc<FaultBoard>, t0: Instant) -> Scheduler {
        let timer = Timer::start(
            "linecut-schedule",
            BoardStage {
                board: board.clone(),
                t0,
            },
        );
        let handle = ScheduleHandle {
            timer: timer.handle().clone(),
            board,
            t0,
        };
        Scheduler {
            _timer: timer,
            handle,
        }
    }

    pub fn handle(&self) -> &ScheduleHandle {
        &self.handle
    }
}

impl ScheduleHandle {
    /// Whether the scheduler thread still runs: a fault added to a dead schedule never starts.
    pub fn is_alive(&self) -> bool {
        self.timer.is_alive()
    }

    /// Schedules a fault relative to proxy start (command line, scenario files).
    pub fn add_scheduled(&self, spec: FaultSpec) -> u64 {
        self.add(spec, self.t0, Origin::Schedule)
    }

    /// Adds a fault relative to now (the control API: `at` counts from the request).
    pub fn add_now(&self, spec: FaultSpec) -> u64 {
        self.add(spec, Instant::now(), Origin::Control)
    }

    /// Adds a scheduled fault whose `at` counts from `base` (a runner's experiment start).
    pub fn add_scheduled_from(&self, spec: FaultSpec, base: Instant) -> u64 {
        self.add(spec, base, Origin::Schedule)
    }

    fn add(&self, spec: FaultSpec, base: Instant, origin: Origin) -> u64 {
        let spec = Arc::new(spec);
        let id = self.board.register(spec.clone(), origin);
        self.timer
            .add(id, spec.schedule.clone(), spec.is_instant(), base);
        id
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conn::ConnRegistry;
    use linecut_events::{EventSink, Source};

    /// A handle outlives its thread: it must know, so that the control API and the runner can
    /// say the schedule is gone instead of accepting faults that never start.
    #[test]
    fn a_handle_knows_when_its_thread_is_gone() {
        let board = Arc::new(FaultBoard::new(
            Arc::new(ConnRegistry::default()),
            EventSink::disabled(Source::Proxy),
        ));
        let scheduler = Scheduler::start(board, Instant::now());
        let handle = scheduler.handle().clone();
        assert!(handle.is_alive());
        drop(scheduler);
        assert!(!handle.is_alive());
    }
}
