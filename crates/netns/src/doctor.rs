//! What a namespace run needs of the machine, checked one by one, each failure with its fix.
//!
//! The checks are cheap and touch nothing that stays: capabilities are read from
//! `/proc/self/status`, the programs are asked for their version, and the kernel features
//! (namespaces, veth, bridges, nftables `netdev` hooks) are tried on a throw-away namespace
//! that is removed at once.

use crate::command::{run, IP};
use crate::names::RunId;
use crate::topology::in_netns;

/// One requirement and whether this machine meets it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub what: &'static str,
    pub ok: bool,
    /// What was found (a version, an error).
    pub detail: String,
    /// How to fix it, when it failed.
    pub fix: &'static str,
}

/// The fix for a missing privilege. File capabilities are deliberately not offered (see
/// [`checks`]).
const ROOT_FIX: &str = "run it as root (sudo linecut …); setcap on linecut is not enough: the ip it starts does not inherit file capabilities";

/// Capability bits (linux/capability.h) namespace mode uses.
const CAP_NET_ADMIN: u32 = 12;
const CAP_NET_RAW: u32 = 13;
const CAP_SYS_ADMIN: u32 = 21;

/// The effective capabilities of this process.
fn effective_caps() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapEff:"))
                .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        })
        .unwrap_or(0)
}

fn version(program: (&'static str, &'static str), args: &[&str]) -> Result<String, String> {
    run(program, args, None)
        .map(|out| out.lines().next().unwrap_or("").trim().to_string())
        .map_err(|e| e.to_string())
}

/// Tries what a run does on a throw-away namespace: a veth pair into it, a bridge, and an
/// nftables `netdev` ingress chain on the namespace's end. Removed whatever happens.
fn kernel_features() -> Result<(), String> {
    let id = RunId::fresh();
    let (ns, host, peer, bridge) = (id.netns(0), id.veth_host(0), id.veth_ns(0), id.bridge());
    let tried = (|| -> Result<(), crate::NetnsError> {
        // Owned like a run's network, before anything exists: a concurrent `doctor --clean`
        // or run start-up would otherwise take the probe for a dead run's leftovers and remove
        // it mid-check (the review's D7), and the doctor would blame the kernel.
        crate::leftovers::claim(id)?;
        run(IP, &["netns", "add", &ns], None)?;
        run(IP, &["link", "add", &bridge, "type", "bridge"], None)?;
        run(
            IP,
            &[
                "link", "add", &host, "type", "veth", "peer", "name", &peer, "netns", &ns,
            ],
            None,
        )?;
        in_netns(&ns, || {
            use crate::netlink::{Batch, Family, Hook, Netlink};
            let mut b = Batch::new();
            b.add_table(Family::Netdev, &id.table());
            b.add_chain(
                Family::Netdev,
                &id.table(),
                "probe",
                &Hook::Ingress {
                    device: peer.clone(),
                },
            );
            Netlink::nftables()?.commit(&b)
        })
    })();
    crate::leftovers::remove_run(id);
    tried.map_err(|e| e.to_string())
}

/// An AF_PACKET socket, as the capture opens one.
fn packet_socket() -> Result<(), String> {
    // SAFETY: a plain socket call; the descriptor is closed at once.
    let fd = unsafe {
        libc::socket(
            libc::AF_PACKET,
            libc::SOCK_RAW,
            i32::from((libc::ETH_P_ALL as u16).to_be()),
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error().to_string());
    }
    // SAFETY: closing the descriptor just opened.
    unsafe { libc::close(fd) };
    Ok(())
}

/// Every check, in the order a reader fixes them.
pub fn checks() -> Vec<Check> {
    let caps = effective_caps();
    let has = |bit: u32| caps & (1 << bit) != 0;
    let mut out = vec![Check {
        what: "Linux",
        ok: cfg!(target_os = "linux"),
        detail: std::env::consts::OS.into(),
        fix: "namespace mode needs Linux network namespaces",
    }];
    // Root, not only the capabilities: a run starts `ip`, and a program exec'd by a
    // non-root process does not inherit file capabilities (`setcap … linecut` gives them to
    // linecut alone), so `ip netns add` then fails on its mount (the review's D11). Advising
    // setcap would send a user to a set-up that cannot work.
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    out.push(Check {
        what: "root (the ip a run starts needs it)",
        ok: root,
        detail: if root {
            "yes".into()
        } else {
            "not root".into()
        },
        fix: ROOT_FIX,
    });
    for (bit, name) in [
        (CAP_NET_ADMIN, "CAP_NET_ADMIN (namespaces, links, nftables)"),
        (CAP_NET_RAW, "CAP_NET_RAW (the capture's packet sockets)"),
        (CAP_SYS_ADMIN, "CAP_SYS_ADMIN (joining a namespace)"),
    ] {
        out.push(Check {
            what: name,
            ok: has(bit),
            detail: if has(bit) { "present".into() } else { "missing".into() },
            fix: if root {
                "root without it: a container started without it (docker run --cap-add NET_ADMIN --cap-add NET_RAW --cap-add SYS_ADMIN, or --privileged)"
            } else {
                ROOT_FIX
            },
        });
    }
    let ip = version(IP, &["-V"]);
    out.push(Check {
        what: "ip (iproute2)",
        ok: ip.is_ok(),
        detail: ip.clone().unwrap_or_else(|e| e),
        fix: "install iproute2: apt-get install iproute2",
    });
    let privileged = root && has(CAP_NET_ADMIN) && has(CAP_SYS_ADMIN);
    let features = if privileged && ip.is_ok() {
        kernel_features()
    } else {
        // Said as not tried, not as a kernel failure: without root the probe fails for a
        // reason that is not the kernel's.
        Err("not tried: needs root, the capabilities and the programs above".into())
    };
    out.push(Check {
        what: "kernel: namespaces, veth, bridge, nftables netdev hooks",
        ok: features.is_ok(),
        detail: features.err().unwrap_or_else(|| "work".into()),
        fix: "a kernel with CONFIG_NET_NS, CONFIG_VETH, CONFIG_BRIDGE and CONFIG_NF_TABLES_NETDEV (every distribution kernel has them)",
    });
    let capture = packet_socket();
    out.push(Check {
        what: "capture (AF_PACKET sockets)",
        ok: capture.is_ok(),
        detail: capture.err().unwrap_or_else(|| "work".into()),
        fix: ROOT_FIX,
    });
    out
}

/// The failed checks as the message a refused run prints: what is missing and how to fix it.
pub fn refusal(checks: &[Check]) -> Option<String> {
    let failed: Vec<&Check> = checks.iter().filter(|c| !c.ok).collect();
    if failed.is_empty() {
        return None;
    }
    let mut s = String::from("namespace mode needs what this machine lacks:");
    for c in failed {
        s.push_str(&format!("\n  - {}: {} — fix: {}", c.what, c.detail, c.fix));
    }
    s.push_str("\n(`linecut doctor` lists every requirement)");
    Some(s)
}
