//! Namespace mode's front: the run's network (namespaces, pairs, bridge), the capture on the
//! host end of every pair, and the link fault schedule that turns `[[fault]]`s into nftables
//! rules at their times.
//!
//! Each change of a fault's state is applied as one nftables transaction per side of each
//! affected pair (and, for an `unplug`, the carrier of the pair's host end set first) (the host's table for what the client sends, the namespace's for what it
//! receives) and stamped when `nft` returns, which is when the kernel has the rules: that
//! stamp is the fault's `fault_started`/`fault_ended` time in `link.jsonl`, with its lateness
//! against the schedule, as the proxy stamps its own faults.

use crate::{io, RunError};
use linecut_events::{EventKind, EventSink, FaultEnded, FaultStarted, RunLayout};
use linecut_model::{LinkFaultSpec, LinkKind, Target};
use linecut_netns::capture::Capture;
use linecut_netns::rules::{self, DOWN_CHAIN};
use linecut_netns::{Member, RunId, Topology};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;

/// The network, the capture and the schedule of a namespace run.
pub(crate) struct LinkFront {
    pub topology: Topology,
    capture: Option<Capture>,
    scheduler: Option<JoinHandle<()>>,
    /// Occurrences started so far.
    started: Arc<AtomicU32>,
    /// Why the schedule stopped, when a change could not be applied.
    failed: Arc<Mutex<Option<String>>>,
    /// The kinds of the faults active now, by fault index (for the progress line).
    active: Arc<Mutex<BTreeMap<usize, &'static str>>>,
}

/// One scheduled change: at `at` (from the experiment start), fault `index` starts or ends.
#[derive(Debug, Clone, Copy)]
struct Change {
    at: Duration,
    index: usize,
    start: bool,
}

impl LinkFront {
    /// Builds the network for the subscribers (checked by the doctor before anything was
    /// created) and puts the base rules in place; the capture starts once the broker's port is
    /// known ([`LinkFront::start_capture`]).
    pub fn start(scenario: &linecut_scenario::Scenario) -> Result<LinkFront, RunError> {
        let gone =
            linecut_netns::leftovers::clean().map_err(|e| RunError::Network(e.to_string()))?;
        if !gone.is_empty() {
            tracing::warn!(
                "removed what {} killed namespace run(s) left behind",
                gone.len()
            );
        }
        let topology = Topology::create(
            RunId::fresh(),
            scenario.subscriber.settings.count,
            &scenario.network.tcp,
        )
        .map_err(|e| RunError::Network(e.to_string()))?;
        let apply = || -> Result<(), linecut_netns::NetnsError> {
            rules::apply_host(&rules::base_host(&topology))?;
            for m in &topology.members {
                rules::apply_ns(m, &rules::base_ns(topology.id, m))?;
            }
            Ok(())
        };
        apply().map_err(|e| RunError::Network(e.to_string()))?;
        Ok(LinkFront {
            topology,
            capture: None,
            scheduler: None,
            started: Arc::new(AtomicU32::new(0)),
            failed: Arc::new(Mutex::new(None)),
            active: Arc::new(Mutex::new(BTreeMap::new())),
        })
    }

    /// Plays `faults` from `t0` on the members whose client ids the faults target; events go
    /// to `sink`.
    pub fn schedule(
        &mut self,
        faults: Vec<LinkFaultSpec>,
        ids: Vec<String>,
        run_length: Duration,
        t0: Instant,
        sink: EventSink,
    ) {
        let id = self.topology.id;
        let members = self.topology.members.clone();
        let (started, failed) = (self.started.clone(), self.failed.clone());
        let active = self.active.clone();
        self.scheduler = Some(tokio::spawn(async move {
            let played = play(
                faults, ids, members, id, run_length, t0, sink, &started, &active,
            )
            .await;
            if let Err(e) = played {
                *failed.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
            }
        }));
    }

    /// Why the schedule stopped, if it did (an nftables change the kernel refused).
    pub fn dead(&self) -> Option<String> {
        if let Some(e) = self.capture.as_ref().and_then(|c| c.failure()) {
            // Watched like an events file: a capture that stopped (ENOSPC) would otherwise go
            // unnoticed until an events file failed too (the review's D10: 1.06 s later).
            return Some(format!("capture.pcap could not be written ({e})"));
        }
        self.failed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map(|e| format!("a link fault could not be applied: {e}"))
    }

    /// Starts the capture on the host end of every pair, following the MQTT connections to the
    /// broker's `port`.
    pub fn start_capture(&mut self, layout: &RunLayout, port: u16) -> Result<(), RunError> {
        let interfaces: Vec<String> = self
            .topology
            .members
            .iter()
            .map(|m| m.veth_host.clone())
            .collect();
        self.capture = Some(
            Capture::start(&layout.capture(), &interfaces, port)
                .map_err(io("start the capture"))?,
        );
        Ok(())
    }

    /// Subscribers the wire has seen get their SUBACK (for clients that report nothing).
    pub fn subscribed(&self) -> u32 {
        let Some(capture) = &self.capture else {
            return 0;
        };
        let seen = capture.subscribed();
        self.topology
            .members
            .iter()
            .filter(|m| seen.contains(&std::net::IpAddr::V4(m.addr)))
            .count() as u32
    }

