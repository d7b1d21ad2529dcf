//! `[broker]`: the embedded broker, mosquitto with its settings, or an external address.

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
