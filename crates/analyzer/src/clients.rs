//! A subscriber as the analysis sees it: its own events, its deliveries and the connections
//! that carried it, grouped once from the run; and the small helpers every question asks with.

use crate::load::{Delivery, Run};
use linecut_events::{Direction, DisconnectCause, Event, EventKind};
use linecut_mqtt::PacketType;
use std::collections::{BTreeMap, BTreeSet};

/// A client's own report this soon after the wire's sign of the same event explains it.
pub(crate) const SAME_MOMENT_US: i64 = 100_000;
/// Messages published this close to a subscriber's stop are not counted as lost.
pub(crate) const STOP_GRACE_US: i64 = 1_000_000;

/// A disconnect cause as the events spell it (`keepalive_timeout`, …).
pub(crate) fn cause_name(cause: DisconnectCause) -> String {
    serde_json::to_value(cause)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

pub(crate) fn secs(us: i64) -> f64 {
    // Millisecond precision: finer digits would be noise, and fixed rounding keeps reports stable.
    (us as f64 / 1000.0).round() / 1000.0
}

/// One client's events, its deliveries, and the proxy connections that carried it.
pub(crate) struct Client<'a> {
    pub id: String,
    /// True when `events` are the wire's view (the client reported nothing of its own).
    pub from_wire: bool,
    pub events: Vec<&'a Event>,
    pub deliveries: Vec<&'a Delivery>,
    pub conns: BTreeSet<u64>,
}

fn client_of(e: &Event) -> Option<&str> {
    match &e.kind {
        EventKind::ConnectAttempt(x) => Some(&x.client),
        EventKind::Connack(x) => Some(&x.client),
        EventKind::SubscribeSent(x) => Some(&x.client),
        EventKind::Suback(x) => Some(&x.client),
        EventKind::PingSent(x) | EventKind::PingReceived(x) => Some(&x.client),
        EventKind::Message(x) => Some(&x.client),
        EventKind::Disconnected(x) => Some(&x.client),
        EventKind::ClientInfo(x) => Some(&x.client),
        EventKind::ClientExited(x) => Some(&x.client),
        _ => None,
    }
}

/// The first time, at or after `from` and before `until`, that `pick` matches.
pub(crate) fn first<'a>(
    events: &[&'a Event],
    from: i64,
    until: i64,
    pick: impl Fn(&Event) -> bool,
) -> Option<&'a Event> {
    events
        .iter()
        .copied()
        .find(|e| e.ts_us >= from && e.ts_us < until && pick(e))
}

/// The run's subscribers: each client id's own events, deliveries and connections (`conn_client`:
/// which client each connection carried), measured from the wire (`wire_events`) when it
/// reported no CONNACK of its own. Only subscribers: in a capture, publishers' connections show
/// up too.
pub(crate) fn group<'a>(
    run: &'a Run,
    conn_client: &BTreeMap<u64, String>,
    wire_events: &'a BTreeMap<String, Vec<Event>>,
) -> BTreeMap<String, Client<'a>> {
    let mut clients: BTreeMap<String, Client> = BTreeMap::new();
    let new_client = |id: &str| Client {
        id: id.to_string(),
        from_wire: false,
        events: Vec::new(),
        deliveries: Vec::new(),
        conns: BTreeSet::new(),
    };
    for e in &run.subscriber {
        if let Some(id) = client_of(e) {
            // Looked up by reference first: a fleet's events would otherwise allocate the id
            // once per event.
            match clients.get_mut(id) {
                Some(c) => c.events.push(e),
                None => {
                    let mut c = new_client(id);
                    c.events.push(e);
                    clients.insert(id.to_string(), c);
                }
            }
        }
    }
    // Deliveries are grouped by their interned client id first: a fleet's run has one row per
    // delivery, and a map lookup by name for each would dominate the analysis.
    let mut by_client: Vec<Vec<&Delivery>> = vec![Vec::new(); run.clients.len()];
    for d in &run.deliveries {
        by_client[d.client as usize].push(d);
    }
    for (client, deliveries) in by_client.into_iter().enumerate() {
        if deliveries.is_empty() {
            continue;
        }
        let id = run.client_name(client as u32);
        clients
            .entry(id.to_string())
            .or_insert_with(|| new_client(id))
            .deliveries
            .extend(deliveries);
    }
    for (conn, id) in conn_client {
        clients
            .entry(id.clone())
            .or_insert_with(|| new_client(id))
            .conns
            .insert(*conn);
    }
    // Only subscribers are analysed: in a capture, publishers' connections show up too.
    clients.retain(|id, c| {
        !c.events.is_empty()
            || !c.deliveries.is_empty()
            || wire_events.get(id).is_some_and(|w| {
                w.iter()
                    .any(|e| matches!(e.kind, EventKind::SubscribeSent(_)))
            })
    });
    // A client that never reported a CONNACK of its own is measured from the wire.
    for c in clients.values_mut() {
        let reports = c
            .events
            .iter()
            .any(|e| matches!(e.kind, EventKind::Connack(_)));
        if !reports {
            if let Some(seen) = wire_events.get(&c.id) {
                c.events.extend(seen.iter());
                c.events.sort_by_key(|e| e.ts_us);
                c.from_wire = true;
            }
        }
    }
    clients
}

