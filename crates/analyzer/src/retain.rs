//! Which of a capture's connections the report describes in detail, and what the rest add up to.
//!
//! A capture can hold millions of connections (a fleet of short-lived publishers, a reconnect
//! storm). Keeping every connection's events until the end would make the analysis' memory grow
//! with the connections *seen*; this module keeps it to the connections *open at once* plus a
//! fixed number of ended ones. While a connection is open its events and per-connection state
//! are held; when it ends it becomes a candidate for folding, and once more than
//! [`DETAIL`] ended connections are held, the least informative is folded: its events are
//! dropped and it is added to [`Folded`]'s counts, which the report prints.
//!
//! "Informative" is what the report's windows and stories are made of, in this order: a
//! connection the client left without DISCONNECT (a give-up, a cut, a takeover), one closed by
//! a reset, one that carried retransmissions or stale data, one whose stream broke (malformed
//! packets, capture gaps), one that carried linecut's own messages; a clean session (CONNECT …
//! DISCONNECT) tells the least. Among equals the earliest ended stay. Connections an inferred
//! outage is made of (the client's old connection and its new one) are pinned and never folded.
//!
//! A capture with at most [`DETAIL`] ended connections is analysed exactly as before: nothing is
//! folded, so its report does not change.

use linecut_events::{Direction, Event};
use linecut_mqtt::PacketType;
use serde::{Deserialize, Serialize};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};

/// Ended connections kept in detail. A report's timeline, windows and stories need no more; a
/// capture with more is summarised, and says so.
pub const DETAIL: usize = 1000;

/// What a report says about the connections it counted instead of describing.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Folded {
    /// Connections folded into these counts.
    pub connections: u64,
    /// Ended connections the report describes in detail (a connection still open when the
    /// capture ends ends there; those an inferred outage is made of come on top).
    pub in_detail: u64,
    /// How the folded connections ended, e.g. `client DISCONNECT` → count.
    pub ended: BTreeMap<String, u64>,
    /// The MQTT control packets they carried, by type and direction (`CONNECT up` → count).
    pub packets: BTreeMap<String, u64>,
    /// Observations (segments, retransmissions) that arrived on a connection after it had been
    /// folded: counted, not analysed.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub late_observations: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// What makes a connection worth describing; the order of the fields is their weight.
#[derive(Debug, Default, Clone, Copy)]
pub struct Signs {
    pub client_disconnected: bool,
    pub mqtt: bool,
    pub rst: bool,
    pub resent_or_stale: bool,
    pub broken: bool,
    pub data: bool,
    /// A FIN or RST was seen; without one the connection ended with the capture (or its
    /// addresses were reused by a new SYN).
    pub closed: bool,
}

impl Signs {
    fn score(self) -> u32 {
        let left_without_disconnect = self.mqtt && !self.client_disconnected;
        u32::from(left_without_disconnect) * 16
            + u32::from(self.rst) * 8
            + u32::from(self.resent_or_stale) * 4
            + u32::from(self.broken) * 2
            + u32::from(self.data)
    }

    fn ending(self) -> &'static str {
        if !self.closed {
            return "not closed in the capture";
        }
        match (self.rst, self.mqtt, self.client_disconnected) {
            (true, _, _) => "reset",
            (false, false, _) => "closed without MQTT",
            (false, true, true) => "client DISCONNECT",
            (false, true, false) => "closed without DISCONNECT",
        }
    }
}

/// One connection's held events, each with its observation order (so the run's events, merged
/// back, keep the order they were observed in among equal times).
struct Held {
    events: Vec<(u64, Event)>,
    signs: Signs,
    /// Control packets by type and direction (a connection has a handful of kinds).
    packets: Vec<(PacketType, Direction, u64)>,
    client: Option<String>,
    ended: bool,
    pinned: bool,
}

/// The connections held, and the counts of those folded.
#[derive(Default)]
pub struct Retainer {
    held: HashMap<u64, Held>,
    /// Ended, unpinned connections, least informative first: (score, newest first, conn).
    candidates: BinaryHeap<Reverse<(u32, Reverse<u64>, u64)>>,
    /// Ended, unpinned connections still held (the candidates' live entries).
    ended_held: usize,
    /// Held connections per client id: a client with none left needs no reconnect bookkeeping.
    per_client: HashMap<String, u32>,
    next_seq: u64,
    next_end: u64,
    pub folded: Folded,
}

impl Retainer {
    /// A connection was opened: its events are held from now on.
    pub fn open(&mut self, conn: u64) {
        self.held.insert(
            conn,
            Held {
                events: Vec::new(),
                signs: Signs::default(),
                packets: Vec::new(),
                client: None,
                ended: false,
                pinned: false,
            },
        );
    }

