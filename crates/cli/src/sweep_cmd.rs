//! `linecut sweep` and `linecut report merge`: glue between the command line and linecut-sweep.

use anyhow::Context;
use clap::Args;
use linecut_sweep::{Axis, ExecOptions, Shard};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

#[derive(Debug, Args)]
pub struct SweepArgs {
    /// The scenario to sweep (its [sweep] section, if any, gives axes and repeat).
    scenario: PathBuf,

    /// An axis: a scenario field and its values, e.g. subscriber.keepalive=1s,2s,5s,
    /// fault.cut.for=3s,10s, subscriber.client=rumqttc,paho-python. Repeatable.
    #[arg(long = "set", value_name = "PATH=V1,V2,...")]
    set: Vec<String>,

    /// Runs per cell (default: the [sweep] section's repeat, else 1).
    #[arg(long)]
    repeat: Option<u32>,

    /// random (default): a fault without its own jitter starts up to one keepalive late, drawn
    /// afresh for each repeat; fixed: every repeat starts its faults where the scenario says.
    #[arg(long, value_enum)]
    phase: Option<PhaseArg>,

    /// Runs at a time (default: six per core, at most 24; see README "Sweeps").
    #[arg(long)]
    jobs: Option<usize>,

    /// The sweep directory (default runs/<scenario name>-sweep).
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,

    /// Finish an interrupted sweep in DIR: only runs that are not complete are run.
    #[arg(long)]
    resume: bool,

    /// Run only the I-th of N slices of the cells (for CI matrices); merge the shard
    /// directories with `linecut report merge`.
    #[arg(long, value_name = "I/N")]
    shard: Option<String>,

    /// No progress output.
    #[arg(long)]
    quiet: bool,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum PhaseArg {
    Random,
    Fixed,
}

impl From<PhaseArg> for linecut_sweep::PhaseMode {
    fn from(p: PhaseArg) -> Self {
        match p {
            PhaseArg::Random => linecut_sweep::PhaseMode::Random,
            PhaseArg::Fixed => linecut_sweep::PhaseMode::Fixed,
        }
    }
}

/// Sets the flag on Ctrl-C or SIGTERM (the runs, in the same process group, get Ctrl-C too).
fn watch_signals() -> Arc<AtomicBool> {
    let flag = Arc::new(AtomicBool::new(false));
    let set = flag.clone();
    std::thread::spawn(move || {
        if let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            let interrupt = {
                let _inside = runtime.enter();
                crate::common::shutdown_signal(None)
            };
            runtime.block_on(interrupt);
            set.store(true, Ordering::Release);
            linecut_runner::say(format_args!(
                "sweep: interrupted; waiting for the running cells to stop"
            ));
        }
    });
    flag
}

pub fn sweep(args: SweepArgs) -> anyhow::Result<ExitCode> {
    let source = std::fs::read_to_string(&args.scenario)
        .with_context(|| format!("reading {}", args.scenario.display()))?;
    // The base scenario must be valid on its own; axes are checked per cell by the plan.
    linecut_scenario::parse(&args.scenario, &source)?;
    let section = linecut_sweep::from_section(&source)
        .with_context(|| format!("{}: [sweep]", args.scenario.display()))?;
    let mut axes = section.axes;
    for text in &args.set {
        let axis = Axis::parse(text)?;
        axes.retain(|a| a.path != axis.path);
        axes.push(axis);
    }
    let repeat = args.repeat.or(section.repeat).unwrap_or(1);
    if repeat == 0 {
        anyhow::bail!("--repeat must be at least 1");
    }
    let shard = args.shard.as_deref().map(Shard::parse).transpose()?;
    let phase = match args.phase {
        Some(p) => p.into(),
        None => section.phase.unwrap_or_default(),
    };
    let mut plan = linecut_sweep::plan(&args.scenario, &source, &axes, repeat, phase, shard)?;
    plan.goal = section.goal;
    let dir = args.out.unwrap_or_else(|| {
        PathBuf::from(linecut_events::run_dir::DEFAULT_RUNS_DIR)
            .join(format!("{}-sweep", plan.scenario_name))
    });
    linecut_sweep::prepare(&dir, &plan, args.resume)?;
    let jobs = args.jobs.unwrap_or_else(linecut_sweep::default_jobs).max(1);
    let options = ExecOptions {
        linecut: std::env::current_exe().context("finding the linecut binary")?,
        jobs,
        resume: args.resume,
        progress_bar: std::io::stderr().is_terminal(),
        quiet: args.quiet,
    };
    let interrupted = watch_signals();
    let exec = linecut_sweep::execute(&plan, &dir, &options, interrupted)?;
    let report = linecut_sweep::write_reports(&dir)?;
    if !args.quiet {
        linecut_runner::say(format_args!(
            "sweep: {} cell(s) × {} run(s): {} ran, {} already done, {} failed; wall {:.1} s for {:.1} s of runs (longest {:.1} s), {} at a time",
            plan.cells.len(),
            repeat,
            exec.ran,
            exec.skipped,
            exec.failed.len(),
            exec.wall_s,
            exec.run_time_sum_s,
            exec.longest_run_s,
            jobs
        ));
        for f in &exec.failed {
            linecut_runner::say(format_args!("sweep: failed: {f}"));
        }
        for line in &report.summary {
            linecut_runner::say(format_args!("{line}"));
        }
        linecut_runner::say(format_args!(
            "sweep report: {}",
            dir.join("sweep.md").display()
        ));
    }
    Ok(if report.complete && exec.failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    })
}

pub fn merge(shards: &[PathBuf], out: &std::path::Path) -> anyhow::Result<ExitCode> {
    let report = linecut_sweep::merge(shards, out)?;
    println!(
        "{}: {} cell(s) merged from {} shard(s){}",
        out.display(),
        report.cells.len(),
        shards.len(),
        if report.complete {
            ""
        } else {
            " (some runs missing)"
        }
    );
    Ok(if report.complete {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    })
}
