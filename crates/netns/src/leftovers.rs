//! What namespace runs leave behind, and who owns it.
//!
//! A run writes an owner file, `/run/linecut/netns/<run id>`, holding its process id, before
//! it creates anything. Everything it creates carries the run id in its name. A run that ends
//! normally, by Ctrl-C or by SIGTERM removes its objects and the owner file; a run killed with
//! SIGKILL (or a machine that lost power, where `/run` is emptied anyway) leaves them, and
//! [`clean`] — run by every namespace run before it starts, and by `linecut doctor --clean` —
//! removes the objects of every run whose owner process is gone (or that has no owner file),
//! never those of a run still alive.

use crate::command::{run, IP};
use crate::names::RunId;
use crate::NetnsError;
use std::collections::BTreeSet;
use std::path::PathBuf;

/// Where owner files live.
pub const OWNER_DIR: &str = "/run/linecut/netns";

fn owner_file(id: RunId) -> PathBuf {
    PathBuf::from(OWNER_DIR).join(id.to_string())
}

/// Records this process as the owner of `id`.
pub fn claim(id: RunId) -> Result<(), NetnsError> {
    std::fs::create_dir_all(OWNER_DIR)
        .map_err(|e| NetnsError::Io(format!("create {OWNER_DIR}: {e}")))?;
    let path = owner_file(id);
    let pid = std::process::id() as i32;
    let owner = match start_time(pid) {
        Some(t) => format!("{pid} {t}"),
        None => pid.to_string(),
    };
    std::fs::write(&path, owner)
        .map_err(|e| NetnsError::Io(format!("write {}: {e}", path.display())))
}

/// When process `pid` started, in clock ticks since boot (field 22 of `/proc/PID/stat`): with
/// the pid, it names one process for good, where a pid alone is reused (`pid_max` is often
/// 32768).
fn start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces: count after it.
    let after = &stat[stat.rfind(')')? + 1..];
    after.split_whitespace().nth(19)?.parse().ok()
}

/// True when the run's owner process is still alive.
fn owner_alive(id: RunId) -> bool {
    let Ok(text) = std::fs::read_to_string(owner_file(id)) else {
        return false;
    };
    let mut words = text.split_whitespace();
    let Some(Ok(pid)) = words.next().map(str::parse::<i32>) else {
        return false;
    };
    // SAFETY: signal 0 only checks that the process exists.
    let exists = pid > 0 && (unsafe { libc::kill(pid, 0) } == 0 || errno() == libc::EPERM);
    // A recorded start time must match too: the pid of a dead owner may have been given to
    // another process since (the review's D8), whose leftovers would then never be removed.
    match words.next().and_then(|t| t.parse::<u64>().ok()) {
        Some(started) => exists && start_time(pid) == Some(started),
        None => exists,
    }
}

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// Every run id that has objects on this machine.
fn ids_present() -> Result<BTreeSet<RunId>, NetnsError> {
    let mut ids = BTreeSet::new();
    for line in run(IP, &["netns", "list"], None)?.lines() {
        if let Some(id) = line.split_whitespace().next().and_then(RunId::from_name) {
            ids.insert(id);
        }
    }
    for line in run(IP, &["-o", "link", "show"], None)?.lines() {
        // "3: lc1a2b3c4dbr: <...": the name is the second field, up to any '@'.
        let name = line.split_whitespace().nth(1).unwrap_or("");
        let name = name.trim_end_matches(':').split('@').next().unwrap_or("");
        if let Some(id) = RunId::from_name(name) {
            ids.insert(id);
        }
    }
    if let Ok(tables) = crate::netlink::Netlink::nftables().and_then(|mut s| s.tables()) {
        ids.extend(tables.iter().filter_map(|(_, name)| RunId::from_name(name)));
    }
    if let Ok(dir) = std::fs::read_dir(OWNER_DIR) {
        for entry in dir.flatten() {
            if let Some(id) = RunId::from_name(&entry.file_name().to_string_lossy()) {
                ids.insert(id);
            }
        }
    }
    Ok(ids)
}

/// Removes everything named after `id`, ignoring what is already gone.
pub fn remove_run(id: RunId) {
    let prefix = id.to_string();
    if let Ok(out) = run(IP, &["netns", "list"], None) {
        for name in out.lines().filter_map(|l| l.split_whitespace().next()) {
            if name.starts_with(&prefix) {
                // Deleting the namespace deletes its end of every pair, and so the host end.
                let _ = run(IP, &["netns", "delete", name], None);
            }
        }
    }
    if let Ok(out) = run(IP, &["-o", "link", "show"], None) {
        for line in out.lines() {
            let name = line.split_whitespace().nth(1).unwrap_or("");
            let name = name.trim_end_matches(':').split('@').next().unwrap_or("");
            if name.starts_with(&prefix) {
                let _ = run(IP, &["link", "delete", name], None);
            }
        }
    }
    // The namespaces' tables went with them; the host's are deleted here.
    let _ = crate::rules::remove_tables(id);
    let _ = std::fs::remove_file(owner_file(id));
}

/// The runs whose objects are still here although their owner is gone.
pub fn find() -> Result<Vec<RunId>, NetnsError> {
    Ok(ids_present()?
        .into_iter()
        .filter(|id| !owner_alive(*id))
        .collect())
}

/// Removes what dead runs left; returns their ids.
pub fn clean() -> Result<Vec<RunId>, NetnsError> {
    let dead = find()?;
    for id in &dead {
        remove_run(*id);
    }
    Ok(dead)
}
