//! `linecut subscribe` and `linecut publish`: the agents run on their own, against any broker.
//!
//! Options are validated (by clap, then by the agent's own rules) before anything connects, so
//! a bad option is exit code 2 and no traffic at all.

use crate::common::{finish_events, open_events, shutdown_signal};
use anyhow::Context;
use clap::{ArgAction, Args};
use linecut_agent::{
    fleet_ids, publisher_session, run_fleet, run_publisher, PublisherOptions, SubscriberOptions,
};
use linecut_events::{AgentStopped, EventKind, Source};
use linecut_model::duration::{interval_from_rate, parse_whole_seconds};
use linecut_model::settings::MAX_CONNECT_TIMEOUT_S;
use linecut_model::{
    parse_duration, Protocol, PublisherSettings, ReconnectPolicy, ResubscribePolicy,
    SubscriberSettings, Topic, Will,
};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use tokio::sync::watch;

// Every default below is read from the model's `Default`, the one place it is written; clap
// parses it back through the same parser as a typed value, so help and behaviour agree.
fn sub() -> SubscriberSettings {
    SubscriberSettings::default()
}

fn publ() -> PublisherSettings {
    PublisherSettings::default()
}

fn seconds(s: impl Into<u64>) -> String {
    format!("{}s", s.into())
}

#[derive(Debug, Args)]
pub struct SubscribeArgs {
    /// The broker (or the proxy in front of it), as HOST:PORT.
    #[arg(long, value_name = "HOST:PORT")]
    broker: String,

    /// Client id; with --count, `{n}` is replaced by 1..N (or `-N` is appended).
    #[arg(long, default_value = sub().client_id, value_name = "ID")]
    client_id: String,

    /// Run this many subscribers, each with its own connection (fleet mode).
    #[arg(long, default_value_t = sub().count, value_name = "N")]
    count: u32,

    /// Topic filter to subscribe to, as FILTER[:QOS]; repeat for several.
    #[arg(long = "topic", value_parser = Topic::parse, default_values_t = sub().topics, value_name = "FILTER[:QOS]")]
    topics: Vec<Topic>,

    /// Keepalive in whole seconds (0 turns it off).
    #[arg(long, default_value = seconds(sub().keepalive_s), value_parser = parse_keepalive, value_name = "DURATION")]
    keepalive: u16,

    /// Start with a clean session (false keeps the session across reconnects).
    #[arg(long, default_value_t = sub().clean_session, action = ArgAction::Set, value_name = "BOOL")]
    clean_session: bool,

    /// Time allowed for TCP connect plus CONNACK, whole seconds.
    #[arg(long, default_value = seconds(sub().connect_timeout_s), value_parser = parse_connect_timeout, value_name = "DURATION")]
    connect_timeout: u64,

    /// immediate | fixed:DURATION | exponential:min=DURATION,max=DURATION[,jitter=FRACTION]
    #[arg(long, default_value_t = sub().reconnect, value_parser = ReconnectPolicy::parse, value_name = "POLICY")]
    reconnect: ReconnectPolicy,

    /// MQTT version: 3.1.1 or 5 (rumqttc's MQTT 5 client needs a keepalive of at least 5s).
    #[arg(long, default_value_t = sub().protocol, value_parser = Protocol::parse, value_name = "VERSION")]
    mqtt: Protocol,

    /// When to SUBSCRIBE again after a reconnect: always | when-session-lost | never.
    #[arg(long, default_value_t = sub().resubscribe, value_parser = ResubscribePolicy::parse, value_name = "POLICY")]
    resubscribe: ResubscribePolicy,

    /// MQTT 5 Session Expiry Interval, whole seconds (how long the broker keeps the session).
    #[arg(long, value_parser = parse_u32_seconds, value_name = "DURATION")]
    session_expiry: Option<u32>,

    /// MQTT 5 Receive Maximum.
    #[arg(long, value_name = "N")]
    receive_maximum: Option<u16>,

