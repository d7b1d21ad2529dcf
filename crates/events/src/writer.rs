//! Writing events files: a cheap, cloneable [`EventSink`] for producers and an [`EventLog`] that
//! owns the file.
//!
//! Producers sit on hot paths (the proxy logs packets while forwarding them), so a sink only
//! serialises into memory and appends whole batches to a shared buffer. One writer thread takes the
//! buffer every [`FLUSH_INTERVAL`] (or as soon as it holds [`WAKE_BYTES`]) and writes it out. A
//! producer never wakes the writer for an ordinary event: on a small machine a thread wake-up per
//! packet costs more than the packet, and it lands in the latency being measured. A file being
//! tailed is at most one interval behind. [`EventLog::finish`] writes everything appended before
//! it and reports the first IO error, so a caller can tell a complete log from a damaged one.

use crate::{now_us, Event, EventKind, Header, Source};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
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

/// How often the writer thread takes what producers appended.
pub const FLUSH_INTERVAL: Duration = Duration::from_millis(20);
/// Appended bytes that wake the writer early, bounding memory under a flood of events.
pub const WAKE_BYTES: usize = 4 * 1024 * 1024;

/// The buffer producers append to and the writer drains.
struct Pending {
    state: Mutex<PendingState>,
    wake: Condvar,
}

#[derive(Default)]
struct PendingState {
    bytes: Vec<u8>,
    closed: bool,
    /// The first write error, as soon as it happens, for [`EventLog::failure`].
    failed: Option<String>,
}

impl Pending {
    fn lock(&self) -> MutexGuard<'_, PendingState> {
        // Appends are single `extend` calls: a poisoned lock still holds whole lines.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Owner of an events file. Keep it until every producer is done, then call [`EventLog::finish`].
pub struct EventLog {
    path: PathBuf,
    pending: Arc<Pending>,
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
        let pending = Arc::new(Pending {
            state: Mutex::new(PendingState::default()),
            wake: Condvar::new(),
        });
        let for_thread = pending.clone();
        let thread = std::thread::Builder::new()
            .name("linecut-events".into())
            .spawn(move || write_loop(&for_thread, out))
            .map_err(|source| WriteError::Create {
                path: path.to_path_buf(),
                source,
            })?;
        let sink = EventSink {
            pending: Some(pending.clone()),
            source,
        };
        Ok((
            EventLog {
                path: path.to_path_buf(),
                pending,
                thread: Some(thread),
            },
            sink,
        ))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The first write error, as soon as the writer met it (a full disk, a file system gone
    /// read-only): a run polls this to stop at once rather than go on losing its events.
    pub fn failure(&self) -> Option<String> {
        self.pending.lock().failed.clone()
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
        self.pending.lock().closed = true;
        self.pending.wake.notify_one();
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

fn write_loop(pending: &Pending, mut out: BufWriter<File>) -> Result<(), std::io::Error> {
    // Keep draining after an error so producers never notice; report the first error at close.
    let mut first_error: Option<std::io::Error> = None;
    let mut spare = Vec::new();
    loop {
        let closed = {
            let mut state = pending.lock();
            if state.bytes.len() < WAKE_BYTES && !state.closed {
                state = pending
                    .wake
                    .wait_timeout(state, FLUSH_INTERVAL)
                    .map(|(guard, _)| guard)
                    .unwrap_or_else(|e| e.into_inner().0);
            }
            std::mem::swap(&mut state.bytes, &mut spare);
            state.closed
        };
        if !spare.is_empty() && first_error.is_none() {
            if let Err(e) = out.write_all(&spare).and_then(|()| out.flush()) {
                pending.lock().failed = Some(e.to_string());
                first_error = Some(e);
            }
        }
        spare.clear();
        if closed {
            return match first_error {
                Some(e) => Err(e),
                None => Ok(()),
            };
        }
    }
}

/// A handle producers use to emit events. Cloning is cheap; a disabled sink drops everything.
#[derive(Clone)]
pub struct EventSink {
    pending: Option<Arc<Pending>>,
    source: Source,
}

impl EventSink {
    /// A sink that writes nowhere (for components run without an events file).
    pub fn disabled(source: Source) -> Self {
        EventSink {
            pending: None,
            source,
        }
    }

    pub fn is_enabled(&self) -> bool {
        self.pending.is_some()
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
        if self.sink.pending.is_none() {
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
        if let Some(pending) = &self.sink.pending {
            let mut state = pending.lock();
            // A closed log means the run is over; late events have nowhere to go.
            if state.closed {
                return;
            }
            state.bytes.extend_from_slice(&self.buf);
            if state.bytes.len() >= WAKE_BYTES {
                pending.wake.notify_one();
            }
        }
    }
}
