//! The sweep's plots, as SVG (plotters' SVG backend: no fonts needed at build time).
//!
//! - `detection.svg`: detection time against keepalive, every run a point in its own column
//!   (client filled, broker hollow, shape by outage length, "never" on its own line), each band
//!   a bar beside its points.
//! - `recovery.svg`: reconnect time and messages lost against outage length, medians with
//!   min–max bars and the number of runs that had a value, one series per (series, keepalive),
//!   side by side rather than joined (two outage lengths do not make a curve).
//!
//! A plot whose x axis the data does not vary (a sweep without keepalive or outage variation)
//! is not drawn.

use crate::plan::Plan;
use crate::report::{series_of, CellRow, Stat, SweepReport};
use plotters::prelude::*;

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

/// Draws the marker of the n-th outage length (circle, square, diamond, triangle) at `at`.
fn draw_shape<DB: DrawingBackend>(
    chart: &mut ChartContext<
        '_,
        DB,
        Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
    >,
    n: usize,
    at: (f64, f64),
    style: ShapeStyle,
) {
    use std::iter::once as one;
    let _ = match n % 4 {
        0 => chart
            .draw_series(one(Circle::new(at, 4, style)))
            .map(|_| ()),
        1 => chart
            .draw_series(one(
                EmptyElement::at(at) + Rectangle::new([(-4, -4), (4, 4)], style)
            ))
            .map(|_| ()),
        2 => chart
            .draw_series(one(
                EmptyElement::at(at) + Polygon::new(vec![(0, -5), (5, 0), (0, 5), (-5, 0)], style)
            ))
            .map(|_| ()),
        _ => chart
            .draw_series(one(TriangleMarker::new(at, 5, style)))
            .map(|_| ()),
    };
}

