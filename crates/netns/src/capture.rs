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
/// How often the capture thread looks at its stop flag, in milliseconds.
const POLL_MS: i32 = 50;

/// A running capture.
pub struct Capture {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<std::io::Result<u64>>>,
    subscribed: Arc<Mutex<BTreeSet<IpAddr>>>,
    /// Why the capture thread stopped before it was asked to (a full disk: ENOSPC), for the
    /// run to end on at once rather than go on with a capture that is no longer written.
    failed: Arc<Mutex<Option<String>>>,
}

fn last_error(what: &str) -> std::io::Error {
    let e = std::io::Error::last_os_error();
    std::io::Error::new(e.kind(), format!("{what}: {e}"))
}

/// A packet socket bound to `interface`, with µs timestamps on every frame.
fn tap(interface: &str) -> std::io::Result<OwnedFd> {
    let name = CString::new(interface).map_err(std::io::Error::other)?;
    // SAFETY: plain libc calls; the name is a valid C string.
    let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
    if index == 0 {
        return Err(last_error(&format!("find interface {interface}")));
    }
    let protocol = (libc::ETH_P_ALL as u16).to_be();
    // SAFETY: a plain socket call.
    let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, i32::from(protocol)) };
    if fd < 0 {
        return Err(last_error("open an AF_PACKET socket"));
    }
    // SAFETY: fd was just returned by socket and is owned from here on.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: sockaddr_ll is plain data; zeroed is a valid value before the fields are set.
    let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    addr.sll_family = libc::AF_PACKET as u16;
    addr.sll_protocol = protocol;
    addr.sll_ifindex = index as i32;
    let on: libc::c_int = 1;
    let buffer: libc::c_int = 8 << 20;
    // SAFETY: valid descriptor, pointers to live values of the sizes given.
    unsafe {
        if libc::bind(
            fd.as_raw_fd(),
            (&addr as *const libc::sockaddr_ll).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as u32,
        ) != 0
        {
            return Err(last_error(&format!("bind a tap to {interface}")));
        }
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
    Ok(fd)
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
/// the wire, as the proxy knows it in proxy mode.
struct Watch {
    flows: Flows,
    clients: HashMap<u64, IpAddr>,
    subscribed: Arc<Mutex<BTreeSet<IpAddr>>>,
}

impl Watch {
    fn frame(&mut self, ts_us: i64, frame: &[u8], wire: usize) {
        const LINKTYPE_ETHERNET: i32 = 1;
        let Some(segment) = ip_packet(LINKTYPE_ETHERNET, frame).and_then(tcp_segment) else {
            return;
        };
        // The payload's length on the wire: the frame's, less what precedes the payload.
        let len = segment.payload.len() + wire.saturating_sub(frame.len());
        let (clients, subscribed) = (&mut self.clients, &self.subscribed);
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
                        subscribed
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .insert(*ip);
                    }
                }
                _ => {}
            });
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
    /// SUBACKs [`Capture::subscribed`] reports.
    pub fn start(path: &Path, interfaces: &[String], port: u16) -> std::io::Result<Capture> {
        let taps = interfaces
            .iter()
            .map(|i| tap(i))
            .collect::<std::io::Result<Vec<_>>>()?;
        let mut out = RawPcap::create(path)?;
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let subscribed = Arc::new(Mutex::new(BTreeSet::new()));
        let mut watch = Watch {
            flows: Flows::new(port),
            clients: HashMap::new(),
            subscribed: subscribed.clone(),
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
                    let mut last_flush = std::time::Instant::now();
                    loop {
                        let done = stopping.load(Ordering::Acquire);
                        // SAFETY: polls points at live pollfd values for the call's duration.
                        let ready = unsafe {
                            libc::poll(polls.as_mut_ptr(), polls.len() as libc::nfds_t, POLL_MS)
                        };
                        if ready < 0
                            && std::io::Error::last_os_error().kind()
                                != std::io::ErrorKind::Interrupted
                        {
                            return Err(last_error("poll the taps"));
                        }
                        // Drain every tap that has frames (and, once stopping, everything left).
                        for (i, p) in polls.iter_mut().enumerate() {
                            // POLLERR too: a pending socket error (ENETDOWN) is cleared only by
                            // reading it, and left unread it would wake every poll at once.
                            if p.revents & (libc::POLLIN | libc::POLLERR) == 0 && !done {
                                continue;
                            }
                            p.revents = 0;
                            while let Some((ts, captured, wire)) = read_frame(&taps[i], &mut buf)? {
                                out.frame(ts, &buf[..captured], wire)?;
                                watch.frame(ts, &buf[..captured], wire);
                            }
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
                            return Ok(frames);
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

    /// Stops, writes what is still queued and closes the file; the number of frames.
    pub fn stop(mut self) -> std::io::Result<u64> {
        self.stop.store(true, Ordering::Release);
        match self.thread.take().map(|t| t.join()) {
            Some(Ok(result)) => result,
            Some(Err(_)) => Err(std::io::Error::other("the capture thread panicked")),
            None => Ok(0),
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
