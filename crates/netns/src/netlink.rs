//! nftables and link state over netlink: the kernel's own messages, written here against the
//! nf_tables and rtnetlink UAPI, sent on sockets opened once per run.
//!
//! Why not `nft` processes: a fault change started one per side per subscriber, 16 ms at the
//! median and 53–67 ms at p99 with eight subscribers, and the eighth subscriber's rules went in
//! tens of milliseconds after the first's. Why not a crate: `rustables` is GPL-3.0 (not
//! compatible with this workspace's licence), the `nftnl`/`mnl` crates bind the C libraries (a
//! build would need them installed), and the pure-Rust `netlink-packet-*` family has no
//! nf_tables rule expressions. What linecut needs is small: tables, base chains, rules from
//! seven expressions, a flush, a table listing, and a link's up/down flag.
//!
//! Two kernel properties make this simple and exact:
//! - A netlink socket belongs to the network namespace it was opened in, whatever thread later
//!   uses it, so a socket opened once by a thread that joined a namespace programs that
//!   namespace from then on ([`Netlink::open_in`]).
//! - The kernel handles a request inside the sender's `sendmsg`: when it returns, an nf_tables
//!   batch is committed (or refused as a whole) and every answer is already queued on the
//!   socket. [`Netlink::commit`] reads them without waiting; the moment it returns is the
//!   moment the rules are in.
//!
//! Every message asks for an acknowledgement, so a commit knows each part was taken; a refusal
//! carries the kernel's extended-ack text where it gives one, and names the message refused.

use crate::NetnsError;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

// netlink(7) and linux/netlink.h.
const NETLINK_ROUTE: i32 = 0;
const NETLINK_NETFILTER: i32 = 12;
const SOL_NETLINK: i32 = 270;
const NETLINK_CAP_ACK: i32 = 10;
const NETLINK_EXT_ACK: i32 = 11;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_DUMP: u16 = 0x300;
const NLM_F_CREATE: u16 = 0x400;
const NLM_F_APPEND: u16 = 0x800;
const NLM_F_ACK_TLVS: u16 = 0x200;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLMSGERR_ATTR_MSG: u16 = 1;
const NLA_F_NESTED: u16 = 0x8000;
const HEADER: usize = 16;

// linux/netfilter/nfnetlink.h and nf_tables.h.
const NFNL_MSG_BATCH_BEGIN: u16 = 0x10;
const NFNL_MSG_BATCH_END: u16 = 0x11;
const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFT_MSG_NEWTABLE: u16 = 0;
const NFT_MSG_GETTABLE: u16 = 1;
const NFT_MSG_DELTABLE: u16 = 2;
const NFT_MSG_NEWCHAIN: u16 = 3;
const NFT_MSG_NEWRULE: u16 = 6;
const NFT_MSG_DELRULE: u16 = 8;
const NFT_MSG_NEWOBJ: u16 = 18;
const NFTA_OBJ_TABLE: u16 = 1;
const NFTA_OBJ_NAME: u16 = 2;
const NFTA_OBJ_TYPE: u16 = 3;
const NFTA_OBJ_DATA: u16 = 4;
/// `NFT_OBJECT_CT_TIMEOUT`: a connection tracking timeout policy.
const NFT_OBJECT_CT_TIMEOUT: u32 = 7;
const NFTA_TABLE_NAME: u16 = 1;
const NFTA_CHAIN_TABLE: u16 = 1;
const NFTA_CHAIN_NAME: u16 = 3;
const NFTA_CHAIN_HOOK: u16 = 4;
const NFTA_CHAIN_POLICY: u16 = 5;
const NFTA_CHAIN_TYPE: u16 = 7;
const NFTA_HOOK_HOOKNUM: u16 = 1;
const NFTA_HOOK_PRIORITY: u16 = 2;
const NFTA_HOOK_DEV: u16 = 3;
const NFTA_RULE_TABLE: u16 = 1;
const NFTA_RULE_CHAIN: u16 = 2;
const NFTA_RULE_EXPRESSIONS: u16 = 4;
const NFTA_LIST_ELEM: u16 = 1;
const NFTA_EXPR_NAME: u16 = 1;
const NFTA_EXPR_DATA: u16 = 2;
const NFTA_DATA_VALUE: u16 = 1;
const NFTA_DATA_VERDICT: u16 = 2;
const NFTA_VERDICT_CODE: u16 = 1;
/// The register every expression here loads into and compares (the first 16-byte one).
const REG_1: u32 = 1;
const REG_VERDICT: u32 = 0;
const NF_DROP: u32 = 0;
const NF_ACCEPT: u32 = 1;

// linux/rtnetlink.h, linux/if.h.
const RTM_NEWLINK: u16 = 16;
const RTM_DELLINK: u16 = 17;
const IFF_UP: u32 = 0x1;

/// An nftables address family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// IPv4 and IPv6 at the IP layer (`inet`).
    Inet,
    /// A device's ingress, before the IP layer (`netdev`).
    Netdev,
}

impl Family {
    fn code(self) -> u8 {
        match self {
            Family::Inet => 1,
            Family::Netdev => 5,
        }
    }

    fn from_code(code: u8) -> Option<Family> {
        match code {
            1 => Some(Family::Inet),
            5 => Some(Family::Netdev),
            _ => None,
        }
    }

