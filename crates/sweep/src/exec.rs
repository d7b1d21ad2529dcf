//! Running a plan: each run of a cell is its own `linecut run` process, so cells share nothing
//! (each has its own broker, proxy, ports and log files; the embedded broker, which cannot be
//! stopped, goes away with its process). At most `jobs` run at once.
//!
//! A run counts as done when its directory's `meta.json` says `complete`; `resume` skips those
//! and runs the rest again (an interrupted run is replaced). An interrupt stops launching runs,
//! lets the running ones end themselves (they receive the same Ctrl-C or are sent SIGINT) and
//! keeps whatever they left.

use crate::plan::Plan;
use crate::SweepError;
use linecut_events::process::tie_to_parent;
use linecut_events::run_dir::CLIENT_SCRIPT_DIR_ENV;
use std::os::unix::process::CommandExt;

/// The sweep directory's folder for client scripts its runs share.
const CLIENT_SCRIPTS: &str = "clients";
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How the runs of a sweep are executed.
#[derive(Debug, Clone)]
pub struct ExecOptions {
    /// The `linecut` binary that runs each cell.
    pub linecut: PathBuf,
    pub jobs: usize,
    pub resume: bool,
    /// Show a live progress bar (otherwise one line per finished run on stderr).
    pub progress_bar: bool,
    pub quiet: bool,
}

/// The default `--jobs`: the runs of a sweep mostly wait (on keepalives and outages), using a few
/// percent of a core each, and what they measure is seconds with millisecond resolution. What
/// distorts those measurements is a saturated CPU delaying timers, so the default keeps the
/// expected load well under the machine's cores: six runs per core, at most 24.
pub fn default_jobs() -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    (cores * 6).clamp(2, 24)
}

/// One run of one cell.
#[derive(Debug, Clone)]
pub struct RunSlot {
    pub cell: usize,
    pub repeat: u32,
    pub dir: PathBuf,
}

/// What a sweep's execution did.
#[derive(Debug, Clone, Default)]
pub struct ExecSummary {
    pub ran: usize,
    pub skipped: usize,
    pub failed: Vec<String>,
    pub interrupted: bool,
    /// Wall time of the whole execution and the sum of the runs' own times.
    pub wall_s: f64,
    pub run_time_sum_s: f64,
    pub longest_run_s: f64,
}

/// Whether a run directory holds a finished run.
pub fn is_complete(dir: &Path) -> bool {
    let layout = linecut_events::RunLayout::new(dir);
    linecut_events::RunMeta::read(&layout.meta()).is_ok_and(|m| m.is_complete())
}

/// Run directory of repeat `r` (1-based) of a cell.
pub fn run_dir(sweep_dir: &Path, cell: &str, repeat: u32) -> PathBuf {
    sweep_dir
        .join("cells")
        .join(cell)
        .join(format!("r{repeat}"))
}

