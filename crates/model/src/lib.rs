//! linecut's value types and their rules, with no runtime (no tokio, no rumqttc, no IO).
//!
//! This is the leaf crate: the scenario checker, the CLI, the runner, the agents and the
//! analyzer all depend on it, so a default or a rule written here is the one every door applies.
//!
//! Modules:
//! - [`settings`]: subscriber, publisher and mosquitto settings, each with one `Default` and one
//!   `validate`;
//! - [`protocol`]: MQTT version, topics with QoS, topic matching;
//! - [`policy`]: reconnect and re-subscribe policies;
//! - [`duration`]: durations and rates as people write them, bounded where they are parsed;
//! - [`expect`]: expectation conditions (`<= 4`, `2..4`, `never`);
//! - [`identity`]: the client library and broker families the detection bands are drawn for;
//! - [`metric`]: the metrics a report carries and expectations may name;
//! - [`phase`]: a fault's start moved at random (jitter), seeded and recorded;
//! - [`network`]: proxy or namespace mode, the link fault kinds, the device's TCP settings;
//! - [`schedule`]: when, which way and on whom a fault acts (`at`, `for`, `dir`, `target`,
//!   `every`, `count`), one vocabulary and one parser for the proxy's faults and the links';
//! - [`link`]: a link fault (namespace mode): its kind plus a schedule;
//! - [`payload`]: the publisher's payload format (`lc1/<seq>/<ts>/`);
//! - [`glob`]: a fleet's client ids and the `target = "client=PATTERN"` globs over them;
//! - [`text`]: the one check for user text that becomes a file name or a command argument.

pub mod broker_fault;
pub mod duration;
pub mod expect;
pub mod glob;
pub mod identity;
pub mod impairment;
pub mod link;
pub mod metric;
pub mod network;
pub mod payload;
pub mod phase;
pub mod policy;
pub mod profile;
pub mod protocol;
pub mod schedule;
pub mod settings;
pub mod text;

pub use broker_fault::BrokerFault;
pub use duration::{parse_duration, MAX_DURATION};
pub use expect::Condition;
pub use glob::{fleet_ids, spec_target, Glob};
pub use identity::{BrokerFamily, ClientFamily, ClientIdentity};
pub use link::{
    check_middlebox_schedule, link_keys, take_idle_timeout, LinkFaultSpec, IDLE_TIMEOUT_KEYS,
};
pub use metric::{Metric, MetricName, MetricScope};
pub use network::{CutLayer, Forget, LinkKind, NetworkMode, TcpSettings};
pub use phase::{FaultPhase, Jitter, PhaseRecord, PhaseRng};
pub use policy::{ReconnectPolicy, ResubscribePolicy};
pub use protocol::{topic_matches, Protocol, Topic};
pub use schedule::{Dir, KeyDef, KeyType, Keys, Repeat, Schedule, SpecError, Target};
pub use settings::{FieldError, MosquittoSettings, PublisherSettings, SubscriberSettings, Will};
pub use text::{check_text, TextError, TextUse};
