//! What a weak link does to each frame, as a pure function of the frame's arrival, the
//! impairments active on its direction and a seeded generator: no I/O, so every decision is
//! tested here and a run replays from its seed. [`crate::wire`] moves the frames.
//!
//! Order of the stages, as netem applies them: loss (Gilbert-Elliott state first), then
//! corruption, then duplication (the copy goes through the rest on its own), then the delay
//! (jitter drawn, correlated with the previous draw) unless the frame is one `reorder` sends at
//! once, then the rate (a frame leaves when the link has finished sending the one before it).
//! A delayed frame never leaves before one that arrived earlier and was delayed too: a link is
//! a queue, so jitter alone does not reorder; only `reorder` does.

use linecut_model::impairment::{BurstLoss, DelayDistribution, Latency};
use linecut_model::phase::PhaseRng;
use linecut_model::LinkKind;
use std::time::Duration;

/// The impairments active on one direction of one member, from its active link faults.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Impairments {
    pub latency: Option<Latency>,
    /// Bytes per second.
    pub rate: Option<u64>,
    pub burst_loss: Option<BurstLoss>,
    pub duplicate: f64,
    pub corrupt: f64,
}

impl Impairments {
    /// The impairments of `active` (other kinds are rules, not the wire's); the last of each
    /// kind wins.
    pub fn of(active: &[LinkKind]) -> Impairments {
        let mut out = Impairments::default();
        for kind in active {
            match *kind {
                LinkKind::Latency(l) => out.latency = Some(l),
                LinkKind::Bandwidth { rate } => out.rate = Some(rate),
                LinkKind::BurstLoss(b) => out.burst_loss = Some(b),
                LinkKind::Duplicate { probability } => out.duplicate = probability,
                LinkKind::Corrupt { probability } => out.corrupt = probability,
                _ => {}
            }
        }
        out
    }

    pub fn is_none(&self) -> bool {
        *self == Impairments::default()
    }
}

/// What became of a frame.
#[derive(Debug, Clone, PartialEq)]
pub enum Fate {
    Lost,
    /// Sent `after` its arrival (a copy for a duplicate); `flip` is the bit to flip, counted
    /// from the frame's start, when it is corrupted.
    Sent {
        after: Duration,
        flip: Option<usize>,
    },
}

/// One direction's state: the generator, the Gilbert-Elliott state, the previous jitter draw
/// and when the queue and the link are free, all on the lane's own clock (nanoseconds from
/// its first frame).
#[derive(Debug, Clone)]
pub struct Lane {
    rng: PhaseRng,
    bad: bool,
    last_draw: f64,
    /// When the last delayed frame leaves: the next delayed one does not leave before.
    queue_free_ns: u64,
    /// When the link has sent its last frame, at the rate.
    link_free_ns: u64,
    /// A second draw of the normal distribution, kept from the last pair (Box-Muller makes two).
    spare_normal: Option<f64>,
}

/// Link, IP header: corruption spares the first 14 bytes (the Ethernet header, which a real
/// link's CRC would have thrown out whole) so the receiving kernel sees a bad checksum.
const LINK_HEADER: usize = 14;

impl Lane {
    pub fn new(seed: u64) -> Lane {
        Lane {
            rng: PhaseRng::new(seed),
            bad: false,
            last_draw: 0.0,
            queue_free_ns: 0,
            link_free_ns: 0,
            spare_normal: None,
        }
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && self.unit() < p
    }

    /// A draw of mean 0 and deviation 1 (uniform: over ±1).
    fn draw(&mut self, d: DelayDistribution) -> f64 {
        match d {
            DelayDistribution::Uniform => self.unit() * 2.0 - 1.0,
            DelayDistribution::Normal => {
                if let Some(z) = self.spare_normal.take() {
                    return z;
                }
                // Box-Muller: two independent normals from two uniforms.
                let u1 = 1.0 - self.unit();
                let u2 = self.unit();
                let radius = (-2.0 * u1.ln()).sqrt();
                let angle = 2.0 * std::f64::consts::PI * u2;
                self.spare_normal = Some(radius * angle.sin());
                radius * angle.cos()
            }
            DelayDistribution::Pareto => {
                // Shape 3, scale 1: mean 1.5, deviation √3/2; standardised.
                let x = (1.0 - self.unit()).powf(-1.0 / 3.0);
                (x - 1.5) / (3f64.sqrt() / 2.0)
            }
        }
    }

