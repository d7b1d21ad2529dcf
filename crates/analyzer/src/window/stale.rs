//! What reached the connections the client had left (held PUBLISHes, retransmitted bytes,
//! the broker's FIN or reset) and, on a capture, what each side resent during the outage.

use super::{RunContext, View, Window};
use crate::clients::{secs, Client};
use crate::frames::{resolutions, CitedFrame, FrameLedger, Sender, WireSign};
use crate::index::{count_in, first_at_or_after, ConnIndex};
use crate::report::{Retransmitted, StaleData};
use std::collections::BTreeSet;

/// The client's way back and when it left its old connections, which stale data is timed
/// against.
pub(crate) struct Reconnect {
    pub connack: Option<i64>,
    pub suback: Option<i64>,
    /// When it left its connection: closed it or, if it said so first, gave up.
    pub abandoned: Option<i64>,
}

/// What reached the live connections after the client had left them.
pub(crate) fn stale_data(
    ctx: &RunContext<'_>,
    v: &View,
    w: &Window,
    Reconnect {
        connack: new_connack,
        suback: new_suback,
        abandoned,
    }: Reconnect,
) -> Option<StaleData> {
    let (index, frames, wire, horizon) = (ctx.index, &ctx.run.frames, ctx.wire, v.horizon);
    let mut out: Option<StaleData> = None;
    for (conn, f) in v
        .live
        .iter()
        .filter_map(|conn| Some((*conn, index.get(*conn)?)))
    {
        let closed = first_at_or_after(&f.client_closed_by_peer, w.start);
        let Some(left) = closed.into_iter().chain(abandoned).min() else {
            continue;
        };
        // On a real link what was captured during the cut never arrived: only what crossed
        // after the restore did.
        let after = if wire.seen_is_delivered() {
            left + 1
        } else {
            (left + 1).max(w.end)
        };
        let fins = if wire.fin_is_the_brokers() {
            &f.upstream_closed_by_peer
        } else {
            &f.fin_to_client
        };
        let first_publish =
            first_at_or_after(&f.publishes_released, after).filter(|t| *t < horizon);
        // A broker reset is not its FIN: the capture says which the broker sent.
        let is_reset = |t: &i64| f.upstream_resets.binary_search(t).is_ok();
        let first_fin = fins
            .iter()
            .copied()
            .find(|t| *t >= after && *t < horizon && !is_reset(t));
        let first_broker_rst = if f.captured {
            first_at_or_after(&f.upstream_resets, after).filter(|t| *t < horizon)
        } else {
            None
        };
        let client_resent: u64 = f
            .resent_up
            .iter()
            .filter(|(t, _)| *t >= after && first_broker_rst.is_none_or(|r| *t <= r))
            .filter(|(t, _)| *t < horizon)
            .map(|(_, n)| n)
            .sum();
        // Through a capture every retransmission is known; after the client had left, the
        // ones that crossed after the restore are the stale data arriving.
        let resent_list = if wire.shows_retransmissions() {
            &f.resent_down
        } else {
            &f.stale_resent
        };
        let resent: Vec<(i64, u64)> = resent_list
            .iter()
            .copied()
            .filter(|(t, _)| *t >= after && *t < horizon)
            .collect();
        let first_resent = resent.first().map(|(t, _)| *t);
        let Some(first) = first_publish
            .into_iter()
            .chain(first_fin)
            .chain(first_resent)
            .chain(first_broker_rst)
            .min()
        else {
            continue;
        };
        let delivered = count_in(&f.publishes_released, after, horizon);
        let discarded = count_in(&f.publishes_discarded, w.start, horizon);
        let held = count_in(&f.publishes_held, w.start, horizon);
        let st = out.get_or_insert(StaleData {
            held_publishes: 0,
            delivered_publishes: 0,
            discarded_publishes: 0,
            fin_delivered: false,
            resent_bytes: 0,
            fin_after_end_s: first_fin.map(|t| secs(t - w.end)),
            answered_by_rst: false,
            broker_rst_after_end_s: first_broker_rst.map(|t| secs(t - w.end)),
            client_resent_bytes: 0,
            broker_fin_held: false,
            first_after_end_s: secs(first - w.end),
            after_new_connack_s: new_connack.map(|a| secs(first - a)),
            after_new_suback_s: new_suback.map(|a| secs(first - a)),
            frames: Vec::new(),
        });
        // The frames that prove each part, when the wire is a capture: the first stale
        // arrival, the broker's FIN or RST, the client's retransmissions the RST answered,
        // and the client's own RST.
        let client_rst = first_at_or_after(&f.client_resets, first).filter(|t| *t < horizon);
        let cited = [
            first_publish.and_then(|t| frames.at(conn, Sender::Broker, WireSign::StalePublish, t)),
            first_resent.and_then(|t| frames.at(conn, Sender::Broker, WireSign::Retransmission, t)),
            first_fin.and_then(|t| frames.at(conn, Sender::Broker, WireSign::Fin, t)),
            first_broker_rst.and_then(|t| frames.at(conn, Sender::Broker, WireSign::Rst, t)),
            client_rst.and_then(|t| frames.at(conn, Sender::Client, WireSign::Rst, t)),
        ];
        st.frames.extend(cited.into_iter().flatten());
        if let Some(rst) = first_broker_rst {
            st.frames.extend(
                frames
                    .during(conn, &[WireSign::Retransmission], after, rst + 1)
                    .filter(|x| x.sender == Sender::Client),
            );
        }
        st.frames.sort_by_key(|x| x.frame);
        st.frames.dedup();
        // Held events may predate the log's start of detail; never report fewer held than
        // delivered and discarded together.
        st.held_publishes += held.max(delivered + discarded);
        st.delivered_publishes += delivered;
        st.discarded_publishes += discarded;
        st.fin_delivered |= first_fin.is_some();
        st.resent_bytes += resent.iter().map(|(_, n)| n).sum::<u64>();
        st.client_resent_bytes += client_resent;
        // The client's reset answers what the broker sent; a reset from the broker's side at
        // the same moment is the broker's, not the client's answer.
        st.answered_by_rst |= first_at_or_after(&f.client_resets, first)
            .is_some_and(|t| t < horizon && first_broker_rst.is_none_or(|r| t < r));
        st.broker_fin_held |= f
            .upstream_closed_by_peer
            .iter()
            .any(|t| *t >= w.start && *t < w.end && !is_reset(t));
    }
    out
}

