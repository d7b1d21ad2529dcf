//! Proxy benchmark: the same workloads directly over loopback and through the proxy, in one run,
//! so the ratios compare like with like on whatever machine runs it.
//!
//! Run with `cargo bench -p linecut-proxy` (`LINECUT_BENCH_QUICK=1` for a short smoke run).
//! Workloads:
//! - bulk raw bytes (a non-MQTT stream: framing falls back to raw at the first byte);
//! - bulk MQTT: a CONNECT then a stream of small QoS 0 PUBLISH packets, with the default wire
//!   log writing events to a file, so the framing decoder and the event writer are on the hot
//!   path; then the same with `--wire-log control`;
//! - ping-pong: PINGREQ/PINGRESP round trips one at a time, for added latency p50/p99;
//! - schedule lateness: many fault steps, lateness as the proxy itself logs it.
//!
//! Peer: a plain tokio `copy_bidirectional` proxy (no framing, no faults, no events) runs the
//! same workloads in the same run. On small VMs the wake-up latency of any epoll-driven proxy
//! dominates ping-pong numbers; the peer row shows that floor, so what linecut itself adds is
//! the difference between the two.
//!
//! Clients and servers are plain blocking threads so that the measuring side adds as little as
//! possible; the proxy runs on its own two-worker tokio runtime, as `linecut proxy` does.

use linecut_events::{read_events, EventKind, EventLog, EventSink, Source};
use linecut_proxy::{FaultSpec, Proxy, ProxyConfig, WireLog};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

struct Running {
    addr: SocketAddr,
    stop: tokio::sync::oneshot::Sender<()>,
    done: thread::JoinHandle<()>,
}

/// Runs a proxy on its own two-worker runtime thread, as `linecut proxy` does: `serve` gets a
/// listener bound to 127.0.0.1:0 and a future that completes when the proxy should stop.
fn on_own_runtime<F, Fut>(serve: F) -> Running
where
    F: FnOnce(tokio::net::TcpListener, tokio::sync::oneshot::Receiver<()>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()>,
{
    let (addr_tx, addr_rx) = mpsc::channel();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let done = thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            addr_tx.send(listener.local_addr().unwrap()).unwrap();
            serve(listener, stopped).await;
        });
    });
    Running {
        addr: addr_rx.recv().unwrap(),
        stop,
        done,
    }
}

/// Starts linecut's proxy to `upstream`.
fn start_proxy(
    upstream: SocketAddr,
    wire_log: WireLog,
    events: EventSink,
    faults: &[String],
) -> Running {
    let faults = faults.to_vec();
    on_own_runtime(move |listener, stopped| async move {
        let mut config = ProxyConfig::new(upstream.to_string());
        config.wire_log = wire_log;
        let proxy = Proxy::new(config, events);
        for f in &faults {
            proxy.schedule(FaultSpec::parse(f).unwrap());
        }
        proxy
            .run(listener, None, async move {
                let _ = stopped.await;
            })
            .await
            .unwrap();
    })
}

/// The simplest possible tokio proxy (`copy_bidirectional`, no framing, no faults, no events):
/// the floor any tokio-based proxy stands on, measured on the same machine in the same run.
fn start_plain_proxy(upstream: SocketAddr) -> Running {
    on_own_runtime(move |listener, stopped| async move {
        let serve = async {
            loop {
                let (mut client, _) = listener.accept().await.unwrap();
                tokio::spawn(async move {
                    let mut server = tokio::net::TcpStream::connect(upstream).await.unwrap();
                    let _ = client.set_nodelay(true);
                    let _ = server.set_nodelay(true);
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                });
            }
        };
        tokio::select! {
            _ = serve => {}
            _ = stopped => {}
        }
    })
}

impl Running {
    fn stop(self) {
        let _ = self.stop.send(());
        self.done.join().unwrap();
    }
}

/// A server that reads each connection to the end and reports (bytes, when the last arrived).
fn sink_server() -> (SocketAddr, mpsc::Receiver<(u64, Instant)>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { break };
            let tx = tx.clone();
            thread::spawn(move || {
                let mut buf = vec![0u8; 256 * 1024];
                let mut total = 0u64;
                let mut last = Instant::now();
                while let Ok(n) = stream.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    total += n as u64;
                    last = Instant::now();
                }
                let _ = tx.send((total, last));
            });
        }
    });
    (addr, rx)
}

/// A server that answers every PINGREQ with a PINGRESP.
fn ping_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { break };
            let _ = stream.set_nodelay(true);
            thread::spawn(move || {
                let mut buf = [0u8; 2];
                while stream.read_exact(&mut buf).is_ok() {
                    if stream.write_all(&[0xd0, 0x00]).is_err() {
                        break;
                    }
                }
            });
        }
    });
    addr
}

