//! `timeline.svg`: the run at a glance.
//!
//! The upper panel plots every delivered message as its publish time against its receive time:
//! on time, the points lie on the grey diagonal; a hole in the data is a gap along it; late data
//! sits to the right of it. Fault windows are shaded across both panels. The lower panel has one
//! lane per connection of a subscriber: a solid bar while both sides had it open, a thin bar from
//! the first side's close by the evidence (its FIN or RST, the client's give-up, the broker's
//! log) until both were done or the proxy let it go (the old connection does not look alive
//! through an outage it did not survive), and the marks that tell the story: each connect
//! attempt the client reported (▲, whether or not it reached the wire), PINGREQ
//! (a cross, red when no PINGRESP answered it), PINGRESP (a dot just below), the client giving up
//! (▼), the will watcher hearing the client's will (W, in runs with one), the broker closing
//! its side (■), stale data reaching a connection the client had left
//! (◆), a reset (R), and on a real link (a namespace run's capture) every retransmission and SYN
//! retry, the client's above its bar and the broker's below. Only plotters' SVG backend is used, so text needs no fonts at build
//! time.

use crate::{Report, Run};
use linecut_events::{CloseHow, ClosedBy, Direction, DisconnectCause, EventKind, Fate, Leg};
use linecut_mqtt::PacketType;
use plotters::prelude::*;
use std::collections::BTreeMap;

const WIDTH: u32 = 1100;
const MAX_POINTS: usize = 20_000;
const HEIGHT: u32 = 720;
const FAULT: RGBColor = RGBColor(235, 120, 100);
const LIFE: RGBColor = RGBColor(90, 130, 200);
const GAVE_UP: RGBColor = RGBColor(200, 40, 40);
const STALE: RGBColor = RGBColor(230, 140, 20);
const RESENT: RGBColor = RGBColor(120, 60, 160);
/// Title lines are wrapped at this many characters (the canvas holds about 130 at 18 px).
const TITLE_CHARS: usize = 110;
/// Where the marks' legend starts under the lanes, and the height of each of its lines.
const LEGEND_TOP: u32 = 6;
const LEGEND_LINE: u32 = 15;

struct Lane {
    label: String,
    opened: f64,
    /// When the first side closed it (client or broker): the end of the solid bar.
    first_close: Option<f64>,
    closed: f64,
    client_closed: Option<f64>,
    broker_closed: Option<f64>,
    resets: Vec<f64>,
    stale: Option<f64>,
    /// The client ended it in order (DISCONNECT): its closes are not the story.
    orderly: bool,
    /// On a real link (a capture): each retransmission, by the client (true) or the broker.
    resent: Vec<(f64, bool)>,
    /// The last moment anything happened on it, and whether an MQTT packet ever crossed it
    /// (an attempt whose handshake never completed ends at its last SYN, not the run's end).
    last_seen: f64,
    mqtt: bool,
    /// The proxy said when it let the connection go; a capture has no such record, and the
    /// lane ends when both sides are done by their own records instead.
    released: bool,
}

/// Splits a title into lines of at most `width` characters, at `__` (a sweep cell's axes), ` — `
/// or spaces, so long names wrap instead of running off the canvas.
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    let pieces = text.split_inclusive(['_', ' ']);
    for piece in pieces {
        if line.chars().count() + piece.chars().count() > width && !line.is_empty() {
            lines.push(line.trim_end().to_string());
            line.clear();
        }
        line.push_str(piece);
    }
    if !line.trim().is_empty() {
        lines.push(line.trim_end().to_string());
    }
    lines
}

/// Seconds from the experiment start, for a time in µs.
#[derive(Clone, Copy)]
struct Clock(i64);

impl Clock {
    fn s(self, us: i64) -> f64 {
        (us - self.0) as f64 / 1e6
    }
}

/// The marks drawn on the lanes, each at its time on its lane (an index into the lanes).
struct Marks {
    gave_up: Vec<(f64, usize)>,
    attempts: Vec<(f64, usize)>,
    /// When the will watcher heard the client's will, on the row of its connection open or
    /// last opened at the time.
    wills: Vec<(f64, usize)>,
    /// (time, lane, a PINGRESP rather than a PINGREQ)
    pings: Vec<(f64, usize, bool)>,
}

