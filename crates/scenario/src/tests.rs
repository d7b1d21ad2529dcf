//! Scenario parsing: a full file, and one test per class of error, each checking that the
//! message names the line and the field.

use super::*;
use std::path::Path;

/// Uses every key the format has (the schema test relies on that).
const FULL: &str = r#"
name = "full"
description = "every key"
duration = "30s"
seed = 7

[broker]
kind = "mosquitto"
persistence = true
persistent_client_expiration = "1h"
max_keepalive = 120

[publisher]
topics = ["linecut/a", "linecut/b"]
interval = "500ms"
qos = 1
retain = false
size = 80
mqtt = "3.1.1"
keepalive = "30s"

[subscriber]
count = 3
client_id = "sensor-{n}"
keepalive = "2s"
clean_session = false
topics = ["linecut/#:1"]
connect_timeout = "3s"
reconnect = "exponential:min=1s,max=10s,jitter=0.1"
resubscribe = "when-session-lost"
mqtt = "3.1.1"
client = "rumqttc"
will = { topic = "devices/{client_id}/status", payload = "offline", qos = 1, retain = true }

[capture]
pcap = true

[network]
mode = "proxy"

[sweep]
"subscriber.keepalive" = ["1s", "2s"]
repeat = 3
phase = "random"

[[fault]]
kind = "cut"
at = "10s"
for = "5s"
start_jitter = "K"
dir = "both"
target = "all"
hold = "64KiB"
give_up = "60s"

[[fault]]
kind = "latency"
at = "20s"
for = "1s"
delay = "100ms"
jitter = "10ms"
every = "3s"
count = 2

[[fault]]
kind = "blackhole"
at = "1s"
mode = "raw"
for = "1s"

[[fault]]
kind = "bandwidth"
at = "2s"
for = "1s"
rate = "1KiB"

[expect]
client_detect_s = "<= 4"
lost = 0
"#;

fn errors(text: &str) -> String {
    parse(Path::new("bad.toml"), text).unwrap_err().to_string()
}

#[test]
fn a_full_scenario_parses_into_its_typed_form() {
    let s = parse(Path::new("x.toml"), FULL).unwrap();
    assert_eq!(s.name, "full");
    assert_eq!(s.duration, Duration::from_secs(30));
    assert!(
        matches!(&s.broker, BrokerSpec::Mosquitto(m) if m.persistence && m.max_keepalive == Some(120))
    );
    assert_eq!(s.publisher.topics.len(), 2);
    assert_eq!(s.publisher.interval, Duration::from_millis(500));
    assert_eq!(
        (
            s.subscriber.settings.count,
            s.subscriber.settings.keepalive_s
        ),
        (3, 2)
    );
    assert_eq!(
        s.subscriber.settings.resubscribe,
        ResubscribePolicy::WhenSessionLost
    );
    assert_eq!(s.faults.len(), 4);
    assert_eq!(
        s.faults[0].to_string(),
        "cut:at=10s,for=5s,hold=65536,give_up=1m"
    );
    assert_eq!(s.expect.get("lost").map(String::as_str), Some("0"));
    assert_eq!(
        s.expect.get("client_detect_s").map(String::as_str),
        Some("<= 4")
    );
}

#[test]
fn the_resolved_form_parses_back_to_the_same_scenario() {
    for text in [
        FULL,
        "duration = \"20s\"\n[subscriber]\nkeepalive = \"5s\"\n",
    ] {
        let first = parse(Path::new("x.toml"), text).unwrap();
        let resolved = first.resolved_toml();
        let again = parse(Path::new("x.resolved.toml"), &resolved)
            .unwrap_or_else(|e| panic!("{e}\n{resolved}"));
        assert_eq!(again.resolved_toml(), resolved);
        assert_eq!(again.faults.len(), first.faults.len());
        assert_eq!(again.expect, first.expect);
    }
    let minimal = parse(
        Path::new("m.toml"),
        "duration = \"20s\"\n[subscriber]\nkeepalive = \"5s\"\n",
    )
    .unwrap();
    let resolved = minimal.resolved_toml();
    assert!(
        resolved.contains("reconnect = \"exponential:min=1s,max=2m,jitter=0\""),
        "{resolved}"
    );
    assert!(resolved.contains("kind = \"embedded\""));
}

#[test]
fn defaults_make_a_minimal_scenario_runnable() {
    let s = parse(
        Path::new("dir/minimal.toml"),
        "duration = \"20s\"\n[subscriber]\nkeepalive = \"5s\"\n",
    )
    .unwrap();
    assert_eq!(s.name, "minimal");
    assert_eq!(s.broker, BrokerSpec::Embedded);
    assert!(s.faults.is_empty());
    assert_eq!(s.subscriber.settings.topics[0].name, "linecut/#");
}

#[test]
fn an_unknown_key_names_its_line_and_suggests_the_known_one() {
    let e = errors("duration = \"10s\"\n[subscriber]\nkeepalve = \"2s\"\n");
    assert!(
        e.starts_with("bad.toml:3:1: keepalve: unknown field `keepalve`"),
        "{e}"
    );
    assert!(e.contains("did you mean `keepalive`?"), "{e}");
}

