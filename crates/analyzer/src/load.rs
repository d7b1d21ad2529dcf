//! Reading a run directory: `meta.json`, the events files and the broker log.
//!
//! Runs can be large (a fleet publishing fast writes millions of lines), so files are streamed
//! line by line and kept compactly:
//! - deliveries (`message`) and publishes (`published`) — the bulk of a run — become small
//!   fixed-size rows with interned client and topic ids ([`Delivery`], [`Publish`]);
//! - the proxy's per-packet lines are kept only where the analysis uses them: control packets
//!   (CONNECT for client ids and keepalives; CONNACK, SUBSCRIBE, SUBACK and pings for measuring
//!   clients from the wire) and every PUBLISH-family packet a fault touched (held, released,
//!   dropped, discarded), for the stale-data story; forwarded PUBLISH-family packets, the bulk,
//!   are recognised by a byte check and skipped without being parsed;
//! - every other event (connections, faults, disconnects, pings, …) is kept whole: there are few.
//!
//! A malformed line is skipped and reported as a warning naming the file and line (one bad line
//! must not hide a run). A missing `meta.json` or subscriber log is an error: without them there
//! is nothing to analyse.

use crate::AnalyzeError;
use linecut_events::broker_log::{parse_broker_log, BrokerLogEntry};
use linecut_events::{Event, EventKind, EventReader, RunLayout, RunMeta};
use memchr::memmem::Finder;
use serde::Deserialize;
use std::borrow::Cow;
use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Cursor};
use std::path::Path;
use std::sync::LazyLock;

/// A message delivered to a subscriber, compactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivery {
    pub ts_us: i64,
    pub client: u32,
    pub topic: u32,
    pub seq: Option<u64>,
    pub pub_ts_us: Option<i64>,
}

/// A message the publisher sent, compactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Publish {
    pub ts_us: i64,
    pub topic: u32,
    pub seq: u64,
    /// The QoS it was published with (what the delivery verdict holds the broker to).
    pub qos: u8,
}

/// What watched the wire of a run: where its connections, packets and closes come from, and
/// so which rules read them. Built once from what the run recorded; the analysis asks this,
/// not the mode the run was in.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub enum Wire {
    /// linecut's proxy: both legs of every connection, faults applied by it, nothing lost on
    /// the way (a held packet is held, not retransmitted).
    #[default]
    Proxy,
    /// A packet capture (a namespace run's links, or `linecut analyze CAPTURE`): a packet
    /// captured during a cut was sent but may not have arrived, the kernels retransmit and
    /// retry SYNs, and a FIN reaches the wire only when its kernel sends it.
    Capture,
}

/// The rules that differ between the two wires, each stated once; the analysis asks these,
/// never which wire it is.
impl Wire {
    /// Whether what the wire shows crossing during an outage arrived. Through the proxy it did
    /// (held, then released whole); in a capture a packet seen during a cut was sent and lost,
    /// and only what crossed after the restore arrived.
    pub fn seen_is_delivered(self) -> bool {
        self == Wire::Proxy
    }

    /// Whether a connection attempt can die at its SYN (a real link): its first SYN is then
    /// the sign that the client left its old connection.
    pub fn attempts_die_at_syn(self) -> bool {
        self == Wire::Capture
    }

    /// Whether a side's FIN can wait behind its unacknowledged data (a real link, until the
    /// line returns), so that the close on the wire comes after the side gave up: the broker's
    /// log then says first when it dropped the client, and a client's close that never crossed
    /// is no give-up on the wire.
    pub fn fins_wait_behind_data(self) -> bool {
        self == Wire::Capture
    }

    /// Whether the FIN that reaches the client is the broker's own (a capture) rather than the
    /// proxy's, sent when it lets the connection go.
    pub fn fin_is_the_brokers(self) -> bool {
        self == Wire::Capture
    }

    /// Whether every retransmission either kernel made is on the wire (a capture); the proxy
    /// knows only the bytes it held and released.
    pub fn shows_retransmissions(self) -> bool {
        self == Wire::Capture
    }
}