/// Detection time against keepalive; `None` when the keepalive does not vary.
///
/// Each keepalive has one column per series and outage length, so repeats never share an x:
/// within a column the runs are spread side by side. The marker's shape is the outage length,
/// its colour the series; client detections are filled, the broker's hollow. Runs where a side
/// never gave up are drawn on the "never" line above the plot, and each band is a bar in its
/// own column (the client's in the series colour, the broker's grey), so none hides another.
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
    let mut keepalives: Vec<f64> = keepalives.into_iter().map(f64::from_bits).collect();
    keepalives.sort_by(f64::total_cmp);
    let series = distinct(report.cells.iter().map(|r| series_label(r, plan)));
    let mut outages: Vec<f64> = distinct(
        report
            .cells
            .iter()
            .filter_map(|r| r.outage_s)
            .map(f64::to_bits),
    )
    .into_iter()
    .map(f64::from_bits)
    .collect();
    outages.sort_by(f64::total_cmp);
    let y_max = report
        .cells
        .iter()
        .flat_map(|r| {
            r.client_detect
                .iter()
                .chain(&r.broker_detect)
                .chain(&r.will)
                .filter_map(|p| p.value)
                .chain(r.client_band.iter().map(|b| b.high_s))
                .chain(r.broker_band.iter().map(|b| b.high_s))
        })
        .fold(1.0, f64::max)
        * 1.08;
    let never_y = y_max * 1.06;
    // Columns: keepalive index i at x = i, each (series, outage) a slot inside [-0.4, 0.4].
    let slots = (series.len() * outages.len()).max(1);
    let slot_w = 0.8 / slots as f64;
    let column = |ki: usize, si: usize, oi: usize| {
        ki as f64 - 0.4 + slot_w * ((si * outages.len() + oi) as f64 + 0.5)
    };
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (1400, 640)).into_drawing_area();
        let _ = root.fill(&WHITE);
        // The legend gets its own column on the right, so it never covers a point.
        let (plot_area, legend_area) = root.split_horizontally(1000);
        let mut chart = ChartBuilder::on(&plot_area)
            .caption(
                format!("{}: when each side gave up the connection", report.scenario),
                ("sans-serif", 18),
            )
            .margin(14)
            .x_label_area_size(44)
            .y_label_area_size(56)
            .build_cartesian_2d(-0.5..keepalives.len() as f64 - 0.5, 0.0..never_y * 1.05)
            .ok()?;
        let ks = keepalives.clone();
        let _ = chart
            .configure_mesh()
            .x_labels(keepalives.len())
            .x_label_formatter(&move |x| {
                let i = x.round();
                if (x - i).abs() < 1e-6 && i >= 0.0 && (i as usize) < ks.len() {
                    format!("K = {} s", ks[i as usize])
                } else {
                    String::new()
                }
            })
            .x_desc("keepalive (one column per client and outage length)")
            .y_desc("from outage start to giving up (s)")
            .light_line_style(WHITE.mix(0.0))
            .draw();
        // The "never" line.
        let _ = chart.draw_series(std::iter::once(PathElement::new(
            vec![(-0.5, never_y), (keepalives.len() as f64 - 0.5, never_y)],
            BLACK.mix(0.3).stroke_width(1),
        )));
        let _ = chart.draw_series(std::iter::once(Text::new(
            "never",
            (-0.48, never_y * 1.035),
            ("sans-serif", 13).into_font(),
        )));
        let half = slot_w * 0.45;
        for (si, name) in series.iter().enumerate() {
            let c = color(si);
            for row in report
                .cells
                .iter()
                .filter(|r| &series_label(r, plan) == name)
            {
                let (Some(k), Some(outage)) = (row.keepalive_s, row.outage_s) else {
                    continue;
                };
                let ki = keepalives.iter().position(|x| *x == k).unwrap_or(0);
                let oi = outages.iter().position(|x| *x == outage).unwrap_or(0);
                let x = column(ki, si, oi);
                // Bands: client in the left half of the slot, broker in the right half.
                for (band, fill, left) in [
                    (&row.client_band, c.mix(0.22), true),
                    (&row.broker_band, BLACK.mix(0.12), false),
                ] {
                    let Some(b) = band else { continue };
                    let (x0, x1) = if left { (x - half, x) } else { (x, x + half) };
                    let _ = chart.draw_series(std::iter::once(Rectangle::new(
                        [(x0, b.low_s), (x1, b.high_s)],
                        fill.filled(),
                    )));
                }
                // Outage length as a dashed mark: a verdict after it came once the line was back.
                let _ = chart.draw_series(std::iter::once(PathElement::new(
                    vec![(x - half, outage), (x + half, outage)],
                    BLACK.mix(0.5).stroke_width(1),
                )));
                for (points, filled) in [(&row.client_detect, true), (&row.broker_detect, false)] {
                    let n = points.len().max(1);
                    for (j, p) in points.iter().enumerate() {
                        let px = x - half + 2.0 * half * (j as f64 + 0.5) / n as f64;
                        let style = if filled {
                            c.filled()
                        } else {
                            c.stroke_width(2)
                        };
                        let y = p.value.unwrap_or(never_y);
                        draw_shape(&mut chart, oi, (px, y), style);
                    }
                }
                // When the backend heard: the watcher's wills, as crosses over the points.
                let n = row.will.len().max(1);
                for (j, p) in row.will.iter().enumerate() {
                    let px = x - half + 2.0 * half * (j as f64 + 0.5) / n as f64;
                    let y = p.value.unwrap_or(never_y);
                    let _ = chart.draw_series(std::iter::once(Cross::new(
                        (px, y),
                        5,
                        BLACK.stroke_width(1),
                    )));
                }
            }
        }
        // The legend, drawn in its own column: bands, series, outage lengths.
        let mut y = 50;
        let line = |text: String, y: &mut i32| {
            let _ = legend_area.draw(&Text::new(
                text,
                (34, *y - 6),
                ("sans-serif", 12).into_font(),
            ));
            *y += 22;
        };
        for (si, name) in series.iter().enumerate() {
            let c = color(si);
            let _ = legend_area.draw(&Rectangle::new(
                [(8, y - 6), (24, y + 6)],
                c.mix(0.22).filled(),
            ));
            line(format!("{name}: its library's band"), &mut y);
            let _ = legend_area.draw(&Circle::new((16, y), 4, c.filled()));
            line(format!("{name}: the client gave up (filled)"), &mut y);
            let _ = legend_area.draw(&Circle::new((16, y), 4, c.stroke_width(2)));
            line(format!("{name}: the broker dropped it (hollow)"), &mut y);
        }
        let _ = legend_area.draw(&Rectangle::new(
            [(8, y - 6), (24, y + 6)],
            BLACK.mix(0.12).filled(),
        ));
        line("the broker's band (right of the client's)".into(), &mut y);
        if report.cells.iter().any(|r| !r.will.is_empty()) {
            let _ = legend_area.draw(&Cross::new((16, y), 5, BLACK.stroke_width(1)));
            line(
                "the watcher heard the will (the backend knew)".into(),
                &mut y,
            );
        }
        for (oi, outage) in outages.iter().enumerate() {
            let at = (16, y);
            let style = BLACK.filled();
            let _ = match oi % 4 {
                0 => legend_area.draw(&Circle::new(at, 4, style)),
                1 => legend_area.draw(&Rectangle::new([(12, y - 4), (20, y + 4)], style)),
                2 => legend_area.draw(&Polygon::new(
                    vec![(16, y - 5), (21, y), (16, y + 5), (11, y)],
                    style,
                )),
                _ => legend_area.draw(&TriangleMarker::new(at, 5, style)),
            };
            line(format!("marker shape: a {outage} s outage"), &mut y);
        }
        let _ = legend_area.draw(&PathElement::new(
            vec![(8, y), (24, y)],
            BLACK.mix(0.5).stroke_width(1),
        ));
        line("where the outage ended".into(), &mut y);
        let notes = [
            "Every run is a point; runs sit side by side in their column.",
            "\"never\": the side did not give up in the run.",
            "A run whose connection had ended before the fault",
            "began is not drawn (see sweep.md).",
        ];
        for (i, note) in notes.iter().enumerate() {
            let _ = legend_area.draw(&Text::new(
                *note,
                (10, y + 20 + 18 * i as i32),
                ("sans-serif", 12).into_font(),
            ));
        }
        let _ = root.present();
    }
    Some(svg)
}

