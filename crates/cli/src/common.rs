//! Glue every long-running subcommand shares: the events file and the stop signal.

use anyhow::Context;
use linecut_events::{EventLog, EventSink, Source};
use std::future::Future;
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

/// Registers the handlers for Ctrl-C (SIGINT), SIGTERM, SIGHUP (the terminal closed) and SIGQUIT
/// (Ctrl-\\) at once, and returns a future that resolves on any of them, when stderr turns out
/// to be a closed pipe ([`linecut_runner::output_closed`]), or after `duration` if one is given. Call it inside the runtime and
/// before anything is started: a signal that arrives before its handler exists kills linecut
/// outright, with no chance to stop what it started or to close the run directory.
pub fn shutdown_signal(duration: Option<Duration>) -> impl Future<Output = ()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut interrupt = signal(SignalKind::interrupt()).ok();
    let mut terminate = signal(SignalKind::terminate()).ok();
    // A closed terminal must end a run as Ctrl-C does: SIGHUP's default action would kill
    // linecut outright and leave a namespace run's network, its cut rules and a `running`
    // meta.json behind (the reliability review's D2).
    let mut hangup = signal(SignalKind::hangup()).ok();
    // SIGQUIT's default would also dump core and leave all of that behind.
    let mut quit = signal(SignalKind::quit()).ok();
    async move {
        let timer = async {
            match duration {
                Some(d) => tokio::time::sleep(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = received(interrupt.as_mut()) => {}
            _ = received(terminate.as_mut()) => {}
            _ = received(hangup.as_mut()) => {}
            _ = received(quit.as_mut()) => {}
            _ = linecut_runner::output_closed() => {}
            _ = timer => {}
        }
    }
}

/// Resolves when `signal` arrives; never, if its handler could not be registered.
async fn received(signal: Option<&mut tokio::signal::unix::Signal>) {
    match signal {
        Some(s) => {
            s.recv().await;
        }
        None => std::future::pending().await,
    }
}
