//! The frames of a capture a report may cite.
//!
//! Every claim a report makes about the wire — a SYN and its retries, a FIN, an RST, a
//! retransmission, stale data arriving, a neighbour request that got no answer — names the
//! frame of the capture that shows it (Wireshark's `frame.number`, counted from 1 over every
//! frame of the file), its sender and its time, so a reader can jump to it and a test can check
//! it against tshark's reading of the same file. The ledger keeps only these few kinds of
//! frame, per connection, so it grows with connections and outages, not with traffic.

use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::net::IpAddr;

/// Which side of the MQTT connection sent a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Sender {
    Client,
    Broker,
}

impl Sender {
    pub fn name(self) -> &'static str {
        match self {
            Sender::Client => "client",
            Sender::Broker => "broker",
        }
    }
}

/// What a cited frame was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WireSign {
    /// A connection's first SYN.
    Syn,
    /// The same SYN sent again by the kernel (no answer yet).
    SynRetry,
    Fin,
    Rst,
    /// A segment repeating bytes its sender had sent before.
    Retransmission,
    /// A PUBLISH that reached a connection its client had left.
    StalePublish,
    /// An ARP request or IPv6 neighbour solicitation.
    NeighbourRequest,
    /// An ARP reply or IPv6 neighbour advertisement.
    NeighbourReply,
}

impl WireSign {
    pub fn name(self) -> &'static str {
        match self {
            WireSign::Syn => "SYN",
            WireSign::SynRetry => "SYN retry",
            WireSign::Fin => "FIN",
            WireSign::Rst => "RST",
            WireSign::Retransmission => "retransmission",
            WireSign::StalePublish => "PUBLISH",
            WireSign::NeighbourRequest => "neighbour request",
            WireSign::NeighbourReply => "neighbour reply",
        }
    }
}

/// One frame a report cites.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CitedFrame {
    /// Its number in the capture file, from 1.
    pub frame: u64,
    pub ts_us: i64,
    pub sender: Sender,
    /// The sender's address (for a neighbour request, the address it asked from).
    pub src: IpAddr,
    /// The sender's TCP port; none for a neighbour request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    pub sign: WireSign,
    /// For neighbour resolution: the address asked for (request) or the host answered (reply).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<IpAddr>,
    /// Payload bytes of a retransmission.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub bytes: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// The citable frames of a capture: per connection, and the neighbour requests (which belong
/// to no connection).
#[derive(Debug, Default, Clone)]
pub struct FrameLedger {
    conns: HashMap<u64, Vec<CitedFrame>>,
    neighbour: Vec<CitedFrame>,
}

impl FrameLedger {
    pub fn push(&mut self, conn: u64, frame: CitedFrame) {
        self.conns.entry(conn).or_default().push(frame);
    }

    /// Drops a connection's frames (one the report no longer describes).
    pub fn forget(&mut self, conn: u64) {
        self.conns.remove(&conn);
    }

    pub fn push_neighbour(&mut self, frame: CitedFrame) {
        self.neighbour.push(frame);
    }

    /// Takes over another ledger's frames (a namespace run's capture into the run).
    pub fn extend(&mut self, other: FrameLedger) {
        for (conn, frames) in other.conns {
            self.conns.entry(conn).or_default().extend(frames);
        }
        self.neighbour.extend(other.neighbour);
    }

    /// The frame of `conn` that showed `sign` at `ts_us`, if the capture has one: how a time
    /// the analysis chose is turned back into the frame that proves it.
    pub fn at(&self, conn: u64, sender: Sender, sign: WireSign, ts_us: i64) -> Option<CitedFrame> {
        self.conns
            .get(&conn)?
            .iter()
            .find(|f| f.sender == sender && f.sign == sign && f.ts_us == ts_us)
            .copied()
    }

