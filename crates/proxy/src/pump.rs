//! The per-direction pumps: read from one endpoint, decide each unit's fate, write to the other.
//!
//! Each direction of a connection is a [`Lane`]: one future that owns the source's read half and
//! the destination's write half, and a local queue of timestamped [`Item`]s between them.
//!
//! - **Reading** splits the bytes into units with the MQTT [`StreamDecoder`], applies read-side
//!   faults (drops), logs packets and queues whole units. It pauses while the queue is over its
//!   limit, so a held direction pushes back on its sender as a full TCP window would.
//! - **Writing** asks the active faults whether the head item may go (`cut` holds it, `latency`
//!   and `bandwidth` make it wait) and writes it. End of stream (FIN) and reset (RST) are items
//!   too, so they keep their place behind the data.
//!
//! Both happen in the same future: a unit read with no fault in the way is written in the same
//! poll, with no hand-off between tasks (a wake-up per hop would roughly double the proxy's added
//! latency on a small machine). While the head item waits, the future waits on "readable", the
//! item's deadline, fault changes and the kill switch together, so reading goes on during a hold
//! and delays do not accumulate.
//!
//! Fates are logged where they are decided: `dropped` when read, `held` when a hold first
//! covers an item, `released`/`forwarded` when written, `discarded` when the connection dies
//! with the item still queued. A socket is shared by the reading side of one lane and the writing
//! side of the other; ending a connection is coordinated through the connection's kill switch.

use crate::board::{ActiveFault, Snapshot};
use crate::conn::{ConnHandle, Kill};
use crate::faults::{ConnAction, Pacing, ReadEffect, WriteContext, WriteEffect};
use crate::wirelog::{describe, PublishBudget};
use crate::{Shared, WireLog};
use bytes::{Bytes, BytesMut};
use linecut_events::{
    now_us, CloseHow, ClosedBy, Direction, EventBatch, EventKind, Fate, Leg, LegClosed,
    MqttMalformed, MqttPacket, PublishSuppressed, RawBytes,
};
use linecut_mqtt::{decode, Decoded, Packet, PacketType, Role, StreamDecoder, Unit};
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;

/// Bytes asked for per read.
const READ_CHUNK: usize = 128 * 1024;
/// How long a closing connection keeps draining a peer so that the close is a FIN, not an RST
/// (closing a socket with unread data makes Linux send RST).
const CLOSE_DRAIN: Duration = Duration::from_secs(2);

/// Forwards both directions of a connection until both have ended.
pub(crate) async fn pump_connection(
    shared: &Arc<Shared>,
    conn: &Arc<ConnHandle>,
    client: TcpStream,
    upstream: TcpStream,
    held_up: BytesMut,
) {
    let (client_r, client_w) = client.into_split();
    let (upstream_r, upstream_w) = upstream.into_split();
    let mut up = Lane::new(Direction::Up, conn.clone(), shared.clone());
    // Bytes the client sent while a cut kept its connection from the broker come first.
    up.buf = held_up;
    let down = Lane::new(Direction::Down, conn.clone(), shared.clone());
    // One task per connection: its two lanes interleave on it, which keeps a connection's events
    // in order and costs no cross-thread wake-ups on the hot path.
    tokio::join!(up.run(client_r, upstream_w), down.run(upstream_r, client_w));
}

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

/// What the head of the queue is waiting for.
enum Gate {
    Go,
    Wait(Instant),
    Hold { give_up: Option<Duration> },
}

/// How a lane's loop ended.
enum LaneEnd {
    /// End of stream forwarded; the destination's write side is shut down.
    Finished,
    /// The connection was killed; the queue is discarded.
    Killed(Kill),
}

/// One direction of one connection.
struct Lane {
    dir: Direction,
    conn: Arc<ConnHandle>,
    shared: Arc<Shared>,
    decoder: StreamDecoder,
    budget: PublishBudget,
    buf: BytesMut,
    rng: fastrand::Rng,
    queue: VecDeque<Item>,
    queued_bytes: usize,
    pacing: Pacing,
}