    /// The kinds of the faults active now.
    pub fn active(&self) -> Vec<&'static str> {
        self.active
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .copied()
            .collect()
    }

    /// Fault occurrences started so far.
    pub fn started(&self) -> u32 {
        self.started.load(Ordering::Relaxed)
    }

    /// Stops the schedule and the capture and removes the network; fault occurrences started.
    pub async fn stop(mut self, problems: &mut Vec<String>) -> u32 {
        if let Some(task) = self.scheduler.take() {
            task.abort();
            if let Err(e) = task.await {
                if e.is_panic() {
                    problems.push("the link fault schedule panicked".into());
                }
            }
        }
        if let Some(e) = self.dead() {
            problems.push(e);
        }
        let started = self.started.load(Ordering::Relaxed);
        if let Some(capture) = self.capture.take() {
            if let Err(e) = capture.stop() {
                problems.push(format!("capture.pcap is damaged: {e}"));
            }
        }
        self.topology.remove();
        started
    }
}

/// The members a fault acts on.
fn targets(spec: &LinkFaultSpec, ids: &[String]) -> Vec<usize> {
    match &spec.schedule.target {
        Target::Client(glob) => (0..ids.len()).filter(|i| glob.matches(&ids[*i])).collect(),
        // `new` is refused for link faults when parsed: a link has no connection opening.
        Target::All | Target::New => (0..ids.len()).collect(),
    }
}

/// Every start and end of every fault within the run, in time order.
fn changes(faults: &[LinkFaultSpec], run_length: Duration) -> Vec<Change> {
    let mut out = Vec::new();
    for (index, f) in faults.iter().enumerate() {
        let mut n = 0;
        while let Some(at) = f.schedule.occurrence_start(n) {
            if at >= run_length {
                break;
            }
            out.push(Change {
                at,
                index,
                start: true,
            });
            if let Some(d) = f.schedule.duration {
                out.push(Change {
                    at: at + d,
                    index,
                    start: false,
                });
            }
            n += 1;
        }
    }
    // Ends before starts at the same moment, so back-to-back occurrences do not overlap.
    out.sort_by_key(|c| (c.at, c.start));
    out
}

#[allow(clippy::too_many_arguments)]
async fn play(
    faults: Vec<LinkFaultSpec>,
    ids: Vec<String>,
    members: Vec<Member>,
    id: RunId,
    run_length: Duration,
    t0: Instant,
    sink: EventSink,
    started: &AtomicU32,
    now_active: &Mutex<BTreeMap<usize, &'static str>>,
) -> Result<(), String> {
    let mut active: BTreeMap<usize, ()> = BTreeMap::new();
    for change in changes(&faults, run_length) {
        tokio::time::sleep_until(tokio::time::Instant::from_std(t0 + change.at)).await;
        if change.start {
            active.insert(change.index, ());
        } else {
            active.remove(&change.index);
        }
        let spec = &faults[change.index];
        // Rewrite the chains of every member this fault touches, from the faults now active.
        let touched = targets(spec, &ids);
        let scripts: Vec<(Option<Member>, String)> = touched
            .iter()
            .flat_map(|&i| {
                let on = |up: bool| -> Vec<LinkKind> {
                    active
                        .keys()
                        .map(|k| &faults[*k])
                        .filter(|f| targets(f, &ids).contains(&i))
                        .filter(|f| {
                            if up {
                                f.schedule.dir.up()
                            } else {
                                f.schedule.dir.down()
                            }
                        })
                        .map(|f| f.kind)
                        .collect()
                };
                let m = &members[i];
                [
                    (
                        None,
                        rules::chain_update(id, &rules::up_chain(m.index), &on(true)),
                    ),
                    (
                        Some(m.clone()),
                        rules::chain_update(id, DOWN_CHAIN, &on(false)),
                    ),
                ]
            })
            .collect();
        // An unplug is the carrier, not a rule: each touched member's cable is in exactly
        // when no active unplug targets it.
        let carriers: Vec<(Member, bool)> = if spec.kind == LinkKind::Unplug {
            touched
                .iter()
                .map(|&i| {
                    let pulled = active
                        .keys()
                        .map(|k| &faults[*k])
                        .any(|f| f.kind == LinkKind::Unplug && targets(f, &ids).contains(&i));
                    (members[i].clone(), !pulled)
                })
                .collect()
        } else {
            Vec::new()
        };
        tokio::task::spawn_blocking(move || {
            for (member, up) in carriers {
                rules::set_carrier(&member, up).map_err(|e| e.to_string())?;
            }
            for (member, script) in scripts {
                match member {
                    None => rules::apply_host(&script),
                    Some(m) => rules::apply_ns(&m, &script),
                }
                .map_err(|e| e.to_string())?;
            }
            Ok::<(), String>(())
        })
        .await
        .map_err(|e| e.to_string())??;
        let planned = change.at.as_micros() as u64;
        let lateness = t0
            .elapsed()
            .as_micros()
            .saturating_sub(change.at.as_micros()) as u64;
        let fault = change.index as u64 + 1;
        let kind = spec.kind.name().to_string();
        {
            let mut shown = now_active.lock().unwrap_or_else(|p| p.into_inner());
            if change.start {
                shown.insert(change.index, spec.kind.name());
            } else {
                shown.remove(&change.index);
            }
        }
        if change.start {
            started.fetch_add(1, Ordering::Relaxed);
            sink.emit(EventKind::FaultStarted(FaultStarted {
                fault,
                spec: spec.to_string(),
                kind,
                scheduled_us: Some(planned),
                lateness_us: Some(lateness),
            }));
        } else {
            sink.emit(EventKind::FaultEnded(FaultEnded {
                fault,
                kind,
                scheduled_us: Some(planned),
                lateness_us: Some(lateness),
            }));
        }
    }
    Ok(())
}
