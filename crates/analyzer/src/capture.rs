//! A packet capture as a run: what `linecut analyze CAPTURE.pcap` reads.
//!
//! The capture's MQTT connections take the place of the proxy's log (connections opening and
//! closing, control packets with their times), PUBLISHes going down become deliveries and those
//! going up publishes (when their payloads are in linecut's format, sequence numbers and publish
//! times included), and the same analysis runs on it. Clients are measured from the wire, as any
//! client under test is.
//!
//! Without a proxy there is no fault schedule, so outages are **inferred**: a client that heard
//! nothing from the broker for at least its keepalive and then opened a new connection had an
//! outage from the broker's last packet to the first packet of the new connection's answer.
//! Such windows have kind `inferred` and say so in the report.
//!
//! Memory: control packets are few and kept as events; PUBLISHes become 32-byte rows only when
//! they carry linecut's payload (a capture of other traffic is read in constant memory).
//! Per-connection state is held while a connection is open and for the
//! [`DETAIL`](crate::retain::DETAIL) most
//! informative ended ones ([`crate::retain`]); the rest are folded into counts as they end, so
//! memory follows the connections open at once, not the connections seen.

use crate::frames::{CitedFrame, FrameLedger, Sender, WireSign};
use crate::retain::{Folded, Retainer};
use crate::{AnalyzeError, Delivery, Publish, Run};
use linecut_capture::{CaptureSummary, Observation, Side};
use linecut_events::{
    CloseHow, ClosedBy, ConnOpened, Direction, Event, EventKind, FaultEnded, FaultStarted, Leg,
    LegClosed, MqttMalformed, RunMeta, RunStatus, Source,
};
use linecut_mqtt::{Packet, PacketType};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::Path;

/// What the report says about the capture itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaptureInfo {
    pub file: String,
    pub container: String,
    pub port: u16,
    pub frames: u64,
    pub bytes: u64,
    pub connections: u64,
    pub mqtt_packets: u64,
    pub other_frames: u64,
    pub retransmitted_bytes: u64,
    pub out_of_order_segments: u64,
    /// Holes in the reassembled streams: capture loss or a capture that began mid-stream.
    pub gaps: u64,
    pub gap_bytes: u64,
    /// Why reading stopped before the end of the file, if it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stopped: Option<String>,
    pub unknown_linktypes: Vec<i32>,
    pub inferred_windows: u32,
    /// Connections counted instead of described, when the capture had more than the report
    /// describes in detail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub folded: Option<Folded>,
}

#[derive(Default)]
struct Interner {
    names: Vec<String>,
    index: HashMap<String, u32>,
}

impl Interner {
    fn id(&mut self, name: &str) -> u32 {
        if let Some(&id) = self.index.get(name) {
            return id;
        }
        let id = self.names.len() as u32;
        self.names.push(name.to_string());
        self.index.insert(name.to_string(), id);
        id
    }
}

/// Per connection: whose it is, when the broker spoke on it, and when the client closed it.
#[derive(Default)]
struct ConnSeen {
    client: Option<String>,
    /// Every packet (and the FIN or RST) from the broker's side, in capture order.
    heard_us: Vec<i64>,
    client_closed_us: Option<i64>,
}

impl ConnSeen {
    /// The client has a newer connection than this one.
    fn superseded(&self, conn: u64, latest_conn: &HashMap<String, u64>) -> bool {
        self.client
            .as_ref()
            .and_then(|c| latest_conn.get(c))
            .is_some_and(|latest| *latest != conn)
    }
}

/// A reconnect, as a possible end of an outage: the client's previous connection, when the
/// broker last spoke on it before the new CONNECT, and the new connection.
struct Reconnect {
    client: String,
    old_conn: u64,
    last_heard_us: i64,
    connect_us: i64,
    keepalive_s: u16,
}

/// The ledger being filled, with each connection's two ends (whose addresses its frames cite).
#[derive(Default)]
struct Citer {
    ends: HashMap<u64, (SocketAddr, SocketAddr)>,
    frames: FrameLedger,
}

