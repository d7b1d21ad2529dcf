//! Sweep axes: a scenario field and the values it takes, applied to the scenario's TOML.
//!
//! A path names a field the way the scenario file does:
//! - `duration`, `subscriber.keepalive`, `broker.kind`, `publisher.qos`, … (section and key);
//! - `fault[2].for` — the second `[[fault]]` table (1-based);
//! - `fault.cut.for` — every fault of kind `cut` (`fault.cut.duration` means the same: a
//!   fault's duration is its `for` key).
//!
//! Values are written as on the command line (`1s,2s,5s`, `0,1`, `rumqttc,paho-python`). A bare
//! number given to a duration field means seconds (`subscriber.keepalive=1,2,5`); a text field
//! (`mqtt`, `paho`, `client_id`) takes every value as text (`subscriber.mqtt=3.1.1,5`);
//! otherwise a value that reads as a TOML literal (a number, `true`, `false`) is one, and
//! anything else is a string. Whether the value fits the field is decided by the scenario parser itself, on every
//! cell, before any cell runs.

use crate::SweepError;
use linecut_proxy::faults::{self, KeyType};
use linecut_proxy::spec::COMMON_KEYS;
use toml::{Table, Value};

/// Scenario fields outside `[[fault]]` whose values are durations (a bare number means
/// seconds). A fault's keys are typed by its kind's descriptor instead.
const SCENARIO_DURATION_KEYS: [&str; 5] = [
    "duration",
    "keepalive",
    "interval",
    "connect_timeout",
    "persistent_client_expiration",
];

/// Scenario fields outside `[[fault]]` that are text even when a value reads as a number: an
/// MQTT version (`5`), a paho-mqtt series (`1.6`, `2`), a client id.
const SCENARIO_TEXT_KEYS: [&str; 4] = ["mqtt", "paho", "client_id", "python"];

/// Whether a `[[fault]]` key takes a duration, as the fault kinds' descriptors say.
fn is_fault_duration(key: &str) -> bool {
    let kind_keys = faults::KINDS.iter().flat_map(|k| k.keys.iter());
    COMMON_KEYS
        .iter()
        .chain(kind_keys)
        .any(|d| d.name == key && d.ty == KeyType::Duration)
}

/// One swept field.
#[derive(Debug, Clone, PartialEq)]
pub struct Axis {
    /// As written, e.g. `subscriber.keepalive`.
    pub path: String,
    /// As written, e.g. `["1s", "2s"]`.
    pub values: Vec<String>,
}

impl Axis {
    /// Parses `PATH=V1,V2,...` (the `--set` syntax).
    pub fn parse(text: &str) -> Result<Axis, SweepError> {
        let bad = |why: &str| SweepError::Axis(format!("--set {text}: {why}"));
        let (path, values) = text.split_once('=').ok_or_else(|| {
            bad("write PATH=VALUE,VALUE,... (e.g. subscriber.keepalive=1s,2s,5s)")
        })?;
        let path = path.trim();
        if path.is_empty() {
            return Err(bad("the path is empty"));
        }
        let values: Vec<String> = values.split(',').map(|v| v.trim().to_string()).collect();
        if values.iter().any(String::is_empty) {
            return Err(bad("a value is empty"));
        }
        Path::parse(path).map_err(|e| bad(&e))?;
        Ok(Axis {
            path: path.to_string(),
            values,
        })
    }

    /// The axis's short name in tables and plots: its last segment, with the fault's kind.
    pub fn label(&self) -> String {
        match Path::parse(&self.path) {
            Ok(Path::FaultKind { kind, key }) => format!("{kind}.{key}"),
            Ok(Path::FaultIndex { index, key }) => format!("fault{index}.{key}"),
            Ok(Path::Field { key, .. }) => key,
            Err(_) => self.path.clone(),
        }
    }

    /// The key the path ends in (`keepalive`, `for`, `client`, …).
    pub fn key(&self) -> String {
        match Path::parse(&self.path) {
            Ok(
                Path::FaultKind { key, .. }
                | Path::FaultIndex { key, .. }
                | Path::Field { key, .. },
            ) => key,
            Err(_) => self.path.clone(),
        }
    }
}

/// Where a path points.
#[derive(Debug, Clone, PartialEq)]
enum Path {
    /// `key` at the top level (`section` empty) or in `[section]`.
    Field {
        section: Option<String>,
        key: String,
    },
    FaultIndex {
        index: usize,
        key: String,
    },
    FaultKind {
        kind: String,
        key: String,
    },
}

fn fault_key(key: &str) -> String {
    if key == "duration" {
        "for".into()
    } else {
        key.to_string()
    }
}

impl Path {
    fn parse(path: &str) -> Result<Path, String> {
        let parts: Vec<&str> = path.split('.').collect();
        if parts.iter().any(|p| p.is_empty()) {
            return Err(format!("`{path}` has an empty segment"));
        }
        if let Some(rest) = parts[0].strip_prefix("fault[") {
            let index: usize = rest
                .strip_suffix(']')
                .and_then(|n| n.parse().ok())
                .filter(|n| *n >= 1)
                .ok_or_else(|| format!("`{}`: write fault[N] with N from 1", parts[0]))?;
            return match parts.as_slice() {
                [_, key] => Ok(Path::FaultIndex {
                    index,
                    key: fault_key(key),
                }),
                _ => Err(format!("`{path}`: write fault[N].KEY")),
            };
        }
        match parts.as_slice() {
            ["fault", kind, key] => Ok(Path::FaultKind {
                kind: kind.to_string(),
                key: fault_key(key),
            }),
            ["fault", ..] => Err(format!(
                "`{path}`: write fault.KIND.KEY (e.g. fault.cut.for) or fault[N].KEY"
            )),
            [key] => Ok(Path::Field {
                section: None,
                key: key.to_string(),
            }),
            [section, key] => Ok(Path::Field {
                section: Some(section.to_string()),
                key: key.to_string(),
            }),
            _ => Err(format!(
                "`{path}`: write SECTION.KEY, fault.KIND.KEY or fault[N].KEY"
            )),
        }
    }
}

