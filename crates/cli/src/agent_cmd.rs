//! `linecut subscribe` and `linecut publish`: the agents run on their own, against any broker.
//!
//! Options are validated (by clap, then by the agent's own rules) before anything connects, so
//! a bad option is exit code 2 and no traffic at all.

use crate::common::{finish_events, open_events, parse_whole_seconds, shutdown_signal};
use anyhow::Context;
use clap::{ArgAction, Args};
use linecut_agent::{
    fleet_ids, publisher_session, run_fleet, run_publisher, Protocol, PublisherOptions,
    ReconnectPolicy, ResubscribePolicy, SubscriberOptions, Topic,
};
use linecut_events::{AgentStopped, EventKind, Source};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use tokio::sync::watch;

#[derive(Debug, Args)]
pub struct SubscribeArgs {
    /// The broker (or the proxy in front of it), as HOST:PORT.
    #[arg(long, value_name = "HOST:PORT")]
    broker: String,

    /// Client id; with --count, `{n}` is replaced by 1..N (or `-N` is appended).
    #[arg(long, default_value = "linecut-sub", value_name = "ID")]
    client_id: String,

    /// Run this many subscribers, each with its own connection (fleet mode).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..), value_name = "N")]
    count: u32,

    /// Topic filter to subscribe to, as FILTER[:QOS]; repeat for several.
    #[arg(long = "topic", value_parser = Topic::parse, default_value = "linecut/#", value_name = "FILTER[:QOS]")]
    topics: Vec<Topic>,

    /// Keepalive in whole seconds (0 turns it off).
    #[arg(long, default_value = "60s", value_parser = parse_keepalive, value_name = "DURATION")]
    keepalive: u16,

    /// Start with a clean session (false keeps the session across reconnects).
    #[arg(long, default_value_t = true, action = ArgAction::Set, value_name = "BOOL")]
    clean_session: bool,

    /// Time allowed for TCP connect plus CONNACK, whole seconds.
    #[arg(long, default_value = "5s", value_parser = parse_whole_seconds, value_name = "DURATION")]
    connect_timeout: u64,

    /// immediate | fixed:DURATION | exponential:min=DURATION,max=DURATION[,jitter=FRACTION]
    #[arg(long, default_value = "exponential:min=1s,max=120s", value_parser = ReconnectPolicy::parse, value_name = "POLICY")]
    reconnect: ReconnectPolicy,

    /// MQTT version: 3.1.1 or 5 (rumqttc's MQTT 5 client needs a keepalive of at least 5s).
    #[arg(long, default_value = "3.1.1", value_parser = Protocol::parse, value_name = "VERSION")]
    mqtt: Protocol,

    /// When to SUBSCRIBE again after a reconnect: always | when-session-lost | never.
    #[arg(long, default_value = "always", value_parser = ResubscribePolicy::parse, value_name = "POLICY")]
    resubscribe: ResubscribePolicy,

    /// Write events (JSON Lines) to this file.
    #[arg(long, value_name = "FILE")]
    events: Option<PathBuf>,

    /// Stop by itself after this long (otherwise run until Ctrl-C or SIGTERM).
    #[arg(long, value_parser = humantime::parse_duration, value_name = "DURATION")]
    duration: Option<Duration>,
}

#[derive(Debug, Args)]
pub struct PublishArgs {
    /// The broker, as HOST:PORT (publish straight to it, not through the proxy).
    #[arg(long, value_name = "HOST:PORT")]
    broker: String,

    #[arg(long, default_value = "linecut-pub", value_name = "ID")]
    client_id: String,

    /// Topic to publish to; repeat for several (each has its own sequence).
    #[arg(long = "topic", default_value = "linecut/data", value_name = "TOPIC")]
    topics: Vec<String>,

    /// Time between samples on each topic.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration, conflicts_with = "rate", value_name = "DURATION")]
    interval: Duration,