    /// The fates of a frame of `len` bytes arriving at `now_ns`: nothing (lost), one, or two
    /// (a duplicate).
    pub fn frame(&mut self, imp: &Impairments, now_ns: u64, len: usize) -> Vec<Fate> {
        if let Some(ge) = imp.burst_loss {
            // The state moves first, then the frame is judged in the new state.
            self.bad = if self.bad {
                !self.chance(ge.r)
            } else {
                self.chance(ge.p)
            };
            let loss = if self.bad { ge.loss_bad } else { ge.loss_good };
            if self.chance(loss) {
                return vec![Fate::Lost];
            }
        }
        let flip = (self.chance(imp.corrupt) && len > LINK_HEADER).then(|| {
            let bits = (len - LINK_HEADER) * 8;
            LINK_HEADER * 8 + (self.rng.next_u64() % bits as u64) as usize
        });
        let copies = if self.chance(imp.duplicate) { 2 } else { 1 };
        (0..copies)
            .map(|_| Fate::Sent {
                after: self.delay(imp, now_ns, len),
                flip,
            })
            .collect()
    }

    /// When a frame arriving at `now_ns` leaves, after the delay and the rate.
    fn delay(&mut self, imp: &Impairments, now_ns: u64, len: usize) -> Duration {
        let mut leave = now_ns;
        if let Some(l) = imp.latency {
            if !self.chance(l.reorder) {
                let fresh = self.draw(l.distribution);
                let draw = l.correlation * self.last_draw + (1.0 - l.correlation) * fresh;
                self.last_draw = draw;
                let jitter = l.jitter.as_nanos() as f64 * draw;
                let delay = (l.delay.as_nanos() as f64 + jitter).max(0.0) as u64;
                // A queue: not before the frame delayed ahead of it.
                leave = (now_ns + delay).max(self.queue_free_ns);
                self.queue_free_ns = leave;
            }
        }
        if let Some(rate) = imp.rate {
            let start = leave.max(self.link_free_ns);
            let send = (len as u128 * 1_000_000_000 / u128::from(rate.max(1))) as u64;
            self.link_free_ns = start + send;
            leave = start + send;
        }
        Duration::from_nanos(leave - now_ns)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn latency(delay_ms: u64, jitter_ms: u64, distribution: DelayDistribution) -> Impairments {
        Impairments {
            latency: Some(Latency {
                delay: Duration::from_millis(delay_ms),
                jitter: Duration::from_millis(jitter_ms),
                distribution,
                correlation: 0.0,
                reorder: 0.0,
            }),
            ..Impairments::default()
        }
    }

    fn sent(fates: &[Fate]) -> Vec<Duration> {
        fates
            .iter()
            .filter_map(|f| match f {
                Fate::Sent { after, .. } => Some(*after),
                Fate::Lost => None,
            })
            .collect()
    }

    #[test]
    fn gilbert_elliott_bursts_have_the_models_mean_length_and_rate() {
        let imp = Impairments {
            burst_loss: Some(BurstLoss {
                p: 0.02,
                r: 0.25,
                loss_bad: 1.0,
                loss_good: 0.0,
            }),
            ..Impairments::default()
        };
        let mut lane = Lane::new(7);
        let lost: Vec<bool> = (0..1_000_000)
            .map(|n| lane.frame(&imp, n * 1000, 100) == vec![Fate::Lost])
            .collect();
        let mut bursts = Vec::new();
        let mut run = 0;
        for l in &lost {
            if *l {
                run += 1;
            } else if run > 0 {
                bursts.push(run);
                run = 0;
            }
        }
        let mean = bursts.iter().sum::<u32>() as f64 / bursts.len() as f64;
        let rate = lost.iter().filter(|l| **l).count() as f64 / lost.len() as f64;
        // ~74,000 bursts of geometric length (deviation √(1−r)/r ≈ 3.5): the mean is within
        // 0.05 of 4 with a margin of four standard errors; the rate p/(p+r) = 0.0741 within
        // 0.003 likewise.
        assert!((mean - 4.0).abs() < 0.05, "mean burst {mean}");
        assert!((rate - 0.02 / 0.27).abs() < 0.003, "loss rate {rate}");
    }

    #[test]
    fn delays_follow_their_distribution_and_never_reorder_without_reorder() {
        for (d, low, high) in [
            (DelayDistribution::Uniform, 10.0, 30.0),
            (DelayDistribution::Normal, 0.0, 1e9),
            (DelayDistribution::Pareto, 20.0 - 10.0 / 3f64.sqrt(), 1e9),
        ] {
            let imp = latency(20, 10, d);
            let mut lane = Lane::new(3);
            // Frames 10 ms apart: more than the jitter's reach below, so the queue rarely holds.
            let mut delays = Vec::new();
            let mut last_leave = 0u64;
            for n in 0..20_000u64 {
                let now = n * 100_000_000;
                let after = sent(&lane.frame(&imp, now, 100))[0];
                let leave = now + after.as_nanos() as u64;
                assert!(leave >= last_leave, "{d:?} reordered");
                last_leave = leave;
                delays.push(after.as_secs_f64() * 1e3);
            }
            let mean = delays.iter().sum::<f64>() / delays.len() as f64;
            let sd = (delays.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / delays.len() as f64)
                .sqrt();
            assert!(
                delays.iter().all(|x| *x >= low - 1e-6 && *x <= high),
                "{d:?}"
            );
            assert!((mean - 20.0).abs() < 0.3, "{d:?} mean {mean}");
            if d == DelayDistribution::Pareto {
                // A sample deviation of a shape-3 Pareto converges too slowly to test (its
                // fourth moment is infinite); its median is 20 + 10 × (2^(1/3) − 1.5)/(√3/2).
                delays.sort_by(f64::total_cmp);
                let median = delays[delays.len() / 2];
                let want = 20.0 + 10.0 * (2f64.powf(1.0 / 3.0) - 1.5) / (3f64.sqrt() / 2.0);
                assert!((median - want).abs() < 0.2, "pareto median {median}");
            } else {
                // Uniform over ±10: deviation 10/√3; normal: 10.
                let want = if d == DelayDistribution::Uniform {
                    10.0 / 3f64.sqrt()
                } else {
                    10.0
                };
                assert!((sd - want).abs() < 0.3, "{d:?} deviation {sd}");
            }
        }
    }

    #[test]
    fn reorder_sends_some_frames_at_once_past_the_delayed_ones() {
        let mut imp = latency(50, 0, DelayDistribution::Uniform);
        if let Some(l) = imp.latency.as_mut() {
            l.reorder = 0.25;
        }
        let mut lane = Lane::new(11);
        let afters: Vec<Duration> = (0..10_000u64)
            .flat_map(|n| sent(&lane.frame(&imp, n * 1_000_000, 100)))
            .collect();
        let at_once = afters.iter().filter(|a| a.is_zero()).count() as f64 / 10_000.0;
        assert!((at_once - 0.25).abs() < 0.02, "{at_once}");
    }

    #[test]
    fn duplicates_corruption_and_rate_do_what_they_say() {
        let imp = Impairments {
            duplicate: 0.1,
            corrupt: 0.1,
            ..Impairments::default()
        };
        let mut lane = Lane::new(5);
        let mut copies = 0;
        let mut flipped = 0;
        for n in 0..100_000u64 {
            let fates = lane.frame(&imp, n, 100);
            copies += fates.len();
            for f in &fates {
                if let Fate::Sent {
                    flip: Some(bit), ..
                } = f
                {
                    assert!((14 * 8..100 * 8).contains(bit));
                    flipped += 1;
                }
            }
        }
        assert!((copies as f64 / 100_000.0 - 1.1).abs() < 0.01, "{copies}");
        assert!(
            (flipped as f64 / copies as f64 - 0.1).abs() < 0.01,
            "{flipped}"
        );
        // 1000 bytes a second: ten 100-byte frames arriving together leave 0.1 s apart.
        let thin = Impairments {
            rate: Some(1000),
            ..Impairments::default()
        };
        let mut lane = Lane::new(1);
        let afters: Vec<Duration> = (0..10)
            .flat_map(|_| sent(&lane.frame(&thin, 0, 100)))
            .collect();
        assert_eq!(afters[0], Duration::from_millis(100));
        assert_eq!(afters[9], Duration::from_secs(1));
    }

    #[test]
    fn a_seed_replays() {
        let imp = Impairments {
            duplicate: 0.3,
            ..latency(20, 10, DelayDistribution::Normal)
        };
        let run = |seed| {
            let mut lane = Lane::new(seed);
            (0..1000u64)
                .flat_map(|n| lane.frame(&imp, n * 1_000_000, 60))
                .collect::<Vec<_>>()
        };
        assert_eq!(run(9), run(9));
        assert_ne!(run(9), run(10));
    }
}
