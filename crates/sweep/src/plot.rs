//! The sweep's plots, as SVG (plotters' SVG backend: no fonts needed at build time).
//!
//! - `detection.svg`: detection time against keepalive, every run a point (client filled,
//!   broker hollow), the protocol bands for each series shaded behind them.
//! - `recovery.svg`: reconnect time and messages lost against outage length, medians with
//!   min–max bars, one series per (series, keepalive).
//!
//! A plot whose x axis the data does not vary (a sweep without keepalive or outage variation)
//! is not drawn.

use crate::plan::Plan;
use crate::report::{series_of, CellRow, Stat, SweepReport};
use plotters::prelude::*;
use std::collections::BTreeMap;

const PALETTE: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(255, 127, 14),
    RGBColor(23, 190, 207),
];

fn color(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

/// Short series label: the client library's name, then the other swept values.
fn series_label(row: &CellRow, plan: &Plan) -> String {
    let library = row
        .client_library
        .split([' ', '('])
        .next()
        .unwrap_or("")
        .to_string();
    let rest = series_of(row, plan);
    // The client kind is usually one of the axes; do not name it twice.
    if rest.is_empty() || rest.contains("client=") {
        if rest.is_empty() {
            library
        } else {
            rest
        }
    } else {
        format!("{library}, {rest}")
    }
}

fn distinct<T: PartialEq + Clone>(items: impl Iterator<Item = T>) -> Vec<T> {
    let mut out: Vec<T> = Vec::new();
    for i in items {
        if !out.contains(&i) {
            out.push(i);
        }
    }
    out
}

/// Detection time against keepalive; `None` when the keepalive does not vary.
pub fn detection(report: &SweepReport, plan: &Plan) -> Option<String> {
    let keepalives = distinct(
        report
            .cells
            .iter()
            .filter_map(|r| r.keepalive_s)
            .map(|k| k.to_bits()),
    );
    if keepalives.len() < 2 {
        return None;
    }
    let series = distinct(report.cells.iter().map(|r| series_label(r, plan)));
    let k_max = report
        .cells
        .iter()
        .filter_map(|r| r.keepalive_s)
        .fold(1.0, f64::max);
    let y_max = report
        .cells
        .iter()
        .flat_map(|r| {
            r.client_detect
                .iter()
                .chain(&r.broker_detect)
                .map(|p| p.value)
                .chain(r.client_band.iter().map(|b| b.high_s))
                .chain(r.broker_band.iter().map(|b| b.high_s))
        })
        .fold(1.0, f64::max);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (900, 560)).into_drawing_area();
        let _ = root.fill(&WHITE);
        let mut chart = ChartBuilder::on(&root)
            .caption(
                format!(
                    "{}: detection time against keepalive (shaded: client band in its colour, broker band grey)",
                    report.scenario
                ),
                ("sans-serif", 18),
            )
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(50)
            .build_cartesian_2d(0.0..k_max * 1.15, 0.0..y_max * 1.1)
            .ok()?;
        let _ = chart
            .configure_mesh()
            .x_desc("keepalive K (s)")
            .y_desc("from outage start to giving up (s)")
            .light_line_style(WHITE.mix(0.0))
            .draw();
        // Bands first, behind the points: per series, the band at each keepalive joined up.
        for (i, name) in series.iter().enumerate() {
            let mut client: BTreeMap<u64, (f64, f64)> = BTreeMap::new();
            let mut broker: BTreeMap<u64, (f64, f64)> = BTreeMap::new();
            for row in report
                .cells
                .iter()
                .filter(|r| &series_label(r, plan) == name)
            {
                let Some(k) = row.keepalive_s else { continue };
                if let Some(b) = &row.client_band {
                    client.insert((k * 1000.0) as u64, (b.low_s, b.high_s));
                }
                if let Some(b) = &row.broker_band {
                    broker.insert((k * 1000.0) as u64, (b.low_s, b.high_s));
                }
            }
            for (bands, fill) in [(&broker, BLACK.mix(0.06)), (&client, color(i).mix(0.18))] {
                if bands.len() < 2 {
                    continue;
                }
                let mut polygon: Vec<(f64, f64)> = bands
                    .iter()
                    .map(|(k, b)| (*k as f64 / 1000.0, b.1))
                    .collect();
                polygon.extend(bands.iter().rev().map(|(k, b)| (*k as f64 / 1000.0, b.0)));
                let _ = chart.draw_series(std::iter::once(Polygon::new(polygon, fill.filled())));
            }
        }
        let offset = k_max * 0.012;
        for (i, name) in series.iter().enumerate() {
            let c = color(i);
            let shift = (i as f64 - (series.len() as f64 - 1.0) / 2.0) * offset;
            let rows: Vec<&CellRow> = report
                .cells
                .iter()
                .filter(|r| &series_label(r, plan) == name)
                .collect();
            let client: Vec<(f64, f64)> = rows
                .iter()
                .filter_map(|r| r.keepalive_s.map(|k| (k, r)))
                .flat_map(|(k, r)| r.client_detect.iter().map(move |p| (k + shift, p.value)))
                .collect();
            let broker: Vec<(f64, f64)> = rows
                .iter()
                .filter_map(|r| r.keepalive_s.map(|k| (k, r)))
                .flat_map(|(k, r)| r.broker_detect.iter().map(move |p| (k + shift, p.value)))
                .collect();
            if let Ok(a) =
                chart.draw_series(client.into_iter().map(|p| Circle::new(p, 4, c.filled())))
            {
                a.label(format!("{name}: client gave up"))
                    .legend(move |(x, y)| Circle::new((x + 6, y), 4, c.filled()));
            }
            if let Ok(a) = chart.draw_series(
                broker
                    .into_iter()
                    .map(|p| TriangleMarker::new(p, 5, c.stroke_width(1))),
            ) {
                a.label(format!("{name}: broker dropped it"))
                    .legend(move |(x, y)| TriangleMarker::new((x + 6, y), 5, c.stroke_width(1)));
            }
        }
        let _ = chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.3))
            .draw();
        let _ = root.present();
    }
    Some(svg)
}

