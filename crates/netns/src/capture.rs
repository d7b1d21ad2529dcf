//! The wire view of a namespace run: AF_PACKET taps on the host end of every subscriber's
//! veth pair, written to one pcap.
//!
//! Why AF_PACKET in linecut rather than a spawned tcpdump: a tap bound to one interface sees
//! exactly that interface's frames in both directions (what the namespace sent, before the
//! ingress hook that may drop it, and what the host sends toward it), with no second copy from
//! the bridge; it needs no program installed and no process to start, watch and stop; and the
//! frames land in the run's capture with linecut's own clock. A tap on the host end sits before
//! the `netdev` ingress hook there, so dropped frames are still captured: the file shows every
//! retransmission and SYN retry each side sent during a cut.
//!
//! Each tap is a TPACKET_V3 ring mapped into linecut's memory: the kernel fills blocks of frames
//! and hands a block over when it is full or 10 ms after its first frame, so the capture thread
//! wakes once per block instead of making a system call per frame (measured in `cargo bench -p
//! linecut-netns --bench links` against the per-frame `recvmsg` path, which stays as the
//! fallback for a kernel that refuses the ring). The frames of the blocks handed over together
//! are written in time order across taps.

use linecut_capture::flows::{Flows, Observation};
use linecut_capture::link::{ip_packet, tcp_segment};
use linecut_capture::RawPcap;
use std::collections::{BTreeSet, HashMap};
use std::ffi::CString;
use std::net::IpAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// Largest frame a tap reads (veth MTU 1500; offloads can hand up to 64 KiB).
const FRAME: usize = 65_536 + 64;
/// A ring block: room for the largest frame twice over. The kernel hands a block over when
/// full or [`BLOCK_TIMEOUT_MS`] after its first frame.
const BLOCK: usize = 128 << 10;
const BLOCK_TIMEOUT_MS: u32 = 10;
/// How long a frame waits for the other taps before it is written in time order.
const ORDER_SLACK_US: i64 = 10 * BLOCK_TIMEOUT_MS as i64 * 1_000;
/// The rings of a capture share this much memory (blocks are pinned kernel pages), within
/// [`MIN_BLOCKS`] and [`MAX_BLOCKS`] per tap: 4 MiB for each of up to 8 taps, 256 KiB each
/// for 252.
const RING_BUDGET: usize = 32 << 20;
const MIN_BLOCKS: usize = 2;
const MAX_BLOCKS: usize = 32;
// linux/if_packet.h
const SOL_PACKET: i32 = 263;
const PACKET_RX_RING: i32 = 5;
const PACKET_STATISTICS: i32 = 6;
const PACKET_VERSION: i32 = 10;
const TPACKET_V3: i32 = 2;
const TP_STATUS_KERNEL: u32 = 0;
const TP_STATUS_USER: u32 = 1;
/// How often the capture thread looks at its stop flag, in milliseconds.
const POLL_MS: i32 = 50;

/// How a capture reads its taps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// A TPACKET_V3 ring per tap, read a block at a time.
    Ring,
    /// One `recvmsg` per frame (the fallback, and the benchmark's comparator).
    Recvmsg,
}

/// What a stopped capture wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Written {
    pub frames: u64,
    /// Frames the kernel could not hand over because the ring (or socket buffer) was full.
    pub dropped: u64,
    /// The capture thread's CPU time, user and system (the kernel's work of handing frames
    /// to the taps is done on the senders' time, not counted here).
    pub cpu: std::time::Duration,
}

/// The calling thread's CPU time so far.
fn thread_cpu() -> std::time::Duration {
    // SAFETY: getrusage fills the struct it is given.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut u) };
    let us = |tv: libc::timeval| tv.tv_sec as u64 * 1_000_000 + tv.tv_usec as u64;
    std::time::Duration::from_micros(us(u.ru_utime) + us(u.ru_stime))
}

/// A running capture.
pub struct Capture {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<std::io::Result<Written>>>,
    subscribed: Arc<Mutex<BTreeSet<IpAddr>>>,
    /// Why the capture thread stopped before it was asked to (a full disk: ENOSPC), for the
    /// run to end on at once rather than go on with a capture that is no longer written.
    failed: Arc<Mutex<Option<String>>>,
}

fn last_error(what: &str) -> std::io::Error {
    let e = std::io::Error::last_os_error();
    std::io::Error::new(e.kind(), format!("{what}: {e}"))
}