    /// Whether `conn` is held (false once folded).
    pub fn holds(&self, conn: u64) -> bool {
        self.held.contains_key(&conn)
    }

    /// Keeps an event of `conn`; one of a folded connection is counted and dropped.
    pub fn keep(&mut self, conn: u64, event: Event) {
        let seq = self.next_seq;
        self.next_seq += 1;
        match self.held.get_mut(&conn) {
            Some(h) => h.events.push((seq, event)),
            None => self.folded.late_observations += 1,
        }
    }

    /// Notes what `conn` showed, for its weight and its counts if it is folded.
    pub fn sign(&mut self, conn: u64, f: impl FnOnce(&mut Signs)) {
        if let Some(h) = self.held.get_mut(&conn) {
            f(&mut h.signs);
        }
    }

    /// Counts a control packet of `conn`.
    pub fn count_packet(&mut self, conn: u64, packet: PacketType, dir: Direction) {
        let Some(h) = self.held.get_mut(&conn) else {
            return;
        };
        match h
            .packets
            .iter_mut()
            .find(|(p, d, _)| *p == packet && *d == dir)
        {
            Some((_, _, n)) => *n += 1,
            None => h.packets.push((packet, dir, 1)),
        }
    }

    /// `conn` belongs to `client` (its CONNECT named it).
    pub fn owned_by(&mut self, conn: u64, client: &str) {
        let Some(h) = self.held.get_mut(&conn) else {
            return;
        };
        if h.client.is_none() {
            *self.per_client.entry(client.to_string()).or_insert(0) += 1;
        }
        if let Some(old) = h.client.replace(client.to_string()) {
            self.release_client(&old);
        }
    }

    /// `conn` is part of an inferred outage: never folded.
    pub fn pin(&mut self, conn: u64) {
        if let Some(h) = self.held.get_mut(&conn) {
            if h.ended && !h.pinned {
                self.ended_held -= 1;
            }
            h.pinned = true;
        }
    }

    /// `conn` ended (a reset, or a FIN each way). Folds what exceeds [`DETAIL`] and returns
    /// each folded connection, with its client id when no held connection belongs to that
    /// client any more (so the caller can forget what it kept about both).
    pub fn end(&mut self, conn: u64) -> Vec<(u64, Option<String>)> {
        let Some(h) = self.held.get_mut(&conn) else {
            return Vec::new();
        };
        if h.ended {
            return Vec::new();
        }
        h.ended = true;
        if !h.pinned {
            self.ended_held += 1;
            self.candidates
                .push(Reverse((h.signs.score(), Reverse(self.next_end), conn)));
            self.next_end += 1;
        }
        let mut gone = Vec::new();
        while self.ended_held > DETAIL {
            let Some(Reverse((_, _, victim))) = self.candidates.pop() else {
                break;
            };
            if self.held.get(&victim).is_some_and(|h| !h.pinned) {
                let client = self.fold(victim);
                gone.push((victim, client));
            }
        }
        gone
    }

    /// Drops a held connection's events into the counts; returns its client when no held
    /// connection of that client is left.
    fn fold(&mut self, conn: u64) -> Option<String> {
        let h = self.held.remove(&conn)?;
        self.ended_held -= 1;
        let f = &mut self.folded;
        f.connections += 1;
        *f.ended.entry(h.signs.ending().to_string()).or_insert(0) += 1;
        for (packet, dir, n) in h.packets {
            *f.packets
                .entry(format!("{} {}", packet.name(), dir.as_str()))
                .or_insert(0) += n;
        }
        let client = h.client?;
        self.release_client(&client).then_some(client)
    }

    /// One held connection of `client` fewer; true when none is left.
    fn release_client(&mut self, client: &str) -> bool {
        let Some(n) = self.per_client.get_mut(client) else {
            return false;
        };
        *n -= 1;
        if *n == 0 {
            self.per_client.remove(client);
            return true;
        }
        false
    }

