//! The report's types: everything `report.json` holds, serialised as it is written and read
//! back by the sweep. No analysis here; the questions are answered in their own modules.

use crate::capture::{CaptureCheck, CaptureInfo};
use crate::story::{DetectHow, Story};

use linecut_model::metric::Stat;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Where a detection (or its absence) stands against its band.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Inside,
    Outside,
    /// "never" for an outage shorter than the band's upper end: the phase decides.
    NotDecidable,
}

impl Verdict {
    pub fn words(self) -> &'static str {
        match self {
            Verdict::Inside => "inside",
            Verdict::Outside => "outside",
            Verdict::NotDecidable => "not decidable",
        }
    }
}

/// A detection time's expected band and the verdict on the measurement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Band {
    pub low_s: f64,
    pub high_s: f64,
    /// Added to both ends when judging a measured value.
    pub tolerance_s: f64,
    /// Where the tolerance comes from.
    pub tolerance: String,
    pub verdict: Verdict,
    /// The verdict's reason, in words.
    pub why: String,
    /// The rule the band comes from, in words.
    pub rule: String,
}

/// A story and the events that prove it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Told {
    pub story: Story,
    pub evidence: String,
    /// The capture's frames the evidence names, where it names any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub frames: Vec<crate::frames::CitedFrame>,
}

/// What became of the broker's data held for a connection the client had already left.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StaleData {
    /// PUBLISHes held for the connection during the outage.
    pub held_publishes: u64,
    /// Of those, written to the abandoned connection.
    pub delivered_publishes: u64,
    /// Of those, thrown away when the connection ended.
    pub discarded_publishes: u64,
    /// The broker's FIN reached the abandoned connection.
    pub fin_delivered: bool,
    /// When it did, from the outage end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fin_after_end_s: Option<f64>,
    /// The client's side answered the stale bytes with a reset.
    #[serde(default)]
    pub answered_by_rst: bool,
    /// When the broker's side reset the abandoned connection after the line returned, from
    /// the outage end: in a capture, the broker's kernel answering a segment (usually the
    /// client's retransmission) for a socket the broker had already closed. Not a FIN.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub broker_rst_after_end_s: Option<f64>,
    /// Bytes the client's kernel retransmitted on the abandoned connection after the line
    /// returned, up to the broker's reset (what the reset answered).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub client_resent_bytes: u64,
    /// The broker had closed its side (its FIN was among the held bytes).
    pub broker_fin_held: bool,
    /// Bytes the broker retransmitted that reached the abandoned connection (a capture of a
    /// real link shows them; whole PUBLISHes are counted above only at their first sending).
    #[serde(default)]
    pub resent_bytes: u64,
    /// When the first stale bytes arrived, from the outage end.
    pub first_after_end_s: f64,
    /// From the new connection's CONNACK to the first stale bytes (negative: before it).
    pub after_new_connack_s: Option<f64>,
    /// From the new connection's SUBACK to the first stale bytes (negative: before it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after_new_suback_s: Option<f64>,
    /// The capture's frames that show all this (a capture's wire only): the first stale
    /// arrival, the broker's FIN or RST, the client's retransmissions an RST answered, the
    /// client's RST.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub frames: Vec<crate::frames::CitedFrame>,
}

