//! The run directory, typed: the names of the files a run leaves and `meta.json`.
//!
//! A run directory is the contract between the runner (which writes it), the analyzer and the
//! sweep (which read it) and the CLI (which finds, replaces and reports on it). Every file name
//! appears here once, as a method of [`RunLayout`], and `meta.json` is [`RunMeta`], read and
//! written by the same type, so a renamed field or file is a compile error, not a silent
//! difference between crates.
//!
//! `meta.json` doubles as the mark of a directory linecut made: [`RunLayout::is_run`] is true
//! only when it parses as a [`RunMeta`]. Code that deletes or replaces a run checks that first,
//! so `--force` never clears a directory linecut did not write.

use linecut_model::{ClientFamily, ClientIdentity};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Where `linecut run`, `check` and `sweep` put their output unless told otherwise (relative
/// to the working directory; ignored by git). Committed reference runs live under `results/`,
/// which linecut never writes to unless asked with `--out`.
pub const DEFAULT_RUNS_DIR: &str = "runs";

/// The files of one run directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunLayout {
    dir: PathBuf,
}

macro_rules! run_files {
    ($($(#[$doc:meta])* $method:ident => $name:literal;)*) => {
        impl RunLayout {
            $(
                $(#[$doc])*
                pub fn $method(&self) -> PathBuf {
                    self.dir.join($name)
                }
            )*
        }

        /// The bare file names, for listings and messages.
        pub mod file {
            $(
                $(#[$doc])*
                #[allow(non_upper_case_globals)]
                pub const $method: &str = $name;
            )*
        }
    };
}

run_files! {
    /// What produced the run and how it ended ([`RunMeta`]).
    meta => "meta.json";
    /// The runner's counts ([`RunSummary`]).
    summary => "summary.json";
    /// The scenario as written.
    scenario => "scenario.toml";
    /// The scenario with every default filled in.
    scenario_resolved => "scenario.resolved.toml";
    /// The proxy's events.
    proxy_events => "proxy.jsonl";
    /// A namespace run's link fault events (when each rule change reached the kernel).
    link_events => "link.jsonl";
    /// The subscribers' events (linecut's agents or a client under test).
    subscriber_events => "subscriber.jsonl";
    /// The publisher's events.
    publisher_events => "publisher.jsonl";
    /// The will watcher's events (only in runs whose subscribers leave a will).
    watcher_events => "watcher.jsonl";
    /// The broker's log (mosquitto's own, or rumqttd's through linecut).
    broker_log => "broker.log";
    /// The configuration linecut generated for mosquitto.
    mosquitto_conf => "mosquitto.conf";
    /// Both legs of every proxied connection, when the scenario asks for it; in namespace
    /// mode, every frame on the host end of every subscriber's link.
    capture => "capture.pcap";
    /// What clients under test wrote to stderr.
    client_stderr => "client.stderr.log";
    /// The analysis, machine-readable.
    report_json => "report.json";
    /// The analysis, for people.
    report_md => "report.md";
    /// The connection timeline plot.
    timeline_svg => "timeline.svg";
}

impl RunLayout {
    pub fn new(dir: impl Into<PathBuf>) -> RunLayout {
        RunLayout { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether the directory holds a run linecut wrote: a `meta.json` that reads as [`RunMeta`].
    pub fn is_run(&self) -> bool {
        RunMeta::read(&self.meta()).is_ok()
    }

    /// The names of the files present, sorted; temporary files of an atomic write are left out.
    pub fn list_files(&self) -> Vec<String> {
        let mut files: Vec<String> = std::fs::read_dir(&self.dir)
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| !n.ends_with(TMP_SUFFIX))
                    .collect()
            })
            .unwrap_or_default();
        if !files.iter().any(|f| f == file::meta) {
            files.push(file::meta.into());
        }
        files.sort();
        files
    }
}

/// What an atomic write's temporary file ends with.
const TMP_SUFFIX: &str = ".tmp";

/// How a run ended.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "status", content = "reason")]
pub enum RunStatus {
    #[default]
    Running,
    Complete,
    Incomplete(String),
}

/// `meta.json`: what produced a run and how it ended.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunMeta {
    pub linecut_version: String,
    pub scenario: String,
    #[serde(default)]
    pub description: Option<String>,
    /// The broker, as the report names it (e.g. `mosquitto version 2.0.11 (started by linecut)`).
    pub broker: String,
    #[serde(default)]
    pub broker_address: Option<String>,
    /// The subscribers' client library, as the report names it.
    pub subscriber_client: String,
    /// The same library as a family and version, which the detection bands are drawn for. Runs
    /// from before it was recorded are read from `subscriber_client`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscriber_identity: Option<ClientIdentity>,
    #[serde(default)]
    pub publisher_client: String,
    #[serde(default)]
    pub host: String,
    #[serde(default)]
    pub started_at: String,
    #[serde(default)]
    pub started_us: i64,
    /// When every subscriber was subscribed: the origin of the fault schedule.
    #[serde(default)]
    pub experiment_start_us: Option<i64>,
    #[serde(default)]
    pub ended_us: Option<i64>,
    #[serde(default)]
    pub duration_s: f64,
    /// The faults as written (`cut:at=30s,for=2m`).
    #[serde(default)]
    pub faults: Vec<String>,
    /// Metric name to condition, as the scenario wrote them.
    #[serde(default)]
    pub expectations: BTreeMap<String, String>,
    /// The client script the run ran (a client under test that linecut ships), by content.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_script: Option<ClientScript>,
    /// A namespace run's network: its id, the broker's address on the bridge, the device's
    /// TCP settings. Absent for proxy runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<NetworkRecord>,
    /// The faults' drawn phase (seed and offsets), when a fault had a `jitter`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<linecut_model::PhaseRecord>,
    #[serde(flatten)]
    pub status: RunStatus,
    /// The files present when the run ended.
    #[serde(default)]
    pub files: Vec<String>,
}

/// What `meta.json` records of a namespace run's network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkRecord {
    /// `namespace`.
    pub mode: String,
    /// The run id every namespace, link and table of the run is named after.
    pub run_id: String,
    /// Where the broker listened (on the run's bridge).
    pub broker_addr: String,
    /// The TCP port of the broker, for reading the capture.
    pub broker_port: u16,
    /// Each subscriber's namespace and address.
    pub subscribers: Vec<NetworkMember>,
    /// The device TCP settings applied in every namespace (sysctl name to value).
    pub tcp: BTreeMap<String, String>,
    /// The seed of linecut's wire, when weak-link faults ran on it: the same seed, faults and
    /// frames give the same losses, delays and duplicates (`seed` in the scenario replays it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wire_seed: Option<u64>,
}

/// One subscriber's place in a namespace run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkMember {
    pub client_id: String,
    pub netns: String,
    pub addr: String,
}

