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
const ETHERTYPE_ARP: u16 = 0x0806;
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

/// Neighbour resolution on the link: a host asking who has an address (an ARP request, or an
/// IPv6 neighbour solicitation) — what a kernel sends before it can put a packet on the link,
/// and all it sends when the neighbour stays silent (an attempt that dies in neighbour
/// resolution never leaves as TCP) — or the answer (ARP reply, neighbour advertisement).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NeighbourRequest {
    /// Who sent it: the asking host, or for an answer the host answering.
    pub sender: IpAddr,
    /// For a request, the address to resolve; for an answer, the host that asked.
    pub target: IpAddr,
    pub reply: bool,
}

/// The ethertype and payload of a frame, past any VLAN tags; `None` for link types without one.
fn ethertype_payload(linktype: i32, data: &[u8]) -> Option<(u16, &[u8])> {
    match linktype {
        LINKTYPE_ETHERNET => {
            let mut at = 12;
            let mut ethertype = be16(data, at)?;
            while matches!(ethertype, ETHERTYPE_VLAN | ETHERTYPE_QINQ) {
                at += 4;
                ethertype = be16(data, at)?;
            }
            Some((ethertype, data.get(at + 2..)?))
        }
        LINKTYPE_LINUX_SLL => Some((be16(data, 14)?, data.get(16..)?)),
        LINKTYPE_LINUX_SLL2 => Some((be16(data, 0)?, data.get(20..)?)),
        _ => None,
    }
}

/// The neighbour request or answer in a frame, if it is one.
pub fn neighbour_request(linktype: i32, data: &[u8]) -> Option<NeighbourRequest> {
    if let Some((ETHERTYPE_ARP, arp)) = ethertype_payload(linktype, data) {
        // Ethernet/IPv4 ARP only (hardware type 1, protocol 0x0800, lengths 6 and 4); opcode 1
        // is a request, 2 a reply.
        let fixed = (be16(arp, 0)?, be16(arp, 2)?, arp.get(4)?, arp.get(5)?);
        let opcode = be16(arp, 6)?;
        if fixed != (1, ETHERTYPE_IPV4, &6, &4) || !matches!(opcode, 1 | 2) {
            return None;
        }
        let ip = |at: usize| -> Option<IpAddr> {
            let b: [u8; 4] = arp.get(at..at + 4)?.try_into().ok()?;
            Some(IpAddr::from(b))
        };
        return Some(NeighbourRequest {
            sender: ip(14)?,
            target: ip(24)?,
            reply: opcode == 2,
        });
    }
    // IPv6: ICMPv6 type 135 (solicitation) or 136 (advertisement) straight after a 40-byte
    // header (they carry no extension headers in practice). A solicitation's target address
    // follows 8 bytes of ICMPv6 header; an advertisement answers the packet's destination.
    let ip = ip_packet(linktype, data)?;
    if ip.first()? >> 4 != 6 || *ip.get(6)? != 58 || !matches!(ip.get(40)?, 135 | 136) {
        return None;
    }
    let addr = |at: usize| -> Option<IpAddr> {
        let b: [u8; 16] = ip.get(at..at + 16)?.try_into().ok()?;
        Some(IpAddr::from(b))
    };
    let reply = ip[40] == 136;
    Some(NeighbourRequest {
        sender: addr(8)?,
        target: if reply { addr(24)? } else { addr(48)? },
        reply,
    })
}

/// The IP packet inside a frame of `linktype`; `None` for anything that is not IP.
pub fn ip_packet(linktype: i32, data: &[u8]) -> Option<&[u8]> {
    let by_ethertype = |ethertype: u16, payload: &'_ [u8]| -> bool {
        matches!(ethertype, ETHERTYPE_IPV4 | ETHERTYPE_IPV6) && !payload.is_empty()
    };
    match linktype {
        LINKTYPE_ETHERNET | LINKTYPE_LINUX_SLL | LINKTYPE_LINUX_SLL2 => {
            let (ethertype, payload) = ethertype_payload(linktype, data)?;
            by_ethertype(ethertype, payload).then_some(payload)
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

#[cfg(test)]
mod tests {
    use super::*;

    /// An ARP request as a Linux kernel sends it: broadcast, sender 10.0.0.2 asking for 10.0.0.1.
    fn arp_request(opcode: u16) -> Vec<u8> {
        let mut f = vec![0xff; 6];
        f.extend([2, 0, 0, 0, 0, 2]);
        f.extend(ETHERTYPE_ARP.to_be_bytes());
        f.extend([0, 1, 8, 0, 6, 4]);
        f.extend(opcode.to_be_bytes());
        f.extend([2, 0, 0, 0, 0, 2, 10, 0, 0, 2]);
        f.extend([0; 6]);
        f.extend([10, 0, 0, 1]);
        f
    }

    #[test]
    fn arp_requests_and_replies_are_told_apart() {
        let r = neighbour_request(LINKTYPE_ETHERNET, &arp_request(1)).unwrap();
        assert_eq!(r.sender, "10.0.0.2".parse::<IpAddr>().unwrap());
        assert_eq!(r.target, "10.0.0.1".parse::<IpAddr>().unwrap());
        assert!(!r.reply);
        assert!(
            neighbour_request(LINKTYPE_ETHERNET, &arp_request(2))
                .unwrap()
                .reply
        );
        assert_eq!(neighbour_request(LINKTYPE_ETHERNET, &arp_request(3)), None);
        // Cut short anywhere: no request, no panic.
        let full = arp_request(1);
        for n in 0..full.len() {
            assert_eq!(
                neighbour_request(LINKTYPE_ETHERNET, &full[..n]),
                None,
                "{n}"
            );
        }
        assert_eq!(ip_packet(LINKTYPE_ETHERNET, &full), None);
    }

    #[test]
    fn ipv6_solicitations_and_advertisements_are_neighbour_resolution() {
        let mut ip = vec![0x60, 0, 0, 0, 0, 32, 58, 255];
        ip.extend([0xfe, 0x80].iter().chain(&[0; 13]).chain(&[2]));
        ip.extend([0xff, 2].iter().chain(&[0; 9]).chain(&[1, 0xff, 0, 0, 1]));
        ip.extend([135, 0, 0, 0, 0, 0, 0, 0]);
        ip.extend([0xfe, 0x80].iter().chain(&[0; 13]).chain(&[1]));
        let r = neighbour_request(LINKTYPE_RAW, &ip).unwrap();
        assert_eq!(r.sender, "fe80::2".parse::<IpAddr>().unwrap());
        assert_eq!(r.target, "fe80::1".parse::<IpAddr>().unwrap());
        assert!(!r.reply);
        ip[40] = 136; // an advertisement answers whoever the packet goes to
        let a = neighbour_request(LINKTYPE_RAW, &ip).unwrap();
        assert!(a.reply);
        assert_eq!(a.target, "ff02::1:ff00:1".parse::<IpAddr>().unwrap());
        ip[40] = 128; // an echo request is not neighbour resolution
        assert_eq!(neighbour_request(LINKTYPE_RAW, &ip), None);
    }
}
