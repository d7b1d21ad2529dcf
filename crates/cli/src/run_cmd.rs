//! `linecut run`, `linecut validate` and `linecut schema`: scenario files in, run directories
//! out.

use crate::common::shutdown_signal;
use anyhow::Context;
use clap::Args;
use linecut_runner::{DisplayMode, RunOptions, RunStatus};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The scenario file (TOML).
    scenario: PathBuf,

    /// Run directory (default: results/<scenario name>/).
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,

    /// Replace a previous run in the run directory.
    #[arg(long)]
    force: bool,

    /// Plain log lines instead of a live status line, even on a terminal.
    #[arg(long, conflicts_with = "quiet")]
    plain: bool,

    /// Print only the final verdict.
    #[arg(long)]
    quiet: bool,
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Scenario files to check.
    #[arg(required = true)]
    files: Vec<PathBuf>,
}

pub fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let scenario = linecut_scenario::load(&args.scenario)?;
    let dir = args
        .out
        .unwrap_or_else(|| PathBuf::from("results").join(&scenario.name));
    let options = RunOptions {
        dir,
        force: args.force,
        display: if args.quiet {
            DisplayMode::Quiet
        } else if args.plain {
            DisplayMode::Plain
        } else {
            DisplayMode::Auto
        },
    };
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let outcome = runtime
        .block_on(linecut_runner::run(
            &scenario,
            &options,
            shutdown_signal(None),
        ))
        .with_context(|| format!("running {}", args.scenario.display()))?;
    let s = &outcome.summary;
    eprintln!(
        "linecut: {} -> {}: {} published, {} delivered to {} subscriber(s), {} disconnect(s), {} fault occurrence(s)",
        scenario.name,
        outcome.dir.display(),
        s.published,
        s.delivered,
        s.subscribers,
        s.disconnects,
        s.faults_started
    );
    if !scenario.expect.is_empty() {
        eprintln!(
            "linecut: {} expectation(s) recorded in meta.json; they are checked by the analyzer (`linecut analyze`), which is not part of this build yet",
            scenario.expect.len()
        );
    }
    Ok(match outcome.status {
        RunStatus::Complete => ExitCode::SUCCESS,
        _ => ExitCode::from(2),
    })
}

pub fn validate(args: ValidateArgs) -> anyhow::Result<ExitCode> {
    let mut bad = 0;
    for file in &args.files {
        match linecut_scenario::load(file) {
            Ok(s) => println!(
                "{}: ok ({}, {} fault(s), {} subscriber(s))",
                file.display(),
                humantime::format_duration(s.duration),
                s.faults.len(),
                s.subscriber.count
            ),
            Err(e) => {
                bad += 1;
                eprintln!("{e}");
            }
        }
    }
    Ok(if bad == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    })
}

pub fn schema() -> anyhow::Result<ExitCode> {
    println!(
        "{}",
        serde_json::to_string_pretty(&linecut_scenario::schema::json_schema())?
    );
    Ok(ExitCode::SUCCESS)
}