impl Citer {
    fn cite(
        &mut self,
        conn: u64,
        ts_us: i64,
        frame: u64,
        sender: Sender,
        sign: WireSign,
        bytes: u64,
    ) {
        let Some((client, server)) = self.ends.get(&conn) else {
            return;
        };
        let from = if sender == Sender::Client {
            client
        } else {
            server
        };
        self.frames.push(
            conn,
            CitedFrame {
                frame,
                ts_us,
                sender,
                src: from.ip(),
                port: Some(from.port()),
                sign,
                to: None,
                bytes,
            },
        );
    }
}

/// The kind of a window inferred from a capture's silence.
pub const INFERRED: &str = "inferred";

/// Reads a capture into a [`Run`] the analysis understands.
pub fn load_capture(
    path: &Path,
    port: u16,
    client_library: Option<&str>,
    broker: Option<&str>,
) -> Result<(Run, CaptureInfo), AnalyzeError> {
    let mut loader = Loader::default();
    let summary: CaptureSummary =
        linecut_capture::read_mqtt(path, port, |observation| loader.observe(observation))?;
    Ok(loader.finish(path, port, summary, client_library, broker))
}

/// An event the capture proves.
fn event(ts_us: i64, kind: EventKind) -> Event {
    Event {
        ts_us,
        source: Source::Capture,
        kind,
    }
}

/// What the reading of a capture has gathered so far: the run being built, and what is
/// remembered of each connection until it ends.
#[derive(Default)]
struct Loader {
    run: Run,
    clients: Interner,
    topics: Interner,
    conns: BTreeMap<u64, ConnSeen>,
    /// Each client id's latest connection (a newer one supersedes it).
    latest_conn: HashMap<String, u64>,
    reconnects: Vec<Reconnect>,
    servers: Vec<String>,
    gaps: u64,
    ledger: Citer,
    retainer: Retainer,
}

impl Loader {
    fn observe(&mut self, observation: Observation<'_>) {
        // A connection folded into the counts: what still arrives on it is counted, not read.
        if let Some(conn) = observation_conn(&observation) {
            if !self.retainer.holds(conn) {
                self.retainer.folded.late_observations += 1;
                return;
            }
        }
        match observation {
            Observation::Opened {
                conn,
                ts_us,
                frame,
                client,
                server,
                syn,
            } => self.opened(conn, ts_us, frame, client, server, syn),
            Observation::Packet {
                conn,
                dir,
                ts_us,
                frame,
                len,
                packet,
            } => self.packet(conn, dir, ts_us, frame, len, packet),
            Observation::Malformed {
                conn,
                dir,
                ts_us,
                error,
                ..
            } => {
                self.retainer.sign(conn, |s| s.broken = true);
                self.retainer.keep(
                    conn,
                    event(
                        ts_us,
                        EventKind::MqttMalformed(MqttMalformed {
                            conn,
                            dir,
                            error,
                            offset: 0,
                        }),
                    ),
                )
            }
            Observation::Gap {
                conn, dir, bytes, ..
            } => {
                self.gaps += 1;
                self.retainer.sign(conn, |s| s.broken = true);
                if self.run.warnings.len() < 20 {
                    self.run.warnings.push(format!(
                        "conn {conn} ({}): {bytes} byte(s) missing from the capture; MQTT decoding of that direction stops there",
                        dir.as_str()
                    ));
                }
            }
            Observation::Resent {
                conn,
                dir,
                ts_us,
                frame,
                bytes,
            } => self.resent(conn, dir, ts_us, frame, bytes),
            Observation::Quiet {
                conn,
                ts_us,
                frame,
                since_us,
            } => self.run.quiet.push(crate::middlebox::Quiet {
                conn,
                since_us,
                until_us: ts_us,
                frame,
            }),
            Observation::Neighbour {
                ts_us,
                frame,
                request,
            } => self.ledger.frames.push_neighbour(CitedFrame {
                frame,
                ts_us,
                // Resolution is cited only for a client's address: its requests, and the
                // answers the other side of its link gave it.
                sender: if request.reply {
                    Sender::Broker
                } else {
                    Sender::Client
                },
                src: request.sender,
                port: None,
                sign: if request.reply {
                    WireSign::NeighbourReply
                } else {
                    WireSign::NeighbourRequest
                },
                to: Some(request.target),
                bytes: 0,
            }),
            Observation::Closed {
                conn,
                ts_us,
                frame,
                by,
                rst,
            } => self.closed(conn, ts_us, frame, by, rst),
            // The follower forgot the connection: it may be folded now, and with it what was
            // kept about it (and about its client, when none of the client's is held).
            Observation::Ended { conn, wire, .. } => {
                // A connection picked up again after its end ends again: its frames add up.
                let cost = self.run.wire_totals.entry(conn).or_default();
                cost.frames += wire.frames;
                cost.bytes += wire.bytes;
                for (folded, client) in self.retainer.end(conn) {
                    self.conns.remove(&folded);
                    self.ledger.ends.remove(&folded);
                    self.ledger.frames.forget(folded);
                    if let Some(client) = client {
                        self.latest_conn.remove(&client);
                    }
                }
            }
        }
    }

