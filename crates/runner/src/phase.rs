//! The faults' phase for one run: each fault with a `start_jitter` gets an offset drawn from the
//! run's seed, added to its `at` before the schedule reaches the proxy, and recorded in
//! `meta.json` so the run says exactly where its faults fell and can be replayed.

use linecut_model::phase::{FaultPhase, PhaseRecord, PhaseRng};
use linecut_proxy::FaultSpec;
use linecut_scenario::{LinkFaultSpec, Scenario};
use std::time::Duration;

/// A seed when the scenario gives none: different on every run, and below 2^53 so `meta.json`
/// and a scenario's `seed = …` hold it exactly.
/// A seed for a run whose scenario gives none (recorded, so `seed` replays it).
pub(crate) fn fresh_seed() -> u64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    PhaseRng::new(now ^ u64::from(std::process::id()).rotate_left(32)).next_u64() >> 11
}

/// The schedule to play — the proxy's faults or, in namespace mode, the link faults — and
/// what was drawn for it (None when no fault has a jitter).
pub fn draw(scenario: &Scenario) -> (Vec<FaultSpec>, Vec<LinkFaultSpec>, Option<PhaseRecord>) {
    let mut faults = scenario.faults.clone();
    let mut links = scenario.link_faults.clone();
    if scenario.fault_jitter.iter().all(Option::is_none) {
        return (faults, links, None);
    }
    let seed = scenario.seed.unwrap_or_else(fresh_seed);
    let mut rng = PhaseRng::new(seed);
    let keepalive = scenario.subscriber.settings.keepalive_s;
    let mut record = PhaseRecord {
        seed,
        faults: Vec::new(),
    };
    // One list or the other holds the faults, in scenario order, as `fault_jitter` does.
    let starts: Vec<&mut Duration> = faults
        .iter_mut()
        .map(|f| &mut f.schedule.at)
        .chain(links.iter_mut().map(|l| &mut l.schedule.at))
        .collect();
    for (i, (at, jitter)) in starts.into_iter().zip(&scenario.fault_jitter).enumerate() {
        let Some(jitter) = jitter else { continue };
        let span = jitter.span(keepalive);
        let offset = rng.offset(span);
        record.faults.push(FaultPhase {
            fault: i + 1,
            planned_at_s: at.as_secs_f64(),
            jitter: jitter.to_string(),
            span_s: span.as_secs_f64(),
            offset_s: offset.as_secs_f64(),
        });
        *at += offset;
    }
    (faults, links, Some(record))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    const TEXT: &str = r#"
duration = "30s"
[subscriber]
keepalive = "2s"
[[fault]]
kind = "cut"
at = "5s"
for = "3s"
start_jitter = "K"
[[fault]]
kind = "cut"
at = "20s"
for = "1s"
"#;

    #[test]
    fn a_seed_gives_the_same_phase_and_only_jittered_faults_move() {
        let mut s = linecut_scenario::parse(Path::new("p.toml"), TEXT).unwrap();
        s.seed = Some(42);
        let (a, _, record) = draw(&s);
        let (b, _, _) = draw(&s);
        let record = record.unwrap();
        assert_eq!(record.seed, 42);
        assert_eq!(record.faults.len(), 1);
        assert_eq!(a[0].schedule.at, b[0].schedule.at);
        let offset = a[0].schedule.at - s.faults[0].schedule.at;
        assert!(offset.as_secs_f64() < 2.0);
        assert_eq!(offset.as_secs_f64(), record.faults[0].offset_s);
        assert_eq!(record.faults[0].span_s, 2.0);
        assert_eq!(
            a[1].schedule.at, s.faults[1].schedule.at,
            "a fault without jitter stays put"
        );
        s.seed = Some(43);
        assert_ne!(draw(&s).0[0].schedule.at, a[0].schedule.at);
        s.seed = None;
        assert!(draw(&s).2.unwrap().seed < 1 << 53);
    }
}
