//! `reset`: a NAT entry expired or a peer rebooted; both ends get RST on every live targeted
//! connection at the moment the fault starts. Detection is immediate on both sides.

use super::{check_instant, ConnAction, Fault, KindDescriptor};
use crate::spec::{FaultSpec, SpecError};
use std::sync::Arc;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reset;

/// `reset`: a NAT entry expired or a peer rebooted: RST to both ends of every live connection.
pub const DESCRIPTOR: KindDescriptor = KindDescriptor {
    name: "reset",
    doc: "a NAT entry expired or a peer rebooted: RST to both ends of every live connection",
    keys: &[],
    instant: true,
    build: |_| Ok(Arc::new(Reset)),
};

impl Fault for Reset {
    fn descriptor(&self) -> &'static KindDescriptor {
        &DESCRIPTOR
    }

    fn check(&self, spec: &FaultSpec) -> Result<(), SpecError> {
        check_instant(self.kind(), spec)
    }

    fn on_start(&self) -> Option<ConnAction> {
        Some(ConnAction::Reset)
    }
}
