//! Namespace mode's front: the run's network (namespaces, pairs, bridge), the capture on the
//! host end of every pair, and the link fault schedule that turns `[[fault]]`s into nftables
//! rules at their times.
//!
//! The schedule runs on the proxy's precise timer ([`linecut_proxy::timer`]), the one both
//! modes use. Each change of a fault's state is applied by the run's [`LinkRules`]: one
//! nftables transaction for the host side of every pair it touches (what the clients send), one
//! in each touched namespace (what they receive), and for an `unplug` the carrier of the pair's
//! host end first, all as netlink messages on sockets opened at set-up. It is stamped when the
//! last member's rules are in (tens of microseconds after the first's): that stamp is the
//! fault's `fault_started`/`fault_ended` time in `link.jsonl`, with its lateness against the
//! schedule, as the proxy stamps its own faults.

use crate::front::{Faults, Front, FrontLog};
use crate::stack::{Logs, RunningBroker, Stack};
use crate::{io, RunError};
use linecut_events::run_dir::{NetworkMember, NetworkRecord};
use linecut_events::{Applied, EventKind, EventSink, FaultEnded, FaultStarted, RunLayout, Source};
use linecut_model::{LinkFaultSpec, LinkKind, Target};
use linecut_netns::capture::Capture;
use linecut_netns::impair::Impairments;
use linecut_netns::rules::{LinkRules, MemberFaults, Middlebox};
use linecut_netns::wire::{Wire, WirePort};
use linecut_netns::{RunId, Topology};
use linecut_proxy::timer::{Stage, Timer};
use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The network, the capture and the schedule of a namespace run.
pub(crate) struct LinkFront {
    pub topology: Topology,
    /// The rules, installed; handed to the schedule when it starts.
    rules: Option<LinkRules>,
    capture: Option<Capture>,
    scheduler: Option<Timer>,
    /// Occurrences started so far.
    started: Arc<AtomicU32>,
    /// Why the schedule stopped, when a change could not be applied.
    failed: Arc<Mutex<Option<String>>>,
    /// The kinds of the faults active now, by fault index (for the progress line).
    active: Arc<Mutex<BTreeMap<usize, &'static str>>>,
    /// Where `link.jsonl`'s events go, once the events files are open.
    sink: Option<EventSink>,
    /// linecut's wire, when weak-link faults need it, with its seed; handed to the schedule.
    wire: Option<(Wire, u64)>,
    /// The wire's seed, for meta.json.
    wire_seed: Option<u64>,
    /// Each wired member's port on the wire, by member index.
    wire_ports: Vec<Option<usize>>,
}

