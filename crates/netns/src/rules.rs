//! Link faults as nftables rules.
//!
//! Each subscriber's pair has two chains, both in `netdev` ingress hooks: `up<n>` on the host
//! end (what the client sends) and `down` in the subscriber's namespace on its end (what the
//! broker sends). The rules of a chain are a function of the faults active on it, so every
//! change is one transaction that flushes the chain and writes its rules anew: nothing depends
//! on rule handles, and a failed change leaves the previous rules in place.
//!
//! [`LinkRules`] is what a run uses: it installs the base rules and applies the faults active on
//! each member after a change, so no caller writes a script. A change is one transaction for
//! the host side of every member it touches (one `nft` process, however many members), then
//! one in each touched namespace; an `unplug` is the carrier of the pair's host end, set first
//! and only when it changes. The scripts are built here, without touching the kernel
//! ([`base_host`], [`base_ns`], [`chain_update`]); [`apply_host`] and [`apply_ns`] send them.

use crate::command::nft;
use crate::names::RunId;
use crate::topology::{in_netns, Member, Topology};
use crate::NetnsError;
use linecut_model::{CutLayer, LinkKind};

/// The namespace-side chain's name (one per namespace).
pub const DOWN_CHAIN: &str = "down";

/// The host-side chain of member `n`.
pub fn up_chain(n: u32) -> String {
    format!("up{n}")
}

/// The host's tables: one ingress chain per member's host end, accepting everything (the
/// faults' rules go there), and a guard on the broker's address: only the run's bridge (and
/// the host itself, over `lo`) reaches it. The host would otherwise answer on that address
/// whatever arrives on any interface (Linux accepts a local address on every interface), so a
/// neighbour routing 198.18.0.0/15 here could reach a broker that accepts anything.
pub fn base_host(t: &Topology) -> String {
    let (id, members) = (t.id, &t.members);
    let mut s = format!(
        "table inet {table} {{\n  chain broker_guard {{ type filter hook input priority 0; policy accept; ip daddr {addr} iifname != {{ \"{bridge}\", \"lo\" }} drop; }}\n}}\n",
        table = id.table(),
        addr = t.host_addr,
        bridge = t.bridge,
    );
    s.push_str(&format!("table netdev {} {{\n", id.table()));
    for m in members {
        s.push_str(&format!(
            "  chain {} {{ type filter hook ingress device \"{}\" priority 0; policy accept; }}\n",
            up_chain(m.index),
            m.veth_host
        ));
    }
    s.push_str("}\n");
    s
}

/// A namespace's table: one ingress chain on its end of the pair.
pub fn base_ns(id: RunId, member: &Member) -> String {
    format!(
        "table netdev {} {{\n  chain {DOWN_CHAIN} {{ type filter hook ingress device \"{}\" priority 0; policy accept; }}\n}}\n",
        id.table(),
        member.veth_ns
    )
}

/// The rule statements one active fault adds to a chain.
fn statements(kind: LinkKind) -> Vec<String> {
    match kind {
        // Past the first hop: IP goes, neighbour resolution stays (ARP is not IP; IPv6's
        // neighbour discovery is ICMPv6 and is spared by type). No `accept`: a verdict here
        // would skip the rules of other faults active on the chain.
        LinkKind::Cut {
            layer: CutLayer::Path,
        } => vec![
            "meta protocol ip drop".into(),
            "meta protocol ip6 meta l4proto != ipv6-icmp drop".into(),
            "meta protocol ip6 icmpv6 type != { nd-neighbor-solicit, nd-neighbor-advert } drop"
                .into(),
        ],
        LinkKind::Cut {
            layer: CutLayer::Link,
        } => vec!["drop".into()],
        // The carrier, not a rule ([`set_carrier`]).
        LinkKind::Unplug => Vec::new(),
        // numgen draws per packet; a millionth is finer than any probability a run can show.
        LinkKind::Loss { probability } => vec![format!(
            "numgen random mod 1000000 < {} drop",
            (probability * 1e6).round() as u32
        )],
        // TCP gets a reset at once; other protocols (ARP among them) pass, as they would to
        // a host whose service is gone.
        LinkKind::Reject => vec!["meta l4proto tcp reject with tcp reset".into()],
    }
}

