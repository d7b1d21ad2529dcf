//! The precise timer every fault schedule runs on, in either mode: the proxy's faults (acting on
//! its board) and namespace mode's link faults (nftables changes) alike.
//!
//! tokio's timer has millisecond granularity and rounds up, which alone would make every step up
//! to a millisecond late. A schedule is sparse (a few steps per run), so it runs on its own
//! thread: it sleeps until shortly before a step, then spins the last stretch, and calls its
//! [`Stage`] (which acts synchronously: the proxy's board publishes to the async pumps through a
//! watch channel; the links' stage applies rules and returns when the kernel has them). Steps
//! come from each fault's [`Schedule`]: its occurrences, each ending after `for` unless the
//! fault is instant.

use linecut_model::Schedule;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long before a step the thread stops sleeping and starts spinning. Sleep wake-ups on Linux
/// land within ~100 µs; spinning the rest costs at most this much CPU per step.
const SPIN_WINDOW: Duration = Duration::from_micros(400);

/// What a schedule acts on. Called on the timer's thread, at (or just after) each step's
/// planned time, which it is given so it can stamp its own lateness when its work is done.
pub trait Stage: Send + 'static {
    /// An occurrence of fault `id` starts. False: the fault is gone (removed, or the stage can
    /// no longer act), and nothing more is scheduled for it.
    fn start(&mut self, id: u64, planned: Instant) -> bool;
    /// The occurrence ends.
    fn end(&mut self, id: u64, planned: Instant);
    /// Fault `id` has no occurrence left.
    fn finish(&mut self, id: u64);
}

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

/// A fault as the timer sees it.
struct Timed {
    schedule: Schedule,
    /// Acts once per occurrence (no end step).
    instant: bool,
    /// The origin of its `at`.
    base: Instant,
}

enum Command {
    Add { id: u64, timed: Timed },
    Stop,
}

/// The timer thread. Dropping it stops the thread (after the step it is in, if any).
pub struct Timer {
    handle: TimerHandle,
    thread: Option<JoinHandle<()>>,
}

/// A cloneable way to add faults to a running timer.
#[derive(Clone)]
pub struct TimerHandle {
    tx: Sender<Command>,
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

impl Timer {
    /// Starts the thread, named `name`, acting on `stage`.
    pub fn start<S: Stage>(name: &str, mut stage: S) -> Timer {
        let (tx, rx) = channel::<Command>();
        let alive = Arc::new(AtomicBool::new(true));
        let guard = AliveGuard(alive.clone());
        let thread = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                let _alive = guard;
                let mut steps: BinaryHeap<Reverse<Step>> = BinaryHeap::new();
                let mut faults: HashMap<u64, Timed> = HashMap::new();
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
                        Ok(Command::Add { id, timed }) => {
                            if let Some(first) = timed.schedule.occurrence_start(0) {
                                steps.push(Reverse(Step {
                                    at: timed.base + first,
                                    kind: StepKind::Start,
                                    fault: id,
                                    occurrence: 0,
                                }));
                            }
                            faults.insert(id, timed);
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
                    let Some(timed) = faults.get(&step.fault) else {
                        continue;
                    };
                    let next = step.occurrence + 1;
                    let next_start = timed.schedule.occurrence_start(next);
                    match step.kind {
                        StepKind::Start => {
                            if !stage.start(step.fault, step.at) {
                                continue;
                            }
                            if let Some(d) = timed.schedule.duration.filter(|_| !timed.instant) {
                                steps.push(Reverse(Step {
                                    at: step.at + d,
                                    kind: StepKind::End,
                                    ..step
                                }));
                            }
                            if let Some(offset) = next_start {
                                steps.push(Reverse(Step {
                                    at: timed.base + offset,
                                    kind: StepKind::Start,
                                    fault: step.fault,
                                    occurrence: next,
                                }));
                            } else if timed.instant {
                                stage.finish(step.fault);
                            }
                        }
                        StepKind::End => {
                            stage.end(step.fault, step.at);
                            if next_start.is_none() {
                                stage.finish(step.fault);
                            }
                        }
                    }
                }
            })
            .expect("spawning a schedule thread");
        Timer {
            handle: TimerHandle { tx, alive },
            thread: Some(thread),
        }
    }

    pub fn handle(&self) -> &TimerHandle {
        &self.handle
    }
}