#[test]
fn a_wrong_type_names_its_line_and_field() {
    let e = errors("duration = \"10s\"\n\n[publisher]\nqos = \"one\"\n");
    assert!(e.starts_with("bad.toml:4:7:"), "{e}");
    assert!(e.contains("invalid type"), "{e}");
}

#[test]
fn a_missing_required_key_is_named() {
    let e = errors("[subscriber]\nkeepalive = \"2s\"\n");
    assert!(e.contains("duration") && e.contains("missing field"), "{e}");
}

#[test]
fn impossible_values_are_located_at_the_value() {
    let e = errors(
        "duration = \"10s\"\n[subscriber]\nkeepalive = \"1.5s\"\nresubscribe = \"sometimes\"\n",
    );
    assert!(
        e.contains("bad.toml:3:13: subscriber.keepalive: `1.5s` must be whole seconds"),
        "{e}"
    );
    assert!(e.contains("bad.toml:4:15: subscriber.resubscribe:"), "{e}");
    assert_eq!(
        e.lines().count(),
        2,
        "every problem is reported at once:\n{e}"
    );
}

#[test]
fn a_fault_outside_the_run_is_rejected_at_its_start() {
    let e = errors("duration = \"10s\"\n[subscriber]\nkeepalive = \"2s\"\n[[fault]]\nkind = \"cut\"\nat = \"12s\"\n");
    assert!(
        e.contains("bad.toml:6:6: fault[1].at: starts at 12s but the run lasts 10s"),
        "{e}"
    );
}

#[test]
fn a_keepalive_longer_than_the_run_is_rejected() {
    let e = errors("duration = \"10s\"\n[subscriber]\nkeepalive = \"60s\"\n");
    assert!(
        e.contains("bad.toml:3:13: subscriber.keepalive: 60s is longer than the run"),
        "{e}"
    );
}

#[test]
fn fault_errors_point_at_the_key_and_suggest_the_kind() {
    let e = errors("duration = \"10s\"\n[subscriber]\nkeepalive = \"2s\"\n[[fault]]\nkind = \"cut\"\nfor = \"soon\"\n");
    assert!(
        e.contains("bad.toml:6:7: fault[1].for: `for=soon` is not a duration"),
        "{e}"
    );
    let e = errors(
        "duration = \"10s\"\n[subscriber]\nkeepalive = \"2s\"\n[[fault]]\nkind = \"cutt\"\n",
    );
    assert!(
        e.contains("fault[1]") && e.contains("did you mean `cut`?"),
        "{e}"
    );
}

#[test]
fn broker_settings_must_fit_the_broker_kind() {
    let e = errors(
        "duration = \"10s\"\n[subscriber]\nkeepalive = \"2s\"\n[broker]\nkind = \"external\"\n",
    );
    assert!(
        e.contains("broker.address") && e.contains("needs `address"),
        "{e}"
    );
    let e = errors(
        "duration = \"10s\"\n[subscriber]\nkeepalive = \"2s\"\n[broker]\nkind = \"mosquito\"\n",
    );
    assert!(e.contains("did you mean `mosquitto`?"), "{e}");
}

