//! `close`: a middlebox shuts the connection down in an orderly way; both ends get FIN at the
//! moment the fault starts, and nothing more is forwarded on those connections.

use super::{check_instant, ConnAction, Fault, KindDescriptor};
use crate::spec::{FaultSpec, SpecError};
use std::sync::Arc;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Close;

/// `close`: an orderly shutdown by a middlebox: FIN to both ends of every live connection.
pub const DESCRIPTOR: KindDescriptor = KindDescriptor {
    name: "close",
    doc: "an orderly shutdown by a middlebox: FIN to both ends of every live connection",
    keys: &[],
    instant: true,
    build: |_| Ok(Arc::new(Close)),
};

impl Fault for Close {
    fn descriptor(&self) -> &'static KindDescriptor {
        &DESCRIPTOR
    }

    fn check(&self, spec: &FaultSpec) -> Result<(), SpecError> {
        check_instant(self.kind(), spec)
    }

    fn on_start(&self) -> Option<ConnAction> {
        Some(ConnAction::Close)
    }
}
