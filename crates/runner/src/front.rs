//! The seam between the run and the network its subscribers reach the broker over.
//!
//! A kind of network is one implementation of [`Front`] and one row of [`Stack::start`]'s table
//! ([`crate::stack`]): the proxy ([`crate::stack::ProxyTask`]) and namespace mode's links
//! ([`crate::links::LinkFront`]). The run asks the front, never the mode: where subscribers
//! connect, which namespaces they run in, how faults are played, what is active, whether it is
//! still alive, what `meta.json` records of it, and how it stops. A third kind (say, a NAT in
//! front of the links) touches its own implementation and that table, and the analyzer's
//! `Wire`, nothing else.
//!
//! [`Stack::start`]: crate::stack::Stack::start

use crate::RunError;
use linecut_events::run_dir::NetworkRecord;
use linecut_events::{EventLog, EventSink, RunLayout, Source};
use linecut_proxy::FaultSpec;
use linecut_scenario::{LinkFaultSpec, Scenario};
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::time::{Duration, Instant};

/// The run's faults as drawn for this run (random phases applied), by the front that plays
/// them; a scenario has only the kind its mode plays (validate refuses the other).
#[derive(Debug, Clone, Default)]
pub(crate) struct Faults {
    pub proxy: Vec<FaultSpec>,
    pub links: Vec<LinkFaultSpec>,
}

/// What stands between the subscribers and the broker.
pub(crate) trait Front {
    /// Where a subscriber connects, given where the broker listens for its protocol.
    fn subscriber_address(&self, broker: &str) -> String;

    /// The network namespace each subscriber runs in, by subscriber, when there are any.
    fn namespaces(&self) -> Option<Vec<String>>;

    /// How subscribers reach the broker, for messages ("the proxy").
    fn path(&self) -> &'static str;

    /// Subscribers whose SUBACK this front saw go down to them, when it watches the wire.
    fn wire_subscribed(&self) -> Option<u32> {
        None
    }

    /// Subscribers connected through this front now, when it holds their connections.
    fn wire_connected(&self) -> Option<u32> {
        None
    }

    /// Plays the faults from `t0`, for the subscribers with `ids`, within `run_length`.
    fn schedule(&mut self, faults: &Faults, ids: Vec<String>, run_length: Duration, t0: Instant);

    /// The kinds of the faults active now.
    fn active_faults(&self) -> Vec<&'static str>;

    /// Fault occurrences started so far.
    fn faults_started(&self) -> u32;

    /// A part of the front that died while the run went on, named.
    fn dead(&self) -> Option<String>;

    /// What `meta.json` records of the network (None for the proxy: loopback and a port).
    fn network_record(&self, _scenario: &Scenario, _broker: &str) -> Option<NetworkRecord> {
        None
    }

    /// Stops the front and everything it made; what did not stop cleanly.
    fn stop(self: Box<Self>) -> Pin<Box<dyn Future<Output = Vec<String>>>>;
}

/// The events file a front writes: its path in the run directory, its source and writer.
pub(crate) struct FrontLog {
    pub path: fn(&RunLayout) -> PathBuf,
    pub source: Source,
    pub writer: &'static str,
}

impl FrontLog {
    pub fn create(&self, layout: &RunLayout) -> Result<(EventLog, EventSink), RunError> {
        Ok(EventLog::create(
            &(self.path)(layout),
            self.source,
            self.writer,
            crate::VERSION,
        )?)
    }
}
