//! The per-direction pumps: read from one endpoint, decide each unit's fate, write to the other.
//!
//! Each direction of a connection is a [`Lane`] with two halves joined by a queue of timestamped
//! [`Item`]s, as in Toxiproxy's links:
//!
//! - the **reader** reads from its source socket, splits the bytes into units with the MQTT
//!   [`StreamDecoder`], applies read-side faults (drops), logs packets, and queues whole units.
//!   It stops reading while the queue is over its limit, so a held direction pushes back on its
//!   sender as a full TCP window would.
//! - the **writer** takes items in order and asks the active faults whether the head item may go
//!   (`cut` holds it, `latency` and `bandwidth` make it wait), then writes it. End of stream (FIN)
//!   and reset (RST) are items too, so they keep their place behind the data.
//!
//! Fates are logged where they are decided: `dropped` by the reader, `held`, `released`,
//! `forwarded` and `discarded` by the writer. A socket is shared by the reader of one lane and the
//! writer of the other; ending a connection is coordinated through the connection's kill switch.

use crate::board::Snapshot;
use crate::conn::{ConnHandle, Kill};
use crate::faults::{ConnAction, Pacing, ReadEffect, WriteContext, WriteEffect};
use crate::wirelog::{describe, PublishBudget};
use crate::Shared;
use bytes::{Bytes, BytesMut};
use linecut_events::{
    now_us, CloseHow, ClosedBy, Direction, EventBatch, EventKind, Fate, LegClosed, MqttMalformed,
    MqttPacket, PublishSuppressed, RawBytes,
};
use linecut_mqtt::{Packet, Role, StreamDecoder, Unit};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::mpsc::{self, UnboundedReceiver, UnboundedSender};
use tokio::sync::Notify;

/// Bytes asked for per read.
const READ_CHUNK: usize = 64 * 1024;
/// How long a closing connection keeps draining a peer so that the close is a FIN, not an RST
/// (closing a socket with unread data makes Linux send RST).
const CLOSE_DRAIN: Duration = Duration::from_secs(2);

use linecut_events::Leg;

enum Payload {
    Data(Bytes),
    Eof,
    Reset,
}

/// A unit (or several consecutive units) read together, with what is known about them.
struct Item {
    payload: Payload,
    read_at: Instant,
    jitter_unit: f64,
    packets: Vec<MqttPacket>,
    raw_len: u64,
    held_since: Option<Instant>,
}

impl Item {
    fn len(&self) -> usize {
        match &self.payload {
            Payload::Data(b) => b.len(),
            Payload::Eof | Payload::Reset => 0,
        }
    }
}

/// Forwards both directions of a connection until both have ended.
pub(crate) async fn pump_connection(
    shared: &Arc<Shared>,
    conn: &Arc<ConnHandle>,
    client: TcpStream,
    upstream: TcpStream,
) {
    let (client_r, client_w) = client.into_split();
    let (upstream_r, upstream_w) = upstream.into_split();
    let up = Lane::new(Direction::Up, conn.clone(), shared.clone());
    let down = Lane::new(Direction::Down, conn.clone(), shared.clone());
    let (up_tx, up_rx) = mpsc::unbounded_channel();
    let (down_tx, down_rx) = mpsc::unbounded_channel();
    // One task per connection: the four halves interleave on it, which keeps a connection's
    // events in order and costs no cross-thread wake-ups on the hot path.
    tokio::join!(
        read_side(&up, client_r, up_tx),
        write_side(&up, upstream_w, up_rx),
        read_side(&down, upstream_r, down_tx),
        write_side(&down, client_w, down_rx),
    );
}

/// One direction of one connection.
struct Lane {
    dir: Direction,
    conn: Arc<ConnHandle>,
    shared: Arc<Shared>,
    queued: AtomicUsize,
    drained: Notify,
}

impl Lane {
    fn new(dir: Direction, conn: Arc<ConnHandle>, shared: Arc<Shared>) -> Self {
        Lane {
            dir,
            conn,
            shared,
            queued: AtomicUsize::new(0),
            drained: Notify::new(),
        }
    }

