//! The linecut event schema: the one place where every event any component writes is defined.
//!
//! Every component (the proxy, linecut's agents, the runner for clients under test) writes its
//! observations as **JSON Lines**: one JSON object per line, in the order they happened. The
//! analyzer reads nothing else, so a field that is not here does not exist for it.
//!
//! # Envelope
//! Every line has:
//! - `ts_us`: wall-clock Unix time in integer microseconds. All components on one host read the
//!   same clock ([`now_us`]), and captures written by the proxy use it too, so files can be merged
//!   without any offset correction.
//! - `source`: which component wrote it (`proxy`, `subscriber`, `publisher`, `broker`, `runner`,
//!   `client`, `capture`).
//! - `type`: the snake_case event name, followed by that type's fields (flattened into the same
//!   object).
//!
//! The **first line of every file is a `header`** naming the schema (`linecut-events`), its
//! version ([`SCHEMA_VERSION`]) and the producer. Readers should refuse a file whose major schema
//! version they do not know, and ignore fields they do not know (fields are only ever added within
//! a version).
//!
//! # Event types
//! | `type` | written by | fields |
//! |---|---|---|
//! | `header` | all | `schema`, `schema_version`, `producer`, `producer_version` |
//! | `proxy_started` | proxy | `listen` (bound address), `upstream`, `control` (address or null) |
//! | `proxy_stopped` | proxy | `connections` (total accepted) |
//! | `conn_opened` | proxy | `conn` (id), `client_addr`, `listen_addr` |
//! | `upstream_connected` | proxy | `conn`, `local_addr` (proxy side of the broker leg), `upstream_addr`, `connect_us` |
//! | `upstream_failed` | proxy | `conn`, `upstream_addr`, `error` |
//! | `leg_closed` | proxy | `conn`, `leg` (`client`/`upstream`), `by` (`peer`/`proxy`), `how` (`fin`/`rst`/`error`), `reason` (optional text) |
//! | `conn_closed` | proxy | `conn`, `bytes_up`, `bytes_down`, `duration_us`, `client_id` (if a CONNECT was seen) |
//! | `mqtt_packet` | proxy | `conn`, `dir`, `fate`, `packet_type`, `len`, and per type: see [`MqttPacket`] |
//! | `raw_bytes` | proxy | `conn`, `dir`, `fate`, `len`: bytes of a stream that is not (or no longer) MQTT |
//! | `mqtt_malformed` | proxy | `conn`, `dir`, `error`, `offset`: the stream stopped parsing; it is forwarded raw from here on |
//! | `publish_suppressed` | proxy | `conn`, `dir`, `count`, `bytes`: PUBLISH-family packets not logged one by one (rate limit) |
//! | `fault_started` | proxy, link | `fault` (id), `spec` (the fault as written), `kind`, `scheduled_us`, `lateness_us`; on a link, `applied`: when each subscriber's rules were in (`client`, `ts_us`) |
//! | `fault_ended` | proxy, link | `fault`, `kind`, `scheduled_us`, `lateness_us`, `applied` (link) |
//! | `fault_action` | proxy | `fault`, `kind`, `action` (`reset`/`close`/`refuse`/`give_up`), `conn` (optional), `detail` |
//! | `connect_attempt` | subscriber, publisher | `client`, `attempt` (1-based, per client), `broker`, `delay_ms` (back-off slept before it) |
//! | `connack` | subscriber, publisher | `client`, `code`, `session_present` |
//! | `subscribe_sent` | subscriber | `client`, `topics` (filter and QoS), `reason` (`first`/`always`/`session_lost`) |
//! | `suback` | subscriber | `client`, `packet_id`, `codes` |
//! | `ping_sent` / `ping_received` | subscriber, publisher | `client` |
//! | `message` | subscriber | `client`, `topic`, `qos`, `dup`, `retain`, `packet_id`, `payload_len`, `seq`, `pub_ts_us`, `foreign` (payload not in linecut's format) |
//! | `published` | publisher | `client`, `topic`, `seq`, `qos`, `retain`, `payload_len` (`ts_us` is the publish timestamp carried in the payload) |
//! | `puback` | publisher | `client`, `packet_id`, `topic` and `seq` of the acknowledged message |
//! | `disconnected` | subscriber, publisher | `client`, `cause` (see [`DisconnectCause`]), `error` (the library's own text) |
//! | `agent_stopped` | subscriber, publisher | `clients`, `messages` (received or published), `incomplete` |
//! | `client_info` | subscriber (a client under test) | `client`, `library`, `version`, `detail` (optional): what the client says it is |
//! | `client_exited` | runner | `client`, `kind`, `code` or `signal`, `expected` (false: it exited before the run ended), `lines`, `unmatched_lines`, `first_unmatched` |
//!
//! `dir` is `up` (client to broker) or `down` (broker to client). `fate` is what the proxy did with
//! the bytes: `forwarded` (written on at once), `dropped` (a fault discarded them), `held` (a fault
//! is holding them), `released` (delivered after having been held), `discarded` (held, then thrown
//! away because the connection died).
//!
//! Timestamps of `mqtt_packet` are the moment of the fate: a held packet has one event when it was
//! held and one when it was released, so the analyzer sees both when it crossed into the proxy and
//! when the other endpoint could first have seen it.

