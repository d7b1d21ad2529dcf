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
    check_text, Condition, FieldError, Jitter, LinkKind, MetricName, MosquittoSettings, Protocol,
    PublisherSettings, ReconnectPolicy, ResubscribePolicy, SubscriberSettings, TextUse, Topic,
};
pub use linecut_model::{LinkFaultSpec, NetworkMode, TcpSettings};
use linecut_proxy::faults::{self, KeyDef, KeyType};
use linecut_proxy::spec::COMMON_KEYS;
use linecut_proxy::FaultSpec;
use raw::{RawFault, RawNetwork, RawScenario};

/// Subscribers a namespace run holds: one namespace each, on one /24 (see linecut-netns).
pub const MAX_NAMESPACE_SUBSCRIBERS: u32 = 252;

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
            ClientKind::MosquittoSub => {}
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
            if let LinkKind::Cut { layer } = link.kind {
                out.push_str(&format!("layer = \"{}\"\n", layer.name()));
            }
            if let LinkKind::Loss { probability } = link.kind {
                out.push_str(&format!("probability = {probability}\n"));
            }
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

struct Checker<'a> {
    locate: &'a Locator<'a>,
    problems: Vec<Problem>,
}

impl Checker<'_> {
    fn problem(&mut self, span: Range<usize>, field: &str, message: impl Into<String>) {
        self.problem_with(span, field, message, None);
    }

    fn problem_with(
        &mut self,
        span: Range<usize>,
        field: &str,
        message: impl Into<String>,
        suggestion: Option<String>,
    ) {
        let (line, column) = self.locate.at(span.start);
        self.problems.push(Problem {
            line,
            column,
            field: field.to_string(),
            message: message.into(),
            suggestion,
        });
    }

    fn duration(&mut self, value: &Spanned<String>, field: &str) -> Option<Duration> {
        match parse_duration(value.get_ref()) {
            Ok(d) => Some(d),
            Err(e) => {
                self.problem(
                    value.span(),
                    field,
                    format!("`{}` {e}; write e.g. 500ms, 10s, 2m", value.get_ref()),
                );
                None
            }
        }
    }

    fn whole_seconds(&mut self, value: &Spanned<String>, field: &str, max: u64) -> Option<u64> {
        let d = self.duration(value, field)?;
        if d.subsec_nanos() != 0 {
            self.problem(
                value.span(),
                field,
                format!("`{}` must be whole seconds", value.get_ref()),
            );
            return None;
        }
        if d.as_secs() > max {
            self.problem(
                value.span(),
                field,
                format!("`{}` is more than {max}s", value.get_ref()),
            );
            return None;
        }
        Some(d.as_secs())
    }

    fn parsed<T>(
        &mut self,
        value: &Spanned<String>,
        field: &str,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Option<T> {
        match parse(value.get_ref()) {
            Ok(v) => Some(v),
            Err(e) => {
                self.problem(value.span(), field, e);
                None
            }
        }
    }

    fn scenario(&mut self, path: &Path, raw: RawScenario, text: &str) -> Option<Scenario> {
        // The name becomes the run directory's name: it is checked as a file name, and so is
        // the file stem it defaults to.
        let (name, span) = match &raw.name {
            Some(n) => (n.get_ref().clone(), n.span()),
            None => (
                path.file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_else(|| "scenario".into()),
                0..0,
            ),
        };
        if let Err(e) = check_text(&name, TextUse::FileName) {
            self.problem(span, "name", format!("{name:?} {e}"));
        }
        let duration = self.duration(&raw.duration, "duration");
        if duration.is_some_and(|d| d.is_zero()) {
            self.problem(raw.duration.span(), "duration", "must be longer than 0s");
        }
        let broker = self.broker(&raw);
        let publisher = self.publisher(&raw);
        let subscriber = self.subscriber(&raw, duration);
        // rumqttd, the embedded broker, refuses client ids with `+ $ # /` (legal in MQTT;
        // `validate_clientid` in its router), and then fails in ways that hide why.
        if let (Some(BrokerSpec::Embedded), Some(sub)) = (&broker, &subscriber) {
            if let Some(c) = "+$#/".chars().find(|c| sub.settings.client_id.contains(*c)) {
                let span = raw
                    .subscriber
                    .as_ref()
                    .and_then(|s| s.client_id.as_ref())
                    .map_or(0..0, |c| c.span());
                self.problem(
                    span,
                    "subscriber.client_id",
                    format!("contains `{c}`, which the embedded broker (rumqttd) refuses in a client id; use kind = \"mosquitto\" to test such ids"),
                );
            }
        }
        let network = self.network(raw.network.as_ref());
        let namespace = network
            .as_ref()
            .is_some_and(|n| n.mode == NetworkMode::Namespace);
        if namespace {
            self.fit_namespace(&raw, subscriber.as_ref(), broker.as_ref());
        }
        let faults = if namespace {
            self.link_faults(&raw.faults, duration)
                .map(|(links, jitters)| (Vec::new(), links, jitters))
        } else {
            self.faults(&raw.faults, duration)
                .map(|(specs, jitters)| (specs, Vec::new(), jitters))
        };
        if let (Some((specs, links, jitters)), Some(d), Some(sub)) =
            (&faults, duration, &subscriber)
        {
            let starts: Vec<Duration> = if namespace {
                links.iter().map(|l| l.schedule.at).collect()
            } else {
                specs.iter().map(|f| f.schedule.at).collect()
            };
            self.check_phases(&raw.faults, &starts, jitters, d, sub.settings.keepalive_s);
        }
        // A target that matches none of the subscribers would play the fault on nobody while
        // the run counts it as started and judges everyone against it (review D4).
        if let Some(sub) = &subscriber {
            let ids = linecut_model::fleet_ids(&sub.settings.client_id, sub.settings.count);
            for (i, fault) in raw.faults.iter().enumerate() {
                let target = fault
                    .get_ref()
                    .iter()
                    .find(|(k, _)| k.get_ref() == "target");
                let Some((_, value)) = target else { continue };
                let Some(pattern) = value
                    .get_ref()
                    .as_str()
                    .and_then(|t| t.strip_prefix("client="))
                else {
                    continue;
                };
                let glob = linecut_model::Glob::new(pattern);
                if !ids.iter().any(|id| glob.matches(id)) {
                    let shown: Vec<&str> = ids.iter().take(3).map(String::as_str).collect();
                    self.problem(
                        value.span(),
                        &format!("fault[{}].target", i + 1),
                        format!(
                            "`client={pattern}` matches none of the subscribers ({}{})",
                            shown.join(", "),
                            if ids.len() > 3 { ", …" } else { "" }
                        ),
                    );
                }
            }
        }
        let seed = raw
            .seed
            .as_ref()
            .and_then(|s| match u64::try_from(*s.get_ref()) {
                Ok(seed) => Some(seed),
                Err(_) => {
                    self.problem(s.span(), "seed", "must be a whole number from 0");
                    None
                }
            });
        // The sweep's axes are applied and checked by `linecut sweep`; here only their shape.
        if let Some(sweep) = &raw.sweep {
            for (key, value) in sweep.get_ref() {
                let (ok, want) = match key.as_str() {
                    "repeat" => (
                        value.as_integer().is_some_and(|n| n >= 1),
                        "a whole number from 1",
                    ),
                    "phase" => (
                        matches!(value.as_str(), Some("random" | "fixed")),
                        "\"random\" (each repeat draws its own fault phase) or \"fixed\"",
                    ),
                    _ => (
                        value.as_array().is_some_and(|a| !a.is_empty()),
                        "a non-empty list of values, e.g. [\"1s\", \"5s\"]",
                    ),
                };
                if !ok {
                    self.problem(
                        sweep.span(),
                        &format!("sweep.{key}"),
                        format!("must be {want}"),
                    );
                }
            }
        }
        let expect = self.expectations(raw.expect.unwrap_or_default());
        Some(Scenario {
            name,
            description: raw.description,
            duration: duration?,
            broker: broker?,
            publisher: publisher?,
            subscriber: subscriber?,
            faults: faults.as_ref()?.0.clone(),
            link_faults: faults.as_ref()?.1.clone(),
            fault_jitter: faults?.2,
            network: network?,
            seed,
            expect,
            capture_pcap: raw.capture.as_ref().and_then(|c| c.pcap).unwrap_or(false),
            source: text.to_string(),
        })
    }

    /// `[expect]`: every key must name a metric linecut reports and every value must be a
    /// condition, or the run would be wasted on a typo.
    fn expectations(
        &mut self,
        table: BTreeMap<Spanned<String>, Spanned<toml::Value>>,
    ) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        for (key, value) in table {
            let field = format!("expect.{}", key.get_ref());
            if let Err(e) = MetricName::parse(key.get_ref()) {
                self.problem(key.span(), &field, e);
            }
            let span = value.span();
            let condition = match value.into_inner() {
                toml::Value::String(s) => s,
                other => other.to_string(),
            };
            if let Err(e) = Condition::parse(&condition) {
                self.problem(span, &field, e);
            }
            out.insert(key.into_inner(), condition);
        }
        out
    }

    fn broker(&mut self, raw: &RawScenario) -> Option<BrokerSpec> {
        let Some(b) = &raw.broker else {
            return Some(BrokerSpec::Embedded);
        };
        let kind = b.kind.as_ref().map_or("embedded", |k| k.get_ref().as_str());
        let kind_span = b.kind.as_ref().map_or(0..0, |k| k.span());
        let mosquitto_only = b.persistence.is_some()
            || b.persistent_client_expiration.is_some()
            || b.max_keepalive.is_some();
        match kind {
            "embedded" | "mosquitto" | "external" => {}
            other => {
                self.problem_with(
                    kind_span.clone(),
                    "broker.kind",
                    format!("`{other}` is not a broker kind; use embedded, mosquitto or external"),
                    closest(other, ["embedded", "mosquitto", "external"]).map(|s| format!("`{s}`")),
                );
                return None;
            }
        }
        if mosquitto_only && kind != "mosquitto" {
            self.problem(kind_span.clone(), "broker.kind", format!("persistence, persistent_client_expiration and max_keepalive are mosquitto settings, but kind is `{kind}`"));
        }
        match kind {
            "embedded" => {
                if let Some(a) = &b.address {
                    self.problem(a.span(), "broker.address", "the embedded broker picks its own free port; `address` is for kind = \"external\"");
                }
                Some(BrokerSpec::Embedded)
            }
            "mosquitto" => {
                let expiration = b
                    .persistent_client_expiration
                    .as_ref()
                    .and_then(|e| self.duration(e, "broker.persistent_client_expiration"));
                if let (Some(e), Some(d)) = (&b.persistent_client_expiration, expiration) {
                    if d < Duration::from_secs(3600) {
                        self.problem(
                            e.span(),
                            "broker.persistent_client_expiration",
                            "mosquitto's smallest unit is 1h",
                        );
                    }
                }
                Some(BrokerSpec::Mosquitto(MosquittoSettings {
                    persistence: b.persistence.unwrap_or(false),
                    persistent_client_expiration: expiration,
                    max_keepalive: b.max_keepalive.as_ref().map(|k| *k.get_ref()),
                }))
            }
            _ => match &b.address {
                Some(a) => {
                    let ok = self.parsed(a, "broker.address", |t| {
                        linecut_model::protocol::parse_address(t).map(|_| ())
                    });
                    ok.map(|()| BrokerSpec::External {
                        address: a.get_ref().clone(),
                    })
                }
                None => {
                    self.problem(
                        kind_span,
                        "broker.address",
                        "kind = \"external\" needs `address = \"HOST:PORT\"`",
                    );
                    None
                }
            },
        }
    }

    /// Reports the rules the settings break, each at the place in the file that set the field
    /// (or at the section, for a default the rule refused in combination with another field).
    fn settings_errors(
        &mut self,
        section: &str,
        errors: Vec<FieldError>,
        span_of: impl Fn(&str) -> Option<Range<usize>>,
    ) {
        for e in errors {
            let span = span_of(e.field).unwrap_or(0..0);
            self.problem(span, &format!("{section}.{}", e.field), e.message);
        }
    }

    fn publisher(&mut self, raw: &RawScenario) -> Option<PublisherSettings> {
        let p = raw.publisher.clone().unwrap_or_default();
        let d = PublisherSettings::default();
        let topics: Vec<String> = p.topics.as_ref().map_or(d.topics.clone(), |list| {
            list.iter().map(|t| t.get_ref().clone()).collect()
        });
        let interval = match (&p.interval, &p.rate) {
            (Some(_), Some(r)) => {
                self.problem(
                    r.span(),
                    "publisher.rate",
                    "give `interval` or `rate`, not both",
                );
                None
            }
            (Some(i), None) => self.duration(i, "publisher.interval"),
            (None, Some(r)) => match interval_from_rate(*r.get_ref()) {
                Ok(i) => Some(i),
                Err(e) => {
                    self.problem(r.span(), "publisher.rate", e);
                    None
                }
            },
            (None, None) => Some(d.interval),
        };
        let protocol = match p.mqtt.as_ref() {
            None => Some(d.protocol),
            Some(v) => self.parsed(v, "publisher.mqtt", Protocol::parse),
        };
        let keepalive_s = match &p.keepalive {
            Some(k) => self
                .whole_seconds(k, "publisher.keepalive", 65_535)
                .map(|k| k as u16),
            None => Some(d.keepalive_s),
        };
        let settings = PublisherSettings {
            topics,
            interval: interval?,
            qos: p.qos.as_ref().map_or(d.qos, |q| *q.get_ref()),
            retain: p.retain.unwrap_or(d.retain),
            size: p.size.as_ref().map_or(d.size, |s| *s.get_ref() as usize),
            protocol: protocol?,
            keepalive_s: keepalive_s?,
            ..d
        };
        let errors = settings.validate();
        let ok = errors.is_empty();
        self.settings_errors("publisher", errors, |field| match field {
            "topics" => p.topics.as_ref().and_then(|t| t.first()).map(|t| t.span()),
            "interval" => p.interval.as_ref().map(|i| i.span()),
            "qos" => p.qos.as_ref().map(|q| q.span()),
            "size" => p.size.as_ref().map(|s| s.span()),
            "keepalive" => p.keepalive.as_ref().map(|k| k.span()),
            _ => None,
        });
        ok.then_some(settings)
    }

    fn subscriber(
        &mut self,
        raw: &RawScenario,
        duration: Option<Duration>,
    ) -> Option<SubscriberSpec> {
        let s = raw.subscriber.clone().unwrap_or_default();
        let d = SubscriberSettings::default();
        let keepalive_s = match &s.keepalive {
            Some(k) => self
                .whole_seconds(k, "subscriber.keepalive", 65_535)
                .map(|k| k as u16),
            None => Some(d.keepalive_s),
        };
        if let (Some(k), Some(run)) = (keepalive_s, duration) {
            if u64::from(k) > run.as_secs() {
                let span = s
                    .keepalive
                    .as_ref()
                    .map_or(raw.duration.span(), |k| k.span());
                self.problem(
                    span,
                    "subscriber.keepalive",
                    format!(
                        "{k}s is longer than the run ({}): no outage could be detected within it",
                        humantime::format_duration(run)
                    ),
                );
            }
        }
        let protocol = match s.mqtt.as_ref() {
            None => Some(d.protocol),
            Some(v) => self.parsed(v, "subscriber.mqtt", Protocol::parse),
        };
        let client = self.client_kind(&s, keepalive_s);
        let topics = match &s.topics {
            None => Some(d.topics.clone()),
            Some(list) => list
                .iter()
                .map(|t| self.parsed(t, "subscriber.topics", Topic::parse))
                .collect::<Vec<_>>()
                .into_iter()
                .collect(),
        };
        let connect_timeout_s = match &s.connect_timeout {
            Some(c) => self.whole_seconds(c, "subscriber.connect_timeout", MAX_CONNECT_TIMEOUT_S),
            None => Some(d.connect_timeout_s),
        };
        let reconnect = match &s.reconnect {
            Some(r) => self.parsed(r, "subscriber.reconnect", ReconnectPolicy::parse),
            None => Some(d.reconnect),
        };
        let resubscribe = match &s.resubscribe {
            Some(r) => self.parsed(r, "subscriber.resubscribe", ResubscribePolicy::parse),
            None => Some(d.resubscribe),
        };
        let settings = SubscriberSettings {
            client_id: s
                .client_id
                .as_ref()
                .map_or(d.client_id.clone(), |c| c.get_ref().clone()),
            count: s.count.as_ref().map_or(d.count, |c| *c.get_ref()),
            keepalive_s: keepalive_s?,
            clean_session: s.clean_session.unwrap_or(d.clean_session),
            topics: topics?,
            connect_timeout_s: connect_timeout_s?,
            reconnect: reconnect?,
            resubscribe: resubscribe?,
            protocol: protocol?,
        };
        let client = client?;
        // linecut's own agent is rumqttc, with rumqttc's rules on top of every client's.
        let errors = match client {
            ClientKind::Rumqttc => settings.validate_for_agent(),
            _ => settings.validate(),
        };
        let ok = errors.is_empty();
        self.settings_errors("subscriber", errors, |field| match field {
            "client_id" => s.client_id.as_ref().map(|c| c.span()),
            "count" => s.count.as_ref().map(|c| c.span()),
            "keepalive" => s.keepalive.as_ref().map(|k| k.span()),
            "topics" => s.topics.as_ref().and_then(|t| t.first()).map(|t| t.span()),
            "connect_timeout" => s.connect_timeout.as_ref().map(|c| c.span()),
            _ => None,
        });
        ok.then_some(SubscriberSpec { client, settings })
    }

    /// The client kind and its own settings; settings of another kind are rejected, so a file
    /// never says something the run would silently ignore.
    fn client_kind(
        &mut self,
        s: &raw::RawSubscriber,
        keepalive_s: Option<u16>,
    ) -> Option<ClientKind> {
        let kind = s
            .client
            .as_ref()
            .map_or("rumqttc", |k| k.get_ref().as_str());
        let kind_span = s.client.as_ref().map_or(0..0, |k| k.span());
        if !ClientKind::NAMES.contains(&kind) {
            self.problem_with(
                kind_span,
                "subscriber.client",
                format!(
                    "`{kind}` is not a client kind; use {}",
                    ClientKind::NAMES.join(", ")
                ),
                closest(kind, ClientKind::NAMES)
                    .or_else(|| {
                        ClientKind::NAMES
                            .into_iter()
                            .find(|n| n.starts_with(kind) || kind.starts_with(n))
                    })
                    .map(|s| format!("`{s}`")),
            );
            return None;
        }
        // Settings that belong to some kinds only (the table is the client module's).
        let span_of = |field: &str| match field {
            "paho" => s.paho.as_ref().map(|v| v.span()),
            "python" => s.python.as_ref().map(|v| v.span()),
            "command" => s.command.as_ref().map(|v| v.span()),
            "pattern" => s.pattern.as_ref().map(|v| v.span()),
            "library" => s.library.as_ref().map(|v| v.span()),
            "connect_timeout" => s.connect_timeout.as_ref().map(|v| v.span()),
            "resubscribe" => s.resubscribe.as_ref().map(|v| v.span()),
            "reconnect" => s.reconnect.as_ref().map(|v| v.span()),
            _ => None,
        };
        let mut ok = true;
        for (field, kinds, why) in client::OWNED_SETTINGS {
            if let Some(span) = span_of(field) {
                if !kinds.contains(&kind) {
                    self.problem(
                        span,
                        &format!("subscriber.{field}"),
                        format!(
                            "is a setting of client = {}, but client is `{kind}`{why}",
                            kinds
                                .iter()
                                .map(|k| format!("\"{k}\""))
                                .collect::<Vec<_>>()
                                .join(" or ")
                        ),
                    );
                    ok = false;
                }
            }
        }
        let client = match kind {
            "rumqttc" => ClientKind::Rumqttc,
            "paho-python" => {
                let paho = s.paho.as_ref().map_or("2", |p| p.get_ref().as_str());
                if !client::PAHO_SERIES.contains(&paho) {
                    let span = s.paho.as_ref().map_or(0..0, |p| p.span());
                    self.problem_with(
                        span,
                        "subscriber.paho",
                        format!(
                            "`{paho}` is not a paho-mqtt series linecut ships; use {}",
                            client::PAHO_SERIES.join(" or ")
                        ),
                        closest(paho, client::PAHO_SERIES).map(|s| format!("`{s}`")),
                    );
                    ok = false;
                }
                if paho == "1.0" {
                    // What paho-mqtt 1.0 does not have cannot be asked of it.
                    if let Some(m) = &s.mqtt {
                        if Protocol::parse(m.get_ref()) == Ok(Protocol::V5) {
                            self.problem(m.span(), "subscriber.mqtt", "paho-mqtt 1.0 speaks MQTT 3.1 and 3.1.1 only (MQTT 5 came in 1.5); use paho = \"1.6\" or \"2\"");
                            ok = false;
                        }
                    }
                    if let Some(r) = &s.reconnect {
                        self.problem(r.span(), "subscriber.reconnect", "paho-mqtt 1.0 has no reconnect delay setting: its loop_forever sleeps 1 s after each failure and tries again; remove `reconnect`");
                        ok = false;
                    }
                }
                if let Some(r) = &s.reconnect {
                    if let Ok(ReconnectPolicy::Exponential { jitter, .. }) =
                        ReconnectPolicy::parse(r.get_ref())
                    {
                        if jitter > 0.0 {
                            self.problem(r.span(), "subscriber.reconnect", "paho's reconnect delay has no jitter; write exponential:min=D,max=D");
                            ok = false;
                        }
                    }
                }
                ClientKind::PahoPython {
                    paho: paho.to_string(),
                    python: s.python.as_ref().map(|p| p.get_ref().into()),
                }
            }
            "mosquitto_sub" => {
                if let Some(k) = keepalive_s.filter(|k| *k < 5) {
                    let span = s.keepalive.as_ref().map_or(kind_span.clone(), |k| k.span());
                    self.problem(
                        span,
                        "subscriber.keepalive",
                        format!("{k}s: mosquitto_sub accepts keepalives of 5s to 65535s only"),
                    );
                    ok = false;
                }
                ClientKind::MosquittoSub
            }
            _ => {
                let argv = match &s.command {
                    Some(c) if !c.get_ref().is_empty() && !c.get_ref()[0].is_empty() => {
                        for arg in c.get_ref() {
                            if let Err(e) = client::check_placeholders(arg) {
                                self.problem(c.span(), "subscriber.command", e);
                                ok = false;
                            }
                        }
                        c.get_ref().clone()
                    }
                    Some(c) => {
                        self.problem(
                            c.span(),
                            "subscriber.command",
                            "needs at least the program to run",
                        );
                        ok = false;
                        Vec::new()
                    }
                    None => {
                        self.problem(
                            kind_span,
                            "subscriber.command",
                            "client = \"command\" needs `command = [\"PROGRAM\", \"ARG\", ...]` (placeholders such as {host} and {port} are filled in)",
                        );
                        ok = false;
                        Vec::new()
                    }
                };
                if let Some(p) = &s.pattern {
                    if let Err(e) = client::compile_pattern(p.get_ref()) {
                        self.problem(p.span(), "subscriber.pattern", e);
                        ok = false;
                    }
                }
                ClientKind::Command {
                    argv,
                    pattern: s.pattern.as_ref().map(|p| p.get_ref().clone()),
                    library: s.library.as_ref().map(|l| l.get_ref().clone()),
                }
            }
        };
        ok.then_some(client)
    }

    /// One `[[fault]]` table: its kind from the registry, each key checked against the kind's
    /// descriptor (name and type), then the spec built by the proxy's own rules.
    fn fault(
        &mut self,
        field: &str,
        span: Range<usize>,
        table: &RawFault,
    ) -> Option<(FaultSpec, Option<Jitter>)> {
        let kind_value = table.iter().find(|(k, _)| k.get_ref() == "kind");
        let Some((_, kind)) = kind_value else {
            self.problem(span, field, "needs `kind`, e.g. kind = \"cut\"");
            return None;
        };
        let Some(name) = kind.get_ref().as_str() else {
            self.problem(kind.span(), &format!("{field}.kind"), "must be a string");
            return None;
        };
        if !plays(NetworkMode::Proxy, name) && plays(NetworkMode::Namespace, name) {
            self.problem(
                kind.span(),
                &format!("{field}.kind"),
                format!("`{name}` is a link fault: it needs [network] mode = \"namespace\" (this run plays its faults in the proxy)"),
            );
            return None;
        }
        let Some(descriptor) = faults::descriptor(name) else {
            self.problem_with(
                kind.span(),
                &format!("{field}.kind"),
                format!(
                    "unknown fault kind `{name}`; kinds are: {}",
                    faults::kind_names().join(", ")
                ),
                closest(name, faults::kind_names()).map(|k| format!("`{k}`")),
            );
            return None;
        };
        let allowed: Vec<&KeyDef> = COMMON_KEYS.iter().chain(descriptor.keys).collect();
        let mut pairs = Vec::new();
        let mut ok = true;
        let mut jitter = None;
        for (key, value) in table {
            let key_name = key.get_ref().as_str();
            if key_name == "kind" {
                continue;
            }
            // The phase is the experiment's business, not the proxy's: the runner moves `at`.
            if key_name == JITTER_KEY {
                let sub = format!("{field}.{JITTER_KEY}");
                match value.get_ref().as_str().map(Jitter::parse) {
                    Some(Ok(j)) => jitter = Some(j),
                    Some(Err(e)) => {
                        self.problem(value.span(), &sub, e.to_string());
                        ok = false;
                    }
                    None => {
                        self.problem(value.span(), &sub, "must be a string, e.g. \"K\" or \"2s\"");
                        ok = false;
                    }
                }
                continue;
            }
            let sub = format!("{field}.{key_name}");
            let Some(def) = allowed.iter().find(|d| d.name == key_name) else {
                let names: Vec<&str> = allowed.iter().map(|d| d.name).chain([JITTER_KEY]).collect();
                self.problem_with(
                    key.span(),
                    &sub,
                    format!(
                        "`{name}` has no key `{key_name}`; keys are: kind, {}",
                        names.join(", ")
                    ),
                    closest(key_name, names).map(|k| format!("`{k}`")),
                );
                ok = false;
                continue;
            };
            let text = match (def.ty, value.get_ref()) {
                (KeyType::Count, toml::Value::Integer(n)) => Some(n.to_string()),
                (KeyType::Count, _) => None,
                (_, toml::Value::String(s)) => Some(s.clone()),
                _ => None,
            };
            match text {
                Some(text) => pairs.push((key_name.to_string(), text)),
                None => {
                    let want = match def.ty {
                        KeyType::Count => "a whole number, e.g. 3",
                        KeyType::Duration => "a duration as a string, e.g. \"10s\"",
                        KeyType::Bytes => "a size as a string, e.g. \"64KiB\"",
                        KeyType::Choice(_) | KeyType::Text => "a string",
                    };
                    self.problem(value.span(), &sub, format!("must be {want}"));
                    ok = false;
                }
            }
        }
        if !ok {
            return None;
        }
        match FaultSpec::from_pairs(name, pairs) {
            Ok(spec) => Some((spec, jitter)),
            Err(e) => {
                // The proxy names the key at fault as data: point at it.
                let (span, sub) = match e.key.as_deref().and_then(|k| value_span(table, k)) {
                    Some(at) => (at, format!("{field}.{}", e.key.as_deref().unwrap_or(""))),
                    None => (span, field.to_string()),
                };
                self.problem(span, &sub, e.message);
                None
            }
        }
    }

    fn faults(
        &mut self,
        raw: &[Spanned<RawFault>],
        duration: Option<Duration>,
    ) -> Option<(Vec<FaultSpec>, Vec<Option<Jitter>>)> {
        let mut faults = Vec::new();
        let mut jitters = Vec::new();
        let mut ok = true;
        for (i, fault) in raw.iter().enumerate() {
            let field = format!("fault[{}]", i + 1);
            let table = fault.get_ref();
            let Some((spec, jitter)) = self.fault(&field, fault.span(), table) else {
                ok = false;
                continue;
            };
            jitters.push(jitter);
            ok &= self.starts_in_run(fault, &field, spec.schedule.at, duration);
            faults.push(spec);
        }
        ok.then_some((faults, jitters))
    }

    /// `[network]`: the mode and the device's TCP settings, each checked where it is written.
    fn network(&mut self, raw: Option<&Spanned<RawNetwork>>) -> Option<NetworkSpec> {
        let Some(raw) = raw else {
            return Some(NetworkSpec::default());
        };
        let n = raw.get_ref();
        let mut ok = true;
        let mode = match &n.mode {
            None => NetworkMode::Proxy,
            Some(m) => match NetworkMode::parse(m.get_ref()) {
                Some(mode) => mode,
                None => {
                    self.problem_with(
                        m.span(),
                        "network.mode",
                        format!(
                            "`{}` is not a mode; modes are: {}",
                            m.get_ref(),
                            NetworkMode::NAMES.join(", ")
                        ),
                        closest(m.get_ref(), NetworkMode::NAMES.to_vec()).map(|k| format!("`{k}`")),
                    );
                    return None;
                }
            },
        };
        let mut count =
            |v: &Option<Spanned<i64>>, field: &str, min: i64, max: i64| -> Option<i64> {
                let v = v.as_ref()?;
                if (min..=max).contains(v.get_ref()) {
                    Some(*v.get_ref())
                } else {
                    self.problem(
                        v.span(),
                        field,
                        format!("must be a whole number from {min} to {max}"),
                    );
                    ok = false;
                    None
                }
            };
        // The kernel refuses tcp_syn_retries = 0 (its minimum is 1): caught here, not when the
        // run's namespace is already built.
        let syn_retries = count(
            &n.tcp_syn_retries,
            "network.tcp_syn_retries",
            1,
            i64::from(MAX_SYN_RETRIES),
        )
        .map(|v| v as u8);
        let retries2 = count(
            &n.tcp_retries2,
            "network.tcp_retries2",
            0,
            i64::from(MAX_RETRIES2),
        )
        .map(|v| v as u8);
        let probes = count(
            &n.tcp_keepalive_probes,
            "network.tcp_keepalive_probes",
            0,
            127,
        )
        .map(|v| v as u8);
        let mut secs = |v: &Option<Spanned<String>>, field: &str| -> Option<u32> {
            let v = v.as_ref()?;
            match self.whole_seconds(v, field, 32_767) {
                Some(0) => {
                    self.problem(v.span(), field, "must be at least 1s");
                    ok = false;
                    None
                }
                Some(s) => Some(s as u32),
                None => {
                    ok = false;
                    None
                }
            }
        };
        let tcp = TcpSettings {
            syn_retries,
            retries2,
            keepalive_time_s: secs(&n.tcp_keepalive_time, "network.tcp_keepalive_time"),
            keepalive_intvl_s: secs(&n.tcp_keepalive_intvl, "network.tcp_keepalive_intvl"),
            keepalive_probes: probes,
            user_timeout_ms: n.tcp_user_timeout.as_ref().and_then(|v| {
                let d = self.duration(v, "network.tcp_user_timeout")?;
                match u32::try_from(d.as_millis()) {
                    Ok(ms) if (1..=3_600_000).contains(&ms) => Some(ms),
                    _ => {
                        self.problem(
                            v.span(),
                            "network.tcp_user_timeout",
                            "must be from 1ms to 1h",
                        );
                        None
                    }
                }
            }),
        };
        if mode == NetworkMode::Proxy && !tcp.is_default() {
            self.problem(
                raw.span(),
                "network",
                "TCP settings apply to the subscribers' own kernels, which only namespace mode gives them: set mode = \"namespace\"",
            );
            ok = false;
        }
        ok.then_some(NetworkSpec { mode, tcp })
    }

    /// What namespace mode cannot do: an external broker (it must listen on the run's own
    /// bridge), more subscribers than one /24 holds, a proxy capture.
    fn fit_namespace(
        &mut self,
        raw: &RawScenario,
        subscriber: Option<&SubscriberSpec>,
        broker: Option<&BrokerSpec>,
    ) {
        let span = raw.network.as_ref().map_or(0..0, |n| n.span());
        if let Some(BrokerSpec::External { .. }) = broker {
            self.problem(
                span.clone(),
                "broker.kind",
                "namespace mode starts its own broker on the run's bridge: use kind = \"embedded\" or \"mosquitto\"",
            );
        }
        if let Some(s) = subscriber {
            let sets_user_timeout = raw
                .network
                .as_ref()
                .is_some_and(|n| n.get_ref().tcp_user_timeout.is_some());
            if sets_user_timeout && !matches!(s.client, ClientKind::PahoPython { .. }) {
                self.problem(
                    span.clone(),
                    "network.tcp_user_timeout",
                    "TCP_USER_TIMEOUT is set by the client on its own socket: linecut's paho script does (client = \"paho-python\"); rumqttc, mosquitto_sub and command clients give no way to",
                );
            }
            if s.settings.count > MAX_NAMESPACE_SUBSCRIBERS {
                self.problem(
                    span.clone(),
                    "subscriber.count",
                    format!(
                        "namespace mode gives each subscriber a namespace on one /24: at most {MAX_NAMESPACE_SUBSCRIBERS}, not {}",
                        s.settings.count
                    ),
                );
            }
        }
        if raw.capture.as_ref().and_then(|c| c.pcap).unwrap_or(false) {
            self.problem(
                span,
                "capture.pcap",
                "a namespace run always captures its links to capture.pcap; [capture] is the proxy's",
            );
        }
    }

    /// A fault must start before the run ends, or it would never happen.
    fn starts_in_run(
        &mut self,
        fault: &Spanned<RawFault>,
        field: &str,
        at: Duration,
        duration: Option<Duration>,
    ) -> bool {
        let Some(d) = duration.filter(|d| at >= *d) else {
            return true;
        };
        let span = value_span(fault.get_ref(), "at").unwrap_or(fault.span());
        self.problem(
            span,
            &format!("{field}.at"),
            format!(
                "starts at {} but the run lasts {}: the fault would never happen",
                humantime::format_duration(at),
                humantime::format_duration(d)
            ),
        );
        false
    }

    /// The `[[fault]]` tables of a namespace run: link faults.
    fn link_faults(
        &mut self,
        raw: &[Spanned<RawFault>],
        duration: Option<Duration>,
    ) -> Option<(Vec<LinkFaultSpec>, Vec<Option<Jitter>>)> {
        let (mut out, mut jitters, mut ok) = (Vec::new(), Vec::new(), true);
        for (i, fault) in raw.iter().enumerate() {
            let field = format!("fault[{}]", i + 1);
            let table = fault.get_ref();
            let Some((_, kind)) = table.iter().find(|(k, _)| k.get_ref() == "kind") else {
                self.problem(fault.span(), &field, "needs `kind`, e.g. kind = \"cut\"");
                ok = false;
                continue;
            };
            let Some(name) = kind.get_ref().as_str() else {
                self.problem(kind.span(), &format!("{field}.kind"), "must be a string");
                ok = false;
                continue;
            };
            if !plays(NetworkMode::Namespace, name) {
                let link_kinds = kinds_played_by(NetworkMode::Namespace).join(", ");
                let why = if plays(NetworkMode::Proxy, name) {
                    format!("`{name}` is a proxy fault and this is a namespace run (network.mode = \"namespace\"); link faults are: {link_kinds}")
                } else {
                    format!("unknown fault kind `{name}`; link faults are: {link_kinds}")
                };
                self.problem(kind.span(), &format!("{field}.kind"), why);
                ok = false;
                continue;
            }
            let mut pairs = Vec::new();
            let mut jitter = None;
            for (key, value) in table {
                let key_name = key.get_ref().as_str();
                let sub = format!("{field}.{key_name}");
                match (key_name, value.get_ref()) {
                    ("kind", _) => {}
                    (JITTER_KEY, toml::Value::String(text)) => match Jitter::parse(text) {
                        Ok(j) => jitter = Some(j),
                        Err(e) => {
                            self.problem(value.span(), &sub, e.to_string());
                            ok = false;
                        }
                    },
                    (_, toml::Value::String(text)) => {
                        pairs.push((key_name.to_string(), text.clone()))
                    }
                    (_, toml::Value::Integer(n)) => {
                        pairs.push((key_name.to_string(), n.to_string()))
                    }
                    (_, toml::Value::Float(x)) => pairs.push((key_name.to_string(), x.to_string())),
                    _ => {
                        self.problem(value.span(), &sub, "must be a string or a number");
                        ok = false;
                    }
                }
            }
            match LinkFaultSpec::from_pairs(name, pairs) {
                Ok(spec) => {
                    ok &= self.starts_in_run(fault, &field, spec.schedule.at, duration);
                    out.push(spec);
                    jitters.push(jitter);
                }
                Err(e) => {
                    let (span, sub) = match e.key.as_deref().and_then(|k| value_span(table, k)) {
                        Some(at) => (at, format!("{field}.{}", e.key.as_deref().unwrap_or(""))),
                        None => (kind.span(), format!("{field}.kind")),
                    };
                    self.problem(span, &sub, e.message);
                    ok = false;
                }
            }
        }
        ok.then_some((out, jitters))
    }

    /// A jittered fault must still start inside the run, however late its draw.
    fn check_phases(
        &mut self,
        raw: &[Spanned<RawFault>],
        starts: &[Duration],
        jitters: &[Option<Jitter>],
        duration: Duration,
        keepalive_s: u16,
    ) {
        for (i, (at, jitter)) in starts.iter().zip(jitters).enumerate() {
            let Some(jitter) = jitter else { continue };
            let field = format!("fault[{}].{JITTER_KEY}", i + 1);
            let span = value_span(raw[i].get_ref(), JITTER_KEY).unwrap_or(raw[i].span());
            if matches!(jitter, Jitter::Keepalives(_)) && keepalive_s == 0 {
                self.problem(
                    span,
                    &field,
                    "`K` needs a keepalive, and the subscriber's is 0 (off)",
                );
                continue;
            }
            let latest = *at + jitter.span(keepalive_s);
            if latest >= duration {
                self.problem(
                    span,
                    &field,
                    format!(
                        "`at` plus a jitter of {jitter} may start the fault at {}, but the run lasts {}",
                        humantime::format_duration(latest),
                        humantime::format_duration(duration)
                    ),
                );
            }
        }
    }
}

/// Where the value of `key` stands in a `[[fault]]` table.
fn value_span(table: &RawFault, key: &str) -> Option<Range<usize>> {
    table
        .iter()
        .find(|(k, _)| k.get_ref() == key)
        .map(|(_, v)| v.span())
}

#[cfg(test)]
mod tests;
