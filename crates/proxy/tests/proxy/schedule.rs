//! The schedule: steps fire on time, repeat as asked, and report their lateness.

use crate::util::*;
use linecut_events::EventKind;
use linecut_proxy::Status;

/// Steps fire on time within a scheduling tolerance. The sub-millisecond goal is a performance
/// figure and lives in the benchmark (`cargo bench -p linecut-proxy`); a test on a loaded 2-core
/// CI machine can only promise that the step was not meaningfully late and that its lateness is
/// reported truthfully.
const TOLERANCE_US: u64 = 25_000;

#[tokio::test]
async fn scheduled_steps_fire_on_time_and_report_their_lateness() {
    let rig = Rig::with_faults(&["cut:at=300ms,for=200ms"]).await;
    eventually(|| rig.handle.faults()[0].status == Status::Finished).await;
    let events = rig.stop().await;
    let started = events.iter().find_map(|e| match &e.kind {
        EventKind::FaultStarted(f) => Some((e.ts_us, f.clone())),
        _ => None,
    });
    let ended = events.iter().find_map(|e| match &e.kind {
        EventKind::FaultEnded(f) => Some((e.ts_us, f.clone())),
        _ => None,
    });
    let ((start_ts, start), (end_ts, end)) = (started.unwrap(), ended.unwrap());
    assert_eq!(start.scheduled_us, Some(300_000));
    assert_eq!(end.scheduled_us, Some(500_000));
    assert!(start.lateness_us.unwrap() < TOLERANCE_US, "{start:?}");
    assert!(end.lateness_us.unwrap() < TOLERANCE_US, "{end:?}");
    // The logged window agrees with the schedule and the reported lateness.
    let window = end_ts - start_ts;
    let expected = 200_000 + end.lateness_us.unwrap() as i64 - start.lateness_us.unwrap() as i64;
    assert!(
        (window - expected).abs() < 10_000,
        "window {window} µs, expected {expected} µs"
    );
}

#[tokio::test]
async fn repeating_faults_start_count_times_then_finish() {
    let rig = Rig::with_faults(&["cut:at=50ms,for=20ms,every=100ms,count=3"]).await;
    eventually(|| rig.handle.faults()[0].status == Status::Finished).await;
    assert_eq!(rig.handle.faults()[0].occurrences, 3);
    let events = rig.stop().await;
    let starts: Vec<u64> = events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::FaultStarted(f) => f.scheduled_us,
            _ => None,
        })
        .collect();
    assert_eq!(starts, vec![50_000, 150_000, 250_000]);
    let ends = events
        .iter()
        .filter(|e| matches!(e.kind, EventKind::FaultEnded(_)))
        .count();
    assert_eq!(ends, 3);
}

#[tokio::test]
async fn removing_a_fault_ends_it_and_cancels_later_occurrences() {
    let rig = Rig::start().await;
    let id = rig.fault("cut:for=50ms,every=100ms").await;
    rig.end_fault(id).await;
    assert_eq!(rig.handle.faults()[0].status, Status::Removed);
    let occurrences = rig.handle.faults()[0].occurrences;
    assert_silent_for_occurrences(&rig, occurrences).await;
    rig.stop().await;
}

async fn assert_silent_for_occurrences(rig: &Rig, occurrences: u32) {
    // Two more periods pass without a new occurrence.
    tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    assert_eq!(rig.handle.faults()[0].occurrences, occurrences);
}
