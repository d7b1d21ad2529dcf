//! The accept loop and per-connection setup, shaped as `run(listener, shutdown)`.
//!
//! - A semaphore caps live connections; at the cap the proxy stops accepting (the kernel backlog
//!   absorbs a burst) rather than accepting and dropping.
//! - Accept errors (EMFILE under a connection storm) back off exponentially instead of spinning.
//! - While a `refuse` fault is active the listening socket is closed, so connects are refused by
//!   the kernel, and reopened on the same address afterwards.
//! - Shutdown closes every live connection with FIN, waits a grace period, resets stragglers, and
//!   returns only when every connection task has finished: no task or socket outlives `run`.

use crate::conn::ConnHandle;
use crate::faults::ConnAction;
use crate::pump::pump_connection;
use crate::spec::Target;
use crate::wirelog::PublishBudget;
use crate::Shared;
use bytes::BytesMut;
use linecut_capture::LegSide;
use linecut_events::{
    now_us, CloseHow, ClosedBy, ConnClosed, ConnOpened, Direction, EventKind, Fate, FaultAction,
    Leg, LegClosed, PublishSuppressed, UpstreamConnected, UpstreamFailed,
};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{mpsc, Semaphore};

/// How long live connections get to close cleanly at shutdown before they are reset.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

pub(crate) async fn accept_loop(
    shared: Arc<Shared>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let listen_addr = listener.local_addr()?;
    let mut listener = Some(listener);
    let limit = Arc::new(Semaphore::new(shared.config.max_connections));
    let (done_tx, mut done_rx) = mpsc::channel::<()>(1);
    let mut faults = shared.board.subscribe();
    let mut backoff = Duration::from_millis(5);
    tokio::pin!(shutdown);
    let listening = |open: bool| {
        shared
            .listening
            .store(open, std::sync::atomic::Ordering::Release)
    };
    listening(true);
    loop {
        let refusing = faults
            .borrow_and_update()
            .iter()
            .find(|f| {
                f.spec.fault.refuses_connections()
                    && !matches!(f.spec.schedule.target, Target::Client(_))
            })
            .cloned();
        if let Some(fault) = refusing {
            if listener.take().is_some() {
                listening(false);
                shared.board.emit_action(&fault, "listener_closed", None);
            }
            tokio::select! {
                _ = faults.changed() => continue,
                _ = &mut shutdown => break,
            }
        }
        let active = match &listener {
            Some(l) => l,
            None => match rebind(listen_addr) {
                Ok(l) => {
                    listening(true);
                    shared.events.emit(EventKind::FaultAction(FaultAction {
                        fault: 0,
                        kind: "refuse".into(),
                        action: "listener_reopened".into(),
                        conn: None,
                        detail: Some(listen_addr.to_string()),
                    }));
                    listener.insert(l)
                }
                Err(e) => {
                    tracing::warn!("cannot reopen {listen_addr}: {e}; retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_millis(100)) => continue,
                        _ = &mut shutdown => break,
                    }
                }
            },
        };
        let permit = tokio::select! {
            p = limit.clone().acquire_owned() => p.expect("semaphore is never closed"),
            _ = &mut shutdown => break,
        };
        tokio::select! {
            accepted = active.accept() => match accepted {
                Ok((stream, client_addr)) => {
                    backoff = Duration::from_millis(5);
                    let shared = shared.clone();
                    let done = done_tx.clone();
                    tokio::spawn(async move {
                        serve_connection(shared, stream, client_addr, listen_addr).await;
                        drop(permit);
                        drop(done);
                    });
                }
                Err(e) => {
                    tracing::warn!("accept failed: {e}; backing off {backoff:?}");
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = &mut shutdown => break,
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                }
            },
            _ = faults.changed() => {}
            _ = &mut shutdown => break,
        }
    }
    drop(listener);
    listening(false);
    drop(done_tx);
    for conn in shared.conns.live() {
        conn.kill(ConnAction::Close, "proxy shutting down");
    }
    if tokio::time::timeout(SHUTDOWN_GRACE, done_rx.recv())
        .await
        .is_err()
    {
        for conn in shared.conns.live() {
            conn.kill(ConnAction::Reset, "proxy shutting down (grace period over)");
        }
        let _ = done_rx.recv().await;
    }
    Ok(())
}

fn rebind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

