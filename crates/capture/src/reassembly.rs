//! TCP reassembly of one direction of one connection: segments in, the byte stream out, in order.
//!
//! Sequence numbers are unwrapped into 64-bit offsets from the first sequence number seen (the
//! SYN's, when the capture has it), so wrapping at 2^32 is invisible above this module. Segments
//! that arrive ahead of the stream wait in an ordered map; retransmissions and overlaps are
//! trimmed to what is new; bytes the capture lacks (the capture dropped them, or it began or
//! was truncated mid-stream) are reported as a gap of known size when the stream has to move
//! past them — at a FIN, or when more than [`MAX_PENDING`] bytes wait behind the hole, since a
//! capture never retransmits what it missed. Nothing here allocates per byte; out-of-order data
//! is copied once.

use std::collections::BTreeMap;

/// Bytes held behind a hole before the hole is declared a gap and skipped.
pub const MAX_PENDING: usize = 4 * 1024 * 1024;

/// What the stream produced for one segment.
#[derive(Debug, PartialEq, Eq)]
pub enum Piece<'a> {
    /// In-order bytes straight from the segment (no copy).
    Data(&'a [u8]),
    /// In-order bytes released from the out-of-order store.
    Owned(Vec<u8>),
    /// Bytes the capture does not have: the stream continues after `len` unknown bytes.
    Gap { len: u64 },
    /// A segment that carried only bytes the stream already had: a retransmission (on a real
    /// link, the copy that may be the first to arrive after an outage).
    Resent { len: u64 },
}

/// Counters a report shows.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct StreamStats {
    pub bytes: u64,
    pub retransmitted_bytes: u64,
    pub out_of_order_segments: u64,
    pub gaps: u64,
    pub gap_bytes: u64,
}

/// One direction of a TCP connection.
#[derive(Debug, Default)]
pub struct Reassembler {
    /// Unwrapped sequence number of stream offset 0 (set by the SYN or the first segment).
    /// Unwrapped numbers start in the second 2^32 epoch, so a segment from just before the
    /// first one seen still has a place.
    base: Option<u64>,
    /// The unwrapped sequence number of the last segment, for unwrapping the next.
    last: u64,
    /// Next stream offset expected.
    next: u64,
    pending: BTreeMap<u64, Vec<u8>>,
    pending_bytes: usize,
    /// Stream offset of a FIN, once seen.
    fin_at: Option<u64>,
    pub stats: StreamStats,
}

const EPOCH: u64 = 1 << 32;

impl Reassembler {
    /// A SYN (or SYN-ACK) carrying the initial sequence number: data starts at `isn + 1`.
    pub fn syn(&mut self, isn: u32) {
        if self.base.is_none() {
            let first = EPOCH + u64::from(isn) + 1;
            self.base = Some(first);
            self.last = first;
        }
    }

    /// The stream offset of `seq` (negative: before the stream's start), unwrapped to the
    /// candidate closest to the previous segment's.
    fn offset(&mut self, seq: u32) -> i64 {
        let base = *self.base.get_or_insert(EPOCH + u64::from(seq));
        if self.last == 0 {
            self.last = base;
        }
        let epoch = self.last & !(EPOCH - 1);
        let abs = [epoch.saturating_sub(EPOCH), epoch, epoch + EPOCH]
            .into_iter()
            .map(|e| e | u64::from(seq))
            .min_by_key(|c| c.abs_diff(self.last))
            .expect("three candidates");
        self.last = abs;
        abs as i64 - base as i64
    }

