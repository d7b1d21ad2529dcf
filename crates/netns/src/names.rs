//! The run id and every name derived from it. Linux limits interface names to 15 bytes, so the
//! id is short: `lc` and eight hex digits, then a role and the subscriber's number.

use std::fmt;

/// The prefix of everything a namespace run creates.
pub const PREFIX: &str = "lc";

/// A namespace run's id: eight hex digits, distinct per run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RunId(pub u32);

impl RunId {
    /// A fresh id from the time and the process id.
    pub fn fresh() -> RunId {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let mut x = nanos ^ (u64::from(std::process::id()) << 32);
        x = (x ^ (x >> 33)).wrapping_mul(0xff51_afd7_ed55_8ccd);
        x ^= x >> 33;
        RunId(x as u32)
    }

    /// Reads an id back from a name linecut gave (`lc1a2b3c4d…`), if it is one.
    pub fn from_name(name: &str) -> Option<RunId> {
        let hex = name.strip_prefix(PREFIX)?.get(..8)?;
        if !hex
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        {
            return None;
        }
        u32::from_str_radix(hex, 16).ok().map(RunId)
    }

    /// The bridge on the host, where the broker listens.
    pub fn bridge(self) -> String {
        format!("{self}br")
    }

    /// Subscriber `n`'s namespace.
    pub fn netns(self, n: u32) -> String {
        format!("{self}n{n}")
    }

    /// The host end of subscriber `n`'s pair.
    pub fn veth_host(self, n: u32) -> String {
        format!("{self}h{n}")
    }

    /// Subscriber `n`'s TAP on the bridge, when linecut is its wire ([`crate::wire`]).
    pub fn tap(self, n: u32) -> String {
        format!("{self}t{n}")
    }

    /// The namespace end of subscriber `n`'s pair.
    pub fn veth_ns(self, n: u32) -> String {
        format!("{self}c{n}")
    }

    /// The nftables table (family `netdev`, and `inet` for rejects) the run's rules live in,
    /// on the host and in every namespace.
    pub fn table(self) -> String {
        self.to_string()
    }
}

impl fmt::Display for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{PREFIX}{:08x}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fit_linux_limits_and_read_back() {
        let id = RunId(0xdead_beef);
        for name in [
            id.bridge(),
            id.veth_host(999),
            id.veth_ns(999),
            id.netns(999),
        ] {
            assert!(name.len() <= 15, "{name}");
            assert_eq!(RunId::from_name(&name), Some(id), "{name}");
        }
        assert_eq!(RunId::from_name("lo"), None);
        assert_eq!(RunId::from_name("lcZZZZZZZZbr"), None);
        assert_ne!(RunId::fresh(), RunId::fresh());
    }
}
