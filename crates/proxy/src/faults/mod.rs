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
//! consuming its keys from [`Keys`], and the trait impl; add it to [`build`] and to the table in the
//! crate docs; add a test in `tests/faults.rs` that shows its semantics from both endpoints.

mod bandwidth;
mod blackhole;
mod close;
mod cut;
mod latency;
mod refuse;
mod reset;

pub use bandwidth::Bandwidth;
pub use blackhole::{Blackhole, BlackholeMode};
pub use close::Close;
pub use cut::Cut;
pub use latency::Latency;
pub use refuse::Refuse;
pub use reset::Reset;

use crate::spec::{FaultSpec, Keys, SpecError};
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Names accepted as `KIND` in a spec, in documentation order.
pub const KINDS: &[&str] = &[
    "cut",
    "blackhole",
    "reset",
    "close",
    "refuse",
    "latency",
    "bandwidth",
];

/// Builds the fault named `kind`, consuming its own keys.
pub fn build(kind: &str, keys: &mut Keys) -> Result<Arc<dyn Fault>, SpecError> {
    Ok(match kind {
        "cut" => Arc::new(Cut::from_keys(keys)?),
        "blackhole" => Arc::new(Blackhole::from_keys(keys)?),
        "reset" => Arc::new(Reset),
        "close" => Arc::new(Close),
        "refuse" => Arc::new(Refuse),
        "latency" => Arc::new(Latency::from_keys(keys)?),
        "bandwidth" => Arc::new(Bandwidth::from_keys(keys)?),
        other => {
            return Err(SpecError::new(format!(
                "unknown fault kind `{other}`; kinds are: {}",
                KINDS.join(", ")
            )))
        }
    })
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
    /// The `KIND` of the spec.
    fn kind(&self) -> &'static str;

    /// Kind-specific keys, for error messages listing what is allowed.
    fn keys(&self) -> &'static [&'static str] {
        &[]
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
        false
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
}

/// Shared check for instant faults: a duration or repetition window means nothing to them
/// except as spacing for `every`.
fn check_instant(kind: &str, spec: &FaultSpec) -> Result<(), SpecError> {
    if spec.duration.is_some() && spec.repeat.is_none() {
        return Err(SpecError::new(format!(
            "`{kind}` acts once when it starts, so `for` has no meaning; use `at` (and `every`/`count` to repeat)"
        )));
    }
    Ok(())
}