fn median_bars(stat: Option<&Stat>, x: f64) -> Option<(f64, f64, f64, f64, usize, usize)> {
    stat.map(|s| (x, s.median, s.min, s.max, s.count, s.of))
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
                .caption(
                    format!(
                        "{}: {title} (dot: median over runs, bar: min–max, n: runs with a value)",
                        report.scenario
                    ),
                    ("sans-serif", 14),
                )
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
                let shift = (i as f64 - (series.len() as f64 - 1.0) / 2.0) * x_max * 0.025;
                let mut points: Vec<(f64, f64, f64, f64, usize, usize)> = report
                    .cells
                    .iter()
                    .filter(|r| &label_of(r) == name)
                    .filter_map(|r| median_bars(r.metrics.get(metric), r.outage_s? + shift))
                    .collect();
                points.sort_by(|a, b| a.0.total_cmp(&b.0));
                let _ = chart.draw_series(points.iter().map(|&(x, _, lo, hi, _, _)| {
                    PathElement::new(vec![(x, lo), (x, hi)], c.stroke_width(2))
                }));
                let _ = chart.draw_series(points.iter().map(|&(x, _, _, hi, n, of)| {
                    Text::new(
                        format!("n={n}/{of}"),
                        (x, hi),
                        ("sans-serif", 10).into_font(),
                    )
                }));
                if let Ok(a) = chart.draw_series(
                    points
                        .iter()
                        .map(|&(x, m, _, _, _, _)| Circle::new((x, m), 4, c.filled())),
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
