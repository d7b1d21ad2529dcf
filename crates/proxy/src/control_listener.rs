//! The control API's listener, bounded: at most [`MAX_CONNECTIONS`] connections at once, and a
//! connection that sends nothing for [`IDLE_TIMEOUT`] (a request that never finishes its
//! headers, a client that never closes) is closed.
//!
//! Without these, idle control connections pile up until the process runs out of descriptors,
//! and then the *data* port stops accepting: the experiment dies of its own control plane.
//! Past the cap, a new control connection is closed as soon as it is accepted (it holds a
//! descriptor for no time at all); once idle ones time out, new ones are served again. Closing
//! rather than leaving the excess in the kernel's backlog keeps a flood from queueing in front
//! of the next real request.

use axum::serve::Listener;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};

/// Control connections open at once.
pub const MAX_CONNECTIONS: usize = 64;
/// How long a control connection may stay silent (headers included) before it is closed.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(10);

pub(crate) struct ControlListener {
    listener: TcpListener,
    slots: Arc<Semaphore>,
}

impl ControlListener {
    pub fn new(listener: TcpListener) -> ControlListener {
        ControlListener {
            listener,
            slots: Arc::new(Semaphore::new(MAX_CONNECTIONS)),
        }
    }
}

impl Listener for ControlListener {
    type Io = BoundedStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (BoundedStream, SocketAddr) {
        loop {
            match self.listener.accept().await {
                Ok((stream, addr)) => match self.slots.clone().try_acquire_owned() {
                    Ok(permit) => {
                        let stream = BoundedStream {
                            stream,
                            _permit: permit,
                            idle: Box::pin(tokio::time::sleep(IDLE_TIMEOUT)),
                        };
                        return (stream, addr);
                    }
                    // Full: closed at once (dropping it closes it).
                    Err(_) => drop(stream),
                },
                // Out of descriptors or a connection reset before accept: wait a little rather
                // than spin.
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }
}

/// A control connection: holds its slot until dropped, and fails its reads once it has been
/// silent for [`IDLE_TIMEOUT`].
pub(crate) struct BoundedStream {
    stream: TcpStream,
    _permit: OwnedSemaphorePermit,
    idle: Pin<Box<Sleep>>,
}

impl AsyncRead for BoundedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.stream).poll_read(cx, buf) {
            Poll::Ready(result) => {
                if buf.filled().len() > before {
                    self.idle.as_mut().reset(Instant::now() + IDLE_TIMEOUT);
                }
                Poll::Ready(result)
            }
            Poll::Pending => match self.idle.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "control connection idle too long",
                ))),
                Poll::Pending => Poll::Pending,
            },
        }
    }
}

impl AsyncWrite for BoundedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, data)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}
