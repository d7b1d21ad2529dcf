//! What linecut's test suites share, defined once: fresh directories per test, the check that
//! a kernel test may run (root), and the SYNs a capture holds, read with linecut's own reader.
//! A dev-dependency only; nothing here is part of linecut.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// True when running as root (namespace and capture tests need it; CI runs as root).
pub fn root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// A path of its own for a test, with nothing there: what a test hands to something that
/// creates its directory itself (a run). `suite` and `name` keep tests apart; the process id
/// keeps concurrent runs of the suite apart.
pub fn fresh_path(suite: &str, name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("linecut-{suite}-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// An empty directory of its own for a test.
pub fn temp_dir(suite: &str, name: &str) -> PathBuf {
    let dir = fresh_path(suite, name);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// One SYN segment in a capture (a client's, or a server's SYN-ACK).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Syn {
    pub ts_us: i64,
    pub src: SocketAddr,
    pub dst: SocketAddr,
}

/// Every SYN in the capture at `pcap`, in file order.
pub fn syns(pcap: &Path) -> Vec<Syn> {
    segments(pcap)
        .into_iter()
        .filter(|s| s.syn)
        .map(|s| Syn {
            ts_us: s.ts_us,
            src: s.src,
            dst: s.dst,
        })
        .collect()
}

/// One TCP segment in a capture: when, between whom, its flags and payload length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    pub ts_us: i64,
    pub src: SocketAddr,
    pub dst: SocketAddr,
    pub syn: bool,
    pub fin: bool,
    pub rst: bool,
    pub seq: u32,
    pub len: usize,
}

/// Every TCP segment in the capture at `pcap`, in file order.
pub fn segments(pcap: &Path) -> Vec<Segment> {
    let mut out = Vec::new();
    linecut_capture::read::read_frames(pcap, |f| {
        let Some(ip) = linecut_capture::link::ip_packet(f.linktype, f.data) else {
            return;
        };
        let Some(s) = linecut_capture::link::tcp_segment(ip) else {
            return;
        };
        out.push(Segment {
            ts_us: f.ts_us,
            src: s.src,
            dst: s.dst,
            syn: s.syn,
            fin: s.fin,
            rst: s.rst,
            seq: s.seq,
            len: s.payload.len(),
        });
    })
    .unwrap();
    out
}
