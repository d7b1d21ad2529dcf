//! The proxy's pcap: both legs of every connection as TCP over IPv4/IPv6 over Ethernet, so
//! Wireshark and tshark open it as if it had been captured on the wire.
//!
//! The proxy does not see TCP segments (the kernel does), so they are synthesised: each leg gets
//! a three-way handshake when it opens, one segment per chunk of bytes at the moment the proxy
//! read or wrote them (at most [`MAX_SEGMENT`] payload bytes each), and FIN or RST when one side
//! ended it. Sequence and acknowledgement numbers are kept per leg and side, so they are
//! consistent within the capture; every data segment acknowledges all the other side has sent.
//! Bytes a fault held appear on the far leg when they were released, bytes it dropped never
//! appear there. Timestamps are linecut's wall clock in microseconds (the events' `ts_us`), so a
//! packet in the capture and its `mqtt_packet` event carry the same time.
//!
//! Writing is synchronous behind a mutex: captures are for experiments, not for the proxy's
//! throughput benchmarks. An IO error stops the capture (nothing more is written) and is
//! reported by [`PcapTap::finish`].
//!
//! [`RawPcap`] writes real frames instead, as a live capture reads them (namespace mode's taps
//! on the veth pairs), in the same file format.

use etherparse::PacketBuilder;
use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Mutex;

/// Largest TCP payload per synthesised segment (fits an IPv4 packet's 16-bit length).
pub const MAX_SEGMENT: usize = 65_000;
/// pcap link type of the frames written.
const LINKTYPE_ETHERNET: u32 = 1;
const SNAPLEN: u32 = 262_144;

/// Which leg of a proxied connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LegSide {
    /// The client and the proxy's listening address.
    Client,
    /// The proxy's outgoing address and the broker.
    Upstream,
}

/// One TCP connection's state: the two endpoints and the next sequence number of each.
#[derive(Debug)]
struct Leg {
    /// The endpoint that opened the connection ("client side" of this leg), then the other.
    opener: SocketAddr,
    acceptor: SocketAddr,
    next_seq: [u32; 2],
    /// Set once a side has sent FIN or RST: nothing more is written for it.
    ended: [bool; 2],
    reset: bool,
}

struct Inner {
    out: BufWriter<File>,
    legs: HashMap<(u64, LegSide), Leg>,
    error: Option<std::io::Error>,
    frame: Vec<u8>,
    frames: u64,
}

/// Writes a pcap of everything a proxy forwards.
pub struct PcapTap {
    inner: Mutex<Inner>,
}

impl std::fmt::Debug for PcapTap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PcapTap")
    }
}

/// A made-up but stable MAC address per IP, so each endpoint looks like one host.
fn mac(ip: IpAddr) -> [u8; 6] {
    let bytes = match ip {
        IpAddr::V4(v4) => v4.octets().to_vec(),
        IpAddr::V6(v6) => v6.octets()[12..].to_vec(),
    };
    // Locally administered, unicast.
    [0x02, 0x00, bytes[0], bytes[1], bytes[2], bytes[3]]
}

/// An initial sequence number that differs per connection and side, like a real stack's.
fn isn(conn: u64, leg: LegSide, side: usize) -> u32 {
    let leg = u64::from(leg == LegSide::Upstream);
    let x = conn
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(leg << 1 | side as u64)
        .wrapping_mul(0xBF58_476D_1CE4_E5B9);
    (x >> 32) as u32
}

#[derive(Clone, Copy)]
struct Flags {
    syn: bool,
    ack: bool,
    psh: bool,
    fin: bool,
    rst: bool,
}

const ACK: Flags = Flags {
    syn: false,
    ack: true,
    psh: false,
    fin: false,
    rst: false,
};

