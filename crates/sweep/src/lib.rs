//! Sweeps: one scenario run over a grid of settings, each combination (a cell) run `repeat`
//! times in its own `linecut run` process, many at once, and the results compared in one report.
//!
//! A sweep directory holds:
//! - `sweep-plan.json` — the axes, the repeat count and every cell's scenario (what `--resume`
//!   and `linecut report merge` work from);
//! - `cells/<cell>/scenario.toml` and `cells/<cell>/r<N>/` — each run directory, as
//!   `linecut run` leaves it, and `r<N>.log`, its output;
//! - `sweep.md`, `sweep.json`, `sweep.csv`, `detection.svg`, `recovery.svg` — the comparison,
//!   regenerated from the runs' stored reports by [`write_reports`].
//!
//! Module map: [`axis`] (paths and values, applied to the TOML), [`plan`] (cells, shards,
//! validation before anything runs), [`exec`] (processes, jobs, resume), [`report`] (the
//! comparison and its summary), [`plot`] (the SVGs).

pub mod axis;
mod choose;
pub mod exec;
pub mod matrix;
pub mod plan;
pub mod plot;
pub mod report;

pub use axis::Axis;
pub use exec::{default_jobs, execute, ExecOptions, ExecSummary};
pub use plan::{from_section, plan, run_seed, Cell, Goal, PhaseMode, Plan, Section, Shard};
pub use report::SweepReport;

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    #[error("{0}")]
    Axis(String),
    #[error("{} cannot be swept as asked:\n  {}", file.display(), problems.join("\n  "))]
    Cells {
        file: PathBuf,
        problems: Vec<String>,
    },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Report(String),
    #[error("{0} already holds a different sweep; use another --out, or --resume with the same scenario and axes")]
    Different(PathBuf),
    #[error("{0} already holds a sweep; pass --resume to finish it, or choose another --out")]
    Exists(PathBuf),
}

const PLAN_FILE: &str = "sweep-plan.json";

/// An IO error, naming the path it happened on.
pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> SweepError {
    let path = path.into();
    move |source| SweepError::Io { path, source }
}

/// Creates (or, resuming, checks) the sweep directory for `plan`.
pub fn prepare(dir: &Path, plan: &Plan, resume: bool) -> Result<(), SweepError> {
    let plan_path = dir.join(PLAN_FILE);
    if plan_path.is_file() {
        if !resume {
            return Err(SweepError::Exists(dir.to_path_buf()));
        }
        if read_plan(dir)? != *plan {
            return Err(SweepError::Different(dir.to_path_buf()));
        }
        return Ok(());
    }
    if dir.is_dir()
        && std::fs::read_dir(dir)
            .map_err(crate::io(dir.to_path_buf()))?
            .next()
            .is_some()
    {
        return Err(SweepError::Exists(dir.to_path_buf()));
    }
    std::fs::create_dir_all(dir).map_err(crate::io(dir.to_path_buf()))?;
    let text = serde_json::to_string_pretty(plan).expect("plan serialises");
    std::fs::write(&plan_path, text).map_err(crate::io(plan_path))
}

/// Reads a sweep directory's plan.
pub fn read_plan(dir: &Path) -> Result<Plan, SweepError> {
    let path = dir.join(PLAN_FILE);
    let text = std::fs::read_to_string(&path).map_err(crate::io(path.clone()))?;
    serde_json::from_str(&text).map_err(|e| SweepError::Report(format!("{}: {e}", path.display())))
}

/// Whether `dir` is a sweep directory.
pub fn is_sweep_dir(dir: &Path) -> bool {
    dir.join(PLAN_FILE).is_file()
}

