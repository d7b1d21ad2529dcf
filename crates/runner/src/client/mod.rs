//! Clients under test: programs the runner starts, watches and stops instead of its own agent.
//!
//! [`prepare`] runs before anything else of a run (no directory is created if it fails): it
//! finds the program, checks that it can run (paho-mqtt's version in the chosen Python,
//! mosquitto_sub's version) and describes the client for the reports. [`ClientFleet::start`]
//! then starts one process per subscriber, connected through the proxy, never through a shell.
//! Each process's stdout is read line by line into the subscriber's events file ([`output`]),
//! its stderr goes to a file in the run directory, and its exit is reported: an exit before the
//! run ends makes the run incomplete, with the reason.
//!
//! How the client is *measured* does not depend on any of this: the proxy sees its connections,
//! pings and reconnects on the wire, so a client that prints nothing is measured too.

pub mod output;
pub mod programs;

use crate::installs::{clients_dirs, command_output, find_program};
use crate::RunError;
use linecut_events::process::tie_to_parent;
use linecut_events::run_dir::{ClientScript, CLIENT_SCRIPT_DIR_ENV};
use linecut_events::{now_us, ClientExited, DisconnectCause, Disconnected, EventKind, EventSink};
use linecut_model::{ClientFamily, ClientIdentity, Protocol, ReconnectPolicy};
use linecut_scenario::{client as spec, ClientKind, Scenario};
use output::{Line, MessageDefaults, OutputFormat};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// linecut's paho-mqtt subscriber. A run writes it next to itself (or, in a sweep, into one
/// directory every run of the sweep shares: [`CLIENT_SCRIPT_DIR_ENV`]) and records its SHA-256 in
/// `meta.json`, so every run names the exact script it ran.
pub const PAHO_SCRIPT: &str = include_str!("../../clients/paho_subscriber.py");
const PAHO_SCRIPT_NAME: &str = "paho_subscriber.py";

/// The longest line of a client's output linecut reads (longer ones are skipped and counted as
/// not understood).
const MAX_LINE: usize = 64 * 1024;
/// How long a client gets to exit after SIGTERM before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// A script linecut carries for a client, and the file name it is written under.
#[derive(Debug, Clone, Copy)]
pub struct ScriptFile {
    pub name: &'static str,
    pub content: &'static str,
}

/// A client kind, checked and ready to start.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// The kind's scenario name (for its exit event).
    kind: &'static str,
    /// The script linecut installs for it ([`Prepared::install_script`]), if it runs one.
    script_file: Option<ScriptFile>,
    /// A compiled program: its path and the SHA-256 of the source it was built from.
    built_from: Option<(PathBuf, String)>,
    program: PathBuf,
    /// The script the program runs, once installed ([`Prepared::install_script`]).
    script: Option<PathBuf>,
    /// Environment the program gets beside linecut's own.
    env: Vec<(&'static str, PathBuf)>,
    /// How its stdout is read.
    format: OutputFormat,
    /// For `meta.json` and the reports; names the library so detection bands apply.
    pub description: String,
    /// The library as a family and version, for `meta.json`.
    pub identity: ClientIdentity,
}

impl Prepared {
    /// Writes the script this client runs where it will run from: the directory
    /// [`CLIENT_SCRIPT_DIR_ENV`] names, or `run_dir`. An existing copy with the same content is used
    /// as it is. Returns what `meta.json` records: the script and its SHA-256, or for a compiled
    /// program its path and the SHA-256 of the source it was built from; `None` for clients
    /// linecut carries no program for.
    pub fn install_script(&mut self, run_dir: &Path) -> Result<Option<ClientScript>, RunError> {
        let Some(file) = self.script_file else {
            return Ok(self.built_from.as_ref().map(|(path, sha256)| ClientScript {
                path: path.display().to_string(),
                sha256: sha256.clone(),
            }));
        };
        let dir = std::env::var_os(CLIENT_SCRIPT_DIR_ENV)
            .map_or_else(|| run_dir.to_path_buf(), PathBuf::from);
        std::fs::create_dir_all(&dir).map_err(crate::io(format!("create {}", dir.display())))?;
        let path = dir.join(file.name);
        if std::fs::read(&path).ok().as_deref() != Some(file.content.as_bytes()) {
            linecut_events::run_dir::write_atomically(&path, file.content.as_bytes())?;
        }
        self.script = Some(path.clone());
        Ok(Some(ClientScript {
            path: path.display().to_string(),
            sha256: programs::sha256_hex(file.content),
        }))
    }
}

