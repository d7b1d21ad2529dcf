//! The payload format of linecut's publisher: a sequence number and a publish timestamp, readable
//! by the analyzer, by other MQTT clients and by a person looking at `mosquitto_sub -v` output.
//!
//! ```text
//! lc1/<seq>/<pub_ts_us>/<padding>
//! ```
//!
//! - `lc1` names the format and its version;
//! - `<seq>`: decimal sequence number, per topic, starting at 1;
//! - `<pub_ts_us>`: decimal Unix time in microseconds at which the publisher created the message
//!   (the clock every linecut component shares);
//! - `<padding>`: `.` characters up to the requested payload size (none if the header alone is
//!   already that long).
//!
//! Example: `lc1/42/1764110000123456/........`. A regular expression that extracts both fields:
//! `^lc1/(\d+)/(\d+)/`. ASCII only and no newline, so line-oriented tools print one message per
//! line. The 2014 experiment this project grew from put the Unix time first in its CSV payloads
//! for the same reason: the hole in the data is read off the publish times.

/// What a payload in linecut's format says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    pub seq: u64,
    pub pub_ts_us: i64,
}

const PREFIX: &[u8] = b"lc1/";

/// Builds a payload of at least `size` bytes.
pub fn encode(stamp: Stamp, size: usize) -> Vec<u8> {
    let mut payload = format!("lc1/{}/{}/", stamp.seq, stamp.pub_ts_us).into_bytes();
    if payload.len() < size {
        payload.resize(size, b'.');
    }
    payload
}

/// Reads a payload; `None` if it is not in linecut's format (a "foreign" payload).
pub fn decode(payload: &[u8]) -> Option<Stamp> {
    let rest = payload.strip_prefix(PREFIX)?;
    let (seq, rest) = number(rest)?;
    let (ts, _) = number(rest)?;
    Some(Stamp {
        seq,
        pub_ts_us: i64::try_from(ts).ok()?,
    })
}

/// A decimal number terminated by `/`.
fn number(bytes: &[u8]) -> Option<(u64, &[u8])> {
    let end = bytes.iter().position(|&b| b == b'/')?;
    let digits = &bytes[..end];
    if digits.is_empty() || digits.len() > 20 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    // All ASCII digits, so the only possible failure is overflow.
    let value = std::str::from_utf8(digits).ok()?.parse().ok()?;
    Some((value, &bytes[end + 1..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_round_trip_and_are_padded_to_size() {
        let stamp = Stamp {
            seq: 42,
            pub_ts_us: 1_764_110_000_123_456,
        };
        let p = encode(stamp, 64);
        assert_eq!(p.len(), 64);
        assert!(p.starts_with(b"lc1/42/1764110000123456/...."));
        assert_eq!(decode(&p), Some(stamp));
        let short = encode(stamp, 1);
        assert_eq!(short, b"lc1/42/1764110000123456/");
        assert_eq!(decode(&short), Some(stamp));
    }

    #[test]
    fn foreign_and_damaged_payloads_are_not_misread() {
        for p in [
            &b""[..],
            b"hello",
            b"lc1/",
            b"lc1/12",
            b"lc1/12/",
            b"lc1/x/1/",
            b"lc1/1/-5/",
            b"lc2/1/2/",
            b"lc1/99999999999999999999999/1/",
            b"1419926642, 1767, 1433, 2513, 0",
        ] {
            assert_eq!(decode(p), None, "{}", String::from_utf8_lossy(p));
        }
    }
}
