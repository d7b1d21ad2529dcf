//! Fuzz target: the MQTT framing decoder on arbitrary bytes, whole and split into chunks.
//!
//! Checks beyond "no panic": every unit's length stays within the buffer, the decoder's stream
//! offset equals the bytes consumed, and splitting the input at a fuzzer-chosen point yields the
//! same packet sequence as feeding it whole (the proxy reads in arbitrary chunks).
#![no_main]

use libfuzzer_sys::fuzz_target;
use linecut_mqtt::{decode, Role, StreamDecoder, Unit, Version};

fn packets(chunks: &[&[u8]], max_buffered: usize, frames: bool) -> (Vec<u8>, u64) {
    let mut decoder = StreamDecoder::new(Role::Client, max_buffered);
    let mut buf = Vec::new();
    let mut types = Vec::new();
    let mut consumed = 0u64;
    for chunk in chunks {
        buf.extend_from_slice(chunk);
        loop {
            let unit = if frames {
                decoder.next_frame(&buf)
            } else {
                decoder.next(&buf)
            };
            let len = unit.len();
            assert!(len <= buf.len());
            match unit {
                Unit::NeedMore => break,
                Unit::Packet { packet, .. } => types.push(packet.packet_type().code()),
                Unit::OversizedStart { header, .. } | Unit::Frame { header, .. } => {
                    types.push(header.packet_type.code())
                }
                _ => {}
            }
            buf.drain(..len);
            consumed += len as u64;
        }
    }
    assert_eq!(decoder.offset(), consumed);
    (types, consumed)
}

fuzz_target!(|data: &[u8]| {
    for version in [None, Some(Version::V3_1_1), Some(Version::V5)] {
        let _ = decode(data, version);
    }
    let whole = packets(&[data], 1 << 16, false);
    // Frame mode skips body validation, so it may find more packets after a body that full
    // decoding rejects; on a stream that fully decodes, the boundaries must agree.
    let framed = packets(&[data], 1 << 16, true);
    if whole.1 == data.len() as u64 && framed.1 == data.len() as u64 {
        assert!(framed.0.len() >= whole.0.len());
    }
    if let Some((&split, rest)) = data.split_first() {
        let at = split as usize % (rest.len() + 1);
        let (a, b) = rest.split_at(at);
        assert_eq!(packets(&[a, b], 1 << 16, false), packets(&[rest], 1 << 16, false));
        assert_eq!(packets(&[a, b], 1 << 16, true), packets(&[rest], 1 << 16, true));
    }
});