impl Lane {
    fn new(dir: Direction, conn: Arc<ConnHandle>, shared: Arc<Shared>) -> Self {
        let role = match dir {
            Direction::Up => Role::Client,
            Direction::Down => Role::Broker,
        };
        Lane {
            dir,
            decoder: StreamDecoder::new(role, shared.config.max_buffered_packet),
            budget: PublishBudget::new(shared.config.wire_log, Instant::now()),
            buf: BytesMut::with_capacity(READ_CHUNK),
            rng: fastrand::Rng::new(),
            queue: VecDeque::new(),
            queued_bytes: 0,
            pacing: Pacing::default(),
            conn,
            shared,
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

    fn applying<'a>(&'a self, snapshot: &'a Snapshot) -> impl Iterator<Item = &'a ActiveFault> {
        let (conn, dir) = (&self.conn, self.dir);
        snapshot.iter().filter(move |f| f.applies_to(conn, dir))
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
        if item.raw_len > 0 && self.shared.config.wire_log != WireLog::Off {
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

    /// The pcap leg of `leg`. Bytes read from this lane's source and written to its
    /// destination are sent by the leg's opener exactly when the lane goes up (the client opens
    /// the client leg, the proxy opens the upstream leg).
    fn pcap(&self) -> Option<(&linecut_capture::PcapTap, bool)> {
        self.shared
            .config
            .pcap
            .as_deref()
            .map(|tap| (tap, self.dir == Direction::Up))
    }

    fn note_subscribed(&self, packet_type: PacketType) {
        if self.dir == Direction::Down && packet_type == PacketType::SubAck {
            self.conn.note_suback();
        }
    }

    fn dropped_raw(&self, len: u64) -> EventKind {
        EventKind::RawBytes(RawBytes {
            conn: self.conn.id,
            dir: self.dir,
            fate: Fate::Dropped,
            len,
        })
    }

    fn new_item(&mut self, payload: Payload, now: Instant) -> Item {
        Item {
            payload,
            read_at: now,
            jitter_unit: self.rng.f64() * 2.0 - 1.0,
            packets: Vec::new(),
            raw_len: 0,
            held_since: None,
        }
    }

    fn enqueue(&mut self, item: Item) {
        self.queued_bytes += item.len();
        self.queue.push_back(item);
    }

    /// Runs the lane until its stream has been forwarded to the end or the connection is killed.
    async fn run(mut self, mut src: OwnedReadHalf, mut dst: OwnedWriteHalf) {
        let end = self.forward(&mut src, &mut dst).await;
        self.report_suppressed(Instant::now(), true);
        if let LaneEnd::Killed(kill) = end {
            self.killed(src, dst, kill).await;
        }
    }

    async fn forward(&mut self, src: &mut OwnedReadHalf, dst: &mut OwnedWriteHalf) -> LaneEnd {
        let mut faults = self.shared.board.subscribe();
        let mut kill = self.conn.watch_kill();
        let mut src_open = true;
        if !self.buf.is_empty() {
            let snapshot = faults.borrow_and_update().clone();
            self.process(&snapshot, Instant::now());
        }
        loop {
            let current_kill = kill.borrow_and_update().clone();
            if let Some(k) = current_kill {
                return LaneEnd::Killed(k);
            }
            // `changed()` marks the value seen, so refresh unconditionally: an Arc clone.
            let snapshot = faults.borrow_and_update().clone();
            let now = Instant::now();
            let gate = self
                .queue
                .front()
                .map(|item| gate(&self.conn, self.dir, &snapshot, item, &mut self.pacing, now));
            let mut deadline = None;
            match gate {
                Some(Gate::Go) => {
                    tokio::select! {
                        biased;
                        _ = kill.changed() => continue,
                        done = self.deliver_head(&snapshot, dst) => match done {
                            Some(end) => return end,
                            None => continue,
                        },
                    }
                }
                Some(Gate::Wait(t)) => deadline = Some(t),
                Some(Gate::Hold { give_up }) => {
                    self.mark_held(now);
                    let since = self.queue.front().and_then(|i| i.held_since);
                    if let (Some(g), Some(since)) = (give_up, since) {
                        if now >= since + g {
                            self.give_up(&snapshot);
                            continue;
                        }
                        deadline = Some(since + g);
                    }
                }
                None => {}
            }
            let can_read = src_open && self.queued_bytes < self.queue_limit(&snapshot);
            if can_read {
                self.buf.reserve(READ_CHUNK);
            }
            tokio::select! {
                result = src.read_buf(&mut self.buf), if can_read => {
                    let now = Instant::now();
                    match result {
                        Ok(0) => {
                            src_open = false;
                            // A FIN is a segment of the flow like any other.
                            self.idle_check(&snapshot, now, src);
                            if let Some((tap, up)) = self.pcap() {
                                tap.close(self.conn.id, leg_side(self.src_leg()), up, false, now_us());
                            }
                            self.flush_partial_packet(now);
                            self.leg_closed(self.src_leg(), ClosedBy::Peer, CloseHow::Fin, None);
                            let eof = self.new_item(Payload::Eof, now);
                            self.enqueue(eof);
                        }
                        Ok(n) => {
                            if let Some((tap, up)) = self.pcap() {
                                let fresh = &self.buf[self.buf.len() - n..];
                                tap.data(self.conn.id, leg_side(self.src_leg()), up, fresh, now_us());
                            }
                            let counter = match self.dir {
                                Direction::Up => &self.conn.bytes_up,
                                Direction::Down => &self.conn.bytes_down,
                            };
                            counter.fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
                            self.idle_check(&snapshot, now, src);
                            if !self.process(&snapshot, now) {
                                continue;
                            }
                        }
                        Err(e) => {
                            src_open = false;
                            self.flush_partial_packet(now);
                            let how = match e.kind() {
                                std::io::ErrorKind::ConnectionReset => CloseHow::Rst,
                                _ => CloseHow::Error,
                            };
                            if let Some((tap, up)) = self.pcap() {
                                tap.close(self.conn.id, leg_side(self.src_leg()), up, true, now_us());
                            }
                            self.leg_closed(self.src_leg(), ClosedBy::Peer, how, Some(e.to_string()));
                            let reset = self.new_item(Payload::Reset, now);
                            self.enqueue(reset);
                        }
                    }
                }
                _ = sleep_until_opt(deadline) => {}
                _ = faults.changed() => {}
                _ = kill.changed() => {}
            }
        }
    }
}

impl Lane {
    /// An idle-timeout middlebox's view of a read at `now`: a read after more than its timeout
    /// of silence (either way) finds the connection forgotten, from the timeout's end; a read
    /// on a forgotten connection resets its sender's leg when the middlebox resets. Anything
    /// else keeps the connection alive.
    fn idle_check(&self, snapshot: &Snapshot, now: Instant, src: &OwnedReadHalf) {
        let Some((fault, (timeout, then))) = self
            .applying(snapshot)
            .find_map(|f| Some((f, f.spec.fault.idle_timeout()?)))
        else {
            return;
        };
        let last = self.conn.last_read();
        if !self.conn.is_forgotten()
            && now.saturating_duration_since(last) > timeout
            && self.conn.forget()
        {
            // Stamped when the middlebox forgot, not when the proxy found out.
            let forgot_at =
                now_us() - now.saturating_duration_since(last + timeout).as_micros() as i64;
            self.shared.board.emit_action_at(
                fault,
                linecut_events::ACTION_FORGOT,
                Some(self.conn.id),
                forgot_at,
            );
        }
        if !self.conn.is_forgotten() {
            self.conn.touch(now);
            return;
        }
        if then == linecut_model::Forget::Reset && !self.conn.leg_closed(self.src_leg()) {
            // Only this side's TCP connection: the other learns when it sends, or never.
            if let Err(e) = abort(src) {
                tracing::warn!("could not reset the {} leg: {e}", leg_name(self.src_leg()));
            }
            self.leg_closed(
                self.src_leg(),
                ClosedBy::Proxy,
                CloseHow::Rst,
                Some("the middlebox's reset, for a connection it had forgotten".into()),
            );
        }
    }
}

/// Resets one TCP connection while both of its halves stay owned: `connect` with `AF_UNSPEC`
/// makes Linux disconnect the socket (`tcp_disconnect`), sending RST to its peer. Reads then
/// see the end of the stream and writes fail, which the lanes already handle.
fn abort(socket: &OwnedReadHalf) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let fd = socket.as_ref().as_raw_fd();
    // SAFETY: a zeroed sockaddr with family AF_UNSPEC, its real size, on a descriptor the
    // connection owns for the duration of the call.
    let done = unsafe {
        let mut addr: libc::sockaddr = std::mem::zeroed();
        addr.sa_family = libc::AF_UNSPEC as libc::sa_family_t;
        libc::connect(
            fd,
            &addr,
            std::mem::size_of::<libc::sockaddr>() as libc::socklen_t,
        )
    };
    if done == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Asks every fault applying to this lane what the head item must wait for.
fn gate(
    conn: &ConnHandle,
    dir: Direction,
    snapshot: &Snapshot,
    item: &Item,
    pacing: &mut Pacing,
    now: Instant,
) -> Gate {
    // A forgotten connection carries nothing, for ever.
    if conn.is_forgotten() {
        return Gate::Hold { give_up: None };
    }
    {
        let unit = WriteContext {
            read_at: item.read_at,
            len: item.len(),
            jitter_unit: item.jitter_unit,
            now,
        };
        let mut wait: Option<Instant> = None;
        let mut hold: Option<Option<Duration>> = None;
        for fault in snapshot.iter().filter(|f| f.applies_to(conn, dir)) {
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
}

impl Lane {
    /// Logs `held` for every queued item a hold newly covers.
    fn mark_held(&mut self, now: Instant) {
        let ts = now_us();
        let mut newly = Vec::new();
        for (i, item) in self.queue.iter_mut().enumerate() {
            if item.held_since.is_none() {
                item.held_since = Some(now);
                newly.push(i);
            }
        }
        if newly.is_empty() {
            return;
        }
        let mut batch = self.shared.events.batch();
        for i in newly {
            self.push_fates(&mut batch, &self.queue[i], Fate::Held, ts);
        }
    }

    fn give_up(&self, snapshot: &Snapshot) {
        if let Some(fault) = self
            .applying(snapshot)
            .find(|f| f.spec.fault.hold_limit().is_some())
        {
            self.shared
                .board
                .emit_action(fault, "give_up", Some(self.conn.id));
        }
        self.conn
            .kill(ConnAction::Reset, "held past the cut's give_up time");
    }

    /// Writes the head item (or its first slice under a pacing fault). `Some` ends the lane.
    async fn deliver_head(
        &mut self,
        snapshot: &Snapshot,
        dst: &mut OwnedWriteHalf,
    ) -> Option<LaneEnd> {
        let max = self
            .applying(snapshot)
            .filter_map(|f| f.spec.fault.max_write())
            .min();
        let mut item = self.queue.pop_front()?;
        // Pacing faults write in slices; the rest goes back to the head and passes the gate again.
        if let (Payload::Data(bytes), Some(max)) = (&mut item.payload, max) {
            if bytes.len() > max {
                let rest = Item {
                    payload: Payload::Data(bytes.split_off(max)),
                    read_at: item.read_at,
                    jitter_unit: item.jitter_unit,
                    packets: std::mem::take(&mut item.packets),
                    raw_len: std::mem::take(&mut item.raw_len),
                    held_since: item.held_since,
                };
                self.queue.push_front(rest);
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
                self.queued_bytes -= len;
                if let Err(e) = dst.write_all(bytes).await {
                    let how = match e.kind() {
                        std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe => {
                            CloseHow::Rst
                        }
                        _ => CloseHow::Error,
                    };
                    self.leg_closed(self.dst_leg(), ClosedBy::Peer, how, Some(e.to_string()));
                    let leg = leg_name(self.dst_leg());
                    self.conn
                        .kill(ConnAction::Reset, format!("write to the {leg} leg failed"));
                    self.queue.push_front(item);
                    return None;
                }
                let now = Instant::now();
                if let Some((tap, up)) = self.pcap() {
                    tap.data(self.conn.id, leg_side(self.dst_leg()), up, bytes, now_us());
                }
                let (conn, dir, pacing) = (&self.conn, self.dir, &mut self.pacing);
                for fault in snapshot.iter().filter(|f| f.applies_to(conn, dir)) {
                    fault.spec.fault.after_write(len, now, pacing);
                }
                self.push_fates(&mut self.shared.events.batch(), &item, fate, now_us());
                None
            }
            Payload::Eof => {
                let _ = dst.shutdown().await;
                if let Some((tap, up)) = self.pcap() {
                    tap.close(self.conn.id, leg_side(self.dst_leg()), up, false, now_us());
                }
                let reason = format!("forwarding FIN from the {} leg", leg_name(self.src_leg()));
                self.leg_closed(self.dst_leg(), ClosedBy::Proxy, CloseHow::Fin, Some(reason));
                Some(LaneEnd::Finished)
            }
            Payload::Reset => {
                let reason = format!("forwarding RST from the {} leg", leg_name(self.src_leg()));
                self.conn.kill(ConnAction::Reset, reason);
                None
            }
        }
    }

    /// Ends the lane for a killed connection: discards the queue, then RST or FIN.
    async fn killed(mut self, mut src: OwnedReadHalf, mut dst: OwnedWriteHalf, kill: Kill) {
        {
            let mut batch = self.shared.events.batch();
            let ts = now_us();
            for item in &self.queue {
                self.push_fates(&mut batch, item, Fate::Discarded, ts);
            }
        }
        self.queue.clear();
        match kill.action {
            ConnAction::Reset => {
                let _ = src.as_ref().set_zero_linger();
                let _ = dst.as_ref().set_zero_linger();
                if let Some((tap, up)) = self.pcap() {
                    let ts = now_us();
                    tap.close(self.conn.id, leg_side(self.src_leg()), !up, true, ts);
                    tap.close(self.conn.id, leg_side(self.dst_leg()), up, true, ts);
                }
                let reason = Some(kill.reason);
                self.leg_closed(
                    self.src_leg(),
                    ClosedBy::Proxy,
                    CloseHow::Rst,
                    reason.clone(),
                );
                self.leg_closed(self.dst_leg(), ClosedBy::Proxy, CloseHow::Rst, reason);
                // Dropping a write half would send FIN before the RST; the read half closes it.
                dst.forget();
            }
            ConnAction::Close => {
                let _ = dst.shutdown().await;
                if let Some((tap, up)) = self.pcap() {
                    tap.close(self.conn.id, leg_side(self.dst_leg()), up, false, now_us());
                }
                let reason = Some(kill.reason);
                self.leg_closed(self.dst_leg(), ClosedBy::Proxy, CloseHow::Fin, reason);
                // Our peer gets its FIN from the other lane; keep reading (and discarding) until
                // it answers with its own, so the socket closes cleanly.
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

    /// At end of stream: forward the bytes of an incomplete packet (they were sent, so they are
    /// delivered, as raw bytes).
    fn flush_partial_packet(&mut self, now: Instant) {
        if !self.buf.is_empty() {
            let bytes = self.buf.split().freeze();
            let mut item = self.new_item(Payload::Data(bytes), now);
            item.raw_len = item.len() as u64;
            self.enqueue(item);
        }
    }

    fn report_suppressed(&mut self, now: Instant, force: bool) {
        if let Some((count, bytes)) = self.budget.take_report(now, force) {
            self.shared
                .events
                .emit(EventKind::PublishSuppressed(PublishSuppressed {
                    conn: self.conn.id,
                    dir: self.dir,
                    count,
                    bytes,
                }));
        }
    }

    fn queue_data(&mut self, bytes: Bytes, packets: Vec<MqttPacket>, raw_len: u64, now: Instant) {
        let mut item = self.new_item(Payload::Data(bytes), now);
        item.packets = packets;
        item.raw_len = raw_len;
        self.enqueue(item);
    }

    /// Splits what was read into units and queues them. False if the connection must end now.
    fn process(&mut self, snapshot: &Snapshot, now: Instant) -> bool {
        let ts_us = now_us();
        if self.decoder.version().is_none() {
            if let Some(version) = self.conn.version() {
                self.decoder.set_version(version);
            }
        }
        let effect = self
            .applying(snapshot)
            .map(|f| f.spec.fault.on_read())
            .fold(ReadEffect::Pass, |acc, e| match (acc, e) {
                (ReadEffect::DropBytes, _) | (_, ReadEffect::DropBytes) => ReadEffect::DropBytes,
                (ReadEffect::DropPackets, _) | (_, ReadEffect::DropPackets) => {
                    ReadEffect::DropPackets
                }
                _ => ReadEffect::Pass,
            });
        // The batch borrows the sink while units are queued on `self`: hold our own handle.
        let shared = self.shared.clone();
        let mut batch = shared.events.batch();
        if effect == ReadEffect::DropBytes {
            let len = self.buf.len();
            self.buf.clear();
            self.decoder.desync();
            self.decoder.skip(len);
            batch.push_at(ts_us, self.dropped_raw(len as u64));
            return true;
        }
        let dropping = effect == ReadEffect::DropPackets;
        let mut pass = 0usize;
        let mut packets: Vec<MqttPacket> = Vec::new();
        let mut raw = 0u64;
        loop {
            // Frame mode: bodies are parsed only for packets that will be logged.
            let unit = self.decoder.next_frame(&self.buf[pass..]);
            let len = unit.len();
            let mut event = None;
            let mut unit_raw = 0;
            match &unit {
                Unit::NeedMore => break,
                Unit::Malformed { error, offset } => {
                    batch.push_at(
                        ts_us,
                        EventKind::MqttMalformed(MqttMalformed {
                            conn: self.conn.id,
                            dir: self.dir,
                            error: error.to_string(),
                            offset: *offset,
                        }),
                    );
                    continue;
                }
                Unit::Packet { packet, .. } => {
                    self.note_subscribed(packet.packet_type());
                    if let Packet::Connect(connect) = packet {
                        if self.dir == Direction::Up {
                            self.conn.set_client_id(connect.client_id);
                            self.conn.set_version(connect.version);
                            if let Some(fault) = snapshot.iter().find(|f| {
                                f.spec.fault.refuses_connections()
                                    && matches!(
                                        f.spec.schedule.target,
                                        crate::spec::Target::Client(_)
                                    )
                                    && f.targets(&self.conn)
                            }) {
                                self.shared
                                    .board
                                    .emit_action(fault, "refuse", Some(self.conn.id));
                                self.conn.kill(
                                    ConnAction::Reset,
                                    format!("fault {} (refuse client)", fault.id),
                                );
                                return false;
                            }
                        }
                    }
                    if self.budget.wants(packet.packet_type(), len, now) {
                        event = Some(describe(self.conn.id, self.dir, len, packet));
                    }
                }
                Unit::Frame { header, .. } => {
                    self.note_subscribed(header.packet_type);
                    if self.budget.wants(header.packet_type, len, now) {
                        let bytes = &self.buf[pass..pass + len];
                        match decode(bytes, self.decoder.version()) {
                            Decoded::Packet { packet, .. } => {
                                event = Some(describe(self.conn.id, self.dir, len, &packet));
                            }
                            Decoded::Malformed(error) => {
                                // The framing held but the body did not: as in full decoding, the
                                // stream is no longer trusted and passes through raw from here.
                                batch.push_at(
                                    ts_us,
                                    EventKind::MqttMalformed(MqttMalformed {
                                        conn: self.conn.id,
                                        dir: self.dir,
                                        error: format!("malformed {error}"),
                                        offset: self.decoder.offset() - len as u64,
                                    }),
                                );
                                self.decoder.desync();
                            }
                            Decoded::Incomplete { .. } => {}
                        }
                    }
                }
                Unit::OversizedStart { header, .. } => {
                    if self
                        .budget
                        .wants(header.packet_type, header.total_len(), now)
                    {
                        event = Some(MqttPacket {
                            conn: self.conn.id,
                            dir: self.dir,
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
                    let bytes = self.buf.split_to(pass).freeze();
                    self.queue_data(bytes, std::mem::take(&mut packets), raw, now);
                    pass = 0;
                    raw = 0;
                }
                let _ = self.buf.split_to(len);
                if let Some(mut e) = event {
                    e.fate = Fate::Dropped;
                    batch.push_at(ts_us, EventKind::MqttPacket(e));
                }
                if unit_raw > 0 {
                    batch.push_at(ts_us, self.dropped_raw(unit_raw));
                }
            } else {
                pass += len;
                packets.extend(event);
                raw += unit_raw;
            }
        }
        if pass > 0 {
            let bytes = self.buf.split_to(pass).freeze();
            self.queue_data(bytes, packets, raw, now);
        }
        batch.commit();
        self.report_suppressed(now, false);
        true
    }
}

fn leg_side(leg: Leg) -> linecut_capture::LegSide {
    match leg {
        Leg::Client => linecut_capture::LegSide::Client,
        Leg::Upstream => linecut_capture::LegSide::Upstream,
    }
}

fn leg_name(leg: Leg) -> &'static str {
    match leg {
        Leg::Client => "client",
        Leg::Upstream => "upstream",
    }
}

async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(t) => tokio::time::sleep_until(t.into()).await,
        None => std::future::pending().await,
    }
}
