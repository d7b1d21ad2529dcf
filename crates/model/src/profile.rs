//! Link profiles: named presets for `[network] profile`, each a list of link faults on the
//! path for the whole run, every number taken from a published standard or a vendor's
//! documented default (the source is part of the preset, and `scenarios/README.md` prints
//! it). A profile is plain text expanded into faults: `scenario.resolved.toml` shows the
//! faults, not the name.

use crate::link::LinkFaultSpec;
use crate::schedule::SpecError;

/// One preset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Profile {
    pub name: &'static str,
    /// What it stands for, in a few words.
    pub stands_for: &'static str,
    /// Where its numbers come from.
    pub source: &'static str,
    /// Its faults, as link fault specs (`KIND:key=value,...`), for every device, both ways,
    /// the whole run.
    pub faults: &'static [&'static str],
}

/// Every profile, in documentation order: the one registry.
pub const PROFILES: &[Profile] = &[
    Profile {
        name: "aws-network-firewall",
        stands_for: "a stateful cloud firewall with its default TCP idle timeout: a flow idle 350 s is forgotten and its data packets dropped",
        source: "AWS Network Firewall API reference, FlowTimeouts: TcpIdleTimeoutSeconds defaults to 350; after it, data packets are dropped",
        faults: &["idle_timeout:timeout=350s"],
    },
    Profile {
        name: "azure-load-balancer",
        stands_for: "a cloud load balancer with its default idle timeout and no TCP reset: a flow idle 4 minutes is silently forgotten",
        source: "Azure Load Balancer documentation, TCP reset and idle timeout: the idle timeout defaults to 4 minutes, TCP reset on idle is off by default",
        faults: &["idle_timeout:timeout=240s"],
    },
    Profile {
        name: "y1541-class0",
        stands_for: "an IP path at the bounds of ITU-T Y.1541 QoS class 0 (real-time, jitter-sensitive): mean one-way delay 100 ms, delay variation 50 ms, loss 1 in 1000",
        source: "ITU-T Y.1541 (12/2011), Table 1, class 0: IPTD 100 ms, IPDV 50 ms, IPLR 1×10⁻³ (uniform ±25 ms spans the 50 ms variation)",
        faults: &["latency:delay=100ms,jitter=25ms", "loss:probability=0.001"],
    },
    Profile {
        name: "y1541-class1",
        stands_for: "an IP path at the bounds of ITU-T Y.1541 QoS class 1 (real-time, jitter-sensitive, wider area): mean one-way delay 400 ms, delay variation 50 ms, loss 1 in 1000",
        source: "ITU-T Y.1541 (12/2011), Table 1, class 1: IPTD 400 ms, IPDV 50 ms, IPLR 1×10⁻³ (uniform ±25 ms spans the 50 ms variation)",
        faults: &["latency:delay=400ms,jitter=25ms", "loss:probability=0.001"],
    },
];

/// The profile named `name`.
pub fn find(name: &str) -> Option<&'static Profile> {
    PROFILES.iter().find(|p| p.name == name)
}

/// Every profile's name, for messages.
pub fn names() -> Vec<&'static str> {
    PROFILES.iter().map(|p| p.name).collect()
}

impl Profile {
    /// Its faults, parsed.
    pub fn specs(&self) -> Result<Vec<LinkFaultSpec>, SpecError> {
        self.faults.iter().map(|f| f.parse()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_profile_parses_and_reads_back_as_written() {
        for p in PROFILES {
            let specs = p.specs().unwrap_or_else(|e| panic!("{}: {e}", p.name));
            assert_eq!(specs.len(), p.faults.len());
            for (spec, text) in specs.iter().zip(p.faults) {
                // Written in canonical spelling, minus the start every fault has.
                assert_eq!(
                    spec.to_string().replacen("at=0s,", "", 1),
                    *text,
                    "{}",
                    p.name
                );
                assert_eq!(spec.schedule.duration, None, "{}: the whole run", p.name);
            }
        }
        assert_eq!(find("y1541-class1").map(|p| p.name), Some("y1541-class1"));
        assert!(find("lte").is_none());
    }
}
