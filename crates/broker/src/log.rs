//! Where the embedded broker's own log goes.
//!
//! rumqttd reports through `tracing` (under the `rumqttd` target), at ERROR level even for
//! ordinary events such as a duplicate client id taking over a session. Those lines are the
//! broker's log: the runner points them at the run directory's `broker.log`, and a binary routes
//! the `rumqttd` target to [`embedded_log_writer`] (and away from the terminal).

use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;

static SINK: Mutex<Option<File>> = Mutex::new(None);

fn sink() -> std::sync::MutexGuard<'static, Option<File>> {
    SINK.lock().unwrap_or_else(|e| e.into_inner())
}

/// Sends the embedded broker's log to `path` (created or truncated), or nowhere with `None`.
pub fn set_embedded_log(path: Option<&Path>) -> std::io::Result<()> {
    let file = path.map(File::create).transpose()?;
    *sink() = file;
    Ok(())
}

/// A writer for log lines of the embedded broker: to the file set with [`set_embedded_log`], or
/// discarded when none is set.
pub struct EmbeddedLogWriter;

impl Write for EmbeddedLogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match sink().as_mut() {
            Some(file) => file.write(buf),
            None => Ok(buf.len()),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match sink().as_mut() {
            Some(file) => file.flush(),
            None => Ok(()),
        }
    }
}

/// For `tracing_subscriber::fmt().with_writer(...)`: a fresh handle per event.
pub fn embedded_log_writer() -> EmbeddedLogWriter {
    EmbeddedLogWriter
}