    fn src_leg(&self) -> Leg {
        match self.dir {
            Direction::Up => Leg::Client,
            Direction::Down => Leg::Upstream,
        }
    }

    fn dst_leg(&self) -> Leg {
        match self.dir {
            Direction::Up => Leg::Upstream,
            Direction::Down => Leg::Client,
        }
    }

    fn leg_closed(&self, leg: Leg, by: ClosedBy, how: CloseHow, reason: Option<String>) {
        if self.conn.mark_leg_closed(leg) {
            self.shared.events.emit(EventKind::LegClosed(LegClosed {
                conn: self.conn.id,
                leg,
                by,
                how,
                reason,
            }));
        }
    }

    fn applying<'a>(
        &'a self,
        snapshot: &'a Snapshot,
    ) -> impl Iterator<Item = &'a crate::board::ActiveFault> + 'a {
        snapshot
            .iter()
            .filter(move |f| f.applies_to(&self.conn, self.dir))
    }

    /// Queue bound: a holding fault's limit while one applies, the normal bound otherwise.
    fn queue_limit(&self, snapshot: &Snapshot) -> usize {
        self.applying(snapshot)
            .filter_map(|f| f.spec.fault.hold_limit())
            .min()
            .unwrap_or(self.shared.config.queue_limit)
    }

    fn push_fates(&self, batch: &mut EventBatch<'_>, item: &Item, fate: Fate, ts_us: i64) {
        for packet in &item.packets {
            let mut event = packet.clone();
            event.fate = fate;
            batch.push_at(ts_us, EventKind::MqttPacket(event));
        }
        if item.raw_len > 0 && self.shared.config.wire_log != crate::WireLog::Off {
            batch.push_at(
                ts_us,
                EventKind::RawBytes(RawBytes {
                    conn: self.conn.id,
                    dir: self.dir,
                    fate,
                    len: item.raw_len,
                }),
            );
        }
    }
}

// ---- reader -----------------------------------------------------------------------------------

struct ReadState {
    decoder: StreamDecoder,
    budget: PublishBudget,
    buf: BytesMut,
    rng: fastrand::Rng,
}

async fn read_side(lane: &Lane, src: OwnedReadHalf, tx: UnboundedSender<Item>) {
    let shared = &lane.shared;
    let role = match lane.dir {
        Direction::Up => Role::Client,
        Direction::Down => Role::Broker,
    };
    let mut state = ReadState {
        decoder: StreamDecoder::new(role, shared.config.max_buffered_packet),
        budget: PublishBudget::new(shared.config.wire_log, Instant::now()),
        buf: BytesMut::with_capacity(READ_CHUNK),
        rng: fastrand::Rng::new(),
    };
    read_loop(lane, &mut state, src, &tx).await;
    report_suppressed(lane, &mut state, Instant::now(), true);
}

async fn read_loop(
    lane: &Lane,
    state: &mut ReadState,
    mut src: OwnedReadHalf,
    tx: &UnboundedSender<Item>,
) {
    let shared = &lane.shared;
    let mut faults = shared.board.subscribe();
    let mut kill = lane.conn.watch_kill();
    let counter = match lane.dir {
        Direction::Up => &lane.conn.bytes_up,
        Direction::Down => &lane.conn.bytes_down,
    };
    loop {
        // Back-pressure: while the queue is full, stop reading (the sender's window fills up).
        loop {
            let current_kill = kill.borrow_and_update().clone();
            if let Some(k) = current_kill {
                return reader_killed(lane, src, k).await;
            }
            let limit = lane.queue_limit(&faults.borrow_and_update());
            if lane.queued.load(Ordering::Acquire) < limit {
                break;
            }
            tokio::select! {
                _ = lane.drained.notified() => {}
                _ = faults.changed() => {}
                _ = kill.changed() => {}
            }
        }
        state.buf.reserve(READ_CHUNK);
        let result = tokio::select! {
            r = src.read_buf(&mut state.buf) => r,
            _ = kill.changed() => continue,
        };
        let now = Instant::now();
        match result {
            Ok(0) => {
                flush_partial_packet(lane, state, tx, now);
                lane.leg_closed(lane.src_leg(), ClosedBy::Peer, CloseHow::Fin, None);
                send(lane, tx, item(Payload::Eof, now, state));
                return;
            }
            Ok(n) => {
                counter.fetch_add(n as u64, Ordering::Relaxed);
                let snapshot = faults.borrow_and_update().clone();
                if !process(lane, state, &snapshot, tx, now) {
                    return;
                }
            }
            Err(e) => {
                flush_partial_packet(lane, state, tx, now);
                let how = match e.kind() {
                    std::io::ErrorKind::ConnectionReset => CloseHow::Rst,
                    _ => CloseHow::Error,
                };
                lane.leg_closed(lane.src_leg(), ClosedBy::Peer, how, Some(e.to_string()));
                send(lane, tx, item(Payload::Reset, now, state));
                return;
            }
        }
    }
}