    fn opened(
        &mut self,
        conn: u64,
        ts_us: i64,
        frame: u64,
        client: SocketAddr,
        server: SocketAddr,
        syn: bool,
    ) {
        self.ledger.ends.insert(conn, (client, server));
        if syn {
            self.ledger
                .cite(conn, ts_us, frame, Sender::Client, WireSign::Syn, 0);
        }
        let server = server.to_string();
        if !self.servers.contains(&server) {
            self.servers.push(server.clone());
        }
        self.conns.insert(conn, ConnSeen::default());
        self.retainer.open(conn);
        self.retainer.keep(
            conn,
            event(
                ts_us,
                EventKind::ConnOpened(ConnOpened {
                    conn,
                    client_addr: client.to_string(),
                    listen_addr: server,
                }),
            ),
        );
    }

    /// Keeps an MQTT packet as an event of its connection (for the timeline and the stories).
    fn keep_packet(&mut self, conn: u64, dir: Direction, ts_us: i64, len: usize, packet: &Packet) {
        self.retainer.keep(
            conn,
            event(
                ts_us,
                EventKind::MqttPacket(linecut_capture::describe(conn, dir, len, packet)),
            ),
        );
    }

    fn packet(
        &mut self,
        conn: u64,
        dir: Direction,
        ts_us: i64,
        frame: u64,
        len: usize,
        packet: &Packet,
    ) {
        if let (Packet::Connect(c), Direction::Up) = (packet, dir) {
            let client = c.client_id.to_string();
            if let Some(old) = self.latest_conn.insert(client.clone(), conn) {
                // The broker's last word on the old connection before this CONNECT: later
                // words there (stale data after the line came back) do not move the start of
                // the silence.
                let heard = self
                    .conns
                    .get(&old)
                    .and_then(|o| o.heard_us.iter().rev().find(|t| **t < ts_us).copied());
                // Only a silence of at least the keepalive can be an outage (the first test of
                // `infer_windows`, made here so only candidates are kept); both connections
                // are then what the window is made of.
                let keepalive_us = i64::from(c.keepalive_s.max(1)) * 1_000_000;
                if let Some(heard) = heard.filter(|h| ts_us - h >= keepalive_us) {
                    self.retainer.pin(old);
                    self.retainer.pin(conn);
                    self.reconnects.push(Reconnect {
                        client: client.clone(),
                        old_conn: old,
                        last_heard_us: heard,
                        connect_us: ts_us,
                        keepalive_s: c.keepalive_s,
                    });
                }
            }
            self.retainer.owned_by(conn, &client);
            self.retainer.sign(conn, |s| s.mqtt = true);
        }
        if let (Packet::Disconnect(_), Direction::Up) = (packet, dir) {
            self.retainer.sign(conn, |s| s.client_disconnected = true);
        }
        let seen = self.conns.entry(conn).or_default();
        if dir == Direction::Down {
            seen.heard_us.push(ts_us);
        }
        // Data from the broker on a connection the client had already closed, or left for a
        // newer one, never reached the application: it is stale data, kept as an event for
        // the story, not a delivery.
        let stale = dir == Direction::Down
            && (seen.client_closed_us.is_some() || seen.superseded(conn, &self.latest_conn));
        match packet {
            Packet::Publish(_) if stale => {
                self.ledger.cite(
                    conn,
                    ts_us,
                    frame,
                    Sender::Broker,
                    WireSign::StalePublish,
                    0,
                );
                self.retainer.sign(conn, |s| s.resent_or_stale = true);
                self.keep_packet(conn, dir, ts_us, len, packet);
            }
            Packet::Publish(p) => {
                let stamp = linecut_model::payload::decode(p.payload);
                match (dir, &seen.client) {
                    (Direction::Down, Some(client)) => match stamp {
                        Some(s) => {
                            self.run.deliveries.push(Delivery {
                                ts_us,
                                client: self.clients.id(client),
                                topic: self.topics.id(p.topic),
                                seq: Some(s.seq),
                                pub_ts_us: Some(s.pub_ts_us),
                            });
                            self.retainer.sign(conn, |s| s.data = true);
                        }
                        None => {
                            *self
                                .run
                                .foreign_counts
                                .entry(self.clients.id(client))
                                .or_insert(0) += 1
                        }
                    },
                    (Direction::Up, _) => {
                        if let Some(s) = stamp {
                            self.run.publishes.push(Publish {
                                ts_us,
                                topic: self.topics.id(p.topic),
                                seq: s.seq,
                                qos: p.qos,
                            });
                        }
                    }
                    _ => {}
                }
            }
            Packet::PubAck(_) | Packet::PubRec(_) | Packet::PubRel(_) | Packet::PubComp(_) => {}
            other => {
                if let Packet::Connect(c) = other {
                    seen.client = Some(c.client_id.to_string());
                }
                self.retainer.count_packet(conn, other.packet_type(), dir);
                self.keep_packet(conn, dir, ts_us, len, other);
            }
        }
    }