    /// The family as `nft` spells it.
    pub fn name(self) -> &'static str {
        match self {
            Family::Inet => "inet",
            Family::Netdev => "netdev",
        }
    }
}

/// Where a base chain hooks in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hook {
    /// `netdev` ingress on one device.
    Ingress { device: String },
    /// `inet` input (packets for this host).
    Input,
    /// `inet` prerouting (every packet arriving, before the routing decision).
    Prerouting,
    /// `inet` output (packets this host sends).
    Output,
}

impl Hook {
    /// `NF_NETDEV_INGRESS` is 0 in its family; the `inet` hooks are `enum nf_inet_hooks`.
    fn number(&self) -> u32 {
        match self {
            Hook::Ingress { .. } | Hook::Prerouting => 0,
            Hook::Input => 1,
            Hook::Output => 3,
        }
    }
}

/// What a base chain is for: filtering, or choosing a new flow's address translation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChainType {
    Filter,
    Nat,
}

/// A connection tracking state, as `ct state` matches it (`NF_CT_STATE_*_BIT`, host order).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CtState {
    Invalid,
    New,
}

impl CtState {
    fn bit(self) -> u32 {
        match self {
            CtState::Invalid => 1,
            CtState::New => 1 << 3,
        }
    }
}

/// A value the `meta` expression loads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Meta {
    /// The link-layer protocol (EtherType, network order).
    Protocol,
    /// The netfilter family of the packet (2 = IPv4).
    Nfproto,
    /// The transport protocol number (one byte).
    L4proto,
    /// The input interface's name (16 bytes, NUL-padded).
    Iifname,
}

impl Meta {
    fn key(self) -> u32 {
        match self {
            // enum nft_meta_keys
            Meta::Protocol => 1,
            Meta::Iifname => 6,
            Meta::Nfproto => 15,
            Meta::L4proto => 16,
        }
    }
}

/// Which header a `payload` load is counted from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Header {
    Network,
    Transport,
}

/// A comparison of register 1 against a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Neq,
    Lt,
}

/// One expression of a rule. Loads go to register 1, comparisons read it; a comparison that
/// fails ends the rule, as in `nft`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expr {
    Meta(Meta),
    Payload {
        header: Header,
        offset: u32,
        len: u32,
    },
    Cmp(Op, Vec<u8>),
    /// A random number in `0..modulus` (numgen random), in host order.
    Random {
        modulus: u32,
    },
    /// Register 1's four bytes to network order, so `Lt` compares numbers (memcmp order).
    ToNetworkOrder,
    Drop,
    /// Answers a TCP segment with a reset and drops it.
    RejectWithTcpReset,
    /// Whether the packet's connection tracking state is this one (ends the rule if not).
    CtStateIs(CtState),
    /// Register 1 = (register 1 & mask), over the mask's length.
    And(Vec<u8>),
    /// Gives the packet's new connection this table's timeout policy (an object of the table).
    SetCtTimeout(String),
    /// Source NAT of a new flow to `addr` and a port drawn at random from `ports`, whatever
    /// the flow's own port was (`snat ip to ADDR:LO-HI fully-random`).
    SnatRandomPort {
        addr: std::net::Ipv4Addr,
        ports: (u16, u16),
    },
}

/// Appends netlink attributes to a message.
struct Attrs<'a>(&'a mut Vec<u8>);

impl Attrs<'_> {
    fn put(&mut self, ty: u16, data: &[u8]) {
        let len = 4 + data.len();
        self.0.extend_from_slice(&(len as u16).to_ne_bytes());
        self.0.extend_from_slice(&ty.to_ne_bytes());
        self.0.extend_from_slice(data);
        self.pad();
    }

    fn pad(&mut self) {
        while self.0.len() % 4 != 0 {
            self.0.push(0);
        }
    }

    fn string(&mut self, ty: u16, s: &str) {
        let mut data = s.as_bytes().to_vec();
        data.push(0);
        self.put(ty, &data);
    }

    /// nf_tables numbers are big-endian.
    fn be32(&mut self, ty: u16, v: u32) {
        self.put(ty, &v.to_be_bytes());
    }

    fn nest(&mut self, ty: u16, inner: impl FnOnce(&mut Attrs)) {
        let start = self.0.len();
        self.0.extend_from_slice(&[0, 0]);
        self.0.extend_from_slice(&(ty | NLA_F_NESTED).to_ne_bytes());
        inner(self);
        let len = (self.0.len() - start) as u16;
        self.0[start..start + 2].copy_from_slice(&len.to_ne_bytes());
    }

    fn expr(&mut self, name: &str, data: impl FnOnce(&mut Attrs)) {
        self.nest(NFTA_LIST_ELEM, |a| {
            a.string(NFTA_EXPR_NAME, name);
            a.nest(NFTA_EXPR_DATA, data);
        });
    }
}