    /// Leave a Last Will on this topic (`{client_id}` becomes each subscriber's id).
    #[arg(long, value_name = "TOPIC")]
    will_topic: Option<String>,

    /// The will's payload (default: the client id).
    #[arg(long, requires = "will_topic", value_name = "TEXT")]
    will_payload: Option<String>,

    /// The will's QoS.
    #[arg(long, requires = "will_topic", default_value_t = 0, value_name = "QOS")]
    will_qos: u8,

    /// Publish the will retained.
    #[arg(long, requires = "will_topic")]
    will_retain: bool,

    /// MQTT 5 Will Delay Interval, whole seconds.
    #[arg(long, requires = "will_topic", value_parser = parse_u32_seconds, value_name = "DURATION")]
    will_delay: Option<u32>,

    /// Write events (JSON Lines) to this file.
    #[arg(long, value_name = "FILE")]
    events: Option<PathBuf>,

    /// Stop by itself after this long (otherwise run until Ctrl-C or SIGTERM).
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    duration: Option<Duration>,
}

fn parse_u32_seconds(text: &str) -> Result<u32, String> {
    parse_whole_seconds(text, u64::from(u32::MAX)).map(|s| s as u32)
}

impl SubscribeArgs {
    /// The settings these flags give (every field named, so none can be forgotten).
    fn settings(&self) -> SubscriberSettings {
        SubscriberSettings {
            client_id: self.client_id.clone(),
            count: self.count,
            keepalive_s: self.keepalive,
            clean_session: self.clean_session,
            topics: self.topics.clone(),
            connect_timeout_s: self.connect_timeout,
            reconnect: self.reconnect,
            resubscribe: self.resubscribe,
            protocol: self.mqtt,
            will: self.will_topic.as_ref().map(|topic| Will {
                topic: topic.clone(),
                payload: self
                    .will_payload
                    .clone()
                    .unwrap_or_else(Will::default_payload),
                qos: self.will_qos,
                retain: self.will_retain,
                delay_s: self.will_delay,
            }),
            session_expiry_s: self.session_expiry,
            receive_maximum: self.receive_maximum,
        }
    }
}

#[derive(Debug, Args)]
pub struct PublishArgs {
    /// The broker, as HOST:PORT (publish straight to it, not through the proxy).
    #[arg(long, value_name = "HOST:PORT")]
    broker: String,

    #[arg(long, default_value = publ().client_id, value_name = "ID")]
    client_id: String,

    /// Topic to publish to; repeat for several (each has its own sequence).
    #[arg(long = "topic", default_values_t = publ().topics, value_name = "TOPIC")]
    topics: Vec<String>,

    /// Time between samples on each topic.
    #[arg(long, default_value = humantime::format_duration(publ().interval).to_string(), value_parser = parse_duration, conflicts_with = "rate", value_name = "DURATION")]
    interval: Duration,

    /// Samples per second on each topic (instead of --interval).
    #[arg(long, value_parser = parse_rate, value_name = "PER_SECOND")]
    rate: Option<Duration>,

    #[arg(long, default_value_t = publ().qos)]
    qos: u8,

    /// MQTT version: 3.1.1 or 5.
    #[arg(long, default_value_t = publ().protocol, value_parser = Protocol::parse, value_name = "VERSION")]
    mqtt: Protocol,

    /// Publish with the retain flag.
    #[arg(long)]
    retain: bool,

    /// Payload size in bytes (padded; at least the stamp's own length).
    #[arg(long, default_value_t = publ().size, value_name = "BYTES")]
    size: usize,

    #[arg(long, default_value = seconds(publ().keepalive_s), value_parser = parse_keepalive, value_name = "DURATION")]
    keepalive: u16,

    #[arg(long, default_value = seconds(publ().connect_timeout_s), value_parser = parse_connect_timeout, value_name = "DURATION")]
    connect_timeout: u64,

    #[arg(long, default_value_t = publ().reconnect, value_parser = ReconnectPolicy::parse, value_name = "POLICY")]
    reconnect: ReconnectPolicy,

