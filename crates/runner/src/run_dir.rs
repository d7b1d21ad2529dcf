//! The run directory while a run is under way: created (or replaced) safely, `meta.json` kept
//! current, and closed truthfully on every exit path.
//!
//! [`RunDir`] is a guard. The orchestration closes it with [`RunDir::finish`] on the normal
//! path and [`RunDir::fail`] when a step fails; if neither happens (a panic, a future dropped
//! mid-run), `Drop` still marks the run incomplete and writes `summary.json`, so no exit path
//! leaves `meta.json` saying `running`.

use crate::{RunError, VERSION};
use linecut_events::run_dir::write_json;
use linecut_events::{now_us, RunLayout, RunMeta, RunStatus, RunSummary};
use linecut_model::ClientIdentity;
use linecut_scenario::Scenario;
use std::path::{Path, PathBuf};

pub(crate) struct RunDir {
    layout: RunLayout,
    meta: RunMeta,
    /// Set once the run has been closed: `Drop` then has nothing to do.
    closed: bool,
    /// A descriptor held from the start and given up just before the run is closed: when a
    /// run ends because the process ran out of descriptors, closing it still has one to write
    /// `summary.json` and `meta.json` with.
    reserve: Option<std::fs::File>,
    /// The same for disk space: a small file written at the start and deleted just before the
    /// run is closed, so a run that filled its disk can still say so.
    reserve_space: Option<PathBuf>,
}

/// The file holding the disk-space reserve while a run goes on.
const SPACE_RESERVE_FILE: &str = ".linecut-space-reserve";
/// Room for `summary.json` and `meta.json` (a few kilobytes) with a wide margin.
const SPACE_RESERVE_BYTES: usize = 256 * 1024;

impl RunDir {
    /// Creates the run directory (replacing a previous run only when `force`d, and only a
    /// directory linecut wrote), writes `meta.json` first, then the scenario as written and
    /// resolved.
    pub fn create(
        dir: &Path,
        force: bool,
        scenario: &Scenario,
        subscriber_client: (String, ClientIdentity),
        publisher_client: String,
    ) -> Result<RunDir, RunError> {
        prepare(dir, force)?;
        let layout = RunLayout::new(dir);
        let meta = RunMeta {
            linecut_version: VERSION.into(),
            scenario: scenario.name.clone(),
            description: scenario.description.clone(),
            broker: String::new(),
            broker_address: None,
            subscriber_client: subscriber_client.0,
            subscriber_identity: Some(subscriber_client.1),
            publisher_client,
            host: hostname(),
            started_at: humantime::format_rfc3339_micros(std::time::SystemTime::now()).to_string(),
            started_us: now_us(),
            experiment_start_us: None,
            ended_us: None,
            duration_s: scenario.duration.as_secs_f64(),
            // The faults of whichever mode the run plays (a namespace run has link faults
            // only; meta.json said `[]` for them, the review's D10), and the broker's own.
            faults: scenario
                .faults
                .iter()
                .map(|f| f.to_string())
                .chain(scenario.link_faults.iter().map(|f| f.to_string()))
                .chain(scenario.broker_faults.iter().map(|f| f.spec()))
                .collect(),
            expectations: scenario.expect.clone(),
            client_script: None,
            phase: None,
            network: None,
            status: RunStatus::Running,
            files: Vec::new(),
        };
        let mut run_dir = RunDir {
            layout,
            meta,
            closed: false,
            reserve: std::fs::File::open("/dev/null").ok(),
            reserve_space: None,
        };
        // meta.json goes first: it marks the directory as linecut's, so even a run killed in
        // the next instant can be replaced with --force.
        run_dir.write_meta()?;
        let reserve = dir.join(SPACE_RESERVE_FILE);
        if let Err(e) = std::fs::write(&reserve, vec![0u8; SPACE_RESERVE_BYTES]) {
            // Without the reserve a run that fills its disk could not say so; and a disk with
            // less room than this fills in the first seconds. Refuse now, with the partial
            // file gone so its space lets meta.json say why (the review's D10: a partial
            // reserve and a `running` meta.json were left).
            let _ = std::fs::remove_file(&reserve);
            let error = RunError::NoRoom {
                dir: dir.to_path_buf(),
                need: SPACE_RESERVE_BYTES,
                error: e,
            };
            return Err(run_dir.fail(&RunSummary::default(), error));
        }
        run_dir.reserve_space = Some(reserve);
        let written = std::fs::write(run_dir.layout.scenario(), &scenario.source)
            .map_err(crate::io("write scenario.toml"))
            .and_then(|()| {
                std::fs::write(run_dir.layout.scenario_resolved(), scenario.resolved_toml())
                    .map_err(crate::io("write scenario.resolved.toml"))
            });
        match written {
            Ok(()) => Ok(run_dir),
            Err(e) => Err(run_dir.fail(&RunSummary::default(), e)),
        }
    }