impl TimerHandle {
    /// Whether the thread still runs: a fault added to a dead timer never starts.
    pub fn is_alive(&self) -> bool {
        self.alive.load(Ordering::Acquire)
    }

    /// Schedules fault `id`, whose `at` counts from `base`. Instant faults act once per
    /// occurrence and have no end.
    pub fn add(&self, id: u64, schedule: Schedule, instant: bool, base: Instant) {
        let _ = self.tx.send(Command::Add {
            id,
            timed: Timed {
                schedule,
                instant,
                base,
            },
        });
    }
}

impl Drop for Timer {
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
    use linecut_model::{Keys, Repeat};
    use std::sync::Mutex;

    /// One call: the fault, which call, how late.
    type Call = (u64, &'static str, Duration);

    /// Records what it is told, with how late it was told.
    #[derive(Clone, Default)]
    struct Log(Arc<Mutex<Vec<Call>>>);

    impl Stage for Log {
        fn start(&mut self, id: u64, planned: Instant) -> bool {
            self.0
                .lock()
                .unwrap()
                .push((id, "start", planned.elapsed()));
            true
        }
        fn end(&mut self, id: u64, planned: Instant) {
            self.0.lock().unwrap().push((id, "end", planned.elapsed()));
        }
        fn finish(&mut self, id: u64) {
            self.0.lock().unwrap().push((id, "finish", Duration::ZERO));
        }
    }

    fn schedule(text: &str) -> Schedule {
        Schedule::take(&mut Keys::parse(text).unwrap(), false).unwrap()
    }

    /// A flap of three occurrences, and an instant fault: every step in order, and on time.
    /// The spin makes a step well under a millisecond late on an idle machine; the bound is
    /// for a loaded one, where the kernel may leave the runnable thread waiting a few of its
    /// scheduling slices (3 ms each under EEVDF, Linux 6.6+) before it spins.
    #[test]
    fn steps_come_in_order_and_on_time() {
        let log = Log::default();
        let timer = Timer::start("test-timer", log.clone());
        let t0 = Instant::now();
        let flap = schedule("at=20ms,for=10ms,every=30ms,count=3");
        assert_eq!(
            flap.repeat,
            Some(Repeat {
                every: Duration::from_millis(30),
                count: Some(3)
            })
        );
        timer.handle().add(1, flap, false, t0);
        timer.handle().add(2, schedule("at=35ms"), true, t0);
        // The last step is the flap's third end, at 20 + 60 + 10 = 90 ms; wait for it.
        let deadline = Instant::now() + Duration::from_secs(10);
        while log.0.lock().unwrap().len() < 9 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        drop(timer);
        let steps = log.0.lock().unwrap().clone();
        let names: Vec<(u64, &str)> = steps.iter().map(|(id, s, _)| (*id, *s)).collect();
        assert_eq!(
            names,
            vec![
                (1, "start"),
                (1, "end"),
                (2, "start"),
                (2, "finish"),
                (1, "start"),
                (1, "end"),
                (1, "start"),
                (1, "end"),
                (1, "finish"),
            ]
        );
        let late = steps.iter().map(|(_, _, l)| *l).max().unwrap();
        assert!(late < Duration::from_millis(50), "{late:?}");
    }

    /// A stage that refuses a start stops that fault's schedule, not the others'.
    #[test]
    fn a_refused_start_schedules_nothing_more_for_that_fault() {
        struct Refuse(Arc<Mutex<Vec<u64>>>);
        impl Stage for Refuse {
            fn start(&mut self, id: u64, _: Instant) -> bool {
                self.0.lock().unwrap().push(id);
                id != 1
            }
            fn end(&mut self, _: u64, _: Instant) {}
            fn finish(&mut self, _: u64) {}
        }
        let seen = Arc::new(Mutex::new(Vec::new()));
        let timer = Timer::start("test-timer", Refuse(seen.clone()));
        let t0 = Instant::now();
        let flap = "at=0s,for=5ms,every=10ms,count=3";
        timer.handle().add(1, schedule(flap), false, t0);
        timer.handle().add(2, schedule(flap), false, t0);
        let deadline = Instant::now() + Duration::from_secs(10);
        while seen.lock().unwrap().len() < 4 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        drop(timer);
        let mut seen = seen.lock().unwrap().clone();
        seen.sort();
        assert_eq!(seen, vec![1, 2, 2, 2]);
    }
}