pub fn render(report: &Report, run: &Run) -> String {
    let clock = Clock(report.experiment_start_us);
    let t = |us: i64| clock.s(us);
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

    let (lanes, client_of) = wire_lanes(run, clock, end);
    let lanes = with_sides_records(run, clock, lanes, &client_of);
    let lane_index: BTreeMap<u64, usize> = lanes
        .iter()
        .enumerate()
        .map(|(i, (c, _))| (*c, i))
        .collect();
    let marks = marks(run, clock, &lanes, &client_of, &lane_index);
    draw(report, end, &windows, &points, &lanes, &marks)
}

/// One lane per connection the wire saw, in the order they opened, with what the wire says
/// of its end; and the client id of each connection whose CONNECT named one.
fn wire_lanes(run: &Run, clock: Clock, end: f64) -> (BTreeMap<u64, Lane>, BTreeMap<u64, String>) {
    let t = |us: i64| clock.s(us);
    let mut lanes: BTreeMap<u64, Lane> = BTreeMap::new();
    let mut client_of: BTreeMap<u64, String> = BTreeMap::new();
    for e in &run.proxy {
        let conn_of = match &e.kind {
            EventKind::MqttPacket(p) => Some((p.conn, true)),
            EventKind::RawBytes(r) => Some((r.conn, false)),
            EventKind::LegClosed(l) => Some((l.conn, false)),
            _ => None,
        };
        if let Some((conn, mqtt)) = conn_of {
            if let Some(lane) = lanes.get_mut(&conn) {
                lane.last_seen = lane.last_seen.max(t(e.ts_us));
                lane.mqtt |= mqtt;
            }
        }
        match &e.kind {
            EventKind::ConnOpened(o) => {
                lanes.insert(
                    o.conn,
                    Lane {
                        label: format!("conn {}", o.conn),
                        opened: t(e.ts_us),
                        first_close: None,
                        closed: end,
                        client_closed: None,
                        broker_closed: None,
                        resets: Vec::new(),
                        stale: None,
                        orderly: false,
                        resent: Vec::new(),
                        last_seen: t(e.ts_us),
                        mqtt: false,
                        released: false,
                    },
                );
            }
            EventKind::LegClosed(l) => {
                if let Some(lane) = lanes.get_mut(&l.conn) {
                    let at = t(e.ts_us);
                    if l.how == CloseHow::Rst && l.by == ClosedBy::Peer {
                        lane.resets.push(at);
                    }
                    match (l.leg, l.by) {
                        (Leg::Client, ClosedBy::Peer) => {
                            lane.client_closed.get_or_insert(at);
                        }
                        (Leg::Upstream, ClosedBy::Peer) => {
                            lane.broker_closed.get_or_insert(at);
                        }
                        // The proxy's FIN toward a client that had left: stale data.
                        (Leg::Client, ClosedBy::Proxy)
                            if l.how == CloseHow::Fin && lane.client_closed.is_some() =>
                        {
                            lane.stale.get_or_insert(at);
                        }
                        _ => {}
                    }
                    let first = lane.first_close.map_or(at, |f| f.min(at));
                    lane.first_close = Some(first);
                }
            }
            EventKind::RawBytes(r) if e.source == linecut_events::Source::Capture => {
                if let Some(lane) = lanes.get_mut(&r.conn) {
                    lane.resent.push((t(e.ts_us), r.dir == Direction::Up));
                    if r.dir == Direction::Down && r.fate == Fate::Released {
                        lane.stale.get_or_insert(t(e.ts_us));
                    }
                }
            }
            EventKind::MqttPacket(p)
                if p.dir == Direction::Up && p.kind() == Some(PacketType::Disconnect) =>
            {
                if let Some(lane) = lanes.get_mut(&p.conn) {
                    lane.orderly = true;
                }
            }
            EventKind::MqttPacket(p) if p.dir == Direction::Down && p.fate == Fate::Released => {
                if let Some(lane) = lanes.get_mut(&p.conn) {
                    if lane.client_closed.is_some() {
                        lane.stale.get_or_insert(t(e.ts_us));
                    }
                }
            }
            EventKind::MqttPacket(p) if p.kind() == Some(PacketType::Connect) => {
                if let Some(id) = &p.client_id {
                    client_of.insert(p.conn, id.clone());
                }
            }
            EventKind::ConnClosed(c) => {
                if let Some(l) = lanes.get_mut(&c.conn) {
                    l.closed = t(e.ts_us);
                    l.released = true;
                }
            }
            _ => {}
        }
    }
    (lanes, client_of)
}