/// A packet socket bound to `interface`, with µs timestamps on every frame, and a ring of
/// `blocks` blocks when asked for one (set up before the bind, as the kernel requires).
fn tap(interface: &str, blocks: Option<usize>) -> std::io::Result<(OwnedFd, Option<Ring>)> {
    // Opened with no protocol, so it receives nothing until bound to its interface with one
    // (packet(7)): a socket that already receives waits for an RCU grace period each time it
    // is re-hooked (its ring set up, its bind), about 12 ms here, which for 252 taps was
    // seconds.
    // SAFETY: a plain socket call.
    let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0) };
    if fd < 0 {
        return Err(last_error("open an AF_PACKET socket"));
    }
    // SAFETY: fd was just returned by socket and is owned from here on.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let ring = match blocks {
        Some(blocks) => Some(Ring::map(&fd, blocks)?),
        None => None,
    };
    bind_to(&fd, interface)?;
    let on: libc::c_int = 1;
    let buffer: libc::c_int = 8 << 20;
    // SAFETY: valid descriptor, pointers to live values of the sizes given.
    unsafe {
        // Timestamps from the moment the kernel took the frame in, as `SO_TIMESTAMP` asks of
        // every received frame; the ring's headers carry the same stamp.
        if libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_TIMESTAMP,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as u32,
        ) != 0
        {
            return Err(last_error("enable timestamps"));
        }
        // A larger buffer rides out a burst while the thread writes; failure only shrinks it.
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&buffer as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as u32,
        );
    }
    Ok((fd, ring))
}

/// Binds packet socket `fd` to `interface`, for every protocol: from then on it reads that
/// interface's frames (and sends out of it).
pub(crate) fn bind_to(fd: &OwnedFd, interface: &str) -> std::io::Result<()> {
    let name = CString::new(interface).map_err(std::io::Error::other)?;
    // SAFETY: plain libc calls; the name is a valid C string.
    let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
    if index == 0 {
        return Err(last_error(&format!("find interface {interface}")));
    }
    // SAFETY: sockaddr_ll is plain data; zeroed is a valid value before the fields are set.
    let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    addr.sll_family = libc::AF_PACKET as u16;
    addr.sll_protocol = (libc::ETH_P_ALL as u16).to_be();
    addr.sll_ifindex = index as i32;
    // SAFETY: valid descriptor, a pointer to a live sockaddr_ll of the size given.
    let bound = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&addr as *const libc::sockaddr_ll).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as u32,
        )
    };
    if bound != 0 {
        return Err(last_error(&format!("bind a packet socket to {interface}")));
    }
    Ok(())
}

/// How many taps are opened or closed at once. Setting up a ring and closing a packet socket
/// each wait for an RCU grace period in the kernel (`synchronize_net`); waits made together
/// end together, so 252 taps take a few grace periods rather than 252 (6 s each way, measured).
const TAPS_AT_ONCE: usize = 32;

/// Opens a tap on each interface, [`TAPS_AT_ONCE`] at a time.
fn open_taps(
    interfaces: &[String],
    blocks: Option<usize>,
) -> std::io::Result<Vec<(OwnedFd, Option<Ring>)>> {
    let mut out = Vec::with_capacity(interfaces.len());
    for chunk in interfaces.chunks(TAPS_AT_ONCE) {
        let opened: Vec<std::io::Result<(OwnedFd, Option<Ring>)>> = std::thread::scope(|s| {
            let handles: Vec<_> = chunk
                .iter()
                .map(|i| s.spawn(move || tap(i, blocks)))
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err(std::io::Error::other("a tap's thread panicked")))
                })
                .collect()
        });
        for tap in opened {
            out.push(tap?);
        }
    }
    Ok(out)
}

/// Closes taps (each ring unmapped before its socket closes), [`TAPS_AT_ONCE`] at a time.
fn close_taps(taps: Vec<OwnedFd>, rings: Vec<Ring>) {
    let mut rings = rings.into_iter();
    let mut pairs: Vec<(OwnedFd, Option<Ring>)> =
        taps.into_iter().map(|t| (t, rings.next())).collect();
    while !pairs.is_empty() {
        let rest = pairs.split_off(pairs.len().min(TAPS_AT_ONCE));
        std::thread::scope(|s| {
            for (fd, ring) in pairs.drain(..) {
                s.spawn(move || {
                    drop(ring);
                    drop(fd);
                });
            }
        });
        pairs = rest;
    }
}

/// A TPACKET_V3 receive ring mapped into this process.
struct Ring {
    map: *mut u8,
    blocks: usize,
    /// The block to look at next: the kernel hands blocks over in order.
    next: usize,
}

