//! `[broker]`: the embedded broker, mosquitto with its settings, another broker linecut starts
//! (aedes, amqtt), or an external address.

use super::*;

impl Checker<'_> {
    pub(crate) fn broker(&mut self, raw: &RawScenario) -> Option<BrokerSpec> {
        let Some(b) = &raw.broker else {
            return Some(BrokerSpec::Embedded);
        };
        let kind = b.kind.as_ref().map_or("embedded", |k| k.get_ref().as_str());
        let kind_span = b.kind.as_ref().map_or(0..0, |k| k.span());
        let mosquitto_only = b.persistence.is_some()
            || b.persistent_client_expiration.is_some()
            || b.max_keepalive.is_some()
            || b.max_queued_messages.is_some();
        let kinds: Vec<&str> = ["embedded", "mosquitto"]
            .into_iter()
            .chain(crate::broker::BROKER_PROGRAMS.iter().map(|s| s.kind))
            .chain(["external"])
            .collect();
        if !kinds.contains(&kind) {
            self.problem_with(
                kind_span.clone(),
                "broker.kind",
                format!("`{kind}` is not a broker kind; use {}", kinds.join(", ")),
                closest(kind, kinds.iter().copied()).map(|s| format!("`{s}`")),
            );
            return None;
        }
        if mosquitto_only && kind != "mosquitto" {
            self.problem(kind_span.clone(), "broker.kind", format!("persistence, persistent_client_expiration, max_keepalive and max_queued_messages are mosquitto settings, but kind is `{kind}`"));
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
                    max_queued_messages: b
                        .max_queued_messages
                        .as_ref()
                        .map_or(MosquittoSettings::DEFAULT_MAX_QUEUED_MESSAGES, |m| {
                            *m.get_ref()
                        }),
                }))
            }
            kind if crate::broker::BrokerProgram::parse(kind).is_some() => {
                let program = crate::broker::BrokerProgram::parse(kind).expect("checked");
                if let Some(a) = &b.address {
                    self.problem(a.span(), "broker.address", format!("linecut starts {kind} on a free port of its own; `address` is for kind = \"external\""));
                }
                // What the broker does not speak cannot be asked of the clients.
                let spec = program.spec();
                let asks = [
                    (
                        "subscriber.mqtt",
                        raw.subscriber.as_ref().and_then(|s| s.mqtt.as_ref()),
                    ),
                    (
                        "publisher.mqtt",
                        raw.publisher.as_ref().and_then(|p| p.mqtt.as_ref()),
                    ),
                ];
                for (field, mqtt) in asks {
                    if let Some(m) = mqtt {
                        if let Ok(p) = linecut_model::Protocol::parse(m.get_ref()) {
                            if !spec.protocols.contains(&p) {
                                self.problem(
                                    m.span(),
                                    field,
                                    format!("[broker] kind = \"{kind}\" speaks MQTT 3.1.1 only"),
                                );
                            }
                        }
                    }
                }
                Some(BrokerSpec::Program(program))
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
}