fn item(payload: Payload, now: Instant, state: &mut ReadState) -> Item {
    Item {
        payload,
        read_at: now,
        jitter_unit: state.rng.f64() * 2.0 - 1.0,
        packets: Vec::new(),
        raw_len: 0,
        held_since: None,
    }
}

fn send(lane: &Lane, tx: &UnboundedSender<Item>, item: Item) {
    lane.queued.fetch_add(item.len(), Ordering::AcqRel);
    // A closed queue means the writer has ended the connection; the bytes die with it.
    let _ = tx.send(item);
}

/// At end of stream: forward the bytes of an incomplete packet (they were sent, so they are
/// delivered, as raw bytes).
fn flush_partial_packet(
    lane: &Lane,
    state: &mut ReadState,
    tx: &UnboundedSender<Item>,
    now: Instant,
) {
    if !state.buf.is_empty() {
        let bytes = state.buf.split().freeze();
        let mut it = item(Payload::Data(bytes), now, state);
        it.raw_len = it.len() as u64;
        send(lane, tx, it);
    }
}

fn report_suppressed(lane: &Lane, state: &mut ReadState, now: Instant, force: bool) {
    if let Some((count, bytes)) = state.budget.take_report(now, force) {
        lane.shared
            .events
            .emit(EventKind::PublishSuppressed(PublishSuppressed {
                conn: lane.conn.id,
                dir: lane.dir,
                count,
                bytes,
            }));
    }
}

