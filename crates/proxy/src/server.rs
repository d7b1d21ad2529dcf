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
use crate::Shared;
use bytes::BytesMut;
use linecut_events::{
    now_us, CloseHow, ClosedBy, ConnClosed, ConnOpened, Direction, EventKind, FaultAction, Leg,
    LegClosed, UpstreamConnected, UpstreamFailed,
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
                f.spec.fault.refuses_connections() && !matches!(f.spec.target, Target::Client(_))
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
    loop {
        let current_kill = kill.borrow_and_update().clone();
        if let Some(k) = current_kill {
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
                match client.try_read_buf(held) {
                    Ok(0) => {
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
                        conn.bytes_up.fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(e) => {
                        let how = if e.kind() == std::io::ErrorKind::ConnectionReset {
                            CloseHow::Rst
                        } else {
                            CloseHow::Error
                        };
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
