//! Reading a run directory: `meta.json`, the events files and the broker log.
//!
//! Runs can be large (a fleet publishing fast writes millions of lines), so files are streamed
//! line by line and kept compactly:
//! - deliveries (`message`) and publishes (`published`) — the bulk of a run — become small
//!   fixed-size rows with interned client and topic ids ([`Delivery`], [`Publish`]);
//! - the proxy's per-packet lines are kept only where the analysis uses them (CONNECTs, for
//!   client ids and keepalives, and held data released downstream, for the stale-data story);
//!   the rest are recognised by a byte check and skipped without being parsed;
//! - every other event (connections, faults, disconnects, pings, …) is kept whole: there are few.
//!
//! A malformed line is skipped and reported as a warning naming the file and line (one bad line
//! must not hide a run). A missing `meta.json` or subscriber log is an error: without them there
//! is nothing to analyse.

use crate::AnalyzeError;
use linecut_events::{Event, EventKind, EventReader};
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
}

/// Everything a run left, in memory.
#[derive(Debug, Default)]
pub struct Run {
    pub meta: serde_json::Value,
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
    /// mosquitto log lines with their (1 s resolution) timestamp in microseconds.
    pub broker_log: Vec<(i64, String)>,
    pub warnings: Vec<String>,
    /// Lines read, all files together (for benchmarks and the report's warnings).
    pub lines: u64,
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
#[derive(Deserialize)]
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
    message: Finder<'static>,
    published: Finder<'static>,
    packet: Finder<'static>,
    connect: Finder<'static>,
    released: Finder<'static>,
}

static FINDERS: LazyLock<Finders> = LazyLock::new(|| Finders {
    message: Finder::new(br#""type":"message""#),
    published: Finder::new(br#""type":"published""#),
    packet: Finder::new(br#""type":"mqtt_packet""#),
    connect: Finder::new(br#""packet_type":"CONNECT""#),
    released: Finder::new(br#""fate":"released""#),
});

fn classify(line: &[u8]) -> LineKind {
    let f = &*FINDERS;
    let head = &line[..line.len().min(96)];
    if f.message.find(head).is_some() {
        LineKind::Message
    } else if f.published.find(head).is_some() {
        LineKind::Published
    } else if f.packet.find(head).is_some()
        && f.connect.find(line).is_none()
        && f.released.find(line).is_none()
    {
        LineKind::SkippedPacket
    } else {
        LineKind::Other
    }
}

struct Reading<'r> {
    run: &'r mut Run,
    clients: Interner,
    topics: Interner,
}

fn read_file(
    dir: &Path,
    name: &str,
    required: bool,
    reading: &mut Reading<'_>,
    keep: fn(&mut Run) -> &mut Vec<Event>,
) -> Result<(), AnalyzeError> {
    let path = dir.join(name);
    let file = match File::open(&path) {
        Ok(f) => f,
        Err(_) if !required => {
            reading.run.warnings.push(format!(
                "{} is missing; analysed without it",
                path.display()
            ));
            return Ok(());
        }
        Err(_) => return Err(AnalyzeError::Missing(path)),
    };
    let mut input = BufReader::with_capacity(1 << 20, file);
    let mut line = Vec::with_capacity(512);
    // The header decides whether this is a file we can read at all.
    input
        .read_until(b'\n', &mut line)
        .map_err(|e| AnalyzeError::Read(format!("{}: {e}", path.display())))?;
    EventReader::new(&path, Cursor::new(&line)).map_err(|e| AnalyzeError::Read(e.to_string()))?;
    let mut line_no = 1u64;
    let mut events = Vec::new();
    loop {
        line.clear();
        match input.read_until(b'\n', &mut line) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => {
                reading.run.warnings.push(format!(
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
        match classify(text) {
            LineKind::SkippedPacket => {}
            LineKind::Message => match serde_json::from_slice::<MessageRow>(text) {
                Ok(m) => {
                    let run = &mut *reading.run;
                    run.deliveries.push(Delivery {
                        ts_us: m.ts_us,
                        client: reading.clients.id(&mut run.clients, &m.client),
                        topic: reading.topics.id(&mut run.topics, &m.topic),
                        seq: m.seq,
                        pub_ts_us: m.pub_ts_us,
                    });
                }
                Err(e) => reading.run.warnings.push(bad(e)),
            },
            LineKind::Published => match serde_json::from_slice::<PublishedRow>(text) {
                Ok(p) => {
                    let run = &mut *reading.run;
                    run.publishes.push(Publish {
                        ts_us: p.ts_us,
                        topic: reading.topics.id(&mut run.topics, &p.topic),
                        seq: p.seq,
                    });
                }
                Err(e) => reading.run.warnings.push(bad(e)),
            },
            LineKind::Other => match serde_json::from_slice::<Event>(text) {
                Ok(event) => events.push(event),
                Err(e) => reading.run.warnings.push(bad(e)),
            },
        }
    }
    reading.run.lines += line_no;
    // Files are written in order per producer; a stable sort keeps ties as written.
    events.sort_by_key(|e| e.ts_us);
    keep(reading.run).extend(events);
    Ok(())
}

/// Reads mosquitto's log: lines start with a Unix timestamp in seconds (`1764110000: …`).
fn broker_log(dir: &Path) -> Vec<(i64, String)> {
    let Ok(text) = std::fs::read_to_string(dir.join("broker.log")) else {
        return Vec::new();
    };
    text.lines()
        .filter_map(|line| {
            let (ts, rest) = line.split_once(": ")?;
            let secs: i64 = ts.trim().parse().ok()?;
            Some((secs * 1_000_000, rest.to_string()))
        })
        .collect()
}

pub fn load(dir: &Path) -> Result<Run, AnalyzeError> {
    let meta_path = dir.join("meta.json");
    let meta_text = std::fs::read_to_string(&meta_path)
        .map_err(|_| AnalyzeError::NotARun(dir.to_path_buf()))?;
    let meta = serde_json::from_str(&meta_text)
        .map_err(|e| AnalyzeError::Read(format!("{}: {e}", meta_path.display())))?;
    let mut run = Run {
        meta,
        broker_log: broker_log(dir),
        ..Run::default()
    };
    let mut reading = Reading {
        run: &mut run,
        clients: Interner::default(),
        topics: Interner::default(),
    };
    read_file(dir, "subscriber.jsonl", true, &mut reading, |r| {
        &mut r.subscriber
    })?;
    read_file(dir, "proxy.jsonl", false, &mut reading, |r| &mut r.proxy)?;
    read_file(dir, "publisher.jsonl", false, &mut reading, |r| {
        &mut r.publisher
    })?;
    run.deliveries.sort_by_key(|d| d.ts_us);
    run.publishes.sort_by_key(|p| p.ts_us);
    Ok(run)
}