/// The link events file.
const LINK_LOG: FrontLog = FrontLog {
    path: RunLayout::link_events,
    source: Source::Link,
    writer: "linecut-link",
};

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
        let s = &scenario.subscriber.settings;
        let ids = linecut_agent::fleet_ids(&s.client_id, s.count);
        // The members a weak-link fault targets are on linecut's wire for the whole run.
        let wired: Vec<usize> = scenario
            .link_faults
            .iter()
            .filter(|f| f.kind.is_impairment())
            .flat_map(|f| targets(f, &ids))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let network = |e: linecut_netns::NetnsError| RunError::Network(e.to_string());
        let mut topology = Topology::create_wired(
            RunId::fresh(),
            scenario.subscriber.settings.count,
            &scenario.network.tcp,
            &wired,
        )
        .map_err(network)?;
        let middlebox = middlebox(scenario, &ids);
        let rules = LinkRules::install(&topology, middlebox.as_ref()).map_err(network)?;
        let mut wire_ports = vec![None; topology.members.len()];
        let ports: Vec<WirePort> = topology
            .take_taps()
            .into_iter()
            .enumerate()
            .map(|(port, (member, tap))| {
                wire_ports[member] = Some(port);
                WirePort {
                    veth_host: topology.members[member].veth_host.clone(),
                    tap,
                }
            })
            .collect();
        let wire = if ports.is_empty() {
            None
        } else {
            let seed = scenario.seed.unwrap_or_else(crate::phase::fresh_seed);
            Some((Wire::start(ports, seed).map_err(network)?, seed))
        };
        Ok(LinkFront {
            topology,
            rules: Some(rules),
            capture: None,
            scheduler: None,
            started: Arc::new(AtomicU32::new(0)),
            failed: Arc::new(Mutex::new(None)),
            active: Arc::new(Mutex::new(BTreeMap::new())),
            sink: None,
            wire_seed: wire.as_ref().map(|(_, seed)| *seed),
            wire,
            wire_ports,
        })
    }

    /// A namespace-mode stack: the network first, the broker on its bridge, the capture on
    /// the broker's port, then the events files.
    pub fn stack(
        scenario: &linecut_scenario::Scenario,
        program: Option<&crate::brokers::Prepared>,
        layout: &RunLayout,
    ) -> Result<Stack, RunError> {
        let mut links = LinkFront::start(scenario)?;
        let ip = std::net::IpAddr::V4(links.topology.host_addr);
        let broker = RunningBroker::start(&scenario.broker, program, layout, Some(ip))?;
        let port = broker
            .address(scenario.subscriber.settings.protocol)
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or(0);
        links.start_capture(layout, port)?;
        let (logs, sink) = Logs::create(layout, &LINK_LOG, scenario)?;
        links.sink = Some(sink);
        Ok(Stack {
            front: Box::new(links),
            logs,
            broker,
        })
    }

    /// Plays `faults` from `t0` on the members whose client ids the faults target; events go
    /// to `link.jsonl`. Fault `n` of the scenario's link faults is fault `n + 1` in the events.
    fn schedule_links(
        &mut self,
        faults: Vec<LinkFaultSpec>,
        ids: Vec<String>,
        run_length: Duration,
        t0: Instant,
    ) {
        let (Some(rules), Some(sink)) = (self.rules.take(), self.sink.clone()) else {
            // A run schedules its faults once, after its events files are open.
            return;
        };
        let schedules: Vec<_> = faults.iter().map(|f| f.schedule.clone()).collect();
        let stage = LinkStage {
            wire: self.wire.take().map(|(wire, _)| wire),
            wire_ports: self.wire_ports.clone(),
            targets: faults.iter().map(|f| targets(f, &ids)).collect(),
            ids,
            faults,
            rules,
            run_length,
            t0,
            sink,
            active: BTreeSet::new(),
            started: self.started.clone(),
            shown: self.active.clone(),
            failed: self.failed.clone(),
        };
        let timer = Timer::start("linecut-links", stage);
        for (index, schedule) in schedules.into_iter().enumerate() {
            timer.handle().add(index as u64 + 1, schedule, false, t0);
        }
        self.scheduler = Some(timer);
    }

    /// Why the schedule stopped, if it did (an nftables change the kernel refused).
    fn dead_part(&self) -> Option<String> {
        if let Some(e) = self.capture.as_ref().and_then(|c| c.failure()) {
            // Watched like an events file: a capture that stopped (ENOSPC) would otherwise go
            // unnoticed until an events file failed too (the review's D10: 1.06 s later).
            return Some(format!("capture.pcap could not be written ({e})"));
        }
        if self
            .scheduler
            .as_ref()
            .is_some_and(|t| !t.handle().is_alive())
        {
            return Some("the link fault schedule stopped (its thread panicked)".into());
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
            Capture::start(&layout.capture(), &interfaces, port, interfaces.len())
                .map_err(io("start the capture"))?,
        );
        Ok(())
    }

    /// Stops the schedule and the capture and removes the network; fault occurrences started.
    fn stop_all(mut self, problems: &mut Vec<String>) -> u32 {
        if let Some(e) = self.dead_part() {
            problems.push(e);
        }
        // Stops the timer's thread once the change it may be applying is in (and with it
        // the wire it holds).
        drop(self.scheduler.take());
        if let Some((wire, _)) = self.wire.take() {
            if let Err(e) = wire.stop() {
                problems.push(e);
            }
        }
        let started = self.started.load(Ordering::Relaxed);
        if let Some(capture) = self.capture.take() {
            match capture.stop() {
                Err(e) => problems.push(format!("capture.pcap is damaged: {e}")),
                // A capture with holes cannot back the report's claims about the wire.
                Ok(w) if w.dropped > 0 => problems.push(format!(
                    "capture.pcap lacks {} frame(s) the kernel could not hand over in time",
                    w.dropped
                )),
                Ok(_) => {}
            }
        }
        self.topology.remove();
        // The last events of the schedule are in; link.jsonl can close.
        drop(self.sink.take());
        started
    }
}

