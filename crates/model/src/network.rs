//! Where a run's faults live, and what they may be there.
//!
//! In `proxy` mode (the default) faults are played by linecut's MQTT-aware proxy, which
//! terminates TCP. In `namespace` mode every subscriber runs in a network namespace of its own,
//! joined to the host by a veth pair, and faults are nftables rules on that pair: both kernels
//! see the loss, so SYNs go unanswered, data is retransmitted on the kernel's timers and
//! reaches the other side when the line returns. This module holds the vocabulary both modes
//! share (which fault kinds each accepts) and the device's TCP settings, with no runtime.

use std::fmt;

/// How a run's faults are played.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum NetworkMode {
    #[default]
    Proxy,
    Namespace,
}

impl NetworkMode {
    pub const NAMES: [&'static str; 2] = ["proxy", "namespace"];

    pub fn parse(text: &str) -> Option<NetworkMode> {
        match text {
            "proxy" => Some(NetworkMode::Proxy),
            "namespace" => Some(NetworkMode::Namespace),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            NetworkMode::Proxy => "proxy",
            NetworkMode::Namespace => "namespace",
        }
    }
}

impl fmt::Display for NetworkMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Where a `cut` happens, which decides what the device's kernel sees.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum CutLayer {
    /// Past the first hop (a WAN, a cellular core, a switch on the broker's side): IP is
    /// dropped both ways while the neighbour still answers ARP and neighbour solicitations, so
    /// the device keeps sending SYNs and retransmissions into the void. The usual outage.
    #[default]
    Path,
    /// At the device's own link: everything is dropped, ARP and neighbour discovery included.
    /// Once the device's neighbour entry expires (tens of seconds), each connect and each
    /// retransmission dies in neighbour resolution and no TCP leaves at all.
    Link,
}

impl CutLayer {
    pub const NAMES: [&'static str; 2] = ["path", "link"];

    pub fn parse(text: &str) -> Option<CutLayer> {
        match text {
            "path" => Some(CutLayer::Path),
            "link" => Some(CutLayer::Link),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            CutLayer::Path => "path",
            CutLayer::Link => "link",
        }
    }
}

/// A fault of a namespace run: a rule on the subscriber's veth pair, or its carrier.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LinkKind {
    /// Drop traffic (in the chosen directions) at `layer`. Restoring it lets the kernels'
    /// retransmissions through.
    Cut { layer: CutLayer },
    /// The device's own cable pulled: the carrier on its end of the pair goes down, so its
    /// kernel knows at once — connects fail with "network is unreachable" (routes over a link
    /// without carrier are not used, as a network manager drops them) and nothing crosses
    /// either way until the carrier is back.
    Unplug,
    /// Drop each packet with this probability (0 < p < 1).
    Loss { probability: f64 },
    /// Answer TCP with a reset (and anything else with ICMP unreachable): the broker's host is
    /// up but the service is gone, or a fail-fast partition.
    Reject,
    /// A NAT or stateful firewall on the path that forgets a flow idle for `timeout_s`
    /// seconds, and then does `then` with whatever either side sends on it. On the path for
    /// the whole run: it is the network, not an event in it.
    IdleTimeout { timeout_s: u32, then: Forget },
    /// Frames delayed (with jitter, perhaps reordered) by the link: played by linecut's wire.
    Latency(crate::impairment::Latency),
    /// The link's throughput capped at `rate` bytes a second, frames queueing behind each
    /// other: played by the wire.
    Bandwidth { rate: u64 },
    /// Loss in bursts (Gilbert-Elliott): played by the wire.
    BurstLoss(crate::impairment::BurstLoss),
    /// Each frame sent twice with this chance: played by the wire.
    Duplicate { probability: f64 },
    /// One bit of each frame flipped with this chance (past its link header, so the
    /// receiving kernel finds a bad checksum and drops it): played by the wire.
    Corrupt { probability: f64 },
}

/// What a middlebox does with a segment of a flow it has forgotten.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Forget {
    /// Drops it silently: the common NAT and firewall.
    #[default]
    Drop,
    /// Answers it with a TCP reset, as some firewalls do, to whichever side sent it.
    Reset,
    /// Gives the device's flow a new external port (a NAT that lost the mapping): the broker
    /// sees segments of a connection it does not know and answers with a reset; what the
    /// broker sends on its old connection goes nowhere.
    Remap,
}

