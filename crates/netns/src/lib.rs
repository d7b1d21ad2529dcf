//! linecut's namespace mode: real links with real TCP on both ends.
//!
//! Every subscriber of a namespace run gets a network namespace of its own, joined by a veth
//! pair to a bridge on the host, where the broker listens. Addresses come from 198.18.0.0/15,
//! the range RFC 2544 sets aside for testing network devices, one /24 per run; a namespace has
//! no route but its own link, so nothing it sends can leave the machine.
//!
//! Link faults are nftables rules in `netdev` ingress hooks on both ends of a subscriber's pair:
//! the host end's hook drops what the client sends (up), the namespace end's hook drops what
//! the broker sends (down). A capture on the host end sees every frame either side sent,
//! retransmissions and SYN retries included, because a tap sits before the ingress hook.
//!
//! Everything a run creates carries the run's id in its name, and an owner file under
//! `/run/linecut/netns/` names the process that created it, so what a killed run left behind is
//! recognised and removed by the next run or `linecut doctor --clean` ([`leftovers`]).
//!
//! A run's network is set up once with `ip -batch` (iproute2), the tool an operator would use to
//! check or undo it. Its nftables rules, changed while the run goes, are netlink messages on
//! sockets opened once per run ([`netlink`]): a fault change starts no process and no thread,
//! and `nft list ruleset` shows what linecut put in.
//!
//! Modules: [`names`] (the run id and every name derived from it), [`command`] (running `ip`),
//! [`netlink`] (nf_tables and link state over netlink), [`topology`] (namespaces, pairs, bridge,
//! sysctls), [`rules`] (link faults as nftables rules), [`leftovers`], [`doctor`] (what the
//! machine needs, with fixes) and [`capture`] (AF_PACKET taps on the host ends, written as
//! pcap).

pub mod capture;
pub mod command;
pub mod doctor;
pub mod impair;
pub mod leftovers;
pub mod names;
pub mod netlink;
pub mod rules;
pub mod topology;
pub mod wire;

pub use names::RunId;
pub use topology::{Member, Topology};

impl NetnsError {
    /// A failed system call while doing `what`.
    pub fn system(what: impl Into<String>, source: std::io::Error) -> NetnsError {
        NetnsError::System {
            what: what.into(),
            source,
        }
    }
}

/// What went wrong setting up or tearing down a namespace run.
#[derive(Debug, thiserror::Error)]
pub enum NetnsError {
    #[error("`{command}` failed: {stderr}")]
    Command { command: String, stderr: String },
    #[error("cannot run `{program}`: {source} (install it: {package})")]
    Missing {
        program: &'static str,
        package: &'static str,
        source: std::io::Error,
    },
    #[error("{0}")]
    Io(String),
    /// A system call failed: what linecut was doing, and the kernel's error kept as the source.
    #[error("{what}: {source}")]
    System {
        what: String,
        source: std::io::Error,
    },
    #[error("no free /24 in 198.18.0.0/15 for this run: every one is in use on this machine")]
    NoSubnet,
    #[error("a namespace run holds at most {max} subscribers (one /24 per run), not {count}")]
    TooMany { count: u32, max: u32 },
}