// SAFETY: the mapping is owned by the one thread that reads the ring; the kernel's side is
// synchronised through each block's status word.
unsafe impl Send for Ring {}

/// Frames handed over by the rings and not yet written, copied out so their blocks go back to
/// the kernel at once (a block kept makes the ring's `poll` report it readable, and the thread
/// would spin until it is written).
#[derive(Default)]
struct Pending {
    bytes: Vec<u8>,
    /// (time, start in `bytes`, captured length, length on the wire)
    frames: Vec<(i64, usize, usize, usize)>,
}

impl Pending {
    fn push(&mut self, ts_us: i64, data: &[u8], wire: usize) {
        self.frames
            .push((ts_us, self.bytes.len(), data.len(), wire));
        self.bytes.extend_from_slice(data);
    }

    /// Hands the frames stamped at or before `watermark` to `write`, in time order.
    fn write_until(
        &mut self,
        watermark: i64,
        mut write: impl FnMut(i64, &[u8], usize) -> std::io::Result<()>,
    ) -> std::io::Result<()> {
        // Stable: frames of one tap with one stamp keep the order the tap gave them.
        self.frames.sort_by_key(|f| f.0);
        let ready = self.frames.partition_point(|f| f.0 <= watermark);
        for &(ts, start, len, wire) in &self.frames[..ready] {
            write(ts, &self.bytes[start..start + len], wire)?;
        }
        self.frames.drain(..ready);
        if self.frames.is_empty() {
            self.bytes.clear();
        } else if self.bytes.len() > (1 << 20) {
            // What is left moves to the front, so the buffer holds at most the frames of the
            // last ORDER_SLACK_US and a megabyte.
            let mut bytes = Vec::with_capacity(self.bytes.len() / 2);
            for f in &mut self.frames {
                let start = bytes.len();
                bytes.extend_from_slice(&self.bytes[f.1..f.1 + f.2]);
                f.1 = start;
            }
            self.bytes = bytes;
        }
        Ok(())
    }
}

impl Ring {
    fn map(fd: &OwnedFd, blocks: usize) -> std::io::Result<Ring> {
        let version: libc::c_int = TPACKET_V3;
        // struct tpacket_req3: block size and count, frame size and count (a V3 ring's frames
        // are of any size; the two only have to agree), block timeout, private area, features.
        let frame = 2048u32;
        let req: [u32; 7] = [
            BLOCK as u32,
            blocks as u32,
            frame,
            (BLOCK * blocks) as u32 / frame,
            BLOCK_TIMEOUT_MS,
            0,
            0,
        ];
        // SAFETY: options on our socket with values of the sizes given; the mapping's length
        // is the ring's, and it is unmapped in Drop.
        unsafe {
            if libc::setsockopt(
                fd.as_raw_fd(),
                SOL_PACKET,
                PACKET_VERSION,
                (&version as *const libc::c_int).cast(),
                4,
            ) != 0
            {
                return Err(last_error("set TPACKET_V3"));
            }
            if libc::setsockopt(
                fd.as_raw_fd(),
                SOL_PACKET,
                PACKET_RX_RING,
                req.as_ptr().cast(),
                std::mem::size_of_val(&req) as u32,
            ) != 0
            {
                return Err(last_error("set up the receive ring"));
            }
            let map = libc::mmap(
                std::ptr::null_mut(),
                BLOCK * blocks,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            );
            if map == libc::MAP_FAILED {
                return Err(last_error("map the receive ring"));
            }
            Ok(Ring {
                map: map.cast(),
                blocks,
                next: 0,
            })
        }
    }

    /// The status word of block `b` (struct tpacket_block_desc: version, offset_to_priv, then
    /// tpacket_hdr_v1 whose first field it is).
    fn status(&self, b: usize) -> &std::sync::atomic::AtomicU32 {
        // SAFETY: inside the mapping, 4-byte aligned (blocks are page-aligned); the kernel
        // writes it, so it is only read atomically.
        unsafe { &*(self.map.add(b * BLOCK + 8) as *const std::sync::atomic::AtomicU32) }
    }