fn client_error(message: impl Into<String>) -> RunError {
    RunError::Client(message.into())
}

/// The Pythons of the paho-mqtt virtual environments `scripts/setup-clients` makes.
fn paho_python_candidates(series: &str) -> Vec<PathBuf> {
    clients_dirs()
        .into_iter()
        .map(|d| d.join(format!("paho-{series}")).join("bin").join("python"))
        .collect()
}

/// Checks the scenario's client before anything is started. `None` for linecut's own agent.
pub fn prepare(scenario: &Scenario) -> Result<Option<Prepared>, RunError> {
    let client = &scenario.subscriber.client;
    let kind = client.name();
    match client {
        ClientKind::Rumqttc => Ok(None),
        ClientKind::Program(program) => programs::prepare(scenario, *program).map(Some),
        ClientKind::PahoPython { paho, python } => {
            let candidates = match python {
                Some(p) => vec![p.clone()],
                None => paho_python_candidates(paho),
            };
            let Some(python) = candidates.iter().find(|p| p.is_file()) else {
                return Err(client_error(match python {
                    Some(p) => format!("subscriber.python: {} does not exist", p.display()),
                    None => format!(
                        "no Python with paho-mqtt {paho} found (looked for {}); run scripts/setup-clients, or set subscriber.python",
                        candidates.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
                    ),
                }));
            };
            let version = command_output(
                python,
                &[
                    "-c",
                    "import paho.mqtt, sys; print(paho.mqtt.__version__, sys.version.split()[0])",
                ],
                &[],
            )
            .map_err(|e| {
                client_error(format!("{} cannot import paho-mqtt: {e}", python.display()))
            })?;
            let mut words = version.split_whitespace();
            let (paho_version, python_version) =
                (words.next().unwrap_or(""), words.next().unwrap_or("?"));
            if !(paho_version == paho || paho_version.starts_with(&format!("{paho}."))) {
                return Err(client_error(format!(
                    "{} has paho-mqtt {paho_version}, but the scenario pins {paho}",
                    python.display()
                )));
            }
            Ok(Some(Prepared {
                script: None,
                kind,
                script_file: Some(ScriptFile {
                    name: PAHO_SCRIPT_NAME,
                    content: PAHO_SCRIPT,
                }),
                built_from: None,
                env: Vec::new(),
                program: python.clone(),
                format: OutputFormat::Events,
                description: format!(
                    "paho-mqtt {paho_version} (Python {python_version}, linecut's {PAHO_SCRIPT_NAME}, loop_forever)"
                ),
                identity: ClientIdentity {
                    family: ClientFamily::Paho,
                    version: Some(paho_version.to_string()),
                },
            }))
        }
        ClientKind::MosquittoSub => {
            let program = find_program("mosquitto_sub").ok_or_else(|| {
                client_error(
                    "mosquitto_sub is not installed; install it with `apt-get install mosquitto-clients`",
                )
            })?;
            // `--help` prints "mosquitto_sub version X running on libmosquitto Y." and exits 1.
            let help = std::process::Command::new(&program)
                .arg("--help")
                .stdin(Stdio::null())
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_default();
            let version = help
                .lines()
                .find_map(|l| l.strip_prefix("mosquitto_sub version "))
                .map(|v| v.trim_end_matches('.').replace(" running on ", ", "))
                .unwrap_or_else(|| "(version unknown)".into());
            Ok(Some(Prepared {
                script: None,
                kind,
                script_file: None,
                built_from: None,
                env: Vec::new(),
                program,
                format: OutputFormat::MosquittoSubVerbose,
                identity: ClientIdentity {
                    family: ClientFamily::Libmosquitto,
                    version: version
                        .split(',')
                        .next()
                        .filter(|v| !v.starts_with('('))
                        .map(str::to_string),
                },
                description: format!("mosquitto_sub {version}"),
            }))
        }
        ClientKind::Command {
            argv,
            pattern,
            library,
        } => {
            let program = find_program(&argv[0]).ok_or_else(|| {
                client_error(format!(
                    "subscriber.command: `{}` is not an executable file{}",
                    argv[0],
                    if argv[0].contains('/') {
                        ""
                    } else {
                        " on PATH"
                    }
                ))
            })?;
            let format = match pattern {
                Some(p) => OutputFormat::Pattern(
                    spec::compile_pattern(p)
                        .map_err(|e| client_error(format!("subscriber.pattern: {e}")))?,
                ),
                None => OutputFormat::Events,
            };
            let name = program
                .file_name()
                .map_or_else(|| argv[0].clone(), |n| n.to_string_lossy().into_owned());
            Ok(Some(Prepared {
                script: None,
                kind,
                script_file: None,
                built_from: None,
                env: Vec::new(),
                program,
                format,
                description: match library {
                    Some(l) => format!("{l} (command `{name}`)"),
                    None => format!("command `{name}`"),
                },
                // The user names the library in words; its family is read from them once here.
                identity: ClientIdentity {
                    family: library
                        .as_deref()
                        .map_or(ClientFamily::Other, ClientFamily::of),
                    version: None,
                },
            }))
        }
    }
}

