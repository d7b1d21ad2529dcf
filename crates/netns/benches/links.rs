//! Namespace mode's costs, measured on this machine (root):
//! - setting up and tearing down a run's network, for 1 and 8 subscribers;
//! - applying a link fault: from the request to `nft` returning (the kernel has the rules),
//!   p50 and p99, on the host side and in a namespace;
//! - a change that touches all 8 members of a run, as a run applies it (`LinkRules::apply`:
//!   the host side of all of them in one transaction, then each namespace) against one
//!   transaction per side per member, the way before it, in the same run;
//! - the capture's cost on a 1,000-message/s stream: this process's CPU time with and without
//!   the AF_PACKET taps running, the same stream both times.
//!
//! Run with `cargo bench -p linecut-netns --bench links`.

use linecut_model::{LinkKind, TcpSettings};
use linecut_netns::rules::{self, LinkRules, MemberFaults, DOWN_CHAIN};
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
        rules::apply_host(&rules::base_host(&topo)).unwrap();
        for m in &topo.members {
            rules::apply_ns(m, &rules::base_ns(topo.id, m)).unwrap();
        }
        up.push(t.elapsed().as_secs_f64());
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

/// One change touching all 8 members of a run, 50 times each way, alternating: what
/// `LinkRules::apply` costs against a transaction per side per member (16 `nft` processes).
fn eight_member_change() {
    let topo = Topology::create(RunId::fresh(), 8, &TcpSettings::default()).unwrap();
    let mut link_rules = LinkRules::install(&topo).unwrap();
    let (mut batched, mut separate) = (Vec::new(), Vec::new());
    for i in 0..100 {
        let active: Vec<LinkKind> = if i % 4 < 2 {
            vec![LinkKind::CUT]
        } else {
            vec![]
        };
        let t = Instant::now();
        if i % 2 == 0 {
            let changed: Vec<MemberFaults> = (0..topo.members.len())
                .map(|member| MemberFaults {
                    member,
                    up: active.clone(),
                    down: active.clone(),
                })
                .collect();
            link_rules.apply(&changed).unwrap();
            batched.push(t.elapsed().as_secs_f64() * 1e3);
        } else {
            for m in &topo.members {
                rules::apply_host(&rules::chain_update(
                    topo.id,
                    &rules::up_chain(m.index),
                    &active,
                ))
                .unwrap();
                rules::apply_ns(m, &rules::chain_update(topo.id, DOWN_CHAIN, &active)).unwrap();
            }
            separate.push(t.elapsed().as_secs_f64() * 1e3);
        }
    }
    let (b50, s50) = (
        percentile(&mut batched, 0.5),
        percentile(&mut separate, 0.5),
    );
    println!(
        "a change on all 8 members, request to kernel: as a run applies it (1 host transaction + 8 namespaces) p50 {b50:.1} ms p99 {:.1} ms; a transaction per side per member p50 {s50:.1} ms p99 {:.1} ms; {:.2}x (50 each)",
        percentile(&mut batched, 0.99),
        percentile(&mut separate, 0.99),
        s50 / b50
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
    let topo = Topology::create(RunId::fresh(), 1, &TcpSettings::default()).unwrap();
    rules::apply_host(&rules::base_host(&topo)).unwrap();
    rules::apply_ns(&topo.members[0], &rules::base_ns(topo.id, &topo.members[0])).unwrap();
    let m = &topo.members[0];
    let (mut host, mut ns) = (Vec::new(), Vec::new());
    for i in 0..200 {
        let active: &[LinkKind] = if i % 2 == 0 { &[LinkKind::CUT] } else { &[] };
        let t = Instant::now();
        rules::apply_host(&rules::chain_update(
            topo.id,
            &rules::up_chain(m.index),
            active,
        ))
        .unwrap();
        host.push(t.elapsed().as_secs_f64() * 1e3);
        let t = Instant::now();
        rules::apply_ns(m, &rules::chain_update(topo.id, DOWN_CHAIN, active)).unwrap();
        ns.push(t.elapsed().as_secs_f64() * 1e3);
    }
    println!(
        "rule apply, request to kernel: host side p50 {:.2} ms p99 {:.2} ms; namespace side p50 {:.2} ms p99 {:.2} ms (200 each)",
        percentile(&mut host, 0.5),
        percentile(&mut host, 0.99),
        percentile(&mut ns, 0.5),
        percentile(&mut ns, 0.99)
    );
    eight_member_change();
    let secs = 5;
    let without = stream(&topo, TcpListener::bind((topo.host_addr, 0)).unwrap(), secs);
    // The capture follows the stream's port as a run's follows the broker's, so its live
    // follower reassembles and decodes every frame, as in a run.
    let listener = TcpListener::bind((topo.host_addr, 0)).unwrap();
    let port = listener.local_addr().unwrap().port();
    let pcap = std::env::temp_dir().join(format!("linecut-bench-{}.pcap", topo.id));
    let capture =
        linecut_netns::capture::Capture::start(&pcap, std::slice::from_ref(&m.veth_host), port)
            .unwrap();
    let with = stream(&topo, listener, secs);
    let frames = capture.stop().unwrap();
    let _ = std::fs::remove_file(&pcap);
    println!(
        "capture on a 1,000-message/s stream for {secs} s: this process's CPU {:.3} s without the capture, {:.3} s with it ({frames} frames written): {:.2}x, {:.1} µs of CPU per frame",
        without,
        with,
        with / without.max(1e-9),
        (with - without).max(0.0) / frames.max(1) as f64 * 1e6
    );
}
