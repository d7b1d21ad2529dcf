//! What a run shows while it runs: a live status line on a terminal, plain log lines otherwise
//! (CI logs should read as a story, not as a thousand redrawn frames).

use crate::RunStatus;
use indicatif::{ProgressBar, ProgressStyle};
use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// Set once a line to stderr could not be written (a closed pipe: `linecut run … 2>&1 | head`).
static OUTPUT_CLOSED: AtomicBool = AtomicBool::new(false);

fn output_closed_notify() -> &'static Notify {
    static NOTIFY: OnceLock<Notify> = OnceLock::new();
    NOTIFY.get_or_init(Notify::new)
}

/// Writes one `linecut: …` line to stderr. A failed write does not panic, as `eprintln!` would
/// (a panic would skip the clean-up of a namespace run); it is remembered, and
/// [`output_closed`] resolves, so the run stops as it does on Ctrl-C: whoever closed the pipe
/// is gone, and a run nobody watches should not go on holding namespaces and rules.
pub fn say(line: std::fmt::Arguments<'_>) {
    let mut err = std::io::stderr().lock();
    if writeln!(err, "linecut: {line}").is_err() && !OUTPUT_CLOSED.swap(true, Ordering::SeqCst) {
        output_closed_notify().notify_waiters();
    }
}

/// Resolves once a write to stderr has failed (at once if one already has).
pub async fn output_closed() {
    let notify = output_closed_notify();
    loop {
        let notified = notify.notified();
        if OUTPUT_CLOSED.load(Ordering::SeqCst) {
            return;
        }
        notified.await;
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DisplayMode {
    /// A live line on a terminal, plain lines otherwise.
    Auto,
    /// Plain lines: phase changes, and a status line every few seconds.
    Plain,
    /// Nothing but the final verdict.
    Quiet,
}

pub(crate) struct Reporter {
    bar: Option<ProgressBar>,
    plain: bool,
    total: Duration,
    last_plain: Option<Instant>,
    last_status: String,
}

impl Reporter {
    pub fn new(mode: DisplayMode, total: Duration) -> Reporter {
        let live = mode == DisplayMode::Auto && std::io::stderr().is_terminal();
        let bar = live.then(|| {
            let bar = ProgressBar::new(total.as_millis() as u64);
            bar.set_style(
                ProgressStyle::with_template("{spinner} {wide_msg} [{bar:20}]")
                    .expect("valid template"),
            );
            bar.enable_steady_tick(Duration::from_millis(100));
            bar
        });
        Reporter {
            bar,
            plain: mode != DisplayMode::Quiet && !live,
            total,
            last_plain: None,
            last_status: String::new(),
        }
    }

    pub fn phase(&mut self, phase: &str) {
        match &self.bar {
            Some(bar) => bar.set_message(phase.to_string()),
            None if self.plain => say(format_args!("{phase}")),
            None => {}
        }
    }

    pub fn tick(
        &mut self,
        elapsed: Duration,
        faults: &[&str],
        connected: u32,
        of: u32,
        messages: u64,
    ) {
        let fault = if faults.is_empty() {
            "no fault".to_string()
        } else {
            format!("fault: {}", faults.join(", "))
        };
        let status = format!(
            "running {:.1}s/{:.0}s | {fault} | connected {connected}/{of} | {messages} messages",
            elapsed.as_secs_f64(),
            self.total.as_secs_f64()
        );
        if let Some(bar) = &self.bar {
            bar.set_position(elapsed.as_millis() as u64);
            bar.set_message(status);
            return;
        }
        if !self.plain {
            return;
        }
        // Plain mode: every 5 s, and whenever the fault or connection state changes.
        let state = format!("{fault} {connected}");
        let due = self
            .last_plain
            .is_none_or(|t| t.elapsed() >= Duration::from_secs(5));
        if due || state != self.last_status {
            say(format_args!("{status}"));
            self.last_plain = Some(Instant::now());
            self.last_status = state;
        }
    }

    pub fn finish(&mut self, status: &RunStatus) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        if let RunStatus::Incomplete(reason) = status {
            say(format_args!("run incomplete: {reason}"));
        }
    }
}
