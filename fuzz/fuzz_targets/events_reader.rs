//! Fuzz target: the events-file reader on arbitrary bytes. It must return errors naming the line,
//! never panic, and never loop without consuming input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use linecut_events::EventReader;
use std::io::Cursor;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    if let Ok(reader) = EventReader::new(Path::new("fuzz.jsonl"), Cursor::new(data)) {
        let mut last_line = 0;
        for item in reader.take(100_000) {
            if let Err(e) = item {
                let text = e.to_string();
                assert!(text.starts_with("fuzz.jsonl:"), "{text}");
            }
            last_line += 1;
        }
        let _ = last_line;
    }
});
