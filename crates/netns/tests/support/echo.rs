//! What the wire's tests and benchmark share: one member (wired or not) with a capture on its
//! pair's host end, a UDP echo from the member to the host, and the exchanges read back from
//! the capture.

#![allow(dead_code)] // each user takes its part

use linecut_model::TcpSettings;
use linecut_netns::capture::Capture;
use linecut_netns::rules::LinkRules;
use linecut_netns::topology::in_netns;
use linecut_netns::wire::{Wire, WirePort};
use linecut_netns::{RunId, Topology};
use std::collections::HashMap;
use std::net::{Ipv4Addr, UdpSocket};
use std::path::Path;
use std::time::Duration;

/// One member, its rules, its wire when it is wired (seeded) and a capture on its pair's
/// host end.
pub struct Rig {
    pub t: Topology,
    _rules: LinkRules,
    wire: Option<Wire>,
    capture: Capture,
    pcap: std::path::PathBuf,
}

/// A member on linecut's wire seeded with `seed`, or on the bridge itself for `None`.
pub fn rig(name: &str, seed: Option<u64>) -> Rig {
    let wired: &[usize] = if seed.is_some() { &[0] } else { &[] };
    let mut t = Topology::create_wired(RunId::fresh(), 1, &TcpSettings::default(), wired).unwrap();
    let rules = LinkRules::install(&t, None).unwrap();
    let ports: Vec<WirePort> = t
        .take_taps()
        .into_iter()
        .map(|(m, tap)| WirePort {
            veth_host: t.members[m].veth_host.clone(),
            tap,
        })
        .collect();
    let wire = seed.map(|seed| Wire::start(ports, seed).unwrap());
    let pcap = linecut_testkit::temp_dir("wire", name).join("capture.pcap");
    let capture = Capture::start(&pcap, &[t.members[0].veth_host.clone()], 9, 1).unwrap();
    Rig {
        t,
        _rules: rules,
        wire,
        capture,
        pcap,
    }
}

impl Rig {
    pub fn wire(&self) -> &Wire {
        self.wire.as_ref().expect("a wired rig")
    }

    /// Stops the capture and the wire; the device's address and the capture's path.
    pub fn finish(self) -> (Ipv4Addr, std::path::PathBuf) {
        self.capture.stop().unwrap();
        if let Some(wire) = self.wire {
            wire.stop().unwrap();
        }
        (self.t.members[0].addr, self.pcap)
    }
}

/// Sends `count` numbered datagrams `every` apart from the member to an echo on the host and
/// waits for the echoes that come back (or for the last one's time out).
pub fn echo(r: &Rig, count: u32, every: Duration) {
    let server = UdpSocket::bind((r.t.host_addr, 0)).unwrap();
    let to = server.local_addr().unwrap();
    server
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let echoing = std::thread::spawn(move || {
        // The echo's own wake-up is part of every lateness measured: at the wire's real-time
        // priority it adds tens of microseconds however busy the machine is, not the
        // milliseconds a normal thread can wait behind other tests' processes.
        let param = libc::sched_param { sched_priority: 2 };
        // SAFETY: sets the calling thread's own policy (pid 0) from a live sched_param.
        unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &param) };
        let mut buf = [0u8; 64];
        let mut idle = 0;
        // Ends after a second with nothing to echo.
        while idle < 10 {
            match server.recv_from(&mut buf) {
                Ok((n, from)) => {
                    idle = 0;
                    server.send_to(&buf[..n], from).unwrap();
                }
                Err(_) => idle += 1,
            }
        }
    });
    in_netns(&r.t.members[0].netns, || {
        let socket = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).unwrap();
        for n in 0..count {
            socket.send_to(&n.to_be_bytes(), to).unwrap();
            std::thread::sleep(every);
        }
        Ok(())
    })
    .unwrap();
    echoing.join().unwrap();
}

/// Per datagram number: when the request was captured, and when each echo was.
pub fn exchanges(pcap: &Path, device: Ipv4Addr) -> HashMap<u32, (Option<i64>, Vec<i64>)> {
    let mut out: HashMap<u32, (Option<i64>, Vec<i64>)> = HashMap::new();
    linecut_capture::read::read_frames(pcap, |f| {
        let Some(ip) = linecut_capture::link::ip_packet(f.linktype, f.data) else {
            return;
        };
        // IPv4, UDP, a 4-byte payload.
        if ip.len() < 32 || ip[0] >> 4 != 4 || ip[9] != 17 {
            return;
        }
        let ihl = usize::from(ip[0] & 0x0f) * 4;
        let payload = &ip[ihl + 8..];
        if payload.len() != 4 {
            return;
        }
        let n = u32::from_be_bytes(payload.try_into().unwrap());
        let from_device = ip[12..16] == device.octets();
        let entry = out.entry(n).or_default();
        if from_device {
            entry.0.get_or_insert(f.ts_us);
        } else {
            entry.1.push(f.ts_us);
        }
    })
    .unwrap();
    out
}
