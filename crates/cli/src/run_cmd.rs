//! `linecut run`, `linecut validate` and `linecut schema`: scenario files in, run directories
//! out.

use crate::common::shutdown_signal;
use anyhow::Context;
use clap::Args;
use linecut_events::run_dir::DEFAULT_RUNS_DIR;
use linecut_events::RunLayout;
use linecut_runner::{DisplayMode, RunOptions, RunStatus};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The scenario file (TOML).
    scenario: PathBuf,

    /// Run directory (default: runs/<scenario name>/).
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

    /// Seed for the faults' phase draws (a fault's `jitter`), overriding the scenario's
    /// `seed`; the seed used is recorded in meta.json, so a run can be replayed.
    #[arg(long)]
    seed: Option<u64>,
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Scenario files to check.
    #[arg(required = true)]
    files: Vec<PathBuf>,
}

pub fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let mut scenario = linecut_scenario::load(&args.scenario)?;
    if args.seed.is_some() {
        scenario.seed = args.seed;
    }
    let dir = args
        .out
        .unwrap_or_else(|| PathBuf::from(DEFAULT_RUNS_DIR).join(&scenario.name));
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
    // The handlers exist before anything is started (see shutdown_signal).
    let interrupt = {
        let _inside = runtime.enter();
        shutdown_signal(None)
    };
    let outcome = runtime
        .block_on(linecut_runner::run(&scenario, &options, interrupt))
        .with_context(|| format!("running {}", args.scenario.display()))?;
    let s = &outcome.summary;
    linecut_runner::say(format_args!(
        "{} -> {}: {} published, {} delivered to {} subscriber(s), {} disconnect(s), {} fault occurrence(s)",
        scenario.name,
        outcome.dir.display(),
        s.published,
        s.delivered,
        s.subscribers,
        s.disconnects,
        s.faults_started
    ));
    let report = match &outcome.report {
        Ok(report) => report,
        Err(e) => {
            linecut_runner::say(format_args!("the run could not be analysed: {e}"));
            return Ok(ExitCode::from(2));
        }
    };
    print_verdicts(report, &outcome.dir);
    Ok(match outcome.status {
        RunStatus::Complete if report.expectations_hold() => ExitCode::SUCCESS,
        RunStatus::Complete => ExitCode::from(1),
        _ => ExitCode::from(2),
    })
}

/// One line per fault window and subscriber, then each expectation's verdict.
fn print_verdicts(report: &linecut_analyzer::Report, dir: &std::path::Path) {
    let s = |v: Option<f64>| v.map_or("never".to_string(), |v| format!("{v:.3}s"));
    for w in &report.windows {
        for m in &w.subscribers {
            if let Some(inside) = m.inside_fault {
                linecut_runner::say(format_args!(
                    "fault {} ({}) {}: began inside fault {inside}, measured there",
                    w.fault, w.kind, m.client
                ));
                continue;
            }
            let band = |b: &Option<linecut_analyzer::Band>| {
                b.as_ref()
                    .map(|b| {
                        format!(
                            " (band {:.1}-{:.1}s ±{}s, {})",
                            b.low_s,
                            b.high_s,
                            b.tolerance_s,
                            match b.verdict {
                                linecut_analyzer::Verdict::Outside => "OUTSIDE",
                                v => v.words(),
                            }
                        )
                    })
                    .unwrap_or_default()
            };
            // Only in runs that watched for wills.
            let will = if m.will_s.is_some() || m.will_band.is_some() {
                format!(", will after {}{}", s(m.will_s), band(&m.will_band))
            } else {
                String::new()
            };
            linecut_runner::say(format_args!(
                "fault {} ({}) {}: client gave up after {}{}, broker after {}{will}, back {} after the end",
                w.fault,
                w.kind,
                m.client,
                s(m.client_detect_s),
                band(&m.client_detect_band),
                s(m.broker_detect_s),
                s(m.reconnect_s),
            ));
        }
    }
    for x in &report.expectations {
        let values: Vec<String> = x
            .values
            .values()
            .map(|v| v.map_or("none".into(), |v| format!("{v}")))
            .collect();
        linecut_runner::say(format_args!(
            "expect {} {}: {} ({})",
            x.metric,
            x.condition,
            if x.ok { "pass" } else { "FAIL" },
            x.problem.clone().unwrap_or_else(|| values.join(", "))
        ));
    }
    linecut_runner::say(format_args!("report: {}", dir.join("report.md").display()));
}