async fn serve_connection(
    shared: Arc<Shared>,
    client: TcpStream,
    client_addr: SocketAddr,
    listen_addr: SocketAddr,
) {
    let conn = shared.conns.open(client_addr);
    shared.events.emit_at(
        conn.opened_us,
        EventKind::ConnOpened(ConnOpened {
            conn: conn.id,
            client_addr: client_addr.to_string(),
            listen_addr: listen_addr.to_string(),
        }),
    );
    let _ = client.set_nodelay(true);
    if let Some(pcap) = &shared.config.pcap {
        pcap.open(
            conn.id,
            LegSide::Client,
            client_addr,
            listen_addr,
            conn.opened_us,
        );
    }
    let mut held = BytesMut::new();
    if let Some(upstream) = connect_upstream(&shared, &conn, &client, &mut held).await {
        let _ = upstream.set_nodelay(true);
        pump_connection(&shared, &conn, client, upstream, held).await;
    }
    shared.events.emit(EventKind::ConnClosed(ConnClosed {
        conn: conn.id,
        bytes_up: conn.bytes_up.load(std::sync::atomic::Ordering::Relaxed),
        bytes_down: conn.bytes_down.load(std::sync::atomic::Ordering::Relaxed),
        duration_us: conn.opened_at.elapsed().as_micros() as u64,
        client_id: conn.client_id().map(str::to_string),
    }));
    shared.conns.remove(conn.id);
}