/// The arguments for one client, after the program.
fn arguments(
    scenario: &Scenario,
    proxy: SocketAddr,
    id: &str,
    script: Option<&Path>,
) -> Result<Vec<String>, RunError> {
    let s = &scenario.subscriber.settings;
    let host = proxy.ip().to_string();
    let port = proxy.port().to_string();
    let mqtt = match s.protocol {
        Protocol::V311 => "3.1.1",
        Protocol::V5 => "5",
    };
    let first = &s.topics[0];
    Ok(match &scenario.subscriber.client {
        ClientKind::Rumqttc => Vec::new(),
        ClientKind::PahoPython { .. } => {
            let (min, max) = match s.reconnect {
                ReconnectPolicy::Immediate => (Duration::ZERO, Duration::ZERO),
                ReconnectPolicy::Fixed(d) => (d, d),
                ReconnectPolicy::Exponential { min, max, .. } => (min, max),
            };
            let script = script.ok_or_else(|| client_error("the paho script was not installed"))?;
            let mut args = vec![script.to_string_lossy().into_owned()];
            args.extend(programs::contract_arguments(
                scenario,
                &host,
                proxy.port(),
                id,
            ));
            // paho's own: the back-off it is given, and the device's TCP_USER_TIMEOUT.
            args.push(format!("--reconnect-min={}", min.as_secs_f64()));
            args.push(format!("--reconnect-max={}", max.as_secs_f64()));
            if let Some(ms) = scenario.network.tcp.user_timeout_ms {
                args.push(format!("--tcp-user-timeout-ms={ms}"));
            }
            args
        }
        ClientKind::Program(_) => {
            // A script runs under its runtime; a compiled program takes the arguments alone.
            let mut args: Vec<String> = script
                .map(|p| p.to_string_lossy().into_owned())
                .into_iter()
                .collect();
            args.extend(programs::contract_arguments(
                scenario,
                &host,
                proxy.port(),
                id,
            ));
            args
        }
        ClientKind::MosquittoSub => {
            let mut args = vec![
                "-h".into(),
                host,
                "-p".into(),
                port,
                "-i".into(),
                id.into(),
                "-k".into(),
                s.keepalive_s.to_string(),
                "-V".into(),
                match s.protocol {
                    Protocol::V311 => "mqttv311".into(),
                    Protocol::V5 => "mqttv5".into(),
                },
                "-v".into(),
            ];
            if !s.clean_session {
                // `-c`: "disable clean session", i.e. keep the session.
                args.push("-c".into());
            }
            // MQTT 5 only (validated). `-x` is mosquitto_sub's own flag for the expiry; the
            // receive maximum is a CONNECT property set with `-D`.
            if let Some(e) = s.session_expiry_s {
                args.extend(["-x".into(), e.to_string()]);
            }
            if let Some(r) = s.receive_maximum {
                args.extend([
                    "-D".into(),
                    "connect".into(),
                    "receive-maximum".into(),
                    r.to_string(),
                ]);
            }
            if let Some(w) = &s.will {
                let (topic, payload) = w.for_client(id);
                args.extend([
                    "--will-topic".into(),
                    topic,
                    "--will-payload".into(),
                    payload,
                    "--will-qos".into(),
                    w.qos.to_string(),
                ]);
                if w.retain {
                    args.push("--will-retain".into());
                }
                if let Some(d) = w.delay_s {
                    // MQTT 5 only (checked): a will property, as mosquitto_sub's `-D` sets it.
                    args.extend([
                        "-D".into(),
                        "will".into(),
                        "will-delay-interval".into(),
                        d.to_string(),
                    ]);
                }
            }
            // mosquitto_sub takes one QoS for all its topics.
            args.push("-q".into());
            args.push(
                s.topics
                    .iter()
                    .map(|t| t.qos)
                    .max()
                    .unwrap_or(0)
                    .to_string(),
            );
            for t in &s.topics {
                args.push("-t".into());
                args.push(t.name.clone());
            }
            args
        }
        ClientKind::Command { argv, .. } => {
            let will = s.will.as_ref().map(|w| w.for_client(id));
            let value = |name: &str| -> Option<String> {
                Some(match name {
                    "host" => host.clone(),
                    "port" => port.clone(),
                    "client_id" => id.to_string(),
                    "keepalive" => s.keepalive_s.to_string(),
                    "topic" => first.name.clone(),
                    "qos" => first.qos.to_string(),
                    "clean_session" => u8::from(s.clean_session).to_string(),
                    "mqtt" => mqtt.to_string(),
                    "will_topic" => will.as_ref().map_or_else(String::new, |w| w.0.clone()),
                    "will_payload" => will.as_ref().map_or_else(String::new, |w| w.1.clone()),
                    "will_qos" => s.will.as_ref().map_or(0, |w| w.qos).to_string(),
                    "will_retain" => {
                        u8::from(s.will.as_ref().is_some_and(|w| w.retain)).to_string()
                    }
                    "will_delay" => s
                        .will
                        .as_ref()
                        .and_then(|w| w.delay_s)
                        .unwrap_or(0)
                        .to_string(),
                    "session_expiry" => s.session_expiry_s.unwrap_or(0).to_string(),
                    "receive_maximum" => s.receive_maximum.unwrap_or(u16::MAX).to_string(),
                    _ => return None,
                })
            };
            argv[1..]
                .iter()
                .map(|a| spec::expand(a, value))
                .collect::<Result<_, _>>()
                .map_err(|e| client_error(format!("subscriber.command: {e}")))?
        }
    })
}

