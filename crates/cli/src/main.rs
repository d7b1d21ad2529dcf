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
mod proxy_cmd;

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
    /// Run the fault-injecting MQTT-aware TCP proxy between clients and a broker.
    Proxy(proxy_cmd::ProxyArgs),
    /// Run subscribers that log every connect, ping, message and disconnect.
    Subscribe(agent_cmd::SubscribeArgs),
    /// Publish stamped samples (sequence number and publish time) at a fixed interval.
    Publish(agent_cmd::PublishArgs),
    /// Run the embedded MQTT broker (rumqttd) on its own.
    Broker(broker_cmd::BrokerArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("LINECUT_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let result = match cli.command {
        Command::Proxy(args) => proxy_cmd::run(args),
        Command::Subscribe(args) => agent_cmd::subscribe(args),
        Command::Publish(args) => agent_cmd::publish(args),
        Command::Broker(args) => broker_cmd::run(args),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("linecut: error: {error:#}");
            ExitCode::from(2)
        }
    }
}
