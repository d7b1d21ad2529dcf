//! The subscriber programs linecut ships for other libraries (MQTT.js, Paho C, aiomqtt, Paho
//! Go): how each is found, checked and started. One row of [`RUNS`] per program; everything
//! else is shared: they take the same arguments ([`contract_arguments`], also paho-python's)
//! and print the same linecut events, as `crates/runner/clients/README.md` sets out.
//!
//! `scripts/setup-clients` installs each library (and builds the compiled programs) under
//! `target/clients/<dir>/`. A script is written into the run directory like paho's and run by
//! that directory's runtime; a compiled program runs where it was built, and is refused when
//! it was built from another version of its source than the one this linecut carries (the
//! source's SHA-256 is written beside it at build time), so a run never measures a stale
//! program.
//!
//! Each program answers `--version` with one `client_info` event naming its library's version
//! as loaded (not as installed on paper): that is the check that the runtime and the library
//! are really there, and what the reports say.

use super::{client_error, Prepared, ScriptFile};
use crate::installs::{self, command_output, find_program, CLIENT_HOME_ENV};
use crate::RunError;
use linecut_events::{Event, EventKind};
use linecut_model::{ClientFamily, ClientIdentity, Protocol};
use linecut_scenario::client::Program;
use linecut_scenario::Scenario;
use output::OutputFormat;
use sha2::{Digest, Sha256};
use std::path::Path;

use super::output;

/// What runs a program.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Runtime {
    /// Node, on `PATH`, with the library under `<dir>/node_modules` (found through the
    /// `LINECUT_CLIENT_HOME` the program is given).
    Node,
    /// The Python of the virtual environment `<dir>/`.
    PythonVenv,
    /// A program `scripts/setup-clients` compiled to `<dir>/<binary>`.
    Built { binary: &'static str },
}

/// How one shipped program is found and started.
struct ProgramRun {
    program: Program,
    /// Its source, carried in linecut so a run records exactly what it ran.
    source: &'static str,
    /// The source's file name.
    file: &'static str,
    /// Its directory under `target/clients/`.
    dir: &'static str,
    runtime: Runtime,
    family: ClientFamily,
    /// What to install when it is missing, for the error message.
    install: &'static str,
}

const SETUP: &str = "run scripts/setup-clients";

/// One row per [`Program`], in its order.
const RUNS: [ProgramRun; 4] = [
    ProgramRun {
        program: Program::MqttJs,
        source: include_str!("../../clients/mqttjs_subscriber.mjs"),
        file: "mqttjs_subscriber.mjs",
        dir: "mqttjs",
        runtime: Runtime::Node,
        family: ClientFamily::MqttJs,
        install: "Node.js (apt-get install nodejs npm), then run scripts/setup-clients",
    },
    ProgramRun {
        program: Program::PahoC,
        source: include_str!("../../clients/paho_c_subscriber.c"),
        file: "paho_c_subscriber.c",
        dir: "paho-c",
        runtime: Runtime::Built {
            binary: "paho_c_subscriber",
        },
        family: ClientFamily::PahoC,
        install: "run scripts/setup-clients (it installs libpaho-mqtt-dev and builds the program with gcc)",
    },
    ProgramRun {
        program: Program::Aiomqtt,
        source: include_str!("../../clients/aiomqtt_subscriber.py"),
        file: "aiomqtt_subscriber.py",
        dir: "aiomqtt",
        runtime: Runtime::PythonVenv,
        family: ClientFamily::Aiomqtt,
        install: "run scripts/setup-clients (it makes a virtual environment with aiomqtt)",
    },
    ProgramRun {
        program: Program::PahoGo,
        source: include_str!("../../clients/paho_go_subscriber.go"),
        file: "paho_go_subscriber.go",
        dir: "paho-go",
        runtime: Runtime::Built {
            binary: "paho_go_subscriber",
        },
        family: ClientFamily::PahoGo,
        install: "run scripts/setup-clients (it installs golang-go and Debian's paho.mqtt.golang and builds the program)",
    },
];

fn run_of(program: Program) -> &'static ProgramRun {
    let run = &RUNS[program as usize];
    debug_assert_eq!(run.program, program);
    run
}