fn median_bars(stat: Option<&Stat>, x: f64) -> Option<(f64, f64, f64, f64)> {
    stat.map(|s| (x, s.median, s.min, s.max))
}

/// Reconnect time and data lost against outage length; `None` when the outage does not vary.
pub fn recovery(report: &SweepReport, plan: &Plan) -> Option<String> {
    let outages = distinct(
        report
            .cells
            .iter()
            .filter_map(|r| r.outage_s)
            .map(|o| o.to_bits()),
    );
    if outages.len() < 2 {
        return None;
    }
    let x_max = report
        .cells
        .iter()
        .filter_map(|r| r.outage_s)
        .fold(1.0, f64::max)
        * 1.1;
    let series = distinct(report.cells.iter().map(|r| {
        let k = r
            .keepalive_s
            .map_or(String::new(), |k| format!(", K={k} s"));
        format!("{}{k}", series_label(r, plan))
    }));
    let label_of = |r: &CellRow| {
        let k = r
            .keepalive_s
            .map_or(String::new(), |k| format!(", K={k} s"));
        format!("{}{k}", series_label(r, plan))
    };
    let max_of = |m: &str| {
        report
            .cells
            .iter()
            .filter_map(|r| r.metrics.get(m).map(|s| s.max))
            .fold(1.0, f64::max)
    };
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (900, 700)).into_drawing_area();
        let _ = root.fill(&WHITE);
        let (upper, lower) = root.split_vertically(350);
        for (area, metric, title, y_desc) in [
            (
                &upper,
                "reconnect_s",
                "reconnect time against outage length",
                "from outage end to CONNACK (s)",
            ),
            (
                &lower,
                "lost",
                "messages lost against outage length",
                "messages lost",
            ),
        ] {
            let mut chart = ChartBuilder::on(area)
                .caption(format!("{}: {title}", report.scenario), ("sans-serif", 16))
                .margin(12)
                .x_label_area_size(36)
                .y_label_area_size(50)
                .build_cartesian_2d(0.0..x_max, 0.0..max_of(metric) * 1.15)
                .ok()?;
            let _ = chart
                .configure_mesh()
                .x_desc("outage length (s)")
                .y_desc(y_desc)
                .light_line_style(WHITE.mix(0.0))
                .draw();
            for (i, name) in series.iter().enumerate() {
                let c = color(i);
                let shift = (i as f64 - (series.len() as f64 - 1.0) / 2.0) * x_max * 0.006;
                let mut points: Vec<(f64, f64, f64, f64)> = report
                    .cells
                    .iter()
                    .filter(|r| &label_of(r) == name)
                    .filter_map(|r| median_bars(r.metrics.get(metric), r.outage_s? + shift))
                    .collect();
                points.sort_by(|a, b| a.0.total_cmp(&b.0));
                let _ = chart.draw_series(points.iter().map(|&(x, _, lo, hi)| {
                    PathElement::new(vec![(x, lo), (x, hi)], c.stroke_width(1))
                }));
                let _ = chart.draw_series(LineSeries::new(
                    points.iter().map(|&(x, m, _, _)| (x, m)),
                    c.mix(0.5).stroke_width(1),
                ));
                if let Ok(a) = chart.draw_series(
                    points
                        .iter()
                        .map(|&(x, m, _, _)| Circle::new((x, m), 4, c.filled())),
                ) {
                    a.label(name.clone())
                        .legend(move |(x, y)| Circle::new((x + 6, y), 4, c.filled()));
                }
            }
            let _ = chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperLeft)
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK.mix(0.3))
                .draw();
        }
        let _ = root.present();
    }
    Some(svg)
}
