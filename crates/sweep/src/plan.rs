//! The plan of a sweep: every combination of axis values (a cell), each run `repeat` times, and
//! which cells a shard runs. Pure: building the plan parses every cell's scenario, so a bad axis
//! is reported before anything runs.

use crate::axis::{self, Axis};
use crate::SweepError;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// One combination of axis values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cell {
    /// Directory name under `cells/`, derived from the values alone (so shards agree on it).
    pub name: String,
    /// Axis path to value, in axis order.
    pub values: Vec<(String, String)>,
    /// The cell's scenario file.
    pub scenario: String,
    /// How long one run of it takes (its `duration`), for time estimates.
    pub duration_s: f64,
}

/// `sweep-plan.json`: everything needed to run, resume, shard and merge a sweep.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub scenario_name: String,
    pub axes: Vec<PlanAxis>,
    pub repeat: u32,
    /// Whether each repeat draws its own fault phase (sweeps before phases were drawn read as
    /// fixed).
    #[serde(default)]
    pub phase: PhaseMode,
    pub cells: Vec<Cell>,
    /// `I/N` when this directory holds one shard of the plan's cells.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<Shard>,
    /// What the deployment needs (`[sweep.goal]`).
    #[serde(default, skip_serializing_if = "Goal::is_empty")]
    pub goal: Goal,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanAxis {
    pub path: String,
    pub label: String,
    pub values: Vec<String>,
}

/// How a sweep's repeats treat the faults' phase.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PhaseMode {
    /// A fault without its own `start_jitter` gets `start_jitter = "K"`, and each repeat its own seed: the
    /// repeats sample where the fault falls against the keepalive timer.
    #[default]
    Random,
    /// Faults start where the scenario says; repeats differ only by chance.
    Fixed,
}

/// The seed of repeat `repeat` of `cell`: distinct per run, the same every time it is planned.
pub fn run_seed(cell: &str, repeat: u32) -> u64 {
    // Kept within 2^53 so it reads back exactly from JSON and TOML.
    linecut_model::phase::derive_seed(0, cell, repeat) >> 11
}

/// The `[sweep]` section: axes, repeats, the phase mode and the deployment's goal.
#[derive(Debug, Default)]
pub struct Section {
    pub axes: Vec<Axis>,
    pub repeat: Option<u32>,
    pub phase: Option<PhaseMode>,
    pub goal: Goal,
}

/// `[sweep.goal]`: what a deployment needs of its keepalive. The sweep's decision table names,
/// per client, the cheapest keepalive (fewest pings) that met every goal its runs measured.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Goal {
    /// `notice_within`: the client notices a dead connection within this, in 95% of the
    /// outages its runs had.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notice_within_s: Option<f64>,
    /// `idle_timeout`: its connection survives a middlebox that forgets flows idle this long
    /// (no flow forgotten in any run behind such a middlebox).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_timeout_s: Option<f64>,
    /// `will_within`: the backend hears the device's will within this (median).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub will_within_s: Option<f64>,
}

impl Goal {
    pub fn is_empty(&self) -> bool {
        *self == Goal::default()
    }

    fn from_table(table: &toml::Table) -> Result<Goal, SweepError> {
        let mut goal = Goal::default();
        for (key, value) in table {
            let seconds = value
                .as_str()
                .and_then(|t| linecut_model::parse_duration(t).ok())
                .filter(|d| !d.is_zero())
                .map(|d| d.as_secs_f64())
                .ok_or_else(|| {
                    SweepError::Axis(format!(
                        "[sweep.goal] {key}: a duration longer than 0s, e.g. \"30s\""
                    ))
                })?;
            match key.as_str() {
                "notice_within" => goal.notice_within_s = Some(seconds),
                "idle_timeout" => goal.idle_timeout_s = Some(seconds),
                "will_within" => goal.will_within_s = Some(seconds),
                other => {
                    return Err(SweepError::Axis(format!(
                        "[sweep.goal] has no key `{other}`; keys are: {}",
                        linecut_scenario::SWEEP_GOAL_KEYS.join(", ")
                    )))
                }
            }
        }
        Ok(goal)
    }
}

