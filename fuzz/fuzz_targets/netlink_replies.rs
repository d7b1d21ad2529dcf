//! Fuzz target: the netlink answers namespace mode reads from the kernel (acknowledgements,
//! refusals with extended-ack text, dump messages). Checks: never a panic; a parse that
//! succeeds accounts for every message it was given (each reply came from at least 16 bytes).
#![no_main]

use libfuzzer_sys::fuzz_target;
use linecut_netns::netlink::parse_replies;

fuzz_target!(|data: &[u8]| {
    if let Ok(replies) = parse_replies(data) {
        assert!(replies.len() * 16 <= data.len());
    }
});
