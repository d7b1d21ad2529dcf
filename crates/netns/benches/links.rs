//! Namespace mode's costs, measured on this machine (root):
//! - setting up and tearing down a run's network, for 1 and 8 subscribers;
//! - applying a link fault, from the request to the kernel having the rules, p50 and p99, with
//!   1 and with 8 subscribers: as a run applies it (`LinkRules::apply`: netlink messages, the
//!   host side of all members in one transaction, then each namespace) against the path before
//!   it in the same run (an `nft -f -` process per side per member, the namespace side from a
//!   thread that joined it); and how far apart the first and last member's rules went in;
//! - the capture's cost on a 1,000-message/s stream: this process's CPU time with and without
//!   the AF_PACKET taps running, the same stream both times.
//!
//! Run with `cargo bench -p linecut-netns --bench links`.

use linecut_model::{LinkKind, TcpSettings};
use linecut_netns::rules::{LinkRules, MemberFaults, DOWN_CHAIN};
use linecut_netns::topology::in_netns;
use linecut_netns::{RunId, Topology};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

fn percentile(v: &mut [f64], q: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((q * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1]
}

/// CPU time (user + system) this process has used, in seconds.
fn cpu_s() -> f64 {
    // SAFETY: getrusage fills the struct it is given.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    t(u.ru_utime) + t(u.ru_stime)
}

fn setup_teardown(count: u32, runs: usize) -> (f64, f64) {
    let (mut up, mut down) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        let t = Instant::now();
        let mut topo = Topology::create(RunId::fresh(), count, &TcpSettings::default()).unwrap();
        let rules = LinkRules::install(&topo, None).unwrap();
        up.push(t.elapsed().as_secs_f64());
        drop(rules);
        let t = Instant::now();
        topo.remove();
        down.push(t.elapsed().as_secs_f64());
    }
    (percentile(&mut up, 0.5), percentile(&mut down, 0.5))
}

/// 1,000 small writes a second from the namespace to the host for `secs`, reading them on the
/// host through `listener`; returns this process's CPU seconds over the stream.
fn stream(topo: &Topology, listener: TcpListener, secs: u64) -> f64 {
    let addr = listener.local_addr().unwrap();
    let reader = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut buf = [0u8; 4096];
        while s.read(&mut buf).map(|n| n > 0).unwrap_or(false) {}
    });
    let mut client = in_netns(&topo.members[0].netns, || {
        TcpStream::connect(addr).map_err(|e| linecut_netns::NetnsError::Io(e.to_string()))
    })
    .unwrap();
    client.set_nodelay(true).unwrap();
    let before = cpu_s();
    let start = Instant::now();
    let payload = [b'x'; 64];
    for i in 0..secs * 1000 {
        let due = start + Duration::from_micros(i * 1000);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        client.write_all(&payload).unwrap();
    }
    let used = cpu_s() - before;
    drop(client);
    reader.join().unwrap();
    used
}

/// The path before netlink, kept as the comparator: a path cut (or none) on one chain as an
/// `nft` script, sent by an `nft -f -` process.
fn nft_process(netns: Option<&str>, table: &str, chain: &str, cut: bool) {
    let mut script = format!("flush chain netdev {table} {chain}\n");
    if cut {
        for rule in [
            "meta protocol ip drop",
            "meta protocol ip6 meta l4proto != ipv6-icmp drop",
            "meta protocol ip6 icmpv6 type != { nd-neighbor-solicit, nd-neighbor-advert } drop",
        ] {
            script.push_str(&format!("add rule netdev {table} {chain} {rule}\n"));
        }
    }
    let send = || {
        let mut child = std::process::Command::new("nft")
            .args(["-f", "-"])
            .stdin(std::process::Stdio::piped())
            .spawn()
            .expect("nft (the comparator needs nftables installed)");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(script.as_bytes())
            .unwrap();
        assert!(child.wait().unwrap().success());
        Ok(())
    };
    match netns {
        Some(ns) => in_netns(ns, send).unwrap(),
        None => send().unwrap(),
    }
}