#[derive(Debug, Args)]
pub struct AnalyzeArgs {
    /// A run directory (as left by `linecut run`), or a packet capture (pcap or pcapng).
    run_dir: PathBuf,

    /// Capture only: the broker's TCP port.
    #[arg(long, default_value_t = 1883)]
    port: u16,

    /// Capture only: the subscribers' client library (e.g. "paho-mqtt 1.6", "rumqttc"), so
    /// its detection band applies.
    #[arg(long, value_name = "LIBRARY")]
    client: Option<String>,

    /// Capture only: the broker (e.g. "mosquitto 2.0"), so its detection band applies.
    #[arg(long, value_name = "NAME")]
    broker: Option<String>,

    /// Capture only: where the reports go (default: next to the capture, NAME-report/).
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
}

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct ReportArgs {
    #[command(subcommand)]
    merge: Option<ReportCommand>,

    /// A directory holding run directories and sweeps (e.g. results/).
    #[arg(required = true)]
    dir: Option<PathBuf>,
}

#[derive(Debug, clap::Subcommand)]
enum ReportCommand {
    /// Combine the shard directories of one sweep (`linecut sweep --shard I/N`) into one.
    Merge {
        /// The shard directories.
        #[arg(required = true)]
        shards: Vec<PathBuf>,
        /// Where the merged sweep goes (must not exist yet, or be empty).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
}

pub fn analyze(args: AnalyzeArgs) -> anyhow::Result<ExitCode> {
    if args.run_dir.is_file() {
        return analyze_capture(args);
    }
    let report = linecut_analyzer::analyze_dir(&args.run_dir)?;
    print_verdicts(&report, &args.run_dir);
    Ok(if !report.complete {
        ExitCode::from(2)
    } else if report.expectations_hold() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn analyze_capture(args: AnalyzeArgs) -> anyhow::Result<ExitCode> {
    let path = &args.run_dir;
    let out = args.out.clone().unwrap_or_else(|| {
        let stem = path
            .file_stem()
            .map_or_else(|| "capture".into(), |s| s.to_string_lossy().into_owned());
        path.with_file_name(format!("{stem}-report"))
    });
    let report = linecut_analyzer::analyze_capture(
        path,
        args.port,
        args.client.as_deref(),
        args.broker.as_deref(),
        &out,
    )?;
    if let Some(c) = &report.capture {
        linecut_runner::say(format_args!(
            "{}: {} {} frames, {} MQTT connection(s) on port {}, {} MQTT packet(s), {} gap(s)",
            path.display(),
            c.container,
            c.frames,
            c.connections,
            c.port,
            c.mqtt_packets,
            c.gaps
        ));
        if let Some(stopped) = &c.stopped {
            linecut_runner::say(format_args!("reading stopped early: {stopped}"));
        }
    }
    print_verdicts(&report, &out);
    Ok(if report.complete {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    })
}

/// Regenerates the reports of every run directory under `dir` from its stored events, then
/// the comparisons of the sweeps among them.
pub fn report(args: ReportArgs) -> anyhow::Result<ExitCode> {
    if let Some(ReportCommand::Merge { shards, out }) = &args.merge {
        return crate::sweep_cmd::merge(shards, out);
    }
    let dir = args.dir.expect("clap requires DIR without a subcommand");
    let (mut runs, mut sweeps) = (Vec::new(), Vec::new());
    find_runs(&dir, &mut runs, &mut sweeps)?;
    runs.sort();
    sweeps.sort();
    if runs.is_empty() {
        anyhow::bail!(
            "{}: no run directories (with a meta.json) below it",
            dir.display()
        );
    }
    for run in &runs {
        linecut_analyzer::analyze_dir(run)?;
        println!("{}: reports regenerated", run.display());
    }
    for sweep in &sweeps {
        linecut_sweep::write_reports(sweep)?;
        println!("{}: sweep reports regenerated", sweep.display());
    }
    // A directory holding sweeps of the same clients (or brokers) under different outages is
    // a matrix: its comparison is regenerated with them.
    // Only inside DIR: regenerating one sweep does not rewrite what lies beside it.
    let mut parents: Vec<PathBuf> = sweeps
        .iter()
        .filter_map(|s| s.parent().map(std::path::Path::to_path_buf))
        .filter(|p| p.starts_with(&dir))
        .collect();
    parents.dedup();
    for parent in parents {
        if let Some((columns, rows)) = linecut_sweep::matrix::sweeps_of(&parent) {
            linecut_sweep::matrix::write(&parent, &columns, rows)?;
            println!("{}: matrix regenerated", parent.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn find_runs(
    dir: &std::path::Path,
    runs: &mut Vec<PathBuf>,
    sweeps: &mut Vec<PathBuf>,
) -> anyhow::Result<()> {
    if RunLayout::new(dir).meta().is_file() {
        runs.push(dir.to_path_buf());
        return Ok(());
    }
    if linecut_sweep::is_sweep_dir(dir) {
        sweeps.push(dir.to_path_buf());
    }
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if path.is_dir() {
            find_runs(&path, runs, sweeps)?;
        }
    }
    Ok(())
}

pub fn validate(args: ValidateArgs) -> anyhow::Result<ExitCode> {
    let mut bad = 0;
    for file in &args.files {
        let scenario = linecut_scenario::load(file);
        // What this machine cannot run is refused here too, not after the run has started.
        if let Err(e) = scenario
            .as_ref()
            .map(linecut_runner::check_machine)
            .unwrap_or(Ok(()))
        {
            bad += 1;
            eprintln!("{}: {e}", file.display());
            continue;
        }
        match scenario {
            Ok(s) => println!(
                "{}: ok ({}, {} fault(s), {} subscriber(s){})",
                file.display(),
                humantime::format_duration(s.duration),
                s.faults.len() + s.link_faults.len(),
                s.subscriber.settings.count,
                match s.network.mode {
                    linecut_model::NetworkMode::Proxy => String::new(),
                    mode => format!(", {mode} mode"),
                }
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

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Scenario files to run.
    #[arg(required = true)]
    scenarios: Vec<PathBuf>,

    /// Where the run directories go (default: runs/check/; one per scenario, replaced on
    /// every check).
    #[arg(long, value_name = "DIR")]
    out_dir: Option<PathBuf>,

    /// Also write the verdicts as JUnit XML, for CI systems.
    #[arg(long, value_name = "FILE")]
    junit: Option<PathBuf>,
}

/// One scenario's outcome in a check.
struct Verdict {
    scenario: String,
    seconds: f64,
    /// Why the run itself failed (incomplete, could not run, not analysed).
    error: Option<String>,
    expectations: Vec<linecut_analyzer::ExpectationResult>,
}

/// Runs scenarios one after another and prints one verdict table (exit 0, 1 or 2).
pub fn check(args: CheckArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let out_dir = args
        .out_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(DEFAULT_RUNS_DIR).join("check"));
    let mut verdicts = Vec::new();
    for path in &args.scenarios {
        let scenario = linecut_scenario::load(path)?;
        let started = std::time::Instant::now();
        let options = RunOptions {
            dir: out_dir.join(&scenario.name),
            force: true,
            display: DisplayMode::Quiet,
        };
        linecut_runner::say(format_args!("checking {} ...", path.display()));
        let interrupt = {
            let _inside = runtime.enter();
            shutdown_signal(None)
        };
        let outcome = runtime.block_on(linecut_runner::run(&scenario, &options, interrupt));
        let mut verdict = Verdict {
            scenario: scenario.name.clone(),
            seconds: 0.0,
            error: None,
            expectations: Vec::new(),
        };
        match outcome {
            Err(e) => verdict.error = Some(format!("could not run: {e}")),
            Ok(outcome) => {
                if let RunStatus::Incomplete(reason) = &outcome.status {
                    verdict.error = Some(format!("incomplete: {reason}"));
                }
                match outcome.report {
                    Ok(report) => verdict.expectations = report.expectations,
                    Err(e) => verdict.error = Some(format!("not analysed: {e}")),
                }
            }
        }
        verdict.seconds = started.elapsed().as_secs_f64();
        verdicts.push(verdict);
    }
    println!("{:<24} {:<12} expectations", "scenario", "verdict");
    for v in &verdicts {
        let passed = v.expectations.iter().filter(|e| e.ok).count();
        let state = match (&v.error, passed == v.expectations.len()) {
            (Some(_), _) => "ERROR",
            (None, true) => "pass",
            (None, false) => "FAIL",
        };
        let failed: Vec<String> = v
            .expectations
            .iter()
            .filter(|e| !e.ok)
            .map(|e| format!("{} {}", e.metric, e.condition))
            .collect();
        let detail = v.error.clone().unwrap_or_else(|| {
            if failed.is_empty() {
                format!("{passed}/{} held", v.expectations.len())
            } else {
                format!(
                    "{passed}/{} held; failed: {}",
                    v.expectations.len(),
                    failed.join("; ")
                )
            }
        });
        println!("{:<24} {:<12} {}", v.scenario, state, detail);
    }
    if let Some(path) = &args.junit {
        std::fs::write(path, junit(&verdicts))
            .with_context(|| format!("--junit {}", path.display()))?;
    }
    Ok(if verdicts.iter().any(|v| v.error.is_some()) {
        ExitCode::from(2)
    } else if verdicts.iter().all(|v| v.expectations.iter().all(|e| e.ok)) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn xml(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// JUnit XML: one suite per scenario; a test case for the run itself and one per expectation.
fn junit(verdicts: &[Verdict]) -> String {
    let mut out =
        String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"linecut\">\n");
    for v in verdicts {
        let failures = v.expectations.iter().filter(|e| !e.ok).count();
        let errors = usize::from(v.error.is_some());
        out.push_str(&format!(
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{failures}\" errors=\"{errors}\" time=\"{:.3}\">\n",
            xml(&v.scenario),
            v.expectations.len() + 1,
            v.seconds
        ));
        out.push_str(&format!(
            "    <testcase classname=\"{}\" name=\"run completes\">",
            xml(&v.scenario)
        ));
        if let Some(e) = &v.error {
            out.push_str(&format!("<error message=\"{}\"/>", xml(e)));
        }
        out.push_str("</testcase>\n");
        for e in &v.expectations {
            out.push_str(&format!(
                "    <testcase classname=\"{}\" name=\"{} {}\">",
                xml(&v.scenario),
                xml(&e.metric),
                xml(&e.condition)
            ));
            if !e.ok {
                let values: Vec<String> = e
                    .values
                    .iter()
                    .map(|(c, v)| format!("{c}={}", v.map_or("none".into(), |v| v.to_string())))
                    .collect();
                let message = e.problem.clone().unwrap_or_else(|| values.join(", "));
                out.push_str(&format!("<failure message=\"{}\"/>", xml(&message)));
            }
            out.push_str("</testcase>\n");
        }
        out.push_str("  </testsuite>\n");
    }
    out.push_str("</testsuites>\n");
    out
}
