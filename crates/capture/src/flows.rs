//! TCP connections to the MQTT port, followed through a capture: which side is the client,
//! each direction reassembled ([`crate::reassembly`]) and decoded as MQTT with linecut's own
//! decoder, and what happened reported as [`Observation`]s in capture order.

use crate::link::Segment;
use crate::reassembly::{Piece, Reassembler, StreamStats};
use linecut_events::Direction;
use linecut_mqtt::{Packet, Role, StreamDecoder, Unit};
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;

/// Largest MQTT packet decoded whole; bigger ones are framed and skipped.
const MAX_PACKET: usize = 1 << 20;

/// Ended connections whose addresses are remembered, so that a segment arriving after the end
/// (a retransmission, stale data, the RST answering it) is still theirs. The oldest are
/// forgotten past this many, so a capture of millions of connections is followed in memory
/// that does not grow with them (about 3 MiB at the bound); a segment of a forgotten one reads
/// as a connection the capture saw begin mid-stream. Late segments come within the minutes a
/// kernel keeps retransmitting on a dead connection (`tcp_retries2`, about 15 minutes at most);
/// a capture that ends more than this many connections in that time is a load test, whose
/// late segments are counted but may be attributed to a new connection.
const ENDED_REMEMBERED: usize = 16_384;

/// Which side of a connection did something.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Client,
    Server,
}

/// Something the capture shows. Every observation names the frame that showed it (Wireshark's
/// `frame.number`): for a packet, the frame whose segment completed it in stream order.
#[derive(Debug)]
pub enum Observation<'a> {
    /// A connection was seen for the first time (`syn`: its handshake is in the capture).
    Opened {
        conn: u64,
        ts_us: i64,
        frame: u64,
        client: SocketAddr,
        server: SocketAddr,
        syn: bool,
    },
    Packet {
        conn: u64,
        dir: Direction,
        ts_us: i64,
        frame: u64,
        len: usize,
        packet: &'a Packet<'a>,
    },
    /// The direction stopped decoding as MQTT (or never was MQTT).
    Malformed {
        conn: u64,
        dir: Direction,
        ts_us: i64,
        frame: u64,
        error: String,
    },
    /// Bytes of the stream the capture does not have.
    Gap {
        conn: u64,
        dir: Direction,
        ts_us: i64,
        frame: u64,
        bytes: u64,
    },
    /// A segment repeated bytes its side had sent before (a retransmission), or, with no
    /// bytes, the client's SYN resent (an unanswered connect).
    Resent {
        conn: u64,
        dir: Direction,
        ts_us: i64,
        frame: u64,
        bytes: u64,
    },
    /// A side sent FIN or RST.
    Closed {
        conn: u64,
        ts_us: i64,
        frame: u64,
        by: Side,
        rst: bool,
    },
    /// The connection ended (a reset, a FIN each way, its addresses reused by a new SYN, or
    /// the end of the capture): after what its streams still held was reported, the follower
    /// forgets it. Later segments on its addresses without a SYN may still come as the same
    /// `conn` (retransmissions, stale data), and end it again.
    Ended {
        conn: u64,
        ts_us: i64,
        frame: u64,
        /// The frames of the connection since it was (last) picked up, headers included.
        wire: WireTotals,
    },
    /// A segment of `conn`, either way, came after at least [`QUIET_US`] without one: how a
    /// middlebox's idle timer sees the flow (every segment counts, a bare ACK too).
    Quiet {
        conn: u64,
        ts_us: i64,
        frame: u64,
        /// The previous segment of the connection.
        since_us: i64,
    },
    /// A host asked for a neighbour's link address (ARP request or IPv6 neighbour
    /// solicitation). Not tied to a connection: the analysis decides whose attempt it was.
    Neighbour {
        ts_us: i64,
        frame: u64,
        request: crate::link::NeighbourRequest,
    },
}

struct Half {
    stream: Reassembler,
    decoder: StreamDecoder,
    buf: Vec<u8>,
    closed: bool,
}

impl Half {
    fn new(role: Role) -> Half {
        Half {
            stream: Reassembler::default(),
            decoder: StreamDecoder::new(role, MAX_PACKET),
            buf: Vec::new(),
            closed: false,
        }
    }
}

struct Conn {
    id: u64,
    up: Half,
    down: Half,
    /// The client's SYN sequence number: a SYN repeating it is a retry of the same
    /// connection (unanswered on a cut link), not a new one.
    syn_seq: Option<u32>,
    /// When the connection's latest segment, either way, was captured.
    last_us: Option<i64>,
    wire: WireTotals,
}

