//! Fuzz target: the analyzer's fast path for `message` lines, on arbitrary bytes and on
//! mutations of a real line. It must never panic, and must agree with serde when both accept.
#![no_main]

use libfuzzer_sys::fuzz_target;

const REAL: &[u8] = br#"{"ts_us":1795650390903056,"source":"subscriber","type":"message","client":"fixture-sub","topic":"linecut/data","qos":0,"dup":false,"retain":false,"payload_len":64,"seq":1,"pub_ts_us":1795650390864200}"#;

fuzz_target!(|data: &[u8]| {
    linecut_analyzer::check_fast_message_path(data);
    // Splice the input into a real line, so mutations land near the fields that matter.
    if let Some((&at, rest)) = data.split_first() {
        let at = at as usize % REAL.len();
        let mut line = REAL[..at].to_vec();
        line.extend_from_slice(rest);
        line.extend_from_slice(&REAL[at..]);
        linecut_analyzer::check_fast_message_path(&line);
    }
});
