//! Writing events files: a cheap, cloneable [`EventSink`] for producers and an [`EventLog`] that
//! owns the file.
//!
//! Producers sit on hot paths (the proxy logs packets while forwarding them), so a sink only
//! serialises into memory and hands whole batches to one writer thread over a channel. The thread
//! batches writes through a `BufWriter`, flushes whenever it goes idle (so a file being tailed is
//! never far behind) and on close. [`EventLog::finish`] drains everything queued before it and
//! reports the first IO error, so a caller can tell a complete log from a damaged one.

use crate::{now_us, Event, EventKind, Header, Source};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::Duration;

/// Failure to create or write an events file.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("cannot create events file {path}: {source}")]
    Create {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write events file {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("events writer thread for {path} panicked")]
    Panicked { path: PathBuf },
}

enum Message {
    Lines(Vec<u8>),
    Close,
}

/// How long the writer waits for more events before flushing what it has.
const IDLE_FLUSH: Duration = Duration::from_millis(50);

/// Owner of an events file. Keep it until every producer is done, then call [`EventLog::finish`].
pub struct EventLog {
    path: PathBuf,
    tx: Sender<Message>,
    thread: Option<JoinHandle<Result<(), std::io::Error>>>,
}

impl EventLog {
    /// Creates (truncates) `path`, writes the header line, and starts the writer thread.
    pub fn create(
        path: &Path,
        source: Source,
        producer: &str,
        producer_version: &str,
    ) -> Result<(EventLog, EventSink), WriteError> {
        let file = File::create(path).map_err(|source| WriteError::Create {
            path: path.to_path_buf(),
            source,
        })?;
        let mut out = BufWriter::with_capacity(256 * 1024, file);
        let header = Event {
            ts_us: now_us(),
            source,
            kind: EventKind::Header(Header::new(producer, producer_version)),
        };
        let mut line = serde_json::to_vec(&header).expect("events always serialise");
        line.push(b'\n');
        out.write_all(&line)
            .and_then(|()| out.flush())
            .map_err(|source| WriteError::Write {
                path: path.to_path_buf(),
                source,
            })?;
        let (tx, rx) = channel();
        let thread = std::thread::Builder::new()
            .name("linecut-events".into())
            .spawn(move || write_loop(rx, out))
            .map_err(|source| WriteError::Create {
                path: path.to_path_buf(),
                source,
            })?;
        let sink = EventSink {
            tx: Some(tx.clone()),
            source,
        };
        Ok((
            EventLog {
                path: path.to_path_buf(),
                tx,
                thread: Some(thread),
            },
            sink,
        ))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes everything queued so far, closes the file and reports the first write error.
    /// Events emitted through sinks after this are ignored.
    pub fn finish(mut self) -> Result<(), WriteError> {
        self.close()
    }

    fn close(&mut self) -> Result<(), WriteError> {
        let Some(thread) = self.thread.take() else {
            return Ok(());
        };
        let _ = self.tx.send(Message::Close);
        match thread.join() {
            Ok(Ok(())) => Ok(()),
            Ok(Err(source)) => Err(WriteError::Write {
                path: self.path.clone(),
                source,
            }),
            Err(_) => Err(WriteError::Panicked {
                path: self.path.clone(),
            }),
        }
    }
}

impl Drop for EventLog {
    fn drop(&mut self) {
        // A log dropped without `finish` (an early return on error) still gets what was queued.
        let _ = self.close();
    }
}

fn write_loop(rx: Receiver<Message>, mut out: BufWriter<File>) -> Result<(), std::io::Error> {
    // Keep draining after an error so producers never notice; report the first error at close.
    let mut first_error: Option<std::io::Error> = None;
    let mut dirty = false;
    loop {
        let message = match rx.recv_timeout(IDLE_FLUSH) {
            Ok(m) => m,
            Err(RecvTimeoutError::Timeout) => {
                if dirty {
                    if let Err(e) = out.flush() {
                        first_error.get_or_insert(e);
                    }
                    dirty = false;
                }
                continue;
            }
            Err(RecvTimeoutError::Disconnected) => Message::Close,
        };
        match message {
            Message::Lines(bytes) => {
                if first_error.is_none() {
                    if let Err(e) = out.write_all(&bytes) {
                        first_error = Some(e);
                    }
                    dirty = true;
                }
            }
            Message::Close => {
                if let Err(e) = out.flush() {
                    first_error.get_or_insert(e);
                }
                return match first_error {
                    Some(e) => Err(e),
                    None => Ok(()),
                };
            }
        }
    }
}

/// A handle producers use to emit events. Cloning is cheap; a disabled sink drops everything.
#[derive(Clone)]
pub struct EventSink {
    tx: Option<Sender<Message>>,
    source: Source,
}

impl EventSink {
    /// A sink that writes nowhere (for components run without an events file).
    pub fn disabled(source: Source) -> Self {
        EventSink { tx: None, source }
    }

    pub fn is_enabled(&self) -> bool {
        self.tx.is_some()
    }

    pub fn source(&self) -> Source {
        self.source
    }

    /// Emits one event stamped with the current time.
    pub fn emit(&self, kind: EventKind) {
        self.emit_at(now_us(), kind);
    }

    /// Emits one event with a timestamp the caller measured (e.g. when bytes were read).
    pub fn emit_at(&self, ts_us: i64, kind: EventKind) {
        let mut batch = self.batch();
        batch.push_at(ts_us, kind);
    }

    /// Starts a batch: many events serialised into one buffer and queued with one send.
    pub fn batch(&self) -> EventBatch<'_> {
        EventBatch {
            sink: self,
            buf: Vec::new(),
        }
    }
}

impl std::fmt::Debug for EventSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventSink")
            .field("source", &self.source)
            .field("enabled", &self.is_enabled())
            .finish()
    }
}

/// Events collected to be queued together; queued when committed or dropped.
pub struct EventBatch<'a> {
    sink: &'a EventSink,
    buf: Vec<u8>,
}

impl EventBatch<'_> {
    pub fn push(&mut self, kind: EventKind) {
        self.push_at(now_us(), kind);
    }

    pub fn push_at(&mut self, ts_us: i64, kind: EventKind) {
        if self.sink.tx.is_none() {
            return;
        }
        let event = Event {
            ts_us,
            source: self.sink.source,
            kind,
        };
        // Serialising our own plain structs into a Vec cannot fail.
        serde_json::to_writer(&mut self.buf, &event).expect("events always serialise");
        self.buf.push(b'\n');
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    pub fn commit(self) {
        // Drop does the work.
    }
}

impl Drop for EventBatch<'_> {
    fn drop(&mut self) {
        if self.buf.is_empty() {
            return;
        }
        if let Some(tx) = &self.sink.tx {
            // A closed log means the run is over; late events have nowhere to go.
            let _ = tx.send(Message::Lines(std::mem::take(&mut self.buf)));
        }
    }
}
