//! What namespace runs leave behind, and who owns it.
//!
//! A run writes an owner file, `/run/linecut/netns/<run id>`, holding its process id, before
//! it creates anything. Everything it creates carries the run id in its name. A run that ends
//! normally, by Ctrl-C or by SIGTERM removes its objects and the owner file; a run killed with
//! SIGKILL (or a machine that lost power, where `/run` is emptied anyway) leaves them, and
//! [`clean`] — run by every namespace run before it starts, and by `linecut doctor --clean` —
//! removes the objects of every run whose owner process is gone (or that has no owner file),
//! never those of a run still alive.

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
        .map_err(|e| NetnsError::system(format!("create {OWNER_DIR}"), e))?;
    let path = owner_file(id);
    let pid = std::process::id() as i32;
    let owner = match start_time(pid) {
        Some(t) => format!("{pid} {t}"),
        None => pid.to_string(),
    };
    // Written whole or not at all: a clean that read the file between its creation and its
    // write saw no owner, took the run for dead and removed what it was creating (a doctor's
    // probe lost its namespace file mid `ip netns add`, once in ten probes against a clean
    // in a loop).
    // The partial file's name is no run's: a clean listing the directory meanwhile must not
    // take it for an owner-less run (which it then removes as the run creates it).
    let partial = PathBuf::from(OWNER_DIR).join(format!(".claim-{id}"));
    std::fs::write(&partial, owner)
        .and_then(|()| std::fs::rename(&partial, &path))
        .map_err(|e| NetnsError::system(format!("write {}", path.display()), e))
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

/// Where named network namespaces are mounted (as `ip netns` keeps them).
const NETNS_DIR: &str = "/run/netns";

/// The named network namespaces on this machine.
fn netns_names() -> Vec<String> {
    std::fs::read_dir(NETNS_DIR)
        .map(|dir| {
            dir.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Deletes a named namespace as `ip netns delete` does: its mount detached, its file removed.
/// The namespace goes when nothing else holds it, and its links with it.
fn delete_netns(name: &str) {
    let path = format!("{NETNS_DIR}/{name}");
    if let Ok(c) = std::ffi::CString::new(path.clone()) {
        // SAFETY: a NUL-terminated path; a detach of a mount that is not there fails harmlessly.
        unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
    }
    let _ = std::fs::remove_file(&path);
}

/// Every run id that has objects on this machine.
fn ids_present() -> Result<BTreeSet<RunId>, NetnsError> {
    let mut ids = BTreeSet::new();
    ids.extend(netns_names().iter().filter_map(|n| RunId::from_name(n)));
    ids.extend(
        crate::netlink::link_names()
            .iter()
            .filter_map(|n| RunId::from_name(n)),
    );
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
    for name in netns_names() {
        if name.starts_with(&prefix) {
            // Deleting the namespace deletes its end of every pair, and so the host end.
            delete_netns(&name);
        }
    }
    // What is left on the host: the bridge, and a host end whose namespace was never made.
    let left: Vec<String> = crate::netlink::link_names()
        .into_iter()
        .filter(|n| n.starts_with(&prefix))
        .collect();
    if !left.is_empty() {
        if let Ok(mut route) = crate::netlink::Netlink::route() {
            for name in left {
                let _ = route.delete_link(&name);
            }
        }
    }
    // The namespaces' tables went with them; the host's are deleted here.
    let _ = crate::rules::remove_tables(id);
    let _ = std::fs::remove_file(owner_file(id));
    let _ = std::fs::remove_file(PathBuf::from(OWNER_DIR).join(format!(".claim-{id}")));
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
