//! `timeline.svg`: the run at a glance.
//!
//! The upper panel plots every delivered message as its publish time against its receive time:
//! on time, the points lie on the diagonal; a hole in the data is a gap along it; late data sits
//! to the right of it. Fault windows are shaded across both panels. The lower panel has one lane
//! per proxied connection of a subscriber, a labelled bar for its lifetime, and the client's
//! pings (PINGREQ as a cross, PINGRESP as a dot) on the lane of the connection they travelled on.
//! Only plotters' SVG backend is used, so text needs no fonts at build time.

use crate::{Report, Run};
use linecut_events::{Direction, EventKind, Fate};
use linecut_mqtt::PacketType;
use plotters::prelude::*;
use std::collections::BTreeMap;

const WIDTH: u32 = 1100;
const MAX_POINTS: usize = 20_000;
const HEIGHT: u32 = 720;
const FAULT: RGBColor = RGBColor(235, 120, 100);
const LIFE: RGBColor = RGBColor(90, 130, 200);

struct Lane {
    label: String,
    opened: f64,
    closed: f64,
}

pub fn render(report: &Report, run: &Run) -> String {
    let start = report.experiment_start_us;
    let t = |us: i64| (us - start) as f64 / 1e6;
    let end = run
        .subscriber
        .iter()
        .chain(&run.proxy)
        .map(|e| t(e.ts_us))
        .chain(run.deliveries.iter().map(|d| t(d.ts_us)))
        .fold(1.0_f64, f64::max);
    let windows: Vec<(f64, f64, String)> = report
        .windows
        .iter()
        .map(|w| {
            (
                t(w.outage_start_us),
                t(w.outage_end_us).max(t(w.outage_start_us) + 0.05),
                w.kind.clone(),
            )
        })
        .collect();
    // A picture cannot show millions of points; beyond MAX_POINTS every k-th delivery stands
    // for its neighbours (holes of more than k deliveries still show).
    let stride = run.deliveries.len().div_ceil(MAX_POINTS).max(1);
    let points: Vec<(f64, f64)> = run
        .deliveries
        .iter()
        .step_by(stride)
        .filter_map(|d| d.pub_ts_us.map(|p| (t(d.ts_us), t(p))))
        .collect();

    // Connection lanes, in the order the connections opened.
    let mut lanes: BTreeMap<u64, Lane> = BTreeMap::new();
    let mut client_of: BTreeMap<u64, String> = BTreeMap::new();
    for e in &run.proxy {
        match &e.kind {
            EventKind::ConnOpened(o) => {
                lanes.insert(
                    o.conn,
                    Lane {
                        label: format!("conn {}", o.conn),
                        opened: t(e.ts_us),
                        closed: end,
                    },
                );
            }
            EventKind::MqttPacket(p) if p.kind() == Some(PacketType::Connect) => {
                if let Some(id) = &p.client_id {
                    client_of.insert(p.conn, id.clone());
                }
            }
            EventKind::ConnClosed(c) => {
                if let Some(l) = lanes.get_mut(&c.conn) {
                    l.closed = t(e.ts_us);
                }
            }
            _ => {}
        }
    }
    for (conn, lane) in lanes.iter_mut() {
        if let Some(id) = client_of.get(conn) {
            lane.label = format!("conn {conn} ({id})");
        }
    }
    // Many connections (a fleet) would make unreadable lanes: keep the first 24.
    let lanes: Vec<(u64, Lane)> = lanes.into_iter().take(24).collect();
    let lane_index: BTreeMap<u64, usize> = lanes
        .iter()
        .enumerate()
        .map(|(i, (c, _))| (*c, i))
        .collect();
    // Pings ride on whichever connection of that client was open at the time.
    let mut pings: Vec<(f64, usize, bool)> = Vec::new();
    for e in &run.subscriber {
        let (client, answered) = match &e.kind {
            EventKind::PingSent(c) => (&c.client, false),
            EventKind::PingReceived(c) => (&c.client, true),
            _ => continue,
        };
        let at = t(e.ts_us);
        let lane = lanes.iter().position(|(conn, l)| {
            client_of.get(conn) == Some(client) && l.opened <= at && at <= l.closed
        });
        if let Some(lane) = lane {
            pings.push((at, lane, answered));
        }
    }
    // A client that reports nothing (mosquitto_sub, a capture): its pings as the wire saw them,
    // on the lane of the connection that carried them.
    if pings.is_empty() {
        for e in &run.proxy {
            let EventKind::MqttPacket(p) = &e.kind else {
                continue;
            };
            let answered = match (p.kind(), p.dir) {
                (Some(PacketType::PingReq), Direction::Up)
                    if !matches!(p.fate, Fate::Released | Fate::Discarded) =>
                {
                    false
                }
                (Some(PacketType::PingResp), Direction::Down)
                    if matches!(p.fate, Fate::Forwarded | Fate::Released) =>
                {
                    true
                }
                _ => continue,
            };
            if let Some(&lane) = lane_index.get(&p.conn) {
                pings.push((t(e.ts_us), lane, answered));
            }
        }
    }

    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
        let _ = root.fill(&WHITE);
        let (upper, lower) = root.split_vertically(HEIGHT * 58 / 100);
        let title = format!(
            "{} — {} — {}",
            report.scenario, report.broker, report.client_library
        );
        let x_max = end * 1.02;
        if let Ok(mut chart) = ChartBuilder::on(&upper)
            .caption(title, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(64)
            .build_cartesian_2d(0.0..x_max, 0.0..x_max)
        {
            let _ = chart
                .configure_mesh()
                .x_desc("received (s from experiment start)")
                .y_desc("published (s)")
                .light_line_style(WHITE.mix(0.0))
                .draw();
            for (a, b, _) in &windows {
                let _ = chart.draw_series(std::iter::once(Rectangle::new(
                    [(*a, 0.0), (*b, x_max)],
                    FAULT.mix(0.18).filled(),
                )));
            }
            let _ = chart.draw_series(LineSeries::new(
                vec![(0.0, 0.0), (x_max, x_max)],
                BLACK.mix(0.25),
            ));
            let _ = chart
                .draw_series(
                    points
                        .iter()
                        .map(|&(r, p)| Circle::new((r, p), 2, LIFE.filled())),
                )
                .map(|s| {
                    s.label("delivered message")
                        .legend(|(x, y)| Circle::new((x, y), 3, LIFE.filled()))
                });
            let _ = chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperLeft)
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK.mix(0.3))
                .draw();
        }
        let n = lanes.len().max(1);
        if let Ok(mut chart) = ChartBuilder::on(&lower)
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(64)
            .build_cartesian_2d(0.0..x_max, 0.0..n as f64)
        {
            let _ = chart
                .configure_mesh()
                .x_desc("time (s from experiment start) — connections through the proxy; × PINGREQ, ● PINGRESP")
                .disable_y_mesh()
                .y_labels(0)
                .light_line_style(WHITE.mix(0.0))
                .draw();
            for (a, b, kind) in &windows {
                let _ = chart.draw_series(std::iter::once(Rectangle::new(
                    [(*a, 0.0), (*b, n as f64)],
                    FAULT.mix(0.18).filled(),
                )));
                let _ = chart.draw_series(std::iter::once(Text::new(
                    kind.clone(),
                    (*a, n as f64 - 0.05),
                    ("sans-serif", 13).into_font().color(&FAULT),
                )));
            }
            for (i, (_, lane)) in lanes.iter().enumerate() {
                let y = i as f64;
                let _ = chart.draw_series(std::iter::once(Rectangle::new(
                    [
                        (lane.opened, y + 0.2),
                        (lane.closed.max(lane.opened + 0.01), y + 0.5),
                    ],
                    LIFE.mix(0.55).filled(),
                )));
                // The label sits just above its own bar, where the connection opened.
                let _ = chart.draw_series(std::iter::once(Text::new(
                    lane.label.clone(),
                    (lane.opened, y + 0.85),
                    ("sans-serif", 12).into_font().color(&BLACK.mix(0.8)),
                )));
            }
            let _ = chart.draw_series(pings.iter().filter(|p| !p.2).map(|&(x, lane, _)| {
                Cross::new(
                    (x, lane_index.len().min(lane) as f64 + 0.35),
                    5,
                    BLACK.stroke_width(2),
                )
            }));
            let _ = chart.draw_series(pings.iter().filter(|p| p.2).map(|&(x, lane, _)| {
                Circle::new(
                    (x, lane_index.len().min(lane) as f64 + 0.35),
                    3,
                    BLACK.filled(),
                )
            }));
        }
        let _ = root.present();
    }
    svg
}
