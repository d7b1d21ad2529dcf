//! `reset`: a NAT entry expired or a peer rebooted; both ends get RST on every live targeted
//! connection at the moment the fault starts. Detection is immediate on both sides.

use super::{check_instant, ConnAction, Fault};
use crate::spec::{FaultSpec, SpecError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reset;

impl Fault for Reset {
    fn kind(&self) -> &'static str {
        "reset"
    }

    fn check(&self, spec: &FaultSpec) -> Result<(), SpecError> {
        check_instant(self.kind(), spec)
    }

    fn is_instant(&self) -> bool {
        true
    }

    fn on_start(&self) -> Option<ConnAction> {
        Some(ConnAction::Reset)
    }
}
