//! A namespace run's network: a bridge on the host with the broker's address, and per
//! subscriber a namespace joined to it by a veth pair, its device TCP settings applied. A
//! wired subscriber's pair ends on the host instead, and a TAP takes its place on the bridge:
//! linecut's wire carries its frames between the two ([`crate::wire`]).
//!
//! [`Topology::create`] returns only a whole topology: if a step fails, what was made is
//! removed before the error comes back. [`Topology::remove`] (and `Drop`) deletes the
//! namespaces (which deletes their pair ends, and so the host ends), the bridge and the run's
//! nftables table, and the owner file.

use crate::command::ip_batch;
use crate::{leftovers, names::RunId, NetnsError};
use linecut_model::TcpSettings;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd};

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
    /// The TAP standing in for the pair's host end on the bridge, when the member is wired.
    pub tap: Option<String>,
}

/// A namespace run's network, removed when dropped.
#[derive(Debug)]
pub struct Topology {
    pub id: RunId,
    pub bridge: String,
    /// The broker's address, on the bridge.
    pub host_addr: Ipv4Addr,
    pub members: Vec<Member>,
    /// The wired members' TAPs, by member index, until the wire takes them.
    taps: Vec<(usize, std::os::fd::OwnedFd)>,
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
        Topology::create_wired(id, count, tcp, &[])
    }

    /// [`Topology::create`], with the members whose indices are in `wired` on linecut's wire.
    pub fn create_wired(
        id: RunId,
        count: u32,
        tcp: &TcpSettings,
        wired: &[usize],
    ) -> Result<Topology, NetnsError> {
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
            taps: Vec::new(),
            removed: false,
        };
        match topology.build(count, tcp, wired) {
            Ok(()) => Ok(topology),
            Err(e) => {
                topology.remove();
                Err(e)
            }
        }
    }

    fn build(&mut self, count: u32, tcp: &TcpSettings, wired: &[usize]) -> Result<(), NetnsError> {
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
                tap: wired.contains(&(n as usize)).then(|| self.id.tap(n)),
            };
            host.push(format!("netns add {}", m.netns));
            host.push(format!(
                "link add {} type veth peer name {} netns {}",
                m.veth_host, m.veth_ns, m.netns
            ));
            match &m.tap {
                // The wire joins the pair's host end to the bridge: the TAP is on it instead.
                Some(tap) => {
                    self.taps.push((n as usize, crate::wire::open_tap(tap)?));
                    host.push(format!("link set {tap} master {}", self.bridge));
                    up.push(format!("link set {tap} up"));
                }
                None => host.push(format!("link set {} master {}", m.veth_host, self.bridge)),
            }
            up.push(format!("link set {} up", m.veth_host));
            self.members.push(m);
        }
        ip_batch(&host)?;
        // The run speaks IPv4 only. With IPv6 on, every link coming up sends router and
        // neighbour solicitations and MLD reports, which the bridge floods into every pair and
        // so into every capture (100 idle namespaces wrote 17,555 ICMPv6 frames in 3 s: the
        // reliability review). Off before the links are up, so not even the first burst leaves.
        if ipv6_present() {
            let taps = self.members.iter().filter_map(|m| m.tap.as_ref());
            for link in std::iter::once(&self.bridge)
                .chain(self.members.iter().map(|m| &m.veth_host))
                .chain(taps)
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
                if m.tap.is_some() {
                    full_frames(&m.veth_ns)?;
                }
                ip_batch(&inside)
            })?;
        }
        Ok(())
    }

    /// The wired members' TAPs, for the wire (they disappear when it closes them).
    pub fn take_taps(&mut self) -> Vec<(usize, std::os::fd::OwnedFd)> {
        std::mem::take(&mut self.taps)
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

/// Makes `link` (in the calling thread's namespace) hand over whole frames: its checksums
/// computed and its segments cut to the MTU before they leave, as a physical NIC puts them on
/// the wire. A veth leaves both to the receiver by default (checksum and segmentation
/// offload), which is fine inside one kernel but not for a wire that forwards frames through
/// a TAP: a partial checksum arrives as a bad one, a 64 KiB segment does not fit. Turning the
/// checksum offload off turns segmentation offload off with it (it depends on it).
fn full_frames(link: &str) -> Result<(), NetnsError> {
    // linux/ethtool.h, linux/sockios.h
    const SIOCETHTOOL: libc::c_ulong = 0x8946;
    const ETHTOOL_STXCSUM: u32 = 0x17;
    #[repr(C)]
    struct EthtoolValue {
        cmd: u32,
        data: u32,
    }
    let mut value = EthtoolValue {
        cmd: ETHTOOL_STXCSUM,
        data: 0,
    };
    // struct ifreq: the name, then a pointer to the command in the union.
    #[repr(C)]
    struct IfReq {
        name: [u8; 16],
        data: *mut EthtoolValue,
        _pad: [u8; 16],
    }
    let mut ifr = IfReq {
        name: [0; 16],
        data: &mut value,
        _pad: [0; 16],
    };
    let bytes = link.as_bytes();
    ifr.name[..bytes.len().min(15)].copy_from_slice(&bytes[..bytes.len().min(15)]);
    // SAFETY: a plain socket for the ioctl, closed on return.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(NetnsError::system(
            "open a socket",
            std::io::Error::last_os_error(),
        ));
    }
    // SAFETY: fd was just returned by socket.
    let fd = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) };
    // SAFETY: SIOCETHTOOL reads a struct ifreq whose data points at a live ethtool_value.
    if unsafe { libc::ioctl(fd.as_raw_fd(), SIOCETHTOOL, &mut ifr) } != 0 {
        return Err(NetnsError::system(
            format!("turn checksum offload off on {link}"),
            std::io::Error::last_os_error(),
        ));
    }
    Ok(())
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
