//! `close`: a middlebox shuts the connection down in an orderly way; both ends get FIN at the
//! moment the fault starts, and nothing more is forwarded on those connections.

use super::{check_instant, ConnAction, Fault};
use crate::spec::{FaultSpec, SpecError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Close;

impl Fault for Close {
    fn kind(&self) -> &'static str {
        "close"
    }

    fn check(&self, spec: &FaultSpec) -> Result<(), SpecError> {
        check_instant(self.kind(), spec)
    }

    fn is_instant(&self) -> bool {
        true
    }

    fn on_start(&self) -> Option<ConnAction> {
        Some(ConnAction::Close)
    }
}