/// The lanes with the sides' own records of each connection's end, and at most 24 of them.
fn with_sides_records(
    run: &Run,
    clock: Clock,
    mut lanes: BTreeMap<u64, Lane>,
    client_of: &BTreeMap<u64, String>,
) -> Vec<(u64, Lane)> {
    let t = |us: i64| clock.s(us);
    // The sides' own records of a connection's end: the client's give-up (its report) and the
    // broker's drop (its log), on the client's connection open at the time. On a cut link the
    // FIN of either waits for the line, so the wire alone would keep the bar solid through an
    // outage neither side still believed in.
    // Grouped by client: a lane looks at its own client's records only, so a fleet of many
    // clients costs what its records cost (a scan of every client's records per lane was
    // quadratic: minutes for 100,000 short sessions).
    type ByClient = std::collections::HashMap<String, Vec<f64>>;
    let mut own_ends: ByClient = ByClient::new();
    for e in &run.subscriber {
        if let EventKind::Disconnected(d) = &e.kind {
            if d.cause != DisconnectCause::Requested {
                own_ends
                    .entry(d.client.clone())
                    .or_default()
                    .push(t(e.ts_us));
            }
        }
    }
    let mut broker_drops: ByClient = ByClient::new();
    for l in &run.broker_log {
        if l.kind == linecut_events::broker_log::BrokerLogKind::KeepaliveTimeout {
            broker_drops
                .entry(l.client.clone())
                .or_default()
                .push(t(l.ts_us));
        }
    }
    let mut opened_of: std::collections::HashMap<String, Vec<(u64, f64)>> =
        std::collections::HashMap::new();
    for (conn, l) in lanes.iter() {
        if let Some(id) = client_of.get(conn) {
            opened_of
                .entry(id.clone())
                .or_default()
                .push((*conn, l.opened));
        }
    }
    for (conn, lane) in lanes.iter_mut() {
        if let Some(id) = client_of.get(conn) {
            lane.label = format!("conn {conn} ({id})");
            // This connection's time as the client's: until its next connection opened.
            let next = opened_of
                .get(id)
                .into_iter()
                .flatten()
                .filter(|(c, o)| c != conn && *o > lane.opened)
                .map(|(_, o)| *o)
                .fold(f64::INFINITY, f64::min);
            let in_life = |list: &ByClient| {
                list.get(id)
                    .into_iter()
                    .flatten()
                    .filter(|at| **at >= lane.opened && **at < next)
                    .copied()
                    .fold(f64::INFINITY, f64::min)
            };
            let gave_up = in_life(&own_ends);
            let dropped = in_life(&broker_drops);
            for side in [gave_up, dropped] {
                if side.is_finite() {
                    lane.first_close = Some(lane.first_close.map_or(side, |f| f.min(side)));
                }
            }
            if !lane.released {
                // Done when both sides are, each by its earliest record (its own, or its FIN
                // or RST on the wire); while one is unknown the lane runs on.
                let client_done = lane.client_closed.unwrap_or(f64::INFINITY).min(gave_up);
                let broker_done = lane.broker_closed.unwrap_or(f64::INFINITY).min(dropped);
                let both = client_done.max(broker_done);
                if both.is_finite() {
                    lane.closed = lane.closed.min(both.max(lane.opened));
                }
            }
        }
        if !lane.mqtt && lane.first_close.is_none() {
            lane.closed = lane.closed.min(lane.last_seen.max(lane.opened + 0.05));
            lane.label = format!("conn {conn} (attempt, no handshake)");
        }
    }
    // Many connections (a fleet) would make unreadable lanes: keep the first 24.
    lanes.into_iter().take(24).collect()
}