impl Forget {
    pub const NAMES: [&'static str; 3] = ["drop", "reset", "remap"];

    pub fn parse(text: &str) -> Option<Forget> {
        match text {
            "drop" => Some(Forget::Drop),
            "reset" => Some(Forget::Reset),
            "remap" => Some(Forget::Remap),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Forget::Drop => "drop",
            Forget::Reset => "reset",
            Forget::Remap => "remap",
        }
    }
}

impl LinkKind {
    /// The kinds a namespace scenario accepts, by name.
    pub const NAMES: [&'static str; 10] = [
        "cut",
        "unplug",
        "loss",
        "reject",
        "idle_timeout",
        "latency",
        "bandwidth",
        "burst_loss",
        "duplicate",
        "corrupt",
    ];

    /// The kinds that are middleboxes on the path for the whole run ([`LinkKind::is_middlebox`]).
    pub const MIDDLEBOXES: [&'static str; 1] = ["idle_timeout"];

    /// The plain cut: past the first hop.
    pub const CUT: LinkKind = LinkKind::Cut {
        layer: CutLayer::Path,
    };

    pub fn name(self) -> &'static str {
        match self {
            LinkKind::Cut { .. } => "cut",
            LinkKind::Unplug => "unplug",
            LinkKind::Loss { .. } => "loss",
            LinkKind::Reject => "reject",
            LinkKind::IdleTimeout { .. } => "idle_timeout",
            LinkKind::Latency(_) => "latency",
            LinkKind::Bandwidth { .. } => "bandwidth",
            LinkKind::BurstLoss(_) => "burst_loss",
            LinkKind::Duplicate { .. } => "duplicate",
            LinkKind::Corrupt { .. } => "corrupt",
        }
    }

    /// The event this fault plays, in the words a report header uses.
    pub fn event(self) -> &'static str {
        match self {
            LinkKind::Cut {
                layer: CutLayer::Path,
            } => "a cut past the first hop: IP dropped, the neighbour still answering ARP, so the device's SYNs and retransmissions leave and get no answer",
            LinkKind::Cut {
                layer: CutLayer::Link,
            } => "a cut at the device's link: everything dropped, ARP included, so once its neighbour entry expires its connects and retransmissions die in neighbour resolution and no TCP leaves",
            LinkKind::Unplug => "the device's cable pulled: its carrier down, so its kernel refuses connects at once (network unreachable) and nothing crosses",
            LinkKind::Loss { .. } => "random loss: each packet dropped with the given probability",
            LinkKind::Reject => "a reject: TCP answered with a reset at once, as by a host whose service is gone",
            LinkKind::IdleTimeout { then: Forget::Drop, .. } => "a NAT or firewall that forgets an idle flow and then drops what either side sends on it",
            LinkKind::IdleTimeout { then: Forget::Reset, .. } => "a firewall that forgets an idle flow and then answers what either side sends on it with a reset",
            LinkKind::IdleTimeout { then: Forget::Remap, .. } => "a NAT that forgets an idle flow and gives the device's next segment a new external port, which the broker answers with a reset",
            LinkKind::Latency(_) => "a slow link: every frame delayed, with jitter, on linecut's wire",
            LinkKind::Bandwidth { .. } => "a thin link: frames queue behind each other at the link's rate, on linecut's wire",
            LinkKind::BurstLoss(_) => "a weak link losing frames in bursts (Gilbert-Elliott), on linecut's wire",
            LinkKind::Duplicate { .. } => "a link that sends some frames twice, on linecut's wire",
            LinkKind::Corrupt { .. } => "a link that damages some frames (a bad checksum: the receiver drops them), on linecut's wire",
        }
    }

    /// Whether it silences the line (a keepalive is what notices it).
    pub fn is_silent(self) -> bool {
        matches!(
            self,
            LinkKind::Cut { .. }
                | LinkKind::Unplug
                | LinkKind::IdleTimeout {
                    then: Forget::Drop,
                    ..
                }
        )
    }

    /// Whether linecut's wire plays it (frames forwarded by linecut between the device's link
    /// and the bridge) rather than a rule on the link.
    pub fn is_impairment(self) -> bool {
        matches!(
            self,
            LinkKind::Latency(_)
                | LinkKind::Bandwidth { .. }
                | LinkKind::BurstLoss(_)
                | LinkKind::Duplicate { .. }
                | LinkKind::Corrupt { .. }
        )
    }