    /// A retransmission from the broker onto a connection the client had left is stale data
    /// arriving (on a real link, the copy that gets through after a cut). The client's are
    /// retransmissions, or with no bytes its SYN resent.
    fn resent(&mut self, conn: u64, dir: Direction, ts_us: i64, frame: u64, bytes: u64) {
        let (sender, sign, stale) = match dir {
            Direction::Down => {
                let seen = self.conns.entry(conn).or_default();
                let stale =
                    seen.client_closed_us.is_some() || seen.superseded(conn, &self.latest_conn);
                if stale {
                    seen.heard_us.push(ts_us);
                }
                (Sender::Broker, WireSign::Retransmission, stale)
            }
            Direction::Up if bytes == 0 => (Sender::Client, WireSign::SynRetry, false),
            Direction::Up => (Sender::Client, WireSign::Retransmission, false),
        };
        self.ledger.cite(conn, ts_us, frame, sender, sign, bytes);
        self.retainer.sign(conn, |s| s.resent_or_stale = true);
        // Kept as an event either way: a window counts the retransmissions each side made
        // during it; only stale ones are data arriving late.
        self.retainer.keep(
            conn,
            event(
                ts_us,
                EventKind::RawBytes(linecut_events::RawBytes {
                    conn,
                    dir,
                    fate: if stale {
                        linecut_events::Fate::Released
                    } else {
                        linecut_events::Fate::Forwarded
                    },
                    len: bytes,
                }),
            ),
        );
    }

    fn closed(&mut self, conn: u64, ts_us: i64, frame: u64, by: Side, rst: bool) {
        let sender = if by == Side::Client {
            Sender::Client
        } else {
            Sender::Broker
        };
        let sign = if rst { WireSign::Rst } else { WireSign::Fin };
        self.ledger.cite(conn, ts_us, frame, sender, sign, 0);
        let seen = self.conns.entry(conn).or_default();
        match by {
            Side::Client => {
                seen.client_closed_us.get_or_insert(ts_us);
            }
            Side::Server => seen.heard_us.push(ts_us),
        }
        self.retainer.sign(conn, |s| {
            s.closed = true;
            s.rst |= rst;
        });
        self.retainer.keep(
            conn,
            event(
                ts_us,
                EventKind::LegClosed(LegClosed {
                    conn,
                    leg: if by == Side::Client {
                        Leg::Client
                    } else {
                        Leg::Upstream
                    },
                    by: ClosedBy::Peer,
                    how: if rst { CloseHow::Rst } else { CloseHow::Fin },
                    reason: Some("seen in the capture".into()),
                }),
            ),
        )
    }

