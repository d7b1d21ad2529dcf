//! `linecut proxy`: argument shapes and the glue that binds sockets, opens the events file and
//! runs a [`linecut_proxy::Proxy`] until Ctrl-C, SIGTERM or `--duration`.
//!
//! The first line on stdout is the bound listen address (so scripts can use `--listen
//! 127.0.0.1:0`); with `--control`, the second is `control http://ADDR`. Everything else goes to
//! stderr or the events file.

use crate::common::{finish_events, open_events, shutdown_signal};
use anyhow::{bail, Context};
use clap::{Args, ValueEnum};
use linecut_events::Source;
use linecut_proxy::{FaultSpec, Proxy, ProxyConfig, WireLog};
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Debug, Args)]
#[command(after_help = FAULT_HELP)]
pub struct ProxyArgs {
    /// Address to listen on for clients (port 0 picks a free port, printed on stdout).
    #[arg(long, default_value = "127.0.0.1:11883", value_name = "ADDR")]
    listen: SocketAddr,

    /// The broker, as HOST:PORT.
    #[arg(long, value_parser = parse_upstream, value_name = "HOST:PORT")]
    upstream: String,

    /// A fault to schedule, as KIND[:key=value,...]; repeat the flag for several.
    #[arg(long = "fault", value_parser = parse_fault, value_name = "SPEC")]
    faults: Vec<FaultSpec>,

    /// Write events (JSON Lines) to this file.
    #[arg(long, value_name = "FILE")]
    events: Option<PathBuf>,

    /// Write both legs of every connection to this file as a pcap (opens in Wireshark; read
    /// back with `linecut analyze FILE --port PORT`).
    #[arg(long, value_name = "FILE")]
    pcap: Option<PathBuf>,

    /// Serve the live control API (HTTP/JSON) on this address (port 0 picks a free port,
    /// printed as the second stdout line, `control http://ADDR`).
    #[arg(long, value_name = "ADDR")]
    control: Option<SocketAddr>,

    /// Allow --control on an address other than loopback (anyone who can reach it can inject
    /// faults).
    #[arg(long)]
    allow_remote_control: bool,

    /// Which packets to log: every packet (PUBLISH-flow packets rate-limited, see
    /// --publish-log-limit), control packets only, or none.
    #[arg(long, value_enum, default_value_t = WireLogArg::All)]
    wire_log: WireLogArg,

    /// With --wire-log all: PUBLISH-flow packets logged one by one per second per connection
    /// direction; the rest are counted in `publish_suppressed` events. 0 = no limit.
    #[arg(long, default_value_t = linecut_proxy::DEFAULT_PUBLISH_LIMIT, value_name = "N")]
    publish_log_limit: u32,

    /// Live connections at most; beyond it, accepting pauses.
    #[arg(long, default_value_t = 20_000, value_parser = clap::value_parser!(u32).range(1..), value_name = "N")]
    max_connections: u32,

    /// How long to wait for the broker to accept a connection.
    #[arg(long, value_parser = linecut_model::parse_duration, default_value = "5s", value_name = "DURATION")]
    connect_timeout: Duration,

    /// Stop by itself after this long (otherwise run until Ctrl-C or SIGTERM).
    #[arg(long, value_parser = linecut_model::parse_duration, value_name = "DURATION")]
    duration: Option<Duration>,
}

const FAULT_HELP: &str = "\
Faults (--fault KIND[:key=value,...]):
  kinds: cut, blackhole, reset, close, refuse, latency, bandwidth
  every kind: at=DURATION (start, default 0s)  for=DURATION (default: open-ended)
              dir=up|down|both  target=all|new|client=PATTERN  every=DURATION count=N
  cut:        hold=SIZE (bytes held per direction, default 1MiB)  give_up=DURATION
  blackhole:  mode=packet|raw
  latency:    delay=DURATION  jitter=DURATION
  bandwidth:  rate=SIZE (bytes per second)
Example:
  linecut proxy --listen 127.0.0.1:11883 --upstream 127.0.0.1:1883 \\
      --fault cut:at=10s,for=120s,dir=both --events proxy.jsonl";

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum WireLogArg {
    All,
    Control,
    Off,
}

fn parse_fault(text: &str) -> Result<FaultSpec, String> {
    FaultSpec::parse(text).map_err(|e| e.to_string())
}

fn parse_upstream(text: &str) -> Result<String, String> {
    let Some((host, port)) = text.rsplit_once(':') else {
        return Err("expected HOST:PORT, e.g. 127.0.0.1:1883".into());
    };
    if host.is_empty() {
        return Err("the host is empty; expected HOST:PORT".into());
    }
    match port.parse::<u16>() {
        Ok(0) | Err(_) => Err(format!("`{port}` is not a port number (1-65535)")),
        Ok(_) => Ok(text.to_string()),
    }
}

pub fn run(args: ProxyArgs) -> anyhow::Result<ExitCode> {
    if let Some(control) = args.control {
        if !control.ip().is_loopback() && !args.allow_remote_control {
            bail!(
                "--control {control} is not a loopback address; the control API can inject \
                 faults, so pass --allow-remote-control to expose it"
            );
        }
    }
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(serve(args))
}

async fn serve(args: ProxyArgs) -> anyhow::Result<ExitCode> {
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("--listen {}: cannot bind", args.listen))?;
    let control = match args.control {
        Some(addr) => Some(
            tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("--control {addr}: cannot bind"))?,
        ),
        None => None,
    };
    let (log, sink) = open_events(args.events.as_ref(), Source::Proxy, "linecut-proxy")?;
    let mut config = ProxyConfig::new(args.upstream.clone());
    config.wire_log = match args.wire_log {
        WireLogArg::All => WireLog::All {
            publish_limit: args.publish_log_limit,
        },
        WireLogArg::Control => WireLog::Control,
        WireLogArg::Off => WireLog::Off,
    };
    config.max_connections = args.max_connections as usize;
    config.connect_timeout = args.connect_timeout;
    if let Some(path) = &args.pcap {
        let tap = linecut_capture::PcapTap::create(path)
            .with_context(|| format!("--pcap {}: cannot create", path.display()))?;
        config.pcap = Some(std::sync::Arc::new(tap));
    }
    let pcap = config.pcap.clone();
    let proxy = Proxy::new(config, sink);
    for spec in args.faults {
        proxy.schedule(spec);
    }
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "{}", listener.local_addr()?)?;
        if let Some(c) = &control {
            writeln!(out, "control http://{}", c.local_addr()?)?;
        }
        out.flush()?;
    }
    let duration = args.duration;
    let summary = proxy
        .run(listener, control, async move {
            shutdown_signal(duration).await;
        })
        .await
        .context("proxy failed")?;
    tracing::info!("proxy stopped after {} connections", summary.connections);
    if let (Some(tap), Some(path)) = (pcap, &args.pcap) {
        tap.finish()
            .with_context(|| format!("--pcap {}: writing failed", path.display()))?;
    }
    finish_events(log)?;
    Ok(ExitCode::SUCCESS)
}