/// Splits what was read into units and queues them. False if the connection must end now.
fn process(
    lane: &Lane,
    state: &mut ReadState,
    snapshot: &Snapshot,
    tx: &UnboundedSender<Item>,
    now: Instant,
) -> bool {
    let ts_us = now_us();
    if state.decoder.version().is_none() {
        if let Some(version) = lane.conn.version() {
            state.decoder.set_version(version);
        }
    }
    let effect = lane
        .applying(snapshot)
        .map(|f| f.spec.fault.on_read())
        .fold(ReadEffect::Pass, |acc, e| match (acc, e) {
            (ReadEffect::DropBytes, _) | (_, ReadEffect::DropBytes) => ReadEffect::DropBytes,
            (ReadEffect::DropPackets, _) | (_, ReadEffect::DropPackets) => ReadEffect::DropPackets,
            _ => ReadEffect::Pass,
        });
    let events = &lane.shared.events;
    let mut batch = events.batch();
    if effect == ReadEffect::DropBytes {
        let len = state.buf.len();
        state.buf.clear();
        state.decoder.desync();
        state.decoder.skip(len);
        batch.push_at(
            ts_us,
            EventKind::RawBytes(RawBytes {
                conn: lane.conn.id,
                dir: lane.dir,
                fate: Fate::Dropped,
                len: len as u64,
            }),
        );
        return true;
    }
    let dropping = effect == ReadEffect::DropPackets;
    let mut pass = 0usize;
    let mut packets: Vec<MqttPacket> = Vec::new();
    let mut raw = 0u64;
    loop {
        let unit = state.decoder.next(&state.buf[pass..]);
        let len = unit.len();
        let mut event = None;
        let mut unit_raw = 0;
        match &unit {
            Unit::NeedMore => break,
            Unit::Malformed { error, offset } => {
                batch.push_at(
                    ts_us,
                    EventKind::MqttMalformed(MqttMalformed {
                        conn: lane.conn.id,
                        dir: lane.dir,
                        error: error.to_string(),
                        offset: *offset,
                    }),
                );
                continue;
            }
            Unit::Packet { packet, .. } => {
                if let Packet::Connect(connect) = packet {
                    if lane.dir == Direction::Up {
                        lane.conn.set_client_id(connect.client_id);
                        lane.conn.set_version(connect.version);
                        if let Some(fault) = snapshot.iter().find(|f| {
                            f.spec.fault.refuses_connections()
                                && matches!(f.spec.target, crate::spec::Target::Client(_))
                                && f.targets(&lane.conn)
                        }) {
                            lane.shared
                                .board
                                .emit_action(fault, "refuse", Some(lane.conn.id));
                            lane.conn.kill(
                                ConnAction::Reset,
                                format!("fault {} (refuse client)", fault.id),
                            );
                            return false;
                        }
                    }
                }
                if state.budget.wants(packet.packet_type(), len, now) {
                    event = Some(describe(lane.conn.id, lane.dir, len, packet));
                }
            }
            Unit::OversizedStart { header, .. } => {
                if state
                    .budget
                    .wants(header.packet_type, header.total_len(), now)
                {
                    event = Some(MqttPacket {
                        conn: lane.conn.id,
                        dir: lane.dir,
                        packet_type: header.packet_type.name().to_string(),
                        len: header.total_len() as u32,
                        ..Default::default()
                    });
                }
            }
            Unit::Continuation { .. } => {}
            Unit::Raw { len } => unit_raw = *len as u64,
        }
        if dropping {
            if pass > 0 {
                let bytes = state.buf.split_to(pass).freeze();
                queue_data(
                    lane,
                    state,
                    tx,
                    bytes,
                    std::mem::take(&mut packets),
                    raw,
                    now,
                );
                pass = 0;
                raw = 0;
            }
            let _ = state.buf.split_to(len);
            if let Some(mut e) = event {
                e.fate = Fate::Dropped;
                batch.push_at(ts_us, EventKind::MqttPacket(e));
            }
            if unit_raw > 0 {
                batch.push_at(
                    ts_us,
                    EventKind::RawBytes(RawBytes {
                        conn: lane.conn.id,
                        dir: lane.dir,
                        fate: Fate::Dropped,
                        len: unit_raw,
                    }),
                );
            }
        } else {
            pass += len;
            packets.extend(event);
            raw += unit_raw;
        }
    }
    if pass > 0 {
        let bytes = state.buf.split_to(pass).freeze();
        queue_data(lane, state, tx, bytes, packets, raw, now);
    }
    batch.commit();
    report_suppressed(lane, state, now, false);
    true
}

fn queue_data(
    lane: &Lane,
    state: &mut ReadState,
    tx: &UnboundedSender<Item>,
    bytes: Bytes,
    packets: Vec<MqttPacket>,
    raw_len: u64,
    now: Instant,
) {
    let mut it = item(Payload::Data(bytes), now, state);
    it.packets = packets;
    it.raw_len = raw_len;
    send(lane, tx, it);
}

async fn reader_killed(lane: &Lane, mut src: OwnedReadHalf, kill: Kill) {
    match kill.action {
        ConnAction::Reset => {
            let _ = src.as_ref().set_zero_linger();
            lane.leg_closed(
                lane.src_leg(),
                ClosedBy::Proxy,
                CloseHow::Rst,
                Some(kill.reason),
            );
        }
        ConnAction::Close => {
            // The other lane's writer sends our peer a FIN; keep reading (and discarding) until
            // the peer answers with its own, so the socket closes cleanly.
            let mut sink = vec![0u8; 16 * 1024];
            let _ = tokio::time::timeout(CLOSE_DRAIN, async {
                while let Ok(n) = src.read(&mut sink).await {
                    if n == 0 {
                        break;
                    }
                }
            })
            .await;
        }
    }
}

