//! linecut's fault-injecting, MQTT-aware TCP proxy.
//!
//! The proxy sits between MQTT clients and a broker. It forwards every byte, splits each
//! direction into MQTT control packets (with [`linecut_mqtt`]) and logs each packet with its fate,
//! and plays faults on a schedule or on request — so that an outage experiment can be scripted and
//! every endpoint's reaction read off one log.
//!
//! # Faults
//! A userspace proxy terminates TCP on both sides, so its kernel keeps acknowledging whatever the
//! proxy reads. Each fault is therefore built to look, to each endpoint, like the network event it
//! is named after:
//!
//! | kind | real-world event | what the endpoints see |
//! |---|---|---|
//! | `cut` | cable pulled, later restored | nothing in the cut direction(s); bytes, FIN and RST sent meanwhile are held (bounded; back-pressure past `hold`) and delivered in order when the cut ends, unless `give_up` resets the connection first. New connections: the handshake completes with the proxy, nothing reaches the broker until the cut ends. |
//! | `blackhole` | middlebox silently eating traffic | whole MQTT packets discarded (`mode=raw`: bytes); the connection stays open |
//! | `reset` | NAT entry expired, peer rebooted | RST on both ends of every live targeted connection |
//! | `close` | orderly shutdown by a middlebox | FIN on both ends of every live targeted connection |
//! | `refuse` | broker down, port closed | new connects refused (listener closed); live connections untouched |
//! | `latency` | slow or long path | each unit delivered `delay ± jitter` after it was read, order kept |
//! | `bandwidth` | thin link | throughput capped at `rate` bytes per second |
//! | `idle_timeout` | NAT or firewall forgetting an idle flow | on the path for the whole run: a connection silent both ways for longer than `timeout` is forgotten, and nothing sent on it after crosses (`then=reset`: its sender's leg is reset too) |
//!
//! Every fault has a direction, a target (all, new, or a client-id glob), a start and a duration,
//! and optional repetition; see [`spec`] for the `KIND[:key=value,...]` spelling and [`faults`] for
//! the contract a new kind must honour.
//!
//! # Shape
//! [`Proxy::run`] takes a bound listener and a shutdown future (the mini-redis shape), so that
//! callers bind `127.0.0.1:0` and learn the port before anything runs. Module map: `server.rs`
//! (accept loop, connection setup, shutdown), `pump.rs` (per-direction forwarding), `board.rs`
//! (active faults), `scheduler.rs` (the proxy's faults on `timer.rs`, the precise timer both modes' schedules run on), `conn.rs` (live connections), `wirelog.rs` (packet
//! events), `control.rs` (HTTP API).

// The fault vocabulary: pure, needed by anything that reads or writes fault specs.
pub mod faults;
pub mod spec;

pub use spec::{FaultSpec, SpecError};

// The proxy itself (tokio, axum): behind the default `runtime` feature, so a crate that only
// speaks about faults (the scenario format) does not compile a network stack.
#[cfg(feature = "runtime")]
mod board;
#[cfg(feature = "runtime")]
mod conn;
#[cfg(feature = "runtime")]
mod control;
#[cfg(feature = "runtime")]
mod control_listener;
#[cfg(feature = "runtime")]
mod pump;
#[cfg(feature = "runtime")]
mod runtime;
#[cfg(feature = "runtime")]
mod scheduler;
#[cfg(feature = "runtime")]
mod server;
#[cfg(feature = "runtime")]
pub mod timer;
#[cfg(feature = "runtime")]
mod wirelog;

#[cfg(feature = "runtime")]
pub use board::{FaultInfo, Origin, Status};
#[cfg(feature = "runtime")]
pub use conn::ConnHandle;
#[cfg(feature = "runtime")]
pub use runtime::*;
#[cfg(feature = "runtime")]
pub use wirelog::{WireLog, DEFAULT_PUBLISH_LIMIT};