/// The topic of a delivery whose line does not name one: the publisher's first topic that the
/// subscription covers (with several, an output pattern needs a `topic` group to tell them apart).
fn default_topic(scenario: &Scenario) -> String {
    let filters = &scenario.subscriber.settings.topics;
    scenario
        .publisher
        .topics
        .iter()
        .find(|t| {
            filters
                .iter()
                .any(|f| linecut_analyzer::topic_matches(&f.name, t))
        })
        .unwrap_or(&filters[0].name)
        .clone()
}

/// What one client's stdout held.
#[derive(Debug, Default)]
struct OutputCounts {
    lines: AtomicU64,
    unmatched: AtomicU64,
    messages: AtomicU64,
    /// Disconnects the client reported itself (other than being told to stop).
    disconnects: AtomicU64,
    /// The client reported a SUBACK.
    subscribed: std::sync::atomic::AtomicBool,
    first_unmatched: Mutex<Option<String>>,
}

impl OutputCounts {
    /// Counts a line that was not understood, keeping the first one's text for the report.
    fn not_understood(&self, text: impl FnOnce() -> String) {
        self.unmatched.fetch_add(1, Ordering::Relaxed);
        let mut first = self
            .first_unmatched
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        first.get_or_insert_with(text);
    }
}

/// One running client process.
struct Running {
    id: String,
    pid: Option<u32>,
    counts: Arc<OutputCounts>,
    reader: JoinHandle<()>,
    waiter: JoinHandle<Option<ExitStatus>>,
    /// Set when the process ended before the run asked it to.
    ended_early: Arc<std::sync::atomic::AtomicBool>,
}

