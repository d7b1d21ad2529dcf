//! Faults of the broker itself, played by the runner in either network mode (the proxy and the
//! links fault the path; these fault the far end): `restart` stops the broker linecut started
//! and starts it again on the same address, as a crash-free restart or an upgrade would.

use std::time::Duration;

/// A broker fault of a scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BrokerFault {
    /// Stop the broker at `at` (SIGTERM: an orderly shutdown) and start it again `down` later.
    Restart { at: Duration, down: Duration },
}

impl BrokerFault {
    /// The kinds, as a scenario names them.
    pub const KINDS: [&'static str; 1] = ["restart"];

    pub fn kind(&self) -> &'static str {
        match self {
            BrokerFault::Restart { .. } => "restart",
        }
    }

    /// When it starts, from the experiment start.
    pub fn at(&self) -> Duration {
        match self {
            BrokerFault::Restart { at, .. } => *at,
        }
    }

    /// How long the broker stays down (until it is started again; it then needs its own
    /// start-up time, which the fault's end records).
    pub fn down(&self) -> Duration {
        match self {
            BrokerFault::Restart { down, .. } => *down,
        }
    }

    /// The fault as a scenario writes it, for events and reports: `restart:at=10s,for=2s`.
    pub fn spec(&self) -> String {
        format!(
            "{}:at={},for={}",
            self.kind(),
            crate::schedule::fmt_duration(self.at()),
            crate::schedule::fmt_duration(self.down())
        )
    }
}
