//! Helpers shared by the command-line tests: the binary under test and fresh directories.

use std::process::Command;

/// The `linecut` binary this package builds.
pub fn linecut() -> Command {
    Command::new(env!("CARGO_BIN_EXE_linecut"))
}

/// An empty directory of its own for a test (`suite` and `name` keep tests apart).
pub use linecut_testkit::temp_dir;