/// Sends `prefix` then `chunk` repeatedly until `total` bytes; returns MB/s at the receiver.
fn bulk(
    to: SocketAddr,
    sink: &mpsc::Receiver<(u64, Instant)>,
    prefix: &[u8],
    chunk: &[u8],
    total: u64,
) -> f64 {
    let start = Instant::now();
    let mut stream = TcpStream::connect(to).unwrap();
    stream.write_all(prefix).unwrap();
    let mut sent = prefix.len() as u64;
    // Every workload is written in the same slice size, so the baselines are comparable.
    'outer: while sent < total {
        for slice in chunk.chunks(WRITE_SLICE) {
            stream.write_all(slice).unwrap();
            sent += slice.len() as u64;
            if sent >= total {
                break 'outer;
            }
        }
    }
    stream.shutdown(std::net::Shutdown::Write).unwrap();
    let (received, last) = sink.recv_timeout(Duration::from_secs(600)).unwrap();
    assert_eq!(received, sent, "every byte must arrive");
    received as f64 / last.duration_since(start).as_secs_f64() / 1e6
}

/// Bytes per write call on the sending side of every bulk workload.
const WRITE_SLICE: usize = 256 * 1024;

fn best_of(runs: usize, mut f: impl FnMut() -> f64) -> f64 {
    (0..runs).map(|_| f()).fold(0.0, f64::max)
}

