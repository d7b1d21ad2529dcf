//! linecut scenario files: one TOML file describes a whole experiment.
//!
//! Parsing has two stages. [`raw`] deserialises the file into structs that keep every value's
//! byte span and reject unknown keys; [`parse`] then checks values against each other (a fault
//! that starts after the run ends, a keepalive longer than the run) and builds the typed
//! [`Scenario`]. Every problem is reported with file, line, column and the dotted field name,
//! and all problems of a file are reported at once.
//!
//! The format is documented with an annotated example of every section in `scenarios/README.md`;
//! [`schema::json_schema`] is its JSON Schema (`linecut schema`).

mod check;
use check::Checker;
pub mod broker;
pub mod client;
mod error;
mod raw;
pub mod schema;

pub use client::ClientKind;
pub use error::{Problem, ScenarioError};

use error::{closest, Locator};
use linecut_model::duration::{interval_from_rate, parse_duration};
use linecut_model::network::{MAX_RETRIES2, MAX_SYN_RETRIES};
use linecut_model::settings::MAX_CONNECT_TIMEOUT_S;
use linecut_model::{
    check_text, BrokerFault, Condition, FieldError, Jitter, LinkKind, Metric, MetricName,
    MosquittoSettings, Protocol, PublisherSettings, ReconnectPolicy, ResubscribePolicy,
    SubscriberSettings, TextUse, Topic, Will,
};
pub use linecut_model::{LinkFaultSpec, NetworkMode, TcpSettings};
use linecut_proxy::faults::{self, KeyDef, KeyType};
use linecut_proxy::spec::COMMON_KEYS;
use linecut_proxy::FaultSpec;
use raw::{RawFault, RawNetwork, RawScenario};

/// Subscribers a namespace run holds: one namespace each, on one /24 (see linecut-netns).
pub const MAX_NAMESPACE_SUBSCRIBERS: u32 = 252;

/// The keys of `[sweep.goal]`, what a deployment needs of its keepalive: each a duration.
pub const SWEEP_GOAL_KEYS: [&str; 3] = ["notice_within", "idle_timeout", "will_within"];

/// The `[[fault]]` key that moves a fault's start at random (see [`linecut_model::phase`]);
/// not `jitter`, which the latency fault has for its own delays.
pub const JITTER_KEY: &str = "start_jitter";
use std::collections::BTreeMap;
use std::ops::Range;
use std::path::Path;
use std::time::Duration;
use toml::Spanned;

/// The fault kinds each network mode plays, from the two registries (the proxy's fault kinds,
/// the link kinds): the one table `validate` and the checks below answer from.
pub fn kinds_played_by(mode: NetworkMode) -> Vec<&'static str> {
    match mode {
        NetworkMode::Proxy => faults::KINDS.iter().map(|k| k.name).collect(),
        NetworkMode::Namespace => LinkKind::NAMES.to_vec(),
    }
}

/// Whether `mode` plays fault kind `kind`.
fn plays(mode: NetworkMode, kind: &str) -> bool {
    kinds_played_by(mode).contains(&kind)
}

/// Which broker an experiment runs against.
#[derive(Debug, Clone, PartialEq)]
pub enum BrokerSpec {
    /// rumqttd inside the linecut process, on a free loopback port.
    Embedded,
    /// A mosquitto process started by the runner with a generated configuration.
    Mosquitto(MosquittoSettings),
    /// Another project's broker the runner starts (aedes, amqtt).
    Program(broker::BrokerProgram),
    /// A broker the user runs; linecut starts nothing.
    External { address: String },
}

/// Who subscribes, and with which settings.
#[derive(Debug, Clone)]
pub struct SubscriberSpec {
    /// linecut's agent or a client under test.
    pub client: ClientKind,
    pub settings: SubscriberSettings,
}

/// `[network]`: where the faults are played.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NetworkSpec {
    pub mode: NetworkMode,
    pub tcp: TcpSettings,
}

/// A validated experiment.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub name: String,
    pub description: Option<String>,
    /// How long the experiment runs once every subscriber is subscribed.
    pub duration: Duration,
    pub broker: BrokerSpec,
    pub publisher: PublisherSettings,
    pub subscriber: SubscriberSpec,
    /// The proxy's fault schedule; `at` counts from the moment every subscriber is subscribed.
    pub faults: Vec<FaultSpec>,
    /// Each fault's `jitter` (same order as `faults`): how far the runner may move its start.
    pub fault_jitter: Vec<Option<Jitter>>,
    /// The seed the phase draws use; the runner draws one when it is absent (and records it).
    pub seed: Option<u64>,
    /// Expectations, metric name to condition, checked by the analyzer.
    pub expect: BTreeMap<String, String>,
    /// Write both legs of every proxied connection to `capture.pcap` in the run directory.
    pub capture_pcap: bool,
    /// Proxy or namespace mode, and the device's TCP settings (namespace mode).
    pub network: NetworkSpec,
    /// The link faults of a namespace run (its `faults` is then empty); `fault_jitter` and
    /// the `[[fault]]` numbering apply to them.
    pub link_faults: Vec<LinkFaultSpec>,
    /// The broker's own faults (`restart`), played by the runner in either mode.
    pub broker_faults: Vec<BrokerFault>,
    /// The file as written.
    pub source: String,
}

