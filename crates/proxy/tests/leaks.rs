//! Resource use over thousands of connections, in its own test binary: it counts the whole
//! process's descriptors and tasks, which other tests running in parallel threads (and brokers
//! that cannot be stopped) would disturb.

// Shared with the main test binary, which uses all of it; this binary needs only the rig.
#[allow(dead_code)]
#[path = "proxy/util.rs"]
mod util;

use linecut_events::EventKind;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use util::*;

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_connections_leave_no_task_or_descriptor_behind() {
    let rig = Rig::with(RigOptions {
        configure: |c| c.wire_log = linecut_proxy::WireLog::Control,
        ..Default::default()
    })
    .await;
    let upstream = rig.upstream.clone();
    // The "broker" answers every connection with CONNACK and then waits for the client to leave.
    let acceptor = tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = upstream.accept().await else {
                break;
            };
            tokio::spawn(async move {
                let _ = s.write_all(&CONNACK).await;
                let mut sink = Vec::new();
                let _ = s.read_to_end(&mut sink).await;
            });
        }
    });
    let metrics = tokio::runtime::Handle::current().metrics();
    let (tasks_before, fds_before) = (metrics.num_alive_tasks(), open_fds());
    const TOTAL: usize = 3000;
    const AT_ONCE: usize = 100;
    for _ in 0..TOTAL / AT_ONCE {
        let mut wave = Vec::new();
        for i in 0..AT_ONCE {
            let addr = rig.addr;
            wave.push(tokio::spawn(async move {
                let mut c = TcpStream::connect(addr).await.unwrap();
                c.write_all(&connect_packet(&format!("c{i}"), 5))
                    .await
                    .unwrap();
                let mut ack = [0u8; 4];
                c.read_exact(&mut ack).await.unwrap();
                c.shutdown().await.unwrap();
                let mut rest = Vec::new();
                c.read_to_end(&mut rest).await.unwrap();
            }));
        }
        for w in wave {
            tokio::time::timeout(PROMPT, w).await.unwrap().unwrap();
        }
    }
    eventually(|| rig.handle.connections().is_empty()).await;
    // Connection tasks end after their last event; give the runtime a moment to reap them.
    let deadline = std::time::Instant::now() + PROMPT;
    while metrics.num_alive_tasks() > tasks_before + 5 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        metrics.num_alive_tasks() <= tasks_before + 5,
        "tasks: {} before, {} after",
        tasks_before,
        metrics.num_alive_tasks()
    );
    assert!(
        open_fds() <= fds_before + 10,
        "descriptors: {fds_before} before, {} after",
        open_fds()
    );
    acceptor.abort();
    let events = rig.stop().await;
    let closed = events
        .iter()
        .filter(|e| matches!(e.kind, EventKind::ConnClosed(_)))
        .count();
    assert_eq!(closed, TOTAL);
}
