//! linecut's wire against the real kernel: a wired member's frames cross linecut (an AF_PACKET
//! socket on the pair's host end, a TAP on the bridge) through the impairments, and the capture
//! on the pair's host end shows them: what the device sent before the link, what reached it
//! after. Needs root.
//!
//! The probe is a UDP echo: the device sends a numbered datagram every few milliseconds, the
//! host echoes it. In the capture a request is stamped before the wire (up, as the device sent
//! it) and its echo after the wire (down, as the device received it), so the echo's lateness
//! is the down direction's delay plus the host's echo (tens of microseconds): the tolerances
//! below add 1 ms for that and the capture's stamping.

#[path = "support/echo.rs"]
mod echo;

use echo::{echo, exchanges, rig};
use linecut_model::impairment::{BurstLoss, DelayDistribution, Latency};
use linecut_netns::impair::Impairments;
use linecut_testkit::root;
use std::time::Duration;

fn latency(delay_ms: u64, jitter_ms: u64, reorder: f64) -> Latency {
    Latency {
        delay: Duration::from_millis(delay_ms),
        jitter: Duration::from_millis(jitter_ms),
        distribution: DelayDistribution::Uniform,
        correlation: 0.0,
        reorder,
    }
}

/// 20 ms ± 5 ms (uniform) down: the echoes' lateness spreads evenly over 15–25 ms. Frames
/// 12 ms apart, more than the jitter's reach, so none waits behind another.
#[test]
fn delay_and_jitter_on_the_wire_follow_their_distribution() {
    if !root() {
        eprintln!("skipped: needs root");
        return;
    }
    let r = rig("delay", Some(1));
    let down = Impairments {
        latency: Some(latency(20, 5, 0.0)),
        ..Impairments::default()
    };
    r.wire().set(0, Impairments::default(), down);
    echo(&r, 300, Duration::from_millis(12));
    let (device, pcap) = r.finish();
    let mut late: Vec<f64> = exchanges(&pcap, device)
        .values()
        .filter_map(|(sent, echoes)| Some((echoes.first()? - (*sent)?) as f64 / 1e3))
        .collect();
    assert!(late.len() >= 295, "{} of 300 echoes", late.len());
    late.sort_by(f64::total_cmp);
    let q = |p: f64| late[((late.len() - 1) as f64 * p).round() as usize];
    // Evenly over 15..25 ms plus the echo: deciles 1 ms apart. With 300 draws a decile's
    // standard error is about 0.17 ms; 0.7 ms is four of them.
    // Never early. Late past the range only by the wire thread being scheduled late: on two
    // busy cores one frame in a few thousand waits 2–4 ms (the `wire` benchmark), so a handful
    // of 300 may, never more than 1 %.
    assert!(late[0] >= 15.0 - 0.1, "{late:?}");
    let past = late.iter().filter(|l| **l > 25.0 + 1.0).count();
    assert!(
        past * 100 <= late.len(),
        "{past} echoes past 26 ms: {late:?}"
    );
    for (p, want) in [(0.1, 16.0), (0.5, 20.0), (0.9, 24.0)] {
        assert!((q(p) - want).abs() < 0.7, "p{p}: {} ms", q(p));
    }
}

/// Gilbert-Elliott loss up (p 0.05, r 0.25): bursts of lost requests of 1/r = 4 frames on
/// average; duplicates down show as two echoes of one request.
#[test]
fn burst_loss_and_duplicates_on_the_wire() {
    if !root() {
        eprintln!("skipped: needs root");
        return;
    }
    let r = rig("bursts", Some(2));
    let up = Impairments {
        burst_loss: Some(BurstLoss {
            p: 0.05,
            r: 0.25,
            loss_bad: 1.0,
            loss_good: 0.0,
        }),
        ..Impairments::default()
    };
    let down = Impairments {
        duplicate: 0.1,
        ..Impairments::default()
    };
    r.wire().set(0, up, down);
    echo(&r, 3000, Duration::from_millis(1));
    let (device, pcap) = r.finish();
    let seen = exchanges(&pcap, device);
    let mut bursts = Vec::new();
    let mut run = 0;
    for n in 0..3000u32 {
        // Every request is in the capture (taken before the wire); a lost one has no echo.
        let (sent, echoes) = seen.get(&n).cloned().unwrap_or_default();
        assert!(sent.is_some(), "request {n} not captured");
        if echoes.is_empty() {
            run += 1;
        } else if run > 0 {
            bursts.push(run);
            run = 0;
        }
    }
    let mean = bursts.iter().sum::<u32>() as f64 / bursts.len() as f64;
    // ~125 bursts of geometric length (deviation √(1−r)/r ≈ 3.5): standard error about 0.31;
    // 1.0 is three of them.
    assert!(
        (mean - 4.0).abs() < 1.0,
        "mean burst {mean} over {}",
        bursts.len()
    );
    let answered = seen.values().filter(|(_, e)| !e.is_empty()).count() as f64;
    let doubled = seen.values().filter(|(_, e)| e.len() == 2).count() as f64;
    // 10 % of ~2,500 echoes: standard error 0.6 percentage points.
    assert!(
        (doubled / answered - 0.1).abs() < 0.03,
        "{doubled} of {answered}"
    );
}

/// `reorder` sends a share of frames at once past the delayed ones: echoes arrive out of
/// their requests' order.
#[test]
fn reorder_on_the_wire_overtakes_delayed_frames() {
    if !root() {
        eprintln!("skipped: needs root");
        return;
    }
    let r = rig("reorder", Some(3));
    let down = Impairments {
        latency: Some(latency(10, 0, 0.25)),
        ..Impairments::default()
    };
    r.wire().set(0, Impairments::default(), down);
    echo(&r, 500, Duration::from_millis(1));
    let (device, pcap) = r.finish();
    let mut order: Vec<(i64, u32)> = exchanges(&pcap, device)
        .into_iter()
        .filter_map(|(n, (_, e))| Some((*e.first()?, n)))
        .collect();
    order.sort();
    let overtaken = order.windows(2).filter(|w| w[1].1 < w[0].1).count();
    assert!(overtaken > 50, "{overtaken} echoes out of order");
}