/// The keepalive the bands are drawn for: the first subscriber's CONNECT carries it.
pub(crate) fn keepalive(run: &Run, clients: &BTreeMap<String, Client>) -> Option<u16> {
    // The first subscriber's CONNECT carries the keepalive the bands are drawn for.
    run.proxy.iter().find_map(|e| match &e.kind {
        EventKind::MqttPacket(p)
            if p.kind() == Some(PacketType::Connect) && p.dir == Direction::Up =>
        {
            p.client_id
                .as_ref()
                .filter(|id| clients.contains_key(id.as_str()))
                .and(p.keepalive_s)
        }
        _ => None,
    })
}

/// The keepalive the broker granted the first subscriber, if its CONNACK said (MQTT 5's
/// Server Keep Alive): the client must use it instead of its own (MQTT 5.0 §3.2.2.3.14), so
/// the bands are drawn for it.
pub(crate) fn granted_keepalive(
    run: &Run,
    conn_client: &BTreeMap<u64, String>,
    clients: &BTreeMap<String, Client>,
) -> Option<u16> {
    run.proxy.iter().find_map(|e| match &e.kind {
        EventKind::MqttPacket(p)
            if p.kind() == Some(PacketType::ConnAck) && p.dir == Direction::Down =>
        {
            conn_client
                .get(&p.conn)
                .filter(|id| clients.contains_key(id.as_str()))
                .and(p.server_keepalive_s)
        }
        _ => None,
    })
}

/// The wire's view of every client, for comparison with what the client said.
pub(crate) fn wire_views<'a>(
    clients: &'a BTreeMap<String, Client<'a>>,
    wire_events: &'a BTreeMap<String, Vec<Event>>,
) -> BTreeMap<&'a str, Client<'a>> {
    clients
        .values()
        .map(|c| {
            let mut events: Vec<&Event> = wire_events
                .get(&c.id)
                .map(|v| v.iter().collect())
                .unwrap_or_default();
            // Where the run told the client to stop still bounds the analysis.
            events.extend(c.events.iter().copied().filter(|e| {
                matches!(&e.kind, EventKind::Disconnected(d) if d.cause == DisconnectCause::Requested)
            }));
            events.sort_by_key(|e| e.ts_us);
            let view = Client {
                id: c.id.clone(),
                from_wire: true,
                events,
                // Only the wire's timings are read from this view, never its deliveries.
                deliveries: Vec::new(),
                conns: c.conns.clone(),
            };
            (c.id.as_str(), view)
        })
        .collect()
}
