//! The fault schedule: starts and ends fault occurrences at their times, within well under 1 ms.
//!
//! tokio's timer has millisecond granularity and rounds up, which alone would make every step up
//! to a millisecond late. The schedule is sparse (a few steps per run), so it runs on its own
//! thread: it sleeps until shortly before a step, then spins the last stretch, and acts on the
//! board directly (the board is synchronous and publishes to the async pumps through a watch
//! channel). Each step's actual time is logged with its lateness.

use crate::board::{FaultBoard, Origin};
use crate::spec::FaultSpec;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long before a step the thread stops sleeping and starts spinning. Sleep wake-ups on Linux
/// land within ~100 µs; spinning the rest costs at most this much CPU per step.
const SPIN_WINDOW: Duration = Duration::from_micros(400);

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum StepKind {
    // Ends sort before starts at the same instant, so back-to-back occurrences do not overlap.
    End,
    Start,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Step {
    at: Instant,
    kind: StepKind,
    fault: u64,
    occurrence: u32,
}

enum Command {
    Add {
        id: u64,
        spec: Arc<FaultSpec>,
        base: Instant,
    },
    Stop,
}

/// The scheduler thread. Dropping it stops the thread.
pub struct Scheduler {
    handle: ScheduleHandle,
    thread: Option<JoinHandle<()>>,
}

/// A cloneable way to add faults to a running schedule.
#[derive(Clone)]
pub struct ScheduleHandle {
    tx: Sender<Command>,
    board: Arc<FaultBoard>,
    t0: Instant,
    /// False once the thread has ended, however it ended (a panic included).
    alive: Arc<AtomicBool>,
}

/// Held by the thread; dropping it (at its end, or while unwinding a panic) says so.
struct AliveGuard(Arc<AtomicBool>);

impl Drop for AliveGuard {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

impl Scheduler {
    /// Starts the thread; `t0` is the proxy's start, the origin of every `at`.
    pub fn start(board: Arc<FaultBoard>, t0: Instant) -> Scheduler {
        let (tx, rx) = channel::<Command>();
        let thread_board = board.clone();
        let alive = Arc::new(AtomicBool::new(true));
        let guard = AliveGuard(alive.clone());
        let thread = std::thread::Builder::new()
            .name("linecut-schedule".into())
            .spawn(move || {
                let _alive = guard;
                let mut steps: BinaryHeap<Reverse<Step>> = BinaryHeap::new();
                let mut specs: std::collections::HashMap<u64, (Arc<FaultSpec>, Instant)> =
                    Default::default();
                loop {
                    let command = match steps.peek() {
                        None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
                        Some(Reverse(step)) => {
                            let wake = step.at.checked_sub(SPIN_WINDOW).unwrap_or(step.at);
                            let now = Instant::now();
                            if wake > now {
                                rx.recv_timeout(wake - now)
                            } else {
                                Err(RecvTimeoutError::Timeout)
                            }
                        }
                    };
                    match command {
                        Ok(Command::Add { id, spec, base }) => {
                            if let Some(first) = spec.occurrence_start(0) {
                                steps.push(Reverse(Step {
                                    at: base + first,
                                    kind: StepKind::Start,
                                    fault: id,
                                    occurrence: 0,
                                }));
                            }
                            specs.insert(id, (spec, base));
                            continue;
                        }
                        Ok(Command::Stop) | Err(RecvTimeoutError::Disconnected) => return,
                        Err(RecvTimeoutError::Timeout) => {}
                    }
                    let Some(Reverse(step)) = steps.peek().copied() else {
                        continue;
                    };
                    while Instant::now() < step.at {
                        std::hint::spin_loop();
                    }
                    steps.pop();
                    let lateness = Instant::now().saturating_duration_since(step.at);
                    let scheduled = step.at.saturating_duration_since(t0);
                    let Some((spec, base)) = specs.get(&step.fault).cloned() else {
                        continue;
                    };
                    let (sched_us, late_us) = (
                        Some(scheduled.as_micros() as u64),
                        Some(lateness.as_micros() as u64),
                    );
                    match step.kind {
                        StepKind::Start => {
                            if !thread_board.start(step.fault, sched_us, late_us) {
                                continue;
                            }
                            if let Some(d) = spec.schedule.duration.filter(|_| !spec.is_instant()) {
                                steps.push(Reverse(Step {
                                    at: step.at + d,
                                    kind: StepKind::End,
                                    ..step
                                }));
                            }
                            let next = step.occurrence + 1;
                            if let Some(offset) = spec.occurrence_start(next) {
                                steps.push(Reverse(Step {
                                    at: base + offset,
                                    kind: StepKind::Start,
                                    fault: step.fault,
                                    occurrence: next,
                                }));
                            } else if spec.is_instant() {
                                thread_board.finish(step.fault);
                            }
                        }
                        StepKind::End => {
                            thread_board.end(step.fault, sched_us, late_us);
                            if spec.occurrence_start(step.occurrence + 1).is_none() {
                                thread_board.finish(step.fault);
                            }
                        }
                    }
                }
            })
            .expect("spawning the schedule thread");
        Scheduler {
            handle: ScheduleHandle {
                tx,
                board,
                t0,
                alive,
            },
            thread: Some(thread),
        }
    }

    pub fn handle(&self) -> &ScheduleHandle {
        &self.handle
    }
}

impl ScheduleHandle {
    /// Whether the scheduler thread still runs: a fault added to a dead schedule never starts.
    pub fn is_alive(&self) -> bool {
        self.alive.load(Ordering::Acquire)
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
        let _ = self.tx.send(Command::Add { id, spec, base });
        id
    }
}

impl Drop for Scheduler {
    fn drop(&mut self) {
        let _ = self.handle.tx.send(Command::Stop);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
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