    /// The run and what the capture was, once every frame is read.
    fn finish(
        self,
        path: &Path,
        port: u16,
        summary: CaptureSummary,
        client_library: Option<&str>,
        broker: Option<&str>,
    ) -> (Run, CaptureInfo) {
        let Loader {
            mut run,
            clients,
            topics,
            conns,
            reconnects,
            servers,
            gaps,
            ledger,
            retainer,
            ..
        } = self;
        run.wire = crate::Wire::Capture;
        if gaps > 20 {
            run.warnings.push(format!("… {} more gaps", gaps - 20));
        }
        let (held, folded) = retainer.finish();
        run.proxy = held.into_iter().map(|(_, e)| e).collect();
        let inferred = infer_windows(&conns, &reconnects, &mut run.proxy);
        run.proxy.sort_by_key(|e| e.ts_us);
        run.deliveries.sort_by_key(|d| d.ts_us);
        run.publishes.sort_by_key(|p| p.ts_us);
        run.clients = clients.names;
        run.topics = topics.names;
        run.frames = ledger.frames;
        let file = path.file_name().map_or_else(
            || path.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        let stopped = summary.read.stopped.clone();
        // A capture has no meta.json; the analysis reads the same fields from what the capture says.
        run.meta = RunMeta {
            scenario: format!("capture {file}"),
            broker: broker.map_or_else(
                || format!("broker at {} (from the capture)", servers.join(", ")),
                str::to_string,
            ),
            subscriber_client: client_library
                .unwrap_or("unknown client (from the capture)")
                .to_string(),
            experiment_start_us: summary.first_ts_us,
            status: match &stopped {
                Some(s) => {
                    RunStatus::Incomplete(format!("the capture could not be read to its end: {s}"))
                }
                None => RunStatus::Complete,
            },
            ..RunMeta::default()
        };
        if !summary.unknown_linktypes.is_empty() {
            run.warnings.push(format!(
                "frames of link types linecut does not read were skipped: {:?}",
                summary.unknown_linktypes
            ));
        }
        let s = summary.flows.stream;
        let info = CaptureInfo {
            file,
            container: summary.read.container.to_string(),
            port,
            frames: summary.read.frames,
            bytes: summary.read.bytes,
            connections: summary.flows.connections,
            mqtt_packets: summary.flows.mqtt_packets,
            other_frames: summary.other_frames,
            retransmitted_bytes: s.retransmitted_bytes,
            out_of_order_segments: s.out_of_order_segments,
            gaps: s.gaps,
            gap_bytes: s.gap_bytes,
            stopped,
            unknown_linktypes: summary.unknown_linktypes,
            inferred_windows: inferred,
            folded,
        };
        (run, info)
    }
}

/// The connection an observation is about, for those that touch a connection's state.
fn observation_conn(o: &Observation<'_>) -> Option<u64> {
    match o {
        Observation::Packet { conn, .. }
        | Observation::Malformed { conn, .. }
        | Observation::Resent { conn, .. }
        | Observation::Quiet { conn, .. }
        | Observation::Closed { conn, .. } => Some(*conn),
        Observation::Opened { .. }
        | Observation::Gap { .. }
        | Observation::Ended { .. }
        | Observation::Neighbour { .. } => None,
    }
}

/// Outages the capture implies: a reconnect after the broker had been silent on the client's
/// previous connection for at least the keepalive. The outage runs from the broker's last word
/// there until it is heard again on any of the client's connections: a new connection's
/// attempts that got no answer are part of the outage, not its end.
fn infer_windows(
    conns: &BTreeMap<u64, ConnSeen>,
    reconnects: &[Reconnect],
    events: &mut Vec<Event>,
) -> u32 {
    let mut count = 0u32;
    let mut last_end = i64::MIN;
    for r in reconnects {
        let keepalive_us = i64::from(r.keepalive_s.max(1)) * 1_000_000;
        let silent_us = r.connect_us - r.last_heard_us;
        if silent_us < keepalive_us || r.last_heard_us < last_end {
            continue;
        }
        let heard_again = conns
            .values()
            .filter(|c| c.client.as_deref() == Some(r.client.as_str()))
            .filter_map(|c| c.heard_us.iter().find(|t| **t > r.last_heard_us).copied())
            .min();
        let Some(end) = heard_again else {
            // Never heard again: the outage lasts to the end of the capture, which the
            // analysis takes as the window's end.
            continue;
        };
        last_end = end;
        count += 1;
        let fault = 1000 + u64::from(count);
        events.push(Event {
            ts_us: r.last_heard_us,
            source: Source::Capture,
            kind: EventKind::FaultStarted(FaultStarted {
                fault,
                spec: format!(
                    "inferred: nothing from the broker for {:.3} s after its last word on conn {}",
                    (end - r.last_heard_us) as f64 / 1e6,
                    r.old_conn
                ),
                kind: INFERRED.into(),
                scheduled_us: None,
                lateness_us: None,
                applied: Vec::new(),
            }),
        });
        events.push(Event {
            ts_us: end,
            source: Source::Capture,
            kind: EventKind::FaultEnded(FaultEnded {
                fault,
                kind: INFERRED.into(),
                scheduled_us: None,
                lateness_us: None,
                applied: Vec::new(),
            }),
        });
    }
    count
}

/// One packet type in one direction for one client: how many the events and the capture show.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaptureCheckRow {
    pub client: String,
    /// e.g. `PINGREQ up`.
    pub packet: String,
    pub events: u64,
    pub capture: u64,
}