fn encode(expr: &Expr, a: &mut Attrs) {
    match expr {
        Expr::Meta(key) => a.expr("meta", |a| {
            a.be32(1, REG_1); // NFTA_META_DREG
            a.be32(2, key.key()); // NFTA_META_KEY
        }),
        Expr::Payload {
            header,
            offset,
            len,
        } => a.expr("payload", |a| {
            a.be32(1, REG_1); // NFTA_PAYLOAD_DREG
            a.be32(
                2, // NFTA_PAYLOAD_BASE
                match header {
                    Header::Network => 1,
                    Header::Transport => 2,
                },
            );
            a.be32(3, *offset); // NFTA_PAYLOAD_OFFSET
            a.be32(4, *len); // NFTA_PAYLOAD_LEN
        }),
        Expr::Cmp(op, value) => a.expr("cmp", |a| {
            a.be32(1, REG_1); // NFTA_CMP_SREG
            a.be32(
                2, // NFTA_CMP_OP
                match op {
                    Op::Eq => 0,
                    Op::Neq => 1,
                    Op::Lt => 2,
                },
            );
            a.nest(3, |a| a.put(NFTA_DATA_VALUE, value)); // NFTA_CMP_DATA
        }),
        Expr::Random { modulus } => a.expr("numgen", |a| {
            a.be32(1, REG_1); // NFTA_NG_DREG
            a.be32(2, *modulus); // NFTA_NG_MODULUS
            a.be32(3, 1); // NFTA_NG_TYPE: NFT_NG_RANDOM
            a.be32(4, 0); // NFTA_NG_OFFSET
        }),
        Expr::ToNetworkOrder => a.expr("byteorder", |a| {
            a.be32(1, REG_1); // NFTA_BYTEORDER_SREG
            a.be32(2, REG_1); // NFTA_BYTEORDER_DREG
            a.be32(3, 1); // NFTA_BYTEORDER_OP: NFT_BYTEORDER_HTON
            a.be32(4, 4); // NFTA_BYTEORDER_LEN
            a.be32(5, 4); // NFTA_BYTEORDER_SIZE
        }),
        Expr::Drop => a.expr("immediate", |a| {
            a.be32(1, REG_VERDICT); // NFTA_IMMEDIATE_DREG
            a.nest(2, |a| {
                // NFTA_IMMEDIATE_DATA
                a.nest(NFTA_DATA_VERDICT, |a| a.be32(NFTA_VERDICT_CODE, NF_DROP))
            });
        }),
        Expr::RejectWithTcpReset => a.expr("reject", |a| {
            a.be32(1, 1); // NFTA_REJECT_TYPE: NFT_REJECT_TCP_RST
            a.put(2, &[0]); // NFTA_REJECT_ICMP_CODE (u8, unused for a reset)
        }),
        // ct state → reg 1; reg 1 &= bit; reg 1 != 0.
        Expr::CtStateIs(state) => {
            a.expr("ct", |a| {
                a.be32(1, REG_1); // NFTA_CT_DREG
                a.be32(2, 0); // NFTA_CT_KEY: NFT_CT_STATE
            });
            encode(&Expr::And(state.bit().to_ne_bytes().to_vec()), a);
            encode(&Expr::Cmp(Op::Neq, vec![0; 4]), a);
        }
        Expr::And(mask) => a.expr("bitwise", |a| {
            a.be32(1, REG_1); // NFTA_BITWISE_SREG
            a.be32(2, REG_1); // NFTA_BITWISE_DREG
            a.be32(3, mask.len() as u32); // NFTA_BITWISE_LEN
            a.nest(4, |a| a.put(NFTA_DATA_VALUE, mask)); // NFTA_BITWISE_MASK
            a.nest(5, |a| a.put(NFTA_DATA_VALUE, &vec![0; mask.len()])); // NFTA_BITWISE_XOR
        }),
        Expr::SetCtTimeout(name) => a.expr("objref", |a| {
            a.be32(1, NFT_OBJECT_CT_TIMEOUT); // NFTA_OBJREF_IMM_TYPE
            a.string(2, name); // NFTA_OBJREF_IMM_NAME
        }),
        Expr::SnatRandomPort { addr, ports } => {
            // The address and the port range go to registers 1 to 3 first.
            let load = |a: &mut Attrs, reg: u32, value: &[u8]| {
                a.expr("immediate", |a| {
                    a.be32(1, reg); // NFTA_IMMEDIATE_DREG
                    a.nest(2, |a| a.put(NFTA_DATA_VALUE, value)); // NFTA_IMMEDIATE_DATA
                })
            };
            load(a, REG_1, &addr.octets());
            load(a, REG_1 + 1, &ports.0.to_be_bytes());
            load(a, REG_1 + 2, &ports.1.to_be_bytes());
            a.expr("nat", |a| {
                a.be32(1, 0); // NFTA_NAT_TYPE: NFT_NAT_SNAT
                a.be32(2, 2); // NFTA_NAT_FAMILY: NFPROTO_IPV4
                a.be32(3, REG_1); // NFTA_NAT_REG_ADDR_MIN
                a.be32(4, REG_1); // NFTA_NAT_REG_ADDR_MAX
                a.be32(5, REG_1 + 1); // NFTA_NAT_REG_PROTO_MIN
                a.be32(6, REG_1 + 2); // NFTA_NAT_REG_PROTO_MAX
                                      // NF_NAT_RANGE_MAP_IPS | NF_NAT_RANGE_PROTO_SPECIFIED |
                                      // NF_NAT_RANGE_PROTO_RANDOM_FULLY
                a.be32(7, 1 | 2 | 16); // NFTA_NAT_FLAGS
            });
        }
    }
}

