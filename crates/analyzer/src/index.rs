//! The connection index: what the proxy's log says about each connection, built in one pass.
//!
//! The questions a window asks of the wire — which of a client's connections were open when
//! the outage began, when its socket closed, when the broker closed its leg, whether held data
//! reached a connection the client had already left — are all about a handful of connections.
//! Answering them by scanning the whole proxy log costs O(windows × clients × events), which is
//! nothing for one subscriber and minutes for a fleet; answering them from this index costs
//! O(connections of the client).

use linecut_events::{CloseHow, ClosedBy, Direction, Event, EventKind, Fate, Leg, Source};
use linecut_mqtt::PacketType;
use std::collections::HashMap;

/// Everything the analysis needs to know about one proxied connection. Times are microseconds;
/// lists are in log (time) order.
#[derive(Debug, Default, Clone)]
pub struct ConnFacts {
    /// When the proxy accepted it.
    pub opened_us: Option<i64>,
    /// The client's address without its port.
    pub client_ip: Option<String>,
    /// When the client closed its side (FIN or RST from the client).
    pub client_closed_by_peer: Vec<i64>,
    /// When the broker closed its side (FIN or RST).
    pub upstream_closed_by_peer: Vec<i64>,
    /// Of those, the broker's resets: a reset is not a FIN, and on a real link it is usually
    /// the broker's kernel answering a segment for a socket it has already closed.
    pub upstream_resets: Vec<i64>,
    /// The connection was read from a capture (its broker side is the broker's own socket, not
    /// a proxy's leg).
    pub captured: bool,
    /// When the broker leg ended, by whoever closed it.
    pub upstream_closed: Vec<i64>,
    /// When a CONNECT went up on it.
    pub connects: Vec<i64>,
    /// When the broker's held PUBLISHes reached the client leg.
    pub publishes_released: Vec<i64>,
    /// When PUBLISHes for the client were held back, and when held ones were thrown away.
    pub publishes_held: Vec<i64>,
    pub publishes_discarded: Vec<i64>,
    /// When the proxy passed a FIN on to the client leg (or, in a capture, the broker's FIN
    /// reached a client that had already closed).
    pub fin_to_client: Vec<i64>,
    /// When the client reset the connection.
    pub client_resets: Vec<i64>,
    /// In a capture: when the broker's retransmitted bytes reached a client that had left the
    /// connection, and how many.
    pub stale_resent: Vec<(i64, u64)>,
    /// In a capture: every retransmission, as (time, bytes), per direction.
    pub resent_up: Vec<(i64, u64)>,
    pub resent_down: Vec<(i64, u64)>,
    /// When a packet from the client reached the broker.
    pub up_forwarded: Vec<i64>,
    /// When the broker sent anything down it (forwarded, held or dropped).
    pub down_any: Vec<i64>,
    /// When the proxy closed the connection for good.
    pub closed_us: Option<i64>,
    /// When the client first sent DISCONNECT on it (an orderly close of its own).
    pub disconnect_sent: Option<i64>,
}

/// [`ConnFacts`] for every connection of a run's proxy log.
#[derive(Debug, Default)]
pub struct ConnIndex {
    conns: HashMap<u64, ConnFacts>,
}

