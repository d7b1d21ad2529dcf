//! Reading a run directory: `meta.json`, the events files and the broker log.
//!
//! A malformed events line is skipped and reported as a warning naming the file and line (the
//! analysis goes on: one bad line must not hide a run). A missing `meta.json` or subscriber log
//! is an error: without them there is nothing to analyse.

use crate::AnalyzeError;
use linecut_events::{read_events, Event};
use std::path::Path;

/// Everything a run left, in memory.
#[derive(Debug, Default)]
pub struct Run {
    pub meta: serde_json::Value,
    pub proxy: Vec<Event>,
    pub subscriber: Vec<Event>,
    pub publisher: Vec<Event>,
    /// mosquitto log lines with their (1 s resolution) timestamp in microseconds.
    pub broker_log: Vec<(i64, String)>,
    pub warnings: Vec<String>,
}

fn events(
    dir: &Path,
    name: &str,
    required: bool,
    warnings: &mut Vec<String>,
) -> Result<Vec<Event>, AnalyzeError> {
    let path = dir.join(name);
    if !path.exists() {
        if required {
            return Err(AnalyzeError::Missing(path));
        }
        warnings.push(format!(
            "{} is missing; analysed without it",
            path.display()
        ));
        return Ok(Vec::new());
    }
    let reader = read_events(&path).map_err(|e| AnalyzeError::Read(e.to_string()))?;
    let mut out = Vec::new();
    for item in reader {
        match item {
            Ok(event) => out.push(event),
            Err(e) => warnings.push(format!("skipped: {e}")),
        }
    }
    // Files are written in order per producer; a stable sort keeps ties as written.
    out.sort_by_key(|e| e.ts_us);
    Ok(out)
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
    let mut warnings = Vec::new();
    let subscriber = events(dir, "subscriber.jsonl", true, &mut warnings)?;
    let proxy = events(dir, "proxy.jsonl", false, &mut warnings)?;
    let publisher = events(dir, "publisher.jsonl", false, &mut warnings)?;
    Ok(Run {
        meta,
        proxy,
        subscriber,
        publisher,
        broker_log: broker_log(dir),
        warnings,
    })
}
