//! `linecut`: network-fault experiments for MQTT clients and brokers.
//!
//! This binary only parses arguments and dispatches to the library crates; each subcommand's
//! glue lives in its own module. Errors from libraries arrive as typed errors and are reported
//! here with `anyhow` context.
//!
//! Exit codes (the same for every subcommand):
//! - 0: ran, and every expectation held;
//! - 1: ran, and an expectation failed;
//! - 2: bad input (arguments, files) or the harness itself failed.

mod agent_cmd;
mod broker_cmd;
mod common;
mod doctor_cmd;
mod proxy_cmd;
mod run_cmd;
mod sweep_cmd;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

const EXIT_CODES: &str = "\
Exit codes:
  0  ran, and every expectation held
  1  ran, and an expectation failed
  2  bad input (arguments, files) or the harness itself failed";

#[derive(Debug, Parser)]
#[command(name = "linecut", version, about, after_help = EXIT_CODES)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a scenario end to end and leave a run directory (default results/<name>/).
    Run(run_cmd::RunArgs),
    /// Run scenarios and print one verdict table (--junit for CI systems).
    Check(run_cmd::CheckArgs),
    /// (Re)compute a run directory's reports and check its expectations.
    Analyze(run_cmd::AnalyzeArgs),
    /// Regenerate the reports of every run and sweep under DIR from their stored events;
    /// `report merge SHARD... --out DIR` combines sweep shards.
    Report(run_cmd::ReportArgs),
    /// Run a scenario over a grid of settings (--set PATH=V1,V2) in parallel isolated cells
    /// and compare them in one report.
    Sweep(sweep_cmd::SweepArgs),
    /// Check scenario files without running them.
    Validate(run_cmd::ValidateArgs),
    /// Print the JSON Schema of scenario files (for editors).
    Schema,
    /// Run the fault-injecting MQTT-aware TCP proxy between clients and a broker.
    Proxy(proxy_cmd::ProxyArgs),
    /// Run subscribers that log every connect, ping, message and disconnect.
    Subscribe(agent_cmd::SubscribeArgs),
    /// Publish stamped samples (sequence number and publish time) at a fixed interval.
    Publish(agent_cmd::PublishArgs),
    /// Run the embedded MQTT broker (rumqttd) on its own.
    Broker(broker_cmd::BrokerArgs),
    /// Check what namespace mode needs of this machine (with a fix for each missing piece);
    /// --clean removes what killed namespace runs left behind.
    Doctor(doctor_cmd::DoctorArgs),
}

/// Our own diagnostics go to stderr (`LINECUT_LOG` sets the level, default warn). The embedded
/// broker's log (target `rumqttd`) is kept off the terminal and written to the run directory.
fn init_logging() {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::Layer;
    let ours = std::env::var("LINECUT_LOG").unwrap_or_else(|_| "warn".into());
    // Colour only for a person at a terminal, never into a file or a pipe.
    let terminal = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_filter(tracing_subscriber::EnvFilter::new(format!(
            "{ours},rumqttd=off"
        )));
    let broker = tracing_subscriber::fmt::layer()
        .with_writer(linecut_broker::embedded_log_writer)
        .with_ansi(false)
        .with_filter(
            tracing_subscriber::filter::Targets::new().with_target("rumqttd", tracing::Level::INFO),
        );
    tracing_subscriber::registry()
        .with(terminal)
        .with(broker)
        .init();
}

/// An error and its causes on one line, each said once: library errors already name their
/// cause in their own message (`cannot write X: No space left on device`), so a cause that the
/// text so far already contains is not repeated.
fn error_text(error: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in error.chain() {
        let part = cause.to_string();
        if text.contains(&part) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&part);
    }
    text
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    let result = match cli.command {
        Command::Run(args) => run_cmd::run(args),
        Command::Check(args) => run_cmd::check(args),
        Command::Analyze(args) => run_cmd::analyze(args),
        Command::Report(args) => run_cmd::report(args),
        Command::Sweep(args) => sweep_cmd::sweep(args),
        Command::Validate(args) => run_cmd::validate(args),
        Command::Schema => run_cmd::schema(),
        Command::Proxy(args) => proxy_cmd::run(args),
        Command::Subscribe(args) => agent_cmd::subscribe(args),
        Command::Publish(args) => agent_cmd::publish(args),
        Command::Broker(args) => broker_cmd::run(args),
        Command::Doctor(args) => doctor_cmd::doctor(args),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            // Not eprintln!: with stderr a closed pipe it would panic, and exit 101.
            linecut_runner::say(format_args!("error: {}", error_text(&error)));
            ExitCode::from(2)
        }
    }
}