/// Retransmissions on a real link during an outage, by direction.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Retransmitted {
    /// Segments and bytes the client resent (its data, pings, FIN).
    pub up_segments: u64,
    pub up_bytes: u64,
    /// Segments and bytes the broker resent.
    pub down_segments: u64,
    pub down_bytes: u64,
    /// The client's connection attempts during the outage (one per new connection, whatever
    /// its SYN retries).
    pub connects_tried: u64,
    /// SYNs the client's kernel resent for those attempts.
    #[serde(default)]
    pub syn_retries: u64,
    /// The median time between one SYN and the next of the same attempt, seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub syn_spacing_s: Option<f64>,
    /// Neighbour requests (ARP, IPv6 solicitations) the client's address sent during the
    /// outage, and the resolutions they make (a kernel asks up to 3 times, 1 s apart, per
    /// resolution).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub neighbour_requests: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub resolutions: u64,
    /// Of those resolutions, the ones no answer reached: whatever waited on them (a connect's
    /// SYN, a retransmission) never left the device as TCP.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub unanswered_resolutions: u64,
    /// The median time from one resolution's first request to the next's, seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolution_spacing_s: Option<f64>,
    /// The frames counted above: every SYN and SYN retry, every neighbour request.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub frames: Vec<crate::frames::CitedFrame>,
}

/// A connection that ended outside every fault window and its settling time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UnexpectedDisconnect {
    pub client: String,
    pub ts_us: i64,
    /// Seconds from the experiment start.
    pub t_s: f64,
    /// `broker` or `client`: who ended it first.
    pub by: String,
    /// Why, as far as the events tell.
    pub cause: String,
    /// The events that show it.
    pub evidence: String,
    /// The weak-link fault that was on when it happened: the line never went down, so this is
    /// a false disconnect.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weak_link: Option<u64>,
}

/// What the subscriber asked of the broker, read off its CONNECT and SUBSCRIBE.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SessionFacts {
    pub clean_session: Option<bool>,
    pub subscribe_qos: Option<u8>,
    /// The MQTT protocol level of its CONNECT (3, 4 or 5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol_version: Option<u8>,
    /// MQTT 5: the Session Expiry Interval its CONNECT asked for, seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_expiry_s: Option<u32>,
    /// Set when its CONNECT left a will (absent: it left none, or no CONNECT was seen).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub will: Option<bool>,
    /// MQTT 5: its will's Will Delay Interval, seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub will_delay_s: Option<u32>,
}

/// Client minus wire, in milliseconds, from the unrounded times.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WireDifference {
    pub detect_ms: Option<f64>,
    pub reconnect_ms: Option<f64>,
    pub resubscribe_ms: Option<f64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WindowMetrics {
    pub client: String,
    /// An earlier fault on this subscriber was still on when this one began (nested in it, or
    /// overlapping it): that fault's window covers both, and measures what they did together;
    /// nothing in this one would be this fault's alone, so it holds no timings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inside_fault: Option<u64>,
    /// Later faults on this subscriber that began while this one was on: the timings here are
    /// their doing as much as this fault's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub overlapped_by: Vec<u64>,
    pub client_detect_s: Option<f64>,
    /// How the client's giving up was seen: its disconnect cause, or `socket_closed` /
    /// `new_connection` when only the wire showed it.
    pub client_detect_how: Option<DetectHow>,
    pub client_detect_band: Option<Band>,
    pub broker_detect_s: Option<f64>,
    /// `proxy` (the broker closed its leg) or `broker_log`.
    pub broker_detect_how: Option<DetectHow>,
    pub broker_detect_band: Option<Band>,
    /// When the will watcher received the client's will, from the outage start (runs whose
    /// subscribers leave a will).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub will_s: Option<f64>,
    /// The will's band (the broker's rule for dropping the client, plus its will delay) and
    /// the verdict, "no will" included.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub will_band: Option<Band>,
    /// The will came after the client was connected again: seconds after its CONNACK (at the
    /// takeover: within the same moment).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub will_after_connack_s: Option<f64>,
    pub reconnect_s: Option<f64>,
    pub resubscribe_s: Option<f64>,
    /// Attempts from giving up to the accepted CONNACK (the one that succeeded included).
    pub connect_attempts: u32,
    /// How the failed ones failed (a library's repeated report of one disconnect is one).
    pub attempt_failures: BTreeMap<String, u32>,
    /// When the successful attempt began, from the outage end (negative: during the outage).
    pub reconnect_attempt_started_s: Option<f64>,
    pub first_fresh_s: Option<f64>,
    pub session_present: Option<bool>,
    pub resubscribed: Option<bool>,
    /// False when the client printed nothing about its connection and the wire stood in for it.
    pub reported_by_client: bool,
    pub wire_detect_s: Option<f64>,
    /// What the wire's first sign was: the client's own close (FIN or RST), or only a new
    /// connection (then the client's close never reached the wire, and the wire has no
    /// give-up to set against the client's: no difference is given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wire_detect_how: Option<DetectHow>,
    pub wire_reconnect_s: Option<f64>,
    pub wire_resubscribe_s: Option<f64>,
    /// The client's view minus the wire's, from the unrounded times.
    pub client_minus_wire: WireDifference,
    /// False when the connection had already ended before the fault began (then nothing the
    /// fault did can be a detection).
    pub connected_at_start: bool,
    /// False when the broker's side of this window cannot be seen (an outage inferred from a
    /// one-sided capture): then no broker drop is "never", only not visible.
    #[serde(default = "visible")]
    pub broker_side_visible: bool,
    pub stale: Option<StaleData>,
    /// On a real link (namespace mode): the retransmissions each side made during the outage,
    /// from the capture.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retransmitted: Option<Retransmitted>,
    pub stories: Vec<Told>,
    /// Unrounded client-side times (detect, reconnect, resubscribe), for the comparison.
    #[serde(skip)]
    pub(crate) raw_us: [Option<i64>; 3],
}