/// Everything a run left, in memory.
#[derive(Debug, Default)]
pub struct Run {
    /// What watched the wire.
    pub wire: Wire,
    pub meta: RunMeta,
    pub proxy: Vec<Event>,
    /// Subscriber events other than deliveries (which are in `deliveries`).
    pub subscriber: Vec<Event>,
    /// Publisher events other than publishes (which are in `publishes`).
    pub publisher: Vec<Event>,
    pub deliveries: Vec<Delivery>,
    pub publishes: Vec<Publish>,
    /// Interned client ids and topics; rows refer to them by index.
    pub clients: Vec<String>,
    pub topics: Vec<String>,
    /// The broker log's entries the analysis uses (mosquitto's; 1 s resolution).
    pub broker_log: Vec<BrokerLogEntry>,
    pub warnings: Vec<String>,
    /// Deliveries not in linecut's format, counted per client instead of kept as rows (a
    /// capture of ordinary traffic is read in constant memory).
    pub foreign_counts: HashMap<u32, u64>,
    /// Lines read, all files together (for benchmarks and the report's warnings).
    pub lines: u64,
    /// The capture's citable frames (a capture analysed, or a namespace run's capture.pcap).
    pub frames: crate::frames::FrameLedger,
    /// The will watcher's events, in runs whose subscribers left a will (`None`: nobody
    /// listened for wills, so none can be said to be missing).
    pub watcher: Option<Vec<Event>>,
    /// The queue limit the run's mosquitto was configured with (`max_queued_messages` in its
    /// mosquitto.conf), when linecut started one.
    pub max_queued_messages: Option<u32>,
    /// Silences on the captured connections, in capture order: what an idle-timeout
    /// middlebox's timer saw ([`crate::middlebox`]).
    pub quiet: Vec<crate::middlebox::Quiet>,
    /// What each captured connection cost on the wire (a capture's runs only).
    pub wire_totals: HashMap<u64, crate::report::WireCost>,
}

/// Interns names; consecutive lines usually repeat a name, so the last hit is checked first.
#[derive(Default)]
struct Interner {
    index: HashMap<String, u32>,
    last: Option<(String, u32)>,
}

impl Interner {
    fn id(&mut self, names: &mut Vec<String>, name: &str) -> u32 {
        if let Some((last, id)) = &self.last {
            if last == name {
                return *id;
            }
        }
        let id = self.lookup(names, name);
        self.last = Some((name.to_string(), id));
        id
    }

    fn lookup(&mut self, names: &mut Vec<String>, name: &str) -> u32 {
        if let Some(&id) = self.index.get(name) {
            return id;
        }
        let id = names.len() as u32;
        names.push(name.to_string());
        self.index.insert(name.to_string(), id);
        id
    }
}

impl Run {
    /// Moves `message` and `published` events given as whole events (hand-built runs, tests)
    /// into the compact rows the analysis reads.
    pub fn compact(mut self) -> Run {
        let (mut clients, mut topics) = (Interner::default(), Interner::default());
        for (i, c) in self.clients.iter().enumerate() {
            clients.index.insert(c.clone(), i as u32);
        }
        for (i, t) in self.topics.iter().enumerate() {
            topics.index.insert(t.clone(), i as u32);
        }
        let mut kept = Vec::new();
        for e in std::mem::take(&mut self.subscriber) {
            match &e.kind {
                EventKind::Message(m) => self.deliveries.push(Delivery {
                    ts_us: e.ts_us,
                    client: clients.id(&mut self.clients, &m.client),
                    topic: topics.id(&mut self.topics, &m.topic),
                    seq: m.seq,
                    pub_ts_us: m.pub_ts_us,
                }),
                _ => kept.push(e),
            }
        }
        self.subscriber = kept;
        let mut kept = Vec::new();
        for e in std::mem::take(&mut self.publisher) {
            match &e.kind {
                EventKind::Published(p) => self.publishes.push(Publish {
                    ts_us: e.ts_us,
                    topic: topics.id(&mut self.topics, &p.topic),
                    seq: p.seq,
                    qos: p.qos,
                }),
                _ => kept.push(e),
            }
        }
        self.publisher = kept;
        self.deliveries.sort_by_key(|d| d.ts_us);
        self.publishes.sort_by_key(|p| p.ts_us);
        self
    }

