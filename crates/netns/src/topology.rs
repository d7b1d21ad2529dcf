//! A namespace run's network: a bridge on the host with the broker's address, and per
//! subscriber a namespace joined to it by a veth pair, its device TCP settings applied.
//!
//! [`Topology::create`] returns only a whole topology: if a step fails, what was made is
//! removed before the error comes back. [`Topology::remove`] (and `Drop`) deletes the
//! namespaces (which deletes their pair ends, and so the host ends), the bridge and the run's
//! nftables table, and the owner file.

use crate::command::ip_batch;
use crate::{leftovers, names::RunId, NetnsError};
use linecut_model::TcpSettings;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;

/// Subscribers per run: one /24, minus the network, broadcast and the bridge's address.
pub const MAX_MEMBERS: u32 = 252;

/// One subscriber's place in the topology.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub index: u32,
    pub netns: String,
    pub veth_host: String,
    pub veth_ns: String,
    pub addr: Ipv4Addr,
}

/// A namespace run's network, removed when dropped.
#[derive(Debug)]
pub struct Topology {
    pub id: RunId,
    pub bridge: String,
    /// The broker's address, on the bridge.
    pub host_addr: Ipv4Addr,
    pub members: Vec<Member>,
    removed: bool,
}

/// The third octet of each /24 in 198.18.0.0/15 (198.18.x and 198.19.x): 512 of them.
fn subnet(slot: u32) -> (u8, u8) {
    (18 + (slot / 256) as u8, (slot % 256) as u8)
}

/// The /24s already carrying an address in the host's namespace, where every run's bridge is.
fn subnets_in_use() -> Vec<(u8, u8)> {
    crate::netlink::ipv4_addresses()
        .into_iter()
        .filter(|a| a.octets()[0] == 198 && matches!(a.octets()[1], 18 | 19))
        .map(|a| (a.octets()[1], a.octets()[2]))
        .collect()
}

/// Moves the calling thread (only it) into network namespace `netns`: sockets it opens from
/// then on, files under `/proc/sys/net` it writes and processes it starts belong to it.
pub fn join(netns: &str) -> Result<(), NetnsError> {
    let path = format!("/run/netns/{netns}");
    let file =
        std::fs::File::open(&path).map_err(|e| NetnsError::system(format!("open {path}"), e))?;
    // SAFETY: setns on this thread only, with a descriptor held open for the call.
    if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(NetnsError::system(
            format!("join {netns}"),
            std::io::Error::last_os_error(),
        ));
    }
    Ok(())
}

/// How long a run waits for the subnet lock before saying who is in the way.
pub const SUBNET_LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// An exclusive lock on `/run/linecut/netns/subnets.lock`, released when its file closes.
pub struct SubnetLock {
    _file: std::fs::File,
}

impl SubnetLock {
    /// Takes the lock, waiting at most `wait` for another holder to let go.
    pub fn take_within(wait: std::time::Duration) -> Result<SubnetLock, NetnsError> {
        let dir = crate::leftovers::OWNER_DIR;
        std::fs::create_dir_all(dir).map_err(|e| NetnsError::system(format!("create {dir}"), e))?;
        let path = format!("{dir}/subnets.lock");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| NetnsError::system(format!("open {path}"), e))?;
        // A run holds the lock while it creates its links (under half a second for 200
        // subscribers); waiting longer means something else holds it. Polled, not blocked on,
        // so the wait is bounded and said (the review's D12: a run sat silent, deaf to Ctrl-C).
        let started = std::time::Instant::now();
        loop {
            // SAFETY: flock on a descriptor we own; LOCK_NB returns at once.
            if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
                return Ok(SubnetLock { _file: file });
            }
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EWOULDBLOCK) {
                return Err(NetnsError::system(format!("lock {path}"), e));
            }
            if started.elapsed() >= wait {
                return Err(NetnsError::Io(format!(
                    "{path} has been held by another process for {:.1} s; a namespace run holds it for under a second while it builds its network (see `fuser {path}`)",
                    wait.as_secs_f64()
                )));
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}

/// Runs `f` on a thread of its own that has joined namespace `netns` (see [`join`]).
pub fn in_netns<T: Send>(
    netns: &str,
    f: impl FnOnce() -> Result<T, NetnsError> + Send,
) -> Result<T, NetnsError> {
    std::thread::scope(|s| {
        s.spawn(|| {
            join(netns)?;
            f()
        })
        .join()
        .unwrap_or_else(|_| Err(NetnsError::Io(format!("the thread in {netns} panicked"))))
    })
}

impl Topology {
    /// Builds the network for `count` subscribers with `tcp` applied in every namespace.
    pub fn create(id: RunId, count: u32, tcp: &TcpSettings) -> Result<Topology, NetnsError> {
        if count == 0 || count > MAX_MEMBERS {
            return Err(NetnsError::TooMany {
                count,
                max: MAX_MEMBERS,
            });
        }
        leftovers::claim(id)?;
        let mut topology = Topology {
            id,
            bridge: id.bridge(),
            host_addr: Ipv4Addr::UNSPECIFIED,
            members: Vec::new(),
            removed: false,
        };
        match topology.build(count, tcp) {
            Ok(()) => Ok(topology),
            Err(e) => {
                topology.remove();
                Err(e)
            }
        }
    }