pub mod broker_log;
pub mod process;
mod reader;
pub mod run_dir;
mod writer;

pub use reader::{read_events, EventReader, ReadError};
pub use run_dir::{RunLayout, RunMeta, RunStatus, RunSummary};
pub use writer::{EventBatch, EventLog, EventSink, WriteError};

use serde::{Deserialize, Serialize};
use std::time::{SystemTime, UNIX_EPOCH};

/// Name written in every header so a reader can tell our files from other JSON Lines.
pub const SCHEMA_NAME: &str = "linecut-events";
/// Bumped only when a field changes meaning or disappears; additions keep the version.
pub const SCHEMA_VERSION: u32 = 1;

/// Wall-clock Unix time in microseconds: the one clock all linecut files share.
pub fn now_us() -> i64 {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_micros() as i64,
        // A clock before 1970 is a broken host; negative values keep ordering intact anyway.
        Err(e) => -(e.duration().as_micros() as i64),
    }
}

/// One line of an events file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub ts_us: i64,
    pub source: Source,
    #[serde(flatten)]
    pub kind: EventKind,
}

/// The component that wrote an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    Proxy,
    Subscriber,
    Publisher,
    Broker,
    Runner,
    Client,
    Capture,
    /// Namespace mode's link fault scheduler.
    Link,
    /// The will watcher: a subscriber on the will topics, connected straight to the broker.
    Watcher,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Proxy => "proxy",
            Source::Subscriber => "subscriber",
            Source::Publisher => "publisher",
            Source::Broker => "broker",
            Source::Runner => "runner",
            Source::Client => "client",
            Source::Capture => "capture",
            Source::Link => "link",
            Source::Watcher => "watcher",
        }
    }
}

/// Every event type; the `type` field of the JSON object selects the variant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EventKind {
    Header(Header),
    ProxyStarted(ProxyStarted),
    ProxyStopped(ProxyStopped),
    ConnOpened(ConnOpened),
    UpstreamConnected(UpstreamConnected),
    UpstreamFailed(UpstreamFailed),
    LegClosed(LegClosed),
    ConnClosed(ConnClosed),
    MqttPacket(MqttPacket),
    RawBytes(RawBytes),
    MqttMalformed(MqttMalformed),
    PublishSuppressed(PublishSuppressed),
    FaultStarted(FaultStarted),
    FaultEnded(FaultEnded),
    FaultAction(FaultAction),
    ConnectAttempt(ConnectAttempt),
    Connack(Connack),
    SubscribeSent(SubscribeSent),
    Suback(Suback),
    PingSent(ClientRef),
    PingReceived(ClientRef),
    Message(Message),
    Published(Published),
    Puback(Puback),
    Disconnected(Disconnected),
    AgentStopped(AgentStopped),
    ClientInfo(ClientInfo),
    ClientExited(ClientExited),
    WillReceived(WillReceived),
}