/// Where the first stale arrival fell against the client's new session: its SUBACK when it
/// had one (what the 2014 post timed it against), else its CONNACK.
fn relative_to_reconnect(st: &StaleData) -> String {
    let (d, what) = match (st.after_new_suback_s, st.after_new_connack_s) {
        (Some(d), _) => (d, "SUBACK"),
        (None, Some(d)) => (d, "CONNACK"),
        (None, None) => return String::new(),
    };
    if d < 0.0 {
        format!(" ({:.3} s before the new {what})", -d)
    } else {
        format!(" ({d:.3} s after the new {what})")
    }
}

/// The stale-data story in words: only the parts that happened, each with the frames that
/// show it when the wire is a capture.
pub(crate) fn stale_evidence(st: &StaleData) -> String {
    use crate::frames::{cite, of};
    let frames = |sender, sign| {
        cite(of(&st.frames, sender, sign))
            .map(|c| format!(" ({c})"))
            .unwrap_or_default()
    };
    let when = format!(
        "{:.3} s after the line returned{}",
        st.first_after_end_s,
        relative_to_reconnect(st)
    );
    let mut parts = Vec::new();
    if st.resent_bytes > 0 {
        parts.push(format!(
            "{} byte(s) the broker had sent during the outage reached the abandoned connection as its kernel retransmitted them, the first {when}{}",
            st.resent_bytes,
            frames(Sender::Broker, WireSign::Retransmission)
        ));
    }
    if st.delivered_publishes > 0 || st.held_publishes > 0 {
        parts.push(format!(
            "{} of {} held PUBLISH(es) delivered to the abandoned connection, the first {when}{}",
            st.delivered_publishes,
            st.held_publishes,
            frames(Sender::Broker, WireSign::StalePublish)
        ));
    }
    if st.discarded_publishes > 0 {
        parts.push(format!(
            "{} discarded when the proxy ended the connection",
            st.discarded_publishes
        ));
    }
    let too = if parts.is_empty() { "" } else { " too" };
    let fin = frames(Sender::Broker, WireSign::Fin);
    parts.push(match (st.fin_after_end_s, st.broker_fin_held) {
        (Some(t), _) if t > 0.0 => format!(
            "the broker's FIN reached the abandoned connection{too}, {t:.3} s after the line returned{}{fin}: the broker had closed the connection some time before, and its FIN waited for the line",
            // The reconnect offset is the first stale arrival's: said here when the FIN was it.
            if t == st.first_after_end_s {
                relative_to_reconnect(st)
            } else {
                String::new()
            }
        ),
        (Some(_), _) => format!("the broker's FIN reached the abandoned connection{too}{fin}"),
        (None, true) => "the broker's FIN discarded".into(),
        // A reset from the broker's side is said below, and says that no FIN came.
        (None, false) if st.broker_rst_after_end_s.is_some() => String::new(),
        (None, false) => "no FIN".into(),
    });
    parts.retain(|p| !p.is_empty());
    if let Some(t) = st.broker_rst_after_end_s {
        let answered = if st.client_resent_bytes > 0 {
            format!(
                ", answering {} byte(s) the client's kernel retransmitted on it{}",
                st.client_resent_bytes,
                frames(Sender::Client, WireSign::Retransmission)
            )
        } else {
            String::new()
        };
        parts.push(format!(
            "the broker's side reset the abandoned connection (RST, not a FIN{}) {t:.3} s after the line returned{answered}{}: the broker had closed that socket before",
            cite(of(&st.frames, Sender::Broker, WireSign::Rst))
                .map(|c| format!("; {c}"))
                .unwrap_or_default(),
            if t == st.first_after_end_s {
                relative_to_reconnect(st)
            } else {
                String::new()
            }
        ));
    }
    if st.answered_by_rst {
        parts.push(format!(
            "the client's side answered with a reset (RST){}",
            frames(Sender::Client, WireSign::Rst)
        ));
    }
    parts.join("; ")
}

