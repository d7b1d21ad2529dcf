//! Errors, shutdown, and resource use over many connections.

use crate::util::*;
use linecut_events::EventKind;
use tokio::io::AsyncReadExt;
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