    fn build(&mut self, count: u32, tcp: &TcpSettings) -> Result<(), NetnsError> {
        // Runs starting together (a sweep's parallel cells) choose their /24 one at a time: the
        // kernel would accept one address on two bridges, so the choice and the bridge's
        // address are made under a lock every namespace run takes.
        let _lock = SubnetLock::take_within(SUBNET_LOCK_WAIT)?;
        let used = subnets_in_use();
        // Start where the id points, so runs rarely even look at the same /24.
        let start = self.id.0 % 512;
        let slot = (0..512)
            .map(|i| (start + i) % 512)
            .find(|s| !used.contains(&subnet(*s)))
            .ok_or(NetnsError::NoSubnet)?;
        let (b, c) = subnet(slot);
        self.host_addr = Ipv4Addr::new(198, b, c, 1);
        let mut host = vec![
            format!("link add {} type bridge", self.bridge),
            format!("addr add {}/24 dev {}", self.host_addr, self.bridge),
        ];
        // Links come up only once IPv6 is off on them (below).
        let mut up = vec![format!("link set {} up", self.bridge)];
        for n in 0..count {
            let m = Member {
                index: n,
                netns: self.id.netns(n),
                veth_host: self.id.veth_host(n),
                veth_ns: self.id.veth_ns(n),
                addr: Ipv4Addr::new(198, b, c, (n + 2) as u8),
            };
            host.push(format!("netns add {}", m.netns));
            host.push(format!(
                "link add {} type veth peer name {} netns {}",
                m.veth_host, m.veth_ns, m.netns
            ));
            host.push(format!("link set {} master {}", m.veth_host, self.bridge));
            up.push(format!("link set {} up", m.veth_host));
            self.members.push(m);
        }
        ip_batch(&host)?;
        // The run speaks IPv4 only. With IPv6 on, every link coming up sends router and
        // neighbour solicitations and MLD reports, which the bridge floods into every pair and
        // so into every capture (100 idle namespaces wrote 17,555 ICMPv6 frames in 3 s: the
        // reliability review). Off before the links are up, so not even the first burst leaves.
        if ipv6_present() {
            for link in
                std::iter::once(&self.bridge).chain(self.members.iter().map(|m| &m.veth_host))
            {
                disable_ipv6(link)?;
            }
        }
        ip_batch(&up)?;
        drop(_lock);
        for m in &self.members {
            let inside = vec![
                "link set lo up".to_string(),
                format!("addr add {}/24 dev {}", m.addr, m.veth_ns),
                format!("link set {} up", m.veth_ns),
            ];
            let mut sysctls: Vec<(String, String)> = tcp
                .sysctls()
                .into_iter()
                .map(|(p, v)| (p.to_string(), v))
                .collect();
            // A device whose carrier is gone does not route over that link (an `unplug`):
            // connects fail at once with "network unreachable", as on a device whose network
            // manager drops its routes when the cable is pulled. Without carrier loss the
            // setting changes nothing.
            for conf in ["all", m.veth_ns.as_str()] {
                sysctls.push((
                    format!("net/ipv4/conf/{conf}/ignore_routes_with_linkdown"),
                    "1".into(),
                ));
            }
            if ipv6_present() {
                // `all` reaches the links that exist (lo and the pair's end), before they are up.
                sysctls.push(("net/ipv6/conf/all/disable_ipv6".into(), "1".into()));
            }
            in_netns(&m.netns, || {
                // Settings first: the links come up already configured.
                for (path, value) in &sysctls {
                    let file = format!("/proc/sys/{path}");
                    std::fs::write(&file, value)
                        .map_err(|e| NetnsError::system(format!("write {file}"), e))?;
                }
                ip_batch(&inside)
            })?;
        }
        Ok(())
    }

    /// Removes everything the run created; safe to call twice.
    pub fn remove(&mut self) {
        if self.removed {
            return;
        }
        self.removed = true;
        leftovers::remove_run(self.id);
    }
}

/// Whether this kernel has IPv6 at all (booted with `ipv6.disable=1` it has no settings).
fn ipv6_present() -> bool {
    std::path::Path::new("/proc/sys/net/ipv6/conf/all").is_dir()
}

/// Turns IPv6 off on a host-side link of the run.
fn disable_ipv6(link: &str) -> Result<(), NetnsError> {
    let file = format!("/proc/sys/net/ipv6/conf/{link}/disable_ipv6");
    std::fs::write(&file, "1").map_err(|e| NetnsError::system(format!("write {file}"), e))
}

impl Drop for Topology {
    fn drop(&mut self) {
        self.remove();
    }
}
