//! linecut as the wire: the frames of a weak link, forwarded by linecut between the device's
//! veth pair and the run's bridge through [`crate::impair`].
//!
//! Why this and not the kernel's `netem` qdisc: kernels without `sch_netem` exist (the one
//! this was built on has none, while GitHub's runners have it), and a run must behave the
//! same everywhere; `tc` would also be one more program to install. NFQUEUE with delayed
//! verdicts would need `nft queue` (absent from the same kernel) and still could not duplicate
//! or corrupt. So a wired member's host end of its pair is not on the bridge: linecut reads
//! every frame the device sends there (an AF_PACKET socket, before the `netdev` ingress hook,
//! which then drops the frame so the host never sees it directly) and writes what the link
//! lets through into a TAP device on the bridge; frames for the device come out of the TAP and
//! are sent out of the pair's host end. The run's capture stays on that host end, so it shows
//! what the device sent before the link touched it and what reached the device after.
//!
//! One thread serves every wired member: it waits on all their sockets and on the earliest
//! frame due, with a 1 ns timer slack and a real-time priority so a delay is kept to tens of
//! microseconds whatever else the machine runs (the benchmark `wire` measures it), and applies
//! the impairments active on each direction when a frame arrives ([`Wire::set`] changes them).

use crate::impair::{Fate, Impairments, Lane};
use crate::NetnsError;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Largest frame (veth MTU 1500; GSO can hand the socket up to 64 KiB).
const FRAME: usize = 65_536 + 64;
/// How often the thread looks at its stop flag while nothing is due.
const IDLE: Duration = Duration::from_millis(50);
/// `PACKET_IGNORE_OUTGOING` (linux/if_packet.h): the socket does not read back its own sends.
const PACKET_IGNORE_OUTGOING: libc::c_int = 23;
/// `TUNSETIFF` (linux/if_tun.h).
const TUNSETIFF: libc::c_ulong = 0x4004_54ca;
const IFF_TAP: libc::c_short = 0x0002;
const IFF_NO_PI: libc::c_short = 0x1000;

fn last_error(what: &str) -> NetnsError {
    NetnsError::system(what.to_string(), std::io::Error::last_os_error())
}

/// Creates TAP device `name`, which lives as long as the returned descriptor: a run that dies
/// leaves none behind.
pub fn open_tap(name: &str) -> Result<OwnedFd, NetnsError> {
    let path = CString::new("/dev/net/tun").expect("no NUL");
    // SAFETY: a plain open of a device node.
    let fd = unsafe {
        libc::open(
            path.as_ptr(),
            libc::O_RDWR | libc::O_NONBLOCK | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(last_error("open /dev/net/tun"));
    }
    // SAFETY: fd was just returned by open and is owned from here on.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // struct ifreq: the name, then the flags (a short) in the union.
    let mut ifr = [0u8; 40];
    let bytes = name.as_bytes();
    if bytes.len() >= 16 {
        return Err(NetnsError::Io(format!("TAP name {name} is too long")));
    }
    ifr[..bytes.len()].copy_from_slice(bytes);
    ifr[16..18].copy_from_slice(&(IFF_TAP | IFF_NO_PI).to_ne_bytes());
    // SAFETY: TUNSETIFF reads and writes a struct ifreq, which `ifr` is the size of.
    if unsafe { libc::ioctl(fd.as_raw_fd(), TUNSETIFF, ifr.as_mut_ptr()) } != 0 {
        return Err(last_error(&format!("create TAP {name}")));
    }
    Ok(fd)
}

/// A packet socket on `interface` that reads what arrives there and sends out of it.
fn port(interface: &str) -> Result<OwnedFd, NetnsError> {
    // Opened with no protocol, so it reads nothing until bound (as the capture's taps).
    // SAFETY: a plain socket call.
    let fd = unsafe {
        libc::socket(
            libc::AF_PACKET,
            libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        )
    };
    if fd < 0 {
        return Err(last_error("open an AF_PACKET socket"));
    }
    // SAFETY: fd was just returned by socket.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let on: libc::c_int = 1;
    // SAFETY: valid descriptor, a pointer to a live int of the size given.
    let set = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_PACKET,
            PACKET_IGNORE_OUTGOING,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as u32,
        )
    };
    if set != 0 {
        return Err(last_error("ignore the wire's own frames"));
    }
    crate::capture::bind_to(&fd, interface)
        .map_err(|e| NetnsError::system(format!("bind the wire to {interface}"), e))?;
    Ok(fd)
}

/// One wired member: the host end of its pair and its TAP on the bridge.
pub struct WirePort {
    pub veth_host: String,
    pub tap: OwnedFd,
}

