//! Integration tests of the proxy over real sockets on 127.0.0.1:0.
//!
//! One test binary, split by topic (ripgrep's layout): `faults` shows each fault's semantics from
//! both endpoints, `targeting` the direction/target filters, `schedule` timing, `logging` what the
//! event log says about real MQTT sessions, `control` the HTTP API, `lifecycle` errors, shutdown
//! and leaks. `util` builds a proxy whose upstream is a socket the test holds, so a test sees
//! exactly what each endpoint receives.

mod control;
mod faults;
mod lifecycle;
mod logging;
mod schedule;
mod targeting;
mod util;
