//! Fleet mode: many subscribers in one process, one connection each, one shared log.
//!
//! Watching a reconnect storm after an outage needs hundreds or thousands of clients; one process
//! and one runtime carry them cheaply (each is a task, not a thread), and every event names its
//! client so the analyzer can take them apart again.

use crate::options::SubscriberOptions;
use crate::subscriber::{run_subscriber, Progress, SubscriberStats};
use linecut_events::EventSink;
use std::sync::Arc;
use tokio::sync::watch;

/// Client ids for a fleet: one definition, in the model, for the agent, the runner and the
/// scenario checker (which matches fault targets against them).
pub use linecut_model::glob::fleet_ids;

/// Totals over a fleet.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FleetStats {
    pub clients: u32,
    pub messages: u64,
    pub foreign: u64,
    pub disconnects: u64,
}

/// Runs one subscriber per id until `stop` turns true. Options must be validated first.
pub async fn run_fleet(
    options: &SubscriberOptions,
    ids: Vec<String>,
    sink: &EventSink,
    stop: watch::Receiver<bool>,
    progress: Arc<Progress>,
) -> FleetStats {
    let mut tasks = tokio::task::JoinSet::new();
    for id in ids {
        let options = options.clone();
        let sink = sink.clone();
        let stop = stop.clone();
        let progress = progress.clone();
        tasks.spawn(async move {
            let session = crate::subscriber_session(&options, &id);
            run_subscriber(&options, &id, session, &sink, stop, &progress).await
        });
    }
    let mut stats = FleetStats::default();
    while let Some(done) = tasks.join_next().await {
        let s: SubscriberStats = done.unwrap_or_default();
        stats.clients += 1;
        stats.messages += s.messages;
        stats.foreign += s.foreign;
        stats.disconnects += u64::from(s.disconnects);
    }
    stats
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_follow_the_pattern() {
        assert_eq!(fleet_ids("s-{n}", 3), vec!["s-1", "s-2", "s-3"]);
        assert_eq!(fleet_ids("s", 2), vec!["s-1", "s-2"]);
        assert_eq!(fleet_ids("single", 1), vec!["single"]);
    }
}
