//! `[publisher]` and `[subscriber]`, and the client under test: which kind, and the fields
//! only some kinds take.

use super::*;

impl Checker<'_> {
    pub(crate) fn publisher(&mut self, raw: &RawScenario) -> Option<PublisherSettings> {
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

    pub(crate) fn subscriber(
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
        let will = self.will(&s);
        let session_expiry_s = match &s.session_expiry {
            Some(e) => Some(
                self.whole_seconds(e, "subscriber.session_expiry", u64::from(u32::MAX))
                    .map(|e| e as u32),
            ),
            None => Some(None),
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
            will: will?,
            session_expiry_s: session_expiry_s?,
            receive_maximum: s.receive_maximum.as_ref().map(|r| *r.get_ref()),
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
            "session_expiry" => s.session_expiry.as_ref().map(|e| e.span()),
            "receive_maximum" => s.receive_maximum.as_ref().map(|r| r.span()),
            field => {
                let w = s.will.as_ref()?;
                let raw = w.get_ref();
                match field {
                    "will.topic" => raw.topic.as_ref().map(|t| t.span()),
                    "will.payload" => raw.payload.as_ref().map(|p| p.span()),
                    "will.qos" => raw.qos.as_ref().map(|q| q.span()),
                    "will.delay" => raw.delay.as_ref().map(|d| d.span()),
                    _ => None,
                }
                .or(Some(w.span()))
            }
        });
        let ok = ok && self.command_takes_settings(&s, &client, &settings);
        ok.then_some(SubscriberSpec { client, settings })
    }

    /// `will = { ... }`, read; the settings' rules check it with the rest of `[subscriber]`.
    fn will(&mut self, s: &raw::RawSubscriber) -> Option<Option<Will>> {
        let Some(w) = &s.will else {
            return Some(None);
        };
        let raw = w.get_ref();
        let Some(topic) = &raw.topic else {
            self.problem(
                w.span(),
                "subscriber.will.topic",
                "a will needs a topic: will = { topic = \"devices/{client_id}/status\" }",
            );
            return None;
        };
        let delay_s = match &raw.delay {
            Some(d) => {
                Some(self.whole_seconds(d, "subscriber.will.delay", u64::from(u32::MAX))? as u32)
            }
            None => None,
        };
        Some(Some(Will {
            topic: topic.get_ref().clone(),
            payload: raw
                .payload
                .as_ref()
                .map_or_else(Will::default_payload, |p| p.get_ref().clone()),
            qos: raw.qos.as_ref().map_or(0, |q| *q.get_ref()),
            retain: raw.retain.unwrap_or(false),
            delay_s,
        }))
    }

    /// A will and the MQTT 5 session settings are the client under test's to send, so it must
    /// be able to: a `command` client is told them through placeholders, and one whose command
    /// does not use the placeholder cannot send them (the run would measure something else).
    fn command_takes_settings(
        &mut self,
        s: &raw::RawSubscriber,
        client: &ClientKind,
        settings: &SubscriberSettings,
    ) -> bool {
        let ClientKind::Command { argv, .. } = client else {
            return true;
        };
        let uses = |name: &str| argv.iter().any(|a| a.contains(&format!("{{{name}}}")));
        let will_delay = settings.will.as_ref().and_then(|w| w.delay_s);
        // (setting, where it is written, the placeholder that carries it, why it matters)
        let told: [(bool, Option<Range<usize>>, &str, &str); 4] = [
            (
                settings.will.is_some(),
                s.will.as_ref().map(|w| w.span()),
                "will_topic",
                "it could not leave the will, and the run would wait for one that never comes",
            ),
            (
                will_delay.is_some(),
                s.will.as_ref().map(|w| w.span()),
                "will_delay",
                "the client would leave its will without the delay",
            ),
            (
                settings.session_expiry_s.is_some(),
                s.session_expiry.as_ref().map(|e| e.span()),
                "session_expiry",
                "the client would ask for no session expiry, and the broker end its session with the connection",
            ),
            (
                settings.receive_maximum.is_some(),
                s.receive_maximum.as_ref().map(|r| r.span()),
                "receive_maximum",
                "the client would not ask for it",
            ),
        ];
        let mut ok = true;
        for (set, span, placeholder, why) in told {
            if set && !uses(placeholder) {
                let field = match placeholder {
                    "will_topic" => "subscriber.will",
                    "will_delay" => "subscriber.will.delay",
                    "session_expiry" => "subscriber.session_expiry",
                    _ => "subscriber.receive_maximum",
                };
                self.problem(
                    span.unwrap_or(0..0),
                    field,
                    format!(
                        "client = \"command\" is told this through the placeholder {{{placeholder}}}, and its command does not use it: {why}"
                    ),
                );
                ok = false;
            }
        }
        ok
    }

    /// The client kind and its own settings; settings of another kind are rejected, so a file
    /// never says something the run would silently ignore.
    pub(crate) fn client_kind(
        &mut self,
        s: &raw::RawSubscriber,
        keepalive_s: Option<u16>,
    ) -> Option<ClientKind> {
        let name = s
            .client
            .as_ref()
            .map_or("rumqttc", |k| k.get_ref().as_str());
        let kind_span = s.client.as_ref().map_or(0..0, |k| k.span());
        let Some(kind) = client::Kind::parse(name) else {
            self.problem_with(
                kind_span,
                "subscriber.client",
                format!(
                    "`{name}` is not a client kind; use {}",
                    client::Kind::NAMES.join(", ")
                ),
                // A family name (`paho`) names several kinds: all of them, not the closest
                // spelling.
                {
                    let family: Vec<String> = client::Kind::NAMES
                        .into_iter()
                        .filter(|n| n.starts_with(name) || name.starts_with(n))
                        .map(|n| format!("`{n}`"))
                        .collect();
                    match family.len() {
                        0 => closest(name, client::Kind::NAMES).map(|s| format!("`{s}`")),
                        1 => family.into_iter().next(),
                        _ => {
                            let (last, rest) = family.split_last().expect("two or more");
                            Some(format!("{} or {last}", rest.join(", ")))
                        }
                    }
                },
            );
            return None;
        };
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
                if !kind.owns(field) {
                    self.problem(
                        span,
                        &format!("subscriber.{field}"),
                        format!(
                            "is a setting of client = {}, but client is `{name}`{why}",
                            kinds
                                .iter()
                                .map(|k| format!("\"{}\"", k.name()))
                                .collect::<Vec<_>>()
                                .join(" or ")
                        ),
                    );
                    ok = false;
                }
            }
        }
        let client = match kind {
            client::Kind::Rumqttc => ClientKind::Rumqttc,
            client::Kind::PahoPython => {
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
            client::Kind::MosquittoSub => {
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
            client::Kind::Program(program) => {
                // What the library cannot do cannot be asked of it (client::PROGRAMS).
                let spec = program.spec();
                if let Some(m) = &s.mqtt {
                    if let Ok(p) = Protocol::parse(m.get_ref()) {
                        if !spec.protocols.contains(&p) {
                            self.problem(
                                m.span(),
                                "subscriber.mqtt",
                                format!(
                                    "{} speaks MQTT 3.1.1 only; use mqtt = \"3.1.1\"",
                                    spec.library
                                ),
                            );
                            ok = false;
                        }
                    }
                }
                if let (Some((min, why)), Some(k)) = (spec.min_keepalive, keepalive_s) {
                    if k > 0 && k < min {
                        let span = s.keepalive.as_ref().map_or(kind_span.clone(), |k| k.span());
                        self.problem(
                            span,
                            "subscriber.keepalive",
                            format!("{k}s: {why}; use at least {min}s"),
                        );
                        ok = false;
                    }
                }
                ClientKind::Program(program)
            }
            client::Kind::Command => {
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
}