/// The give-ups, connect attempts and pings, each on its lane.
fn marks(
    run: &Run,
    clock: Clock,
    lanes: &[(u64, Lane)],
    client_of: &BTreeMap<u64, String>,
    lane_index: &BTreeMap<u64, usize>,
) -> Marks {
    let t = |us: i64| clock.s(us);
    // The client giving up, on the lane it gave up: its own report (one per disconnect: a
    // repeat at the same moment is the same give-up).
    let mut gave_up: Vec<(f64, usize)> = Vec::new();
    let mut last_give_up: BTreeMap<&str, f64> = BTreeMap::new();
    for e in &run.subscriber {
        let EventKind::Disconnected(d) = &e.kind else {
            continue;
        };
        if d.cause == DisconnectCause::Requested {
            continue;
        }
        let at = t(e.ts_us);
        if last_give_up
            .get(d.client.as_str())
            .is_some_and(|prev| at - prev <= crate::clients::SAME_MOMENT_US as f64 / 1e6)
        {
            continue;
        }
        last_give_up.insert(&d.client, at);
        let lane = lanes.iter().rposition(|(conn, l)| {
            client_of.get(conn) == Some(&d.client) && l.opened <= at && at <= l.closed + 0.5
        });
        if let Some(lane) = lane {
            gave_up.push((at, lane));
        }
    }
    // Every connect attempt the client reported, on its row (the lane of its connection open or
    // last opened at the time): attempts that never reached the wire (refused in its kernel,
    // dead in neighbour resolution) have no lane of their own, and are drawn all the same.
    let mut attempts: Vec<(f64, usize)> = Vec::new();
    for e in &run.subscriber {
        let EventKind::ConnectAttempt(a) = &e.kind else {
            continue;
        };
        let at = t(e.ts_us);
        let lane = lanes
            .iter()
            .rposition(|(conn, l)| client_of.get(conn) == Some(&a.client) && l.opened <= at)
            .or_else(|| {
                lanes
                    .iter()
                    .position(|(conn, _)| client_of.get(conn) == Some(&a.client))
            });
        if let Some(lane) = lane {
            attempts.push((at, lane));
        }
    }
    // Pings ride on whichever connection of that client was open at the time.
    let mut pings: Vec<(f64, usize, bool)> = Vec::new();
    for e in &run.subscriber {
        let (client, answered) = match &e.kind {
            EventKind::PingSent(c) => (&c.client, false),
            EventKind::PingReceived(c) => (&c.client, true),
            _ => continue,
        };
        let at = t(e.ts_us);
        let lane = lanes.iter().rposition(|(conn, l)| {
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

    let mut wills: Vec<(f64, usize)> = Vec::new();
    for e in run.watcher.iter().flatten() {
        let EventKind::WillReceived(w) = &e.kind else {
            continue;
        };
        let Some(client) = &w.client else { continue };
        let at = t(e.ts_us);
        if let Some(lane) = lanes
            .iter()
            .rposition(|(conn, l)| client_of.get(conn) == Some(client) && l.opened <= at)
        {
            wills.push((at, lane));
        }
    }

    Marks {
        gave_up,
        attempts,
        wills,
        pings,
    }
}

/// The picture: title, the deliveries panel, the lanes panel and the legend.
fn draw(
    report: &Report,
    end: f64,
    windows: &[(f64, f64, String)],
    points: &[(f64, f64)],
    lanes: &[(u64, Lane)],
    marks: &Marks,
) -> String {
    // The marks' legend, under the lanes, wrapped to the canvas (a fourth line when the run had
    // a will watcher), and the canvas as tall as its lines: it was 40 px for three, which cut
    // the last line's lower half off.
    let mut legend = "Connections: solid while both sides had one, thin from the first side's close (its FIN or RST, the client's give-up, the broker's log) until both were done. ▲ connect attempt (the client's record, whether or not it reached the wire), × PINGREQ (red: unanswered), ● PINGRESP, ▼ client gave up, ■ broker closed, ◆ stale data reached an abandoned connection, R reset, | resent on a real link (client's above a bar, broker's below).".to_string();
    if !marks.wills.is_empty() {
        legend.push_str(" W the will watcher heard the client's will (the backend knew).");
    }
    let legend = wrap(&legend, TITLE_CHARS + 40);
    // Each line is 15 px, its text about 10 px tall from where it is placed (`dy` 0.76 em of
    // a 9.7 px font plus descenders): the canvas ends 12 px under the last line's top.
    let legend_h = LEGEND_TOP + LEGEND_LINE * (legend.len() as u32).saturating_sub(1) + 12;
    let mut svg = String::new();
    {
        let root =
            SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT + legend_h)).into_drawing_area();
        let _ = root.fill(&WHITE);
        let mut title = wrap(&report.scenario, TITLE_CHARS);
        title.extend(wrap(
            &format!("{} — {}", report.broker, report.client_library),
            TITLE_CHARS + 20,
        ));
        let title_h = 8 + 20 * title.len() as u32;
        for (i, line) in title.iter().enumerate() {
            let size = if i == 0 { 17 } else { 13 };
            let _ = root.draw(&Text::new(
                line.clone(),
                (14, 6 + 20 * i as i32),
                ("sans-serif", size).into_font(),
            ));
        }
        let (_, body) = root.split_vertically(title_h);
        let (body, _) = body.split_vertically(HEIGHT - title_h);
        let (upper, lower) = body.split_vertically((HEIGHT - title_h) * 55 / 100);
        let x_max = end * 1.02;
        draw_deliveries(&upper, x_max, windows, points);
        draw_lanes(&lower, x_max, windows, lanes, marks);
        for (i, line) in legend.iter().enumerate() {
            let _ = root.draw(&Text::new(
                line.clone(),
                (14, (HEIGHT + LEGEND_TOP + LEGEND_LINE * i as u32) as i32),
                ("sans-serif", 12).into_font(),
            ));
        }
        let _ = root.present();
    }
    svg
}

/// Every delivered message, publish time against receive time, over the fault windows.
fn draw_deliveries(
    upper: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    x_max: f64,
    windows: &[(f64, f64, String)],
    points: &[(f64, f64)],
) {
    if let Ok(mut chart) = ChartBuilder::on(upper)
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
        for (a, b, _) in windows {
            let _ = chart.draw_series(std::iter::once(Rectangle::new(
                [(*a, 0.0), (*b, x_max)],
                FAULT.mix(0.18).filled(),
            )));
        }
        let _ = chart
            .draw_series(LineSeries::new(
                vec![(0.0, 0.0), (x_max, x_max)],
                BLACK.mix(0.25),
            ))
            .map(|s| {
                s.label("published = received (on time)").legend(|(x, y)| {
                    PathElement::new(vec![(x - 6, y), (x + 6, y)], BLACK.mix(0.25))
                })
            });
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
}

/// One lane per connection, with its marks, over the fault windows.
fn draw_lanes(
    lower: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    x_max: f64,
    windows: &[(f64, f64, String)],
    lanes: &[(u64, Lane)],
    marks: &Marks,
) {
    let Marks {
        gave_up,
        attempts,
        wills,
        pings,
    } = marks;
    let lane_index_len = lanes.len();
    let n = lanes.len().max(1);
    if let Ok(mut chart) = ChartBuilder::on(lower)
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(64)
        .build_cartesian_2d(0.0..x_max, 0.0..n as f64)
    {
        let _ = chart
            .configure_mesh()
            .x_desc("time (s from experiment start)")
            .disable_y_mesh()
            .y_labels(0)
            .light_line_style(WHITE.mix(0.0))
            .draw();
        for (a, b, kind) in windows {
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
            let solid_end = lane.first_close.unwrap_or(lane.closed).min(lane.closed);
            let _ = chart.draw_series(std::iter::once(Rectangle::new(
                [
                    (lane.opened, y + 0.2),
                    (solid_end.max(lane.opened + 0.01), y + 0.5),
                ],
                LIFE.mix(0.55).filled(),
            )));
            if lane.closed > solid_end {
                let _ = chart.draw_series(std::iter::once(Rectangle::new(
                    [(solid_end, y + 0.32), (lane.closed, y + 0.38)],
                    LIFE.mix(0.35).filled(),
                )));
            }
            // The label sits just above its own bar, where the connection opened.
            let _ = chart.draw_series(std::iter::once(Text::new(
                lane.label.clone(),
                (lane.opened, y + 0.85),
                ("sans-serif", 12).into_font().color(&BLACK.mix(0.8)),
            )));
            if let Some(b) = lane.broker_closed.filter(|_| !lane.orderly) {
                let _ = chart.draw_series(std::iter::once(
                    EmptyElement::at((b, y + 0.35))
                        + Rectangle::new([(-4, -4), (4, 4)], BLACK.filled()),
                ));
            }
            if let Some(st) = lane.stale {
                let _ = chart.draw_series(std::iter::once(
                    EmptyElement::at((st, y + 0.35))
                        + Polygon::new(vec![(0, -6), (6, 0), (0, 6), (-6, 0)], STALE.filled()),
                ));
            }
            // Retransmissions on a real link: the client's above the bar, the broker's below.
            for &(x, up) in &lane.resent {
                let (y0, y1) = if up {
                    (y + 0.5, y + 0.62)
                } else {
                    (y + 0.08, y + 0.2)
                };
                let _ = chart.draw_series(std::iter::once(PathElement::new(
                    vec![(x, y0), (x, y1)],
                    RESENT.stroke_width(1),
                )));
            }
            for r in &lane.resets {
                let _ = chart.draw_series(std::iter::once(Text::new(
                    "R",
                    (*r, y + 0.62),
                    ("sans-serif", 13).into_font().color(&GAVE_UP),
                )));
            }
        }
        let _ = chart.draw_series(attempts.iter().map(|&(x, lane)| {
            EmptyElement::at((x, lane as f64 + 0.35))
                + Polygon::new(vec![(-4, -14), (4, -14), (0, -20)], BLACK.mix(0.6).filled())
        }));
        let _ = chart.draw_series(gave_up.iter().map(|&(x, lane)| {
            EmptyElement::at((x, lane as f64 + 0.35))
                + Polygon::new(vec![(-6, -10), (6, -10), (0, -1)], GAVE_UP.filled())
        }));
        // The backend heard: the will, under the bar.
        let _ = chart.draw_series(wills.iter().map(|&(x, lane)| {
            EmptyElement::at((x, lane as f64 + 0.35))
                + Text::new("W", (-5, 4), ("sans-serif", 13).into_font().color(&GAVE_UP))
        }));
        // A PINGREQ is answered when a PINGRESP came on its lane before the next PINGREQ.
        let mut answered_req: Vec<bool> = Vec::new();
        for (i, &(x, lane, resp)) in pings.iter().enumerate() {
            if resp {
                continue;
            }
            let answered = pings[i + 1..]
                .iter()
                .filter(|p| p.1 == lane)
                .take_while(|p| p.2 || p.0 == x)
                .any(|p| p.2);
            answered_req.push(answered);
        }
        let reqs = pings.iter().filter(|p| !p.2).zip(answered_req);
        let _ = chart.draw_series(reqs.map(|(&(x, lane, _), answered)| {
            Cross::new(
                (x, lane_index_len.min(lane) as f64 + 0.42),
                5,
                if answered { BLACK } else { GAVE_UP }.stroke_width(2),
            )
        }));
        let _ = chart.draw_series(pings.iter().filter(|p| p.2).map(|&(x, lane, _)| {
            Circle::new(
                (x, lane_index_len.min(lane) as f64 + 0.25),
                3,
                BLACK.filled(),
            )
        }));
    }
}