fn duration_text(d: Duration) -> String {
    if d.is_zero() {
        "0s".into()
    } else {
        humantime::format_duration(d).to_string()
    }
}

fn quoted(text: &str) -> String {
    toml::Value::String(text.to_string()).to_string()
}

impl Scenario {
    /// The scenario with every default filled in, as TOML that parses back to the same scenario
    /// (kept in a run directory next to the file as written).
    pub fn resolved_toml(&self) -> String {
        let mut out = format!(
            "# Resolved by linecut: every default filled in.\nname = {}\n",
            quoted(&self.name)
        );
        if let Some(d) = &self.description {
            out.push_str(&format!("description = {}\n", quoted(d)));
        }
        out.push_str(&format!(
            "duration = {}\n",
            quoted(&duration_text(self.duration))
        ));
        if let Some(seed) = self.seed {
            out.push_str(&format!("seed = {seed}\n"));
        }
        out.push_str("\n[broker]\n");
        match &self.broker {
            BrokerSpec::Embedded => out.push_str("kind = \"embedded\"\n"),
            BrokerSpec::Mosquitto(m) => {
                out.push_str(&format!(
                    "kind = \"mosquitto\"\npersistence = {}\n",
                    m.persistence
                ));
                if let Some(e) = m.persistent_client_expiration {
                    out.push_str(&format!(
                        "persistent_client_expiration = {}\n",
                        quoted(&duration_text(e))
                    ));
                }
                if let Some(k) = m.max_keepalive {
                    out.push_str(&format!("max_keepalive = {k}\n"));
                }
                out.push_str(&format!(
                    "max_queued_messages = {}\n",
                    m.max_queued_messages
                ));
            }
            BrokerSpec::Program(p) => {
                out.push_str(&format!("kind = \"{}\"\n", p.spec().kind));
            }
            BrokerSpec::External { address } => {
                out.push_str(&format!(
                    "kind = \"external\"\naddress = {}\n",
                    quoted(address)
                ));
            }
        }
        let p = &self.publisher;
        let topics: Vec<String> = p.topics.iter().map(|t| quoted(t)).collect();
        out.push_str(&format!(
            "\n[publisher]\ntopics = [{}]\ninterval = {}\nqos = {}\nretain = {}\nsize = {}\nmqtt = \"{}\"\nkeepalive = \"{}s\"\n",
            topics.join(", "),
            quoted(&duration_text(p.interval)),
            p.qos,
            p.retain,
            p.size,
            p.protocol,
            p.keepalive_s
        ));
        let (client, s) = (&self.subscriber.client, &self.subscriber.settings);
        let topics: Vec<String> = s
            .topics
            .iter()
            .map(|t| quoted(&format!("{}:{}", t.name, t.qos)))
            .collect();
        out.push_str(&format!(
            "\n[subscriber]\nclient = \"{}\"\ncount = {}\nclient_id = {}\nkeepalive = \"{}s\"\nclean_session = {}\ntopics = [{}]\nmqtt = \"{}\"\n",
            client.name(),
            s.count,
            quoted(&s.client_id),
            s.keepalive_s,
            s.clean_session,
            topics.join(", "),
            s.protocol
        ));
        if let Some(e) = s.session_expiry_s {
            out.push_str(&format!("session_expiry = \"{e}s\"\n"));
        }
        if let Some(r) = s.receive_maximum {
            out.push_str(&format!("receive_maximum = {r}\n"));
        }
        if let Some(w) = &s.will {
            out.push_str(&format!(
                "will = {{ topic = {}, payload = {}, qos = {}, retain = {}",
                quoted(&w.topic),
                quoted(&w.payload),
                w.qos,
                w.retain
            ));
            if let Some(d) = w.delay_s {
                out.push_str(&format!(", delay = \"{d}s\""));
            }
            out.push_str(" }\n");
        }
        // Only the settings the kind of client really uses: the others are rejected for it.
        match client {
            ClientKind::Rumqttc => out.push_str(&format!(
                "connect_timeout = \"{}s\"\nreconnect = {}\nresubscribe = \"{}\"\n",
                s.connect_timeout_s,
                quoted(&s.reconnect.to_string()),
                s.resubscribe,
            )),
            ClientKind::PahoPython { paho, python } => {
                out.push_str(&format!(
                    "reconnect = {}\npaho = {}\n",
                    quoted(&s.reconnect.to_string()),
                    quoted(paho)
                ));
                if let Some(p) = python {
                    out.push_str(&format!("python = {}\n", quoted(&p.to_string_lossy())));
                }
            }
            ClientKind::MosquittoSub | ClientKind::Program(_) => {}
            ClientKind::Command {
                argv,
                pattern,
                library,
            } => {
                let args: Vec<String> = argv.iter().map(|a| quoted(a)).collect();
                out.push_str(&format!("command = [{}]\n", args.join(", ")));
                if let Some(p) = pattern {
                    out.push_str(&format!("pattern = {}\n", quoted(p)));
                }
                if let Some(l) = library {
                    out.push_str(&format!("library = {}\n", quoted(l)));
                }
            }
        }
        for (i, fault) in self.faults.iter().enumerate() {
            out.push_str(&format!("\n[[fault]]\nkind = {}\n", quoted(fault.kind())));
            if let Some(Some(jitter)) = self.fault_jitter.get(i) {
                out.push_str(&format!("{JITTER_KEY} = {}\n", quoted(&jitter.to_string())));
            }
            let types = COMMON_KEYS.iter().chain(fault.fault.descriptor().keys);
            let types: Vec<&KeyDef> = types.collect();
            for (key, value) in fault.pairs() {
                let count = types
                    .iter()
                    .any(|d| d.name == key && d.ty == KeyType::Count);
                if count {
                    out.push_str(&format!("{key} = {value}\n"));
                } else {
                    out.push_str(&format!("{key} = {}\n", quoted(&value)));
                }
            }
        }
        for (i, link) in self.link_faults.iter().enumerate() {
            out.push_str(&format!(
                "\n[[fault]]\nkind = {}\n",
                quoted(link.kind.name())
            ));
            if let Some(Some(jitter)) = self.fault_jitter.get(i) {
                out.push_str(&format!("{JITTER_KEY} = {}\n", quoted(&jitter.to_string())));
            }
            out.push_str(&format!(
                "at = {}\n",
                quoted(&duration_text(link.schedule.at))
            ));
            if let Some(d) = link.schedule.duration {
                out.push_str(&format!("for = {}\n", quoted(&duration_text(d))));
            }
            out.push_str(&format!("dir = {}\n", quoted(link.schedule.dir.name())));
            if link.schedule.target != linecut_model::Target::All {
                out.push_str(&format!(
                    "target = {}\n",
                    quoted(&link.schedule.target.to_string())
                ));
            }
            if let Some(linecut_model::Repeat { every, count }) = link.schedule.repeat {
                out.push_str(&format!("every = {}\n", quoted(&duration_text(every))));
                if let Some(c) = count {
                    out.push_str(&format!("count = {c}\n"));
                }
            }
            // The kind's own keys: numbers as numbers, words and durations as strings.
            for (key, value) in link.params() {
                if value.parse::<f64>().is_ok() {
                    out.push_str(&format!("{key} = {value}\n"));
                } else {
                    out.push_str(&format!("{key} = {}\n", quoted(&value)));
                }
            }
        }
        for fault in &self.broker_faults {
            out.push_str(&format!(
                "\n[[fault]]\nkind = {}\nat = {}\nfor = {}\n",
                quoted(fault.kind()),
                quoted(&duration_text(fault.at())),
                quoted(&duration_text(fault.down()))
            ));
        }
        if self.network.mode == NetworkMode::Namespace {
            out.push_str("\n[network]\nmode = \"namespace\"\n");
            let t = &self.network.tcp;
            let mut put = |key: &str, v: Option<String>| {
                if let Some(v) = v {
                    out.push_str(&format!("{key} = {v}\n"));
                }
            };
            put("tcp_syn_retries", t.syn_retries.map(|v| v.to_string()));
            put("tcp_retries2", t.retries2.map(|v| v.to_string()));
            put(
                "tcp_keepalive_time",
                t.keepalive_time_s.map(|v| quoted(&format!("{v}s"))),
            );
            put(
                "tcp_keepalive_intvl",
                t.keepalive_intvl_s.map(|v| quoted(&format!("{v}s"))),
            );
            put(
                "tcp_keepalive_probes",
                t.keepalive_probes.map(|v| v.to_string()),
            );
        }
        if self.capture_pcap {
            out.push_str("\n[capture]\npcap = true\n");
        }
        if !self.expect.is_empty() {
            out.push_str("\n[expect]\n");
            for (metric, condition) in &self.expect {
                out.push_str(&format!("{} = {}\n", quoted(metric), quoted(condition)));
            }
        }
        out
    }
}

/// Reads and validates a scenario file.
pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
    let text = std::fs::read_to_string(path).map_err(|e| ScenarioError {
        file: path.to_path_buf(),
        problems: vec![Problem {
            line: 0,
            column: 0,
            field: "(file)".into(),
            message: format!("cannot read: {e}"),
            suggestion: None,
        }],
    })?;
    parse(path, &text)
}

/// Validates scenario text; `path` labels errors and names the scenario by default.
pub fn parse(path: &Path, text: &str) -> Result<Scenario, ScenarioError> {
    let locate = Locator::new(text);
    let fail = |problems| ScenarioError {
        file: path.to_path_buf(),
        problems,
    };
    let raw: RawScenario =
        toml::from_str(text).map_err(|e| fail(vec![raw::problem(&e, text, &locate)]))?;
    let mut check = Checker {
        locate: &locate,
        problems: Vec::new(),
    };
    let scenario = check.scenario(path, raw, text);
    if check.problems.is_empty() {
        Ok(scenario.expect("no problems means a scenario"))
    } else {
        Err(fail(check.problems))
    }
}

#[cfg(test)]
mod tests;
