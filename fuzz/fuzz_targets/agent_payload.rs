//! Fuzz target: the subscriber's payload decoder on arbitrary bytes. It must never panic, and
//! whatever it accepts must re-encode to a payload that decodes to the same stamp.
#![no_main]

use libfuzzer_sys::fuzz_target;
use linecut_model::payload::{decode, encode};

fuzz_target!(|data: &[u8]| {
    if let Some(stamp) = decode(data) {
        assert_eq!(decode(&encode(stamp, data.len())), Some(stamp));
    }
});