/// A script linecut ran as the client under test: where the copy it ran is, and its SHA-256,
/// so a run says exactly which script produced it even when many runs share one copy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientScript {
    pub path: String,
    pub sha256: String,
}

/// The environment variable naming a directory where a run writes the client script it runs,
/// instead of its own directory: a sweep points all its runs at one copy.
pub const CLIENT_SCRIPT_DIR_ENV: &str = "LINECUT_CLIENT_SCRIPT_DIR";

/// `summary.json`: what the runner counted while the run went on.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunSummary {
    pub subscribers: u32,
    pub published: u64,
    pub delivered: u64,
    pub foreign: u64,
    pub disconnects: u64,
    pub faults_started: u32,
    /// Messages the will watcher received, in runs whose subscribers leave a will.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wills: Option<u64>,
}

/// A run directory file that could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum RunDirError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a linecut meta.json: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl RunMeta {
    /// Reads a `meta.json`.
    pub fn read(path: &Path) -> Result<RunMeta, RunDirError> {
        let text = std::fs::read_to_string(path).map_err(|source| RunDirError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        serde_json::from_str(&text).map_err(|e| RunDirError::Parse {
            path: path.to_path_buf(),
            message: e.to_string(),
        })
    }

    /// The subscribers' client family: recorded, or read from the description.
    pub fn subscriber_family(&self) -> ClientFamily {
        self.subscriber_identity
            .as_ref()
            .map_or_else(|| ClientFamily::of(&self.subscriber_client), |i| i.family)
    }

    /// Whether the run ended complete.
    pub fn is_complete(&self) -> bool {
        self.status == RunStatus::Complete
    }

    /// Why the run is incomplete, if it is. A run still marked `running` never closed its
    /// directory: linecut was killed (SIGKILL, power loss) or is still running.
    pub fn incomplete_reason(&self) -> Option<&str> {
        match &self.status {
            RunStatus::Incomplete(reason) => Some(reason),
            RunStatus::Running => Some(
                "the run never finished: its meta.json still says `running` (linecut was killed, \
                 or is still running)",
            ),
            RunStatus::Complete => None,
        }
    }
}