/// Round trips on several paths, alternating in blocks so that every path sees the same machine
/// state (on a small VM, wake-up latency drifts by tens of microseconds between seconds).
fn ping_pong(paths: &[SocketAddr], rounds: usize) -> Vec<Vec<Duration>> {
    let mut streams: Vec<TcpStream> = paths
        .iter()
        .map(|to| {
            let stream = TcpStream::connect(to).unwrap();
            stream.set_nodelay(true).unwrap();
            stream
        })
        .collect();
    let mut samples = vec![Vec::with_capacity(rounds); paths.len()];
    let mut reply = [0u8; 2];
    const BLOCK: usize = 500;
    for block in 0..(rounds / BLOCK + 2) {
        for (stream, samples) in streams.iter_mut().zip(samples.iter_mut()) {
            for _ in 0..BLOCK {
                let t = Instant::now();
                stream.write_all(&[0xc0, 0x00]).unwrap();
                stream.read_exact(&mut reply).unwrap();
                // The first two blocks warm up every path.
                if block >= 2 {
                    samples.push(t.elapsed());
                }
            }
        }
    }
    for s in &mut samples {
        s.sort();
    }
    samples
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn publish_stream(bytes: usize) -> Vec<u8> {
    let mut one = vec![0x30, 0x6d, 0x00, 0x07];
    one.extend_from_slice(b"bench/t");
    one.extend_from_slice(&[0x55u8; 100]);
    assert_eq!(one.len(), 2 + 0x6d);
    one.iter()
        .copied()
        .cycle()
        .take(bytes / one.len() * one.len())
        .collect()
}

fn connect_packet() -> Vec<u8> {
    let mut p = vec![
        0x10, 0x11, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x04, 0x02, 0x00, 0x3c,
    ];
    p.extend_from_slice(&[0x00, 0x05]);
    p.extend_from_slice(b"bench");
    p
}

fn events_file(name: &str) -> (PathBuf, EventLog, EventSink) {
    let dir = std::env::temp_dir().join(format!("linecut-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{name}.jsonl"));
    let (log, sink) = EventLog::create(&path, Source::Proxy, "bench", "0").unwrap();
    (path, log, sink)
}

fn main() {
    let quick = std::env::var_os("LINECUT_BENCH_QUICK").is_some();
    let (bulk_total, runs, rounds) = if quick {
        (128u64 << 20, 1, 2_000)
    } else {
        (2u64 << 30, 3, 20_000)
    };
    println!(
        "linecut proxy benchmark ({} cores; best of {runs} runs; {} MiB per bulk run)",
        thread::available_parallelism().map_or(0, |n| n.get()),
        bulk_total >> 20
    );
    println!();

    // Bulk raw bytes.
    let (sink, received) = sink_server();
    let chunk = vec![0xa5u8; 256 * 1024];
    let direct = best_of(runs, || bulk(sink, &received, &[], &chunk, bulk_total));
    let proxy = start_proxy(
        sink,
        WireLog::default(),
        EventSink::disabled(Source::Proxy),
        &[],
    );
    let proxied = best_of(runs, || {
        bulk(proxy.addr, &received, &[], &chunk, bulk_total)
    });
    proxy.stop();
    let plain = start_plain_proxy(sink);
    let plain_rate = best_of(runs, || {
        bulk(plain.addr, &received, &[], &chunk, bulk_total)
    });
    plain.stop();
    println!("bulk raw bytes        direct {direct:8.0} MB/s   proxy {proxied:8.0} MB/s   ratio {:.2}x (goal >= 0.55x)", proxied / direct);
    println!("  peer: plain tokio   direct {direct:8.0} MB/s   proxy {plain_rate:8.0} MB/s   ratio {:.2}x", plain_rate / direct);

    // Bulk MQTT with the wire log on.
    let stream = publish_stream(4 << 20);
    let connect = connect_packet();
    let direct = best_of(runs, || {
        bulk(sink, &received, &connect, &stream, bulk_total)
    });
    for (label, level) in [
        ("bulk MQTT, log all   ", WireLog::default()),
        ("bulk MQTT, log ctrl  ", WireLog::Control),
    ] {
        let (path, log, events) = events_file("mqtt");
        let proxy = start_proxy(sink, level, events, &[]);
        let proxied = best_of(runs, || {
            bulk(proxy.addr, &received, &connect, &stream, bulk_total)
        });
        proxy.stop();
        log.finish().unwrap();
        let (mut logged, mut counted) = (0u64, 0u64);
        for event in read_events(&path).unwrap().map(Result::unwrap) {
            match event.kind {
                EventKind::MqttPacket(p) if p.kind() == Some(linecut_mqtt::PacketType::Publish) => {
                    logged += 1
                }
                EventKind::PublishSuppressed(s) => counted += s.count,
                _ => {}
            }
        }
        println!(
            "{label} direct {direct:8.0} MB/s   proxy {proxied:8.0} MB/s   ratio {:.2}x (goal >= 0.55x); {logged} PUBLISH events, {counted} counted",
            proxied / direct
        );
    }

    // Ping-pong latency: direct, through linecut and through the peer, interleaved.
    let pinger = ping_server();
    let (_, log, events) = events_file("ping");
    let proxy = start_proxy(pinger, WireLog::default(), events, &[]);
    let plain = start_plain_proxy(pinger);
    let samples = ping_pong(&[pinger, proxy.addr, plain.addr], rounds);
    proxy.stop();
    plain.stop();
    log.finish().unwrap();
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    let p = |i: usize, q: f64| us(percentile(&samples[i], q));
    println!(
        "ping-pong RTT         direct p50 {:6.1} µs p99 {:6.1} µs   proxy p50 {:6.1} µs p99 {:6.1} µs   added p50 {:6.1} µs p99 {:6.1} µs (goal p99 < 100 µs)",
        p(0, 0.5), p(0, 0.99), p(1, 0.5), p(1, 0.99), p(1, 0.5) - p(0, 0.5), p(1, 0.99) - p(0, 0.99)
    );
    println!(
        "  peer: plain tokio   direct p50 {:6.1} µs p99 {:6.1} µs   proxy p50 {:6.1} µs p99 {:6.1} µs   added p50 {:6.1} µs p99 {:6.1} µs",
        p(0, 0.5), p(0, 0.99), p(2, 0.5), p(2, 0.99), p(2, 0.5) - p(0, 0.5), p(2, 0.99) - p(0, 0.99)
    );
    println!(
        "  linecut over the plain tokio peer: p50 {:+.1} µs, p99 {:+.1} µs",
        p(1, 0.5) - p(2, 0.5),
        p(1, 0.99) - p(2, 0.99)
    );

    // Schedule lateness.
    let steps = if quick { 10 } else { 50 };
    let faults: Vec<String> = (0..steps)
        .map(|i| format!("latency:at={}ms,for=10ms,delay=1ms", 20 + i * 25))
        .collect();
    let (path, log, events) = events_file("schedule");
    let proxy = start_proxy(sink, WireLog::default(), events, &faults);
    thread::sleep(Duration::from_millis(20 + steps as u64 * 25 + 100));
    proxy.stop();
    log.finish().unwrap();
    let mut lateness: Vec<u64> = read_events(&path)
        .unwrap()
        .filter_map(|e| match e.unwrap().kind {
            EventKind::FaultStarted(f) => f.lateness_us,
            EventKind::FaultEnded(f) => f.lateness_us,
            _ => None,
        })
        .collect();
    lateness.sort_unstable();
    println!(
        "schedule lateness     {} steps: p50 {} µs, p99 {} µs, max {} µs (goal < 1000 µs)",
        lateness.len(),
        lateness[lateness.len() / 2],
        lateness[(lateness.len() - 1) * 99 / 100],
        lateness[lateness.len() - 1]
    );
}
