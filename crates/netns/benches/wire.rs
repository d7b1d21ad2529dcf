//! linecut's wire, measured on this machine (root): how precisely it keeps a delay at 1,000
//! frames a second, and what carrying frames through it costs against the bridge alone, in the
//! same run.
//!
//! A UDP echo from a member to the host, one datagram a millisecond for five seconds, three
//! ways: on the bridge (the path without the wire), on the wire with nothing to do, and on the
//! wire delaying every frame toward the device by 10 ms. Each echo's lateness is read from the
//! capture on the pair's host end (the request as the device sent it, the echo as it reached
//! the device), so what is measured is what a report would see. The delay's error is the
//! delayed echo's lateness minus 10 ms minus the pass-through median (the host's own echo).
//! Goal: within ±0.5 ms at p99.
//!
//! Run with `cargo bench -p linecut-netns --bench wire`.

#[path = "../tests/support/echo.rs"]
mod echo;

use echo::{echo, exchanges, rig};
use linecut_model::impairment::{DelayDistribution, Latency};
use linecut_netns::impair::Impairments;
use std::time::Duration;

const FRAMES: u32 = 5000;
const EVERY: Duration = Duration::from_millis(1);
const DELAY_MS: f64 = 10.0;

fn percentile(v: &mut [f64], q: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((q * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1]
}

/// Each echo's lateness in milliseconds, on the bridge (`None`) or the wire doing `down`.
fn lateness(name: &str, wire: Option<Impairments>) -> Vec<f64> {
    let r = rig(name, wire.map(|_| 1));
    if let Some(down) = wire {
        r.wire().set(0, Impairments::default(), down);
    }
    echo(&r, FRAMES, EVERY);
    let (device, pcap) = r.finish();
    exchanges(&pcap, device)
        .values()
        .filter_map(|(sent, echoes)| Some((echoes.first()? - (*sent)?) as f64 / 1e3))
        .collect()
}

fn main() {
    if !linecut_testkit::root() {
        eprintln!("needs root");
        return;
    }
    let mut bridge = lateness("bench-bridge", None);
    let mut through = lateness("bench-through", Some(Impairments::default()));
    let delayed = Impairments {
        latency: Some(Latency {
            delay: Duration::from_secs_f64(DELAY_MS / 1e3),
            jitter: Duration::ZERO,
            distribution: DelayDistribution::Uniform,
            correlation: 0.0,
            reorder: 0.0,
        }),
        ..Impairments::default()
    };
    let mut delay = lateness("bench-delay", Some(delayed));
    let base = percentile(&mut through.clone(), 0.5);
    let mut error: Vec<f64> = delay.iter().map(|l| (l - DELAY_MS - base) * 1e3).collect();
    let mut abs: Vec<f64> = error.iter().map(|e| e.abs()).collect();
    println!(
        "echo at 1,000 frames/s, {FRAMES} frames, lateness on the capture (ms): bridge p50 {:.3} p99 {:.3} | wire, nothing to do p50 {:.3} p99 {:.3} ({:.2}× the bridge's p50) | wire, 10 ms down p50 {:.3} p99 {:.3}",
        percentile(&mut bridge, 0.5),
        percentile(&mut bridge, 0.99),
        base,
        percentile(&mut through, 0.99),
        base / percentile(&mut bridge.clone(), 0.5),
        percentile(&mut delay, 0.5),
        percentile(&mut delay, 0.99),
    );
    println!(
        "delay error (µs, against 10 ms plus the pass-through median): p1 {:+.0} p50 {:+.0} p99 {:+.0} | |error| p99 {:.0} max {:.0} (goal: p99 within ±500)",
        percentile(&mut error, 0.01),
        percentile(&mut error, 0.5),
        percentile(&mut error, 0.99),
        percentile(&mut abs, 0.99),
        percentile(&mut abs, 1.0),
    );
}
