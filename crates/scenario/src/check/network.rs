//! `[network]`: the mode, the device's TCP settings, and what a namespace run can hold.

use super::*;

impl Checker<'_> {
    /// `[network] profile`: its faults added after the scenario's own (namespace mode; the
    /// caller only asks there), one middlebox in all.
    pub(crate) fn profile(
        &mut self,
        raw: Option<&Spanned<RawNetwork>>,
        mut links: Vec<linecut_model::LinkFaultSpec>,
        mut jitters: Vec<Option<Jitter>>,
    ) -> Option<(Vec<linecut_model::LinkFaultSpec>, Vec<Option<Jitter>>)> {
        let Some(name) = raw.and_then(|n| n.get_ref().profile.as_ref()) else {
            return Some((links, jitters));
        };
        let Some(profile) = linecut_model::profile::find(name.get_ref()) else {
            self.problem_with(
                name.span(),
                "network.profile",
                format!(
                    "`{}` is not a profile; profiles are: {}",
                    name.get_ref(),
                    linecut_model::profile::names().join(", ")
                ),
                closest(name.get_ref(), linecut_model::profile::names()).map(|k| format!("`{k}`")),
            );
            return None;
        };
        let specs = match profile.specs() {
            Ok(specs) => specs,
            Err(e) => {
                self.problem(name.span(), "network.profile", e.to_string());
                return None;
            }
        };
        let middleboxes = links
            .iter()
            .chain(&specs)
            .filter(|s| s.kind.is_middlebox())
            .count();
        if middleboxes > 1 {
            self.problem(
                name.span(),
                "network.profile",
                format!("`{}` puts an idle-timeout middlebox on the path and a [[fault]] does too; a run has one", profile.name),
            );
            return None;
        }
        jitters.extend(specs.iter().map(|_| None));
        links.extend(specs);
        Some((links, jitters))
    }

    /// `[network]`: the mode and the device's TCP settings, each checked where it is written.
    pub(crate) fn network(&mut self, raw: Option<&Spanned<RawNetwork>>) -> Option<NetworkSpec> {
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
        if let (NetworkMode::Proxy, Some(profile)) = (mode, &n.profile) {
            self.problem(
                profile.span(),
                "network.profile",
                "a profile is link faults (latency, loss, a middlebox) on the devices' own links, which only namespace mode gives them: set mode = \"namespace\"",
            );
            ok = false;
        }
        ok.then_some(NetworkSpec { mode, tcp })
    }

    /// What namespace mode cannot do: an external broker (it must listen on the run's own
    /// bridge), more subscribers than one /24 holds, a proxy capture.
    pub(crate) fn fit_namespace(
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
                "namespace mode starts its own broker on the run's bridge: use a kind linecut starts (embedded, mosquitto, aedes, amqtt)",
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
                    "TCP_USER_TIMEOUT is set by the client on its own socket: linecut's paho script does (client = \"paho-python\"); the other clients give no way to",
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
}
