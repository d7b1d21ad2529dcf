//! Errors, shutdown, and resource use over many connections.

use crate::util::*;
use linecut_events::EventKind;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[tokio::test]
async fn an_unreachable_upstream_closes_the_client_and_the_proxy_keeps_serving() {
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_addr = dead.local_addr().unwrap();
    drop(dead);
    let rig = Rig::with(RigOptions {
        upstream_override: Some(dead_addr.to_string()),
        ..Default::default()
    })
    .await;
    for _ in 0..2 {
        let mut client = TcpStream::connect(rig.addr).await.unwrap();
        let mut buf = [0u8; 8];
        let n = tokio::time::timeout(PROMPT, client.read(&mut buf))
            .await
            .unwrap();
        assert!(
            matches!(n, Ok(0)),
            "client should see its connection closed: {n:?}"
        );
    }
    let events = rig.stop().await;
    let failures: Vec<_> = events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::UpstreamFailed(f) => Some(f.error.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(failures.len(), 2);
    assert!(
        failures[0].to_lowercase().contains("refused"),
        "{failures:?}"
    );
}

#[tokio::test]
async fn shutdown_closes_live_connections_with_fin_and_logs_the_totals() {
    let rig = Rig::start().await;
    let (mut client, mut broker) = rig.mqtt_pair("bye").await;
    let stopping = tokio::spawn(async move { rig.stop().await });
    assert_eq!(read_to_end(&mut client).await.0, End::Fin);
    assert_eq!(read_to_end(&mut broker).await.0, End::Fin);
    drop((client, broker));
    let events = stopping.await.unwrap();
    let stopped = events.iter().find_map(|e| match &e.kind {
        EventKind::ProxyStopped(s) => Some(s.connections),
        _ => None,
    });
    assert_eq!(stopped, Some(1));
    let closed = events
        .iter()
        .filter(|e| matches!(e.kind, EventKind::ConnClosed(_)))
        .count();
    assert_eq!(closed, 1);
}

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