/// A client that ended before the run did.
#[derive(Debug)]
pub struct EarlyExit {
    pub client: String,
    /// How it ended, e.g. `exited with status 1`.
    pub status: String,
}

/// The client processes of a run.
pub struct ClientFleet {
    kind: &'static str,
    clients: Vec<Running>,
    stopping: Arc<std::sync::atomic::AtomicBool>,
    stderr_files: Vec<PathBuf>,
}

fn describe_status(status: Option<ExitStatus>) -> String {
    use std::os::unix::process::ExitStatusExt;
    match status {
        None => "could not be waited for".into(),
        Some(s) => match (s.code(), s.signal()) {
            (Some(c), _) => format!("exited with status {c}"),
            (None, Some(sig)) => format!("was killed by signal {sig}"),
            _ => "exited".into(),
        },
    }
}

impl ClientFleet {
    /// Starts one process per client id; an early exit is sent on `exits`.
    #[allow(clippy::too_many_arguments)]
    pub fn start(
        prepared: &Prepared,
        scenario: &Scenario,
        ids: &[String],
        proxy: SocketAddr,
        netns: Option<&[String]>,
        dir: &Path,
        sink: &EventSink,
        publisher_qos: u8,
        exits: mpsc::UnboundedSender<EarlyExit>,
    ) -> Result<ClientFleet, RunError> {
        let stopping = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut fleet = ClientFleet {
            kind: prepared.kind,
            clients: Vec::new(),
            stopping: stopping.clone(),
            stderr_files: Vec::new(),
        };
        for (i, id) in ids.iter().enumerate() {
            let args = arguments(scenario, proxy, id, prepared.script.as_deref())?;
            // In namespace mode the child joins its subscriber's namespace before it runs:
            // the descriptor is opened here, the switch made in the child.
            let ns = match netns.and_then(|n| n.get(i)) {
                Some(name) => Some(
                    std::fs::File::open(format!("/run/netns/{name}"))
                        .map_err(crate::io(format!("open namespace {name}")))?,
                ),
                None => None,
            };
            let stderr_name = if ids.len() == 1 {
                linecut_events::run_dir::file::client_stderr.to_string()
            } else {
                format!("client-{}.stderr.log", id.replace(['/', '\\'], "_"))
            };
            let stderr_path = dir.join(&stderr_name);
            let stderr = std::fs::File::create(&stderr_path)
                .map_err(crate::io(format!("create {stderr_name}")))?;
            let mut command = Command::new(&prepared.program);
            command.envs(prepared.env.iter().map(|(k, v)| (k, v.as_os_str())));
            // Its own process group, so stopping it stops what it started too; and it dies
            // with linecut. SAFETY: the hook only makes async-signal-safe calls.
            unsafe {
                command.pre_exec(tie_to_parent(true));
            }
            if let Some(file) = &ns {
                let fd = std::os::fd::AsRawFd::as_raw_fd(file);
                // SAFETY: setns is an async-signal-safe system call; the descriptor stays open
                // in the parent until the child has been spawned.
                unsafe {
                    command.pre_exec(move || {
                        if libc::setns(fd, libc::CLONE_NEWNET) != 0 {
                            return Err(std::io::Error::last_os_error());
                        }
                        Ok(())
                    });
                }
            }
            let mut child: Child = command
                .args(&args)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(stderr)
                .kill_on_drop(true)
                .spawn()
                .map_err(|e| {
                    client_error(format!("cannot start {}: {e}", prepared.program.display()))
                })?;
            fleet.stderr_files.push(stderr_path);
            let stdout = child.stdout.take().expect("stdout is piped");
            let counts = Arc::new(OutputCounts::default());
            let defaults = MessageDefaults {
                client: id.clone(),
                topic: default_topic(scenario),
                qos: publisher_qos.min(scenario.subscriber.settings.topics[0].qos),
            };
            let reader = tokio::spawn(read_output(
                stdout,
                prepared.format.clone(),
                defaults,
                sink.clone(),
                counts.clone(),
            ));
            let pid = child.id();
            let ended_early = Arc::new(std::sync::atomic::AtomicBool::new(false));
            let (exits, stopping, client, early) = (
                exits.clone(),
                stopping.clone(),
                id.clone(),
                ended_early.clone(),
            );
            let waiter = tokio::spawn(async move {
                let status = child.wait().await.ok();
                if !stopping.load(Ordering::Acquire) {
                    early.store(true, Ordering::Release);
                    let _ = exits.send(EarlyExit {
                        client,
                        status: describe_status(status),
                    });
                }
                status
            });
            fleet.clients.push(Running {
                id: id.clone(),
                pid,
                counts,
                reader,
                waiter,
                ended_early,
            });
        }
        Ok(fleet)
    }