    /// Every held event in observation order, and the counts when anything was folded.
    pub fn finish(self) -> (Vec<(u64, Event)>, Option<Folded>) {
        let mut folded = self.folded;
        let summarised = folded.connections > 0;
        folded.in_detail = self.ended_held as u64;
        let mut events: Vec<(u64, Event)> =
            self.held.into_values().flat_map(|h| h.events).collect();
        events.sort_unstable_by_key(|(seq, _)| *seq);
        (events, summarised.then_some(folded))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use linecut_events::{EventKind, Fate, RawBytes, Source};

    fn event(ts_us: i64) -> Event {
        Event {
            ts_us,
            source: Source::Capture,
            kind: EventKind::RawBytes(RawBytes {
                conn: 0,
                dir: Direction::Up,
                fate: Fate::Forwarded,
                len: 0,
            }),
        }
    }

    /// Opens and ends `n` connections from `first`, each with one event; `informative` ones
    /// ended without DISCONNECT.
    fn sessions(r: &mut Retainer, first: u64, n: u64, informative: bool) {
        for conn in first..first + n {
            r.open(conn);
            r.keep(conn, event(conn as i64));
            r.sign(conn, |s| {
                s.mqtt = true;
                s.client_disconnected = !informative;
                s.closed = true;
            });
            r.count_packet(conn, PacketType::Connect, Direction::Up);
            r.end(conn);
        }
    }

    #[test]
    fn nothing_is_folded_up_to_the_detail_limit() {
        let mut r = Retainer::default();
        sessions(&mut r, 1, DETAIL as u64, false);
        let (events, folded) = r.finish();
        assert_eq!(events.len(), DETAIL);
        assert!(folded.is_none());
    }

    #[test]
    fn past_the_limit_the_least_informative_are_counted_and_the_earliest_stay() {
        let mut r = Retainer::default();
        sessions(&mut r, 1, 10, true);
        sessions(&mut r, 11, 3 * DETAIL as u64, false);
        // Held open through everything: never folded, whatever its weight.
        r.open(99_999);
        r.keep(99_999, event(0));
        let (events, folded) = r.finish();
        let folded = folded.expect("summarised");
        assert_eq!(folded.in_detail, DETAIL as u64);
        assert_eq!(folded.connections, 3 * DETAIL as u64 + 10 - DETAIL as u64);
        assert_eq!(folded.ended["client DISCONNECT"], folded.connections);
        assert_eq!(folded.packets["CONNECT up"], folded.connections);
        let kept: Vec<i64> = events.iter().map(|(_, e)| e.ts_us).collect();
        // The ten informative ones, the open one, and the earliest clean sessions.
        assert!((1..=10).all(|c| kept.contains(&c)));
        assert!(kept.contains(&0));
        assert!(kept.contains(&11) && !kept.contains(&(3 * DETAIL as i64)));
        assert_eq!(kept.len(), DETAIL + 1);
    }

    #[test]
    fn a_pinned_connection_is_never_folded_and_late_events_are_counted() {
        let mut r = Retainer::default();
        r.open(1);
        r.keep(1, event(1));
        r.end(1);
        r.pin(1);
        sessions(&mut r, 2, 2 * DETAIL as u64, true);
        r.keep(2, event(2)); // conn 2 was folded (the newest among equals go first)
        let (events, folded) = r.finish();
        assert!(events.iter().any(|(_, e)| e.ts_us == 1));
        let folded = folded.unwrap();
        assert_eq!(folded.in_detail, DETAIL as u64);
        assert_eq!(folded.connections, DETAIL as u64);
        assert_eq!(folded.ended["closed without DISCONNECT"], DETAIL as u64);
        assert_eq!(
            folded.late_observations, 0,
            "conn 2 is among the earliest, kept"
        );
    }

    #[test]
    fn a_client_with_no_held_connection_left_is_named() {
        let mut r = Retainer::default();
        let mut gone = Vec::new();
        for conn in 1..=(DETAIL as u64 + 2) {
            r.open(conn);
            r.owned_by(conn, &format!("dev-{conn}"));
            r.sign(conn, |s| {
                s.mqtt = true;
                s.client_disconnected = true;
                s.closed = true;
            });
            gone.extend(r.end(conn));
        }
        assert_eq!(
            gone,
            vec![
                (1001, Some("dev-1001".to_string())),
                (1002, Some("dev-1002".to_string()))
            ]
        );
        r.keep(DETAIL as u64 + 2, event(0));
        assert_eq!(r.folded.late_observations, 1);
    }

    /// A connection the capture never saw close (it was open when the capture ended) is not
    /// counted as closed.
    #[test]
    fn a_connection_never_closed_is_counted_as_such() {
        let mut r = Retainer::default();
        sessions(&mut r, 1, DETAIL as u64, false);
        r.open(5_000);
        r.sign(5_000, |s| {
            s.mqtt = true;
            s.client_disconnected = true;
        });
        r.end(5_000);
        let (_, folded) = r.finish();
        assert_eq!(
            folded.unwrap().ended.get("not closed in the capture"),
            Some(&1)
        );
    }
}
