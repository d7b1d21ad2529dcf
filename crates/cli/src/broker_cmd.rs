//! `linecut broker`: the embedded broker on its own, for experiments run by hand.
//! Prints the bound address as the first line on stdout (as `linecut proxy` does).

use crate::common::shutdown_signal;
use anyhow::Context;
use clap::Args;
use linecut_broker::{EmbeddedBroker, EmbeddedConfig};
use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Debug, Args)]
pub struct BrokerArgs {
    /// Address to listen on (port 0 picks a free port, printed on stdout).
    #[arg(long, default_value = "127.0.0.1:1883", value_name = "ADDR")]
    listen: SocketAddr,

    /// Stop by itself after this long (otherwise run until Ctrl-C or SIGTERM).
    #[arg(long, value_parser = linecut_model::parse_duration, value_name = "DURATION")]
    duration: Option<Duration>,
}

pub fn run(args: BrokerArgs) -> anyhow::Result<ExitCode> {
    let config = EmbeddedConfig {
        listen: args.listen,
        ..EmbeddedConfig::default()
    };
    let broker =
        EmbeddedBroker::start(config).with_context(|| format!("--listen {}", args.listen))?;
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "{}", broker.addr())?;
        out.flush()?;
    }
    eprintln!(
        "linecut: {} listening on {}",
        broker.describe(),
        broker.addr()
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let stop = {
        let _inside = runtime.enter();
        shutdown_signal(args.duration)
    };
    runtime.block_on(stop);
    // rumqttd has no shutdown: leaving the process ends it.
    Ok(ExitCode::SUCCESS)
}