    /// Clients that have reported a SUBACK.
    pub fn subscribed(&self) -> u32 {
        self.clients
            .iter()
            .filter(|c| c.counts.subscribed.load(Ordering::Relaxed))
            .count() as u32
    }

    /// Messages the clients have reported so far.
    pub fn messages(&self) -> u64 {
        self.clients
            .iter()
            .map(|c| c.counts.messages.load(Ordering::Relaxed))
            .sum()
    }

    /// The last line a client wrote on stderr, for an early-exit reason.
    pub fn stderr_tail(&self, client: &str) -> Option<String> {
        let i = self.clients.iter().position(|c| c.id == client)?;
        let text = std::fs::read_to_string(self.stderr_files.get(i)?).ok()?;
        text.lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .map(|l| l.trim().chars().take(200).collect())
    }

    /// Asks every client to stop (SIGTERM, then SIGKILL after a grace period), waits for them
    /// and logs how each ended. Returns the messages and disconnects they reported.
    pub async fn stop(self, sink: &EventSink) -> (u64, u64) {
        self.stopping.store(true, Ordering::Release);
        // Give a waiter that is reaping a client right now the moment to record it, so a process
        // that already ended is never signalled (its pid could have been reused).
        tokio::task::yield_now().await;
        for c in self
            .clients
            .iter()
            .filter(|c| !c.ended_early.load(Ordering::Acquire))
        {
            // Marks where the run, not the client, ended the connection (the analyzer stops
            // looking for the client's own reactions here).
            sink.emit(EventKind::Disconnected(Disconnected {
                client: c.id.clone(),
                cause: DisconnectCause::Requested,
                error: "linecut asked the client to stop".into(),
            }));
            if let Some(pid) = c.pid {
                // The whole process group: a client wrapped in `sh -c` stops with its shell.
                // SAFETY: kill(2) on the group of a child we started and have not reaped (the
                // waiter task owns it), so the group id cannot have been reused yet.
                unsafe {
                    libc::kill(-(pid as libc::pid_t), libc::SIGTERM);
                }
            }
        }
        let (mut messages, mut disconnects) = (0, 0);
        for c in self.clients {
            let expected = !c.ended_early.load(Ordering::Acquire);
            let mut waiter = c.waiter;
            let status = match tokio::time::timeout(STOP_GRACE, &mut waiter).await {
                Ok(r) => r.ok().flatten(),
                Err(_) => {
                    if let Some(pid) = c.pid {
                        // SAFETY: as above; the child has not been reaped.
                        unsafe {
                            libc::kill(-(pid as libc::pid_t), libc::SIGKILL);
                        }
                    }
                    waiter.await.ok().flatten()
                }
            };
            let _ = tokio::time::timeout(Duration::from_secs(2), c.reader).await;
            sink.emit(exit_event(&c.id, self.kind, status, expected, &c.counts));
            messages += c.counts.messages.load(Ordering::Relaxed);
            disconnects += c.counts.disconnects.load(Ordering::Relaxed);
        }
        // A client that wrote nothing on stderr leaves no empty log behind (a run directory
        // holds what happened, and an empty file says nothing).
        for path in &self.stderr_files {
            if std::fs::metadata(path).is_ok_and(|m| m.len() == 0) {
                let _ = std::fs::remove_file(path);
            }
        }
        (messages, disconnects)
    }
}

