//! What the proxy logs about the bytes it forwards: MQTT packets as `mqtt_packet` events, and how
//! much of that to log on a busy connection.
//!
//! Logging every packet is what experiments want (a few messages a second), but a flood of small
//! PUBLISHes would make the event writer the bottleneck of the proxy. So the level is chosen per
//! proxy ([`WireLog`]) and, at the default level, PUBLISH-flow packets (PUBLISH, PUBACK, PUBREC,
//! PUBREL, PUBCOMP) are logged one by one only up to a rate per connection and direction; beyond it
//! they are counted and reported as `publish_suppressed` once a second, so nothing goes unaccounted.
//! Control packets (CONNECT, SUBSCRIBE, PINGREQ, DISCONNECT, …) are always logged individually:
//! they are rare and they are what outage analysis is made of.

use linecut_mqtt::PacketType;
use std::time::{Duration, Instant};

/// How much of the wire the proxy logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireLog {
    /// Every packet; PUBLISH-flow packets up to `publish_limit` per second per direction
    /// (0 = no limit).
    All { publish_limit: u32 },
    /// Control packets only; PUBLISH-flow packets are only counted.
    Control,
    /// No packet events (connection and fault events are still written).
    Off,
}

impl Default for WireLog {
    fn default() -> Self {
        WireLog::All {
            publish_limit: DEFAULT_PUBLISH_LIMIT,
        }
    }
}

/// Default per-second budget of individually logged PUBLISH-flow packets per direction.
pub const DEFAULT_PUBLISH_LIMIT: u32 = 1000;

pub use linecut_capture::describe;

/// Decides, per direction, whether a PUBLISH-flow packet is logged individually.
#[derive(Debug)]
pub struct PublishBudget {
    level: WireLog,
    window_start: Instant,
    logged_in_window: u32,
    last_report: Instant,
    /// Packets and bytes not logged individually since the last report.
    pub suppressed: u64,
    pub suppressed_bytes: u64,
}

impl PublishBudget {
    /// A budget whose first one-second window starts at `now`.
    pub fn new(level: WireLog, now: Instant) -> Self {
        PublishBudget {
            level,
            window_start: now,
            logged_in_window: 0,
            last_report: now,
            suppressed: 0,
            suppressed_bytes: 0,
        }
    }

    /// Whether a packet of this type should be turned into an event at all.
    pub fn wants(&mut self, packet_type: PacketType, len: usize, now: Instant) -> bool {
        let publish_limit = match self.level {
            WireLog::Off => return false,
            WireLog::Control if packet_type.is_publish_flow() => 0,
            WireLog::Control => return true,
            WireLog::All { .. } if !packet_type.is_publish_flow() => return true,
            WireLog::All { publish_limit: 0 } => return true,
            WireLog::All { publish_limit } => publish_limit,
        };
        if now.duration_since(self.window_start) >= Duration::from_secs(1) {
            self.window_start = now;
            self.logged_in_window = 0;
        }
        if self.logged_in_window < publish_limit {
            self.logged_in_window += 1;
            true
        } else {
            self.suppressed += 1;
            self.suppressed_bytes += len as u64;
            false
        }
    }

    /// Takes the suppressed counts if a report is due (a second after the last one, or `force`
    /// when the direction ends).
    pub fn take_report(&mut self, now: Instant, force: bool) -> Option<(u64, u64)> {
        if self.suppressed == 0 {
            return None;
        }
        if !force && now.duration_since(self.last_report) < Duration::from_secs(1) {
            return None;
        }
        self.last_report = now;
        let report = (self.suppressed, self.suppressed_bytes);
        self.suppressed = 0;
        self.suppressed_bytes = 0;
        Some(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_packets_are_always_logged_and_publishes_only_within_budget() {
        let now = Instant::now();
        let mut budget = PublishBudget::new(WireLog::All { publish_limit: 2 }, now);
        assert!(budget.wants(PacketType::Publish, 10, now));
        assert!(budget.wants(PacketType::PubAck, 4, now));
        assert!(!budget.wants(PacketType::Publish, 10, now));
        assert!(
            budget.wants(PacketType::PingReq, 2, now),
            "control packets bypass the budget"
        );
        assert_eq!(budget.take_report(now, true), Some((1, 10)));
        let later = now + Duration::from_secs(1);
        assert!(
            budget.wants(PacketType::Publish, 10, later),
            "a new window has a new budget"
        );
    }

    #[test]
    fn control_level_counts_every_publish_and_off_logs_nothing() {
        let now = Instant::now();
        let mut control = PublishBudget::new(WireLog::Control, now);
        assert!(!control.wants(PacketType::Publish, 7, now));
        assert!(control.wants(PacketType::Connect, 20, now));
        assert_eq!(control.take_report(now, true), Some((1, 7)));
        let mut off = PublishBudget::new(WireLog::Off, now);
        assert!(!off.wants(PacketType::Connect, 20, now));
        assert_eq!(off.take_report(now, true), None);
    }
}
