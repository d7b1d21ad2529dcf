//! The connection index: what the proxy's log says about each connection, built in one pass.
//!
//! The questions a window asks of the wire — which of a client's connections were open when
//! the outage began, when its socket closed, when the broker closed its leg, whether held data
//! reached a connection the client had already left — are all about a handful of connections.
//! Answering them by scanning the whole proxy log costs O(windows × clients × events), which is
//! nothing for one subscriber and minutes for a fleet; answering them from this index costs
//! O(connections of the client).

use linecut_events::{CloseHow, ClosedBy, Direction, Event, EventKind, Fate, Leg};
use linecut_mqtt::PacketType;
use std::collections::HashMap;

/// Everything the analysis needs to know about one proxied connection. Times are microseconds;
/// lists are in log (time) order.
#[derive(Debug, Default, Clone)]
pub struct ConnFacts {
    /// When the proxy accepted it.
    pub opened_us: Option<i64>,
    /// When the client closed its side (FIN or RST from the client).
    pub client_closed_by_peer: Vec<i64>,
    /// When the broker closed its side.
    pub upstream_closed_by_peer: Vec<i64>,
    /// When the broker leg ended, by whoever closed it.
    pub upstream_closed: Vec<i64>,
    /// When a CONNECT went up on it.
    pub connects: Vec<i64>,
    /// When held broker data or the proxy's FIN toward the client reached the client leg: what
    /// a client that already left the connection receives as stale data.
    pub late_arrivals: Vec<i64>,
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
                    conns
                        .entry(o.conn)
                        .or_default()
                        .opened_us
                        .get_or_insert(e.ts_us);
                }
                EventKind::LegClosed(l) => {
                    let facts = conns.entry(l.conn).or_default();
                    match (l.leg, l.by) {
                        (Leg::Client, ClosedBy::Peer) => facts.client_closed_by_peer.push(e.ts_us),
                        (Leg::Client, ClosedBy::Proxy) if l.how == CloseHow::Fin => {
                            facts.late_arrivals.push(e.ts_us)
                        }
                        (Leg::Upstream, by) => {
                            facts.upstream_closed.push(e.ts_us);
                            if by == ClosedBy::Peer {
                                facts.upstream_closed_by_peer.push(e.ts_us);
                            }
                        }
                        _ => {}
                    }
                }
                EventKind::MqttPacket(p) => {
                    if p.kind() == Some(PacketType::Connect) {
                        conns.entry(p.conn).or_default().connects.push(e.ts_us);
                    } else if p.dir == Direction::Down && p.fate == Fate::Released {
                        conns.entry(p.conn).or_default().late_arrivals.push(e.ts_us);
                    }
                }
                _ => {}
            }
        }
        ConnIndex { conns }
    }

    pub fn get(&self, conn: u64) -> Option<&ConnFacts> {
        self.conns.get(&conn)
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

/// The first time in a sorted list at or after `from`.
pub fn first_at_or_after(times: &[i64], from: i64) -> Option<i64> {
    let i = times.partition_point(|t| *t < from);
    times.get(i).copied()
}