/// Writes `bytes` to `path` through a temporary file and a rename, so a reader never sees half
/// a file; a failed write removes its temporary file.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), RunDirError> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(TMP_SUFFIX);
    let tmp = PathBuf::from(tmp);
    let written = std::fs::write(&tmp, bytes).and_then(|()| std::fs::rename(&tmp, path));
    written.map_err(|source| {
        let _ = std::fs::remove_file(&tmp);
        RunDirError::Write {
            path: path.to_path_buf(),
            source,
        }
    })
}

/// Writes `value` as pretty JSON, atomically.
pub fn write_json(path: &Path, value: &impl Serialize) -> Result<(), RunDirError> {
    // The run directory's types have no maps with non-string keys: serialising cannot fail.
    let text = serde_json::to_string_pretty(value).expect("run directory types serialise");
    write_atomically(path, text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(status: RunStatus) -> RunMeta {
        RunMeta {
            linecut_version: "0.1.0".into(),
            scenario: "s".into(),
            description: None,
            broker: "b".into(),
            broker_address: None,
            subscriber_client: "c".into(),
            subscriber_identity: None,
            publisher_client: "p".into(),
            host: "h".into(),
            started_at: "t".into(),
            started_us: 1,
            experiment_start_us: Some(2),
            ended_us: None,
            duration_s: 3.0,
            phase: None,
            network: None,
            faults: vec!["cut:at=1s".into()],
            expectations: BTreeMap::new(),
            client_script: None,
            status,
            files: vec![],
        }
    }

    #[test]
    fn meta_round_trips_with_each_status_and_keeps_the_flat_status_fields() {
        for status in [
            RunStatus::Running,
            RunStatus::Complete,
            RunStatus::Incomplete("why".into()),
        ] {
            let m = meta(status);
            let text = serde_json::to_string(&m).unwrap();
            let back: RunMeta = serde_json::from_str(&text).unwrap();
            assert_eq!(back, m);
            let value: serde_json::Value = serde_json::from_str(&text).unwrap();
            assert!(value["status"].is_string(), "{text}");
        }
        let text = serde_json::to_string(&meta(RunStatus::Incomplete("why".into()))).unwrap();
        assert!(
            text.contains(r#""status":"incomplete","reason":"why""#),
            "{text}"
        );
    }

    #[test]
    fn a_directory_is_a_run_only_with_a_linecut_meta_json() {
        let dir = std::env::temp_dir().join(format!("linecut-layout-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let layout = RunLayout::new(&dir);
        assert!(!layout.is_run(), "empty");
        std::fs::write(layout.meta(), r#"{"name": "someone else's meta.json"}"#).unwrap();
        assert!(!layout.is_run(), "foreign meta.json");
        write_json(&layout.meta(), &meta(RunStatus::Running)).unwrap();
        assert!(layout.is_run());
        assert_eq!(layout.list_files(), vec!["meta.json".to_string()]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_failed_atomic_write_leaves_no_temporary_file() {
        let dir = std::env::temp_dir().join(format!("linecut-atomic-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("target-is-a-dir")).unwrap();
        std::fs::write(dir.join("target-is-a-dir").join("x"), "x").unwrap();
        let err = write_atomically(&dir.join("target-is-a-dir"), b"{}").unwrap_err();
        assert!(err.to_string().contains("target-is-a-dir"), "{err}");
        assert!(!dir.join("target-is-a-dir.tmp").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