    /// Takes the next block if the kernel has handed it over: its frames are copied to
    /// `pending` and the block goes back to the kernel. False when there was none.
    fn take(&mut self, pending: &mut Pending) -> bool {
        let b = self.next;
        if self.status(b).load(Ordering::Acquire) & TP_STATUS_USER == 0 {
            return false;
        }
        let read = |at: *const u8, off: usize| -> u32 {
            // SAFETY: header fields inside the block the kernel handed over.
            unsafe { std::ptr::read_unaligned(at.add(off) as *const u32) }
        };
        // SAFETY: the block is ours (status USER) and lies inside the mapping.
        let block = unsafe { self.map.add(b * BLOCK) } as *const u8;
        let count = read(block, 12);
        let mut at = read(block, 16) as usize;
        for _ in 0..count {
            if at + 28 > BLOCK {
                break;
            }
            // SAFETY: a frame header inside the block (checked against its size).
            let frame = unsafe { block.add(at) };
            // struct tpacket3_hdr: next offset, sec, nsec, snaplen, len, status, mac offset.
            let (next, sec, nsec) = (read(frame, 0), read(frame, 4), read(frame, 8));
            let (captured, wire) = (read(frame, 12) as usize, read(frame, 16) as usize);
            // SAFETY: as above; a u16 at offset 24.
            let mac = unsafe { std::ptr::read_unaligned(frame.add(24) as *const u16) } as usize;
            if at + mac + captured > BLOCK {
                break;
            }
            // SAFETY: inside the block (checked above), which is ours until released below.
            let data = unsafe { std::slice::from_raw_parts(frame.add(mac), captured) };
            pending.push(
                i64::from(sec) * 1_000_000 + i64::from(nsec) / 1_000,
                data,
                wire,
            );
            if next == 0 {
                break;
            }
            at += next as usize;
        }
        self.status(b).store(TP_STATUS_KERNEL, Ordering::Release);
        self.next = (b + 1) % self.blocks;
        true
    }
}

impl Drop for Ring {
    fn drop(&mut self) {
        // SAFETY: the mapping made in Ring::map, of that length.
        unsafe { libc::munmap(self.map.cast(), BLOCK * self.blocks) };
    }
}

/// Frames the kernel dropped on a tap since the last call (PACKET_STATISTICS resets them).
fn dropped(fd: &OwnedFd) -> u64 {
    // struct tpacket_stats_v3: packets, drops, freeze_q_cnt.
    let mut stats = [0u32; 3];
    let mut len = std::mem::size_of_val(&stats) as libc::socklen_t;
    // SAFETY: reading an option into a buffer of the size given.
    let ok = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            SOL_PACKET,
            PACKET_STATISTICS,
            stats.as_mut_ptr().cast(),
            &mut len,
        )
    } == 0;
    if ok {
        u64::from(stats[1])
    } else {
        0
    }
}

/// Clears a tap's pending socket error: ENETDOWN (the interface went down under the tap, as an
/// `unplug` does; the tap goes on when it is back up) is not a failure, anything else is.
fn clear_error(fd: &OwnedFd) -> std::io::Result<()> {
    let mut err: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: reading an int option.
    unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_ERROR,
            (&mut err as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    match err {
        0 | libc::ENETDOWN => Ok(()),
        e => Err(std::io::Error::from_raw_os_error(e)),
    }
}

/// Reads one frame with its kernel timestamp; None when nothing is waiting.
fn read_frame(fd: &OwnedFd, buf: &mut [u8]) -> std::io::Result<Option<(i64, usize, usize)>> {
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    let mut control = [0u8; 64];
    // SAFETY: msghdr is plain data; zeroed, then pointed at live buffers.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = control.len();
    // SAFETY: valid descriptor and message buffers that outlive the call. MSG_TRUNC makes the
    // call return the frame's length on the wire even when the buffer was shorter.
    let n = unsafe {
        libc::recvmsg(
            fd.as_raw_fd(),
            &mut msg,
            libc::MSG_DONTWAIT | libc::MSG_TRUNC,
        )
    };
    if n < 0 {
        let e = std::io::Error::last_os_error();
        // ENETDOWN: the interface went down under the tap (an `unplug` takes the host end
        // down); the kernel reports it once as the socket's error and the tap goes on
        // capturing when the interface comes back up.
        return match e.kind() {
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted => Ok(None),
            _ if e.raw_os_error() == Some(libc::ENETDOWN) => Ok(None),
            _ => Err(e),
        };
    }
    let wire = n as usize;
    let mut ts_us = linecut_now_us();
    // SAFETY: walking the control messages the kernel wrote into `control`.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SO_TIMESTAMP {
                let tv: libc::timeval = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast());
                ts_us = tv.tv_sec * 1_000_000 + tv.tv_usec;
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
    }
    Ok(Some((ts_us, wire.min(buf.len()), wire)))
}