fn visible() -> bool {
    true
}

impl WindowMetrics {
    /// True when the window's events told `story`.
    pub fn told(&self, story: Story) -> bool {
        self.stories.iter().any(|t| t.story == story)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WindowReport {
    pub fault: u64,
    pub kind: String,
    pub spec: String,
    pub outage_start_us: i64,
    pub outage_end_us: i64,
    pub subscribers: Vec<WindowMetrics>,
    /// Each timing's distribution across subscribers (those with a value), for fleets.
    pub distribution: BTreeMap<String, Distribution>,
}

/// min, p50, p90, p99 and max of one timing across a fleet, and how many had no value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Distribution {
    pub count: usize,
    pub missing: usize,
    pub min: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
}

impl Distribution {
    pub(crate) fn of(values: &[Option<f64>]) -> Option<Distribution> {
        let mut v: Vec<f64> = values.iter().flatten().copied().collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        // Nearest-rank percentiles: always a measured value, never an interpolation.
        let rank = |q: f64| v[((q * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1];
        Some(Distribution {
            count: v.len(),
            missing: values.len() - v.len(),
            min: v[0],
            p50: rank(0.50),
            p90: rank(0.90),
            p99: rank(0.99),
            max: v[v.len() - 1],
        })
    }

    pub(crate) fn get(&self, stat: Stat) -> f64 {
        match stat {
            Stat::Min => self.min,
            Stat::P50 => self.p50,
            Stat::P90 => self.p90,
            Stat::P99 => self.p99,
            Stat::Max => self.max,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataMetrics {
    pub client: String,
    pub published: u64,
    pub delivered: u64,
    pub lost: u64,
    pub duplicates: u64,
    pub out_of_order: u64,
    pub late: u64,
    pub late_max_delay_s: Option<f64>,
    pub data_gap_receive_s: Option<f64>,
    pub data_gap_publish_s: Option<f64>,
    pub reconnects: u64,
    pub foreign: u64,
    /// PINGREQs the client sent, as the proxy saw them.
    pub pings: u64,
    /// The median interval between two PINGREQs on one connection.
    pub ping_interval_s: Option<f64>,
    /// Whether it got what its QoS and session promised (absent when its subscription's QoS
    /// is not known).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery: Option<DeliveryVerdict>,
    /// What its connections cost on the wire over the run, headers included: the capture's
    /// frames (namespace mode; the proxy sees a stream, not frames).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wire: Option<WireCost>,
    /// How long deliveries took from publish to receipt, in runs whose link was weak at the
    /// end (latency, burst loss … on linecut's wire).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_s: Option<DelayQuantiles>,
}

/// Quantiles of a delay, seconds (nearest rank).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DelayQuantiles {
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
}

/// Frames and bytes on the wire, link, IP and TCP headers included.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireCost {
    pub frames: u64,
    pub bytes: u64,
}

/// What the subscription's QoS promises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Promise {
    AtMostOnce,
    AtLeastOnce,
    ExactlyOnce,
}

/// A message the verdict names: the first missing or doubled one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Missing {
    pub topic: String,
    pub seq: u64,
    /// When it was published, from the experiment start.
    pub published_s: f64,
    /// What the CONNACK after it said of the session (absent: no reconnect came after it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_present: Option<bool>,
}

/// Whether the subscriber got what its QoS and session promised (see the `delivery` module).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeliveryVerdict {
    /// The lower of the subscription's and the publisher's QoS.
    pub qos: u8,
    pub promise: Promise,
    pub kept: crate::delivery::Kept,
    /// The verdict in words, with its reasons.
    pub why: String,
    /// Lost where the promise allows it (QoS 0, or a session that ended as the client asked).
    pub lost_allowed: u64,
    /// Lost although the promise covered them.
    pub lost_promised: u64,
    pub duplicates: u64,
    /// Deliveries the wire showed with the DUP flag (absent where no wire was watched).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duplicates_flagged: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_missing: Option<Missing>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_doubled: Option<Missing>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExpectationResult {
    pub metric: String,
    pub condition: String,
    /// Value per subscriber (null where the metric has none).
    pub values: BTreeMap<String, Option<f64>>,
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimelineEntry {
    /// Seconds from the experiment start.
    pub t_s: f64,
    pub ts_us: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
    pub what: String,
}

/// Everything `report.json` holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub schema: String,
    pub schema_version: u32,
    pub scenario: String,
    /// The scenario's description, as written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub broker: String,
    pub client_library: String,
    pub complete: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub incomplete_reason: Option<String>,
    pub experiment_start_us: i64,
    /// The keepalive the client runs on, which its band is drawn for: what it asked for, or
    /// what the broker granted when its library adopts that (see `keepalive_granted_s`).
    pub keepalive_s: Option<u16>,
    /// MQTT 5: the keepalive the broker granted in its CONNACK (Server Keep Alive), which it
    /// holds the client to: the broker's and the will's bands are drawn for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keepalive_granted_s: Option<u16>,
    /// What the client asked for in its CONNECT, when the broker granted something else.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keepalive_asked_s: Option<u16>,
    #[serde(default)]
    pub session: SessionFacts,
    /// A namespace run's network (its links, the device TCP settings); absent in proxy mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<linecut_events::run_dir::NetworkRecord>,
    /// The client library's keepalive rule and what it means for an outage at this keepalive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_rule: Option<String>,
    /// The faults' drawn phase, when they had a jitter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<linecut_model::PhaseRecord>,
    pub windows: Vec<WindowReport>,
    /// Connections that ended outside every fault window: findings, with their cause.
    #[serde(default)]
    pub unexpected_disconnects: Vec<UnexpectedDisconnect>,
    pub data: Vec<DataMetrics>,
    pub expectations: Vec<ExpectationResult>,
    pub timeline: Vec<TimelineEntry>,
    pub warnings: Vec<String>,
    /// When the run was read from a packet capture: what the capture held.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capture: Option<CaptureInfo>,
    /// When a run directory also holds a capture: its MQTT packets against the proxy's log.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capture_check: Option<CaptureCheck>,
}

impl Report {
    /// True when every expectation held (and there were expectations or not).
    pub fn expectations_hold(&self) -> bool {
        self.expectations.iter().all(|e| e.ok)
    }
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}
