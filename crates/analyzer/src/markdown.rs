//! `report.md`: the run told as the 2014 post told it, but exact — the metrics, what happened in
//! order, and the verdict on each expectation.

use crate::{Band, Report};
use std::fmt::Write;

fn opt(v: Option<f64>) -> String {
    v.map_or("never".into(), |v| format!("{v:.3} s"))
}

fn band(b: &Option<Band>) -> String {
    match b {
        None => "—".into(),
        Some(b) => format!(
            "{:.1}–{:.1} s {}",
            b.low_s,
            b.high_s,
            if b.inside {
                "(inside)"
            } else {
                "(**outside**)"
            }
        ),
    }
}

pub fn render(r: &Report) -> String {
    let mut out = String::new();
    let w = &mut out;
    let _ = writeln!(w, "# {} — linecut report\n", r.scenario);
    let _ = writeln!(w, "- Broker: {}", r.broker);
    let _ = writeln!(w, "- Subscriber client: {}", r.client_library);
    let _ = writeln!(
        w,
        "- Keepalive: {}",
        r.keepalive_s.map_or("unknown".into(), |k| format!("{k} s"))
    );
    if r.complete {
        let _ = writeln!(w, "- Run: complete");
    } else {
        let _ = writeln!(
            w,
            "- Run: **incomplete** — {}",
            r.incomplete_reason
                .as_deref()
                .unwrap_or("no reason recorded")
        );
    }
    let _ = writeln!(
        w,
        "\nTimes are seconds from the experiment start (every subscriber subscribed).\n"
    );

    for window in &r.windows {
        let t = |us: i64| (us - r.experiment_start_us) as f64 / 1e6;
        let _ = writeln!(
            w,
            "## Fault {}: {} from t+{:.3} s to t+{:.3} s\n\n`{}`\n",
            window.fault,
            window.kind,
            t(window.outage_start_us),
            t(window.outage_end_us),
            window.spec
        );
        let _ = writeln!(w, "| subscriber | client gave up | how | expected | broker gave up | expected | back (CONNACK) | re-subscribed | first fresh message | attempts |");
        let _ = writeln!(w, "|---|---|---|---|---|---|---|---|---|---|");
        for m in &window.subscribers {
            let _ = writeln!(
                w,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                m.client,
                opt(m.client_detect_s),
                m.client_detect_how.as_deref().unwrap_or("—"),
                band(&m.client_detect_band),
                opt(m.broker_detect_s),
                band(&m.broker_detect_band),
                m.reconnect_s
                    .map_or("—".into(), |v| format!("{v:+.3} s after the end")),
                match m.resubscribed {
                    Some(true) => format!(
                        "yes (session_present={})",
                        m.session_present.unwrap_or(false)
                    ),
                    Some(false) => format!(
                        "no (session_present={})",
                        m.session_present.unwrap_or(false)
                    ),
                    None => "—".into(),
                },
                m.first_fresh_s
                    .map_or("—".into(), |v| format!("{v:+.3} s after the end")),
                m.connect_attempts,
            );
        }
        if window.subscribers.len() > 1 {
            let _ = writeln!(
                w,
                "\nAcross the {} subscribers:\n",
                window.subscribers.len()
            );
            let _ = writeln!(w, "| timing | measured | min | p50 | p90 | p99 | max |");
            let _ = writeln!(w, "|---|---|---|---|---|---|---|");
            for (name, d) in &window.distribution {
                let _ = writeln!(
                    w,
                    "| {name} | {} of {} | {:.3} s | {:.3} s | {:.3} s | {:.3} s | {:.3} s |",
                    d.count,
                    d.count + d.missing,
                    d.min,
                    d.p50,
                    d.p90,
                    d.p99,
                    d.max
                );
            }
        }
        for m in &window.subscribers {
            for story in &m.stories {
                let _ = writeln!(w, "\n- {}: {story}.", m.client);
            }
        }
        let _ = writeln!(w);
    }
    if r.windows.is_empty() {
        let _ = writeln!(w, "No fault was played in this run.\n");
    }

    let _ = writeln!(w, "## Data\n");
    let _ = writeln!(w, "| subscriber | published | delivered | lost | duplicates | late (max delay) | out of order | longest gap, receive time | longest gap, publish time | reconnects | foreign |");
    let _ = writeln!(w, "|---|---|---|---|---|---|---|---|---|---|---|");
    for d in &r.data {
        let _ = writeln!(
            w,
            "| {} | {} | {} | {} | {} | {} ({}) | {} | {} | {} | {} | {} |",
            d.client,
            d.published,
            d.delivered,
            d.lost,
            d.duplicates,
            d.late,
            d.late_max_delay_s
                .map_or("—".into(), |v| format!("{v:.3} s")),
            d.out_of_order,
            opt(d.data_gap_receive_s),
            opt(d.data_gap_publish_s),
            d.reconnects,
            d.foreign
        );
    }

    let _ = writeln!(w, "\n## Timeline\n");
    for e in &r.timeline {
        let who = e
            .client
            .as_deref()
            .map(|c| format!("{c}: "))
            .unwrap_or_default();
        let _ = writeln!(w, "- t{:+.3} s — {who}{}", e.t_s, e.what);
    }

    let _ = writeln!(w, "\n## Expectations\n");
    if r.expectations.is_empty() {
        let _ = writeln!(w, "None were set.");
    } else {
        let _ = writeln!(w, "| metric | condition | value(s) | verdict |");
        let _ = writeln!(w, "|---|---|---|---|");
        for x in &r.expectations {
            let values = x
                .values
                .iter()
                .map(|(c, v)| format!("{c}: {}", v.map_or("none".into(), |v| format!("{v}"))))
                .collect::<Vec<_>>()
                .join(", ");
            let verdict = match (&x.problem, x.ok) {
                (Some(p), _) => format!("**fail** ({p})"),
                (None, true) => "pass".into(),
                (None, false) => "**fail**".into(),
            };
            let _ = writeln!(
                w,
                "| {} | `{}` | {} | {} |",
                x.metric, x.condition, values, verdict
            );
        }
    }
    if !r.warnings.is_empty() {
        let _ = writeln!(w, "\n## Warnings\n");
        for warning in &r.warnings {
            let _ = writeln!(w, "- {warning}");
        }
    }
    out
}