    pub fn client_name(&self, id: u32) -> &str {
        &self.clients[id as usize]
    }

    pub fn topic_name(&self, id: u32) -> &str {
        &self.topics[id as usize]
    }
}

/// The fields of a `message` line the analysis needs (borrowed where possible).
#[derive(Debug, PartialEq, Deserialize)]
struct MessageRow<'a> {
    ts_us: i64,
    #[serde(borrow)]
    client: Cow<'a, str>,
    #[serde(borrow)]
    topic: Cow<'a, str>,
    seq: Option<u64>,
    pub_ts_us: Option<i64>,
}

#[derive(Deserialize)]
struct PublishedRow<'a> {
    ts_us: i64,
    #[serde(borrow)]
    topic: Cow<'a, str>,
    seq: u64,
    #[serde(default)]
    qos: u8,
}

/// What to do with one line, decided from its bytes before parsing. linecut's writer puts
/// `ts_us`, `source` and `type` first, so the type is found near the start; a line written
/// otherwise is simply parsed whole.
enum LineKind {
    Message,
    Published,
    /// A per-packet proxy line the analysis does not use.
    SkippedPacket,
    Other,
}

/// Substring finders built once: this runs on every line of a run.
struct Finders {
    client: Finder<'static>,
    topic: Finder<'static>,
    seq: Finder<'static>,
    pub_ts: Finder<'static>,
    message: Finder<'static>,
    published: Finder<'static>,
    packet: Finder<'static>,
    publish_family: Finder<'static>,
    forwarded: Finder<'static>,
}

