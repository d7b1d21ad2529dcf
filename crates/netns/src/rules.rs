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
use crate::netlink::{
    Batch, ChainType, CtState, Expr, Family, Header, Hook, Meta, Netlink, Op, TcpTimeouts,
};
use crate::topology::{Member, Topology};
use crate::NetnsError;
use linecut_model::{CutLayer, Forget, LinkKind};
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
        // What the device sends enters the host where its frames meet the bridge: the pair's
        // host end, or a wired member's TAP.
        b.add_chain(
            Family::Netdev,
            &table,
            &up_chain(m.index),
            &Hook::Ingress {
                device: m.tap.clone().unwrap_or_else(|| m.veth_host.clone()),
            },
        );
        if m.tap.is_some() {
            // The wire reads the pair's host end before this hook; the host itself must not
            // see those frames (it would answer ARP and take IP for the broker directly).
            let chain = format!("wire{}", m.index);
            b.add_chain(
                Family::Netdev,
                &table,
                &chain,
                &Hook::Ingress {
                    device: m.veth_host.clone(),
                },
            );
            b.add_rule(Family::Netdev, &table, &chain, &[Expr::Drop]);
        }
    }
    b
}

/// An idle-timeout middlebox on the path of some members: a NAT or stateful firewall made of
/// the host's own connection tracking, which every packet between a member and the broker
/// crosses (the broker is on the host, the member's frames reach it through the bridge).
#[derive(Debug, Clone, PartialEq)]
pub struct Middlebox {
    pub timeout_s: u32,
    pub then: Forget,
    /// The members behind it, by index in the topology's `members`.
    pub members: Vec<usize>,
}

/// The timeout policy's name in the run's table.
const IDLE_POLICY: &str = "idle";
/// The device's new external port after a remap is drawn from here: below Linux's ephemeral
/// range (32768-60999), so it always differs from the port the device chose.
pub const REMAP_PORTS: (u16, u16) = (20000, 29999);

