//! Fault kinds: one file each, behind the small [`Fault`] trait.
//!
//! # Writing a fault
//! A fault is a value implementing [`Fault`]. The proxy's per-direction pumps ask every *active*
//! fault that targets a connection and direction what to do, at four points; a fault overrides
//! only the hooks it needs (the defaults do nothing):
//!
//! | hook | called | used by |
//! |---|---|---|
//! | [`Fault::on_read`] | for each unit (whole MQTT packet or raw chunk) as it is read | `blackhole` |
//! | [`Fault::on_write`] / [`Fault::after_write`] | before and after each unit is written to the other endpoint | `cut`, `latency`, `bandwidth` |
//! | [`Fault::on_start`] | once per occurrence, for each live targeted connection | `reset`, `close` |
//! | [`Fault::refuses_connections`] | while active, by the accept loop | `refuse` |
//! | [`Fault::idle_timeout`] | by each read, against the connection's idle time | `idle_timeout` |
//!
//! The contract every fault must honour:
//! 1. **Look like a network event, not like a proxy.** Both endpoints must see what they would see
//!    if the event happened on a real path (see the table in the crate docs). A fault that makes
//!    the proxy's own behaviour visible (an unexpected FIN, bytes out of order) is a bug.
//! 2. **Never lose bytes you were not meant to lose.** Only `on_read` may drop, and only whole
//!    units; anything held by `on_write` is delivered in order once the fault ends, or discarded
//!    together with the connection (and logged as `discarded`).
//! 3. **Keep order.** Units are written strictly in the order they were read; delays are computed
//!    from the read time, so they do not accumulate.
//! 4. **Keep end-of-stream in the stream.** FIN and RST travel through the same queue as data:
//!    a close that happens during a cut arrives after the cut, behind the data sent before it.
//! 5. **Be cheap when idle.** Hooks run on the hot path for every unit while a fault is active;
//!    they must not block or allocate.
//! 6. **Validate in `build`, not at run time.** Parameters are checked when the spec is parsed
//!    (`check` sees the common keys too), so a running proxy never meets an impossible fault.
//!
//! To add a kind: create `faults/<kind>.rs` with a parameters struct, a `from_keys` constructor
//! consuming its keys from [`Keys`], the trait impl, and a `DESCRIPTOR` ([`KindDescriptor`]:
//! name, keys with their types and docs, instant or not, constructor); add the descriptor to
//! [`KINDS`] and a row to the table in the crate docs; add a test in `tests/proxy/faults.rs` that
//! shows its semantics from both endpoints. Everything else — the scenario's `[[fault]]` table,
//! the JSON Schema, the sweep's typing of axis values, error messages listing the keys — reads
//! the descriptor.

mod bandwidth;
mod blackhole;
mod close;
mod cut;
mod idle_timeout;
mod latency;
mod refuse;
mod reset;

pub use bandwidth::Bandwidth;
pub use blackhole::{Blackhole, BlackholeMode};
pub use close::Close;
pub use cut::Cut;
pub use idle_timeout::IdleTimeout;
pub use latency::Latency;
pub use refuse::Refuse;
pub use reset::Reset;

use crate::spec::{FaultSpec, Keys, SpecError};
pub use crate::spec::{KeyDef, KeyType};
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Everything the rest of linecut needs to know about a fault kind without running it.
#[derive(Debug, Clone, Copy)]
pub struct KindDescriptor {
    /// The `KIND` of a spec.
    pub name: &'static str,
    pub doc: &'static str,
    /// The kind's own keys (the common ones are [`crate::spec::COMMON_KEYS`]).
    pub keys: &'static [KeyDef],
    /// Acts once when it starts (its occurrences have no duration).
    pub instant: bool,
    /// Builds the fault, consuming its own keys.
    pub build: fn(&mut Keys) -> Result<Arc<dyn Fault>, SpecError>,
}

/// Every fault kind, in documentation order: the one registry.
pub const KINDS: &[&KindDescriptor] = &[
    &cut::DESCRIPTOR,
    &blackhole::DESCRIPTOR,
    &reset::DESCRIPTOR,
    &close::DESCRIPTOR,
    &refuse::DESCRIPTOR,
    &latency::DESCRIPTOR,
    &bandwidth::DESCRIPTOR,
    &idle_timeout::DESCRIPTOR,
];