#[test]
fn the_json_schema_describes_exactly_the_keys_the_parser_accepts() {
    let schema = schema::json_schema();
    let full: toml::Table = toml::from_str(FULL).unwrap();
    let props = |v: &serde_json::Value| -> Vec<String> {
        let mut keys: Vec<String> = v["properties"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        keys.sort();
        keys
    };
    let keys = |t: &toml::Table| -> Vec<String> {
        let mut keys: Vec<String> = t.keys().cloned().collect();
        keys.sort();
        keys
    };
    assert_eq!(props(&schema), keys(&full));
    for section in ["broker", "publisher", "subscriber"] {
        let in_file = keys(full[section].as_table().unwrap());
        let mut in_schema = props(&schema["properties"][section]);
        // `address` (external brokers) and `rate` (instead of interval) cannot share a file
        // with their alternatives.
        // The subscriber's settings of other client kinds are checked in their own tests.
        in_schema.retain(|k| {
            in_file.contains(k)
                || k == "address"
                || k == "rate"
                || ["paho", "python", "command", "pattern", "library"].contains(&k.as_str())
        });
        let missing: Vec<&String> = in_file.iter().filter(|k| !in_schema.contains(k)).collect();
        assert!(
            missing.is_empty(),
            "{section}: {missing:?} not in the schema"
        );
        assert_eq!(
            in_schema.len() - in_file.len(),
            if section == "subscriber" { 5 } else { 1 },
            "{section}"
        );
    }
    let mut fault_keys: Vec<String> = full["fault"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|f| f.as_table().unwrap().keys().cloned())
        .collect();
    // `probability` and `layer` belong to the link faults of namespace mode, which FULL
    // (proxy mode) cannot hold; NAMESPACE has them.
    fault_keys.push("probability".into());
    fault_keys.push("layer".into());
    // `timeout` and `then` are the idle-timeout middlebox's, which a run has at most one of
    // and FULL has none (it would change every window).
    fault_keys.push("timeout".into());
    fault_keys.push("then".into());
    fault_keys.sort();
    fault_keys.dedup();
    assert_eq!(props(&schema["properties"]["fault"]["items"]), fault_keys);
    let ns: toml::Table = toml::from_str(NAMESPACE).unwrap();
    let network_keys = keys(ns["network"].as_table().unwrap());
    let in_schema = props(&schema["properties"]["network"]);
    assert!(
        network_keys.iter().all(|k| in_schema.contains(k)),
        "{network_keys:?}"
    );
}

#[test]
fn a_will_reads_back_and_its_rules_name_their_field() {
    let s = parse(Path::new("w.toml"), FULL).unwrap();
    let will = s.subscriber.settings.will.clone().unwrap();
    assert_eq!(will.for_client("sensor-2").0, "devices/sensor-2/status");
    assert!((will.qos, will.retain) == (1, true));
    let base = |will: &str, extra: &str| {
        format!("name = \"w\"\nduration = \"90s\"\n[subscriber]\n{extra}will = {will}\n")
    };
    let e = errors(&base(r#"{ topic = "devices/+/status" }"#, ""));
    assert!(
        e.contains("bad.toml:4:")
            && e.contains("subscriber.will.topic")
            && e.contains("no wildcards"),
        "{e}"
    );
    let e = errors(&base(r#"{ topic = "d/s", delay = "5s" }"#, ""));
    assert!(
        e.contains("subscriber.will.delay") && e.contains("MQTT 3.1.1 has no Will Delay Interval"),
        "{e}"
    );
    assert!(parse(
        Path::new("w.toml"),
        &base(
            r#"{ topic = "d/s", delay = "5s" }"#,
            "mqtt = \"5\"\nkeepalive = \"5s\"\n"
        )
    )
    .is_ok());
    let e = errors(&base(
        r#"{ topic = "d/s", payload = "off" }"#,
        "count = 2\n",
    ));
    assert!(
        e.contains("subscriber.will.payload") && e.contains("{client_id}"),
        "{e}"
    );
    let e = errors(&base(r#"{ payload = "off" }"#, ""));
    assert!(
        e.contains("subscriber.will.topic") && e.contains("needs a topic"),
        "{e}"
    );
    let e = errors(&base(r#"{ topic = "d/s", qos = 3 }"#, ""));
    assert!(e.contains("subscriber.will.qos"), "{e}");
    // A command client is told its will through placeholders; one that uses none cannot.
    let cmd = "client = \"command\"\ncommand = [\"sub\", \"{host}\"]\n";
    let e = errors(&base(r#"{ topic = "d/s" }"#, cmd));
    assert!(
        e.contains("subscriber.will:") && e.contains("{will_topic}"),
        "{e}"
    );
    let cmd = "client = \"command\"\ncommand = [\"sub\", \"--will={will_topic}\"]\n";
    assert!(parse(Path::new("w.toml"), &base(r#"{ topic = "d/s" }"#, cmd)).is_ok());
}

#[test]
fn mqtt_5_session_settings_need_mqtt_5_and_a_command_must_pass_them_on() {
    let text = |extra: &str| format!("name = \"s\"\nduration = \"90s\"\n[subscriber]\n{extra}");
    let s = parse(
        Path::new("s.toml"),
        &text("mqtt = \"5\"\nsession_expiry = \"30s\"\nreceive_maximum = 4\n"),
    )
    .unwrap();
    let settings = &s.subscriber.settings;
    assert_eq!(
        (settings.session_expiry_s, settings.receive_maximum),
        (Some(30), Some(4))
    );
    let again = parse(Path::new("s.toml"), &s.resolved_toml()).unwrap();
    assert_eq!(again.subscriber.settings, s.subscriber.settings);
    let e = errors(&text("session_expiry = \"30s\"\n"));
    assert!(
        e.contains("bad.toml:4:")
            && e.contains("subscriber.session_expiry")
            && e.contains("MQTT 3.1.1 has no Session Expiry"),
        "{e}"
    );
    let e = errors(&text("mqtt = \"5\"\nreceive_maximum = 0\n"));
    assert!(
        e.contains("subscriber.receive_maximum") && e.contains("1 to 65535"),
        "{e}"
    );
    let e = errors(&text(
        "mqtt = \"5\"\nsession_expiry = \"30s\"\nclient = \"command\"\ncommand = [\"sub\"]\n",
    ));
    assert!(
        e.contains("subscriber.session_expiry") && e.contains("{session_expiry}"),
        "{e}"
    );
}

fn subscriber_of(text: &str) -> Result<SubscriberSpec, String> {
    let file = format!("duration = \"2m\"\n[subscriber]\n{text}");
    parse(Path::new("c.toml"), &file)
        .map(|s| s.subscriber)
        .map_err(|e| e.to_string())
}

#[test]
fn client_kinds_parse_and_resolve_round_trip() {
    for text in [
        "client = \"paho-python\"\npaho = \"1.6\"\nkeepalive = \"2s\"\nreconnect = \"exponential:min=1s,max=4s\"\npython = \"/opt/py/bin/python\"",
        "client = \"mosquitto_sub\"\nkeepalive = \"5s\"",
        "client = \"command\"\ncommand = [\"my-client\", \"--broker\", \"{host}:{port}\", \"--id={client_id}\"]\npattern = 'seq=(?P<seq>\\d+) ts=(?P<ts>\\d+)'\nlibrary = \"paho\"",
    ] {
        let file = format!("duration = \"2m\"\n[subscriber]\n{text}\n");
        let first = parse(Path::new("c.toml"), &file).unwrap_or_else(|e| panic!("{e}\n{file}"));
        let resolved = first.resolved_toml();
        let again = parse(Path::new("r.toml"), &resolved).unwrap_or_else(|e| panic!("{e}\n{resolved}"));
        assert_eq!(again.subscriber.client, first.subscriber.client, "{resolved}");
        assert!(first.subscriber.client.is_external());
    }
    let paho = subscriber_of("client = \"paho-python\"").unwrap();
    assert_eq!(
        paho.client,
        ClientKind::PahoPython {
            paho: "2".into(),
            python: None
        }
    );
}

#[test]
fn client_settings_of_another_kind_are_rejected_with_their_line() {
    let e = subscriber_of("client = \"paho-python\"\nresubscribe = \"never\"").unwrap_err();
    assert!(e.contains("c.toml:4:15: subscriber.resubscribe: is a setting of client = \"rumqttc\", but client is `paho-python`"), "{e}");
    let e =
        subscriber_of("client = \"mosquitto_sub\"\nkeepalive = \"5s\"\nreconnect = \"immediate\"")
            .unwrap_err();
    assert!(e.contains("subscriber.reconnect"), "{e}");
    let e = subscriber_of("pattern = '(?P<seq>\\d+)'").unwrap_err();
    assert!(
        e.contains(
            "subscriber.pattern: is a setting of client = \"command\", but client is `rumqttc`"
        ),
        "{e}"
    );
}

#[test]
fn client_kind_errors_name_field_and_fix() {
    let e = subscriber_of("client = \"paho\"").unwrap_err();
    assert!(
        e.contains("c.toml:3:10: subscriber.client: `paho` is not a client kind"),
        "{e}"
    );
    assert!(
        e.contains("did you mean `paho-python`, `paho-c` or `paho-go`?"),
        "{e}"
    );
    let e = subscriber_of("client = \"paho-python\"\npaho = \"1.5\"").unwrap_err();
    assert!(
        e.contains("subscriber.paho: `1.5` is not a paho-mqtt series"),
        "{e}"
    );
    // The embedded broker refuses these ids (the reliability review's D1): said at validate.
    for id in ["a+b", "a/b", "$x", "a#"] {
        let e = subscriber_of(&format!("client_id = \"{id}\"")).unwrap_err();
        assert!(
            e.contains("c.toml:3:13: subscriber.client_id: contains")
                && e.contains("the embedded broker (rumqttd) refuses"),
            "{id}: {e}"
        );
    }
    // paho-mqtt 1.0, the seed's client: no MQTT 5, no reconnect delay to set.
    assert!(subscriber_of("client = \"paho-python\"\npaho = \"1.0\"").is_ok());
    let e = subscriber_of("client = \"paho-python\"\npaho = \"1.0\"\nmqtt = \"5\"").unwrap_err();
    assert!(
        e.contains("c.toml:5:8: subscriber.mqtt: paho-mqtt 1.0 speaks MQTT 3.1 and 3.1.1 only"),
        "{e}"
    );
    let e = subscriber_of(
        "client = \"paho-python\"\npaho = \"1.0\"\nreconnect = \"exponential:min=1s,max=4s\"",
    )
    .unwrap_err();
    assert!(
        e.contains("subscriber.reconnect: paho-mqtt 1.0 has no reconnect delay setting"),
        "{e}"
    );
    let e = subscriber_of("client = \"mosquitto_sub\"\nkeepalive = \"2s\"").unwrap_err();
    assert!(
        e.contains("c.toml:4:13: subscriber.keepalive: 2s: mosquitto_sub accepts keepalives of 5s"),
        "{e}"
    );
    let e = subscriber_of("client = \"command\"").unwrap_err();
    assert!(
        e.contains("subscriber.command: client = \"command\" needs `command = "),
        "{e}"
    );
    let e = subscriber_of("client = \"command\"\ncommand = []").unwrap_err();
    assert!(
        e.contains("subscriber.command: needs at least the program"),
        "{e}"
    );
    let e = subscriber_of("client = \"command\"\ncommand = [\"c\", \"{hots}\"]").unwrap_err();
    assert!(
        e.contains("subscriber.command: `{hots}` is not a placeholder"),
        "{e}"
    );
    let e = subscriber_of("client = \"command\"\ncommand = [\"c\"]\npattern = 'got (\\d+)'")
        .unwrap_err();
    assert!(
        e.contains("c.toml:5:11: subscriber.pattern: the pattern needs a `(?P<seq>...)` group"),
        "{e}"
    );
}

/// The scenario's defaults are the model's: a file that sets nothing gets exactly
/// `SubscriberSettings::default()` and `PublisherSettings::default()`.
#[test]
fn an_empty_section_gets_the_settings_defaults() {
    let s = parse(Path::new("d.toml"), "duration = \"2m\"\n").unwrap();
    assert_eq!(
        s.subscriber.settings,
        linecut_model::SubscriberSettings::default()
    );
    assert_eq!(s.publisher, linecut_model::PublisherSettings::default());
}

/// Numbers a run would refuse are refused at `validate`, with the limit in the message (the
/// reliability review's `rate = 1e-300`, `rate = 1e9`, `size = 300000000`, durations of
/// 3e11 years), and `[expect]` typos are errors before any run.
#[test]
fn what_a_run_would_refuse_is_refused_when_the_file_is_checked() {
    for (body, field, words) in [
        ("[publisher]\nrate = 1e-300\n", "publisher.rate", "365 days"),
        (
            "[publisher]\nrate = 1e9\n",
            "publisher.rate",
            "1000 samples",
        ),
        (
            "[publisher]\nsize = 300000000\n",
            "publisher.size",
            "larger than an MQTT packet",
        ),
        (
            "[publisher]\ninterval = \"300000000000y\"\n",
            "publisher.interval",
            "365 days",
        ),
        (
            "[[fault]]\nkind = \"cut\"\nfor = \"300000000000y\"\n",
            "fault",
            "365 days",
        ),
        (
            "[expect]\nwobble = \"1\"\n",
            "expect.wobble",
            "not a metric",
        ),
        (
            "[expect]\nlost = \"soon\"\n",
            "expect.lost",
            "not a condition",
        ),
        (
            "[expect]\n\"client_detect_s.p42\" = \"1\"\n",
            "expect.client_detect_s.p42",
            "not a fleet statistic",
        ),
    ] {
        let text = format!("duration = \"2m\"\n{body}");
        let e = parse(Path::new("x.toml"), &text).unwrap_err();
        let p = e
            .problems
            .iter()
            .find(|p| p.field.starts_with(field))
            .unwrap_or_else(|| panic!("{body}: {e}"));
        assert!(p.message.contains(words), "{body}: {}", p.message);
        assert!(p.line >= 2, "{body}: located at line {}", p.line);
    }
    // `pings` is a metric report.json carries: an expectation may name it.
    let ok = parse(
        Path::new("x.toml"),
        "duration = \"2m\"\n[expect]\npings = \">= 1\"\n",
    );
    assert!(ok.is_ok(), "{:?}", ok.err());
}

/// `[[fault]]` keys are checked against the kind's descriptor: an unknown key is suggested its
/// neighbour, a value of the wrong type is named, an error the proxy finds points at its key.
#[test]
fn fault_tables_are_checked_against_the_kinds_descriptor() {
    let base = "duration = \"10s\"\n[subscriber]\nkeepalive = \"2s\"\n[[fault]]\nkind = \"cut\"\n";
    let e = errors(&format!("{base}hld = \"1KiB\"\n"));
    assert!(
        e.contains("fault[1].hld") && e.contains("did you mean `hold`?"),
        "{e}"
    );
    let e = errors(&format!(
        "{base}every = \"2s\"\nfor = \"1s\"\ncount = \"3\"\n"
    ));
    assert!(
        e.contains("fault[1].count") && e.contains("whole number"),
        "{e}"
    );
    let e = errors(&format!("{base}hold = \"2GiB\"\n"));
    assert!(
        e.contains("bad.toml:6:8: fault[1].hold") && e.contains("1GiB"),
        "{e}"
    );
}

#[test]
fn jitter_is_checked_where_it_is_written() {
    let base = "duration = \"20s\"\n[subscriber]\nkeepalive = \"5s\"\n[[fault]]\nkind = \"cut\"\nat = \"5s\"\nfor = \"3s\"\n";
    let e = errors(&format!("{base}start_jitter = \"sometimes\"\n"));
    assert!(
        e.contains("fault[1].start_jitter") && e.contains("is not a jitter"),
        "{e}"
    );
    let e = errors(&format!("{base}start_jitter = \"3K\"\n"));
    assert!(
        e.contains("fault[1].start_jitter") && e.contains("may start the fault at 20s"),
        "{e}"
    );
    let e = errors(&format!("{base}start_jitter = 2\n"));
    assert!(
        e.contains("fault[1].start_jitter") && e.contains("must be a string"),
        "{e}"
    );
    let e = errors(&format!("seed = -1\n{base}"));
    assert!(e.contains("seed") && e.contains("from 0"), "{e}");
    let s = parse(
        Path::new("j.toml"),
        &format!("seed = 9\n{base}start_jitter = \"2K\"\n"),
    )
    .unwrap();
    assert_eq!(
        s.fault_jitter,
        vec![Some(linecut_model::Jitter::Keepalives(2))]
    );
    assert_eq!(s.seed, Some(9));
    let again = parse(Path::new("r.toml"), &s.resolved_toml()).unwrap();
    assert_eq!(again.fault_jitter, s.fault_jitter);
    assert_eq!(again.seed, Some(9));
    // The latency fault's own `jitter` (its delays) is its own, not a start jitter.
    let full = parse(Path::new("full.toml"), FULL).unwrap();
    let latency = full
        .faults
        .iter()
        .position(|f| f.kind() == "latency")
        .unwrap();
    assert!(
        full.faults[latency].to_string().contains("jitter=10ms"),
        "{}",
        full.faults[latency]
    );
    assert_eq!(full.fault_jitter[latency], None);
}

const NAMESPACE: &str = r#"
duration = "30s"
[broker]
kind = "mosquitto"
[subscriber]
keepalive = "5s"
client = "paho-python"
client_id = "paho-dev"
[network]
mode = "namespace"
tcp_syn_retries = 3
tcp_retries2 = 5
tcp_keepalive_time = "30s"
[[fault]]
kind = "cut"
at = "5s"
for = "10s"
start_jitter = "K"
layer = "link"
[[fault]]
kind = "loss"
at = "20s"
for = "5s"
probability = 0.2
dir = "down"
target = "client=paho*"
"#;

#[test]
fn a_namespace_scenario_reads_its_link_faults_and_device_settings_and_resolves_to_itself() {
    let s = parse(Path::new("ns.toml"), NAMESPACE).unwrap();
    assert_eq!(s.network.mode, NetworkMode::Namespace);
    assert_eq!(
        (
            s.network.tcp.syn_retries,
            s.network.tcp.retries2,
            s.network.tcp.keepalive_time_s
        ),
        (Some(3), Some(5), Some(30))
    );
    assert!(s.faults.is_empty());
    assert_eq!(s.link_faults.len(), 2);
    assert_eq!(s.link_faults[0].to_string(), "cut:at=5s,for=10s,layer=link");
    assert_eq!(
        s.link_faults[1].to_string(),
        "loss:at=20s,for=5s,dir=down,target=client=paho*,probability=0.2"
    );
    assert_eq!(
        s.fault_jitter[0],
        Some(linecut_model::Jitter::Keepalives(1))
    );
    let again = parse(Path::new("r.toml"), &s.resolved_toml()).unwrap();
    assert_eq!(again.network, s.network);
    assert_eq!(again.link_faults, s.link_faults);
    assert_eq!(again.fault_jitter, s.fault_jitter);
}

#[test]
fn a_fault_of_the_other_mode_is_an_error_naming_the_kind_and_the_mode() {
    let e = errors(&NAMESPACE.replace("kind = \"loss\"", "kind = \"blackhole\""));
    assert!(
        e.contains("fault[2].kind")
            && e.contains("`blackhole` is a proxy fault")
            && e.contains("namespace"),
        "{e}"
    );
    // A weak link's kinds need the wire: a proxy run is told which mode plays them.
    let e = errors("duration = \"10s\"\n[subscriber]\nkeepalive = \"2s\"\n[[fault]]\nkind = \"burst_loss\"\np = 0.1\nr = 0.5\n");
    assert!(
        e.contains("fault[1].kind") && e.contains("`burst_loss` is a link fault"),
        "{e}"
    );
    let e = errors(&NAMESPACE.replace(
        "kind = \"loss\"\nat = \"20s\"\nfor = \"5s\"\nprobability = 0.2",
        "kind = \"latency\"\nat = \"20s\"\nfor = \"5s\"\ndelay = \"5s\"\njitter = \"6s\"",
    ));
    assert!(e.contains("fault[2].jitter"), "{e}");
    // The same spelling, the proxy's own keys: a link's `distribution` is not one of them.
    let e = errors("duration = \"10s\"\n[subscriber]\nkeepalive = \"2s\"\n[[fault]]\nkind = \"latency\"\ndelay = \"10ms\"\ndistribution = \"normal\"\n");
    assert!(e.contains("fault[1].distribution"), "{e}");
    let e = errors("duration = \"10s\"\n[subscriber]\nkeepalive = \"2s\"\n[[fault]]\nkind = \"loss\"\nprobability = 0.1\n");
    assert!(
        e.contains("fault[1].kind")
            && e.contains("`loss` is a link fault")
            && e.contains("mode = \"namespace\""),
        "{e}"
    );
    let e = errors(&NAMESPACE.replace("probability = 0.2", "probability = 2"));
    assert!(e.contains("fault[2].probability"), "{e}");
    let e = errors(&NAMESPACE.replace("mode = \"namespace\"", "mode = \"namespaces\""));
    assert!(
        e.contains("network.mode") && e.contains("did you mean `namespace`?"),
        "{e}"
    );
    let e = errors(&NAMESPACE.replace("tcp_syn_retries = 3", "tcp_syn_retries = 300"));
    assert!(e.contains("network.tcp_syn_retries"), "{e}");
    // The kernel's minimum is 1: refused at validate, not once the namespace exists (D6).
    let e = errors(&NAMESPACE.replace("tcp_syn_retries = 3", "tcp_syn_retries = 0"));
    assert!(
        e.contains("network.tcp_syn_retries: must be a whole number from 1 to 127"),
        "{e}"
    );
    // A target that matches no subscriber is refused (the review's D4), in either mode.
    let e = errors(&NAMESPACE.replace("client=paho*", "client=nobody*"));
    assert!(
        e.contains("fault[2].target: `client=nobody*` matches none of the subscribers"),
        "{e}"
    );
    let e = errors(&NAMESPACE.replace("probability = 0.2", "probability = 0.9999996"));
    assert!(e.contains("fault[2].probability"), "{e}");
    let e = errors(&NAMESPACE.replace(
        "kind = \"mosquitto\"",
        "kind = \"external\"\naddress = \"127.0.0.1:1883\"",
    ));
    assert!(
        e.contains("broker.kind") && e.contains("namespace mode starts its own broker"),
        "{e}"
    );
    let e = errors("duration = \"10s\"\n[network]\ntcp_retries2 = 3\n");
    assert!(
        e.contains("network") && e.contains("only namespace mode"),
        "{e}"
    );
}

/// An idle-timeout middlebox: on the path for the whole run, one per run, with a timeout the
/// run can reach; each bad value is named by its field, nothing else is.
#[test]
fn an_idle_timeout_is_checked_in_both_modes() {
    let ns = |fault: &str| {
        format!(
            "duration = \"60s\"\n[broker]\nkind = \"mosquitto\"\n[subscriber]\nkeepalive = \"10s\"\n[network]\nmode = \"namespace\"\n[[fault]]\nkind = \"idle_timeout\"\n{fault}\n"
        )
    };
    let s = parse(
        Path::new("nat.toml"),
        &ns("timeout = \"30s\"\nthen = \"remap\""),
    )
    .unwrap();
    assert_eq!(
        s.link_faults[0].to_string(),
        "idle_timeout:at=0s,timeout=30s,then=remap"
    );
    let again = parse(Path::new("r.toml"), &s.resolved_toml()).unwrap();
    assert_eq!(again.link_faults, s.link_faults);
    for (fault, field) in [
        ("timeout = \"0s\"", "fault[1].timeout"),
        ("timeout = \"2500ms\"", "fault[1].timeout"),
        ("timeout = \"60s\"", "fault[1].timeout"),
        ("timeout = \"30s\"\nthen = \"forget\"", "fault[1].then"),
        ("timeout = \"30s\"\nat = \"5s\"", "fault[1].at"),
        ("timeout = \"30s\"\nfor = \"5s\"", "fault[1].for"),
        (
            "timeout = \"30s\"\nstart_jitter = \"K\"",
            "fault[1].start_jitter",
        ),
        (
            "timeout = \"30s\"\n[[fault]]\nkind = \"idle_timeout\"\ntimeout = \"20s\"",
            "fault[2].kind",
        ),
    ] {
        let e = errors(&ns(fault));
        assert!(e.contains(field), "{fault}: {e}");
    }
    // Proxy mode: the same spelling, but no port to remap.
    let proxy = "duration = \"60s\"\n[subscriber]\nkeepalive = \"10s\"\n[[fault]]\nkind = \"idle_timeout\"\ntimeout = \"30s\"\n";
    assert_eq!(
        parse(Path::new("p.toml"), proxy).unwrap().faults[0].to_string(),
        "idle_timeout:at=0s,timeout=30s"
    );
    let e = errors(&format!("{proxy}then = \"remap\"\n"));
    assert!(
        e.contains("fault[1].then") && e.contains("namespace"),
        "{e}"
    );
    let e = errors(&proxy.replace("30s", "0s"));
    assert!(e.contains("fault[1].timeout"), "{e}");
    let e = errors(&proxy.replace("30s", "90s"));
    assert!(
        e.contains("fault[1].timeout") && e.contains("shorter than the run"),
        "{e}"
    );
}

/// A profile expands to exactly the faults its registry entry lists, and `scenarios/README.md`
/// documents each with exactly those faults; an unknown one, or one in proxy mode, is an
/// error naming `network.profile`.
#[test]
fn a_profile_expands_to_exactly_the_faults_it_documents() {
    let readme = include_str!("../../../scenarios/README.md");
    for p in linecut_model::profile::PROFILES {
        let text = format!(
            "duration = \"10m\"\n[broker]\nkind = \"mosquitto\"\n[network]\nmode = \"namespace\"\nprofile = \"{}\"\n",
            p.name
        );
        let s = parse(Path::new("p.toml"), &text).unwrap();
        let got: Vec<String> = s
            .link_faults
            .iter()
            .map(|f| f.to_string().replacen("at=0s,", "", 1))
            .collect();
        assert_eq!(got, p.faults, "{}", p.name);
        let row = readme
            .lines()
            .find(|l| l.starts_with(&format!("| `{}` |", p.name)))
            .unwrap_or_else(|| panic!("scenarios/README.md has no row for {}", p.name));
        let documented: Vec<&str> = row
            .split('|')
            .nth(3)
            .unwrap()
            .split('`')
            .skip(1)
            .step_by(2)
            .collect();
        assert_eq!(documented, p.faults, "{}: the README's row", p.name);
        // Resolved, the profile is its faults: reading that back gives the same run.
        let again = parse(Path::new("r.toml"), &s.resolved_toml()).unwrap();
        assert_eq!(again.link_faults, s.link_faults);
    }
    let ns =
        "duration = \"10m\"\n[broker]\nkind = \"mosquitto\"\n[network]\nmode = \"namespace\"\n";
    let e = errors(&format!("{ns}profile = \"lte\"\n"));
    assert!(
        e.contains("network.profile") && e.contains("y1541-class1"),
        "{e}"
    );
    let e = errors("duration = \"10m\"\n[network]\nprofile = \"y1541-class0\"\n");
    assert!(
        e.contains("network.profile") && e.contains("namespace"),
        "{e}"
    );
    let e = errors(&format!(
        "{ns}profile = \"azure-load-balancer\"\n[[fault]]\nkind = \"idle_timeout\"\ntimeout = \"30s\"\n"
    ));
    assert!(
        e.contains("network.profile") && e.contains("a run has one"),
        "{e}"
    );
}

/// One table says which kinds each mode plays: `cut`, `latency`, `bandwidth` and
/// `idle_timeout` in both, the other link kinds in namespace mode only, the proxy's other kinds
/// in proxy mode only.
#[test]
fn each_mode_plays_the_kinds_of_its_table() {
    use crate::{kinds_played_by, NetworkMode};
    let proxy = kinds_played_by(NetworkMode::Proxy);
    let namespace = kinds_played_by(NetworkMode::Namespace);
    assert!(proxy.contains(&"cut") && namespace.contains(&"cut"));
    assert!(namespace.contains(&"unplug") && !proxy.contains(&"unplug"));
    assert!(proxy.contains(&"latency") && namespace.contains(&"latency"));
    assert!(namespace.contains(&"burst_loss") && !proxy.contains(&"burst_loss"));
    assert!(proxy.contains(&"blackhole") && !namespace.contains(&"blackhole"));
}

#[test]
fn a_delivery_expectation_is_a_verdict_on_a_qos_that_promises_something() {
    let text = |qos: u8, cond: &str| {
        format!(
            "name = \"d\"\nduration = \"90s\"\n[publisher]\nqos = {qos}\n[subscriber]\ntopics = [\"linecut/#:1\"]\n[expect]\ndelivery = \"{cond}\"\n"
        )
    };
    assert!(parse(Path::new("d.toml"), &text(1, "as-promised")).is_ok());
    let e = errors(&text(0, "as-promised"));
    assert!(
        e.contains("bad.toml:8:") && e.contains("expect.delivery") && e.contains("QoS 0"),
        "{e}"
    );
    let e = errors(&text(1, "<= 1"));
    assert!(e.contains("delivery is a verdict"), "{e}");
    let e = errors("name = \"d\"\nduration = \"90s\"\n[expect]\nlost = \"broken\"\n");
    assert!(
        e.contains("expect.lost") && e.contains("for `delivery` only"),
        "{e}"
    );
}

#[test]
fn a_broker_restart_needs_a_broker_linecut_can_restart_and_must_end_inside_the_run() {
    let text = |broker: &str, fault: &str| {
        format!("name = \"r\"\nduration = \"90s\"\n[broker]\nkind = \"{broker}\"\n[[fault]]\nkind = \"cut\"\nat = \"5s\"\nfor = \"5s\"\n[[fault]]\nkind = \"restart\"\n{fault}")
    };
    let s = parse(
        Path::new("r.toml"),
        &text("mosquitto", "at = \"20s\"\nfor = \"2s\"\n"),
    )
    .unwrap();
    assert_eq!(
        s.broker_faults,
        vec![BrokerFault::Restart {
            at: Duration::from_secs(20),
            down: Duration::from_secs(2)
        }]
    );
    assert_eq!(s.faults.len(), 1, "the cut is the proxy's");
    let again = parse(Path::new("r.toml"), &s.resolved_toml()).unwrap();
    assert_eq!(again.broker_faults, s.broker_faults);
    // In namespace mode too: the broker's own faults are the run's, not the links'.
    let ns =
        text("mosquitto", "at = \"20s\"\nfor = \"2s\"\n") + "[network]\nmode = \"namespace\"\n";
    let ns = parse(Path::new("r.toml"), &ns).unwrap();
    assert_eq!((ns.broker_faults.len(), ns.link_faults.len()), (1, 1));
    let e = errors(&text("embedded", "at = \"20s\"\nfor = \"2s\"\n"));
    assert!(
        e.contains("bad.toml:10:")
            && e.contains("fault[2].kind")
            && e.contains("cannot be stopped"),
        "{e}"
    );
    let e = errors(&text("mosquitto", "at = \"20s\"\n"));
    assert!(
        e.contains("fault[2]") && e.contains("needs `at` and `for`"),
        "{e}"
    );
    let e = errors(&text("mosquitto", "at = \"85s\"\nfor = \"10s\"\n"));
    assert!(
        e.contains("fault[2].for") && e.contains("would not end inside it"),
        "{e}"
    );
    let e = errors(&text(
        "mosquitto",
        "at = \"20s\"\nfor = \"2s\"\ntarget = \"client=a\"\n",
    ));
    assert!(
        e.contains("fault[2].target") && e.contains("no target"),
        "{e}"
    );
    let two = text(
        "mosquitto",
        "at = \"20s\"\nfor = \"5s\"\n[[fault]]\nkind = \"restart\"\nat = \"22s\"\nfor = \"1s\"\n",
    );
    let e = errors(&two);
    assert!(e.contains("fault[3].at") && e.contains("overlaps"), "{e}");
}