fn exit_event(
    id: &str,
    kind: &str,
    status: Option<ExitStatus>,
    expected: bool,
    counts: &OutputCounts,
) -> EventKind {
    use std::os::unix::process::ExitStatusExt;
    EventKind::ClientExited(ClientExited {
        client: id.to_string(),
        kind: kind.to_string(),
        code: status.and_then(|s| s.code()),
        signal: status.and_then(|s| s.signal()),
        expected,
        lines: counts.lines.load(Ordering::Relaxed),
        unmatched_lines: counts.unmatched.load(Ordering::Relaxed),
        first_unmatched: counts
            .first_unmatched
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone(),
    })
}

async fn read_output(
    stdout: tokio::process::ChildStdout,
    format: OutputFormat,
    defaults: MessageDefaults,
    sink: EventSink,
    counts: Arc<OutputCounts>,
) {
    let mut reader = BufReader::new(stdout);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        // At most MAX_LINE bytes per line: a client that never ends its line must not grow
        // linecut's memory without bound.
        match (&mut reader)
            .take(MAX_LINE as u64)
            .read_until(b'\n', &mut buf)
            .await
        {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        let read_us = now_us();
        counts.lines.fetch_add(1, Ordering::Relaxed);
        if buf.len() == MAX_LINE && !buf.ends_with(b"\n") {
            // Too long to be a line of output linecut understands: skip the rest of it and
            // count it as not understood.
            let mut rest = Vec::new();
            loop {
                rest.clear();
                match (&mut reader)
                    .take(MAX_LINE as u64)
                    .read_until(b'\n', &mut rest)
                    .await
                {
                    Ok(0) | Err(_) => break,
                    Ok(_) if rest.ends_with(b"\n") => break,
                    Ok(_) => {}
                }
            }
            counts.not_understood(|| format!("(a line longer than {MAX_LINE} bytes)"));
            continue;
        }
        let line = String::from_utf8_lossy(&buf);
        match format.parse(&line, &defaults) {
            Line::Event { ts_us, kind } => {
                match &*kind {
                    EventKind::Suback(_) => counts.subscribed.store(true, Ordering::Relaxed),
                    EventKind::Message(_) => {
                        counts.messages.fetch_add(1, Ordering::Relaxed);
                    }
                    EventKind::Disconnected(d) if d.cause != DisconnectCause::Requested => {
                        counts.disconnects.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => {}
                }
                sink.emit_at(ts_us.unwrap_or(read_us), *kind);
            }
            Line::Unmatched => {
                counts.not_understood(|| line.trim_end().chars().take(200).collect());
            }
            Line::Ignored => {}
        }
    }
}
