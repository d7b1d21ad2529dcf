//! `refuse`: the broker is down or its port closed. New connection attempts fail at once while
//! the fault lasts; live connections are untouched.
//!
//! With target `all` or `new` the proxy closes its listening socket, so a connect gets a real
//! `ECONNREFUSED` (and connects already queued in the backlog get RST), then reopens it on the same
//! address when the fault ends. A client id is unknown before CONNECT, so with
//! `target=client=PATTERN` the proxy accepts, reads the CONNECT, and resets the connection if the id
//! matches — the closest a TCP-level proxy can come to refusing one client.

use super::{Fault, KindDescriptor};
use crate::spec::{Dir, FaultSpec, SpecError};
use std::sync::Arc;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refuse;

/// `refuse`: the broker down or its port closed: new connection attempts fail at once.
pub const DESCRIPTOR: KindDescriptor = KindDescriptor {
    name: "refuse",
    doc: "the broker down or its port closed: new connection attempts fail at once",
    keys: &[],
    instant: false,
    build: |_| Ok(Arc::new(Refuse)),
};

impl Fault for Refuse {
    fn descriptor(&self) -> &'static KindDescriptor {
        &DESCRIPTOR
    }

    fn check(&self, spec: &FaultSpec) -> Result<(), SpecError> {
        if spec.schedule.dir != Dir::Both {
            return Err(SpecError::at(
                "dir",
                "`refuse` acts on connection attempts, which have no direction; drop `dir`",
            ));
        }
        // `new` and `all` mean the same for refusals; both are accepted for symmetry.
        Ok(())
    }

    fn refuses_connections(&self) -> bool {
        true
    }
}