    pub fn layout(&self) -> &RunLayout {
        &self.layout
    }

    /// Changes `meta.json` and writes it at once.
    pub fn update(&mut self, change: impl FnOnce(&mut RunMeta)) -> Result<(), RunError> {
        change(&mut self.meta);
        self.write_meta()
    }

    fn write_meta(&self) -> Result<(), RunError> {
        Ok(write_json(&self.layout.meta(), &self.meta)?)
    }

    /// Closes the run: `summary.json`, then `meta.json` with the final status and the files.
    /// A failure to write either is returned, and the reason it carried is kept on stderr so
    /// it is not lost with the file.
    pub fn finish(
        mut self,
        summary: &RunSummary,
        reason: Option<String>,
    ) -> Result<RunMeta, RunError> {
        self.closed = true;
        let status = match reason {
            None => RunStatus::Complete,
            Some(r) => RunStatus::Incomplete(r),
        };
        self.close(summary, status)?;
        Ok(self.meta.clone())
    }

    /// Closes the run as incomplete because `error` ended it, and hands the error back.
    pub fn fail(mut self, summary: &RunSummary, error: RunError) -> RunError {
        self.closed = true;
        match self.close(summary, RunStatus::Incomplete(error.to_string())) {
            Ok(()) => error,
            // The run's own error says why it ended; the write error says why meta.json does
            // not. Both matter to the user.
            Err(write) => RunError::NotRecorded {
                error: Box::new(error),
                write: Box::new(write),
            },
        }
    }

    fn close(&mut self, summary: &RunSummary, status: RunStatus) -> Result<(), RunError> {
        drop(self.reserve.take());
        if let Some(reserve) = self.reserve_space.take() {
            let _ = std::fs::remove_file(reserve);
        }
        let summary_written = write_json(&self.layout.summary(), summary);
        self.meta.ended_us = Some(now_us());
        self.meta.status = status;
        self.meta.files = self.layout.list_files();
        let meta_written = self.write_meta();
        if let (Err(_), RunStatus::Incomplete(reason)) = (&meta_written, &self.meta.status) {
            eprintln!(
                "linecut: {} could not record why the run is incomplete: {reason}",
                self.layout.meta().display()
            );
        }
        summary_written?;
        meta_written
    }
}

impl Drop for RunDir {
    fn drop(&mut self) {
        if self.closed {
            return;
        }
        let reason = if std::thread::panicking() {
            "linecut failed (a panic) before the run finished"
        } else {
            "linecut stopped before the run finished"
        };
        let _ = self.close(&RunSummary::default(), RunStatus::Incomplete(reason.into()));
    }
}

/// Makes `dir` ready for a new run. An occupied directory is replaced only when `force`d, only
/// when it holds a run linecut wrote, and never when it contains the working directory.
fn prepare(dir: &Path, force: bool) -> Result<(), RunError> {
    let occupied = dir.is_dir()
        && std::fs::read_dir(dir)
            .map_err(crate::io(format!("read {}", dir.display())))?
            .next()
            .is_some();
    if occupied {
        if contains_working_dir(dir) {
            return Err(RunError::Refused {
                dir: dir.to_path_buf(),
                why: "it contains the working directory".into(),
            });
        }
        if !RunLayout::new(dir).is_run() {
            return Err(RunError::Refused {
                dir: dir.to_path_buf(),
                why: "it holds files that are not a linecut run (no linecut meta.json); \
                      choose another --out or empty it yourself"
                    .into(),
            });
        }
        if !force {
            return Err(RunError::Exists(dir.to_path_buf()));
        }
        std::fs::remove_dir_all(dir).map_err(crate::io(format!("clear {}", dir.display())))?;
    }
    std::fs::create_dir_all(dir).map_err(crate::io(format!("create {}", dir.display())))
}

/// Whether `dir` is the working directory or one of its ancestors.
pub(crate) fn contains_working_dir(dir: &Path) -> bool {
    let (Ok(dir), Ok(cwd)) = (
        dir.canonicalize(),
        std::env::current_dir().and_then(|d| d.canonicalize()),
    ) else {
        // Unknowable: treat as containing it, so nothing is deleted on a guess.
        return true;
    };
    cwd.starts_with(dir)
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}
