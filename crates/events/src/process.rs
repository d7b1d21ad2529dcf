//! Child processes linecut starts — mosquitto, clients under test, a sweep's runs — die with
//! it, however it ends.
//!
//! An orderly stop signals them itself. For everything else (SIGKILL, a crash, power to the
//! parent cut) the kernel does it: each child asks, between fork and exec, to be sent SIGKILL
//! when its parent goes (`PR_SET_PDEATHSIG`), and exits at once if the parent is already gone.
//! The kernel sends that signal when the *thread* that started the child ends, so children are
//! started from threads that live as long as the run (linecut starts them from its main thread).
//! A child that starts grandchildren (`sh -c ...`) gets its own process group, so an orderly
//! stop reaches all of them; a grandchild of a parent that was SIGKILLed is outside the
//! kernel's reach and is not stopped.

use std::io;

/// The hook to run in a child between fork and exec (`CommandExt::pre_exec`): tie the child's
/// life to linecut's and, with `own_group`, make it the leader of a new process group.
pub fn tie_to_parent(own_group: bool) -> impl FnMut() -> io::Result<()> + Send + Sync + 'static {
    let parent = std::process::id() as libc::pid_t;
    move || {
        // SAFETY: between fork and exec only async-signal-safe calls are made: setpgid, prctl,
        // getppid and _exit touch no memory shared with the parent.
        unsafe {
            if own_group && libc::setpgid(0, 0) != 0 {
                return Err(io::Error::last_os_error());
            }
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(io::Error::last_os_error());
            }
            // The parent died before the request took effect: the kernel will not tell us.
            if libc::getppid() != parent {
                libc::_exit(1);
            }
        }
        Ok(())
    }
}