static FINDERS: LazyLock<Finders> = LazyLock::new(|| Finders {
    client: Finder::new(br#""client":""#),
    topic: Finder::new(br#""topic":""#),
    seq: Finder::new(br#""seq":"#),
    pub_ts: Finder::new(br#""pub_ts_us":"#),
    message: Finder::new(br#""type":"message""#),
    published: Finder::new(br#""type":"published""#),
    packet: Finder::new(br#""type":"mqtt_packet""#),
    publish_family: Finder::new(br#""packet_type":"PUB"#),
    forwarded: Finder::new(br#""fate":"forwarded""#),
});

/// A decimal integer at the start of `bytes` (optionally negative).
fn integer(bytes: &[u8]) -> Option<i64> {
    let (negative, digits) = match bytes.first() {
        Some(b'-') => (true, &bytes[1..]),
        _ => (false, bytes),
    };
    let end = digits
        .iter()
        .position(|b| !b.is_ascii_digit())
        .unwrap_or(digits.len());
    if end == 0 || end > 18 {
        return None;
    }
    let mut value: i64 = 0;
    for &d in &digits[..end] {
        value = value * 10 + i64::from(d - b'0');
    }
    Some(if negative { -value } else { value })
}

/// A JSON string's contents right after `at`, if it has no escapes (else: let serde do it).
fn plain_string(bytes: &[u8]) -> Option<&str> {
    let end = memchr::memchr2(b'"', b'\\', bytes)?;
    if bytes[end] != b'"' {
        return None;
    }
    std::str::from_utf8(&bytes[..end]).ok()
}

/// linecut's own `message` lines, read without serde: its writer puts `ts_us` first and the
/// other fields in a fixed order, and the strings a subscriber logs rarely need escapes. Any
/// line that is not exactly that shape returns `None` and is parsed by serde instead.
fn fast_message(line: &[u8]) -> Option<MessageRow<'_>> {
    // The writer emits compact JSON with no nesting in these lines: anything else (whitespace
    // between tokens, nested values where a key could hide, escapes, which could make a key's
    // bytes appear inside another string) is left to serde.
    if memchr::memchr3(b' ', b'\t', b'\n', line).is_some()
        || memchr::memchr2(b'\r', b'\\', line).is_some()
        || memchr::memchr2(b'{', b'[', line.get(1..)?).is_some()
    {
        return None;
    }
    let f = &*FINDERS;
    let ts_us = integer(line.strip_prefix(br#"{"ts_us":"#)?)?;
    // With no escapes in the line, a key's bytes cannot occur inside a string, so the first
    // occurrence of each key is the key.
    let c = f.client.find(line)? + br#""client":""#.len();
    let client = plain_string(&line[c..])?;
    let t = f.topic.find(line)? + br#""topic":""#.len();
    let topic = plain_string(&line[t..])?;
    let seq = match f.seq.find(line) {
        Some(i) => Some(u64::try_from(integer(&line[i + br#""seq":"#.len()..])?).ok()?),
        None => None,
    };
    let pub_ts_us = match f.pub_ts.find(line) {
        Some(i) => Some(integer(&line[i + br#""pub_ts_us":"#.len()..])?),
        None => None,
    };
    Some(MessageRow {
        ts_us,
        client: Cow::Borrowed(client),
        topic: Cow::Borrowed(topic),
        seq,
        pub_ts_us,
    })
}

/// For the fuzz target: the fast path on arbitrary bytes must never panic, and whenever it
/// accepts a line that serde also accepts, both must read the same fields.
#[doc(hidden)]
pub fn check_fast_message_path(line: &[u8]) {
    if let Some(fast) = fast_message(line) {
        if let Ok(row) = serde_json::from_slice::<MessageRow>(line) {
            assert_eq!(fast, row);
        }
    }
}

fn classify(line: &[u8]) -> LineKind {
    let f = &*FINDERS;
    let head = &line[..line.len().min(96)];
    if f.message.find(head).is_some() {
        LineKind::Message
    } else if f.published.find(head).is_some() {
        LineKind::Published
    } else if f.packet.find(head).is_some()
        && f.publish_family.find(line).is_some()
        && f.forwarded.find(line).is_some()
    {
        LineKind::SkippedPacket
    } else {
        LineKind::Other
    }
}

/// The interned names rows refer to.
#[derive(Default)]
struct Names {
    clients: Interner,
    client_names: Vec<String>,
    topics: Interner,
    topic_names: Vec<String>,
}

/// What one events file held.
#[derive(Default)]
struct FileRead {
    events: Vec<Event>,
    deliveries: Vec<Delivery>,
    publishes: Vec<Publish>,
    warnings: Vec<String>,
    lines: u64,
}

/// Reads one events file. With `names`, deliveries and publishes become compact rows; without
/// (the proxy's log, read on its own thread, has none) every kept line is a whole event.
fn read_file(
    path: &Path,
    required: bool,
    mut names: Option<&mut Names>,
) -> Result<FileRead, AnalyzeError> {
    let mut out = FileRead::default();
    let file = match File::open(path) {
        Ok(f) => f,
        Err(_) if !required => {
            out.warnings.push(format!(
                "{} is missing; analysed without it",
                path.display()
            ));
            return Ok(out);
        }
        Err(_) => return Err(AnalyzeError::Missing(path.to_path_buf())),
    };
    let mut input = BufReader::with_capacity(1 << 20, file);
    let mut line = Vec::with_capacity(512);
    // The header decides whether this is a file we can read at all.
    input
        .read_until(b'\n', &mut line)
        .map_err(|e| AnalyzeError::Read(format!("{}: {e}", path.display())))?;
    EventReader::new(path, Cursor::new(&line)).map_err(|e| AnalyzeError::Read(e.to_string()))?;
    let mut line_no = 1u64;
    loop {
        line.clear();
        match input.read_until(b'\n', &mut line) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => {
                out.warnings.push(format!(
                    "{}:{}: reading stopped: {e}",
                    path.display(),
                    line_no + 1
                ));
                break;
            }
        }
        line_no += 1;
        let text = line.trim_ascii();
        if text.is_empty() {
            continue;
        }
        let bad = |e: serde_json::Error| {
            format!(
                "skipped: {}:{line_no}: not a linecut event: {e}",
                path.display()
            )
        };
        let kind = match (classify(text), names.is_some()) {
            (LineKind::Message | LineKind::Published, false) => LineKind::Other,
            (kind, _) => kind,
        };
        match kind {
            LineKind::SkippedPacket => {}
            LineKind::Message => {
                let n = names.as_deref_mut().expect("rows only with names");
                let row = match fast_message(text) {
                    Some(row) => row,
                    None => match serde_json::from_slice::<MessageRow>(text) {
                        Ok(row) => row,
                        Err(e) => {
                            out.warnings.push(bad(e));
                            continue;
                        }
                    },
                };
                out.deliveries.push(Delivery {
                    ts_us: row.ts_us,
                    client: n.clients.id(&mut n.client_names, &row.client),
                    topic: n.topics.id(&mut n.topic_names, &row.topic),
                    seq: row.seq,
                    pub_ts_us: row.pub_ts_us,
                });
            }
            LineKind::Published => match serde_json::from_slice::<PublishedRow>(text) {
                Ok(p) => {
                    let n = names.as_deref_mut().expect("rows only with names");
                    out.publishes.push(Publish {
                        ts_us: p.ts_us,
                        topic: n.topics.id(&mut n.topic_names, &p.topic),
                        seq: p.seq,
                        qos: p.qos,
                    });
                }
                Err(e) => out.warnings.push(bad(e)),
            },
            LineKind::Other => match serde_json::from_slice::<Event>(text) {
                Ok(event) => out.events.push(event),
                Err(e) => out.warnings.push(bad(e)),
            },
        }
    }
    out.lines = line_no;
    // Files are written in order per producer; a stable sort keeps ties as written.
    out.events.sort_by_key(|e| e.ts_us);
    Ok(out)
}

/// Reads mosquitto's log (none for other brokers: the file then holds nothing it parses).
fn broker_log(layout: &RunLayout) -> Vec<BrokerLogEntry> {
    std::fs::read_to_string(layout.broker_log())
        .map(|text| parse_broker_log(&text))
        .unwrap_or_default()
}

pub fn load(dir: &Path) -> Result<Run, AnalyzeError> {
    let layout = RunLayout::new(dir);
    let meta = match RunMeta::read(&layout.meta()) {
        Ok(meta) => meta,
        Err(linecut_events::run_dir::RunDirError::Read { .. }) => {
            return Err(AnalyzeError::NotARun(dir.to_path_buf()))
        }
        Err(e) => return Err(AnalyzeError::Read(e.to_string())),
    };
    // The proxy's log (about half of a busy run) is read on a second thread while the
    // subscribers' and the publisher's are read here; they share the interned names.
    // A namespace run has no proxy: its front log holds the link faults, and its wire is the
    // capture taken on the links (added below).
    let front_log = if meta.network.is_some() {
        layout.link_events()
    } else {
        layout.proxy_events()
    };
    let (proxy, subscriber, publisher, names) = std::thread::scope(|scope| {
        let proxy = scope.spawn(|| read_file(&front_log, false, None));
        let mut names = Names::default();
        let subscriber = read_file(&layout.subscriber_events(), true, Some(&mut names));
        let publisher = read_file(&layout.publisher_events(), false, Some(&mut names));
        let proxy = proxy
            .join()
            .unwrap_or_else(|_| Err(AnalyzeError::Read("the proxy log reader failed".into())));
        (proxy, subscriber, publisher, names)
    });
    let (subscriber, proxy, publisher) = (subscriber?, proxy?, publisher?);
    let mut run = Run {
        // A namespace run's wire is its capture (even one that turned out unreadable: the
        // rules for real links still hold for what the events say).
        wire: if meta.network.is_some() {
            Wire::Capture
        } else {
            Wire::Proxy
        },
        meta,
        broker_log: broker_log(&layout),
        clients: names.client_names,
        topics: names.topic_names,
        lines: subscriber.lines + proxy.lines + publisher.lines,
        ..Run::default()
    };
    run.subscriber = subscriber.events;
    run.proxy = proxy.events;
    run.publisher = publisher.events;
    for part in [subscriber.warnings, proxy.warnings, publisher.warnings] {
        run.warnings.extend(part);
    }
    run.deliveries = subscriber.deliveries;
    run.deliveries.extend(publisher.deliveries);
    run.publishes = publisher.publishes;
    run.publishes.extend(subscriber.publishes);
    run.deliveries.sort_by_key(|d| d.ts_us);
    run.publishes.sort_by_key(|p| p.ts_us);
    run.max_queued_messages = std::fs::read_to_string(layout.mosquitto_conf())
        .ok()
        .and_then(|conf| {
            conf.lines().find_map(|l| {
                l.strip_prefix("max_queued_messages ")
                    .and_then(|n| n.trim().parse().ok())
            })
        });
    if layout.watcher_events().is_file() {
        let watcher = read_file(&layout.watcher_events(), false, None)?;
        run.lines += watcher.lines;
        run.warnings.extend(watcher.warnings);
        run.watcher = Some(watcher.events);
    }
    if let Some(port) = run.meta.network.as_ref().map(|n| n.broker_port) {
        add_link_capture(&mut run, &layout.capture(), port)?;
    }
    // A middlebox's outages are the flows it forgot, found in the wire just read.
    crate::middlebox::forgotten_windows(&mut run);
    // So are the resets a reject rule sends in the broker's name.
    crate::middlebox::reject_resets(&mut run);
    Ok(run)
}

/// A namespace run's wire: the connections, packets and closes of the capture taken on the
/// host end of every link, merged with the link fault events. Only the capture's view of the
/// connections is taken: deliveries are the subscribers' own, and the windows are the faults'
/// (not inferred from silence).
fn add_link_capture(run: &mut Run, pcap: &Path, port: u16) -> Result<(), AnalyzeError> {
    if !pcap.is_file() {
        run.warnings
            .push("capture.pcap is missing: the wire's view of the links is not available".into());
        return Ok(());
    }
    // A capture that cannot be read at all (empty after a kill, not a capture) costs the
    // report its wire view, not the run: every events file is still there to analyse.
    let (captured, info) = match crate::capture::load_capture(pcap, port, None, None) {
        Ok(read) => read,
        Err(e) => {
            run.warnings.push(format!(
                "capture.pcap could not be read ({e}): the wire's view of the links is not available and the report cites no frames"
            ));
            return Ok(());
        }
    };
    run.frames.extend(captured.frames);
    run.quiet.extend(captured.quiet);
    run.wire_totals.extend(captured.wire_totals);
    run.proxy.extend(captured.proxy.into_iter().filter(|e| {
        !matches!(
            e.kind,
            EventKind::FaultStarted(_) | EventKind::FaultEnded(_)
        )
    }));
    run.proxy.sort_by_key(|e| e.ts_us);
    if let Some(f) = &info.folded {
        run.warnings.push(format!(
            "capture.pcap had more ended connections than a report describes: {} are counted, not described (the wire's view and its cited frames cover the {} most informative)",
            f.connections, f.in_detail
        ));
    }
    if let Some(stopped) = info.stopped {
        run.warnings.push(format!(
            "capture.pcap could not be read to its end: {stopped}; the wire's view, and the frames this report can cite, stop there"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use linecut_events::{Message, Source};

    /// The fast path must read exactly what serde reads, for every shape the writer produces.
    #[test]
    fn the_fast_message_path_agrees_with_serde_or_declines() {
        let shapes = [
            (
                Some(7),
                Some(1_700_000_000_000_123),
                false,
                "sensors/1",
                "sub-1",
            ),
            (None, None, true, "a/b", "x"),
            (Some(u64::MAX / 2048), Some(-5), false, "t", "c"),
            (Some(3), Some(4), false, "with \"quote\"", "c"),
            (Some(3), Some(4), false, "ünïcödé/topic", "klient"),
        ];
        for (seq, pub_ts_us, foreign, topic, client) in shapes {
            let event = Event {
                ts_us: 1_800_000_000_000_001,
                source: Source::Subscriber,
                kind: EventKind::Message(Message {
                    client: client.into(),
                    topic: topic.into(),
                    qos: 1,
                    dup: false,
                    retain: false,
                    packet_id: Some(9),
                    payload_len: 64,
                    seq,
                    pub_ts_us,
                    foreign,
                }),
            };
            let line = serde_json::to_vec(&event).unwrap();
            let row: MessageRow = serde_json::from_slice(&line).unwrap();
            match fast_message(&line) {
                Some(fast) => assert_eq!(fast, row),
                None => assert!(
                    topic.contains('"'),
                    "declined a plain line: {}",
                    String::from_utf8_lossy(&line)
                ),
            }
        }
        assert!(
            fast_message(br#"{"source":"subscriber","ts_us":1}"#).is_none(),
            "other field order"
        );
    }
}
