//! Expectations: `[expect]` keys checked against a report through the metric registry, and the
//! one place a metric's value is read from the report's types.

use crate::report::{DataMetrics, ExpectationResult, Report, WindowMetrics};
use linecut_model::{Condition, Metric, MetricName};
use std::collections::BTreeMap;

/// A timing of the registry ([`Metric::is_timing`]) from a window's metrics.
pub(crate) fn timing(m: &WindowMetrics, metric: Metric) -> Option<f64> {
    match metric {
        Metric::ClientDetectS => m.client_detect_s,
        Metric::BrokerDetectS => m.broker_detect_s,
        Metric::ReconnectS => m.reconnect_s,
        Metric::ResubscribeS => m.resubscribe_s,
        Metric::FirstFreshS => m.first_fresh_s,
        Metric::StaleDataS => m.stale.as_ref().map(|s| s.first_after_end_s),
        Metric::WillS => m.will_s,
        _ => None,
    }
}

pub(crate) fn check(report: &Report, metric: &str, condition_text: &str) -> ExpectationResult {
    let mut result = ExpectationResult {
        metric: metric.to_string(),
        condition: condition_text.to_string(),
        values: BTreeMap::new(),
        ok: false,
        problem: None,
    };
    // Scenarios are checked when loaded; these errors reach here only from a meta.json that
    // was written by hand or by an older linecut.
    let parsed = MetricName::parse(metric)
        .and_then(|name| Condition::parse(condition_text).map(|condition| (name, condition)));
    let (name, condition) = match parsed {
        Ok(p) => p,
        Err(e) => {
            result.problem = Some(e);
            return result;
        }
    };
    // `faultN.metric` names the N-th fault window; a bare metric, the first.
    let window_index = match name.window {
        Some(n) if n > report.windows.len() => {
            result.problem = Some(format!(
                "`fault{n}` names no fault window; this run has {} (fault1..fault{})",
                report.windows.len(),
                report.windows.len()
            ));
            return result;
        }
        Some(n) => n - 1,
        None => 0,
    };
    let window = report.windows.get(window_index);
    // `metric.p99` (or min, p50, p90, max) checks the fleet's distribution of a timing.
    if let Some(stat) = name.stat {
        let value = window
            .and_then(|w| w.distribution.get(name.metric.name()))
            .map(|d| d.get(stat));
        result.values.insert("fleet".into(), value);
        result.ok = condition.holds(value);
        return result;
    }
    let mut inside = BTreeMap::new();
    for d in &report.data {
        let m = window.and_then(|w| w.subscribers.iter().find(|m| m.client == d.client));
        // A window inside an earlier fault holds no timings of its own: not a value to judge.
        if let Some(fault) = m
            .and_then(|m| m.inside_fault)
            .filter(|_| name.metric.scope() == linecut_model::MetricScope::Window)
        {
            inside.insert(d.client.clone(), fault);
            continue;
        }
        result
            .values
            .insert(d.client.clone(), metric_value(name.metric, m, Some(d)));
    }
    result.ok = !result.values.is_empty() && result.values.values().all(|v| condition.holds(*v));
    if let Some((client, fault)) = inside.iter().next() {
        result.problem = Some(format!(
            "fault {} began while fault {fault} was on for {client}{}: measured in fault {fault}'s window, which covers both",
            window.map_or(0, |w| w.fault),
            if inside.len() > 1 { format!(" and {} other(s)", inside.len() - 1) } else { String::new() }
        ));
        result.ok = false;
    } else if result.values.is_empty() {
        result.problem = Some("no subscriber in the run".into());
    }
    result
}

/// A metric's value for one subscriber: `window` holds its window metrics (if the run has that
/// window), `data` its whole-run metrics. One arm per metric of the registry.
pub fn metric_value(
    metric: Metric,
    window: Option<&WindowMetrics>,
    data: Option<&DataMetrics>,
) -> Option<f64> {
    let count = |n: fn(&DataMetrics) -> u64| data.map(|d| n(d) as f64);
    match metric {
        Metric::ClientDetectS
        | Metric::BrokerDetectS
        | Metric::ReconnectS
        | Metric::ResubscribeS
        | Metric::FirstFreshS
        | Metric::WillS
        | Metric::StaleDataS => window.and_then(|w| timing(w, metric)),
        Metric::ConnectAttempts => window.map(|w| f64::from(w.connect_attempts)),
        Metric::WireDetectS => window.and_then(|w| w.wire_detect_s),
        Metric::WireReconnectS => window.and_then(|w| w.wire_reconnect_s),
        Metric::WireResubscribeS => window.and_then(|w| w.wire_resubscribe_s),
        Metric::Published => count(|d| d.published),
        Metric::Delivered => count(|d| d.delivered),
        Metric::Lost => count(|d| d.lost),
        Metric::Duplicates => count(|d| d.duplicates),
        Metric::Delivery => data
            .and_then(|d| d.delivery.as_ref())
            .and_then(|v| match v.kept {
                crate::delivery::Kept::AsPromised => Some(1.0),
                crate::delivery::Kept::Broken => Some(0.0),
                crate::delivery::Kept::NotDecidable => None,
            }),
        Metric::OutOfOrder => count(|d| d.out_of_order),
        Metric::Late => count(|d| d.late),
        Metric::LateMaxDelayS => data.and_then(|d| d.late_max_delay_s),
        Metric::DataGapReceiveS => data.and_then(|d| d.data_gap_receive_s),
        Metric::DataGapPublishS => data.and_then(|d| d.data_gap_publish_s),
        Metric::Reconnects => count(|d| d.reconnects),
        Metric::Foreign => count(|d| d.foreign),
        Metric::Pings => count(|d| d.pings),
        Metric::PingIntervalS => data.and_then(|d| d.ping_interval_s),
    }
}