/// The `index`-th (1-based) of `count` slices of the cells.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

impl Shard {
    pub fn parse(text: &str) -> Result<Shard, SweepError> {
        let bad = || SweepError::Axis(format!("--shard {text}: write I/N with 1 <= I <= N"));
        let (i, n) = text.split_once('/').ok_or_else(bad)?;
        let (index, count): (u32, u32) = (
            i.trim().parse().map_err(|_| bad())?,
            n.trim().parse().map_err(|_| bad())?,
        );
        if index == 0 || count == 0 || index > count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }

    /// Cells are dealt round-robin, so every shard gets a similar mix of long and short cells.
    pub fn takes(&self, position: usize) -> bool {
        position % self.count as usize == (self.index - 1) as usize
    }
}

/// A piece of a cell's directory name. Letters, digits, `.` and `-` stand for themselves; every
/// other byte becomes `_` and two hex digits, so two different texts never give one name (cells
/// whose values differ only in punctuation must not share a directory), and `__`, which joins
/// the axes in a cell's name, cannot occur inside a piece.
fn slug(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b == b'.' || b == b'-' {
            out.push(b as char);
        } else {
            out.push_str(&format!("_{b:02x}"));
        }
    }
    out
}

/// `path=value, path=value` for messages.
fn describe(values: &[(String, String)]) -> String {
    values
        .iter()
        .map(|(p, v)| format!("{p}={v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Every combination of the axes' values, first axis slowest.
fn combinations(axes: &[Axis]) -> Vec<Vec<(String, String)>> {
    let mut out: Vec<Vec<(String, String)>> = vec![Vec::new()];
    for axis in axes {
        out = out
            .into_iter()
            .flat_map(|prefix| {
                axis.values.iter().map(move |v| {
                    let mut next = prefix.clone();
                    next.push((axis.path.clone(), v.clone()));
                    next
                })
            })
            .collect();
    }
    out
}

/// Builds and checks the plan: each cell's scenario must parse, or nothing runs.
pub fn plan(
    path: &Path,
    source: &str,
    axes: &[Axis],
    repeat: u32,
    phase: PhaseMode,
    shard: Option<Shard>,
) -> Result<Plan, SweepError> {
    if axes.is_empty() {
        return Err(SweepError::Axis(
            "no axes: give --set PATH=V1,V2 or a [sweep] section in the scenario".into(),
        ));
    }
    let mut seen = BTreeMap::new();
    for a in axes {
        if seen.insert(a.path.clone(), ()).is_some() {
            return Err(SweepError::Axis(format!("`{}` is swept twice", a.path)));
        }
    }
    let mut base: toml::Table = source.parse().map_err(|e: toml::de::Error| {
        SweepError::Axis(format!("{}: {}", path.display(), e.message()))
    })?;
    // The sweep section describes the sweep, not a run: cells do not carry it.
    base.remove("sweep");
    let base_name = base
        .get("name")
        .and_then(|n| n.as_str())
        .map(str::to_string)
        .or_else(|| path.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "sweep".into());
    let mut cells = Vec::new();
    let mut problems = Vec::new();
    for values in combinations(axes) {
        let mut doc = base.clone();
        let mut ok = true;
        for (p, v) in &values {
            if let Err(e) = axis::apply(&mut doc, p, v) {
                problems.push(format!("{p}={v}: {e}"));
                ok = false;
            }
        }
        if !ok {
            continue;
        }
        if phase == PhaseMode::Random {
            add_keepalive_jitter(&mut doc);
        }
        let name = values
            .iter()
            .map(|(p, v)| format!("{}-{}", slug(p), slug(v)))
            .collect::<Vec<_>>()
            .join("__");
        doc.insert(
            "name".into(),
            toml::Value::String(format!("{base_name}__{name}")),
        );
        let text = format!(
            "# Cell of the sweep over {}: {}\n{}",
            path.display(),
            values
                .iter()
                .map(|(p, v)| format!("{p}={v}"))
                .collect::<Vec<_>>()
                .join(", "),
            toml::to_string(&doc).map_err(|e| SweepError::Axis(e.to_string()))?
        );
        match linecut_scenario::parse(Path::new(&format!("{}[{name}]", path.display())), &text) {
            Ok(scenario) => cells.push(Cell {
                name,
                values,
                scenario: text,
                duration_s: scenario.duration.as_secs_f64(),
            }),
            Err(e) => {
                let setting = values
                    .iter()
                    .map(|(p, v)| format!("{p}={v}"))
                    .collect::<Vec<_>>()
                    .join(", ");
                for p in e.problems {
                    let hint = p
                        .suggestion
                        .map(|s| format!(" (did you mean {s}?)"))
                        .unwrap_or_default();
                    problems.push(format!("cell {setting}: {}: {}{hint}", p.field, p.message));
                }
            }
        }
    }
    // Names are unique by construction unless an axis repeats a value; say so rather than run
    // two cells into one directory.
    let mut names: BTreeMap<&str, &Cell> = BTreeMap::new();
    for cell in &cells {
        if let Some(first) = names.insert(&cell.name, cell) {
            problems.push(format!(
                "cells {} and {} are the same setting (a value is given twice)",
                describe(&first.values),
                describe(&cell.values)
            ));
        }
    }
    if !problems.is_empty() {
        problems.dedup();
        return Err(SweepError::Cells {
            file: path.to_path_buf(),
            problems,
        });
    }
    let cells = cells
        .into_iter()
        .enumerate()
        .filter(|(i, _)| shard.is_none_or(|s| s.takes(*i)))
        .map(|(_, c)| c)
        .collect();
    Ok(Plan {
        scenario_name: base_name,
        axes: axes
            .iter()
            .map(|a| PlanAxis {
                path: a.path.clone(),
                label: a.label(),
                values: a.values.clone(),
            })
            .collect(),
        repeat,
        phase,
        cells,
        shard,
        goal: Goal::default(),
    })
}

/// Gives every fault without a `jitter` one keepalive of it, when the subscriber has a
/// keepalive (its scenario default included): the fault then starts at a random point of the
/// client's ping cycle.
fn add_keepalive_jitter(doc: &mut toml::Table) {
    let keepalive_off = doc
        .get("subscriber")
        .and_then(|s| s.get("keepalive"))
        .and_then(|k| k.as_str())
        .is_some_and(|k| linecut_model::parse_duration(k).is_ok_and(|d| d.is_zero()));
    if keepalive_off {
        return;
    }
    if let Some(faults) = doc.get_mut("fault").and_then(|f| f.as_array_mut()) {
        for fault in faults.iter_mut().filter_map(|f| f.as_table_mut()) {
            // A middlebox is on the path from the start: it has no start to move.
            let kind = fault.get("kind").and_then(|k| k.as_str()).unwrap_or("");
            if linecut_model::LinkKind::MIDDLEBOXES.contains(&kind) {
                continue;
            }
            fault
                .entry(linecut_scenario::JITTER_KEY)
                .or_insert_with(|| toml::Value::String("K".into()));
        }
    }
}

/// Axes, repeat count and phase from a scenario's `[sweep]` section:
/// `"subscriber.keepalive" = ["1s", "2s"]`, `repeat = 3`, `phase = "random"`.
pub fn from_section(source: &str) -> Result<Section, SweepError> {
    let doc: toml::Table = source
        .parse()
        .map_err(|e: toml::de::Error| SweepError::Axis(e.message().to_string()))?;
    let Some(table) = doc.get("sweep").and_then(|s| s.as_table()) else {
        return Ok(Section::default());
    };
    let mut section = Section::default();
    for (key, value) in table {
        if key == "repeat" {
            section.repeat = Some(
                value
                    .as_integer()
                    .filter(|n| *n >= 1 && *n <= 1000)
                    .ok_or_else(|| {
                        SweepError::Axis("[sweep] repeat: a whole number from 1".into())
                    })? as u32,
            );
            continue;
        }
        if key == "goal" {
            let table = value.as_table().ok_or_else(|| {
                SweepError::Axis(
                    "[sweep.goal]: a table, e.g. notice_within = \"30s\", idle_timeout = \"30s\""
                        .into(),
                )
            })?;
            section.goal = Goal::from_table(table)?;
            continue;
        }
        if key == "phase" {
            section.phase = Some(match value.as_str() {
                Some("random") => PhaseMode::Random,
                Some("fixed") => PhaseMode::Fixed,
                _ => {
                    return Err(SweepError::Axis(
                        "[sweep] phase: \"random\" or \"fixed\"".into(),
                    ))
                }
            });
            continue;
        }
        let values: Vec<String> = match value {
            toml::Value::Array(list) => list
                .iter()
                .map(|v| match v {
                    toml::Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect(),
            _ => {
                return Err(SweepError::Axis(format!(
                    "[sweep] {key}: give a list of values, e.g. [\"1s\", \"2s\"]"
                )))
            }
        };
        section
            .axes
            .push(Axis::parse(&format!("{key}={}", values.join(",")))?);
    }
    Ok(section)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = r#"
name = "base"
duration = "20s"
[subscriber]
keepalive = "2s"
[[fault]]
kind = "cut"
at = "5s"
for = "3s"
[sweep]
"subscriber.keepalive" = ["1s", "2s"]
repeat = 2
"#;

    fn axes(list: &[&str]) -> Vec<Axis> {
        list.iter().map(|a| Axis::parse(a).unwrap()).collect()
    }

    #[test]
    fn cells_are_the_product_and_shards_partition_them() {
        let a = axes(&["subscriber.keepalive=1,2", "fault.cut.for=3s,10s,15s"]);
        let full = plan(Path::new("b.toml"), BASE, &a, 1, PhaseMode::Fixed, None).unwrap();
        assert_eq!(full.cells.len(), 6);
        assert_eq!(
            full.cells[0].name,
            "subscriber.keepalive-1__fault.cut.for-3s"
        );
        assert!(full.cells[0].scenario.contains("keepalive = \"1s\""));
        assert!(!full.cells[0].scenario.contains("[sweep]"));
        let mut names: Vec<String> = (1..=4)
            .flat_map(|i| {
                plan(
                    Path::new("b.toml"),
                    BASE,
                    &a,
                    1,
                    PhaseMode::Fixed,
                    Some(Shard { index: i, count: 4 }),
                )
                .unwrap()
                .cells
                .into_iter()
                .map(|c| c.name)
            })
            .collect();
        names.sort();
        let mut all: Vec<String> = full.cells.iter().map(|c| c.name.clone()).collect();
        all.sort();
        assert_eq!(names, all);
    }

    /// The reliability review's reproduction (`a/b,a_b,a b` all became `a_b`) and variants: a
    /// target pattern differing in `*` and `?`, ids differing in `#` and `+`.
    #[test]
    fn values_differing_only_in_punctuation_get_their_own_cells() {
        for axis in [
            "subscriber.client_id=a/b,a_b,a b",
            "fault.cut.target=client=sensor-*,client=sensor-?",
            "subscriber.client_id=s/#,s/+",
        ] {
            // mosquitto takes every MQTT client id (the embedded broker refuses `/ # +`), and
            // the subscriber is one the target patterns match.
            let base = BASE.replace(
                "[subscriber]\n",
                "[broker]\nkind = \"mosquitto\"\n[subscriber]\nclient_id = \"sensor-1\"\n",
            );
            let p = plan(
                Path::new("b.toml"),
                &base,
                &axes(&[axis]),
                1,
                PhaseMode::Fixed,
                None,
            )
            .unwrap();
            let names: std::collections::BTreeSet<&str> =
                p.cells.iter().map(|c| c.name.as_str()).collect();
            assert_eq!(names.len(), p.cells.len(), "{axis}: {names:?}");
            assert!(
                names.iter().all(|n| !n.contains('/') && !n.contains(' ')),
                "{names:?}"
            );
        }
    }

    /// By default each cell's faults get one keepalive of jitter (unless they carry their own)
    /// and each repeat its own seed; `phase = "fixed"` leaves the scenario as written.
    #[test]
    fn random_phase_jitters_each_fault_by_a_keepalive_and_seeds_each_repeat() {
        let a = axes(&["subscriber.keepalive=1s,2s"]);
        let random = plan(Path::new("b.toml"), BASE, &a, 3, PhaseMode::Random, None).unwrap();
        for cell in &random.cells {
            let s = linecut_scenario::parse(Path::new("c.toml"), &cell.scenario).unwrap();
            assert_eq!(
                s.fault_jitter,
                vec![Some(linecut_model::Jitter::Keepalives(1))]
            );
        }
        let own = BASE.replace("for = \"3s\"", "for = \"3s\"\nstart_jitter = \"500ms\"");
        let kept = plan(Path::new("b.toml"), &own, &a, 1, PhaseMode::Random, None).unwrap();
        assert!(kept.cells[0].scenario.contains("start_jitter = \"500ms\""));
        let fixed = plan(Path::new("b.toml"), BASE, &a, 1, PhaseMode::Fixed, None).unwrap();
        assert!(!fixed.cells[0].scenario.contains("start_jitter"));
        let seeds: std::collections::BTreeSet<u64> = random
            .cells
            .iter()
            .flat_map(|c| (1..=3).map(|r| run_seed(&c.name, r)))
            .collect();
        assert_eq!(seeds.len(), 6);
        assert!(seeds.iter().all(|s| *s < 1 << 53));
    }

    #[test]
    fn a_value_given_twice_is_refused_at_plan_time() {
        let err = plan(
            Path::new("b.toml"),
            BASE,
            &axes(&["subscriber.keepalive=2s,2s"]),
            1,
            PhaseMode::Random,
            None,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("are the same setting"), "{err}");
    }

    #[test]
    fn a_bad_axis_fails_before_anything_runs_with_the_field_named() {
        let err = plan(
            Path::new("b.toml"),
            BASE,
            &axes(&["subscriber.keepalve=1s"]),
            1,
            PhaseMode::Random,
            None,
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("keepalve") && err.contains("did you mean `keepalive`?"),
            "{err}"
        );
        let err = plan(
            Path::new("b.toml"),
            BASE,
            &axes(&["subscriber.keepalive=soon"]),
            1,
            PhaseMode::Random,
            None,
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains(
                "cell subscriber.keepalive=soon: subscriber.keepalive: `soon` is not a duration"
            ),
            "{err}"
        );
        let err = plan(
            Path::new("b.toml"),
            BASE,
            &axes(&["publisher.qos=one"]),
            1,
            PhaseMode::Random,
            None,
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("publisher.qos=one") && err.contains("qos"),
            "{err}"
        );
        assert!(plan(Path::new("b.toml"), BASE, &[], 1, PhaseMode::Fixed, None).is_err());
    }

    #[test]
    fn the_sweep_section_declares_axes_and_repeats() {
        let section = from_section(BASE).unwrap();
        assert_eq!(section.axes, axes(&["subscriber.keepalive=1s,2s"]));
        assert_eq!(section.repeat, Some(2));
        assert_eq!(section.phase, None);
        let fixed = format!("{BASE}phase = \"fixed\"\n");
        assert_eq!(from_section(&fixed).unwrap().phase, Some(PhaseMode::Fixed));
        let goal = format!("{BASE}[sweep.goal]\nnotice_within = \"30s\"\nidle_timeout = \"1m\"\n");
        assert_eq!(
            from_section(&goal).unwrap().goal,
            Goal {
                notice_within_s: Some(30.0),
                idle_timeout_s: Some(60.0),
                will_within_s: None,
            }
        );
        let typo = format!("{BASE}[sweep.goal]\nnotice = \"30s\"\n");
        assert!(from_section(&typo)
            .unwrap_err()
            .to_string()
            .contains("notice_within"));
        let bad = format!("{BASE}phase = \"sometimes\"\n");
        assert!(from_section(&bad)
            .unwrap_err()
            .to_string()
            .contains("phase"));
        assert!(Shard::parse("0/2").is_err() && Shard::parse("3/2").is_err());
        assert_eq!(Shard::parse("2/3").unwrap(), Shard { index: 2, count: 3 });
    }
}