fn linecut_now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

/// Follows the MQTT connections to `port` in the frames as they are captured, to tell which
/// clients have their SUBACK: a client under test that prints nothing is known subscribed from
/// the wire, as the proxy knows it in proxy mode. Once `expect` clients are subscribed (every
/// subscriber of the run) it stops: nothing else asks it, and from then on each frame is
/// decoded once, by the analysis after the run.
struct Watch {
    flows: Flows,
    clients: HashMap<u64, IpAddr>,
    subscribed: Arc<Mutex<BTreeSet<IpAddr>>>,
    expect: usize,
    done: bool,
}

impl Watch {
    fn frame(&mut self, ts_us: i64, frame: &[u8], wire: usize) {
        if self.done {
            return;
        }
        const LINKTYPE_ETHERNET: i32 = 1;
        let Some(segment) = ip_packet(LINKTYPE_ETHERNET, frame).and_then(tcp_segment) else {
            return;
        };
        // The payload's length on the wire: the frame's, less what precedes the payload.
        let len = segment.payload.len() + wire.saturating_sub(frame.len());
        let (clients, subscribed, expect) = (&mut self.clients, &self.subscribed, self.expect);
        let mut all = false;
        // The follower only wants SUBACKs; frame numbers are the file's business (0 here).
        self.flows
            .segment(ts_us, 0, &segment, len, &mut |o| match o {
                Observation::Opened { conn, client, .. } => {
                    clients.insert(conn, client.ip());
                }
                // Forgotten with the connection, so the follower's memory follows the
                // connections open at once.
                Observation::Ended { conn, .. } => {
                    clients.remove(&conn);
                }
                Observation::Packet {
                    conn,
                    packet: linecut_mqtt::Packet::SubAck(_),
                    ..
                } => {
                    if let Some(ip) = clients.get(&conn) {
                        let mut set = subscribed.lock().unwrap_or_else(|p| p.into_inner());
                        set.insert(*ip);
                        all = set.len() >= expect;
                    }
                }
                _ => {}
            });
        if all {
            self.done = true;
            self.clients = HashMap::new();
        }
    }
}