impl EventKind {
    /// The `type` string this variant serialises as.
    pub fn type_name(&self) -> &'static str {
        match self {
            EventKind::Header(_) => "header",
            EventKind::ProxyStarted(_) => "proxy_started",
            EventKind::ProxyStopped(_) => "proxy_stopped",
            EventKind::ConnOpened(_) => "conn_opened",
            EventKind::UpstreamConnected(_) => "upstream_connected",
            EventKind::UpstreamFailed(_) => "upstream_failed",
            EventKind::LegClosed(_) => "leg_closed",
            EventKind::ConnClosed(_) => "conn_closed",
            EventKind::MqttPacket(_) => "mqtt_packet",
            EventKind::RawBytes(_) => "raw_bytes",
            EventKind::MqttMalformed(_) => "mqtt_malformed",
            EventKind::PublishSuppressed(_) => "publish_suppressed",
            EventKind::FaultStarted(_) => "fault_started",
            EventKind::FaultEnded(_) => "fault_ended",
            EventKind::FaultAction(_) => "fault_action",
            EventKind::ConnectAttempt(_) => "connect_attempt",
            EventKind::Connack(_) => "connack",
            EventKind::SubscribeSent(_) => "subscribe_sent",
            EventKind::Suback(_) => "suback",
            EventKind::PingSent(_) => "ping_sent",
            EventKind::PingReceived(_) => "ping_received",
            EventKind::Message(_) => "message",
            EventKind::Published(_) => "published",
            EventKind::Puback(_) => "puback",
            EventKind::Disconnected(_) => "disconnected",
            EventKind::AgentStopped(_) => "agent_stopped",
            EventKind::ClientInfo(_) => "client_info",
            EventKind::ClientExited(_) => "client_exited",
            EventKind::WillReceived(_) => "will_received",
        }
    }
}

/// First line of every file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Header {
    pub schema: String,
    pub schema_version: u32,
    pub producer: String,
    pub producer_version: String,
}