/// The SHA-256 of a text, in hex.
pub(super) fn sha256_hex(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Finds and checks a shipped program before anything of the run starts.
pub fn prepare(scenario: &Scenario, program: Program) -> Result<Prepared, RunError> {
    let run = run_of(program);
    let spec = program.spec();
    let kind = scenario.subscriber.client.name();
    let missing = |what: &str, looked: installs::Looked| {
        client_error(format!(
            "client = \"{kind}\": {what} not found ({looked}); {}",
            run.install
        ))
    };
    // (the program to start, the arguments before the contract's, the script to install)
    let (program_path, script) = match run.runtime {
        Runtime::Node => {
            let node = find_program("node").ok_or_else(|| {
                client_error(format!(
                    "client = \"{kind}\": node is not installed (not on PATH); install {}",
                    run.install
                ))
            })?;
            let package = installs::find(run.dir, "node_modules/mqtt/package.json")
                .map_err(|l| missing(spec.library, l))?;
            let home = package
                .ancestors()
                .nth(3)
                .expect("<dir>/node_modules/mqtt/package.json");
            (node, Some((run.file, home.to_path_buf())))
        }
        Runtime::PythonVenv => {
            let python =
                installs::find(run.dir, "bin/python").map_err(|l| missing(spec.library, l))?;
            let home = python.ancestors().nth(2).expect("<dir>/bin/python");
            (python.clone(), Some((run.file, home.to_path_buf())))
        }
        Runtime::Built { binary } => {
            let path = installs::find(run.dir, binary)
                .map_err(|l| missing(&format!("the compiled {binary}"), l))?;
            // Built from this linecut's source, or refused: setup-clients writes the source's
            // hash beside the program it built.
            let stamp = path.with_file_name(format!("{binary}.source.sha256"));
            let built_from = std::fs::read_to_string(&stamp).unwrap_or_default();
            if built_from.trim() != sha256_hex(run.source) {
                return Err(client_error(format!(
                    "client = \"{kind}\": {} was built from another version of {} than this linecut carries ({} says so); {SETUP}",
                    path.display(),
                    run.file,
                    stamp.display()
                )));
            }
            (path, None)
        }
    };
    let home = script
        .as_ref()
        .map(|(_, home)| home.clone())
        .or_else(|| program_path.parent().map(Path::to_path_buf))
        .unwrap_or_default();
    // The version check: the program loads its library and names it. A script is checked
    // from a temporary copy (the run directory does not exist yet).
    let info = version_info(run, &program_path, &home, kind)?;
    let version = info.version.clone();
    Ok(Prepared {
        kind,
        script_file: script.as_ref().map(|(file, _)| ScriptFile {
            name: file,
            content: run.source,
        }),
        built_from: match run.runtime {
            Runtime::Built { .. } => Some((program_path.clone(), sha256_hex(run.source))),
            _ => None,
        },
        program: program_path,
        script: None,
        env: vec![(CLIENT_HOME_ENV, home)],
        format: OutputFormat::Events,
        description: format!(
            "{} {version} ({}, linecut's {})",
            spec.library,
            info.detail.as_deref().unwrap_or("version as loaded"),
            run.file
        ),
        identity: ClientIdentity {
            family: run.family,
            version: Some(version),
        },
    })
}

/// Runs the program with `--version` and reads its `client_info` line.
fn version_info(
    run: &ProgramRun,
    program: &Path,
    home: &Path,
    kind: &str,
) -> Result<linecut_events::ClientInfo, RunError> {
    let mut args: Vec<String> = Vec::new();
    let _temp = match run.runtime {
        Runtime::Built { .. } => None,
        _ => {
            let temp = crate::installs::temp_script(run.dir, run.file, run.source)?;
            args.push(temp.path.display().to_string());
            Some(temp)
        }
    };
    args.push("--version".into());
    let arg_refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let text = command_output(program, &arg_refs, &[(CLIENT_HOME_ENV, home)]).map_err(|e| {
        client_error(format!(
            "client = \"{kind}\": {} cannot load {}: {e}; {}",
            program.display(),
            run.program.spec().library,
            run.install
        ))
    })?;
    let info = text
        .lines()
        .find_map(|l| match serde_json::from_str::<Event>(l).ok()?.kind {
            EventKind::ClientInfo(i) => Some(i),
            _ => None,
        });
    info.ok_or_else(|| {
        client_error(format!(
            "client = \"{kind}\": `{} --version` did not name its library's version (it printed: {})",
            program.display(),
            text.trim().chars().take(200).collect::<String>()
        ))
    })
}

/// The arguments every linecut subscriber program takes (the contract of
/// `crates/runner/clients/README.md`): where to connect, the client id, keepalive, session,
/// MQTT version, the MQTT 5 session settings, the will and the topics.
pub fn contract_arguments(scenario: &Scenario, host: &str, port: u16, id: &str) -> Vec<String> {
    let s = &scenario.subscriber.settings;
    let mqtt = match s.protocol {
        Protocol::V311 => "3.1.1",
        Protocol::V5 => "5",
    };
    // `--flag=value`: a value starting with `-` would otherwise read as a flag.
    let mut args = vec![
        format!("--host={host}"),
        format!("--port={port}"),
        format!("--client-id={id}"),
        format!("--keepalive={}", s.keepalive_s),
        format!("--clean-session={}", u8::from(s.clean_session)),
        format!("--mqtt={mqtt}"),
    ];
    if let Some(e) = s.session_expiry_s {
        args.push(format!("--session-expiry={e}"));
    }
    if let Some(r) = s.receive_maximum {
        args.push(format!("--receive-maximum={r}"));
    }
    if let Some(w) = &s.will {
        let (topic, payload) = w.for_client(id);
        args.extend([
            format!("--will-topic={topic}"),
            format!("--will-payload={payload}"),
            format!("--will-qos={}", w.qos),
            format!("--will-retain={}", u8::from(w.retain)),
        ]);
        if let Some(d) = w.delay_s {
            args.push(format!("--will-delay={d}"));
        }
    }
    for t in &s.topics {
        args.push(format!("--topic={}:{}", t.name, t.qos));
    }
    args
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_in_the_order_of_the_programs_and_names_their_sources() {
        for (i, run) in RUNS.iter().enumerate() {
            assert_eq!(run.program as usize, i);
            assert!(!run.source.is_empty(), "{}", run.file);
            // The runtime runs what the source is.
            let ext = run.file.rsplit('.').next().unwrap();
            let fits = match run.runtime {
                Runtime::Node => ext == "mjs",
                Runtime::PythonVenv => ext == "py",
                Runtime::Built { .. } => ext == "c" || ext == "go",
            };
            assert!(fits, "{} under {:?}", run.file, run.runtime);
        }
    }
}