impl Front for LinkFront {
    /// Subscribers connect to the broker itself, on the bridge.
    fn subscriber_address(&self, broker: &str) -> String {
        broker.to_string()
    }

    fn namespaces(&self) -> Option<Vec<String>> {
        Some(
            self.topology
                .members
                .iter()
                .map(|m| m.netns.clone())
                .collect(),
        )
    }

    fn path(&self) -> &'static str {
        "their namespaces' links"
    }

    /// Subscribers the wire has seen get their SUBACK (for clients that report nothing).
    fn wire_subscribed(&self) -> Option<u32> {
        let Some(capture) = &self.capture else {
            return Some(0);
        };
        let seen = capture.subscribed();
        Some(
            self.topology
                .members
                .iter()
                .filter(|m| seen.contains(&std::net::IpAddr::V4(m.addr)))
                .count() as u32,
        )
    }

    fn schedule(&mut self, faults: &Faults, ids: Vec<String>, run_length: Duration, t0: Instant) {
        self.schedule_links(faults.links.clone(), ids, run_length, t0);
    }

    fn active_faults(&self) -> Vec<&'static str> {
        self.active
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .copied()
            .collect()
    }

    fn faults_started(&self) -> u32 {
        self.started.load(Ordering::Relaxed)
    }

    fn dead(&self) -> Option<String> {
        self.dead_part()
    }

    fn network_record(
        &self,
        scenario: &linecut_scenario::Scenario,
        broker: &str,
    ) -> Option<NetworkRecord> {
        let s = &scenario.subscriber.settings;
        let ids = linecut_agent::fleet_ids(&s.client_id, s.count);
        Some(NetworkRecord {
            mode: linecut_model::NetworkMode::Namespace.to_string(),
            run_id: self.topology.id.to_string(),
            broker_addr: broker.to_string(),
            broker_port: broker
                .rsplit(':')
                .next()
                .and_then(|p| p.parse().ok())
                .unwrap_or(0),
            subscribers: self
                .topology
                .members
                .iter()
                .zip(ids)
                .map(|(m, id)| NetworkMember {
                    client_id: id,
                    netns: m.netns.clone(),
                    addr: m.addr.to_string(),
                })
                .collect(),
            tcp: scenario.network.tcp.named().into_iter().collect(),
            wire_seed: self.wire_seed,
        })
    }

    fn stop(self: Box<Self>) -> Pin<Box<dyn Future<Output = Vec<String>>>> {
        let mut problems = Vec::new();
        (*self).stop_all(&mut problems);
        Box::pin(std::future::ready(problems))
    }
}

/// The run's idle-timeout middlebox, if a fault puts one on the path: the members behind it
/// are known before anything connects, from the client ids the fleet will use.
fn middlebox(scenario: &linecut_scenario::Scenario, ids: &[String]) -> Option<Middlebox> {
    scenario.link_faults.iter().find_map(|f| match f.kind {
        LinkKind::IdleTimeout { timeout_s, then } => Some(Middlebox {
            timeout_s,
            then,
            members: targets(f, ids),
        }),
        _ => None,
    })
}

/// The members a fault acts on.
fn targets(spec: &LinkFaultSpec, ids: &[String]) -> Vec<usize> {
    match &spec.schedule.target {
        Target::Client(glob) => (0..ids.len()).filter(|i| glob.matches(&ids[*i])).collect(),
        // `new` is refused for link faults when parsed: a link has no connection opening.
        Target::All | Target::New => (0..ids.len()).collect(),
    }
}

/// Link faults on the timer: each step rewrites the chains of the members the fault targets,
/// from the faults active then, and is stamped when the kernel has the rules; a weak-link
/// fault changes what the wire does to the member's frames from then on.
struct LinkStage {
    wire: Option<Wire>,
    /// Each member's port on the wire, if it is wired.
    wire_ports: Vec<Option<usize>>,
    faults: Vec<LinkFaultSpec>,
    /// Per fault, the members it acts on.
    targets: Vec<Vec<usize>>,
    /// Each member's client id.
    ids: Vec<String>,
    rules: LinkRules,
    /// Occurrences planned at or past the run's end are not played.
    run_length: Duration,
    t0: Instant,
    sink: EventSink,
    /// The faults active now, by index.
    active: BTreeSet<usize>,
    started: Arc<AtomicU32>,
    /// The active faults' kinds, for the progress line.
    shown: Arc<Mutex<BTreeMap<usize, &'static str>>>,
    /// Why a change could not be applied; nothing is played after one.
    failed: Arc<Mutex<Option<String>>>,
}