impl Capture {
    /// The client addresses that have had a SUBACK so far.
    pub fn subscribed(&self) -> BTreeSet<IpAddr> {
        self.subscribed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Opens a tap on every interface and starts writing `path`; returns once every tap is
    /// bound, so nothing sent after this returns is missed. `port` is the broker's, whose
    /// SUBACKs [`Capture::subscribed`] reports until `expect` clients have had one. Reads
    /// rings, or frame by frame where the kernel refuses a ring.
    pub fn start(
        path: &Path,
        interfaces: &[String],
        port: u16,
        expect: usize,
    ) -> std::io::Result<Capture> {
        Capture::start_with(path, interfaces, port, expect, Method::Ring).or_else(|e| {
            tracing::warn!("capture: no receive ring ({e}); reading frame by frame");
            Capture::start_with(path, interfaces, port, expect, Method::Recvmsg)
        })
    }

    /// [`Capture::start`] with the reading method chosen.
    pub fn start_with(
        path: &Path,
        interfaces: &[String],
        port: u16,
        expect: usize,
        method: Method,
    ) -> std::io::Result<Capture> {
        let blocks = (RING_BUDGET / BLOCK / interfaces.len().max(1)).clamp(MIN_BLOCKS, MAX_BLOCKS);
        let mut taps = Vec::with_capacity(interfaces.len());
        let mut rings = Vec::with_capacity(interfaces.len());
        for (fd, ring) in open_taps(interfaces, (method == Method::Ring).then_some(blocks))? {
            taps.push(fd);
            rings.extend(ring);
        }
        let mut out = RawPcap::create(path)?;
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let subscribed = Arc::new(Mutex::new(BTreeSet::new()));
        let mut watch = Watch {
            flows: Flows::new(port),
            clients: HashMap::new(),
            subscribed: subscribed.clone(),
            expect,
            done: false,
        };
        let failed = Arc::new(Mutex::new(None));
        let failure = failed.clone();
        let thread = std::thread::Builder::new()
            .name("linecut-capture".into())
            .spawn(move || {
                let written = (move || {
                    let mut buf = vec![0u8; FRAME];
                    let mut polls: Vec<libc::pollfd> = taps
                        .iter()
                        .map(|t| libc::pollfd {
                            fd: t.as_raw_fd(),
                            events: libc::POLLIN,
                            revents: 0,
                        })
                        .collect();
                    let mut pending = Pending::default();
                    let mut last_flush = std::time::Instant::now();
                    let mut stopping_since: Option<std::time::Instant> = None;
                    loop {
                        // A ring's last block is handed over at most BLOCK_TIMEOUT_MS after
                        // its first frame: once asked to stop, the capture goes on that long
                        // (and a little) so every frame seen before the stop is written.
                        if stopping_since.is_none() && stopping.load(Ordering::Acquire) {
                            stopping_since = Some(std::time::Instant::now());
                        }
                        let done = stopping_since.is_some_and(|since| {
                            rings.is_empty()
                                || since.elapsed().as_millis() > u128::from(BLOCK_TIMEOUT_MS) * 3
                        });
                        let wait = if stopping_since.is_some() {
                            BLOCK_TIMEOUT_MS as i32
                        } else {
                            POLL_MS
                        };
                        // SAFETY: polls points at live pollfd values for the call's duration.
                        let ready = unsafe {
                            libc::poll(polls.as_mut_ptr(), polls.len() as libc::nfds_t, wait)
                        };
                        if ready < 0
                            && std::io::Error::last_os_error().kind()
                                != std::io::ErrorKind::Interrupted
                        {
                            return Err(last_error("poll the taps"));
                        }
                        for (i, p) in polls.iter_mut().enumerate() {
                            // A pending socket error (ENETDOWN) wakes every poll until cleared.
                            if p.revents & libc::POLLERR != 0 && !rings.is_empty() {
                                clear_error(&taps[i])?;
                            }
                            if rings.is_empty() {
                                // Frame by frame: drain every tap that has frames (and, once
                                // stopping, everything left). A recvmsg clears the error.
                                if p.revents & (libc::POLLIN | libc::POLLERR) == 0 && !done {
                                    continue;
                                }
                                p.revents = 0;
                                while let Some((ts, captured, wire)) =
                                    read_frame(&taps[i], &mut buf)?
                                {
                                    out.frame(ts, &buf[..captured], wire)?;
                                    watch.frame(ts, &buf[..captured], wire);
                                }
                            } else {
                                p.revents = 0;
                                while rings[i].take(&mut pending) {}
                            }
                        }
                        if !pending.frames.is_empty() {
                            // In time order across the taps: a frame is written once every tap
                            // has handed over what it saw before it. A block comes at most
                            // BLOCK_TIMEOUT_MS after its first frame, so what is older than
                            // ORDER_SLACK_US (ten times that, for a late timer on a loaded
                            // machine) is complete; at the stop, everything is.
                            let watermark = if done {
                                i64::MAX
                            } else {
                                linecut_now_us() - ORDER_SLACK_US
                            };
                            pending.write_until(watermark, |ts, data, wire| {
                                watch.frame(ts, data, wire);
                                out.frame(ts, data, wire)
                            })?;
                        }
                        // Whole frames reach the disk at least once a second: a run killed with
                        // SIGKILL keeps its capture up to then (the review's D2 found it empty).
                        if last_flush.elapsed() >= std::time::Duration::from_secs(1) {
                            out.flush()?;
                            last_flush = std::time::Instant::now();
                        }
                        if done {
                            let frames = out.frames();
                            out.finish()?;
                            let dropped = taps.iter().map(dropped).sum();
                            close_taps(std::mem::take(&mut taps), std::mem::take(&mut rings));
                            return Ok(Written {
                                frames,
                                dropped,
                                cpu: thread_cpu(),
                            });
                        }
                    }
                })();
                if let Err(e) = &written {
                    *failure.lock().unwrap_or_else(|p| p.into_inner()) = Some(e.to_string());
                }
                written
            })?;
        Ok(Capture {
            stop,
            thread: Some(thread),
            subscribed,
            failed,
        })
    }

    /// Why the capture stopped on its own, if it has (it is then no longer written).
    pub fn failure(&self) -> Option<String> {
        self.failed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Stops, writes what is still queued and closes the file; what was written and lost.
    pub fn stop(mut self) -> std::io::Result<Written> {
        self.stop.store(true, Ordering::Release);
        match self.thread.take().map(|t| t.join()) {
            Some(Ok(result)) => result,
            Some(Err(_)) => Err(std::io::Error::other("the capture thread panicked")),
            None => Ok(Written {
                frames: 0,
                dropped: 0,
                cpu: std::time::Duration::ZERO,
            }),
        }
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
