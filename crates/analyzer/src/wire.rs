//! The wire's view of each client: what the proxy saw it send and receive, written as the events
//! a client would report about itself.
//!
//! This is what makes any client measurable black-box: a `mosquitto_sub` or a device that prints
//! nothing still sends CONNECT, SUBSCRIBE and PINGREQ and receives CONNACK, SUBACK and PINGRESP
//! through the proxy. A packet going up counts when the proxy first read it (the client sent it
//! then, whatever a fault did next); a packet going down counts when the proxy wrote it to the
//! client (forwarded at once or released after a hold), never while it was held or after it was
//! dropped. In a capture, a packet going down that met a connection the client had already
//! closed (its FIN or RST came first) reached no client: libmosquitto closes a new connection
//! right after its CONNECT when the connect took longer than its keepalive, and the broker's
//! CONNACK then arrives only to be refused with a reset.

use linecut_events::{
    ClientRef, ClosedBy, Connack, ConnectAttempt, Direction, Event, EventKind, Fate, Leg,
    MqttPacket, Source, Suback, SubscribeReason, SubscribeSent,
};
use linecut_mqtt::PacketType;
use std::collections::{BTreeMap, HashMap, HashSet};

/// Which client id each proxy connection carried (from its CONNECT).
pub fn connection_clients(proxy: &[Event]) -> BTreeMap<u64, String> {
    proxy
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::MqttPacket(p)
                if p.kind() == Some(PacketType::Connect) && p.dir == Direction::Up =>
            {
                p.client_id.clone().map(|id| (p.conn, id))
            }
            _ => None,
        })
        .collect()
}

fn reached_client(p: &MqttPacket) -> bool {
    p.dir == Direction::Down && matches!(p.fate, Fate::Forwarded | Fate::Released)
}

fn sent_by_client(p: &MqttPacket) -> bool {
    p.dir == Direction::Up && matches!(p.fate, Fate::Forwarded | Fate::Held | Fate::Dropped)
}

/// Per client id, the events the wire shows, in time order.
pub fn client_events(
    proxy: &[Event],
    conn_client: &BTreeMap<u64, String>,
) -> BTreeMap<String, Vec<Event>> {
    // Hashed while filling (one lookup per packet of a fleet), ordered once at the end.
    let mut out: HashMap<&str, Vec<Event>> = HashMap::new();
    let mut attempts: HashMap<&str, u32> = HashMap::new();
    // Connections whose client closed its side, as a capture ordered it. Only the capture's
    // order is the kernel's: the proxy logs a close and a write from two tasks, which can swap.
    // (An MQTT client never half-closes: a FIN is the end of its reading too.)
    let mut client_closed: HashSet<u64> = HashSet::new();
    for e in proxy {
        let p = match &e.kind {
            EventKind::LegClosed(l)
                if e.source == Source::Capture
                    && l.leg == Leg::Client
                    && l.by == ClosedBy::Peer =>
            {
                client_closed.insert(l.conn);
                continue;
            }
            EventKind::MqttPacket(p) => p,
            _ => continue,
        };
        if p.dir == Direction::Down && client_closed.contains(&p.conn) {
            continue;
        }
        let Some(client) = conn_client.get(&p.conn) else {
            continue;
        };
        let Some(packet_type) = p.kind() else {
            continue;
        };
        let kind = match packet_type {
            PacketType::Connect if sent_by_client(p) => {
                let n = attempts.entry(client.as_str()).or_insert(0);
                *n += 1;
                EventKind::ConnectAttempt(ConnectAttempt {
                    client: client.clone(),
                    attempt: *n,
                    broker: "(seen by the proxy)".into(),
                    delay_ms: 0,
                })
            }
            PacketType::ConnAck if reached_client(p) => EventKind::Connack(Connack {
                client: client.clone(),
                // MQTT 3.1.1 has a return code, MQTT 5 a reason code; 0 is success in both.
                code: p.return_code.or(p.reason_code).unwrap_or(0),
                session_present: p.session_present.unwrap_or(false),
            }),
            PacketType::Subscribe if sent_by_client(p) => {
                let first = !out.get(client.as_str()).is_some_and(|v| {
                    v.iter()
                        .any(|e| matches!(e.kind, EventKind::SubscribeSent(_)))
                });
                EventKind::SubscribeSent(SubscribeSent {
                    client: client.clone(),
                    topics: p.topics.clone().unwrap_or_default(),
                    reason: if first {
                        SubscribeReason::First
                    } else {
                        SubscribeReason::Always
                    },
                })
            }
            PacketType::SubAck if reached_client(p) => EventKind::Suback(Suback {
                client: client.clone(),
                packet_id: p.packet_id.unwrap_or(0),
                codes: p.codes.clone().unwrap_or_default(),
            }),
            PacketType::PingReq if sent_by_client(p) => EventKind::PingSent(ClientRef {
                client: client.clone(),
            }),
            PacketType::PingResp if reached_client(p) => EventKind::PingReceived(ClientRef {
                client: client.clone(),
            }),
            _ => continue,
        };
        let event = Event {
            ts_us: e.ts_us,
            source: Source::Proxy,
            kind,
        };
        out.entry(client.as_str()).or_default().push(event);
    }
    out.into_iter()
        .map(|(client, events)| (client.to_string(), events))
        .collect()
}

/// PUBLISHes that reached the client with the DUP flag set (the broker's resends), per
/// connection: counted in one pass over the wire.
pub struct DupFlags(HashMap<u64, u64>);

impl DupFlags {
    pub fn of(proxy: &[Event]) -> DupFlags {
        let mut counts: HashMap<u64, u64> = HashMap::new();
        for e in proxy {
            if let EventKind::MqttPacket(p) = &e.kind {
                if p.dup == Some(true) && p.kind() == Some(PacketType::Publish) && reached_client(p)
                {
                    *counts.entry(p.conn).or_default() += 1;
                }
            }
        }
        DupFlags(counts)
    }

    /// The count on `conns`; `None` when the wire saw none of the client's connections.
    pub fn of_conns(&self, conns: &std::collections::BTreeSet<u64>) -> Option<u64> {
        (!conns.is_empty()).then(|| conns.iter().filter_map(|c| self.0.get(c)).sum())
    }
}

/// PINGREQs on the wire, per connection: their times, in order.
pub struct Pings(BTreeMap<u64, Vec<i64>>);

impl Pings {
    /// One pass over the proxy's log.
    pub fn of(proxy: &[Event]) -> Pings {
        let mut by_conn: BTreeMap<u64, Vec<i64>> = BTreeMap::new();
        for e in proxy {
            if let EventKind::MqttPacket(p) = &e.kind {
                if p.kind() == Some(PacketType::PingReq) && sent_by_client(p) {
                    by_conn.entry(p.conn).or_default().push(e.ts_us);
                }
            }
        }
        Pings(by_conn)
    }

    /// How many PINGREQs a client sent on `conns`, and the median interval between two on the
    /// same connection (what a keepalive costs, and whether the client pings on time).
    pub fn stats(&self, conns: &std::collections::BTreeSet<u64>) -> (u64, Option<i64>) {
        let mut gaps: Vec<i64> = Vec::new();
        let mut count = 0;
        for times in conns.iter().filter_map(|c| self.0.get(c)) {
            count += times.len() as u64;
            gaps.extend(times.windows(2).map(|w| w[1] - w[0]));
        }
        gaps.sort_unstable();
        (count, gaps.get(gaps.len() / 2).copied())
    }
}
