//! Helpers shared by the command-line tests: the binary under test and fresh directories.

use std::path::PathBuf;
use std::process::Command;

/// The `linecut` binary this package builds.
pub fn linecut() -> Command {
    Command::new(env!("CARGO_BIN_EXE_linecut"))
}

/// An empty directory of its own for a test (`suite` and `name` keep tests apart).
pub fn temp_dir(suite: &str, name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("linecut-{suite}-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
