//! The JSON Schema of scenario files, for editors (`linecut schema`). The sections are written
//! next to the raw structs they describe (a test keeps the two in step); the `[[fault]]` table
//! is generated from the fault kinds' descriptors, which are its only definition.

use linecut_proxy::faults::{self, KeyType};
use linecut_proxy::spec::COMMON_KEYS;
use serde_json::{json, Value};

fn duration() -> Value {
    json!({"type": "string", "pattern": "^[0-9]+(\\.[0-9]+)?\\s*[a-z]+", "description": "a duration such as 500ms, 10s, 2m"})
}

pub fn json_schema() -> Value {
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "linecut scenario",
        "type": "object",
        "additionalProperties": false,
        "required": ["duration"],
        "properties": {
            "name": {"type": "string", "description": "run directory name (default: the file name)"},
            "description": {"type": "string"},
            "duration": duration(),
            "seed": {"type": "integer", "minimum": 0, "description": "seed for the faults' phase draws (jitter); drawn at random and recorded in meta.json when absent"},
            "broker": {
                "type": "object", "additionalProperties": false,
                "properties": {
                    "kind": {"enum": ["embedded", "mosquitto", "aedes", "amqtt", "external"], "description": "the broker: rumqttd in-process (default), or a program linecut starts (mosquitto; aedes and amqtt installed by scripts/setup-clients), or one you run"},
                    "address": {"type": "string", "description": "HOST:PORT, for kind = external"},
                    "persistence": {"type": "boolean"},
                    "persistent_client_expiration": duration(),
                    "max_keepalive": {"type": "integer", "minimum": 0, "maximum": 65535},
                    "max_queued_messages": {"type": "integer", "minimum": 0, "description": "mosquitto only: QoS 1 and 2 messages queued for a client that is away (default 1000, mosquitto's own; 0 means no limit)"}
                }
            },
            "publisher": {
                "type": "object", "additionalProperties": false,
                "properties": {
                    "topics": {"type": "array", "items": {"type": "string"}},
                    "interval": duration(),
                    "rate": {"type": "number", "exclusiveMinimum": 0},
                    "qos": {"enum": [0, 1, 2]},
                    "retain": {"type": "boolean"},
                    "size": {"type": "integer", "minimum": 0},
                    "mqtt": {"enum": ["3.1.1", "5"]},
                    "keepalive": duration()
                }
            },
            "network": {
                "type": "object", "additionalProperties": false,
                "properties": {
                    "mode": {"enum": ["proxy", "namespace"], "description": "proxy (default): faults in linecut's MQTT-aware proxy; namespace: each subscriber in its own network namespace, faults as nftables rules on its link (Linux, root)"},
                    "tcp_syn_retries": {"type": "integer", "minimum": 1, "maximum": 127, "description": "namespace mode: the subscribers' kernel setting"},
                    "tcp_retries2": {"type": "integer", "minimum": 0, "maximum": 127, "description": "namespace mode: the subscribers' kernel setting"},
                    "tcp_keepalive_time": duration(),
                    "tcp_keepalive_intvl": duration(),
                    "tcp_keepalive_probes": {"type": "integer", "minimum": 0, "maximum": 127},
                    "tcp_user_timeout": duration()
                }
            },
            "capture": {
                "type": "object", "additionalProperties": false,
                "properties": {"pcap": {"type": "boolean", "description": "write both legs of every proxied connection to capture.pcap in the run directory"}}
            },
            "sweep": {
                "type": "object",
                "description": "linecut sweep: \"PATH\" = [values] per axis (e.g. \"subscriber.keepalive\" = [\"1s\", \"5s\"], \"fault.cut.for\" = [\"3s\", \"10s\"]) and repeat = N",
                "properties": {
                    "repeat": {"type": "integer", "minimum": 1},
                    "phase": {"enum": ["random", "fixed"], "description": "random (default): faults without a start_jitter get start_jitter = \"K\" and each repeat its own seed"}
                },
                "additionalProperties": {"type": "array"}
            },
            "subscriber": {
                "type": "object", "additionalProperties": false,
                "properties": {
                    "count": {"type": "integer", "minimum": 1},
                    "client_id": {"type": "string", "description": "{n} becomes 1..count"},
                    "keepalive": duration(),
                    "clean_session": {"type": "boolean"},
                    "topics": {"type": "array", "items": {"type": "string", "description": "FILTER or FILTER:QOS"}},
                    "connect_timeout": duration(),
                    "reconnect": {"type": "string", "description": "immediate | fixed:DURATION | exponential:min=D,max=D[,jitter=F]"},
                    "resubscribe": {"enum": ["always", "when-session-lost", "never"], "description": "rumqttc only"},
                    "mqtt": {"enum": ["3.1.1", "5"]},
                    "client": {"enum": crate::client::Kind::NAMES, "description": "who subscribes through the proxy; default rumqttc (linecut's agent); mqttjs, paho-c, aiomqtt and paho-go are programs linecut ships (scripts/setup-clients installs them)"},
                    "paho": {"enum": crate::client::PAHO_SERIES, "description": "paho-python only: the paho-mqtt series"},
                    "python": {"type": "string", "description": "paho-python only: the Python to run linecut's paho script with"},
                    "command": {"type": "array", "minItems": 1, "items": {"type": "string"}, "description": "command only: program and arguments, no shell; placeholders {host} {port} {client_id} {keepalive} {topic} {qos} {clean_session} {mqtt}, and for a will {will_topic} {will_payload} {will_qos} {will_retain} {will_delay}, for MQTT 5 {session_expiry} {receive_maximum}"},
                    "pattern": {"type": "string", "description": "command only: a regex with (?P<seq>..) [and (?P<ts>..)] or (?P<payload>..) for stdout lines; without it stdout carries linecut events"},
                    "library": {"type": "string", "description": "command only: the client library it uses, for reports and detection bands"},
                    "session_expiry": {"type": "string", "description": "MQTT 5 Session Expiry Interval, whole seconds (mqtt = \"5\" only)"},
                    "receive_maximum": {"type": "integer", "minimum": 1, "maximum": 65535, "description": "MQTT 5 Receive Maximum (mqtt = \"5\" only)"},
                    "will": will()
                }
            },
            "fault": {
                "type": "array",
                "items": fault_items()
            },
            "expect": {
                "type": "object",
                "additionalProperties": {"type": ["string", "number", "boolean"]},
                "description": "metric = condition, checked by the analyzer"
            }
        }
    })
}

