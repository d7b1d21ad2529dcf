//! Fuzz target: TCP reassembly of one direction from arbitrary segments (sequence numbers,
//! lengths, snapped payloads, FINs). Checks: never a panic; the stream only moves forward; every
//! byte handed out plus every gap adds up to the position the reassembler reports (resent
//! bytes are reported but not counted).
#![no_main]

use libfuzzer_sys::fuzz_target;
use linecut_capture::reassembly::{Piece, Reassembler};

fuzz_target!(|data: &[u8]| {
    let mut r = Reassembler::default();
    let mut emitted: u64 = 0;
    let mut count = |p: Piece<'_>| match p {
        Piece::Data(d) => emitted += d.len() as u64,
        Piece::Owned(d) => emitted += d.len() as u64,
        Piece::Gap { len } => emitted += len,
        // A repeat of bytes already handed out: not part of the stream's position.
        Piece::Resent { .. } => {}
    };
    let mut rest = data;
    if let Some((&flag, tail)) = rest.split_first() {
        if flag & 1 == 1 && tail.len() >= 4 {
            r.syn(u32::from_le_bytes(tail[..4].try_into().unwrap()));
            rest = &tail[4..];
        } else {
            rest = tail;
        }
    }
    // Each segment: 4 bytes seq, 1 byte captured length, 1 byte missing length, flags, payload.
    while rest.len() >= 7 {
        let seq = u32::from_le_bytes(rest[..4].try_into().unwrap());
        let captured = (rest[4] as usize).min(rest.len() - 7);
        let missing = rest[5] as usize;
        let fin = rest[6] & 1 == 1;
        let payload = &rest[7..7 + captured];
        let before = r.position();
        r.segment(seq, payload, captured + missing, fin, &mut count);
        assert!(r.position() >= before);
        rest = &rest[7 + captured..];
    }
    r.flush(&mut count);
    assert_eq!(emitted, r.position());
});