/// A TCP timeout policy for connection tracking: each state's timeout in seconds, by its
/// `CTA_TIMEOUT_TCP_*` number; a state left out keeps the kernel's default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpTimeouts(pub Vec<(u16, u32)>);

impl TcpTimeouts {
    /// `CTA_TIMEOUT_TCP_ESTABLISHED`, `_RETRANS`, `_UNACK`: an open flow, idle or not, with data
    /// retransmitted or unacknowledged. A middlebox's idle timer is the same in all three.
    pub fn open_flows(seconds: u32) -> TcpTimeouts {
        TcpTimeouts(vec![(3, seconds), (10, seconds), (11, seconds)])
    }
}

/// One nf_tables transaction: the kernel applies all of its messages or none.
#[derive(Debug, Default)]
pub struct Batch {
    buf: Vec<u8>,
    /// What each acknowledged message does, by its place after the batch's begin message, for
    /// saying which one the kernel refused.
    what: Vec<String>,
}

impl Batch {
    pub fn new() -> Batch {
        Batch::default()
    }

    /// What each message does, in `nft`'s words where they fit.
    pub fn messages(&self) -> &[String] {
        &self.what
    }

    /// Whether the batch changes nothing.
    pub fn is_empty(&self) -> bool {
        self.what.is_empty()
    }

    fn message(
        &mut self,
        ty: u16,
        flags: u16,
        family: Family,
        what: String,
        body: impl FnOnce(&mut Attrs),
    ) {
        self.what.push(what);
        nft_message(
            &mut self.buf,
            (NFNL_SUBSYS_NFTABLES << 8) | ty,
            NLM_F_REQUEST | NLM_F_ACK | flags,
            family.code(),
            self.what.len() as u32,
            body,
        );
    }

    /// Creates a table (nothing happens if it exists).
    pub fn add_table(&mut self, family: Family, table: &str) {
        let what = format!("add table {} {table}", family.name());
        self.message(NFT_MSG_NEWTABLE, NLM_F_CREATE, family, what, |a| {
            a.string(NFTA_TABLE_NAME, table)
        });
    }

    /// Deletes a table with everything in it.
    pub fn delete_table(&mut self, family: Family, table: &str) {
        let what = format!("delete table {} {table}", family.name());
        self.message(NFT_MSG_DELTABLE, 0, family, what, |a| {
            a.string(NFTA_TABLE_NAME, table)
        });
    }

    /// Creates a filter base chain at priority 0 whose policy is accept.
    pub fn add_chain(&mut self, family: Family, table: &str, chain: &str, hook: &Hook) {
        self.add_base_chain(family, table, chain, hook, ChainType::Filter, 0);
    }

    /// Creates a base chain of `kind` at `priority` whose policy is accept.
    pub fn add_base_chain(
        &mut self,
        family: Family,
        table: &str,
        chain: &str,
        hook: &Hook,
        kind: ChainType,
        priority: i32,
    ) {
        let what = format!("add chain {} {table} {chain}", family.name());
        self.message(NFT_MSG_NEWCHAIN, NLM_F_CREATE, family, what, |a| {
            a.string(NFTA_CHAIN_TABLE, table);
            a.string(NFTA_CHAIN_NAME, chain);
            a.nest(NFTA_CHAIN_HOOK, |a| {
                a.be32(NFTA_HOOK_HOOKNUM, hook.number());
                // A signed priority, sent as its two's complement.
                a.be32(NFTA_HOOK_PRIORITY, priority as u32);
                if let Hook::Ingress { device } = hook {
                    a.string(NFTA_HOOK_DEV, device);
                }
            });
            a.be32(NFTA_CHAIN_POLICY, NF_ACCEPT);
            a.string(
                NFTA_CHAIN_TYPE,
                match kind {
                    ChainType::Filter => "filter",
                    ChainType::Nat => "nat",
                },
            );
        });
    }

    /// Creates a connection tracking timeout policy for IPv4 TCP, named `name` in `table`.
    pub fn add_ct_timeout(&mut self, family: Family, table: &str, name: &str, t: &TcpTimeouts) {
        let what = format!("add ct timeout {} {table} {name} {:?}", family.name(), t.0);
        self.message(NFT_MSG_NEWOBJ, NLM_F_CREATE, family, what, |a| {
            a.string(NFTA_OBJ_TABLE, table);
            a.string(NFTA_OBJ_NAME, name);
            a.be32(NFTA_OBJ_TYPE, NFT_OBJECT_CT_TIMEOUT);
            a.nest(NFTA_OBJ_DATA, |a| {
                a.put(1, &2u16.to_be_bytes()); // NFTA_CT_TIMEOUT_L3PROTO: NFPROTO_IPV4
                a.put(2, &[6]); // NFTA_CT_TIMEOUT_L4PROTO: TCP
                a.nest(3, |a| {
                    // NFTA_CT_TIMEOUT_DATA
                    for (state, seconds) in &t.0 {
                        a.be32(*state, *seconds);
                    }
                });
            });
        });
    }

    /// Removes every rule of a chain.
    pub fn flush_chain(&mut self, family: Family, table: &str, chain: &str) {
        let what = format!("flush chain {} {table} {chain}", family.name());
        self.message(NFT_MSG_DELRULE, 0, family, what, |a| {
            a.string(NFTA_RULE_TABLE, table);
            a.string(NFTA_RULE_CHAIN, chain);
        });
    }