/// Runs every run of the plan that is not done yet.
pub fn execute(
    plan: &Plan,
    dir: &Path,
    options: &ExecOptions,
    interrupted: Arc<AtomicBool>,
) -> Result<ExecSummary, SweepError> {
    let started = Instant::now();
    let mut pending = Vec::new();
    let mut summary = ExecSummary::default();
    for (i, cell) in plan.cells.iter().enumerate() {
        let cell_dir = dir.join("cells").join(&cell.name);
        std::fs::create_dir_all(&cell_dir).map_err(crate::io(cell_dir.clone()))?;
        let scenario = cell_dir.join("scenario.toml");
        std::fs::write(&scenario, &cell.scenario).map_err(crate::io(scenario))?;
        for r in 1..=plan.repeat {
            let run = run_dir(dir, &cell.name, r);
            if options.resume && is_complete(&run) {
                summary.skipped += 1;
                continue;
            }
            pending.push(RunSlot {
                cell: i,
                repeat: r,
                dir: run,
            });
        }
    }
    let scripts = dir.join(CLIENT_SCRIPTS);
    let total = pending.len();
    let expected_s: f64 = pending
        .iter()
        .map(|s| plan.cells[s.cell].duration_s + 2.0)
        .sum::<f64>()
        / options.jobs.max(1) as f64;
    let bar = if options.progress_bar && !options.quiet {
        let bar = indicatif::ProgressBar::new(total as u64);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "sweep [{bar:30}] {pos}/{len} runs done {msg} (~{eta} left)",
            )
            .expect("static template")
            .progress_chars("=> "),
        );
        Some(bar)
    } else {
        if !options.quiet {
            eprintln!(
                "linecut: sweep: {total} run(s) to do ({} done before), {} at a time, about {:.0} s",
                summary.skipped, options.jobs, expected_s
            );
        }
        None
    };
    let mut queue = pending.into_iter();
    let mut running: Vec<(RunSlot, Child, Instant)> = Vec::new();
    let mut signalled = false;
    loop {
        let stopping = interrupted.load(Ordering::Acquire);
        while !stopping && running.len() < options.jobs {
            let Some(slot) = queue.next() else { break };
            let cell = &plan.cells[slot.cell];
            let scenario = dir.join("cells").join(&cell.name).join("scenario.toml");
            let log = std::fs::File::create(
                dir.join("cells")
                    .join(&cell.name)
                    .join(format!("r{}.log", slot.repeat)),
            )
            .map_err(crate::io(slot.dir.clone()))?;
            let mut command = Command::new(&options.linecut);
            // A run dies with its sweep. SAFETY: the hook only makes async-signal-safe calls.
            unsafe {
                command.pre_exec(tie_to_parent(false));
            }
            let child = command
                // One copy of a client script for the whole sweep, not one per run; each run's
                // meta.json names it with its SHA-256.
                .env(CLIENT_SCRIPT_DIR_ENV, &scripts)
                .arg("run")
                .arg("--plain")
                .arg("--force")
                .arg("--out")
                .arg(&slot.dir)
                .arg("--seed")
                .arg(crate::plan::run_seed(&cell.name, slot.repeat).to_string())
                .arg(&scenario)
                .stdin(Stdio::null())
                .stdout(log.try_clone().map_err(crate::io(slot.dir.clone()))?)
                .stderr(log)
                .spawn()
                .map_err(crate::io(options.linecut.clone()))?;
            running.push((slot, child, Instant::now()));
        }
        if stopping && !signalled {
            signalled = true;
            for (_, child, _) in &running {
                // SAFETY: kill(2) on a child we started and have not yet waited for.
                unsafe {
                    libc::kill(child.id() as libc::pid_t, libc::SIGINT);
                }
            }
        }
        if running.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
        let mut i = 0;
        while i < running.len() {
            let done = running[i]
                .1
                .try_wait()
                .map_err(crate::io(running[i].0.dir.clone()))?;
            let Some(status) = done else {
                i += 1;
                continue;
            };
            let (slot, _, began) = running.swap_remove(i);
            let took = began.elapsed().as_secs_f64();
            summary.ran += 1;
            summary.run_time_sum_s += took;
            summary.longest_run_s = summary.longest_run_s.max(took);
            let cell = &plan.cells[slot.cell];
            // Exit 1 is a failed expectation: the run itself is fine and counts.
            let ok = matches!(status.code(), Some(0) | Some(1)) && is_complete(&slot.dir);
            let what = format!("{} r{}", cell.name, slot.repeat);
            if !ok {
                summary.failed.push(format!(
                    "{what}: {}",
                    if is_complete(&slot.dir) {
                        format!("exit status {status}")
                    } else {
                        "incomplete (see its meta.json and log)".into()
                    }
                ));
            }
            match &bar {
                Some(bar) => {
                    bar.inc(1);
                    bar.set_message(format!(
                        "| {} running | {} failed",
                        running.len(),
                        summary.failed.len()
                    ));
                }
                None if !options.quiet => eprintln!(
                    "linecut: sweep: {}/{total} {what} {} in {took:.1} s ({} running, {} failed)",
                    summary.ran,
                    if ok { "done" } else { "FAILED" },
                    running.len(),
                    summary.failed.len()
                ),
                None => {}
            }
        }
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    summary.interrupted = interrupted.load(Ordering::Acquire) && summary.ran < total;
    summary.wall_s = started.elapsed().as_secs_f64();
    Ok(summary)
}
