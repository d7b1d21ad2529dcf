//! What the command-line benchmarks share: running a child and reading its peak memory.
//!
//! Linux records a process's peak resident memory (`ru_maxrss`) across `exec`: the image it
//! replaced counts too, and a child spawned from a large benchmark process starts as a copy of
//! it (or, spawned with vfork, shares it). A benchmark that generated its input in-process and
//! then spawned the tool under test would report its own size as the tool's. So inputs are
//! written by a separate process ([`generate_in_child`]), and the benchmark process stays
//! small while it measures.

// Each benchmark uses the part it needs.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

/// The variable that makes a benchmark binary write one input and exit, instead of running.
pub const GENERATE: &str = "LINECUT_BENCH_GENERATE";

/// Runs a command, returning wall seconds and its peak resident memory in MiB.
pub fn measure(mut command: Command) -> (f64, f64) {
    let started = Instant::now();
    let child = command
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: an all-zero rusage is valid, and wait4 fills it for our own child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waits for the child we just spawned; the pointers are valid for the call.
    let rc = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(rc, pid, "wait4");
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "{command:?} failed: status {status}"
    );
    std::mem::forget(child);
    (
        started.elapsed().as_secs_f64(),
        usage.ru_maxrss as f64 / 1024.0,
    )
}

/// Writes `path` in a child: this same binary, told by [`GENERATE`] to call its generator with
/// `what` (the benchmark's own words for what to write, without a `|`) and exit.
pub fn generate_in_child(path: &Path, what: &str) {
    let status = Command::new(std::env::current_exe().unwrap())
        .env(GENERATE, format!("{what}|{}", path.display()))
        .status()
        .unwrap();
    assert!(status.success(), "generating {} failed", path.display());
}

/// In the child [`generate_in_child`] started: what and where to write, else None.
pub fn generation_request() -> Option<(String, std::path::PathBuf)> {
    let request = std::env::var(GENERATE).ok()?;
    let (what, path) = request.split_once('|')?;
    Some((what.to_string(), path.into()))
}