/// Frames the wire handled, per direction (up: from the device).
#[derive(Debug, Default)]
pub struct WireCounts {
    pub forwarded: [AtomicU64; 2],
    pub lost: [AtomicU64; 2],
    pub duplicated: [AtomicU64; 2],
    pub corrupted: [AtomicU64; 2],
    /// Frames a write refused (a link down: an `unplug`).
    pub refused: [AtomicU64; 2],
}

/// The wire of a run's weak links, stopped (its queued frames dropped) when dropped.
pub struct Wire {
    impairments: Arc<Mutex<Vec<[Impairments; 2]>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Result<(), String>>>,
    pub counts: Arc<WireCounts>,
}

const UP: usize = 0;
const DOWN: usize = 1;

impl Wire {
    /// Starts forwarding between each port's pair end and its TAP, with no impairment until
    /// [`Wire::set`]; lane `(member, direction)` draws from a generator seeded from `seed`.
    pub fn start(ports: Vec<WirePort>, seed: u64) -> Result<Wire, NetnsError> {
        let sockets = ports
            .iter()
            .map(|p| port(&p.veth_host))
            .collect::<Result<Vec<_>, _>>()?;
        let impairments = Arc::new(Mutex::new(vec![[Impairments::default(); 2]; ports.len()]));
        let stop = Arc::new(AtomicBool::new(false));
        let counts = Arc::new(WireCounts::default());
        let engine = Engine {
            lanes: (0..ports.len())
                .map(|m| {
                    [UP, DOWN].map(|dir| {
                        Lane::new(linecut_model::phase::derive_seed(
                            seed,
                            if dir == UP { "up" } else { "down" },
                            m as u32,
                        ))
                    })
                })
                .collect(),
            taps: ports.into_iter().map(|p| p.tap).collect(),
            sockets,
            impairments: impairments.clone(),
            stop: stop.clone(),
            counts: counts.clone(),
        };
        let thread = std::thread::Builder::new()
            .name("linecut-wire".into())
            .spawn(move || engine.run())
            .map_err(|e| NetnsError::system(String::from("start the wire"), e))?;
        Ok(Wire {
            impairments,
            stop,
            thread: Some(thread),
            counts,
        })
    }

    /// The impairments of member `member`'s port from now on, up (what the device sends) and
    /// down; frames already queued keep their times.
    pub fn set(&self, member: usize, up: Impairments, down: Impairments) {
        let mut all = self.impairments.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(slot) = all.get_mut(member) {
            *slot = [up, down];
        }
    }

    /// Whether the thread still runs.
    pub fn is_alive(&self) -> bool {
        self.thread.as_ref().is_some_and(|t| !t.is_finished())
    }

    /// Stops the wire; why it had stopped on its own, if it had.
    pub fn stop(mut self) -> Result<(), String> {
        self.halt()
    }

    fn halt(&mut self) -> Result<(), String> {
        self.stop.store(true, Ordering::Relaxed);
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(result)) => result,
            Some(Err(_)) => Err("the wire's thread panicked".into()),
            None => Ok(()),
        }
    }
}

impl Drop for Wire {
    fn drop(&mut self) {
        let _ = self.halt();
    }
}

/// A frame waiting for its time.
struct Queued {
    member: usize,
    dir: usize,
    frame: Vec<u8>,
}

/// The frames waiting, by when they leave (ties in the order they were queued).
#[derive(Default)]
struct Waiting {
    due: BinaryHeap<Reverse<(u64, u64)>>,
    frames: std::collections::HashMap<u64, Queued>,
    next_id: u64,
}

impl Waiting {
    fn push(&mut self, at: u64, frame: Queued) {
        self.next_id += 1;
        self.frames.insert(self.next_id, frame);
        self.due.push(Reverse((at, self.next_id)));
    }

    /// The next frame due by `now`.
    fn pop_due(&mut self, now: u64) -> Option<Queued> {
        let Reverse((at, id)) = *self.due.peek()?;
        if at > now {
            return None;
        }
        self.due.pop();
        self.frames.remove(&id)
    }

    fn next_at(&self) -> Option<u64> {
        self.due.peek().map(|Reverse((at, _))| *at)
    }
}

struct Engine {
    lanes: Vec<[Lane; 2]>,
    taps: Vec<OwnedFd>,
    sockets: Vec<OwnedFd>,
    impairments: Arc<Mutex<Vec<[Impairments; 2]>>>,
    stop: Arc<AtomicBool>,
    counts: Arc<WireCounts>,
}