/// What the capture shows each side resending during the outage, on any of the client's
/// connections, how many connections it tried to open, and the neighbour resolutions its
/// address made (an attempt that dies there never shows as TCP).
pub(crate) fn retransmitted(
    index: &ConnIndex,
    frames: &FrameLedger,
    c: &Client,
    w: &Window,
) -> Retransmitted {
    let mut r = Retransmitted::default();
    let mut spacings = Vec::new();
    // Attempts with a SYN only have no client id on the wire: they are the client's if they
    // come from its address (its namespace's), which its identified connections share.
    let attempts = index.syn_only_from(&c.conns);
    let mut ips = BTreeSet::new();
    for (conn, f) in c
        .conns
        .iter()
        .chain(&attempts)
        .filter_map(|conn| Some((*conn, index.get(*conn)?)))
    {
        if let Some(ip) = f
            .client_ip
            .as_deref()
            .and_then(|ip| ip.parse::<std::net::IpAddr>().ok())
        {
            ips.insert(ip);
        }
        // Data (and FIN) retransmissions; SYN retries, which carry no bytes, are counted below.
        let during = |list: &[(i64, u64)]| {
            list.iter()
                .filter(|(t, n)| *t >= w.start && *t < w.end && *n > 0)
                .fold((0, 0), |(n, b), (_, len)| (n + 1, b + len))
        };
        let (n, b) = during(&f.resent_up);
        r.up_segments += n;
        r.up_bytes += b;
        let (n, b) = during(&f.resent_down);
        r.down_segments += n;
        r.down_bytes += b;
        if let Some(opened) = f.opened_us.filter(|t| *t >= w.start && *t < w.end) {
            r.connects_tried += 1;
            // The SYN, then each retry: a resent segment with no bytes.
            let mut syns = vec![opened];
            syns.extend(f.resent_up.iter().filter(|(_, n)| *n == 0).map(|(t, _)| *t));
            r.syn_retries += syns.len() as u64 - 1;
            spacings.extend(syns.windows(2).map(|p| (p[1] - p[0]) as f64 / 1e6));
            r.frames.extend(frames.during(
                conn,
                &[WireSign::Syn, WireSign::SynRetry],
                w.start,
                i64::MAX,
            ));
        }
    }
    if !spacings.is_empty() {
        spacings.sort_by(f64::total_cmp);
        r.syn_spacing_s = Some(secs((spacings[spacings.len() / 2] * 1e6) as i64));
    }
    // Neighbour resolution from the client's address during the outage.
    let requests: Vec<CitedFrame> = ips
        .iter()
        .flat_map(|ip| frames.neighbour_requests(*ip, w.start, w.end))
        .collect();
    let starts = resolutions(&requests);
    r.neighbour_requests = requests.len() as u64;
    r.resolutions = starts.len() as u64;
    r.unanswered_resolutions = starts
        .iter()
        .enumerate()
        .filter(|(i, t)| {
            let until = starts.get(i + 1).copied().unwrap_or(w.end);
            !ips.iter()
                .any(|ip| frames.neighbour_answered(*ip, **t, until))
        })
        .count() as u64;
    let mut gaps: Vec<i64> = starts.windows(2).map(|p| p[1] - p[0]).collect();
    if !gaps.is_empty() {
        gaps.sort_unstable();
        r.resolution_spacing_s = Some(secs(gaps[gaps.len() / 2]));
    }
    r.frames.extend(requests);
    r.frames.sort_by_key(|f| f.frame);
    r
}