/// What a connection cost on the wire: its frames and their bytes as sent (link, IP and TCP
/// headers included, the capture's snap length notwithstanding).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WireTotals {
    pub frames: u64,
    pub bytes: u64,
}

impl WireTotals {
    fn add(&mut self, bytes: usize) {
        self.frames += 1;
        self.bytes += bytes as u64;
    }
}

/// The shortest silence on a connection reported as [`Observation::Quiet`]: a middlebox
/// timer counts whole seconds, and an MQTT connection is quiet that long only between pings.
pub const QUIET_US: i64 = 1_000_000;

/// Totals over all connections.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct FlowStats {
    pub connections: u64,
    pub segments: u64,
    /// SYNs that repeated a connection's first (its kernel retrying an unanswered connect).
    pub syn_retries: u64,
    pub mqtt_packets: u64,
    pub stream: StreamStats,
}

/// Follows every TCP connection with one end on the MQTT port.
pub struct Flows {
    port: u16,
    conns: HashMap<(SocketAddr, SocketAddr), Conn>,
    /// Connections that ended (RST, or FIN both ways), by addresses: a segment on the same
    /// addresses without a new SYN (a retransmission, stale data, the RST answering it) still
    /// belongs to them. Only the id and which halves had closed are kept (a retransmitted FIN
    /// is not a second close).
    ended: HashMap<(SocketAddr, SocketAddr), (u64, bool, bool)>,
    /// The order connections ended in, oldest first, to forget past [`ENDED_REMEMBERED`]
    /// (an entry whose key was since reused or picked up again names another id, and is
    /// skipped).
    ended_order: VecDeque<((SocketAddr, SocketAddr), u64)>,
    next_id: u64,
    /// The frame being fed: what every observation it causes names.
    frame: u64,
    /// Its length on the wire, when the caller said ([`Flows::frame`]).
    frame_len: usize,
    pub stats: FlowStats,
}

fn add(total: &mut StreamStats, s: &StreamStats) {
    total.bytes += s.bytes;
    total.retransmitted_bytes += s.retransmitted_bytes;
    total.out_of_order_segments += s.out_of_order_segments;
    total.gaps += s.gaps;
    total.gap_bytes += s.gap_bytes;
}

impl Flows {
    pub fn new(port: u16) -> Flows {
        Flows {
            port,
            conns: HashMap::new(),
            ended: HashMap::new(),
            ended_order: VecDeque::new(),
            next_id: 0,
            frame: 0,
            frame_len: 0,
            stats: FlowStats::default(),
        }
    }

