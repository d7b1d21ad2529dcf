//! Link faults as nftables rules.
//!
//! Each subscriber's pair has two chains, both in `netdev` ingress hooks: `up<n>` on the host
//! end (what the client sends) and `down` in the subscriber's namespace on its end (what the
//! broker sends). The rules of a chain are a function of the faults active on it, so every
//! change flushes the chain and writes its rules anew in one transaction: nothing depends on
//! rule handles, and a refused change leaves the previous rules in place.
//!
//! [`LinkRules`] is what a run uses: it installs the base rules and applies the faults active on
//! each member after a change, so no caller writes a rule. It holds a netlink socket for the
//! host and one opened in each member's namespace at install ([`crate::netlink`]): a change is
//! one transaction for the host side of every member it touches, then one in each touched
//! namespace, with no process started and no thread spawned; an `unplug` is the carrier of the
//! pair's host end, set first and only when it changes. Each member's rules are in when its
//! namespace's transaction returns, and [`LinkRules::apply`] says when that was.

use crate::names::RunId;
use crate::netlink::{Batch, Expr, Family, Header, Hook, Meta, Netlink, Op};
use crate::topology::{Member, Topology};
use crate::NetnsError;
use linecut_model::{CutLayer, LinkKind};
use std::time::Instant;

/// The namespace-side chain's name (one per namespace).
pub const DOWN_CHAIN: &str = "down";

/// The chain on the host's `input` hook guarding the broker's address.
const GUARD_CHAIN: &str = "broker_guard";

/// The host-side chain of member `n`.
pub fn up_chain(n: u32) -> String {
    format!("up{n}")
}

/// An interface name as `meta iifname` loads it: 16 bytes, NUL-padded.
fn ifname(name: &str) -> Vec<u8> {
    let mut v = name.as_bytes().to_vec();
    v.resize(16, 0);
    v
}

/// The host's tables: one ingress chain per member's host end, accepting everything (the
/// faults' rules go there), and a guard on the broker's address: only the run's bridge (and
/// the host itself, over `lo`) reaches it. The host would otherwise answer on that address
/// whatever arrives on any interface (Linux accepts a local address on every interface), so a
/// neighbour routing 198.18.0.0/15 here could reach a broker that accepts anything.
pub fn base_host(t: &Topology) -> Batch {
    let table = t.id.table();
    let mut b = Batch::new();
    b.add_table(Family::Inet, &table);
    b.add_chain(Family::Inet, &table, GUARD_CHAIN, &Hook::Input);
    // ip daddr <broker> iifname != { <bridge>, "lo" } drop
    b.add_rule(
        Family::Inet,
        &table,
        GUARD_CHAIN,
        &[
            Expr::Meta(Meta::Nfproto),
            Expr::Cmp(Op::Eq, vec![2]), // NFPROTO_IPV4
            Expr::Payload {
                header: Header::Network,
                offset: 16, // the IPv4 destination address
                len: 4,
            },
            Expr::Cmp(Op::Eq, t.host_addr.octets().to_vec()),
            Expr::Meta(Meta::Iifname),
            Expr::Cmp(Op::Neq, ifname(&t.bridge)),
            Expr::Cmp(Op::Neq, ifname("lo")),
            Expr::Drop,
        ],
    );
    b.add_table(Family::Netdev, &table);
    for m in &t.members {
        b.add_chain(
            Family::Netdev,
            &table,
            &up_chain(m.index),
            &Hook::Ingress {
                device: m.veth_host.clone(),
            },
        );
    }
    b
}

/// A namespace's table: one ingress chain on its end of the pair.
pub fn base_ns(id: RunId, member: &Member) -> Batch {
    let mut b = Batch::new();
    b.add_table(Family::Netdev, &id.table());
    b.add_chain(
        Family::Netdev,
        &id.table(),
        DOWN_CHAIN,
        &Hook::Ingress {
            device: member.veth_ns.clone(),
        },
    );
    b
}

