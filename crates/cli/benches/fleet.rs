//! Fleet benchmark: N subscribers through the proxy to the embedded broker, on one machine.
//!
//! Measures, for N = 1,000 and 10,000 (`LINECUT_BENCH_QUICK=1`: 200 and 1,000):
//! - time from starting the fleet until every subscriber has its SUBACK;
//! - peak RSS of the fleet process per subscriber (and of the proxy and broker processes);
//! - after a `reset` of every connection through the proxy's control API, the time until 50%,
//!   99% and 100% of the subscribers have their SUBACK again (a reconnect storm: the fleet
//!   reconnects immediately, the worst case).
//!
//! Broker, proxy and fleet are separate `linecut` processes, as a user would run them, so each
//! one's memory is its own. Run with `cargo bench -p linecut --bench fleet`.

use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn linecut() -> Command {
    Command::new(env!("CARGO_BIN_EXE_linecut"))
}

/// Spawns a linecut command whose first stdout line is its address.
fn spawn_with_address(args: &[&str]) -> (Child, String) {
    let mut child = linecut()
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    (child, line.trim().to_string())
}

fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Follows an events file and records when each SUBACK line appeared.
struct SubackWatch {
    file: std::fs::File,
    offset: u64,
    partial: String,
    times: Vec<Instant>,
}

impl SubackWatch {
    fn new(path: &Path) -> Self {
        let deadline = Instant::now() + Duration::from_secs(10);
        let file = loop {
            if let Ok(f) = std::fs::File::open(path) {
                break f;
            }
            assert!(Instant::now() < deadline, "no events file");
            std::thread::sleep(Duration::from_millis(10));
        };
        SubackWatch {
            file,
            offset: 0,
            partial: String::new(),
            times: Vec::new(),
        }
    }

    /// Reads what was appended; SUBACKs are timed at the moment they are seen (the writer
    /// flushes every 20 ms, so timings are good to about that).
    fn poll(&mut self) {
        let now = Instant::now();
        self.file.seek(SeekFrom::Start(self.offset)).unwrap();
        let mut text = String::new();
        let n = self.file.read_to_string(&mut text).unwrap();
        self.offset += n as u64;
        self.partial.push_str(&text);
        let complete = self.partial.rfind('\n').map_or(0, |i| i + 1);
        let lines: String = self.partial.drain(..complete).collect();
        for line in lines.lines() {
            if line.contains(r#""type":"suback""#) {
                self.times.push(now);
            }
        }
    }

    /// Waits until `count` SUBACKs have been seen in all; returns when each arrived.
    fn wait_for(&mut self, count: usize, limit: Duration) -> Option<Vec<Instant>> {
        let deadline = Instant::now() + limit;
        while self.times.len() < count {
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(5));
            self.poll();
        }
        Some(self.times.clone())
    }
}

fn post_fault(control: &str, spec: &str) {
    let addr = control.trim_start_matches("control http://");
    let mut s = TcpStream::connect(addr).unwrap();
    let body = format!(r#"{{"spec":"{spec}"}}"#);
    write!(
        s,
        "POST /faults HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    s.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 201"), "{response}");
}

/// Raises the descriptor limit as far as the machine allows; returns the limit in force.
fn raise_fd_limit(want: u64) -> u64 {
    // Each subscriber costs one descriptor in the fleet, two in the proxy and one in the broker.
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with valid pointers to initialised structs.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit);
        let wanted = libc::rlimit {
            rlim_cur: want,
            rlim_max: want.max(limit.rlim_max),
        };
        if libc::setrlimit(libc::RLIMIT_NOFILE, &wanted) == 0 {
            return want;
        }
        limit.rlim_cur = limit.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
    }
    limit.rlim_cur
}

fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

fn run(n: usize) {
    let dir = std::env::temp_dir().join(format!("linecut-fleet-bench-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (mut broker, broker_addr) = spawn_with_address(&["broker", "--listen", "127.0.0.1:0"]);
    let mut proxy = linecut()
        .args([
            "proxy",
            "--listen",
            "127.0.0.1:0",
            "--upstream",
            &broker_addr,
        ])
        .args(["--control", "127.0.0.1:0", "--wire-log", "control"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(proxy.stdout.take().unwrap());
    let (mut proxy_addr, mut control) = (String::new(), String::new());
    out.read_line(&mut proxy_addr).unwrap();
    out.read_line(&mut control).unwrap();
    let events = dir.join("fleet.jsonl");
    let started = Instant::now();
    let mut fleet = linecut()
        .args([
            "subscribe",
            "--broker",
            proxy_addr.trim(),
            "--count",
            &n.to_string(),
        ])
        .args([
            "--client-id",
            "bench-{n}",
            "--keepalive",
            "60s",
            "--reconnect",
            "immediate",
        ])
        .args(["--topic", "bench/#", "--events"])
        .arg(&events)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut watch = SubackWatch::new(&events);
    let subscribed = watch.wait_for(n, Duration::from_secs(300));
    match subscribed {
        None => println!(
            "N = {n:>6}: only {} of {n} subscribed within 300 s",
            watch.times.len()
        ),
        Some(times) => {
            let all = times[n - 1] - started;
            let fleet_kib = peak_rss_kib(fleet.id());
            let reset_at = Instant::now();
            post_fault(control.trim(), "reset");
            let again = watch.wait_for(2 * n, Duration::from_secs(300));
            let storm = match again {
                Some(t) => {
                    let at =
                        |q: f64| t[n + ((n as f64 * q).ceil() as usize).clamp(1, n) - 1] - reset_at;
                    format!(
                        "50% {}, 99% {}, 100% {}",
                        secs(at(0.5)),
                        secs(at(0.99)),
                        secs(at(1.0))
                    )
                }
                None => format!("only {} of {n} back within 300 s", watch.times.len() - n),
            };
            println!(
                "N = {n:>6}: all subscribed in {}; peak RSS per subscriber {:.1} KiB (fleet {} MiB, proxy {} MiB, broker {} MiB); after reset: {storm}",
                secs(all),
                fleet_kib as f64 / n as f64,
                fleet_kib / 1024,
                peak_rss_kib(proxy.id()) / 1024,
                peak_rss_kib(broker.id()) / 1024,
            );
        }
    }
    for child in [&mut fleet, &mut proxy, &mut broker] {
        let _ = child.kill();
        let _ = child.wait();
    }
    let _ = std::fs::remove_dir_all(&dir);
}

fn main() {
    let fds = raise_fd_limit(65_536);
    let quick = std::env::var_os("LINECUT_BENCH_QUICK").is_some();
    let sizes: &[usize] = if quick {
        &[200, 1_000]
    } else {
        &[1_000, 10_000]
    };
    println!("linecut fleet benchmark: subscribers through the proxy to the embedded broker");
    for &n in sizes {
        // The proxy holds two descriptors per subscriber, plus a few of its own.
        let fits = ((fds as usize).saturating_sub(64) / 2) / 100 * 100;
        if n > fits {
            println!(
                "N = {n:>6}: needs {} descriptors in the proxy; this machine allows {fds} per process \
                 (and refuses to raise it), so running the largest fleet that fits instead",
                2 * n + 64
            );
            run(fits);
        } else {
            run(n);
        }
    }
}