    /// Appends a rule to a chain.
    pub fn add_rule(&mut self, family: Family, table: &str, chain: &str, exprs: &[Expr]) {
        let what = format!("add rule {} {table} {chain} {exprs:?}", family.name());
        self.message(
            NFT_MSG_NEWRULE,
            NLM_F_CREATE | NLM_F_APPEND,
            family,
            what,
            |a| {
                a.string(NFTA_RULE_TABLE, table);
                a.string(NFTA_RULE_CHAIN, chain);
                a.nest(NFTA_RULE_EXPRESSIONS, |a| {
                    for e in exprs {
                        encode(e, a);
                    }
                });
            },
        );
    }

    /// The bytes sent: the messages between a batch's begin and end.
    fn framed(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.buf.len() + 2 * (HEADER + 4));
        // The batch messages name the subsystem in the generic header's resource id.
        let subsys = |out: &mut Vec<u8>, ty: u16, seq: u32| {
            nft_message(out, ty, NLM_F_REQUEST, 0, seq, |_| {});
            let at = out.len() - 2;
            out[at..].copy_from_slice(&NFNL_SUBSYS_NFTABLES.to_be_bytes());
        };
        subsys(&mut out, NFNL_MSG_BATCH_BEGIN, 0);
        out.extend_from_slice(&self.buf);
        subsys(&mut out, NFNL_MSG_BATCH_END, self.what.len() as u32 + 1);
        out
    }
}

/// A netlink header, nf_tables' generic header and `body`'s attributes.
fn nft_message(
    out: &mut Vec<u8>,
    ty: u16,
    flags: u16,
    family: u8,
    seq: u32,
    body: impl FnOnce(&mut Attrs),
) {
    let start = out.len();
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&ty.to_ne_bytes());
    out.extend_from_slice(&flags.to_ne_bytes());
    out.extend_from_slice(&seq.to_ne_bytes());
    out.extend_from_slice(&0u32.to_ne_bytes());
    // struct nfgenmsg: family, version (NFNETLINK_V0), resource id (big-endian).
    out.extend_from_slice(&[family, 0, 0, 0]);
    body(&mut Attrs(out));
    let len = (out.len() - start) as u32;
    out[start..start + 4].copy_from_slice(&len.to_ne_bytes());
}

/// One answer the kernel queued: an acknowledgement or refusal of message `seq`, a message of
/// a dump, or a dump's end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Ack {
        seq: u32,
    },
    Refused {
        seq: u32,
        errno: i32,
        message: Option<String>,
    },
    Message {
        ty: u16,
        body: Vec<u8>,
    },
    Done,
}

/// Splits what one `recv` returned into replies. Bytes the kernel would never send (a length
/// past the end, a truncated error) end the parse with an error rather than a guess.
pub fn parse_replies(mut bytes: &[u8]) -> Result<Vec<Reply>, String> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        if bytes.len() < HEADER {
            return Err(format!("{} bytes left, short of a header", bytes.len()));
        }
        let len = u32::from_ne_bytes(bytes[0..4].try_into().expect("4 bytes")) as usize;
        let ty = u16::from_ne_bytes([bytes[4], bytes[5]]);
        let flags = u16::from_ne_bytes([bytes[6], bytes[7]]);
        if len < HEADER || len > bytes.len() {
            return Err(format!(
                "a message of {len} bytes in {} bytes left",
                bytes.len()
            ));
        }
        let body = &bytes[HEADER..len];
        out.push(match ty {
            NLMSG_ERROR => {
                // struct nlmsgerr: the error, then the request's header (capped: no payload).
                if body.len() < 4 + HEADER {
                    return Err(format!("an error message of {} bytes", body.len()));
                }
                let error = i32::from_ne_bytes(body[0..4].try_into().expect("4 bytes"));
                let seq = u32::from_ne_bytes(body[12..16].try_into().expect("4 bytes"));
                if error == 0 {
                    Reply::Ack { seq }
                } else {
                    let tlvs = if flags & NLM_F_ACK_TLVS != 0 {
                        // Capped when the kernel says so; otherwise the whole request follows.
                        let request =
                            u32::from_ne_bytes(body[4..8].try_into().expect("4 bytes")) as usize;
                        let skip = if flags & 0x100 != 0 {
                            4 + HEADER
                        } else {
                            4 + request.max(HEADER)
                        };
                        body.get(skip..).unwrap_or(&[])
                    } else {
                        &[]
                    };
                    Reply::Refused {
                        seq,
                        errno: -error,
                        message: attr(tlvs, NLMSGERR_ATTR_MSG)
                            .map(|m| String::from_utf8_lossy(m).trim_end_matches('\0').into()),
                    }
                }
            }
            NLMSG_DONE => Reply::Done,
            _ => Reply::Message {
                ty,
                body: body.to_vec(),
            },
        });
        // Messages are aligned to 4 bytes; the last one may end the buffer unpadded.
        bytes = &bytes[len.next_multiple_of(4).min(bytes.len())..];
    }
    Ok(out)
}