    /// Feeds the segment of frame `frame`, `wire_len` bytes on the wire: [`Flows::segment`],
    /// counting the frame against its connection.
    pub fn frame(
        &mut self,
        ts_us: i64,
        frame: u64,
        wire_len: usize,
        segment: &Segment<'_>,
        len: usize,
        out: &mut impl FnMut(Observation<'_>),
    ) {
        self.frame_len = wire_len;
        self.segment(ts_us, frame, segment, len, out);
        self.frame_len = 0;
    }

    /// Feeds one segment (of `len` payload bytes, of which the capture has `segment.payload`),
    /// read from frame `frame` of the capture.
    pub fn segment(
        &mut self,
        ts_us: i64,
        frame: u64,
        segment: &Segment<'_>,
        len: usize,
        out: &mut impl FnMut(Observation<'_>),
    ) {
        self.frame = frame;
        let (client, server, dir) = if segment.dst.port() == self.port {
            (segment.src, segment.dst, Direction::Up)
        } else if segment.src.port() == self.port {
            (segment.dst, segment.src, Direction::Down)
        } else {
            return;
        };
        self.stats.segments += 1;
        let key = (client, server);
        // A SYN from the client on a key still in use starts a new connection (port reuse),
        // unless it repeats the connection's own SYN: then it is the kernel retrying.
        let retry = segment.syn
            && dir == Direction::Up
            && self
                .conns
                .get(&key)
                .is_some_and(|c| c.syn_seq == Some(segment.seq));
        if retry {
            self.stats.syn_retries += 1;
            let frame_len = self.frame_len;
            let conn = self
                .conns
                .get_mut(&key)
                .expect("a retry of a known connection");
            conn.wire.add(frame_len);
            let id = conn.id;
            // A resent segment with no payload: the kernel retrying an unanswered connect.
            out(Observation::Resent {
                conn: id,
                dir,
                ts_us,
                frame,
                bytes: 0,
            });
            return;
        }
        if segment.syn && dir == Direction::Up {
            self.ended.remove(&key);
            if self.conns.contains_key(&key) {
                self.end(key, ts_us, out);
            }
        }
        // A segment after the end, without a SYN: the ended connection's, picked up again.
        if !segment.syn && !self.conns.contains_key(&key) {
            if let Some((id, up_closed, down_closed)) = self.ended.remove(&key) {
                let mut conn = Conn {
                    id,
                    up: Half::new(Role::Client),
                    down: Half::new(Role::Broker),
                    syn_seq: None,
                    last_us: None,
                    wire: WireTotals::default(),
                };
                conn.up.closed = up_closed;
                conn.down.closed = down_closed;
                conn.up.decoder.assume_mqtt();
                conn.down.decoder.assume_mqtt();
                self.conns.insert(key, conn);
            }
        }
        if !self.conns.contains_key(&key) {
            if segment.rst || (segment.fin && segment.payload.is_empty()) {
                return; // the tail of a connection the capture did not see
            }
            self.next_id += 1;
            self.stats.connections += 1;
            out(Observation::Opened {
                conn: self.next_id,
                ts_us,
                frame,
                client,
                server,
                syn: segment.syn,
            });
            let mut conn = Conn {
                id: self.next_id,
                up: Half::new(Role::Client),
                down: Half::new(Role::Broker),
                syn_seq: (segment.syn && dir == Direction::Up).then_some(segment.seq),
                last_us: None,
                wire: WireTotals::default(),
            };
            if !segment.syn {
                // The capture began after this connection did: its first packet is not its
                // CONNECT, so decode from whatever packet comes first.
                conn.up.decoder.assume_mqtt();
                conn.down.decoder.assume_mqtt();
            }
            self.conns.insert(key, conn);
        }
        let conn = self.conns.get_mut(&key).expect("inserted above");
        let id = conn.id;
        if let Some(since_us) = conn.last_us.filter(|last| ts_us - last >= QUIET_US) {
            out(Observation::Quiet {
                conn: id,
                ts_us,
                frame,
                since_us,
            });
        }
        conn.last_us = Some(ts_us);
        conn.wire.add(self.frame_len);
        let (half, other) = match dir {
            Direction::Up => (&mut conn.up, &mut conn.down),
            Direction::Down => (&mut conn.down, &mut conn.up),
        };
        if segment.syn {
            half.stream.syn(segment.seq);
        }
        if !segment.payload.is_empty() || len > 0 || segment.fin {
            let mut version = None;
            half.stream
                .segment(segment.seq, segment.payload, len, segment.fin, |piece| {
                    feed(
                        id,
                        dir,
                        ts_us,
                        frame,
                        piece,
                        &mut half.decoder,
                        &mut half.buf,
                        &mut version,
                        &mut self.stats,
                        out,
                    );
                });
            if let Some(v) = version {
                other.decoder.set_version(v);
            }
        }
        let by = if dir == Direction::Up {
            Side::Client
        } else {
            Side::Server
        };
        if segment.rst {
            out(Observation::Closed {
                conn: id,
                ts_us,
                frame,
                by,
                rst: true,
            });
            self.end(key, ts_us, out);
        } else if segment.fin && !half.closed {
            half.closed = true;
            out(Observation::Closed {
                conn: id,
                ts_us,
                frame,
                by,
                rst: false,
            });
            if conn.up.closed && conn.down.closed {
                self.end(key, ts_us, out);
            }
        }
    }

    /// Forgets a connection after releasing what its streams still hold.
    fn end(
        &mut self,
        key: (SocketAddr, SocketAddr),
        ts_us: i64,
        out: &mut impl FnMut(Observation<'_>),
    ) {
        let Some(mut conn) = self.conns.remove(&key) else {
            return;
        };
        self.remember_ended(key, (conn.id, conn.up.closed, conn.down.closed));
        for (dir, half) in [
            (Direction::Up, &mut conn.up),
            (Direction::Down, &mut conn.down),
        ] {
            let mut version = None;
            half.stream.flush(|piece| {
                feed(
                    conn.id,
                    dir,
                    ts_us,
                    self.frame,
                    piece,
                    &mut half.decoder,
                    &mut half.buf,
                    &mut version,
                    &mut self.stats,
                    out,
                )
            });
            add(&mut self.stats.stream, &half.stream.stats);
        }
        out(Observation::Ended {
            conn: conn.id,
            ts_us,
            frame: self.frame,
            wire: conn.wire,
        });
    }

    /// Keeps an ended connection's addresses, forgetting the oldest past the bound.
    fn remember_ended(&mut self, key: (SocketAddr, SocketAddr), ended: (u64, bool, bool)) {
        self.ended.insert(key, ended);
        self.ended_order.push_back((key, ended.0));
        while self.ended_order.len() > ENDED_REMEMBERED {
            let Some((old, id)) = self.ended_order.pop_front() else {
                break;
            };
            if self.ended.get(&old).is_some_and(|e| e.0 == id) {
                self.ended.remove(&old);
            }
        }
    }

    /// The end of the capture: every connection still open is flushed.
    pub fn finish(&mut self, ts_us: i64, out: &mut impl FnMut(Observation<'_>)) {
        let keys: Vec<_> = self.conns.keys().copied().collect();
        for key in keys {
            self.end(key, ts_us, out);
        }
    }
}

/// Decodes what a piece of stream completes.
#[allow(clippy::too_many_arguments)]
fn feed(
    conn: u64,
    dir: Direction,
    ts_us: i64,
    frame: u64,
    piece: Piece<'_>,
    decoder: &mut StreamDecoder,
    buf: &mut Vec<u8>,
    version: &mut Option<linecut_mqtt::Version>,
    stats: &mut FlowStats,
    out: &mut impl FnMut(Observation<'_>),
) {
    let bytes: &[u8] = match &piece {
        Piece::Data(d) => d,
        Piece::Owned(d) => d,
        Piece::Resent { len } => {
            out(Observation::Resent {
                conn,
                dir,
                ts_us,
                frame,
                bytes: *len,
            });
            return;
        }
        Piece::Gap { len } => {
            out(Observation::Gap {
                conn,
                dir,
                ts_us,
                frame,
                bytes: *len,
            });
            // The stream position after a hole is unknown to MQTT framing: stop decoding.
            if decoder.mode() != linecut_mqtt::StreamMode::Raw {
                decoder.desync();
                buf.clear();
            }
            return;
        }
    };
    // Fast path: whole packets straight from the segment when nothing is buffered.
    let mut input: &[u8] = bytes;
    let owned;
    if !buf.is_empty() {
        buf.extend_from_slice(bytes);
        owned = std::mem::take(buf);
        input = &owned;
    } else {
        owned = Vec::new();
    }
    let mut at = 0;
    loop {
        let unit = decoder.next(&input[at..]);
        match unit {
            Unit::NeedMore => break,
            Unit::Malformed { error, .. } => {
                out(Observation::Malformed {
                    conn,
                    dir,
                    ts_us,
                    frame,
                    error: error.to_string(),
                });
                continue;
            }
            Unit::Packet { len, ref packet } => {
                if let Packet::Connect(c) = packet {
                    *version = Some(c.version);
                }
                stats.mqtt_packets += 1;
                out(Observation::Packet {
                    conn,
                    dir,
                    ts_us,
                    frame,
                    len,
                    packet,
                });
                at += len;
            }
            other => at += other.len(),
        }
        if at >= input.len() {
            break;
        }
    }
    // An incomplete packet waits in `buf` for the rest of its bytes.
    let keep = at < input.len() && decoder.mode() != linecut_mqtt::StreamMode::Raw;
    if owned.is_empty() {
        if keep {
            buf.extend_from_slice(&bytes[at..]);
        }
    } else if keep {
        let mut owned = owned;
        owned.drain(..at);
        *buf = owned;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::link::Segment;

    fn seg(up: bool, seq: u32, syn: bool, fin: bool, rst: bool, payload: &[u8]) -> Segment<'_> {
        let (client, server): (SocketAddr, SocketAddr) = (
            "10.0.0.2:40000".parse().unwrap(),
            "10.0.0.1:1883".parse().unwrap(),
        );
        let (src, dst) = if up {
            (client, server)
        } else {
            (server, client)
        };
        Segment {
            src,
            dst,
            seq,
            syn,
            fin,
            rst,
            payload,
        }
    }

    /// What a pulled cable leaves in a client-side capture: the client's FIN, then after the
    /// restore the broker's stale data and FIN, and the client's RST answering them, all on
    /// addresses whose connection had ended. They belong to that connection; only a SYN starts
    /// a new one.
    #[test]
    fn segments_after_the_end_without_a_syn_belong_to_the_ended_connection() {
        let mut flows = Flows::new(1883);
        let mut seen: Vec<String> = Vec::new();
        let mut out = |o: Observation<'_>| {
            seen.push(match o {
                Observation::Opened { conn, .. } => format!("open {conn}"),
                Observation::Closed {
                    conn,
                    by,
                    rst,
                    frame,
                    ..
                } => format!("close {conn} {by:?} rst={rst} frame {frame}"),
                Observation::Packet { conn, dir, .. } => format!("packet {conn} {dir:?}"),
                Observation::Resent { conn, dir, .. } => format!("resent {conn} {dir:?}"),
                Observation::Ended { conn, frame, .. } => format!("ended {conn} frame {frame}"),
                _ => "other".into(),
            })
        };
        let connect = linecut_mqtt::encode::connect("c", 2);
        let publish = linecut_mqtt::encode::publish("t", b"x");
        flows.segment(0, 1, &seg(true, 100, true, false, false, &[]), 0, &mut out);
        // The kernel retries an unanswered SYN with the same sequence number: same connection.
        flows.segment(0, 1, &seg(true, 100, true, false, false, &[]), 0, &mut out);
        flows.segment(1, 2, &seg(false, 500, true, false, false, &[]), 0, &mut out);
        flows.segment(
            2,
            3,
            &seg(true, 101, false, false, false, &connect),
            connect.len(),
            &mut out,
        );
        flows.segment(
            3,
            4,
            &seg(false, 501, false, false, false, &[0x20, 2, 0, 0]),
            4,
            &mut out,
        );
        // The client gives up (FIN); the broker's FIN ends the connection.
        let up_end = 101 + connect.len() as u32;
        flows.segment(
            4,
            5,
            &seg(true, up_end, false, true, false, &[]),
            0,
            &mut out,
        );
        flows.segment(5, 6, &seg(false, 505, false, true, false, &[]), 0, &mut out);
        // A retransmitted FIN is not a second close; stale data and the RST still belong here.
        flows.segment(
            6,
            7,
            &seg(true, up_end, false, true, false, &[]),
            0,
            &mut out,
        );
        flows.segment(
            7,
            8,
            &seg(false, 505, false, false, false, &publish),
            publish.len(),
            &mut out,
        );
        flows.segment(
            8,
            9,
            &seg(true, up_end + 1, false, false, true, &[]),
            0,
            &mut out,
        );
        // A new SYN on the same addresses is a new connection.
        flows.segment(
            9,
            10,
            &seg(true, 9000, true, false, false, &[]),
            0,
            &mut out,
        );
        assert_eq!(
            seen,
            [
                "open 1",
                "resent 1 Up",
                "packet 1 Up",
                "packet 1 Down",
                "close 1 Client rst=false frame 5",
                "close 1 Server rst=false frame 6",
                "ended 1 frame 6",
                "packet 1 Down",
                "close 1 Client rst=true frame 9",
                "ended 1 frame 9",
                "open 2",
            ]
        );
        assert_eq!(flows.stats.connections, 2);
        assert_eq!(flows.stats.syn_retries, 1);
    }

    /// A capture of more connections than [`ENDED_REMEMBERED`]: a late segment of one of the
    /// latest ended is still that connection's; one of the oldest, forgotten, reads as a new
    /// connection seen mid-stream, and what is remembered stays at the bound.
    #[test]
    fn ended_connections_are_remembered_up_to_a_bound() {
        let mut flows = Flows::new(1883);
        let server: SocketAddr = "10.0.0.1:1883".parse().unwrap();
        let client = |n: usize| -> SocketAddr {
            format!("10.{}.{}.{}:2000", 1 + (n >> 16), (n >> 8) & 255, n & 255)
                .parse()
                .unwrap()
        };
        let segment = |n: usize, syn: bool, rst: bool| Segment {
            src: client(n),
            dst: server,
            seq: 7,
            syn,
            fin: false,
            rst,
            payload: &[],
        };
        let total = ENDED_REMEMBERED + 10;
        let mut ended = 0u64;
        for n in 0..total {
            flows.segment(0, 1, &segment(n, true, false), 0, &mut |_| {});
            flows.segment(0, 1, &segment(n, false, true), 0, &mut |o| {
                if matches!(o, Observation::Ended { .. }) {
                    ended += 1;
                }
            });
        }
        assert_eq!(ended, total as u64);
        assert_eq!(flows.ended.len(), ENDED_REMEMBERED);
        assert_eq!(flows.ended_order.len(), ENDED_REMEMBERED);
        let late = |flows: &mut Flows, n: usize| {
            let mut opened = None;
            let mut data = segment(n, false, false);
            data.payload = &[0xd0, 0];
            flows.segment(1, 2, &data, 2, &mut |o| {
                if let Observation::Opened { conn, .. } = o {
                    opened = Some(conn);
                }
            });
            opened
        };
        assert_eq!(late(&mut flows, total - 1), None, "still remembered");
        assert_eq!(
            late(&mut flows, 0),
            Some(total as u64 + 1),
            "forgotten: a new connection"
        );
    }
}
