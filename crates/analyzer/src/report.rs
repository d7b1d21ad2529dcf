//! The report's types: everything `report.json` holds, serialised as it is written and read
//! back by the sweep. No analysis here; the questions are answered in their own modules.

use crate::capture::{CaptureCheck, CaptureInfo};
use crate::story::{DetectHow, Story};
use linecut_model::metric::Stat;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A detection time's expected band.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Band {
    pub low_s: f64,
    pub high_s: f64,
    pub inside: bool,
    /// The rule the band comes from, in words.
    pub rule: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WindowMetrics {
    pub client: String,
    pub client_detect_s: Option<f64>,
    /// How the client's giving up was seen: its disconnect cause, or `socket_closed` /
    /// `new_connection` when only the wire showed it.
    pub client_detect_how: Option<DetectHow>,
    pub client_detect_band: Option<Band>,
    pub broker_detect_s: Option<f64>,
    /// `proxy` (the broker closed its leg) or `broker_log`.
    pub broker_detect_how: Option<DetectHow>,
    pub broker_detect_band: Option<Band>,
    pub reconnect_s: Option<f64>,
    pub resubscribe_s: Option<f64>,
    pub connect_attempts: u32,
    pub attempt_failures: BTreeMap<String, u32>,
    pub first_fresh_s: Option<f64>,
    pub session_present: Option<bool>,
    pub resubscribed: Option<bool>,
    /// False when the client printed nothing about its connection and the wire stood in for it.
    pub reported_by_client: bool,
    pub wire_detect_s: Option<f64>,
    pub wire_reconnect_s: Option<f64>,
    pub wire_resubscribe_s: Option<f64>,
    pub stories: Vec<Story>,
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
    pub broker: String,
    pub client_library: String,
    pub complete: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub incomplete_reason: Option<String>,
    pub experiment_start_us: i64,
    pub keepalive_s: Option<u16>,
    pub windows: Vec<WindowReport>,
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