/// EtherTypes as `meta protocol` loads them (network order).
const ETH_IP: [u8; 2] = [0x08, 0x00];
const ETH_IP6: [u8; 2] = [0x86, 0xdd];
const IPPROTO_ICMPV6: u8 = 58;
const IPPROTO_TCP: u8 = 6;
/// ICMPv6 neighbour solicitation and advertisement (RFC 4861).
const ND_SOLICIT: u8 = 135;
const ND_ADVERT: u8 = 136;

/// The rules one active fault adds to a chain, each a list of expressions.
pub fn rules(kind: LinkKind) -> Vec<Vec<Expr>> {
    let is = |op, v: &[u8]| Expr::Cmp(op, v.to_vec());
    match kind {
        // Past the first hop: IP goes, neighbour resolution stays (ARP is not IP; IPv6's
        // neighbour discovery is ICMPv6 and is spared by type). No `accept`: a verdict here
        // would skip the rules of other faults active on the chain.
        LinkKind::Cut {
            layer: CutLayer::Path,
        } => vec![
            // meta protocol ip drop
            vec![Expr::Meta(Meta::Protocol), is(Op::Eq, &ETH_IP), Expr::Drop],
            // meta protocol ip6 meta l4proto != ipv6-icmp drop
            vec![
                Expr::Meta(Meta::Protocol),
                is(Op::Eq, &ETH_IP6),
                Expr::Meta(Meta::L4proto),
                is(Op::Neq, &[IPPROTO_ICMPV6]),
                Expr::Drop,
            ],
            // icmpv6 type != { nd-neighbor-solicit, nd-neighbor-advert } drop, as two
            // comparisons (a set would be a second object to create with the rule).
            vec![
                Expr::Meta(Meta::Protocol),
                is(Op::Eq, &ETH_IP6),
                Expr::Meta(Meta::L4proto),
                is(Op::Eq, &[IPPROTO_ICMPV6]),
                Expr::Payload {
                    header: Header::Transport,
                    offset: 0,
                    len: 1,
                },
                is(Op::Neq, &[ND_SOLICIT]),
                is(Op::Neq, &[ND_ADVERT]),
                Expr::Drop,
            ],
        ],
        LinkKind::Cut {
            layer: CutLayer::Link,
        } => vec![vec![Expr::Drop]],
        // The carrier, not a rule ([`LinkRules::apply`]).
        LinkKind::Unplug => Vec::new(),
        // numgen draws per packet; a millionth is finer than any probability a run can show.
        // The draw is in host order and `<` compares bytes, so it is turned around first.
        LinkKind::Loss { probability } => vec![vec![
            Expr::Random { modulus: 1_000_000 },
            Expr::ToNetworkOrder,
            Expr::Cmp(
                Op::Lt,
                ((probability * 1e6).round() as u32).to_be_bytes().to_vec(),
            ),
            Expr::Drop,
        ]],
        // TCP gets a reset at once; other protocols (ARP among them) pass, as they would to
        // a host whose service is gone.
        LinkKind::Reject => vec![vec![
            Expr::Meta(Meta::L4proto),
            is(Op::Eq, &[IPPROTO_TCP]),
            Expr::RejectWithTcpReset,
        ]],
    }
}