    /// A segment with `len` payload bytes of which the capture has `data` (a prefix: a snapped
    /// frame has fewer). Calls `out` with each piece of the stream it completes, in order.
    pub fn segment(
        &mut self,
        seq: u32,
        data: &[u8],
        len: usize,
        fin: bool,
        mut out: impl FnMut(Piece<'_>),
    ) {
        let relative = self.offset(seq);
        // Bytes from before the stream's start (retransmitted from before the capture began).
        let before = usize::try_from(-relative.min(0)).unwrap_or(usize::MAX);
        if before >= len {
            self.stats.retransmitted_bytes += data.len() as u64;
            return;
        }
        let data = &data[before.min(data.len())..];
        let len = len - before;
        let start = relative.max(0) as u64;
        if fin {
            self.fin_at = Some(start + len as u64);
        }
        // Bytes the frame did not carry are a hole right after what it did carry.
        let end = start + data.len() as u64;
        if len > data.len() {
            self.stats.gaps += 1;
            self.stats.gap_bytes += (len - data.len()) as u64;
        }
        if end <= self.next {
            self.stats.retransmitted_bytes += data.len() as u64;
            if !data.is_empty() {
                out(Piece::Resent {
                    len: data.len() as u64,
                });
            }
        } else if start <= self.next {
            let skip = (self.next - start) as usize;
            self.stats.retransmitted_bytes += skip as u64;
            let fresh = &data[skip..];
            self.next += fresh.len() as u64;
            self.stats.bytes += fresh.len() as u64;
            out(Piece::Data(fresh));
            self.drain(&mut out);
        } else {
            self.stats.out_of_order_segments += 1;
            if !data.is_empty() {
                let keep = self
                    .pending
                    .get(&start)
                    .is_none_or(|v| v.len() < data.len());
                if keep {
                    if let Some(old) = self.pending.insert(start, data.to_vec()) {
                        self.pending_bytes -= old.len();
                    }
                    self.pending_bytes += data.len();
                }
            }
        }
        if len > data.len() && self.next == end {
            // The stream itself reached the snapped part: skip it now.
            let missing = (len - data.len()) as u64;
            self.next += missing;
            out(Piece::Gap { len: missing });
            self.drain(&mut out);
        }
        while self.pending_bytes > MAX_PENDING {
            self.skip_hole(&mut out);
        }
    }

    /// Releases stored segments that now continue the stream.
    fn drain(&mut self, out: &mut impl FnMut(Piece<'_>)) {
        while let Some((&at, _)) = self.pending.first_key_value() {
            if at > self.next {
                break;
            }
            let (at, bytes) = self.pending.pop_first().expect("checked");
            self.pending_bytes -= bytes.len();
            let end = at + bytes.len() as u64;
            if end <= self.next {
                self.stats.retransmitted_bytes += bytes.len() as u64;
                continue;
            }
            let skip = (self.next - at) as usize;
            self.stats.retransmitted_bytes += skip as u64;
            let fresh = bytes[skip..].to_vec();
            self.next = end;
            self.stats.bytes += fresh.len() as u64;
            out(Piece::Owned(fresh));
        }
    }

    /// Declares the hole before the first stored segment a gap and moves past it.
    fn skip_hole(&mut self, out: &mut impl FnMut(Piece<'_>)) {
        let Some((&at, _)) = self.pending.first_key_value() else {
            return;
        };
        if at > self.next {
            let len = at - self.next;
            self.stats.gaps += 1;
            self.stats.gap_bytes += len;
            self.next = at;
            out(Piece::Gap { len });
        }
        self.drain(out);
    }

    /// The connection ended (FIN, RST or end of capture): whatever waits behind holes is
    /// released after gaps, so no captured byte is lost.
    pub fn flush(&mut self, mut out: impl FnMut(Piece<'_>)) {
        while !self.pending.is_empty() {
            self.skip_hole(&mut out);
        }
    }

    /// Bytes the stream was missing before the FIN it saw (a hole that was never filled).
    pub fn missing_before_fin(&self) -> u64 {
        self.fin_at.map_or(0, |f| f.saturating_sub(self.next))
    }

    /// Next stream offset expected.
    pub fn position(&self) -> u64 {
        self.next
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds segments (seq, bytes) and returns the stream as text, gaps as `[N]`.
    fn stream(isn: Option<u32>, segments: &[(u32, &str)]) -> (String, StreamStats) {
        let mut r = Reassembler::default();
        if let Some(isn) = isn {
            r.syn(isn);
        }
        let mut out = String::new();
        let mut push = |p: Piece<'_>| match p {
            Piece::Data(d) => out.push_str(std::str::from_utf8(d).unwrap()),
            Piece::Owned(d) => out.push_str(std::str::from_utf8(&d).unwrap()),
            Piece::Gap { len } => out.push_str(&format!("[{len}]")),
            Piece::Resent { len } => out.push_str(&format!("<{len}>")),
        };
        for (seq, text) in segments {
            r.segment(*seq, text.as_bytes(), text.len(), false, &mut push);
        }
        r.flush(&mut push);
        (out, r.stats)
    }

    #[test]
    fn in_order_segments_pass_straight_through() {
        let (s, stats) = stream(Some(99), &[(100, "hello "), (106, "world")]);
        assert_eq!(s, "hello world");
        assert_eq!((stats.bytes, stats.gaps), (11, 0));
    }

    #[test]
    fn reordered_segments_come_out_in_order() {
        let (s, stats) = stream(Some(0), &[(7, "world"), (1, "hello "), (12, "!")]);
        assert_eq!(s, "hello world!");
        assert_eq!(stats.out_of_order_segments, 1);
    }

    #[test]
    fn duplicates_and_overlaps_are_trimmed() {
        let (s, stats) = stream(
            Some(0),
            &[
                (1, "abcd"),
                (1, "abcd"),
                (3, "cdef"),
                (5, "efgh"),
                (2, "bc"),
            ],
        );
        // Whole repeats are reported as resent (<n>); partial overlaps are trimmed silently.
        assert_eq!(s, "abcd<4>efgh<2>");
        assert_eq!(stats.retransmitted_bytes, 4 + 2 + 2 + 2);
    }

    #[test]
    fn sequence_numbers_wrap_at_two_to_the_32() {
        let isn = u32::MAX - 3;
        let (s, _) = stream(
            Some(isn),
            &[
                (isn.wrapping_add(1), "abc"),
                (isn.wrapping_add(4), "def"),
                (isn.wrapping_add(7), "ghi"),
            ],
        );
        assert_eq!(s, "abcdefghi");
    }

    #[test]
    fn a_missing_segment_becomes_a_gap_of_its_size() {
        let (s, stats) = stream(Some(0), &[(1, "abc"), (7, "ghi")]);
        assert_eq!(s, "abc[3]ghi");
        assert_eq!((stats.gaps, stats.gap_bytes), (1, 3));
    }

    #[test]
    fn a_capture_that_starts_mid_stream_starts_at_its_first_segment() {
        let (s, _) = stream(None, &[(5000, "mid"), (5003, "dle")]);
        assert_eq!(s, "middle");
    }

    #[test]
    fn snapped_frames_report_their_missing_tail() {
        let mut r = Reassembler::default();
        r.syn(0);
        let mut pieces = Vec::new();
        r.segment(1, b"abc", 10, false, |p| pieces.push(format!("{p:?}")));
        r.segment(11, b"xyz", 3, false, |p| pieces.push(format!("{p:?}")));
        assert_eq!(pieces.len(), 3, "{pieces:?}");
        assert!(pieces[1].contains("Gap { len: 7 }"), "{pieces:?}");
        assert_eq!(r.position(), 13);
    }

    #[test]
    fn too_much_waiting_behind_a_hole_skips_the_hole() {
        let mut r = Reassembler::default();
        r.syn(0);
        let chunk = vec![b'x'; 1 << 20];
        let mut gaps = 0;
        for i in 0..6u32 {
            r.segment(1 + 100 + i * (1 << 20), &chunk, chunk.len(), false, |p| {
                if matches!(p, Piece::Gap { .. }) {
                    gaps += 1;
                }
            });
        }
        assert_eq!(gaps, 1);
        assert!(r.pending_bytes <= MAX_PENDING);
    }
}