impl ConnIndex {
    /// One pass over the proxy's log (in time order).
    pub fn build(proxy: &[Event]) -> ConnIndex {
        let mut conns: HashMap<u64, ConnFacts> = HashMap::new();
        for e in proxy {
            match &e.kind {
                EventKind::ConnOpened(o) => {
                    let facts = conns.entry(o.conn).or_default();
                    facts.opened_us.get_or_insert(e.ts_us);
                    let ip = o.client_addr.rsplit_once(':').map_or("", |(ip, _)| ip);
                    facts.client_ip.get_or_insert_with(|| ip.to_string());
                }
                EventKind::LegClosed(l) => {
                    let facts = conns.entry(l.conn).or_default();
                    facts.captured |= e.source == Source::Capture;
                    if l.leg == Leg::Client && l.by == ClosedBy::Peer && l.how == CloseHow::Rst {
                        facts.client_resets.push(e.ts_us);
                    }
                    // In a capture there is no proxy: the broker's FIN reaching a client that
                    // had closed is the stale FIN itself.
                    let client_gone = !facts.client_closed_by_peer.is_empty();
                    if e.source == Source::Capture
                        && l.leg == Leg::Upstream
                        && l.by == ClosedBy::Peer
                        && l.how == CloseHow::Fin
                        && client_gone
                    {
                        facts.fin_to_client.push(e.ts_us);
                    }
                    match (l.leg, l.by) {
                        (Leg::Client, ClosedBy::Peer) => facts.client_closed_by_peer.push(e.ts_us),
                        (Leg::Client, ClosedBy::Proxy) if l.how == CloseHow::Fin => {
                            facts.fin_to_client.push(e.ts_us);
                        }
                        (Leg::Upstream, by) => {
                            facts.upstream_closed.push(e.ts_us);
                            if by == ClosedBy::Peer {
                                facts.upstream_closed_by_peer.push(e.ts_us);
                                if l.how == CloseHow::Rst {
                                    facts.upstream_resets.push(e.ts_us);
                                }
                            }
                        }
                        _ => {}
                    }
                }
                EventKind::ConnClosed(c) => {
                    conns.entry(c.conn).or_default().closed_us = Some(e.ts_us);
                }
                EventKind::RawBytes(r) if e.source == Source::Capture => {
                    let facts = conns.entry(r.conn).or_default();
                    match r.dir {
                        Direction::Up => facts.resent_up.push((e.ts_us, r.len)),
                        Direction::Down => facts.resent_down.push((e.ts_us, r.len)),
                    }
                    if r.dir == Direction::Down && r.fate == Fate::Released {
                        facts.stale_resent.push((e.ts_us, r.len));
                    }
                }
                EventKind::MqttPacket(p) => {
                    let facts = conns.entry(p.conn).or_default();
                    let publish = p.kind() == Some(PacketType::Publish);
                    if p.kind() == Some(PacketType::Connect) {
                        facts.connects.push(e.ts_us);
                    }
                    if p.kind() == Some(PacketType::Disconnect) && p.dir == Direction::Up {
                        facts.disconnect_sent.get_or_insert(e.ts_us);
                    }
                    match (p.dir, p.fate) {
                        (Direction::Up, Fate::Forwarded | Fate::Released) => {
                            facts.up_forwarded.push(e.ts_us)
                        }
                        (Direction::Down, fate) => {
                            facts.down_any.push(e.ts_us);
                            // A capture's packet from the broker after the client closed is
                            // stale, as a released one is through the proxy.
                            // (A capture keeps a PUBLISH as an event only when it is stale.)
                            let fate = if e.source == Source::Capture
                                && (publish || !facts.client_closed_by_peer.is_empty())
                            {
                                Fate::Released
                            } else {
                                fate
                            };
                            if publish {
                                match fate {
                                    Fate::Released => facts.publishes_released.push(e.ts_us),
                                    Fate::Held => facts.publishes_held.push(e.ts_us),
                                    Fate::Discarded => facts.publishes_discarded.push(e.ts_us),
                                    _ => {}
                                }
                            }
                        }
                        _ => {}
                    }
                }
                _ => {}
            }
        }
        // Events from different tasks can be logged slightly out of order; every lookup
        // below relies on sorted lists.
        for f in conns.values_mut() {
            for list in [
                &mut f.client_closed_by_peer,
                &mut f.upstream_closed_by_peer,
                &mut f.upstream_resets,
                &mut f.upstream_closed,
                &mut f.connects,
                &mut f.publishes_released,
                &mut f.publishes_held,
                &mut f.publishes_discarded,
                &mut f.fin_to_client,
                &mut f.client_resets,
                &mut f.up_forwarded,
                &mut f.down_any,
            ] {
                list.sort_unstable();
            }
            f.stale_resent.sort_unstable();
            f.resent_up.sort_unstable();
            f.resent_down.sort_unstable();
        }
        ConnIndex { conns }
    }

    pub fn get(&self, conn: u64) -> Option<&ConnFacts> {
        self.conns.get(&conn)
    }

    /// Connections that never carried a CONNECT (attempts whose handshake did not complete),
    /// from the address one of `conns` came from: on a namespace run's link, the same client.
    pub fn syn_only_from(&self, conns: &std::collections::BTreeSet<u64>) -> Vec<u64> {
        let ips: std::collections::BTreeSet<&str> = conns
            .iter()
            .filter_map(|c| self.get(*c)?.client_ip.as_deref())
            .collect();
        let mut out: Vec<u64> = self
            .conns
            .iter()
            .filter(|(id, f)| {
                !conns.contains(id)
                    && f.connects.is_empty()
                    && f.client_ip.as_deref().is_some_and(|ip| ips.contains(ip))
            })
            .map(|(id, _)| *id)
            .collect();
        out.sort_unstable();
        out
    }

    /// The earliest time in `pick(conn)` over `conns` that lies in `[from, until)`.
    pub fn first_in<'a>(
        &'a self,
        conns: impl IntoIterator<Item = &'a u64>,
        from: i64,
        until: i64,
        pick: impl Fn(&'a ConnFacts) -> &'a [i64],
    ) -> Option<i64> {
        conns
            .into_iter()
            .filter_map(|c| self.get(*c))
            .filter_map(|f| first_at_or_after(pick(f), from).filter(|t| *t < until))
            .min()
    }
}

/// The last time in a sorted list before `until`.
pub fn last_before(times: &[i64], until: i64) -> Option<i64> {
    let i = times.partition_point(|t| *t < until);
    i.checked_sub(1).map(|i| times[i])
}

/// How many times of a sorted list lie in `[from, until)`.
pub fn count_in(times: &[i64], from: i64, until: i64) -> u64 {
    (times.partition_point(|t| *t < until) - times.partition_point(|t| *t < from)) as u64
}

/// The first time in a sorted list at or after `from`.
pub fn first_at_or_after(times: &[i64], from: i64) -> Option<i64> {
    let i = times.partition_point(|t| *t < from);
    times.get(i).copied()
}