impl Header {
    pub fn new(producer: &str, producer_version: &str) -> Self {
        Header {
            schema: SCHEMA_NAME.to_string(),
            schema_version: SCHEMA_VERSION,
            producer: producer.to_string(),
            producer_version: producer_version.to_string(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProxyStarted {
    pub listen: String,
    pub upstream: String,
    pub control: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProxyStopped {
    pub connections: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConnOpened {
    pub conn: u64,
    pub client_addr: String,
    pub listen_addr: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UpstreamConnected {
    pub conn: u64,
    pub local_addr: String,
    pub upstream_addr: String,
    pub connect_us: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UpstreamFailed {
    pub conn: u64,
    pub upstream_addr: String,
    pub error: String,
}

/// Which side of a proxied connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Leg {
    /// Between the client and the proxy.
    Client,
    /// Between the proxy and the broker.
    Upstream,
}

/// Who ended a leg.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClosedBy {
    /// The endpoint on that leg (the client or the broker).
    Peer,
    /// The proxy itself (propagating the other leg's close, or a fault).
    Proxy,
}

/// How a leg ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CloseHow {
    Fin,
    Rst,
    Error,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LegClosed {
    pub conn: u64,
    pub leg: Leg,
    pub by: ClosedBy,
    pub how: CloseHow,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConnClosed {
    pub conn: u64,
    pub bytes_up: u64,
    pub bytes_down: u64,
    pub duration_us: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
}

/// Direction of travel through the proxy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Client to broker.
    #[default]
    Up,
    /// Broker to client.
    Down,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Up => "up",
            Direction::Down => "down",
        }
    }
}

/// What the proxy did with bytes it read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fate {
    #[default]
    Forwarded,
    Dropped,
    Held,
    Released,
    Discarded,
}

/// One MQTT control packet seen on the wire. Only the fields that matter for its type are present.
///
/// - CONNECT: `client_id`, `keepalive_s`, `clean_session`, `protocol_version` (3, 4 or 5),
///   `will` (true if a will message is set); MQTT 5: `session_expiry_s`, `receive_maximum`,
///   `will_delay_s` when sent.
/// - CONNACK: `return_code` (3.1.1 return code or MQTT 5 reason code), `session_present`;
///   MQTT 5: `server_keepalive_s`, `session_expiry_s`, `receive_maximum` when sent.
/// - PUBLISH: `topic`, `qos`, `dup`, `retain`, `packet_id` (QoS > 0), `payload_len`.
/// - PUBACK / PUBREC / PUBREL / PUBCOMP / UNSUBACK: `packet_id` (and `reason_code` in MQTT 5
///   when present).
/// - SUBSCRIBE: `packet_id`, `topics` (filter and requested QoS); UNSUBSCRIBE: `packet_id`,
///   `topics` (QoS absent).
/// - SUBACK: `packet_id`, `codes` (granted QoS or failure codes, one per filter).
/// - DISCONNECT: `reason_code` (MQTT 5; absent means normal disconnection).
/// - PINGREQ / PINGRESP / AUTH: nothing more.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MqttPacket {
    pub conn: u64,
    pub dir: Direction,
    pub fate: Fate,
    /// Upper-case packet name as in the specification, e.g. `CONNECT`, `PINGREQ`.
    pub packet_type: String,
    /// Whole packet length on the wire, fixed header included.
    pub len: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keepalive_s: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clean_session: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol_version: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub will: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub return_code: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_present: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub packet_id: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qos: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dup: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retain: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload_len: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topics: Option<Vec<TopicFilter>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub codes: Option<Vec<u8>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason_code: Option<u8>,
    /// MQTT 5 CONNECT and CONNACK: Session Expiry Interval, seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_expiry_s: Option<u32>,
    /// MQTT 5 CONNECT and CONNACK: Receive Maximum.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receive_maximum: Option<u16>,
    /// MQTT 5 CONNECT: the will's Will Delay Interval, seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub will_delay_s: Option<u32>,
    /// MQTT 5 CONNACK: Server Keep Alive, the keepalive the broker grants, seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_keepalive_s: Option<u16>,
}

impl MqttPacket {
    /// The packet's type, typed: what code compares, rather than the name the file carries.
    /// `None` only for a name no MQTT version has (a file not written by linecut).
    pub fn kind(&self) -> Option<linecut_mqtt::PacketType> {
        linecut_mqtt::PacketType::from_name(&self.packet_type)
    }
}

/// A topic filter in SUBSCRIBE (with its requested QoS) or UNSUBSCRIBE (without).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicFilter {
    pub filter: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qos: Option<u8>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RawBytes {
    pub conn: u64,
    pub dir: Direction,
    pub fate: Fate,
    pub len: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MqttMalformed {
    pub conn: u64,
    pub dir: Direction,
    pub error: String,
    /// Byte offset in this direction's stream where parsing stopped.
    pub offset: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PublishSuppressed {
    pub conn: u64,
    pub dir: Direction,
    pub count: u64,
    pub bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaultStarted {
    pub fault: u64,
    /// The fault as the user wrote it (`linecut proxy --fault` spelling).
    pub spec: String,
    pub kind: String,
    /// When the schedule wanted it, relative to proxy start; null for faults added live.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduled_us: Option<u64>,
    /// How late the fault actually started against its schedule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lateness_us: Option<u64>,
    /// Namespace mode: when each subscriber the fault acts on had its rules in (the event's
    /// own time is the last of them). Empty in proxy mode, where a fault is one switch.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub applied: Vec<Applied>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaultEnded {
    pub fault: u64,
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduled_us: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lateness_us: Option<u64>,
    /// As [`FaultStarted::applied`], for the rules' removal.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub applied: Vec<Applied>,
}

/// When a fault change took effect for one subscriber.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Applied {
    pub client: String,
    pub ts_us: i64,
}

/// [`FaultAction::action`] of an idle-timeout middlebox forgetting a connection, stamped when
/// it forgot it.
pub const ACTION_FORGOT: &str = "forgot";

/// Something a fault did to a specific connection (or to the listener, for `refuse`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaultAction {
    pub fault: u64,
    pub kind: String,
    /// `reset`, `close`, `refuse`, `give_up`, `listener_closed`, `listener_reopened`,
    /// [`ACTION_FORGOT`].
    pub action: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conn: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConnectAttempt {
    pub client: String,
    pub attempt: u32,
    pub broker: String,
    pub delay_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Connack {
    pub client: String,
    pub code: u8,
    pub session_present: bool,
}

/// Why a subscriber sent SUBSCRIBE.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SubscribeReason {
    /// The first connection of this client.
    First,
    /// Policy `always`: on every CONNACK.
    Always,
    /// Policy `when-session-lost`: CONNACK said the broker kept no session.
    SessionLost,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubscribeSent {
    pub client: String,
    pub topics: Vec<TopicFilter>,
    pub reason: SubscribeReason,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Suback {
    pub client: String,
    pub packet_id: u16,
    pub codes: Vec<u8>,
}

/// Events that only name the client (`ping_sent`, `ping_received`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClientRef {
    pub client: String,
}

/// A message delivered to the application.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub client: String,
    pub topic: String,
    pub qos: u8,
    pub dup: bool,
    pub retain: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub packet_id: Option<u16>,
    pub payload_len: u32,
    /// The publisher's sequence number, if the payload is in linecut's format.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    /// The publish time carried in the payload (Unix microseconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pub_ts_us: Option<i64>,
    /// The payload is not in linecut's format (counted, never dropped).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub foreign: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Published {
    pub client: String,
    pub topic: String,
    pub seq: u64,
    pub qos: u8,
    pub retain: bool,
    pub payload_len: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Puback {
    pub client: String,
    pub packet_id: u16,
    /// The acknowledged message, when the publisher could match the packet id to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
}

/// Why a client's connection ended, classified from the library's error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DisconnectCause {
    /// No PINGRESP came for a PINGREQ within the client's keepalive.
    KeepaliveTimeout,
    /// The connection was reset (RST, or a write that failed).
    ConnectionReset,
    /// The peer closed the connection (FIN).
    ClosedByPeer,
    /// Connecting (TCP plus CONNACK) took longer than the connection timeout.
    ConnectTimeout,
    /// An established connection timed out in the kernel: data stayed unacknowledged through
    /// every retransmission `tcp_retries2` (or `TCP_USER_TIMEOUT`) allows.
    KernelTimeout,
    /// The TCP connect was refused, or CONNACK carried a refusal code.
    Refused,
    /// The client disconnected because it was told to stop.
    Requested,
    /// The library reported the connection lost without saying how (paho's `MQTT_ERR_CONN_LOST`:
    /// a FIN, a reset and a failed write all look alike to it).
    ConnectionLost,
    Other,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Disconnected {
    pub client: String,
    pub cause: DisconnectCause,
    pub error: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentStopped {
    pub clients: u32,
    pub messages: u64,
    /// True if the agent stopped before it was told to (an error, a signal).
    #[serde(default)]
    pub incomplete: bool,
}

/// What a client under test says it is (printed by the client itself).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClientInfo {
    pub client: String,
    pub library: String,
    pub version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// A client process under test ended (written by the runner, which started it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClientExited {
    pub client: String,
    /// The client kind from the scenario (`paho-python`, `mosquitto_sub`, `command`).
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<i32>,
    /// True when the runner asked it to stop; false when it ended on its own before the run did.
    pub expected: bool,
    /// Lines the client printed on stdout.
    pub lines: u64,
    /// Lines that were neither linecut events nor matched the output pattern.
    pub unmatched_lines: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_unmatched: Option<String>,
}

/// A Last Will the watcher received: the broker's word to the rest of the system that a
/// subscriber is gone. Stamped when the watcher's task had it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WillReceived {
    /// Whose will it is: the subscriber whose will has this topic and payload; `None` for a
    /// message on a will topic that is no subscriber's will.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
    pub topic: String,
    pub qos: u8,
    /// Set on a retained message the broker held from before the watcher subscribed.
    pub retain: bool,
    pub payload_len: u32,
}

#[cfg(test)]
mod tests;
