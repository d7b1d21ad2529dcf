//! Another project's broker (aedes, amqtt) as a child process: whatever the caller says to
//! start, on a free port of the address it is given, its output as the run's broker log, a
//! readiness wait, and a guaranteed stop.
//!
//! What to start is the caller's ([`Launch`]): this module knows no broker by name, so a new
//! one is a row in the runner's table, not a change here. The stop is SIGINT (amqtt's clean
//! shutdown; aedes's launcher closes on either), then SIGKILL after a grace period; the
//! process dies with linecut in any case (`tie_to_parent`).

use crate::{free_port, BrokerError};
use linecut_events::process::tie_to_parent;
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The broker's output (stdout and stderr), in the run directory.
pub const PROGRAM_LOG_FILE: &str = "broker.log";
/// How long a broker program gets to accept connections.
const READY_WITHIN: Duration = Duration::from_secs(20);
/// How long it gets to exit after SIGINT before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(5);
/// Ports tried when another process takes the free port before the broker binds it.
const PORT_ATTEMPTS: u32 = 3;

/// A configuration file to write into the run directory before the broker starts: its name and
/// its text.
pub type ConfigFile = (String, String);

/// The arguments (and a configuration file, if any) for a broker listening on an address.
pub type Setup = Box<dyn Fn(SocketAddr) -> (Vec<String>, Option<ConfigFile>) + Send>;

/// What to start for a broker listening on a given address.
pub struct Launch {
    /// The broker's name, for messages (`aedes`).
    pub name: String,
    pub program: PathBuf,
    /// The arguments, and a configuration file to write into the run directory first (its
    /// name and text), for the address it is to listen on.
    pub setup: Setup,
    /// Environment beside linecut's own.
    pub env: Vec<(String, PathBuf)>,
    /// For reports (`aedes 1.2.0 (Node v20.20.2)`).
    pub description: String,
}

/// A running broker program; dropping it stops the process.
#[derive(Debug)]
pub struct ProgramBroker {
    child: Option<Child>,
    addr: SocketAddr,
    description: String,
}

fn io(action: impl Into<String>) -> impl FnOnce(std::io::Error) -> BrokerError {
    let action = action.into();
    move |source| BrokerError::Io { action, source }
}

/// The last lines of the log, for an error.
fn tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(5)..].join(" | ")
}

impl ProgramBroker {
    /// Starts the broker on a free port of `ip`, its output into `dir`'s broker log, and
    /// returns once it accepts connections.
    pub fn start_on(launch: &Launch, dir: &Path, ip: IpAddr) -> Result<ProgramBroker, BrokerError> {
        let log_path = dir.join(PROGRAM_LOG_FILE);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let addr = free_port(SocketAddr::new(ip, 0))?;
            let (args, config) = (launch.setup)(addr);
            if let Some((name, text)) = config {
                let path = dir.join(name);
                std::fs::write(&path, text).map_err(io(format!("write {}", path.display())))?;
            }
            // A failed attempt's lines are not this broker's.
            let log = std::fs::File::create(&log_path)
                .map_err(io(format!("create {}", log_path.display())))?;
            let err = log
                .try_clone()
                .map_err(io(format!("open {}", log_path.display())))?;
            let mut command = Command::new(&launch.program);
            command
                .args(&args)
                .envs(launch.env.iter().map(|(k, v)| (k, v.as_os_str())))
                .current_dir(dir)
                .stdin(Stdio::null())
                .stdout(log)
                .stderr(err);
            // SAFETY: the hooks only make async-signal-safe calls.
            unsafe {
                command.pre_exec(tie_to_parent(true));
                // A linecut started in the background by a shell ignores SIGINT, and children
                // inherit that: Python then never turns SIGINT into its clean shutdown (amqtt's
                // stop), so the stop signal gets its default back here.
                command.pre_exec(|| {
                    libc::signal(libc::SIGINT, libc::SIG_DFL);
                    Ok(())
                });
            }
            let child = command
                .spawn()
                .map_err(io(format!("start {}", launch.program.display())))?;
            let mut broker = ProgramBroker {
                child: Some(child),
                addr,
                description: launch.description.clone(),
            };
            match broker.wait_ready(&launch.name, &log_path) {
                Ok(()) => return Ok(broker),
                // Another process took the port between our probe and its bind.
                Err(BrokerError::ProgramDied { log, .. })
                    if attempt < PORT_ATTEMPTS
                        && log.to_lowercase().contains("address")
                        && log.to_lowercase().contains("in use") => {}
                Err(e) => return Err(e),
            }
        }
    }

    fn wait_ready(&mut self, name: &str, log: &Path) -> Result<(), BrokerError> {
        let deadline = Instant::now() + READY_WITHIN;
        loop {
            let child = self.child.as_mut().expect("running");
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                return Err(BrokerError::ProgramDied {
                    name: name.to_string(),
                    status: status.to_string(),
                    log: tail(log),
                });
            }
            if TcpStream::connect_timeout(&self.addr, Duration::from_millis(200)).is_ok() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(BrokerError::ProgramNotReady {
                    name: name.to_string(),
                    addr: self.addr,
                    waited: READY_WITHIN,
                    log: tail(log),
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn describe(&self) -> &str {
        &self.description
    }

    /// Whether it is still running (it has not exited on its own).
    pub fn running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Stops it: SIGINT, then SIGKILL after a grace period; reaps it. Returns whether it
    /// stopped within the grace period.
    pub fn stop(&mut self) -> bool {
        let Some(mut child) = self.child.take() else {
            return true;
        };
        if let Ok(Some(_)) = child.try_wait() {
            return true;
        }
        // SAFETY: kill has no memory preconditions; the pid is our own unreaped child.
        unsafe {
            libc::kill(child.id() as libc::pid_t, libc::SIGINT);
        }
        let deadline = Instant::now() + STOP_GRACE;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        false
    }
}

impl Drop for ProgramBroker {
    fn drop(&mut self) {
        self.stop();
    }
}