/// The kind named `name`.
pub fn descriptor(name: &str) -> Option<&'static KindDescriptor> {
    KINDS.iter().copied().find(|d| d.name == name)
}

/// The names of every kind, for messages.
pub fn kind_names() -> Vec<&'static str> {
    KINDS.iter().map(|d| d.name).collect()
}

/// Builds the fault named `kind`, consuming its own keys.
pub fn build(kind: &str, keys: &mut Keys) -> Result<Arc<dyn Fault>, SpecError> {
    let d = descriptor(kind).ok_or_else(|| {
        SpecError::at(
            "kind",
            format!(
                "unknown fault kind `{kind}`; kinds are: {}",
                kind_names().join(", ")
            ),
        )
    })?;
    (d.build)(keys)
}

/// What to do with a unit that was just read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadEffect {
    Pass,
    /// Discard this unit (a whole MQTT packet, or a raw chunk of a non-MQTT stream).
    DropPackets,
    /// Discard bytes as read, ignoring packet boundaries: the stream stops being parseable.
    DropBytes,
}

/// What to do with the unit at the head of a direction's queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteEffect {
    Go,
    /// Keep it (and everything behind it) until the fault set changes; reset the connection if
    /// it has been held longer than `give_up`.
    Hold {
        give_up: Option<Duration>,
    },
    /// Not before this instant.
    WaitUntil(Instant),
}

/// The unit a write hook is asked about.
#[derive(Debug, Clone, Copy)]
pub struct WriteContext {
    /// When the unit was read from its source.
    pub read_at: Instant,
    pub len: usize,
    /// Uniform in [-1, 1], fixed per unit, so that jitter is drawn once per unit.
    pub jitter_unit: f64,
    pub now: Instant,
}

/// Per-direction pacing state shared by the write hooks of that direction.
#[derive(Debug, Clone, Copy, Default)]
pub struct Pacing {
    pub next_free: Option<Instant>,
}

/// An action a fault takes on a whole connection when it starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnAction {
    /// RST to both endpoints.
    Reset,
    /// FIN to both endpoints.
    Close,
}

/// One fault kind's behaviour. See the module docs for the contract.
pub trait Fault: fmt::Debug + Send + Sync + 'static {
    /// What kind of fault this is.
    fn descriptor(&self) -> &'static KindDescriptor;

    /// The `KIND` of the spec.
    fn kind(&self) -> &'static str {
        self.descriptor().name
    }

    /// Kind-specific parameters in canonical spelling.
    fn params(&self) -> Vec<(&'static str, String)> {
        Vec::new()
    }

    /// Checks the parameters against the common keys of the spec.
    fn check(&self, _spec: &FaultSpec) -> Result<(), SpecError> {
        Ok(())
    }

    /// True for faults that act once at start (their occurrences have no duration).
    fn is_instant(&self) -> bool {
        self.descriptor().instant
    }

    fn on_read(&self) -> ReadEffect {
        ReadEffect::Pass
    }

    fn on_write(&self, _unit: &WriteContext, _pacing: &mut Pacing) -> WriteEffect {
        WriteEffect::Go
    }

    fn after_write(&self, _bytes: usize, _now: Instant, _pacing: &mut Pacing) {}

    /// Largest single write while active (pacing faults write in slices).
    fn max_write(&self) -> Option<usize> {
        None
    }

    /// Bytes a direction may queue while this fault holds it (back-pressure beyond that).
    fn hold_limit(&self) -> Option<usize> {
        None
    }

    fn on_start(&self) -> Option<ConnAction> {
        None
    }

    fn refuses_connections(&self) -> bool {
        false
    }

    /// A middlebox's idle timer: a connection silent both ways for longer than this is
    /// forgotten, and what arrives on it after is held for ever (and, with `Forget::Reset`,
    /// its sender's leg reset).
    fn idle_timeout(&self) -> Option<(std::time::Duration, linecut_model::Forget)> {
        None
    }
}

/// Shared check for instant faults: a duration or repetition window means nothing to them
/// except as spacing for `every`.
fn check_instant(kind: &str, spec: &FaultSpec) -> Result<(), SpecError> {
    if spec.schedule.duration.is_some() && spec.schedule.repeat.is_none() {
        return Err(SpecError::at("for", format!(
            "`{kind}` acts once when it starts, so `for` has no meaning; use `at` (and `every`/`count` to repeat)"
        )));
    }
    Ok(())
}
