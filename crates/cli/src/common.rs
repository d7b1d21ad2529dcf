//! Glue every long-running subcommand shares: the events file and the stop signal.

use anyhow::Context;
use linecut_events::{EventLog, EventSink, Source};
use std::path::PathBuf;
use std::time::Duration;

/// Opens `--events FILE` (or a disabled sink without one).
pub fn open_events(
    path: Option<&PathBuf>,
    source: Source,
    producer: &str,
) -> anyhow::Result<(Option<EventLog>, EventSink)> {
    match path {
        Some(path) => {
            let (log, sink) = EventLog::create(path, source, producer, env!("CARGO_PKG_VERSION"))
                .with_context(|| format!("--events {}", path.display()))?;
            Ok((Some(log), sink))
        }
        None => Ok((None, EventSink::disabled(source))),
    }
}

/// Writes out and closes the events file, reporting a damaged one as an error.
pub fn finish_events(log: Option<EventLog>) -> anyhow::Result<()> {
    if let Some(log) = log {
        let path = log.path().to_path_buf();
        log.finish()
            .with_context(|| format!("finishing events file {}", path.display()))?;
    }
    Ok(())
}

/// Resolves on Ctrl-C, SIGTERM, or after `duration` if one is given.
pub async fn shutdown_signal(duration: Option<Duration>) {
    let timer = async {
        match duration {
            Some(d) => tokio::time::sleep(d).await,
            None => std::future::pending().await,
        }
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate => {}
        _ = timer => {}
    }
}
