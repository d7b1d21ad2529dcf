//! Fuzz target: reading a client under test's stdout. Any line, in each of the three formats
//! (linecut events, mosquitto_sub -v, a user pattern), must be classified without panicking, and
//! a message it yields must carry the client and a payload length no larger than the line.
#![no_main]

use libfuzzer_sys::fuzz_target;
use linecut_events::EventKind;
use linecut_runner::client::output::{Line, MessageDefaults, OutputFormat};
use regex::Regex;
use std::sync::LazyLock;

static FORMATS: LazyLock<[OutputFormat; 4]> = LazyLock::new(|| {
    [
        OutputFormat::Events,
        OutputFormat::MosquittoSubVerbose,
        OutputFormat::Pattern(Regex::new(r"got (?P<seq>\d+) at (?P<ts>[\d.]+)").unwrap()),
        OutputFormat::Pattern(Regex::new(r"^(?P<topic>\S+) (?P<payload>.*)$").unwrap()),
    ]
});

fuzz_target!(|data: &[u8]| {
    let line = String::from_utf8_lossy(data);
    let defaults = MessageDefaults {
        client: "fuzz".into(),
        topic: "linecut/data".into(),
        qos: 0,
    };
    for format in FORMATS.iter() {
        if let Line::Event { kind, .. } = format.parse(&line, &defaults) {
            if let EventKind::Message(m) = *kind {
                if !matches!(format, OutputFormat::Events) {
                    assert_eq!(m.client, "fuzz");
                    assert!(m.payload_len as usize <= line.len());
                }
            }
        }
    }
});