/// A command-line value as the TOML value the field takes.
fn value_for(key: &str, text: &str, in_fault: bool) -> Value {
    let duration = if in_fault {
        is_fault_duration(key)
    } else {
        SCENARIO_DURATION_KEYS.contains(&key)
    };
    if duration {
        if text.parse::<f64>().is_ok() {
            return Value::String(format!("{text}s"));
        }
        return Value::String(text.to_string());
    }
    if !in_fault && SCENARIO_TEXT_KEYS.contains(&key) {
        return Value::String(text.to_string());
    }
    if let Ok(i) = text.parse::<i64>() {
        return Value::Integer(i);
    }
    if let Ok(f) = text.parse::<f64>() {
        if f.is_finite() {
            return Value::Float(f);
        }
    }
    match text {
        "true" => Value::Boolean(true),
        "false" => Value::Boolean(false),
        _ => Value::String(text.to_string()),
    }
}

/// Sets `path` to `value` in a scenario document.
pub fn apply(doc: &mut Table, path: &str, value: &str) -> Result<(), String> {
    match Path::parse(path)? {
        Path::Field { section: None, key } => {
            doc.insert(key.clone(), value_for(&key, value, false));
        }
        Path::Field {
            section: Some(section),
            key,
        } => {
            let table = doc
                .entry(section.clone())
                .or_insert_with(|| Value::Table(Table::new()));
            let Value::Table(table) = table else {
                return Err(format!("`{section}` is not a section"));
            };
            table.insert(key.clone(), value_for(&key, value, false));
        }
        Path::FaultIndex { index, key } => {
            let faults = faults(doc)?;
            let count = faults.len();
            let fault = faults
                .get_mut(index - 1)
                .ok_or_else(|| format!("fault[{index}]: the scenario has {count} fault(s)"))?;
            let Value::Table(fault) = fault else {
                return Err(format!("fault[{index}] is not a table"));
            };
            fault.insert(key.clone(), value_for(&key, value, true));
        }
        Path::FaultKind { kind, key } => {
            let mut found = false;
            for fault in faults(doc)?.iter_mut() {
                if let Value::Table(fault) = fault {
                    if fault.get("kind").and_then(Value::as_str) == Some(kind.as_str()) {
                        fault.insert(key.clone(), value_for(&key, value, true));
                        found = true;
                    }
                }
            }
            if !found {
                return Err(format!("the scenario has no fault of kind `{kind}`"));
            }
        }
    }
    Ok(())
}

fn faults(doc: &mut Table) -> Result<&mut Vec<Value>, String> {
    match doc.get_mut("fault") {
        Some(Value::Array(list)) => Ok(list),
        _ => Err("the scenario has no [[fault]] tables".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = r#"
duration = "30s"
[subscriber]
keepalive = "2s"
[[fault]]
kind = "cut"
at = "5s"
for = "3s"
[[fault]]
kind = "reset"
at = "20s"
"#;

    fn doc() -> Table {
        BASE.parse().unwrap()
    }

    #[test]
    fn paths_set_sections_faults_by_index_and_by_kind() {
        let mut d = doc();
        apply(&mut d, "subscriber.keepalive", "5").unwrap();
        apply(&mut d, "fault.cut.duration", "10s").unwrap();
        apply(&mut d, "fault[2].at", "25").unwrap();
        apply(&mut d, "publisher.qos", "1").unwrap();
        apply(&mut d, "subscriber.clean_session", "false").unwrap();
        apply(&mut d, "subscriber.client", "paho-python").unwrap();
        // Text fields stay text when a value reads as a number.
        apply(&mut d, "subscriber.mqtt", "5").unwrap();
        apply(&mut d, "subscriber.paho", "1.6").unwrap();
        assert_eq!(d["subscriber"]["mqtt"].as_str(), Some("5"));
        assert_eq!(d["subscriber"]["paho"].as_str(), Some("1.6"));
        assert_eq!(d["subscriber"]["keepalive"].as_str(), Some("5s"));
        assert_eq!(d["fault"][0]["for"].as_str(), Some("10s"));
        assert_eq!(d["fault"][1]["at"].as_str(), Some("25s"));
        assert_eq!(d["publisher"]["qos"].as_integer(), Some(1));
        assert_eq!(d["subscriber"]["clean_session"].as_bool(), Some(false));
        assert_eq!(d["subscriber"]["client"].as_str(), Some("paho-python"));
    }

    #[test]
    fn bad_paths_and_missing_faults_are_errors() {
        assert!(Axis::parse("subscriber.keepalive").is_err());
        assert!(Axis::parse("subscriber.keepalive=1,,2").is_err());
        assert!(Axis::parse("a.b.c=1").is_err());
        assert!(Axis::parse("fault[0].for=1s").is_err());
        let mut d = doc();
        assert!(apply(&mut d, "fault.latency.delay", "1ms")
            .unwrap_err()
            .contains("no fault of kind `latency`"));
        assert!(apply(&mut d, "fault[3].for", "1s")
            .unwrap_err()
            .contains("the scenario has 2 fault(s)"));
    }

    #[test]
    fn labels_are_short() {
        let a = Axis::parse("fault.cut.duration=3s,10s").unwrap();
        assert_eq!(
            (a.label(), a.key()),
            ("cut.for".to_string(), "for".to_string())
        );
        assert_eq!(
            Axis::parse("subscriber.keepalive=1").unwrap().label(),
            "keepalive"
        );
    }
}
