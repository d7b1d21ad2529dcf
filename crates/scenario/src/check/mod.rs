//! The second stage of parsing: a raw scenario's values checked against each other and built
//! into a [`Scenario`], every problem with its place in the file. One file per section: `broker`,
//! `clients` (publisher, subscriber and the client under test), `fault` (proxy and link faults,
//! their phases) and `network`; this one holds the checker and the whole file's order.

mod broker;
mod clients;
mod fault;
mod network;

use crate::*;

pub(crate) struct Checker<'a> {
    pub(crate) locate: &'a Locator<'a>,
    pub(crate) problems: Vec<Problem>,
}

impl Checker<'_> {
    /// `[sweep.goal]`: its keys from [`crate::SWEEP_GOAL_KEYS`], each a duration above 0.
    fn sweep_goal(&mut self, span: Range<usize>, value: &toml::Value) {
        let Some(table) = value.as_table() else {
            self.problem(
                span,
                "sweep.goal",
                "must be a table, e.g. idle_timeout = \"30s\"",
            );
            return;
        };
        for (key, v) in table {
            let field = format!("sweep.goal.{key}");
            if !crate::SWEEP_GOAL_KEYS.contains(&key.as_str()) {
                self.problem(
                    span.clone(),
                    &field,
                    format!(
                        "is not a goal; goals are: {}",
                        crate::SWEEP_GOAL_KEYS.join(", ")
                    ),
                );
                continue;
            }
            let ok = v
                .as_str()
                .and_then(|t| linecut_model::parse_duration(t).ok())
                .is_some_and(|d| !d.is_zero());
            if !ok {
                self.problem(
                    span.clone(),
                    &field,
                    "must be a duration longer than 0s, e.g. \"30s\"",
                );
            }
        }
    }

    pub(crate) fn problem(&mut self, span: Range<usize>, field: &str, message: impl Into<String>) {
        self.problem_with(span, field, message, None);
    }

    pub(crate) fn problem_with(
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

    pub(crate) fn duration(&mut self, value: &Spanned<String>, field: &str) -> Option<Duration> {
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

    pub(crate) fn whole_seconds(
        &mut self,
        value: &Spanned<String>,
        field: &str,
        max: u64,
    ) -> Option<u64> {
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

    pub(crate) fn parsed<T>(
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

    pub(crate) fn scenario(
        &mut self,
        path: &Path,
        raw: RawScenario,
        text: &str,
    ) -> Option<Scenario> {
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
        // The broker's own faults are the runner's in either mode; the rest are the front's.
        let (broker_raw, front_raw): (Vec<_>, Vec<_>) = raw
            .faults
            .iter()
            .enumerate()
            .partition(|(_, f)| fault::is_broker_fault(f.get_ref()));
        let broker_faults = self.broker_faults(&broker_raw, broker.as_ref(), duration);
        let faults = if namespace {
            self.link_faults(&front_raw, duration)
                .and_then(|(links, jitters)| self.profile(raw.network.as_ref(), links, jitters))
                .map(|(links, jitters)| (Vec::new(), links, jitters))
        } else {
            self.faults(&front_raw, duration)
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
            self.check_phases(&front_raw, &starts, jitters, d, sub.settings.keepalive_s);
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
                    "goal" => {
                        self.sweep_goal(sweep.span(), value);
                        continue;
                    }
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
        // The QoS the subscriber's messages can have: the lower of the publisher's and its
        // subscriptions' highest (a delivery expectation needs one above 0).
        let qos = publisher.as_ref().zip(subscriber.as_ref()).map(|(p, s)| {
            let sub = s.settings.topics.iter().map(|t| t.qos).max().unwrap_or(0);
            p.qos.min(sub)
        });
        let expect = self.expectations(raw.expect.unwrap_or_default(), qos);
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
            broker_faults: broker_faults?,
            network: network?,
            seed,
            expect,
            capture_pcap: raw.capture.as_ref().and_then(|c| c.pcap).unwrap_or(false),
            source: text.to_string(),
        })
    }

    /// `[expect]`: every key must name a metric linecut reports and every value must be a
    /// condition, or the run would be wasted on a typo.
    /// A verdict metric (`delivery`) takes `as-promised` or `broken` and nothing else takes
    /// those; a delivery expectation needs a QoS that promises something (`qos`, when the
    /// publisher and subscriber parsed).
    pub(crate) fn expectations(
        &mut self,
        table: BTreeMap<Spanned<String>, Spanned<toml::Value>>,
        qos: Option<u8>,
    ) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        for (key, value) in table {
            let field = format!("expect.{}", key.get_ref());
            let metric = match MetricName::parse(key.get_ref()) {
                Ok(m) => Some(m.metric),
                Err(e) => {
                    self.problem(key.span(), &field, e);
                    None
                }
            };
            let span = value.span();
            let condition = match value.into_inner() {
                toml::Value::String(s) => s,
                other => other.to_string(),
            };
            match Condition::parse(&condition) {
                Err(e) => self.problem(span.clone(), &field, e),
                Ok(c) => {
                    let verdict = matches!(c, Condition::AsPromised | Condition::Broken);
                    let delivery = metric == Some(Metric::Delivery);
                    if delivery && !verdict {
                        self.problem(
                            span.clone(),
                            &field,
                            "delivery is a verdict: write \"as-promised\" or \"broken\"",
                        );
                    } else if verdict && metric.is_some() && !delivery {
                        self.problem(
                            span.clone(),
                            &field,
                            format!("`{condition}` is a condition for `delivery` only"),
                        );
                    } else if delivery && qos == Some(0) {
                        self.problem(span.clone(), &field, "the subscriber's messages are QoS 0 (the lower of the publisher's qos and its subscriptions'), which promises nothing to check: a delivery expectation needs QoS 1 or 2");
                    }
                }
            }
            out.insert(key.into_inner(), condition);
        }
        out
    }

    /// Reports the rules the settings break, each at the place in the file that set the field
    /// (or at the section, for a default the rule refused in combination with another field).
    pub(crate) fn settings_errors(
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
}