/// Opens the broker leg. While a cut holds the upstream direction of this connection, the
/// connection is not opened at all: during a real cut the client's SYN would not reach the broker
/// either (the client's handshake with the proxy's kernel stands for the SYN still in flight).
/// What the client sends meanwhile is read into `held` (and forwarded once the cut ends); a
/// client that gives up and closes before the cut ends never reaches the broker, as on a real
/// line — delivering its stale CONNECT later would take over the session of its live successor.
async fn connect_upstream(
    shared: &Shared,
    conn: &Arc<ConnHandle>,
    client: &TcpStream,
    held: &mut BytesMut,
) -> Option<TcpStream> {
    let mut faults = shared.board.subscribe();
    let mut kill = conn.watch_kill();
    // When the first bytes were held: the packets of a connection abandoned during the cut are
    // logged as held then and discarded when it ends (they never reach a pump, which logs the rest).
    let mut held_since_us = None;
    loop {
        let current_kill = kill.borrow_and_update().clone();
        if let Some(k) = current_kill {
            log_abandoned(shared, conn, held, held_since_us);
            end_client_leg(shared, conn, client, k.action, k.reason);
            return None;
        }
        let snapshot = faults.borrow_and_update().clone();
        let holding: Vec<usize> = snapshot
            .iter()
            .filter(|f| f.applies_to(conn, Direction::Up))
            .filter_map(|f| f.spec.fault.hold_limit())
            .collect();
        let Some(&limit) = holding.iter().min() else {
            break;
        };
        let room = held.len() < limit;
        tokio::select! {
            _ = faults.changed() => {}
            _ = kill.changed() => {}
            ready = client.readable(), if room => {
                if ready.is_err() {
                    continue;
                }
                held.reserve(16 * 1024);
                let before = held.len();
                match client.try_read_buf(held) {
                    Ok(0) => {
                        if let Some(pcap) = &shared.config.pcap {
                            pcap.close(conn.id, LegSide::Client, true, false, now_us());
                        }
                        log_abandoned(shared, conn, held, held_since_us);
                        if conn.mark_leg_closed(Leg::Client) {
                            shared.events.emit(EventKind::LegClosed(LegClosed {
                                conn: conn.id,
                                leg: Leg::Client,
                                by: ClosedBy::Peer,
                                how: CloseHow::Fin,
                                reason: Some("closed during a cut, before reaching the broker".into()),
                            }));
                        }
                        return None;
                    }
                    Ok(n) => {
                        held_since_us.get_or_insert_with(now_us);
                        conn.bytes_up.fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
                        if let Some(pcap) = &shared.config.pcap {
                            pcap.data(conn.id, LegSide::Client, true, &held[before..], now_us());
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(e) => {
                        let how = if e.kind() == std::io::ErrorKind::ConnectionReset {
                            CloseHow::Rst
                        } else {
                            CloseHow::Error
                        };
                        if let Some(pcap) = &shared.config.pcap {
                            pcap.close(conn.id, LegSide::Client, true, true, now_us());
                        }
                        log_abandoned(shared, conn, held, held_since_us);
                        if conn.mark_leg_closed(Leg::Client) {
                            shared.events.emit(EventKind::LegClosed(LegClosed {
                                conn: conn.id,
                                leg: Leg::Client,
                                by: ClosedBy::Peer,
                                how,
                                reason: Some(format!("{e} (during a cut, before reaching the broker)")),
                            }));
                        }
                        return None;
                    }
                }
            }
        }
    }
    let started = Instant::now();
    let upstream = shared.config.upstream.as_str();
    let attempt = tokio::time::timeout(shared.config.connect_timeout, TcpStream::connect(upstream));
    let result = tokio::select! {
        r = attempt => match r {
            Ok(Ok(stream)) => Ok(stream),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!("no answer within {:?}", shared.config.connect_timeout)),
        },
        _ = kill.changed() => Err("connection ended by the proxy while connecting".to_string()),
    };
    match result {
        Ok(stream) => {
            if let (Some(pcap), Ok(local), Ok(peer)) =
                (&shared.config.pcap, stream.local_addr(), stream.peer_addr())
            {
                pcap.open(conn.id, LegSide::Upstream, local, peer, now_us());
            }
            shared
                .events
                .emit(EventKind::UpstreamConnected(UpstreamConnected {
                    conn: conn.id,
                    local_addr: stream
                        .local_addr()
                        .map(|a| a.to_string())
                        .unwrap_or_default(),
                    upstream_addr: stream
                        .peer_addr()
                        .map(|a| a.to_string())
                        .unwrap_or_else(|_| upstream.to_string()),
                    connect_us: started.elapsed().as_micros() as u64,
                }));
            Some(stream)
        }
        Err(error) => {
            shared
                .events
                .emit(EventKind::UpstreamFailed(UpstreamFailed {
                    conn: conn.id,
                    upstream_addr: upstream.to_string(),
                    error: error.clone(),
                }));
            let action = kill
                .borrow()
                .as_ref()
                .map_or(ConnAction::Close, |k| k.action);
            end_client_leg(
                shared,
                conn,
                client,
                action,
                format!("upstream unreachable: {error}"),
            );
            None
        }
    }
}

/// Logs the MQTT packets of bytes held for a connection that ends before reaching the broker:
/// held when they arrived, discarded now.
fn log_abandoned(shared: &Shared, conn: &ConnHandle, held: &[u8], since_us: Option<i64>) {
    let Some(since) = since_us else { return };
    if matches!(shared.config.wire_log, crate::WireLog::Off) {
        return;
    }
    let mut decoder = linecut_mqtt::StreamDecoder::new(
        linecut_mqtt::Role::Client,
        shared.config.max_buffered_packet,
    );
    let mut at = 0;
    let mut batch = shared.events.batch();
    let now = now_us();
    // The same budget as forwarded packets: PUBLISH-flow packets beyond the per-second limit
    // are counted, not logged one by one, so a large hold cannot turn into gigabytes of events.
    let instant = Instant::now();
    let mut budget = PublishBudget::new(shared.config.wire_log, instant);
    while let linecut_mqtt::Unit::Packet { len, packet } = decoder.next(&held[at..]) {
        if budget.wants(packet.packet_type(), len, instant) {
            let mut event = crate::wirelog::describe(conn.id, Direction::Up, len, &packet);
            event.fate = Fate::Held;
            batch.push_at(since, EventKind::MqttPacket(event.clone()));
            event.fate = Fate::Discarded;
            batch.push_at(now, EventKind::MqttPacket(event));
        }
        at += len;
    }
    if let Some((count, bytes)) = budget.take_report(instant, true) {
        batch.push_at(
            now,
            EventKind::PublishSuppressed(PublishSuppressed {
                conn: conn.id,
                dir: Direction::Up,
                count,
                bytes,
            }),
        );
    }
    batch.commit();
}

/// Ends a client leg that never got an upstream: FIN for a close, RST for a reset.
fn end_client_leg(
    shared: &Shared,
    conn: &ConnHandle,
    client: &TcpStream,
    action: ConnAction,
    reason: String,
) {
    let how = match action {
        ConnAction::Reset => {
            let _ = client.set_zero_linger();
            CloseHow::Rst
        }
        ConnAction::Close => CloseHow::Fin,
    };
    if let Some(pcap) = &shared.config.pcap {
        pcap.close(
            conn.id,
            LegSide::Client,
            false,
            how == CloseHow::Rst,
            now_us(),
        );
    }
    if conn.mark_leg_closed(Leg::Client) {
        shared.events.emit_at(
            now_us(),
            EventKind::LegClosed(LegClosed {
                conn: conn.id,
                leg: Leg::Client,
                by: ClosedBy::Proxy,
                how,
                reason: Some(reason),
            }),
        );
    }
}
