//! From a frame to a TCP segment: strip the link layer by link type, then parse IP and TCP.
//!
//! Link headers are stripped here rather than by etherparse because it knows Ethernet and Linux
//! SLL but not SLL2 (what `tcpdump -i any` writes) or BSD NULL/LOOP; IP and TCP are parsed by
//! etherparse's lax slicer, which accepts truncated packets (a snapped frame still yields the
//! bytes it has).

use etherparse::{LaxNetSlice, LaxSlicedPacket, TransportSlice};
use std::net::{IpAddr, SocketAddr};

pub const LINKTYPE_NULL: i32 = 0;
pub const LINKTYPE_ETHERNET: i32 = 1;
pub const LINKTYPE_RAW: i32 = 101;
pub const LINKTYPE_LOOP: i32 = 108;
pub const LINKTYPE_LINUX_SLL: i32 = 113;
pub const LINKTYPE_IPV4: i32 = 228;
pub const LINKTYPE_IPV6: i32 = 229;
pub const LINKTYPE_LINUX_SLL2: i32 = 276;

const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86dd;
const ETHERTYPE_VLAN: u16 = 0x8100;
const ETHERTYPE_QINQ: u16 = 0x88a8;

/// A TCP segment as captured.
#[derive(Debug, Clone, Copy)]
pub struct Segment<'a> {
    pub src: SocketAddr,
    pub dst: SocketAddr,
    pub seq: u32,
    pub syn: bool,
    pub fin: bool,
    pub rst: bool,
    /// The payload bytes the capture has.
    pub payload: &'a [u8],
}

fn be16(data: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*data.get(at)?, *data.get(at + 1)?]))
}

/// The IP packet inside a frame of `linktype`; `None` for anything that is not IP.
pub fn ip_packet(linktype: i32, data: &[u8]) -> Option<&[u8]> {
    let by_ethertype = |ethertype: u16, payload: &'_ [u8]| -> bool {
        matches!(ethertype, ETHERTYPE_IPV4 | ETHERTYPE_IPV6) && !payload.is_empty()
    };
    match linktype {
        LINKTYPE_ETHERNET => {
            let mut at = 12;
            let mut ethertype = be16(data, at)?;
            while matches!(ethertype, ETHERTYPE_VLAN | ETHERTYPE_QINQ) {
                at += 4;
                ethertype = be16(data, at)?;
            }
            let payload = data.get(at + 2..)?;
            by_ethertype(ethertype, payload).then_some(payload)
        }
        LINKTYPE_LINUX_SLL => {
            let payload = data.get(16..)?;
            by_ethertype(be16(data, 14)?, payload).then_some(payload)
        }
        LINKTYPE_LINUX_SLL2 => {
            let payload = data.get(20..)?;
            by_ethertype(be16(data, 0)?, payload).then_some(payload)
        }
        LINKTYPE_NULL | LINKTYPE_LOOP => {
            // The address family in the capturing host's byte order (NULL) or big-endian (LOOP):
            // 2 is IPv4; 24, 28 and 30 are IPv6 on the BSDs and macOS.
            let raw: [u8; 4] = data.get(..4)?.try_into().ok()?;
            let family = if linktype == LINKTYPE_LOOP {
                u32::from_be_bytes(raw)
            } else {
                let le = u32::from_le_bytes(raw);
                if le < 0x1_0000 {
                    le
                } else {
                    u32::from_be_bytes(raw)
                }
            };
            matches!(family, 2 | 24 | 28 | 30).then(|| &data[4..])
        }
        LINKTYPE_RAW | LINKTYPE_IPV4 | LINKTYPE_IPV6 | 12 | 14 => {
            matches!(data.first()? >> 4, 4 | 6).then_some(data)
        }
        _ => None,
    }
}

/// The TCP segment in an IP packet; `None` for other protocols and unparseable packets.
pub fn tcp_segment(ip: &[u8]) -> Option<Segment<'_>> {
    let packet = LaxSlicedPacket::from_ip(ip).ok()?;
    let (src_ip, dst_ip): (IpAddr, IpAddr) = match packet.net.as_ref()? {
        LaxNetSlice::Ipv4(v4) => (
            v4.header().source_addr().into(),
            v4.header().destination_addr().into(),
        ),
        LaxNetSlice::Ipv6(v6) => (
            v6.header().source_addr().into(),
            v6.header().destination_addr().into(),
        ),
        LaxNetSlice::Arp(_) => return None,
    };
    let TransportSlice::Tcp(tcp) = packet.transport? else {
        return None;
    };
    Some(Segment {
        src: SocketAddr::new(src_ip, tcp.source_port()),
        dst: SocketAddr::new(dst_ip, tcp.destination_port()),
        seq: tcp.sequence_number(),
        syn: tcp.syn(),
        fin: tcp.fin(),
        rst: tcp.rst(),
        payload: tcp.payload(),
    })
}
