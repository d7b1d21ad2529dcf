//! linecut's value types and their rules, with no runtime (no tokio, no rumqttc, no IO).
//!
//! This is the leaf crate: the scenario checker, the CLI, the runner and the agents all depend
//! on it, so a rule written here is the one rule every door applies.
//!
//! Modules:
//! - [`text`]: the one check for user text that becomes a file name, a configuration line or a
//!   command argument.

pub mod text;

pub use text::{check_text, TextError, TextUse};