/// The middlebox's rules in the host's table.
///
/// Each flow a member opens gets the policy `idle` on its first packet (its SYN, in
/// prerouting, before the flow is confirmed: a policy is only taken then), so connection
/// tracking forgets it `timeout_s` after its last packet either way. What comes after is a
/// packet that finds no flow: the kernel takes it up as a new flow (`ct state new`, TCP's
/// loose pick-up) or, a reset or with pick-up off, as invalid. A segment that is not a bare
/// SYN and starts a flow is exactly "a segment of a flow the middlebox forgot":
/// - `drop`: dropped in input (from the device, after its capture on the pair) and in output
///   (from the broker, before its capture: the middlebox is between the broker and the wire
///   the run captures, so what the broker sends into the void is not in `capture.pcap`);
/// - `reset`: answered with a reset to its sender, each way;
/// - `remap`: the device's segment is given a new source port (`snat … fully-random` in the
///   nat input hook), so the broker's TCP finds no connection and resets it, and the reset
///   finds its way back through the new mapping; the broker's segments on the old flow are
///   dropped, as a NAT drops what arrives for a mapping it no longer has.
///
/// The unconfirmed flow a dropped packet started dies with it, so every later segment is
/// judged the same way. Nothing else on the host changes: no sysctl, no other flow's timeout.
pub fn middlebox(t: &Topology, m: &Middlebox) -> Batch {
    let table = t.id.table();
    let mut b = Batch::new();
    b.add_ct_timeout(
        Family::Inet,
        &table,
        IDLE_POLICY,
        &TcpTimeouts::open_flows(m.timeout_s),
    );
    // Connection tracking runs at -200; -150 is the first point with the flow to give a
    // policy to (where `nft` documents `ct timeout set`).
    b.add_base_chain(
        Family::Inet,
        &table,
        "mb_pre",
        &Hook::Prerouting,
        ChainType::Filter,
        -150,
    );
    b.add_chain(Family::Inet, &table, "mb_in", &Hook::Input);
    b.add_chain(Family::Inet, &table, "mb_out", &Hook::Output);
    if m.then == Forget::Remap {
        // NF_IP_PRI_NAT_SRC.
        b.add_base_chain(
            Family::Inet,
            &table,
            "mb_nat",
            &Hook::Input,
            ChainType::Nat,
            100,
        );
    }
    let verdict = |then: Forget| match then {
        Forget::Reset => Expr::RejectWithTcpReset,
        Forget::Drop | Forget::Remap => Expr::Drop,
    };
    for member in m.members.iter().filter_map(|i| t.members.get(*i)) {
        let addr = member.addr.octets().to_vec();
        let tcp_at = |offset: u32| {
            vec![
                Expr::Meta(Meta::Nfproto),
                Expr::Cmp(Op::Eq, vec![2]), // NFPROTO_IPV4
                Expr::Payload {
                    header: Header::Network,
                    offset,
                    len: 4,
                },
                Expr::Cmp(Op::Eq, addr.clone()),
                Expr::Meta(Meta::L4proto),
                Expr::Cmp(Op::Eq, vec![IPPROTO_TCP]),
            ]
        };
        let (from, to) = (tcp_at(12), tcp_at(16));
        let with = |base: &Vec<Expr>, tail: &[Expr]| {
            let mut rule = base.clone();
            rule.extend_from_slice(tail);
            rule
        };
        // tcp flags & (syn | ack) != syn
        let not_a_syn = [
            Expr::Payload {
                header: Header::Transport,
                offset: 13,
                len: 1,
            },
            Expr::And(vec![0x12]),
            Expr::Cmp(Op::Neq, vec![0x02]),
        ];
        let forgotten = |verdict: Expr| {
            let mut tail = not_a_syn.to_vec();
            tail.push(Expr::CtStateIs(CtState::New));
            tail.push(verdict);
            tail
        };
        b.add_rule(
            Family::Inet,
            &table,
            "mb_pre",
            &with(
                &from,
                &[
                    Expr::CtStateIs(CtState::New),
                    Expr::SetCtTimeout(IDLE_POLICY.into()),
                ],
            ),
        );
        // From the device: a reset, or a segment with pick-up off, of a forgotten flow.
        let device = match m.then {
            Forget::Remap => Expr::Drop,
            then => verdict(then),
        };
        b.add_rule(
            Family::Inet,
            &table,
            "mb_in",
            &with(&from, &[Expr::CtStateIs(CtState::Invalid), device.clone()]),
        );
        if m.then == Forget::Remap {
            b.add_rule(
                Family::Inet,
                &table,
                "mb_nat",
                &with(
                    &from,
                    &forgotten(Expr::SnatRandomPort {
                        addr: member.addr,
                        ports: REMAP_PORTS,
                    }),
                ),
            );
        } else {
            b.add_rule(
                Family::Inet,
                &table,
                "mb_in",
                &with(&from, &forgotten(device)),
            );
        }
        b.add_rule(
            Family::Inet,
            &table,
            "mb_out",
            &with(&to, &[Expr::CtStateIs(CtState::Invalid), verdict(m.then)]),
        );
        b.add_rule(
            Family::Inet,
            &table,
            "mb_out",
            &with(&to, &forgotten(verdict(m.then))),
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
/// The TCP header's flags byte, and its RST bit (RFC 9293 §3.1).
const TCP_FLAGS_OFFSET: u32 = 13;
const TCP_RST: u8 = 0x04;
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
        // a host whose service is gone. A reset itself is let through: the one this rule sends
        // back crosses the other direction's rule, which (dir = both) would otherwise swallow
        // it, and the endpoint would see a silent cut instead of a refusal.
        LinkKind::Reject => vec![vec![
            Expr::Meta(Meta::L4proto),
            is(Op::Eq, &[IPPROTO_TCP]),
            Expr::Payload {
                header: Header::Transport,
                offset: TCP_FLAGS_OFFSET,
                len: 1,
            },
            Expr::And(vec![TCP_RST]),
            is(Op::Eq, &[0]),
            Expr::RejectWithTcpReset,
        ]],
        // Not a rule on the pair: the host's connection tracking, there from the start
        // ([`middlebox`]).
        LinkKind::IdleTimeout { .. } => Vec::new(),
        // Not a rule either: linecut's wire plays them ([`crate::wire`]).
        LinkKind::Latency(_)
        | LinkKind::Bandwidth { .. }
        | LinkKind::BurstLoss(_)
        | LinkKind::Duplicate { .. }
        | LinkKind::Corrupt { .. } => Vec::new(),
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
    /// guard, the middlebox if the run has one (before any flow opens: a flow takes its
    /// timeout policy on its first packet), and each namespace's chain.
    pub fn install(
        topology: &Topology,
        middlebox: Option<&Middlebox>,
    ) -> Result<LinkRules, NetnsError> {
        let mut host = Netlink::nftables()?;
        host.commit(&base_host(topology))?;
        if let Some(m) = middlebox {
            host.commit(&self::middlebox(topology, m))?;
        }
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