/// Adds to `batch` what replaces a chain's rules with those of the `active` faults.
pub fn chain_update(batch: &mut Batch, id: RunId, chain: &str, active: &[LinkKind]) {
    let table = id.table();
    batch.flush_chain(Family::Netdev, &table, chain);
    for kind in active {
        for rule in rules(*kind) {
            batch.add_rule(Family::Netdev, &table, chain, &rule);
        }
    }
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
#[derive(Debug)]
pub struct LinkRules {
    id: RunId,
    members: Vec<Member>,
    /// Whether each member's cable is in (the carrier of its pair's host end).
    carrier: Vec<bool>,
    host: Netlink,
    route: Netlink,
    /// One socket in each member's namespace, by member.
    inside: Vec<Netlink>,
}

impl LinkRules {
    /// Opens the sockets and puts the base rules of `topology` in place: the host's tables and
    /// guard, and each namespace's chain.
    pub fn install(topology: &Topology) -> Result<LinkRules, NetnsError> {
        let mut host = Netlink::nftables()?;
        host.commit(&base_host(topology))?;
        // One thread visits every namespace in turn, opening its socket there.
        let mut inside = std::thread::scope(|s| {
            s.spawn(|| -> Result<Vec<Netlink>, NetnsError> {
                topology
                    .members
                    .iter()
                    .map(|m| {
                        crate::topology::join(&m.netns)?;
                        Netlink::nftables()
                    })
                    .collect()
            })
            .join()
            .unwrap_or_else(|_| Err(NetnsError::Io("the socket-opening thread panicked".into())))
        })?;
        for (m, socket) in topology.members.iter().zip(inside.iter_mut()) {
            socket.commit(&base_ns(topology.id, m))?;
        }
        Ok(LinkRules {
            id: topology.id,
            members: topology.members.clone(),
            carrier: vec![true; topology.members.len()],
            host,
            route: Netlink::route()?,
            inside,
        })
    }

    /// Replaces the rules of the members a change touched with those of their active faults,
    /// and returns, for each in the order given, when the kernel had all of its rules (its
    /// host side and its namespace side). A member's cable is out while an `unplug` is
    /// active on it.
    pub fn apply(&mut self, changed: &[MemberFaults]) -> Result<Vec<Instant>, NetnsError> {
        for c in changed {
            let plugged = !c.up.contains(&LinkKind::Unplug) && !c.down.contains(&LinkKind::Unplug);
            if plugged != self.carrier[c.member] {
                self.route
                    .set_link_up(&self.members[c.member].veth_host, plugged)?;
                self.carrier[c.member] = plugged;
            }
        }
        let mut host = Batch::new();
        for c in changed {
            chain_update(
                &mut host,
                self.id,
                &up_chain(self.members[c.member].index),
                &c.up,
            );
        }
        self.host.commit(&host)?;
        let mut stamps = Vec::with_capacity(changed.len());
        for c in changed {
            let mut inside = Batch::new();
            chain_update(&mut inside, self.id, DOWN_CHAIN, &c.down);
            self.inside[c.member].commit(&inside)?;
            stamps.push(Instant::now());
        }
        Ok(stamps)
    }
}

/// Deletes a run's tables in the calling thread's namespace, ignoring those already gone.
pub fn remove_tables(id: RunId) -> Result<(), NetnsError> {
    let mut socket = Netlink::nftables()?;
    let present = socket.tables()?;
    let mut b = Batch::new();
    for (family, name) in present {
        if name == id.table() {
            b.delete_table(family, &name);
        }
    }
    socket.commit(&b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chain_update_is_one_flush_and_the_active_rules() {
        let id = RunId(0x0102_0304);
        let mut b = Batch::new();
        chain_update(
            &mut b,
            id,
            "up3",
            &[
                LinkKind::Cut {
                    layer: CutLayer::Link,
                },
                LinkKind::Loss { probability: 0.2 },
            ],
        );
        let m = b.messages();
        assert_eq!(m.len(), 3, "{m:?}");
        assert_eq!(m[0], "flush chain netdev lc01020304 up3");
        assert!(
            m[1].starts_with("add rule netdev lc01020304 up3 [Drop]"),
            "{m:?}"
        );
        // 0.2 of a million, in network order so that `<` compares numbers.
        assert!(
            m[2].contains(&format!("{:?}", 200_000u32.to_be_bytes())),
            "{m:?}"
        );
        let mut unplug = Batch::new();
        chain_update(&mut unplug, id, "down", &[LinkKind::Unplug]);
        assert_eq!(unplug.messages(), ["flush chain netdev lc01020304 down"]);
        // No fault's rule gives a verdict but drop: an accept would skip the others' rules.
        for kind in [LinkKind::CUT, LinkKind::Reject] {
            for rule in rules(kind) {
                assert!(matches!(
                    rule.last(),
                    Some(Expr::Drop | Expr::RejectWithTcpReset)
                ));
            }
        }
    }
}