    /// Every frame of `conn` showing one of `signs` in `[from, until)`, in capture order.
    pub fn during<'a>(
        &'a self,
        conn: u64,
        signs: &'a [WireSign],
        from: i64,
        until: i64,
    ) -> impl Iterator<Item = CitedFrame> + 'a {
        self.conns
            .get(&conn)
            .into_iter()
            .flatten()
            .filter(move |f| signs.contains(&f.sign) && f.ts_us >= from && f.ts_us < until)
            .copied()
    }

    /// The neighbour requests `ip` sent in `[from, until)`, in capture order.
    pub fn neighbour_requests(
        &self,
        ip: IpAddr,
        from: i64,
        until: i64,
    ) -> impl Iterator<Item = CitedFrame> + '_ {
        self.neighbour
            .iter()
            .filter(move |f| {
                f.sign == WireSign::NeighbourRequest
                    && f.src == ip
                    && f.ts_us >= from
                    && f.ts_us < until
            })
            .copied()
    }

    /// Whether `ip` got an answer to its neighbour resolution in `[from, until)`.
    pub fn neighbour_answered(&self, ip: IpAddr, from: i64, until: i64) -> bool {
        self.neighbour.iter().any(|f| {
            f.sign == WireSign::NeighbourReply
                && f.to == Some(ip)
                && f.ts_us >= from
                && f.ts_us < until
        })
    }
}

/// A kernel's neighbour resolution: requests spaced by its retransmit time (Linux's
/// `retrans_time_ms`, 1 s by default, `mcast_solicit` 3 of them), then it gives up and drops
/// what waited. Requests closer than this to the one before belong to the same resolution; a
/// longer silence means a new packet needed the neighbour again.
pub const RESOLUTION_GAP_US: i64 = 1_500_000;

/// The requests grouped into resolutions (each a run of requests less than
/// [`RESOLUTION_GAP_US`] apart), as the time of each resolution's first request.
pub fn resolutions(requests: &[CitedFrame]) -> Vec<i64> {
    let mut out = Vec::new();
    let mut last: Option<i64> = None;
    for r in requests {
        if last.is_none_or(|l| r.ts_us - l >= RESOLUTION_GAP_US) {
            out.push(r.ts_us);
        }
        last = Some(r.ts_us);
    }
    out
}

/// How a report names frames: "frame 175", "frames 170, 171", or for many the first few, the
/// last and the count.
pub fn cite<'a>(frames: impl IntoIterator<Item = &'a CitedFrame>) -> Option<String> {
    let numbers: Vec<u64> = frames.into_iter().map(|f| f.frame).collect();
    let list = |ns: &[u64]| ns.iter().map(u64::to_string).collect::<Vec<_>>().join(", ");
    match numbers.as_slice() {
        [] => None,
        [one] => Some(format!("frame {one}")),
        few if few.len() <= 6 => Some(format!("frames {}", list(few))),
        many => Some(format!(
            "frames {} … {} ({} in all)",
            list(&many[..4]),
            many[many.len() - 1],
            many.len()
        )),
    }
}

/// The frames of `frames` from `sender` showing `sign`.
pub fn of(frames: &[CitedFrame], sender: Sender, sign: WireSign) -> Vec<&CitedFrame> {
    frames
        .iter()
        .filter(|f| f.sender == sender && f.sign == sign)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(n: u64, ts_us: i64, sign: WireSign) -> CitedFrame {
        CitedFrame {
            frame: n,
            ts_us,
            sender: Sender::Client,
            src: "10.0.0.2".parse().unwrap(),
            port: None,
            sign,
            to: None,
            bytes: 0,
        }
    }

    #[test]
    fn frames_are_cited_by_number_and_long_lists_are_shortened() {
        let f: Vec<CitedFrame> = (1..=9).map(|n| frame(n * 10, 0, WireSign::Syn)).collect();
        assert_eq!(cite(&f[..1]).unwrap(), "frame 10");
        assert_eq!(cite(&f[..3]).unwrap(), "frames 10, 20, 30");
        assert_eq!(cite(&f).unwrap(), "frames 10, 20, 30, 40 … 90 (9 in all)");
        assert_eq!(cite(&f[..0]), None);
    }

    /// Linux asks three times a second apart, then gives up: requests 3 s after the last one
    /// start a new resolution.
    #[test]
    fn requests_a_second_apart_are_one_resolution() {
        let r = [0, 1_000_000, 2_000_000, 5_000_000, 6_000_000, 13_000_000]
            .iter()
            .enumerate()
            .map(|(i, t)| frame(i as u64 + 1, *t, WireSign::NeighbourRequest))
            .collect::<Vec<_>>();
        assert_eq!(resolutions(&r), [0, 5_000_000, 13_000_000]);
    }
}