    /// Samples per second on each topic (instead of --interval).
    #[arg(long, value_name = "PER_SECOND")]
    rate: Option<f64>,

    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=2))]
    qos: u8,

    /// MQTT version: 3.1.1 or 5.
    #[arg(long, default_value = "3.1.1", value_parser = Protocol::parse, value_name = "VERSION")]
    mqtt: Protocol,

    /// Publish with the retain flag.
    #[arg(long)]
    retain: bool,

    /// Payload size in bytes (padded; at least the stamp's own length).
    #[arg(long, default_value_t = 64, value_name = "BYTES")]
    size: usize,

    #[arg(long, default_value = "30s", value_parser = parse_keepalive, value_name = "DURATION")]
    keepalive: u16,

    #[arg(long, default_value = "5s", value_parser = parse_whole_seconds, value_name = "DURATION")]
    connect_timeout: u64,

    #[arg(long, default_value = "fixed:200ms", value_parser = ReconnectPolicy::parse, value_name = "POLICY")]
    reconnect: ReconnectPolicy,

    #[arg(long, value_name = "FILE")]
    events: Option<PathBuf>,

    #[arg(long, value_parser = humantime::parse_duration, value_name = "DURATION")]
    duration: Option<Duration>,
}

fn parse_keepalive(text: &str) -> Result<u16, String> {
    let secs = parse_whole_seconds(text)?;
    u16::try_from(secs).map_err(|_| format!("`{text}` is longer than MQTT allows (65535s)"))
}

pub fn subscribe(args: SubscribeArgs) -> anyhow::Result<ExitCode> {
    let options = SubscriberOptions {
        broker: args.broker.clone(),
        client_id: args.client_id.clone(),
        keepalive_s: args.keepalive,
        clean_session: args.clean_session,
        topics: args.topics.clone(),
        connect_timeout_s: args.connect_timeout,
        reconnect: args.reconnect,
        resubscribe: args.resubscribe,
        protocol: args.mqtt,
    };
    options.validate().context("invalid subscriber options")?;
    let ids = fleet_ids(&args.client_id, args.count);
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async {
        let (log, sink) = open_events(
            args.events.as_ref(),
            Source::Subscriber,
            "linecut-subscriber",
        )?;
        let (stop, stopped) = watch::channel(false);
        let fleet = run_fleet(&options, ids, &sink, stopped, Default::default());
        tokio::pin!(fleet);
        let stats = tokio::select! {
            stats = &mut fleet => stats,
            _ = shutdown_signal(args.duration) => {
                let _ = stop.send(true);
                fleet.await
            }
        };
        sink.emit(EventKind::AgentStopped(AgentStopped {
            clients: stats.clients,
            messages: stats.messages,
            incomplete: false,
        }));
        eprintln!(
            "linecut: {} subscriber(s) received {} message(s) ({} foreign), {} disconnect(s)",
            stats.clients, stats.messages, stats.foreign, stats.disconnects
        );
        finish_events(log)?;
        Ok(ExitCode::SUCCESS)
    })
}

pub fn publish(args: PublishArgs) -> anyhow::Result<ExitCode> {
    let interval = match args.rate {
        Some(rate) if rate.is_finite() && rate > 0.0 => Duration::from_secs_f64(1.0 / rate),
        Some(rate) => {
            anyhow::bail!("--rate {rate}: must be a positive number of samples per second")
        }
        None => args.interval,
    };
    let options = PublisherOptions {
        broker: args.broker.clone(),
        client_id: args.client_id.clone(),
        keepalive_s: args.keepalive,
        topics: args.topics.clone(),
        qos: args.qos,
        retain: args.retain,
        payload_size: args.size,
        interval,
        connect_timeout_s: args.connect_timeout,
        reconnect: args.reconnect,
        protocol: args.mqtt,
    };
    options.validate().context("invalid publisher options")?;
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async {
        let (log, sink) =
            open_events(args.events.as_ref(), Source::Publisher, "linecut-publisher")?;
        let (stop, stopped) = watch::channel(false);
        let session = publisher_session(&options);
        let publisher = run_publisher(&options, session, &sink, stopped);
        tokio::pin!(publisher);
        let stats = tokio::select! {
            stats = &mut publisher => stats,
            _ = shutdown_signal(args.duration) => {
                let _ = stop.send(true);
                publisher.await
            }
        };
        sink.emit(EventKind::AgentStopped(AgentStopped {
            clients: 1,
            messages: stats.published,
            incomplete: false,
        }));
        eprintln!(
            "linecut: published {} message(s), {} acknowledged",
            stats.published, stats.acknowledged
        );
        finish_events(log)?;
        Ok(ExitCode::SUCCESS)
    })
}