/// One transaction that replaces a chain's rules with those of the `active` faults.
pub fn chain_update(id: RunId, chain: &str, active: &[LinkKind]) -> String {
    let table = id.table();
    let mut s = format!("flush chain netdev {table} {chain}\n");
    for kind in active {
        for st in statements(*kind) {
            s.push_str(&format!("add rule netdev {table} {chain} {st}\n"));
        }
    }
    s
}

/// The faults active on one member after a change: on what it sends and on what it receives.
#[derive(Debug, Clone, PartialEq)]
pub struct MemberFaults {
    /// The member's index in the topology's `members`.
    pub member: usize,
    pub up: Vec<LinkKind>,
    pub down: Vec<LinkKind>,
}

/// A run's link faults as the kernel's rules, owned by whatever plays the schedule.
#[derive(Debug, Clone)]
pub struct LinkRules {
    id: RunId,
    members: Vec<Member>,
    /// Whether each member's cable is in (the carrier of its pair's host end).
    carrier: Vec<bool>,
}

impl LinkRules {
    /// Puts the base rules of `topology` in place: the host's tables and guard, and each
    /// namespace's chain.
    pub fn install(topology: &Topology) -> Result<LinkRules, NetnsError> {
        apply_host(&base_host(topology))?;
        for m in &topology.members {
            apply_ns(m, &base_ns(topology.id, m))?;
        }
        Ok(LinkRules {
            id: topology.id,
            members: topology.members.clone(),
            carrier: vec![true; topology.members.len()],
        })
    }

    /// Replaces the rules of the members a change touched with those of their active faults:
    /// returns when the kernel has them all. A member's cable is out while an `unplug` is
    /// active on it.
    pub fn apply(&mut self, changed: &[MemberFaults]) -> Result<(), NetnsError> {
        for c in changed {
            let plugged = !c.up.contains(&LinkKind::Unplug) && !c.down.contains(&LinkKind::Unplug);
            if plugged != self.carrier[c.member] {
                set_carrier(&self.members[c.member], plugged)?;
                self.carrier[c.member] = plugged;
            }
        }
        let host: String = changed
            .iter()
            .map(|c| chain_update(self.id, &up_chain(self.members[c.member].index), &c.up))
            .collect();
        if !host.is_empty() {
            apply_host(&host)?;
        }
        for c in changed {
            apply_ns(
                &self.members[c.member],
                &chain_update(self.id, DOWN_CHAIN, &c.down),
            )?;
        }
        Ok(())
    }
}

/// Pulls or plugs a member's cable: its host end down takes the carrier off the namespace end
/// (a veth pair's ends share it), as a pulled cable does to a device's port.
pub fn set_carrier(member: &Member, up: bool) -> Result<(), NetnsError> {
    crate::command::run(
        crate::command::IP,
        &[
            "link",
            "set",
            "dev",
            &member.veth_host,
            if up { "up" } else { "down" },
        ],
        None,
    )
    .map(|_| ())
}

/// Sends a script to the host's nftables.
pub fn apply_host(script: &str) -> Result<(), NetnsError> {
    nft(script)
}

/// Sends a script to a member's namespace.
pub fn apply_ns(member: &Member, script: &str) -> Result<(), NetnsError> {
    in_netns(&member.netns, || nft(script))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chain_update_is_one_flush_and_the_active_rules() {
        let id = RunId(0x0102_0304);
        let s = chain_update(
            id,
            "up3",
            &[
                LinkKind::Cut {
                    layer: CutLayer::Link,
                },
                LinkKind::Loss { probability: 0.2 },
            ],
        );
        assert_eq!(
            s,
            "flush chain netdev lc01020304 up3\n\
             add rule netdev lc01020304 up3 drop\n\
             add rule netdev lc01020304 up3 numgen random mod 1000000 < 200000 drop\n"
        );
        let path = chain_update(id, "down", &[LinkKind::CUT]);
        assert!(path.contains("meta protocol ip drop"), "{path}");
        assert!(!path.contains(" accept"), "{path}");
        assert_eq!(
            chain_update(id, "down", &[LinkKind::Unplug]),
            "flush chain netdev lc01020304 down\n"
        );
        assert_eq!(
            chain_update(id, "down", &[]),
            "flush chain netdev lc01020304 down\n"
        );
        assert!(chain_update(id, "down", &[LinkKind::Reject]).contains("reject with tcp reset"));
    }
}
