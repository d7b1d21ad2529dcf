//! `[[fault]]`: proxy faults and link faults, when they start against the run, and their
//! random phases.

use super::*;

impl Checker<'_> {
    /// One `[[fault]]` table: its kind from the registry, each key checked against the kind's
    /// descriptor (name and type), then the spec built by the proxy's own rules.
    pub(crate) fn fault(
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

    pub(crate) fn faults(
        &mut self,
        raw: &[(usize, &Spanned<RawFault>)],
        duration: Option<Duration>,
    ) -> Option<(Vec<FaultSpec>, Vec<Option<Jitter>>)> {
        let mut faults = Vec::new();
        let mut jitters = Vec::new();
        let mut ok = true;
        for &(i, fault) in raw {
            let field = format!("fault[{}]", i + 1);
            let table = fault.get_ref();
            let Some((spec, jitter)) = self.fault(&field, fault.span(), table) else {
                ok = false;
                continue;
            };
            if let Some((timeout, _)) = spec.fault.idle_timeout() {
                let second = faults
                    .iter()
                    .any(|f: &FaultSpec| f.fault.idle_timeout().is_some());
                let m = Middlebox {
                    field: &field,
                    timeout_s: timeout.as_secs() as u32,
                    jitter: jitter.is_some(),
                    second,
                };
                ok &= self.middlebox_fits(table, fault.span(), m, duration);
            }
            jitters.push(jitter);
            ok &= self.starts_in_run(fault, &field, spec.schedule.at, duration);
            faults.push(spec);
        }
        ok.then_some((faults, jitters))
    }

    /// An idle-timeout middlebox, in either mode: one per run, on the path from the start (no
    /// phase to draw), with a timeout a flow can reach inside the run.
    fn middlebox_fits(
        &mut self,
        table: &RawFault,
        span: Range<usize>,
        m: Middlebox<'_>,
        duration: Option<Duration>,
    ) -> bool {
        let mut ok = true;
        if m.jitter {
            let at = value_span(table, JITTER_KEY).unwrap_or(span.clone());
            self.problem(
                at,
                &format!("{}.{JITTER_KEY}", m.field),
                "`idle_timeout` is on the path from the run's start: it has no start to move",
            );
            ok = false;
        }
        if m.second {
            self.problem(
                span.clone(),
                &format!("{}.kind", m.field),
                "a run has one idle-timeout middlebox; `target = \"client=PATTERN\"` chooses the devices behind it",
            );
            ok = false;
        }
        if let Some(d) = duration.filter(|d| d.as_secs() <= u64::from(m.timeout_s)) {
            let at = value_span(table, "timeout").unwrap_or(span);
            self.problem(
                at,
                &format!("{}.timeout", m.field),
                format!(
                    "a flow can never be idle {} s in a run of {}; make the timeout shorter than the run",
                    m.timeout_s,
                    crate::duration_text(d)
                ),
            );
            ok = false;
        }
        ok
    }

    /// A fault must start before the run ends, or it would never happen.
    pub(crate) fn starts_in_run(
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
    pub(crate) fn link_faults(
        &mut self,
        raw: &[(usize, &Spanned<RawFault>)],
        duration: Option<Duration>,
    ) -> Option<(Vec<LinkFaultSpec>, Vec<Option<Jitter>>)> {
        let (mut out, mut jitters, mut ok) = (Vec::new(), Vec::new(), true);
        for &(i, fault) in raw {
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
                    if let (linecut_model::LinkKind::Latency(l), Some(d)) = (spec.kind, duration) {
                        if l.delay >= d {
                            let at = value_span(table, "delay").unwrap_or(kind.span());
                            self.problem(at, &format!("{field}.delay"), format!("a delay of {} is longer than the run ({}): nothing would arrive", crate::duration_text(l.delay), crate::duration_text(d)));
                            ok = false;
                        }
                    }
                    if let linecut_model::LinkKind::IdleTimeout { timeout_s, .. } = spec.kind {
                        let second = out.iter().any(|o: &LinkFaultSpec| o.kind.is_middlebox());
                        let m = Middlebox {
                            field: &field,
                            timeout_s,
                            jitter: jitter.is_some(),
                            second,
                        };
                        ok &= self.middlebox_fits(table, kind.span(), m, duration);
                    }
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
    pub(crate) fn check_phases(
        &mut self,
        raw: &[(usize, &Spanned<RawFault>)],
        starts: &[Duration],
        jitters: &[Option<Jitter>],
        duration: Duration,
        keepalive_s: u16,
    ) {
        for (&(i, fault), (at, jitter)) in raw.iter().zip(starts.iter().zip(jitters)) {
            let Some(jitter) = jitter else { continue };
            let field = format!("fault[{}].{JITTER_KEY}", i + 1);
            let span = value_span(fault.get_ref(), JITTER_KEY).unwrap_or(fault.span());
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

impl Checker<'_> {
    /// The broker's own faults (`restart`), played by the runner in either mode: only on a
    /// broker linecut started and can start again (mosquitto), at a time and for a while
    /// inside the run.
    pub(crate) fn broker_faults(
        &mut self,
        raw: &[(usize, &Spanned<RawFault>)],
        broker: Option<&BrokerSpec>,
        duration: Option<Duration>,
    ) -> Option<Vec<BrokerFault>> {
        let mut out: Vec<BrokerFault> = Vec::new();
        let mut ok = true;
        for &(i, fault) in raw {
            let field = format!("fault[{}]", i + 1);
            let table = fault.get_ref();
            let kind_span = value_span(table, "kind").unwrap_or(fault.span());
            match broker {
                Some(BrokerSpec::Mosquitto(_)) | None => {}
                Some(BrokerSpec::Embedded) => {
                    self.problem(kind_span.clone(), &format!("{field}.kind"), "`restart` needs [broker] kind = \"mosquitto\": the embedded broker (rumqttd 0.20) cannot be stopped and started again inside the process");
                    ok = false;
                }
                Some(BrokerSpec::External { .. }) => {
                    self.problem(kind_span.clone(), &format!("{field}.kind"), "`restart` needs a broker linecut starts ([broker] kind = \"mosquitto\"): linecut does not control an external broker");
                    ok = false;
                }
                Some(BrokerSpec::Program(p)) => {
                    self.problem(kind_span.clone(), &format!("{field}.kind"), format!("`restart` needs [broker] kind = \"mosquitto\": linecut restarts only mosquitto, whose store and wills it knows, not {}", p.spec().kind));
                    ok = false;
                }
            }
            let (mut at, mut down) = (None, None);
            for (key, value) in table {
                let sub = format!("{field}.{}", key.get_ref());
                match key.get_ref().as_str() {
                    "kind" => {}
                    name @ ("at" | "for") => {
                        let parsed = value
                            .get_ref()
                            .as_str()
                            .ok_or_else(|| {
                                "must be a duration as a string, e.g. \"10s\"".to_string()
                            })
                            .and_then(|t| parse_duration(t).map_err(|e| format!("`{t}` {e}")));
                        match parsed {
                            Ok(d) if name == "at" => at = Some(d),
                            Ok(d) => down = Some(d),
                            Err(e) => {
                                self.problem(value.span(), &sub, e);
                                ok = false;
                            }
                        }
                    }
                    other => {
                        self.problem(key.span(), &sub, format!("`restart` has no key `{other}`; keys are: kind, at, for (a restart stops the broker for every client: no target, no direction)"));
                        ok = false;
                    }
                }
            }
            let (Some(at), Some(down)) = (at, down) else {
                if ok {
                    self.problem(
                        fault.span(),
                        &field,
                        "`restart` needs `at` and `for` (how long the broker stays down)",
                    );
                }
                ok = false;
                continue;
            };
            if down.is_zero() {
                let span = value_span(table, "for").unwrap_or(fault.span());
                self.problem(span, &format!("{field}.for"), "must be longer than 0s");
                ok = false;
                continue;
            }
            if let Some(d) = duration.filter(|d| at + down >= *d) {
                let span = value_span(table, "for").unwrap_or(fault.span());
                self.problem(
                    span,
                    &format!("{field}.for"),
                    format!(
                        "the broker would come back at {}, but the run lasts {}: the restart would not end inside it",
                        humantime::format_duration(at + down),
                        humantime::format_duration(d)
                    ),
                );
                ok = false;
                continue;
            }
            // One broker: a restart cannot begin while another has it down.
            if let Some(other) = out
                .iter()
                .find(|f| at < f.at() + f.down() && f.at() < at + down)
            {
                let span = value_span(table, "at").unwrap_or(fault.span());
                self.problem(
                    span,
                    &format!("{field}.at"),
                    format!(
                        "overlaps `{}`: the broker is down then already",
                        other.spec()
                    ),
                );
                ok = false;
                continue;
            }
            out.push(BrokerFault::Restart { at, down });
        }
        ok.then_some(out)
    }
}

/// Whether a `[[fault]]` table is one of the broker's own faults.
/// What [`Checker::middlebox_fits`] is asked about one `idle_timeout` fault.
struct Middlebox<'a> {
    field: &'a str,
    timeout_s: u32,
    /// It has a `start_jitter`.
    jitter: bool,
    /// An earlier fault of the run is a middlebox too.
    second: bool,
}

pub(crate) fn is_broker_fault(table: &RawFault) -> bool {
    table
        .iter()
        .find(|(k, _)| k.get_ref() == "kind")
        .and_then(|(_, v)| v.get_ref().as_str())
        .is_some_and(|k| BrokerFault::KINDS.contains(&k))
}

/// Where the value of `key` stands in a `[[fault]]` table.
fn value_span(table: &RawFault, key: &str) -> Option<Range<usize>> {
    table
        .iter()
        .find(|(k, _)| k.get_ref() == key)
        .map(|(_, v)| v.span())
}