/// `[subscriber] will`.
fn will() -> Value {
    json!({
        "type": "object", "additionalProperties": false, "required": ["topic"],
        "description": "the Last Will each subscriber leaves; {client_id} in topic or payload becomes its id, and linecut's will watcher records when the broker publishes it",
        "properties": {
            "topic": {"type": "string", "description": "no wildcards"},
            "payload": {"type": "string", "description": "default: {client_id}"},
            "qos": {"enum": [0, 1, 2]},
            "retain": {"type": "boolean"},
            "delay": {"type": "string", "description": "MQTT 5 Will Delay Interval, whole seconds (mqtt = \"5\" only)"}
        }
    })
}

/// A `[[fault]]` table's schema, generated from the fault kinds' descriptors: the kinds, the
/// common keys and every kind's own keys, each typed as its descriptor says.
fn fault_items() -> Value {
    let mut properties = serde_json::Map::new();
    // The proxy's kinds, the link kinds of namespace mode (cut is both), and the broker's own
    // (either mode).
    let mut kinds: Vec<&str> = faults::kind_names();
    for k in linecut_model::LinkKind::NAMES
        .into_iter()
        .chain(linecut_model::BrokerFault::KINDS)
    {
        if !kinds.contains(&k) {
            kinds.push(k);
        }
    }
    properties.insert("kind".into(), json!({"enum": kinds}));
    let kind_keys = faults::KINDS.iter().flat_map(|k| k.keys.iter());
    for def in COMMON_KEYS.iter().chain(kind_keys) {
        let value = match def.ty {
            KeyType::Duration => {
                let mut d = duration();
                d["description"] = json!(def.doc);
                d
            }
            KeyType::Bytes | KeyType::Text => json!({"type": "string", "description": def.doc}),
            KeyType::Count => json!({"type": "integer", "minimum": 1, "description": def.doc}),
            KeyType::Choice(words) => json!({"enum": words, "description": def.doc}),
        };
        properties.entry(def.name).or_insert(value);
    }
    properties.insert(
        "probability".to_string(),
        json!({"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1, "description": "loss (namespace mode): the chance each packet is dropped"}),
    );
    properties.insert(
        "layer".to_string(),
        json!({"enum": linecut_model::CutLayer::NAMES, "description": "cut (namespace mode): path, past the first hop (IP dropped, ARP answered; the default), or link, the device's own link (everything dropped, ARP included)"}),
    );
    properties.insert(
        crate::JITTER_KEY.to_string(),
        json!({"type": "string", "description": "start the fault up to this much later, drawn at random per run: a duration (2s) or keepalives (K, 2K)"}),
    );
    json!({
        "type": "object", "additionalProperties": false, "required": ["kind"],
        "properties": properties
    })
}