/// A path cut on and off every member of a run of `count`, 100 times each way, alternating:
/// `LinkRules::apply` against an `nft` process per side per member.
fn fault_change(count: u32) {
    let topo = Topology::create(RunId::fresh(), count, &TcpSettings::default()).unwrap();
    let mut link_rules = LinkRules::install(&topo, None).unwrap();
    let table = topo.id.table();
    let (mut netlink, mut process, mut spread) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..200 {
        let cut = i % 4 < 2;
        let active: Vec<LinkKind> = if cut { vec![LinkKind::CUT] } else { vec![] };
        let t = Instant::now();
        if i % 2 == 0 {
            let changed: Vec<MemberFaults> = (0..topo.members.len())
                .map(|member| MemberFaults {
                    member,
                    up: active.clone(),
                    down: active.clone(),
                })
                .collect();
            let stamps = link_rules.apply(&changed).unwrap();
            netlink.push(t.elapsed().as_secs_f64() * 1e3);
            let (first, last) = (stamps.iter().min().unwrap(), stamps.iter().max().unwrap());
            spread.push(last.duration_since(*first).as_secs_f64() * 1e6);
        } else {
            for m in &topo.members {
                nft_process(None, &table, &format!("up{}", m.index), cut);
                nft_process(Some(&m.netns), &table, DOWN_CHAIN, cut);
            }
            process.push(t.elapsed().as_secs_f64() * 1e3);
        }
    }
    let (n50, p50) = (percentile(&mut netlink, 0.5), percentile(&mut process, 0.5));
    println!(
        "fault change on {count} subscriber(s), request to kernel: netlink p50 {n50:.3} ms p99 {:.3} ms (first to last member {:.0} µs at p99); nft processes p50 {p50:.1} ms p99 {:.1} ms; {:.0}x at p50 (100 each)",
        percentile(&mut netlink, 0.99),
        percentile(&mut spread, 0.99),
        percentile(&mut process, 0.99),
        p50 / n50
    );
}

fn main() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("links benchmark: needs root");
        return;
    }
    for count in [1, 8] {
        let (up, down) = setup_teardown(count, 10);
        println!(
            "setup {count} subscriber(s): {:.1} ms, teardown {:.1} ms (medians of 10)",
            up * 1e3,
            down * 1e3
        );
    }
    for count in [1, 8] {
        fault_change(count);
    }
    let topo = Topology::create(RunId::fresh(), 1, &TcpSettings::default()).unwrap();
    let _rules = LinkRules::install(&topo, None).unwrap();
    let m = &topo.members[0];
    let secs = 5;
    use linecut_netns::capture::{Capture, Method};
    // Three rounds, each: the stream alone, with the ring capture, with the recvmsg capture.
    // The process's CPU difference includes the kernel's work for the taps; the capture
    // thread's own CPU is exact but leaves that out. Both are printed, medians of three.
    let (mut diff, mut thread) = ([Vec::new(), Vec::new()], [Vec::new(), Vec::new()]);
    let mut frames = [0u64; 2];
    for _ in 0..3 {
        let without = stream(&topo, TcpListener::bind((topo.host_addr, 0)).unwrap(), secs);
        for (k, method) in [Method::Ring, Method::Recvmsg].into_iter().enumerate() {
            // The capture follows the stream's port as a run's follows the broker's, so its
            // live follower reassembles and decodes every frame, as in a run whose clients
            // report nothing.
            let listener = TcpListener::bind((topo.host_addr, 0)).unwrap();
            let port = listener.local_addr().unwrap().port();
            let pcap = std::env::temp_dir().join(format!("linecut-bench-{}.pcap", topo.id));
            let capture =
                Capture::start_with(&pcap, std::slice::from_ref(&m.veth_host), port, 1, method)
                    .unwrap();
            let with = stream(&topo, listener, secs);
            let written = capture.stop().unwrap();
            let _ = std::fs::remove_file(&pcap);
            assert_eq!(written.dropped, 0, "{method:?}");
            let n = written.frames.max(1) as f64;
            frames[k] = written.frames;
            diff[k].push((with - without).max(0.0) / n * 1e6);
            thread[k].push(written.cpu.as_secs_f64() / n * 1e6);
        }
    }
    let med = |v: &mut Vec<f64>| percentile(v, 0.5);
    let (ring_diff, ring_thread) = (med(&mut diff[0]), med(&mut thread[0]));
    let (recv_diff, recv_thread) = (med(&mut diff[1]), med(&mut thread[1]));
    println!(
        "capture on a 1,000-message/s stream for {secs} s, live follower decoding it, CPU per frame (medians of 3): ring {ring_diff:.1} µs for the process ({ring_thread:.2} µs in the capture thread), recvmsg {recv_diff:.1} µs ({recv_thread:.2} µs in the thread); the capture thread {:.1}x less with the ring ({} and {} frames)",
        recv_thread / ring_thread.max(1e-9),
        frames[0],
        frames[1]
    );
}