/// Creates `path` and writes a pcap file header: microsecond timestamps, Ethernet frames.
fn create_pcap(path: &Path) -> std::io::Result<BufWriter<File>> {
    let mut out = BufWriter::with_capacity(256 * 1024, File::create(path)?);
    let mut header = Vec::with_capacity(24);
    header.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes()); // microsecond timestamps
    header.extend_from_slice(&2u16.to_le_bytes());
    header.extend_from_slice(&4u16.to_le_bytes());
    header.extend_from_slice(&0i32.to_le_bytes());
    header.extend_from_slice(&0u32.to_le_bytes());
    header.extend_from_slice(&SNAPLEN.to_le_bytes());
    header.extend_from_slice(&LINKTYPE_ETHERNET.to_le_bytes());
    out.write_all(&header)?;
    Ok(out)
}

/// Writes one pcap record.
fn write_record(
    out: &mut impl Write,
    ts_us: i64,
    frame: &[u8],
    wire_len: usize,
) -> std::io::Result<()> {
    let captured = frame.len().min(SNAPLEN as usize);
    let mut header = [0u8; 16];
    header[0..4].copy_from_slice(&((ts_us.div_euclid(1_000_000)) as u32).to_le_bytes());
    header[4..8].copy_from_slice(&((ts_us.rem_euclid(1_000_000)) as u32).to_le_bytes());
    header[8..12].copy_from_slice(&(captured as u32).to_le_bytes());
    header[12..16].copy_from_slice(&(wire_len as u32).to_le_bytes());
    out.write_all(&header)?;
    out.write_all(&frame[..captured])
}

/// A pcap of real Ethernet frames, as a live capture reads them off an interface.
pub struct RawPcap {
    out: BufWriter<File>,
    frames: u64,
}

impl RawPcap {
    /// Creates the file with its header on disk at once: a run killed a moment later still
    /// leaves a capture tshark and linecut can open (empty of frames, not of format).
    pub fn create(path: &Path) -> std::io::Result<RawPcap> {
        let mut out = create_pcap(path)?;
        out.flush()?;
        Ok(RawPcap { out, frames: 0 })
    }

