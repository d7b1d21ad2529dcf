//! The broker's own faults, played by the run on the broker it started, in either network mode:
//! `restart` stops mosquitto (SIGTERM, an orderly shutdown that publishes the wills and saves
//! the store when persistence is on) and starts it again on the same address.
//!
//! Their events go into the front's events file, beside the proxy's or the links' faults, so
//! the analysis draws their windows like any other: the window opens when the broker is told
//! to stop and closes when it accepts connections again (its start-up included, which is part
//! of what a client lives through).

use crate::stack::RunningBroker;
use linecut_broker::READY_WITHIN;
use linecut_events::{now_us, EventKind, EventSink, FaultEnded, FaultStarted};
use linecut_model::BrokerFault;
use std::time::{Duration, Instant};

/// How long a stopping broker gets before it is killed: mosquitto's own stop is a loop pass.
const HALT_WITHIN: Duration = Duration::from_secs(3);
/// How often a stop or a start is looked at (a start is answered in a few milliseconds on
/// this machine; the events are stamped when seen, so this bounds their lateness).
const POLL: Duration = Duration::from_millis(5);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Stop,
    Start,
}

/// The broker faults of one run, in the order they are due.
pub(crate) struct BrokerFaults {
    steps: Vec<(Instant, usize, Step)>,
    faults: Vec<BrokerFault>,
    next: usize,
    /// The fault id of the first (ids follow the front's own).
    first_id: u64,
    t0: Instant,
    pub started: u32,
}

impl BrokerFaults {
    pub fn new(faults: &[BrokerFault], t0: Instant, first_id: u64) -> BrokerFaults {
        let mut steps: Vec<(Instant, usize, Step)> = faults
            .iter()
            .enumerate()
            .flat_map(|(i, f)| {
                [
                    (t0 + f.at(), i, Step::Stop),
                    (t0 + f.at() + f.down(), i, Step::Start),
                ]
            })
            .collect();
        steps.sort_by_key(|(at, _, _)| *at);
        BrokerFaults {
            steps,
            faults: faults.to_vec(),
            next: 0,
            first_id,
            t0,
            started: 0,
        }
    }

    /// When the next step is due.
    pub fn next_at(&self) -> Option<Instant> {
        self.steps.get(self.next).map(|(at, _, _)| *at)
    }

    /// Whether a broker fault is on now (for the progress line).
    pub fn active(&self) -> bool {
        self.steps[..self.next]
            .iter()
            .filter(|(_, _, s)| *s == Step::Stop)
            .count()
            > self.steps[..self.next]
                .iter()
                .filter(|(_, _, s)| *s == Step::Start)
                .count()
    }

    /// Takes the step that is due; an error is a broker that would not come back.
    pub async fn play(
        &mut self,
        broker: &mut RunningBroker,
        sink: &EventSink,
    ) -> Result<(), String> {
        let Some(&(due, i, step)) = self.steps.get(self.next) else {
            return Ok(());
        };
        self.next += 1;
        let RunningBroker::Mosquitto(m) = broker else {
            // The scenario checker admits broker faults on mosquitto only.
            return Err("a broker fault needs a broker linecut can restart (mosquitto)".into());
        };
        let fault = &self.faults[i];
        let id = self.first_id + i as u64;
        let scheduled_us = Some(due.duration_since(self.t0).as_micros() as u64);
        let lateness_us = Some(due.elapsed().as_micros() as u64);
        match step {
            Step::Stop => {
                // Stamped before the signal: nothing the stop causes can come before it.
                sink.emit_at(
                    now_us(),
                    EventKind::FaultStarted(FaultStarted {
                        fault: id,
                        spec: fault.spec(),
                        kind: fault.kind().into(),
                        scheduled_us,
                        lateness_us,
                        applied: Vec::new(),
                    }),
                );
                self.started += 1;
                m.begin_halt();
                let deadline = Instant::now() + HALT_WITHIN;
                while !m.gone() {
                    if Instant::now() > deadline {
                        m.kill();
                        break;
                    }
                    tokio::time::sleep(POLL).await;
                }
            }
            Step::Start => {
                m.begin_resume().map_err(|e| {
                    format!("the broker (mosquitto) could not be started again: {e}")
                })?;
                let deadline = Instant::now() + READY_WITHIN;
                loop {
                    match m.accepting() {
                        Ok(true) => break,
                        Ok(false) if Instant::now() < deadline => tokio::time::sleep(POLL).await,
                        Ok(false) => {
                            return Err(format!(
                                "the broker (mosquitto) did not accept connections within {READY_WITHIN:?} of its restart"
                            ))
                        }
                        Err(e) => return Err(format!("the broker (mosquitto) died restarting: {e}")),
                    }
                }
                sink.emit_at(
                    now_us(),
                    EventKind::FaultEnded(FaultEnded {
                        fault: id,
                        kind: fault.kind().into(),
                        scheduled_us,
                        lateness_us,
                        applied: Vec::new(),
                    }),
                );
            }
        }
        Ok(())
    }
}