    /// Whether it is a middlebox on the path for the whole run rather than an event at a time:
    /// its outages are the flows it forgets, found in the run's wire.
    pub fn is_middlebox(self) -> bool {
        matches!(self, LinkKind::IdleTimeout { .. })
    }
}

/// The device's TCP settings, applied in each subscriber's namespace (Linux sysctls): they
/// decide how fast a kernel gives up on a silent peer. `None` keeps the kernel's default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TcpSettings {
    /// `net.ipv4.tcp_syn_retries`: SYN retransmissions before connect() fails.
    pub syn_retries: Option<u8>,
    /// `net.ipv4.tcp_retries2`: data retransmissions before an established connection is
    /// ended.
    pub retries2: Option<u8>,
    /// `net.ipv4.tcp_keepalive_time`, seconds.
    pub keepalive_time_s: Option<u32>,
    /// `net.ipv4.tcp_keepalive_intvl`, seconds.
    pub keepalive_intvl_s: Option<u32>,
    /// `net.ipv4.tcp_keepalive_probes`.
    pub keepalive_probes: Option<u8>,
    /// `TCP_USER_TIMEOUT` on the client's own socket, milliseconds: how long sent data may stay
    /// unacknowledged before the kernel ends the connection. A socket option, not a sysctl, so
    /// only a client that can set it on its socket takes it (linecut's paho script does).
    pub user_timeout_ms: Option<u32>,
}

impl TcpSettings {
    /// Each setting as its sysctl path under `/proc/sys` and value.
    pub fn sysctls(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        let mut put = |path: &'static str, v: Option<String>| {
            if let Some(v) = v {
                out.push((path, v));
            }
        };
        put(
            "net/ipv4/tcp_syn_retries",
            self.syn_retries.map(|v| v.to_string()),
        );
        put(
            "net/ipv4/tcp_retries2",
            self.retries2.map(|v| v.to_string()),
        );
        put(
            "net/ipv4/tcp_keepalive_time",
            self.keepalive_time_s.map(|v| v.to_string()),
        );
        put(
            "net/ipv4/tcp_keepalive_intvl",
            self.keepalive_intvl_s.map(|v| v.to_string()),
        );
        put(
            "net/ipv4/tcp_keepalive_probes",
            self.keepalive_probes.map(|v| v.to_string()),
        );
        out
    }

    pub fn is_default(&self) -> bool {
        *self == TcpSettings::default()
    }

    /// Every setting as `meta.json` and the report name it (sysctls, then the socket option).
    pub fn named(&self) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = self
            .sysctls()
            .into_iter()
            .map(|(path, v)| (path.rsplit('/').next().unwrap_or(path).to_string(), v))
            .collect();
        if let Some(ms) = self.user_timeout_ms {
            out.push(("tcp_user_timeout".into(), format!("{ms}ms")));
        }
        out
    }
}

/// The kernel's own limits on these settings (`tcp_syn_retries` is capped at 127 by Linux; the
/// others are whole numbers the scenario bounds to keep a run finite).
pub const MAX_SYN_RETRIES: u8 = 127;
pub const MAX_RETRIES2: u8 = 127;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_and_kinds_read_back_by_name() {
        for name in NetworkMode::NAMES {
            assert_eq!(NetworkMode::parse(name).unwrap().name(), name);
        }
        assert_eq!(NetworkMode::parse("bridge"), None);
        for kind in LinkKind::NAMES {
            assert!(crate::link_keys(kind).is_some(), "{kind}");
        }
        for name in CutLayer::NAMES {
            assert_eq!(CutLayer::parse(name).unwrap().name(), name);
        }
        assert_eq!(CutLayer::default(), CutLayer::Path);
        assert_eq!(crate::link_keys("blackhole"), None);
        for kind in LinkKind::MIDDLEBOXES {
            let spec: crate::LinkFaultSpec = format!("{kind}:timeout=5s").parse().unwrap();
            assert!(spec.kind.is_middlebox(), "{kind}");
        }
    }

    #[test]
    fn only_set_tcp_settings_become_sysctls() {
        let s = TcpSettings {
            syn_retries: Some(2),
            retries2: Some(3),
            ..TcpSettings::default()
        };
        assert_eq!(
            s.sysctls(),
            vec![
                ("net/ipv4/tcp_syn_retries", "2".to_string()),
                ("net/ipv4/tcp_retries2", "3".to_string()),
            ]
        );
        assert!(TcpSettings::default().sysctls().is_empty());
    }
}