    /// Puts what is buffered on disk (a live capture calls it about once a second, so a
    /// SIGKILL loses at most that much).
    pub fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }

    /// One frame, `wire_len` bytes long on the wire, of which `frame` was captured.
    pub fn frame(&mut self, ts_us: i64, frame: &[u8], wire_len: usize) -> std::io::Result<()> {
        self.frames += 1;
        write_record(&mut self.out, ts_us, frame, wire_len)
    }

    pub fn frames(&self) -> u64 {
        self.frames
    }

    pub fn finish(mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

impl PcapTap {
    /// Creates `path` and writes the pcap file header.
    pub fn create(path: &Path) -> std::io::Result<PcapTap> {
        let out = create_pcap(path)?;
        Ok(PcapTap {
            inner: Mutex::new(Inner {
                out,
                legs: HashMap::new(),
                error: None,
                frame: Vec::with_capacity(MAX_SEGMENT + 128),
                frames: 0,
            }),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A leg opened at `ts_us`: `opener` connected to `acceptor` (SYN, SYN-ACK, ACK).
    pub fn open(
        &self,
        conn: u64,
        leg: LegSide,
        opener: SocketAddr,
        acceptor: SocketAddr,
        ts_us: i64,
    ) {
        let mut inner = self.lock();
        let mut state = Leg {
            opener,
            acceptor,
            next_seq: [isn(conn, leg, 0), isn(conn, leg, 1)],
            ended: [false; 2],
            reset: false,
        };
        let syn = Flags {
            syn: true,
            ack: false,
            ..ACK
        };
        inner.segment(&mut state, 0, syn, &[], ts_us);
        state.next_seq[0] = state.next_seq[0].wrapping_add(1);
        let syn_ack = Flags { syn: true, ..ACK };
        inner.segment(&mut state, 1, syn_ack, &[], ts_us);
        state.next_seq[1] = state.next_seq[1].wrapping_add(1);
        inner.segment(&mut state, 0, ACK, &[], ts_us);
        inner.legs.insert((conn, leg), state);
    }

    /// `bytes` crossed a leg at `ts_us`, sent by its opener (`from_opener`) or by the other side.
    pub fn data(&self, conn: u64, leg: LegSide, from_opener: bool, bytes: &[u8], ts_us: i64) {
        let mut inner = self.lock();
        let Some(mut state) = inner.legs.remove(&(conn, leg)) else {
            return;
        };
        let side = usize::from(!from_opener);
        if !state.ended[side] && !state.reset {
            let psh = Flags { psh: true, ..ACK };
            for chunk in bytes.chunks(MAX_SEGMENT) {
                inner.segment(&mut state, side, psh, chunk, ts_us);
                state.next_seq[side] = state.next_seq[side].wrapping_add(chunk.len() as u32);
            }
        }
        inner.legs.insert((conn, leg), state);
    }

    /// One side of a leg ended it at `ts_us`: FIN (the other side may still send) or RST.
    pub fn close(&self, conn: u64, leg: LegSide, from_opener: bool, rst: bool, ts_us: i64) {
        let mut inner = self.lock();
        let Some(mut state) = inner.legs.remove(&(conn, leg)) else {
            return;
        };
        let side = usize::from(!from_opener);
        // A side that sent its FIN may still reset (its stack answering data for a socket
        // that is gone); nothing follows a reset.
        if !state.reset && (rst || !state.ended[side]) {
            if rst {
                let flags = Flags {
                    rst: true,
                    ack: true,
                    ..ACK
                };
                inner.segment(&mut state, side, flags, &[], ts_us);
                state.reset = true;
            } else {
                let flags = Flags { fin: true, ..ACK };
                inner.segment(&mut state, side, flags, &[], ts_us);
                state.next_seq[side] = state.next_seq[side].wrapping_add(1);
                // The other side's stack acknowledges the FIN at once.
                if !state.ended[1 - side] {
                    inner.segment(&mut state, 1 - side, ACK, &[], ts_us);
                }
            }
            state.ended[side] = true;
        }
        if !(state.reset || state.ended == [true, true]) {
            inner.legs.insert((conn, leg), state);
        }
    }

    /// Frames written so far.
    pub fn frames(&self) -> u64 {
        self.lock().frames
    }

    /// Flushes the file; the first IO error of the capture, if any, is returned here.
    pub fn finish(&self) -> std::io::Result<()> {
        let mut inner = self.lock();
        if let Some(e) = inner.error.take() {
            return Err(e);
        }
        inner.out.flush()
    }
}

impl Inner {
    fn segment(&mut self, leg: &mut Leg, side: usize, flags: Flags, payload: &[u8], ts_us: i64) {
        if self.error.is_some() {
            return;
        }
        let (src, dst) = if side == 0 {
            (leg.opener, leg.acceptor)
        } else {
            (leg.acceptor, leg.opener)
        };
        let seq = leg.next_seq[side];
        let ack = leg.next_seq[1 - side];
        let ethernet = PacketBuilder::ethernet2(mac(src.ip()), mac(dst.ip()));
        let ip = match (src.ip(), dst.ip()) {
            (IpAddr::V4(s), IpAddr::V4(d)) => ethernet.ipv4(s.octets(), d.octets(), 64),
            (s, d) => {
                let v6 = |ip: IpAddr| match ip {
                    IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
                    IpAddr::V6(v6) => v6.octets(),
                };
                ethernet.ipv6(v6(s), v6(d), 64)
            }
        };
        let mut tcp = ip.tcp(src.port(), dst.port(), seq, 65_535);
        if flags.syn {
            tcp = tcp.syn();
        }
        if flags.ack && !(flags.syn && side == 0) {
            tcp = tcp.ack(ack);
        }
        if flags.psh {
            tcp = tcp.psh();
        }
        if flags.fin {
            tcp = tcp.fin();
        }
        if flags.rst {
            tcp = tcp.rst();
        }
        self.frame.clear();
        if let Err(e) = tcp.write(&mut self.frame, payload) {
            self.error = Some(std::io::Error::other(e.to_string()));
            return;
        }
        let result = write_record(&mut self.out, ts_us, &self.frame, self.frame.len());
        match result {
            Ok(()) => self.frames += 1,
            Err(e) => self.error = Some(e),
        }
    }
}