    #[arg(long, value_name = "FILE")]
    events: Option<PathBuf>,

    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    duration: Option<Duration>,
}

impl PublishArgs {
    /// The settings these flags give (every field named, so none can be forgotten).
    fn settings(&self) -> PublisherSettings {
        PublisherSettings {
            client_id: self.client_id.clone(),
            keepalive_s: self.keepalive,
            topics: self.topics.clone(),
            qos: self.qos,
            retain: self.retain,
            size: self.size,
            interval: self.rate.unwrap_or(self.interval),
            connect_timeout_s: self.connect_timeout,
            reconnect: self.reconnect,
            protocol: self.mqtt,
        }
    }
}

/// `--rate`, as the interval it gives (bounded: see `interval_from_rate`).
fn parse_rate(text: &str) -> Result<Duration, String> {
    let rate: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("`{text}` is not a number of samples per second"))?;
    interval_from_rate(rate)
}

fn parse_keepalive(text: &str) -> Result<u16, String> {
    parse_whole_seconds(text, u64::from(u16::MAX)).map(|s| s as u16)
}

fn parse_connect_timeout(text: &str) -> Result<u64, String> {
    parse_whole_seconds(text, MAX_CONNECT_TIMEOUT_S)
}

/// Settings errors as the command line spells them: `--client-id: ...`.
fn flag_errors(e: linecut_agent::AgentError) -> anyhow::Error {
    let fields = e.fields();
    if fields.is_empty() {
        return anyhow::anyhow!("--{e}");
    }
    anyhow::anyhow!(
        "{}",
        fields
            .iter()
            .map(|f| format!("--{}: {}", flag_name(f.field), f.message))
            .collect::<Vec<_>>()
            .join("; ")
    )
}

/// The flag for a settings field (`client_id` is `--client-id`, `topics` is `--topic`).
fn flag_name(field: &str) -> String {
    match field {
        "topics" => "topic".into(),
        "protocol" => "mqtt".into(),
        other => other.replace(['_', '.'], "-"),
    }
}

pub fn subscribe(args: SubscribeArgs) -> anyhow::Result<ExitCode> {
    let options = SubscriberOptions {
        broker: args.broker.clone(),
        settings: args.settings(),
    };
    options
        .validate()
        .map_err(flag_errors)
        .context("invalid subscriber options")?;
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
    let options = PublisherOptions {
        broker: args.broker.clone(),
        settings: args.settings(),
    };
    options
        .validate()
        .map_err(flag_errors)
        .context("invalid publisher options")?;
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
        if stats.connections == 0 {
            // Nothing reached a broker: "published" counted messages that never left.
            eprintln!(
                "linecut: error: never connected to {}; none of those messages left",
                args.broker
            );
            return Ok(ExitCode::from(2));
        }
        Ok(ExitCode::SUCCESS)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Sub {
        #[command(flatten)]
        args: SubscribeArgs,
    }

    #[derive(Parser)]
    struct Pub {
        #[command(flatten)]
        args: PublishArgs,
    }

    /// The command line's defaults are the model's: the one definition every door uses.
    #[test]
    fn flag_defaults_are_the_settings_defaults() {
        let sub = Sub::try_parse_from(["x", "--broker", "h:1"]).unwrap();
        assert_eq!(sub.args.settings(), SubscriberSettings::default());
        let publ = Pub::try_parse_from(["x", "--broker", "h:1"]).unwrap();
        assert_eq!(publ.args.settings(), PublisherSettings::default());
    }

    #[test]
    fn rates_and_durations_are_bounded_at_the_flag() {
        for args in [
            vec!["x", "--broker", "h:1", "--rate", "1e-300"],
            vec!["x", "--broker", "h:1", "--rate", "1e9"],
            vec!["x", "--broker", "h:1", "--duration", "300000000000y"],
        ] {
            let err = Pub::try_parse_from(&args).err().unwrap().to_string();
            assert!(
                err.contains("samples per second")
                    || err.contains("365 days")
                    || err.contains("1000"),
                "{args:?}: {err}"
            );
        }
    }
}