/// A run's capture against its events (control packets on the client side of the proxy).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaptureCheck {
    pub file: String,
    pub agree: bool,
    pub rows: Vec<CaptureCheckRow>,
}

/// Compares the control packets the proxy logged on its client side with those in `pcap`
/// (whose client side is the proxy's listening port).
pub fn check_against(run: &Run, pcap: &Path) -> Result<CaptureCheck, AnalyzeError> {
    use linecut_events::Fate;
    let port = run
        .proxy
        .iter()
        .find_map(|e| match &e.kind {
            EventKind::ProxyStarted(p) => p.listen.rsplit(':').next()?.parse::<u16>().ok(),
            _ => None,
        })
        .ok_or_else(|| AnalyzeError::Read("the proxy log names no listening port".into()))?;
    let client_of = |events: &[Event]| -> BTreeMap<u64, String> {
        events
            .iter()
            .filter_map(|e| match &e.kind {
                EventKind::MqttPacket(p)
                    if p.kind() == Some(PacketType::Connect) && p.dir == Direction::Up =>
                {
                    p.client_id.clone().map(|c| (p.conn, c))
                }
                _ => None,
            })
            .collect()
    };
    let mut counts: BTreeMap<(String, String), (u64, u64)> = BTreeMap::new();
    let owners = client_of(&run.proxy);
    for e in &run.proxy {
        if let EventKind::MqttPacket(p) = &e.kind {
            // What crossed the client leg: up when the proxy read it, down when it wrote it.
            // An upstream packet has exactly one final fate (a held one ends released or
            // discarded), so counting final fates counts each packet the client sent once.
            let crossed = match p.dir {
                Direction::Up => matches!(
                    p.fate,
                    Fate::Forwarded | Fate::Dropped | Fate::Released | Fate::Discarded
                ),
                Direction::Down => matches!(p.fate, Fate::Forwarded | Fate::Released),
            };
            if crossed && !p.kind().is_some_and(PacketType::is_publish_flow) {
                if let Some(client) = owners.get(&p.conn) {
                    let key = (
                        client.clone(),
                        format!("{} {}", p.packet_type, p.dir.as_str()),
                    );
                    counts.entry(key).or_default().0 += 1;
                }
            }
        }
    }
    let (captured, _) = load_capture(pcap, port, None, None)?;
    let owners = client_of(&captured.proxy);
    for e in &captured.proxy {
        if let EventKind::MqttPacket(p) = &e.kind {
            // Control packets only, as on the events' side: a capture also keeps the stale
            // PUBLISHes that reached a client after it had closed.
            if p.kind().is_some_and(PacketType::is_publish_flow) {
                continue;
            }
            if let Some(client) = owners.get(&p.conn) {
                let key = (
                    client.clone(),
                    format!("{} {}", p.packet_type, p.dir.as_str()),
                );
                counts.entry(key).or_default().1 += 1;
            }
        }
    }
    let rows: Vec<CaptureCheckRow> = counts
        .into_iter()
        .map(|((client, packet), (events, capture))| CaptureCheckRow {
            client,
            packet,
            events,
            capture,
        })
        .collect();
    Ok(CaptureCheck {
        file: pcap
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
        agree: rows.iter().all(|r| r.events == r.capture),
        rows,
    })
}