/// The first attribute of type `ty` in `attrs` (nesting flags ignored).
fn attr(mut attrs: &[u8], ty: u16) -> Option<&[u8]> {
    while attrs.len() >= 4 {
        let len = u16::from_ne_bytes([attrs[0], attrs[1]]) as usize;
        let t = u16::from_ne_bytes([attrs[2], attrs[3]]) & !NLA_F_NESTED;
        if len < 4 || len > attrs.len() {
            return None;
        }
        if t == ty {
            return Some(&attrs[4..len]);
        }
        attrs = &attrs[len.next_multiple_of(4).min(attrs.len())..];
    }
    None
}

/// A netlink socket of one protocol, in the namespace it was opened in.
#[derive(Debug)]
pub struct Netlink {
    fd: OwnedFd,
    seq: u32,
}

/// The largest datagram the kernel sends a netlink reader: it sizes a dump's datagrams to the
/// reader's buffer, up to 32 KiB (`netlink_recvmsg`'s `max_recvmsg_len`); acknowledgements are
/// far smaller. A reader with this much room never sees one truncated.
const DATAGRAM: usize = 32 * 1024;

impl Netlink {
    fn open(protocol: i32) -> io::Result<Netlink> {
        // SAFETY: a plain socket call; the descriptor is owned at once.
        let fd = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                protocol,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd is a new descriptor no one else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: a zeroed sockaddr_nl is the kernel-assigned address.
        let mut addr: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        addr.nl_family = libc::AF_NETLINK as u16;
        // SAFETY: addr is a valid sockaddr_nl of the size given.
        if unsafe {
            libc::bind(
                fd.as_raw_fd(),
                &addr as *const libc::sockaddr_nl as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_nl>() as u32,
            )
        } != 0
        {
            return Err(io::Error::last_os_error());
        }
        // Acknowledgements without the request echoed, and refusals with the kernel's reason
        // where it gives one. Both only shape the answers: older kernels without them still
        // answer.
        for opt in [NETLINK_CAP_ACK, NETLINK_EXT_ACK] {
            let on: i32 = 1;
            // SAFETY: an int option on our socket.
            unsafe {
                libc::setsockopt(
                    fd.as_raw_fd(),
                    SOL_NETLINK,
                    opt,
                    &on as *const i32 as *const libc::c_void,
                    4,
                )
            };
        }
        // A transaction is one datagram, refused with EMSGSIZE when larger than the send
        // buffer (212,992 bytes by default): a change on every member of the largest run, with
        // several faults active, is larger than that. 4 MiB holds any run's; FORCE because a
        // plain SO_SNDBUF is capped by net.core.wmem_max (the caller is root in namespace
        // mode). The answers of such a transaction (one acknowledgement per message) get the
        // same room.
        let room: i32 = 4 << 20;
        for (force, plain) in [
            (libc::SO_SNDBUFFORCE, libc::SO_SNDBUF),
            (libc::SO_RCVBUFFORCE, libc::SO_RCVBUF),
        ] {
            for opt in [force, plain] {
                // SAFETY: an int option on our socket.
                let set = unsafe {
                    libc::setsockopt(
                        fd.as_raw_fd(),
                        libc::SOL_SOCKET,
                        opt,
                        &room as *const i32 as *const libc::c_void,
                        4,
                    )
                };
                if set == 0 {
                    break;
                }
            }
        }
        // A dump is answered on `recv`; bound the wait so a kernel that never answers cannot
        // hang a run.
        let timeout = libc::timeval {
            tv_sec: 5,
            tv_usec: 0,
        };
        // SAFETY: a timeval option on our socket.
        unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                &timeout as *const libc::timeval as *const libc::c_void,
                std::mem::size_of::<libc::timeval>() as u32,
            )
        };
        Ok(Netlink { fd, seq: 0 })
    }

    /// An nf_tables socket in this thread's namespace.
    pub fn nftables() -> Result<Netlink, NetnsError> {
        Netlink::open(NETLINK_NETFILTER)
            .map_err(|e| NetnsError::system("nf_tables netlink socket", e))
    }

    /// An nf_tables socket in namespace `netns`, usable from any thread.
    pub fn nftables_in(netns: &str) -> Result<Netlink, NetnsError> {
        crate::topology::in_netns(netns, Netlink::nftables)
    }

    /// An rtnetlink socket in this thread's namespace.
    pub fn route() -> Result<Netlink, NetnsError> {
        Netlink::open(NETLINK_ROUTE).map_err(|e| NetnsError::system("rtnetlink socket", e))
    }

    fn send(&self, bytes: &[u8]) -> io::Result<()> {
        // SAFETY: sending from a live buffer on our socket (to the kernel, the default peer).
        let n = unsafe {
            libc::send(
                self.fd.as_raw_fd(),
                bytes.as_ptr() as *const libc::c_void,
                bytes.len(),
                0,
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Replies queued now (`wait` false) or, waiting, the next datagram's.
    fn receive(&mut self, wait: bool) -> io::Result<Option<Vec<Reply>>> {
        let flags = if wait { 0 } else { libc::MSG_DONTWAIT };
        // On the stack: a run holds a socket per namespace, and a buffer each would be 8 MiB
        // for the largest run.
        let mut buf = [0u8; DATAGRAM];
        // SAFETY: receiving into our own buffer of the length given.
        let n = unsafe {
            libc::recv(
                self.fd.as_raw_fd(),
                buf.as_mut_ptr() as *mut libc::c_void,
                buf.len(),
                flags,
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            if !wait && e.kind() == io::ErrorKind::WouldBlock {
                return Ok(None);
            }
            return Err(e);
        }
        parse_replies(&buf[..n as usize])
            .map(Some)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
    }

    /// Sends `batch` as one transaction; returns once the kernel has committed it, or says
    /// which message it refused and why (then nothing of the batch is in).
    pub fn commit(&mut self, batch: &Batch) -> Result<(), NetnsError> {
        if batch.is_empty() {
            return Ok(());
        }
        let failed = |e: io::Error| NetnsError::system("nf_tables transaction", e);
        self.send(&batch.framed()).map_err(failed)?;
        // Handled inside the send: every answer is queued by now.
        let (mut acks, mut refused) = (0, Vec::new());
        while let Some(replies) = self.receive(false).map_err(failed)? {
            for reply in replies {
                match reply {
                    Reply::Ack { .. } => acks += 1,
                    Reply::Refused {
                        seq,
                        errno,
                        message,
                    } => refused.push(refusal(
                        batch.what.get((seq as usize).wrapping_sub(1)),
                        errno,
                        message,
                    )),
                    Reply::Message { .. } | Reply::Done => {}
                }
            }
        }
        if !refused.is_empty() {
            return Err(NetnsError::Command {
                command: "nf_tables transaction".into(),
                stderr: refused.join("; "),
            });
        }
        if acks != batch.what.len() {
            return Err(NetnsError::Io(format!(
                "nf_tables acknowledged {acks} of {} messages",
                batch.what.len()
            )));
        }
        Ok(())
    }

    /// The tables in this socket's namespace, of the families linecut uses.
    pub fn tables(&mut self) -> Result<Vec<(Family, String)>, NetnsError> {
        let failed = |e: io::Error| NetnsError::system("listing nf_tables tables", e);
        self.seq += 1;
        let mut request = Vec::new();
        nft_message(
            &mut request,
            (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETTABLE,
            NLM_F_REQUEST | NLM_F_DUMP,
            0,
            self.seq,
            |_| {},
        );
        self.send(&request).map_err(failed)?;
        let mut out = Vec::new();
        loop {
            let replies = self.receive(true).map_err(failed)?.unwrap_or_default();
            for reply in replies {
                match reply {
                    Reply::Done => return Ok(out),
                    Reply::Refused { errno, message, .. } => {
                        return Err(NetnsError::Command {
                            command: "list tables (nf_tables)".into(),
                            stderr: refusal(None, errno, message),
                        })
                    }
                    Reply::Message { body, .. } if body.len() >= 4 => {
                        let name = attr(&body[4..], NFTA_TABLE_NAME).map(|n| {
                            String::from_utf8_lossy(n)
                                .trim_end_matches('\0')
                                .to_string()
                        });
                        if let (Some(family), Some(name)) = (Family::from_code(body[0]), name) {
                            out.push((family, name));
                        }
                    }
                    Reply::Message { .. } | Reply::Ack { .. } => {}
                }
            }
        }
    }

    /// Sets a link up or down (what `ip link set dev NAME up|down` does).
    pub fn set_link_up(&mut self, name: &str, up: bool) -> Result<(), NetnsError> {
        let what = format!("set {name} {}", if up { "up" } else { "down" });
        let flags = if up { IFF_UP } else { 0 };
        self.link_request(RTM_NEWLINK, name, flags, IFF_UP, &what)
    }

    /// Deletes a link (what `ip link delete NAME` does); a veth pair goes with either end.
    pub fn delete_link(&mut self, name: &str) -> Result<(), NetnsError> {
        self.link_request(RTM_DELLINK, name, 0, 0, &format!("delete {name}"))
    }

    /// An rtnetlink request about link `name`: its ifinfomsg with `flags` under `change`.
    fn link_request(
        &mut self,
        ty: u16,
        name: &str,
        flags: u32,
        change: u32,
        what: &str,
    ) -> Result<(), NetnsError> {
        let c = std::ffi::CString::new(name)
            .map_err(|_| NetnsError::Io(format!("{what}: a NUL in the name")))?;
        // SAFETY: a NUL-terminated name.
        let index = unsafe { libc::if_nametoindex(c.as_ptr()) };
        if index == 0 {
            return Err(NetnsError::system(what, io::Error::last_os_error()));
        }
        self.seq += 1;
        let mut m = Vec::with_capacity(32);
        m.extend_from_slice(&32u32.to_ne_bytes());
        m.extend_from_slice(&ty.to_ne_bytes());
        m.extend_from_slice(&(NLM_F_REQUEST | NLM_F_ACK).to_ne_bytes());
        m.extend_from_slice(&self.seq.to_ne_bytes());
        m.extend_from_slice(&0u32.to_ne_bytes());
        // struct ifinfomsg: family, pad, type, index, flags, change.
        m.extend_from_slice(&[0, 0, 0, 0]);
        m.extend_from_slice(&(index as i32).to_ne_bytes());
        m.extend_from_slice(&flags.to_ne_bytes());
        m.extend_from_slice(&change.to_ne_bytes());
        let failed = |e: io::Error| NetnsError::system(what, e);
        self.send(&m).map_err(failed)?;
        while let Some(replies) = self.receive(false).map_err(failed)? {
            for reply in replies {
                match reply {
                    Reply::Ack { .. } => return Ok(()),
                    Reply::Refused { errno, message, .. } => {
                        return Err(NetnsError::Command {
                            command: what.to_string(),
                            stderr: refusal(None, errno, message),
                        })
                    }
                    _ => {}
                }
            }
        }
        Err(NetnsError::Io(format!("{what}: no answer from the kernel")))
    }
}

/// The links of the calling thread's namespace, by name.
pub fn link_names() -> Vec<String> {
    let mut out = Vec::new();
    // SAFETY: if_nameindex returns an array ending in a zero entry, freed below.
    unsafe {
        let list = libc::if_nameindex();
        if list.is_null() {
            return out;
        }
        let mut at = list;
        while (*at).if_index != 0 && !(*at).if_name.is_null() {
            out.push(
                std::ffi::CStr::from_ptr((*at).if_name)
                    .to_string_lossy()
                    .into_owned(),
            );
            at = at.add(1);
        }
        libc::if_freenameindex(list);
    }
    out
}

/// The IPv4 addresses on the calling thread's namespace's links.
pub fn ipv4_addresses() -> Vec<std::net::Ipv4Addr> {
    let mut out = Vec::new();
    // SAFETY: getifaddrs fills a list freed below; each entry's address is read only when it
    // is an AF_INET sockaddr.
    unsafe {
        let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
        if libc::getifaddrs(&mut list) != 0 {
            return out;
        }
        let mut at = list;
        while !at.is_null() {
            let addr = (*at).ifa_addr;
            if !addr.is_null() && i32::from((*addr).sa_family) == libc::AF_INET {
                let sin = addr as *const libc::sockaddr_in;
                out.push(std::net::Ipv4Addr::from(u32::from_be(
                    (*sin).sin_addr.s_addr,
                )));
            }
            at = (*at).ifa_next;
        }
        libc::freeifaddrs(list);
    }
    out
}

/// A refusal as a sentence: the message, the errno's text and the kernel's own words.
fn refusal(what: Option<&String>, errno: i32, message: Option<String>) -> String {
    let mut s = match what {
        Some(w) => format!("{w}: "),
        None => String::new(),
    };
    s.push_str(&io::Error::from_raw_os_error(errno).to_string());
    if let Some(m) = message.filter(|m| !m.is_empty()) {
        s.push_str(&format!(" ({m})"));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_is_framed_by_begin_and_end_and_its_messages_are_aligned() {
        let mut b = Batch::new();
        b.add_table(Family::Netdev, "lc01");
        b.add_rule(Family::Netdev, "lc01", "up0", &[Expr::Drop]);
        let bytes = b.framed();
        let replies = parse_replies(&bytes).unwrap();
        let types: Vec<u16> = replies
            .iter()
            .map(|r| match r {
                Reply::Message { ty, .. } => *ty,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            types,
            vec![
                NFNL_MSG_BATCH_BEGIN,
                (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWTABLE,
                (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWRULE,
                NFNL_MSG_BATCH_END
            ]
        );
        assert_eq!(bytes.len() % 4, 0);
        // The batch messages carry the subsystem, big-endian, in the generic header.
        assert_eq!(&bytes[HEADER + 2..HEADER + 4], &[0, 10]);
        // The table's name is its attribute, NUL-terminated.
        let Reply::Message { body, .. } = &replies[1] else {
            unreachable!()
        };
        assert_eq!(attr(&body[4..], NFTA_TABLE_NAME), Some(&b"lc01\0"[..]));
    }

    #[test]
    fn refusals_carry_the_errno_the_sequence_and_the_kernels_words() {
        let mut m = Vec::new();
        let mut body = Vec::new();
        body.extend_from_slice(&(-libc::ENOENT).to_ne_bytes());
        // The request's header, capped.
        body.extend_from_slice(&20u32.to_ne_bytes());
        body.extend_from_slice(&[0; 4]);
        body.extend_from_slice(&7u32.to_ne_bytes());
        body.extend_from_slice(&[0; 4]);
        Attrs(&mut body).string(NLMSGERR_ATTR_MSG, "No such table");
        m.extend_from_slice(&((HEADER + body.len()) as u32).to_ne_bytes());
        m.extend_from_slice(&NLMSG_ERROR.to_ne_bytes());
        m.extend_from_slice(&(0x100 | NLM_F_ACK_TLVS).to_ne_bytes());
        m.extend_from_slice(&[0; 8]);
        m.extend_from_slice(&body);
        assert_eq!(
            parse_replies(&m).unwrap(),
            vec![Reply::Refused {
                seq: 7,
                errno: libc::ENOENT,
                message: Some("No such table".into())
            }]
        );
    }

    #[test]
    fn bytes_the_kernel_would_not_send_are_an_error_not_a_guess() {
        assert!(parse_replies(&[1, 2, 3]).is_err());
        let mut m = vec![0; HEADER];
        m[0..4].copy_from_slice(&64u32.to_ne_bytes());
        assert!(parse_replies(&m).is_err());
        m[0..4].copy_from_slice(&(HEADER as u32).to_ne_bytes());
        m[4..6].copy_from_slice(&NLMSG_ERROR.to_ne_bytes());
        assert!(parse_replies(&m).is_err(), "an error without its body");
    }
}
