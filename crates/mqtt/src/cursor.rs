//! Bounds-checked reading of MQTT's primitive types from a byte slice.
//!
//! Every accessor returns `None` instead of indexing out of range; packet parsers turn `None` into
//! [`crate::Malformed::Truncated`] with the packet's name. Keeping all slicing here is what makes
//! the "never panics" promise checkable in one place.

use crate::header::read_varint;

#[derive(Debug, Clone, Copy)]
pub(crate) struct Cursor<'a> {
    bytes: &'a [u8],
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Cursor { bytes }
    }

    pub(crate) fn remaining(&self) -> usize {
        self.bytes.len()
    }

    pub(crate) fn rest(&self) -> &'a [u8] {
        self.bytes
    }

    pub(crate) fn u8(&mut self) -> Option<u8> {
        let (&first, rest) = self.bytes.split_first()?;
        self.bytes = rest;
        Some(first)
    }

    pub(crate) fn u16(&mut self) -> Option<u16> {
        let bytes = self.take(2)?;
        Some(u16::from_be_bytes([bytes[0], bytes[1]]))
    }

    pub(crate) fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.bytes.len() {
            return None;
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Some(head)
    }

    /// Two-byte length followed by that many bytes.
    pub(crate) fn binary(&mut self) -> Option<&'a [u8]> {
        let len = self.u16()? as usize;
        self.take(len)
    }

    /// Variable byte integer (1 to 4 bytes).
    pub(crate) fn varint(&mut self) -> Option<u32> {
        let (value, used) = read_varint(self.bytes).ok()??;
        self.bytes = &self.bytes[used..];
        Some(value)
    }
}