impl Engine {
    fn run(mut self) -> Result<(), String> {
        // A delay is a timer: the default slack (50 µs) would be added to every one.
        // SAFETY: prctl on the calling thread with an integer argument.
        unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong, 0, 0, 0) };
        // The kernel's netem delays frames in softirq, ahead of every process; this thread
        // is the link, so it runs ahead of them too (real-time, lowest FIFO priority but one):
        // on a machine busy with other work (a sweep's other runs, tshark) a normal thread's
        // wake-up was seen 1–4 ms late for several frames in 300. It sleeps between frames, and
        // the kernel's real-time throttling keeps it from ever taking a whole core.
        let param = libc::sched_param { sched_priority: 2 };
        // SAFETY: sets the calling thread's own policy (pid 0) from a live sched_param.
        if unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &param) } != 0 {
            tracing::warn!(
                error = %std::io::Error::last_os_error(),
                "the wire runs at normal priority: its delays may be late on a busy machine"
            );
        }
        let start = Instant::now();
        let now_ns = || start.elapsed().as_nanos() as u64;
        let mut waiting = Waiting::default();
        // When the last frame queued on each lane leaves: a lane whose impairments ended
        // still lets the frames it holds out first.
        let mut lane_free = vec![[0u64; 2]; self.lanes.len()];
        let mut buf = vec![0u8; FRAME];
        let mut fds: Vec<libc::pollfd> = self
            .sockets
            .iter()
            .zip(&self.taps)
            .flat_map(|(s, t)| [s.as_raw_fd(), t.as_raw_fd()])
            .map(|fd| libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        while !self.stop.load(Ordering::Relaxed) {
            let now = now_ns();
            while let Some(q) = waiting.pop_due(now) {
                self.send(q.member, q.dir, &q.frame);
            }
            let wait = waiting
                .next_at()
                .map_or(IDLE, |at| Duration::from_nanos(at.saturating_sub(now_ns())))
                .min(IDLE);
            let ts = libc::timespec {
                tv_sec: wait.as_secs() as libc::time_t,
                tv_nsec: wait.subsec_nanos() as libc::c_long,
            };
            // SAFETY: fds is a live array of pollfd of the length given; ts outlives the call.
            let n = unsafe {
                libc::ppoll(
                    fds.as_mut_ptr(),
                    fds.len() as libc::nfds_t,
                    &ts,
                    std::ptr::null(),
                )
            };
            if n < 0 {
                let e = std::io::Error::last_os_error();
                if e.kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(format!("the wire's poll failed: {e}"));
            }
            if n == 0 {
                continue;
            }
            for (i, fd) in fds.iter_mut().enumerate() {
                if fd.revents == 0 {
                    continue;
                }
                fd.revents = 0;
                let (member, dir) = (i / 2, if i % 2 == 0 { UP } else { DOWN });
                loop {
                    // SAFETY: reading into a live buffer of the length given.
                    let len = unsafe { libc::read(fd.fd, buf.as_mut_ptr().cast(), buf.len()) };
                    if len <= 0 {
                        break;
                    }
                    let frame = &buf[..len as usize];
                    let now = now_ns();
                    let imp =
                        self.impairments.lock().unwrap_or_else(|p| p.into_inner())[member][dir];
                    if imp.is_none() {
                        if lane_free[member][dir] <= now {
                            self.send(member, dir, frame);
                        } else {
                            let frame = frame.to_vec();
                            waiting.push(lane_free[member][dir], Queued { member, dir, frame });
                        }
                        continue;
                    }
                    let fates = self.lanes[member][dir].frame(&imp, now, frame.len());
                    let c = &self.counts;
                    if fates.len() > 1 {
                        c.duplicated[dir].fetch_add(1, Ordering::Relaxed);
                    }
                    for fate in fates {
                        let Fate::Sent { after, flip } = fate else {
                            c.lost[dir].fetch_add(1, Ordering::Relaxed);
                            continue;
                        };
                        let mut copy = frame.to_vec();
                        if let Some(bit) = flip {
                            copy[bit / 8] ^= 1 << (bit % 8);
                            c.corrupted[dir].fetch_add(1, Ordering::Relaxed);
                        }
                        let at = now + after.as_nanos() as u64;
                        if after.is_zero() {
                            self.send(member, dir, &copy);
                        } else {
                            lane_free[member][dir] = lane_free[member][dir].max(at);
                            let frame = copy;
                            waiting.push(at, Queued { member, dir, frame });
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Up: into the TAP, so into the bridge; down: out of the pair's host end, to the device.
    fn send(&self, member: usize, dir: usize, frame: &[u8]) {
        let fd = if dir == UP {
            self.taps[member].as_raw_fd()
        } else {
            self.sockets[member].as_raw_fd()
        };
        // SAFETY: writing a live buffer of the length given.
        let n = unsafe { libc::write(fd, frame.as_ptr().cast(), frame.len()) };
        let c = &self.counts;
        if n == frame.len() as isize {
            c.forwarded[dir].fetch_add(1, Ordering::Relaxed);
        } else {
            c.refused[dir].fetch_add(1, Ordering::Relaxed);
        }
    }
}
