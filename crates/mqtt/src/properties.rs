//! MQTT 5 property blocks: walked property by property (each identifier fixes its value's
//! type, MQTT 5.0 §2.2.2.2), keeping the few that decide how a session behaves under faults
//! and skipping the rest. An identifier the specification does not define makes the block
//! malformed: its value's length cannot be known, so nothing after it can be read.

use crate::cursor::Cursor;
use crate::Malformed;

/// The session-shaping properties of a CONNECT, a will or a CONNACK (absent: not sent).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Properties {
    /// Session Expiry Interval (0x11), seconds: CONNECT and CONNACK (and DISCONNECT).
    pub session_expiry_s: Option<u32>,
    /// Receive Maximum (0x21): CONNECT and CONNACK.
    pub receive_maximum: Option<u16>,
    /// Will Delay Interval (0x18), seconds: a CONNECT's will properties.
    pub will_delay_s: Option<u32>,
    /// Server Keep Alive (0x13), seconds: CONNACK, the keepalive the broker grants.
    pub server_keepalive_s: Option<u16>,
}

/// How a property's value is encoded.
#[derive(Clone, Copy)]
enum Value {
    Byte,
    Two,
    Four,
    VarInt,
    /// A UTF-8 string or binary data: two-byte length, then the bytes.
    Binary,
    /// Two strings (User Property).
    Pair,
}

/// The value type of each identifier MQTT 5.0 defines (§2.2.2.2, table 2-4).
fn value_of(id: u32) -> Option<Value> {
    Some(match id {
        0x01 | 0x17 | 0x19 | 0x24 | 0x25 | 0x28 | 0x29 | 0x2A => Value::Byte,
        0x13 | 0x21 | 0x22 | 0x23 => Value::Two,
        0x02 | 0x11 | 0x18 | 0x27 => Value::Four,
        0x0B => Value::VarInt,
        0x03 | 0x08 | 0x09 | 0x12 | 0x15 | 0x16 | 0x1A | 0x1C | 0x1F => Value::Binary,
        0x26 => Value::Pair,
        _ => return None,
    })
}

/// Reads a property block (its length, then the properties) from `c`.
pub(crate) fn read(c: &mut Cursor<'_>) -> Result<Properties, Malformed> {
    let bad = Malformed::BadProperties;
    let len = c.varint().ok_or(bad)?;
    let mut block = Cursor::new(c.take(len as usize).ok_or(bad)?);
    let mut p = Properties::default();
    while block.remaining() > 0 {
        let id = block.varint().ok_or(bad)?;
        match value_of(id).ok_or(bad)? {
            Value::Byte => {
                block.u8().ok_or(bad)?;
            }
            Value::Two => {
                let v = block.u16().ok_or(bad)?;
                match id {
                    0x13 => p.server_keepalive_s = Some(v),
                    0x21 => p.receive_maximum = Some(v),
                    _ => {}
                }
            }
            Value::Four => {
                let b = block.take(4).ok_or(bad)?;
                let v = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
                match id {
                    0x11 => p.session_expiry_s = Some(v),
                    0x18 => p.will_delay_s = Some(v),
                    _ => {}
                }
            }
            Value::VarInt => {
                block.varint().ok_or(bad)?;
            }
            Value::Binary => {
                block.binary().ok_or(bad)?;
            }
            Value::Pair => {
                block.binary().ok_or(bad)?;
                block.binary().ok_or(bad)?;
            }
        }
    }
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(bytes: &[u8]) -> Result<Properties, Malformed> {
        read(&mut Cursor::new(bytes))
    }

    #[test]
    fn the_session_properties_are_kept_and_the_others_skipped() {
        let block = [
            18, // length
            0x11, 0, 0, 0, 30, // session expiry 30 s
            0x21, 0, 10, // receive maximum 10
            0x26, 0, 1, b'k', 0, 1, b'v', // a user property, skipped
            0x13, 0, 5, // server keep alive 5 s
        ];
        let p = read_all(&block).unwrap();
        assert_eq!(p.session_expiry_s, Some(30));
        assert_eq!(p.receive_maximum, Some(10));
        assert_eq!(p.server_keepalive_s, Some(5));
        assert_eq!(p.will_delay_s, None);
        assert_eq!(read_all(&[0]).unwrap(), Properties::default());
    }

    #[test]
    fn an_unknown_identifier_or_a_short_value_is_malformed() {
        assert_eq!(read_all(&[2, 0x7f, 0]), Err(Malformed::BadProperties));
        assert_eq!(read_all(&[3, 0x18, 0, 0]), Err(Malformed::BadProperties));
        assert_eq!(read_all(&[9, 0x18]), Err(Malformed::BadProperties));
    }
}
