//! `idle_timeout`: a NAT or stateful firewall that forgets a connection idle for `timeout`.
//!
//! On the path for the whole run. Each connection's idle time is counted from the last unit
//! the proxy read from either side; a read after more than `timeout` of silence finds the
//! flow forgotten (from `timeout` after that last unit), and from then on nothing crosses
//! either way: every unit, FIN or reset is held and never delivered, as a middlebox that
//! forgot a flow drops what arrives on it. With `then=reset` the side that sent it is also
//! reset (its leg only: the other side learns when it sends, or never), as a firewall
//! answering with RST does. The proxy terminates TCP, so the endpoints' kernels see their
//! data acknowledged (by the proxy) where a real middlebox would leave it unacknowledged:
//! namespace mode shows the retransmissions. `then=remap` needs a real NAT (namespace mode).

use super::{Fault, KindDescriptor};
use crate::spec::{FaultSpec, Keys, SpecError};
use linecut_model::Forget;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdleTimeout {
    pub timeout: Duration,
    pub then: Forget,
}

impl IdleTimeout {
    pub fn from_keys(keys: &mut Keys) -> Result<Self, SpecError> {
        let (timeout_s, then) = linecut_model::take_idle_timeout(keys)?;
        if then == Forget::Remap {
            return Err(SpecError::at(
                "then",
                "`then=remap` gives the device's flow a new port on a real NAT; the proxy terminates TCP and has no port to remap: use drop or reset, or network.mode = \"namespace\"",
            ));
        }
        Ok(IdleTimeout {
            timeout: Duration::from_secs(u64::from(timeout_s)),
            then,
        })
    }
}

/// `idle_timeout`: a middlebox that forgets a connection idle for `timeout`, then drops (or resets) what arrives on it.
pub const DESCRIPTOR: KindDescriptor = KindDescriptor {
    name: "idle_timeout",
    doc: "a NAT or firewall on the path for the whole run that forgets a connection idle for `timeout`, then drops (or resets) whatever either side sends on it",
    keys: &linecut_model::IDLE_TIMEOUT_KEYS,
    instant: false,
    build: |keys| Ok(Arc::new(IdleTimeout::from_keys(keys)?)),
};

impl Fault for IdleTimeout {
    fn descriptor(&self) -> &'static KindDescriptor {
        &DESCRIPTOR
    }

    fn params(&self) -> Vec<(&'static str, String)> {
        let mut out = vec![("timeout", format!("{}s", self.timeout.as_secs()))];
        if self.then != Forget::default() {
            out.push(("then", self.then.name().to_string()));
        }
        out
    }

    fn check(&self, spec: &FaultSpec) -> Result<(), SpecError> {
        linecut_model::check_middlebox_schedule(&spec.schedule)
    }

    fn idle_timeout(&self) -> Option<(Duration, Forget)> {
        Some((self.timeout, self.then))
    }
}