/// Writes `sweep.json`, `sweep.csv`, `sweep.md` and the plots from the runs' stored reports.
pub fn write_reports(dir: &Path) -> Result<SweepReport, SweepError> {
    let plan = read_plan(dir)?;
    let report = report::build(&plan, dir)?;
    let write = |name: &str, text: &str| {
        let path = dir.join(name);
        let tmp = dir.join(format!("{name}.tmp"));
        std::fs::write(&tmp, text)
            .and_then(|()| std::fs::rename(&tmp, &path))
            .map_err(crate::io(path))
    };
    let mut plots = Vec::new();
    for (file, title, svg) in [
        (
            "detection.svg",
            "Detection time against keepalive, protocol bands shaded",
            plot::detection(&report, &plan),
        ),
        (
            "recovery.svg",
            "Reconnect time and messages lost against outage length",
            plot::recovery(&report, &plan),
        ),
    ] {
        match svg {
            Some(svg) => {
                write(file, &svg)?;
                plots.push((file, title));
            }
            None => {
                let _ = std::fs::remove_file(dir.join(file));
            }
        }
    }
    write(
        "sweep.json",
        &(serde_json::to_string_pretty(&report).expect("report serialises") + "\n"),
    )?;
    write("sweep.csv", &report::csv(&report, &plan))?;
    write("sweep.md", &report::markdown(&report, &plan, &plots))?;
    Ok(report)
}

/// Combines shard directories of one sweep into `out`: their cells are copied in, the plan is
/// the union (in the unsharded order), and the comparison is written as for a single sweep.
pub fn merge(shards: &[PathBuf], out: &Path) -> Result<SweepReport, SweepError> {
    let mut merged: Option<Plan> = None;
    for dir in shards {
        let plan = read_plan(dir)?;
        match &mut merged {
            None => {
                merged = Some(Plan {
                    shard: None,
                    ..plan.clone()
                })
            }
            Some(m) => {
                if m.axes != plan.axes
                    || m.repeat != plan.repeat
                    || m.scenario_name != plan.scenario_name
                {
                    return Err(SweepError::Report(format!(
                        "{} is a shard of a different sweep (scenario, axes or repeat differ)",
                        dir.display()
                    )));
                }
                for cell in plan.cells {
                    if !m.cells.iter().any(|c| c.name == cell.name) {
                        m.cells.push(cell);
                    }
                }
            }
        }
    }
    let Some(mut plan) = merged else {
        return Err(SweepError::Report("nothing to merge".into()));
    };
    // The unsharded order: the cartesian order of the axes' values.
    let position = |cell: &Cell| -> Vec<usize> {
        plan.axes
            .iter()
            .zip(&cell.values)
            .map(|(a, (_, v))| a.values.iter().position(|x| x == v).unwrap_or(usize::MAX))
            .collect()
    };
    let mut cells = std::mem::take(&mut plan.cells);
    cells.sort_by_key(|c| position(c));
    plan.cells = cells;
    if out.join(PLAN_FILE).is_file() || out.join("cells").is_dir() {
        return Err(SweepError::Exists(out.to_path_buf()));
    }
    std::fs::create_dir_all(out.join("cells")).map_err(crate::io(out.to_path_buf()))?;
    for dir in shards {
        let cells = dir.join("cells");
        for entry in std::fs::read_dir(&cells).map_err(crate::io(cells.clone()))? {
            let entry = entry.map_err(crate::io(cells.clone()))?;
            copy_tree(&entry.path(), &out.join("cells").join(entry.file_name()))?;
        }
    }
    let text = serde_json::to_string_pretty(&plan).expect("plan serialises");
    std::fs::write(out.join(PLAN_FILE), text).map_err(crate::io(out.join(PLAN_FILE)))?;
    write_reports(out)
}

fn copy_tree(from: &Path, to: &Path) -> Result<(), SweepError> {
    if from.is_dir() {
        std::fs::create_dir_all(to).map_err(crate::io(to.to_path_buf()))?;
        for entry in std::fs::read_dir(from).map_err(crate::io(from.to_path_buf()))? {
            let entry = entry.map_err(crate::io(from.to_path_buf()))?;
            copy_tree(&entry.path(), &to.join(entry.file_name()))?;
        }
        Ok(())
    } else {
        std::fs::copy(from, to)
            .map(|_| ())
            .map_err(crate::io(from.to_path_buf()))
    }
}