// ---- writer -----------------------------------------------------------------------------------

enum Gate {
    Go,
    Wait(Instant),
    Hold { give_up: Option<Duration> },
}

fn gate(lane: &Lane, snapshot: &Snapshot, item: &Item, pacing: &mut Pacing, now: Instant) -> Gate {
    let unit = WriteContext {
        read_at: item.read_at,
        len: item.len(),
        jitter_unit: item.jitter_unit,
        now,
    };
    let mut wait: Option<Instant> = None;
    let mut hold: Option<Option<Duration>> = None;
    for fault in lane.applying(snapshot) {
        match fault.spec.fault.on_write(&unit, pacing) {
            WriteEffect::Go => {}
            WriteEffect::WaitUntil(t) => wait = Some(wait.map_or(t, |w| w.max(t))),
            WriteEffect::Hold { give_up } => {
                // The shortest give-up among holding faults wins.
                hold = Some(match (hold.flatten(), give_up) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                });
            }
        }
    }
    if let Some(give_up) = hold {
        Gate::Hold { give_up }
    } else if let Some(t) = wait {
        Gate::Wait(t)
    } else {
        Gate::Go
    }
}

async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(t) => tokio::time::sleep_until(t.into()).await,
        None => std::future::pending().await,
    }
}

async fn write_side(lane: &Lane, mut dst: OwnedWriteHalf, mut rx: UnboundedReceiver<Item>) {
    let events = &lane.shared.events;
    let mut faults = lane.shared.board.subscribe();
    let mut snapshot: Snapshot;
    let mut kill = lane.conn.watch_kill();
    let mut backlog: VecDeque<Item> = VecDeque::new();
    let mut pacing = Pacing::default();
    let mut rx_open = true;
    'next_item: loop {
        let current_kill = kill.borrow_and_update().clone();
        if let Some(k) = current_kill {
            return writer_killed(lane, dst, rx, backlog, k).await;
        }
        let mut item = match backlog.pop_front() {
            Some(item) => item,
            None => tokio::select! {
                _ = kill.changed() => continue 'next_item,
                item = rx.recv(), if rx_open => match item {
                    Some(item) => item,
                    // The reader ended without an end-of-stream item: the connection was killed.
                    None => { rx_open = false; continue 'next_item }
                },
                _ = std::future::ready(()), if !rx_open => return,
            },
        };
        loop {
            // `changed()` below marks the value seen, so refresh unconditionally: an Arc clone.
            snapshot = faults.borrow_and_update().clone();
            let now = Instant::now();
            match gate(lane, &snapshot, &item, &mut pacing, now) {
                Gate::Go => break,
                Gate::Wait(t) => {
                    tokio::select! {
                        _ = tokio::time::sleep_until(t.into()) => {}
                        _ = faults.changed() => {}
                        _ = kill.changed() => { backlog.push_front(item); continue 'next_item }
                    }
                }
                Gate::Hold { give_up } => {
                    if item.held_since.is_none() {
                        item.held_since = Some(now);
                        lane.push_fates(&mut events.batch(), &item, Fate::Held, now_us());
                    }
                    let deadline = give_up.and_then(|g| item.held_since.map(|s| s + g));
                    tokio::select! {
                        _ = faults.changed() => {}
                        _ = sleep_until_opt(deadline) => {
                            if let Some(fault) = lane.applying(&snapshot).find(|f| f.spec.fault.hold_limit().is_some()) {
                                lane.shared.board.emit_action(fault, "give_up", Some(lane.conn.id));
                            }
                            lane.conn.kill(ConnAction::Reset, "held past the cut's give_up time");
                            backlog.push_front(item);
                            continue 'next_item;
                        }
                        next = rx.recv(), if rx_open => match next {
                            Some(mut next) => {
                                next.held_since = Some(now);
                                lane.push_fates(&mut events.batch(), &next, Fate::Held, now_us());
                                backlog.push_back(next);
                            }
                            None => rx_open = false,
                        },
                        _ = kill.changed() => { backlog.push_front(item); continue 'next_item }
                    }
                }
            }
        }
        // Pacing faults write in slices; the rest of the item goes back to the head of the queue
        // and passes the gate again.
        if let Payload::Data(bytes) = &mut item.payload {
            let max = lane
                .applying(&snapshot)
                .filter_map(|f| f.spec.fault.max_write())
                .min();
            if let Some(max) = max.filter(|&m| bytes.len() > m) {
                let head = bytes.split_to(max);
                let rest = Item {
                    payload: Payload::Data(std::mem::take(bytes)),
                    read_at: item.read_at,
                    jitter_unit: item.jitter_unit,
                    packets: std::mem::take(&mut item.packets),
                    raw_len: std::mem::take(&mut item.raw_len),
                    held_since: item.held_since,
                };
                *bytes = head;
                backlog.push_front(rest);
            }
        }
        let fate = if item.held_since.is_some() {
            Fate::Released
        } else {
            Fate::Forwarded
        };
        match &item.payload {
            Payload::Data(bytes) => {
                let len = bytes.len();
                let written = tokio::select! {
                    r = dst.write_all(bytes) => r,
                    _ = kill.changed() => { backlog.push_front(item); continue 'next_item }
                };
                let now = Instant::now();
                if let Err(e) = written {
                    let how = match e.kind() {
                        std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe => {
                            CloseHow::Rst
                        }
                        _ => CloseHow::Error,
                    };
                    lane.leg_closed(lane.dst_leg(), ClosedBy::Peer, how, Some(e.to_string()));
                    lane.conn.kill(
                        ConnAction::Reset,
                        format!("write to the {:?} leg failed", lane.dst_leg()).to_lowercase(),
                    );
                    backlog.push_front(item);
                    continue 'next_item;
                }
                for fault in lane.applying(&snapshot) {
                    fault.spec.fault.after_write(len, now, &mut pacing);
                }
                lane.queued.fetch_sub(len, Ordering::AcqRel);
                lane.drained.notify_one();
                lane.push_fates(&mut events.batch(), &item, fate, now_us());
            }
            Payload::Eof => {
                let _ = dst.shutdown().await;
                let reason = format!("forwarding FIN from the {} leg", leg_name(lane.src_leg()));
                lane.leg_closed(lane.dst_leg(), ClosedBy::Proxy, CloseHow::Fin, Some(reason));
                return;
            }
            Payload::Reset => {
                let reason = format!("forwarding RST from the {} leg", leg_name(lane.src_leg()));
                lane.conn.kill(ConnAction::Reset, reason);
                continue 'next_item;
            }
        }
    }
}

fn leg_name(leg: Leg) -> &'static str {
    match leg {
        Leg::Client => "client",
        Leg::Upstream => "upstream",
    }
}

async fn writer_killed(
    lane: &Lane,
    mut dst: OwnedWriteHalf,
    mut rx: UnboundedReceiver<Item>,
    mut backlog: VecDeque<Item>,
    kill: Kill,
) {
    rx.close();
    while let Ok(item) = rx.try_recv() {
        backlog.push_back(item);
    }
    {
        let mut batch = lane.shared.events.batch();
        let ts = now_us();
        for item in &backlog {
            lane.push_fates(&mut batch, item, Fate::Discarded, ts);
        }
    }
    match kill.action {
        ConnAction::Reset => {
            let _ = dst.as_ref().set_zero_linger();
            lane.leg_closed(
                lane.dst_leg(),
                ClosedBy::Proxy,
                CloseHow::Rst,
                Some(kill.reason),
            );
            // Dropping a write half would send FIN before the RST; let the read half close it.
            dst.forget();
        }
        ConnAction::Close => {
            let _ = dst.shutdown().await;
            lane.leg_closed(
                lane.dst_leg(),
                ClosedBy::Proxy,
                CloseHow::Fin,
                Some(kill.reason),
            );
        }
    }
}