impl Stage for LinkStage {
    fn start(&mut self, id: u64, planned: Instant) -> bool {
        if planned.saturating_duration_since(self.t0) >= self.run_length {
            return false;
        }
        self.change(id as usize - 1, true, planned)
    }

    fn end(&mut self, id: u64, planned: Instant) {
        self.change(id as usize - 1, false, planned);
    }

    fn finish(&mut self, _id: u64) {}
}

impl LinkStage {
    /// Fault `index` starts or ends: applied, stamped and told. False once a change failed.
    fn change(&mut self, index: usize, start: bool, planned: Instant) -> bool {
        // Not held while applying: the run's watch reads it every 250 ms. Only this stage ever
        // sets it.
        let failed = || self.failed.lock().unwrap_or_else(|p| p.into_inner());
        if failed().is_some() {
            return false;
        }
        if start {
            self.active.insert(index);
        } else {
            self.active.remove(&index);
        }
        let (applied, per_member) = match self.apply(index) {
            Ok(applied) => applied,
            Err(e) => {
                *self.failed.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
                return false;
            }
        };
        let spec = &self.faults[index];
        let planned_us = planned.saturating_duration_since(self.t0).as_micros() as u64;
        let lateness = applied.saturating_duration_since(planned).as_micros() as u64;
        let (fault, kind) = (index as u64 + 1, spec.kind.name().to_string());
        {
            let mut shown = self.shown.lock().unwrap_or_else(|p| p.into_inner());
            if start {
                shown.insert(index, spec.kind.name());
            } else {
                shown.remove(&index);
            }
        }
        if start {
            self.started.fetch_add(1, Ordering::Relaxed);
            self.sink.emit(EventKind::FaultStarted(FaultStarted {
                fault,
                spec: spec.to_string(),
                kind,
                scheduled_us: Some(planned_us),
                lateness_us: Some(lateness),
                applied: per_member,
            }));
        } else {
            self.sink.emit(EventKind::FaultEnded(FaultEnded {
                fault,
                kind,
                scheduled_us: Some(planned_us),
                lateness_us: Some(lateness),
                applied: per_member,
            }));
        }
        true
    }

    /// Rewrites the rules of every member fault `index` touches, from the faults now active;
    /// when the last of them had its rules in, and when each did (by client id, on the events'
    /// clock).
    fn apply(&mut self, index: usize) -> Result<(Instant, Vec<Applied>), String> {
        let faults = &self.faults;
        let active: Vec<(&LinkFaultSpec, &Vec<usize>)> = self
            .active
            .iter()
            .map(|&k| (&faults[k], &self.targets[k]))
            .collect();
        let changed: Vec<MemberFaults> = self.targets[index]
            .iter()
            .map(|&i| {
                let on = |up: bool| -> Vec<LinkKind> {
                    active
                        .iter()
                        .filter(|(f, t)| {
                            t.contains(&i)
                                && if up {
                                    f.schedule.dir.up()
                                } else {
                                    f.schedule.dir.down()
                                }
                        })
                        .map(|(f, _)| f.kind)
                        .collect()
                };
                MemberFaults {
                    member: i,
                    up: on(true),
                    down: on(false),
                }
            })
            .collect();
        let stamps = self.rules.apply(&changed).map_err(|e| e.to_string())?;
        if let Some(wire) = &self.wire {
            for c in &changed {
                if let Some(port) = self.wire_ports[c.member] {
                    wire.set(port, Impairments::of(&c.up), Impairments::of(&c.down));
                }
            }
        }
        // The events' clock is the wall clock; an Instant is placed on it by its distance from
        // now.
        let (now, now_us) = (Instant::now(), linecut_events::now_us());
        let applied = changed
            .iter()
            .zip(&stamps)
            .map(|(c, at)| Applied {
                client: self.ids[c.member].clone(),
                ts_us: now_us - now.saturating_duration_since(*at).as_micros() as i64,
            })
            .collect();
        Ok((stamps.into_iter().max().unwrap_or(now), applied))
    }
}
