//! The data question: per subscriber over the whole run, what was published on its topics, what
//! it received, lost, received twice, out of order or late, the longest holes, its reconnects
//! and its pings; and the ledger of what it lost and got twice, which the delivery verdict
//! judges.

use crate::clients::{secs, Client, STOP_GRACE_US};
use crate::delivery::Ledger;
use crate::report::DataMetrics;
use crate::window::Window;
use crate::{topic_matches, wire, Publish, Run};
use linecut_events::{DisconnectCause, EventKind};
use std::collections::BTreeMap;

pub(crate) fn data_metrics<'a>(
    run: &'a Run,
    c: &Client,
    windows: &[Window],
    pings: &wire::Pings,
    weak_at_stop: bool,
) -> (DataMetrics, Ledger<'a>) {
    let filters: Vec<String> = c
        .events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::SubscribeSent(s) => Some(
                s.topics
                    .iter()
                    .map(|t| t.filter.clone())
                    .collect::<Vec<_>>(),
            ),
            _ => None,
        })
        .flatten()
        .collect();
    let subscribed_at = c
        .events
        .iter()
        .find(|e| matches!(e.kind, EventKind::Suback(_)))
        .map(|e| e.ts_us);
    // Where the subscriber stopped: its orderly disconnect, or (a run cut short) the last thing
    // it did, deliveries included.
    let requested_stop = c.events.iter().rev().find(
        |e| matches!(&e.kind, EventKind::Disconnected(d) if d.cause == DisconnectCause::Requested),
    );
    let last_seen = c
        .events
        .last()
        .map(|e| e.ts_us)
        .max(c.deliveries.last().map(|d| d.ts_us));
    let stopped_at = requested_stop
        .map(|e| e.ts_us)
        .or(last_seen)
        .unwrap_or(i64::MAX);
    // Everything published on this subscriber's topics while it was subscribed…
    let on_topics: Vec<bool> = run
        .topics
        .iter()
        .map(|t| filters.iter().any(|f| topic_matches(f, t)))
        .collect();
    let published: Vec<&'a Publish> = run
        .publishes
        .iter()
        .filter(|p| {
            on_topics[p.topic as usize]
                && subscribed_at.is_some_and(|s| p.ts_us >= s)
                && p.ts_us < stopped_at
        })
        .collect();
    // How long each delivery took, publish to receipt.
    let mut delays: Vec<i64> = c
        .deliveries
        .iter()
        .filter_map(|d| Some(d.ts_us - d.pub_ts_us?))
        .collect();
    delays.sort_unstable();
    // …of which the last second's may still have been in flight when it stopped: not "lost".
    // On a weak link still slowing the line at the stop, a message may be in flight as long
    // as the slowest delivery of the run took (delays, retransmissions after a burst): that
    // long, not a second.
    let grace = if weak_at_stop {
        STOP_GRACE_US.max(delays.last().copied().unwrap_or(0))
    } else {
        STOP_GRACE_US
    };
    // Sorted vectors rather than maps: a busy run has millions of (topic, seq) pairs.
    let mut expected: Vec<(u32, u64)> = published
        .iter()
        .filter(|p| p.ts_us < stopped_at - grace)
        .map(|p| (p.topic, p.seq))
        .collect();
    expected.sort_unstable();
    expected.dedup();
    let mut delivered: Vec<(u32, u64)> = c
        .deliveries
        .iter()
        .filter_map(|d| d.seq.map(|seq| (d.topic, seq)))
        .collect();
    delivered.sort_unstable();
    let delivered_count = delivered.len() as u64;
    let doubled: Vec<(u32, u64)> = delivered
        .windows(2)
        .filter(|pair| pair[0] == pair[1])
        .map(|pair| pair[0])
        .collect();
    delivered.dedup();
    let duplicates = doubled.len() as u64;
    let lost = expected
        .iter()
        .filter(|k| delivered.binary_search(k).is_err())
        .count() as u64;
    let mut lost_rows: Vec<&'a Publish> = published
        .iter()
        .copied()
        .filter(|p| {
            p.ts_us < stopped_at - grace && delivered.binary_search(&(p.topic, p.seq)).is_err()
        })
        .collect();
    lost_rows.sort_by_key(|p| (p.ts_us, p.topic, p.seq));
    lost_rows.dedup_by_key(|p| (p.topic, p.seq));
    let (mut out_of_order, mut foreign, mut late, mut late_max) = (0u64, 0u64, 0u64, None::<i64>);
    let mut highest: BTreeMap<u32, u64> = BTreeMap::new();
    let (mut receive_times, mut publish_times) = (Vec::new(), Vec::new());
    for d in &c.deliveries {
        let (Some(seq), Some(pub_ts)) = (d.seq, d.pub_ts_us) else {
            foreign += 1;
            continue;
        };
        let top = highest.entry(d.topic).or_insert(0);
        if seq < *top {
            out_of_order += 1;
        }
        *top = (*top).max(seq);
        receive_times.push(d.ts_us);
        publish_times.push(pub_ts);
        if windows
            .iter()
            .any(|w| pub_ts >= w.start && pub_ts < w.end && d.ts_us >= w.end)
        {
            late += 1;
            late_max = Some(late_max.map_or(d.ts_us - pub_ts, |x: i64| x.max(d.ts_us - pub_ts)));
        }
    }
    publish_times.sort_unstable();
    let gap = |times: &[i64]| times.windows(2).map(|p| p[1] - p[0]).max().map(secs);
    let (pings, ping_interval) = pings.stats(&c.conns);
    let metrics = DataMetrics {
        client: c.id.clone(),
        published: published.len() as u64,
        delivered: delivered_count,
        lost,
        duplicates,
        out_of_order,
        late,
        late_max_delay_s: late_max.map(secs),
        data_gap_receive_s: gap(&receive_times),
        data_gap_publish_s: gap(&publish_times),
        reconnects: c
            .events
            .iter()
            .filter(|e| matches!(&e.kind, EventKind::Connack(a) if a.code == 0))
            .count()
            .saturating_sub(1) as u64,
        foreign: foreign + client_foreign(run, &c.id),
        pings,
        ping_interval_s: ping_interval.map(secs),
        delivery: None,
        // What a weak link did to the data that crossed it: how long deliveries took.
        delay_s: (weak_at_stop && !delays.is_empty()).then(|| {
            let at = |q: f64| {
                let rank = ((q * delays.len() as f64).ceil() as usize).clamp(1, delays.len());
                secs(delays[rank - 1])
            };
            crate::report::DelayQuantiles {
                p50: at(0.5),
                p99: at(0.99),
                max: at(1.0),
            }
        }),
        wire: (!run.wire_totals.is_empty()).then(|| {
            c.conns
                .iter()
                .filter_map(|conn| run.wire_totals.get(conn))
                .fold(crate::report::WireCost::default(), |a, w| {
                    crate::report::WireCost {
                        frames: a.frames + w.frames,
                        bytes: a.bytes + w.bytes,
                    }
                })
        }),
    };
    let ledger = Ledger {
        published,
        lost: lost_rows,
        doubled,
    };
    (metrics, ledger)
}

/// Foreign deliveries a capture counted without keeping rows for them.
pub(crate) fn client_foreign(run: &Run, client: &str) -> u64 {
    // Only captures count foreign deliveries this way; for a run the search is skipped, since
    // it is by name over every client, once per client.
    if run.foreign_counts.is_empty() {
        return 0;
    }
    run.clients
        .iter()
        .position(|c| c == client)
        .and_then(|i| run.foreign_counts.get(&(i as u32)))
        .copied()
        .unwrap_or(0)
}
