//! The proxy's pcap writer read back by the capture reader: connections, MQTT packets in both
//! directions, segments larger than one frame, FIN and RST; link-layer stripping for every link
//! type linecut reads; truncated and corrupt files read as far as they go.

use linecut_capture::link::{self, ip_packet, tcp_segment};
use linecut_capture::{read_mqtt, LegSide, Observation, PcapTap, Side};
use linecut_events::Direction;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

fn temp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("linecut-capture-{}-{name}", std::process::id()))
}

const CONNACK: &[u8] = &[0x20, 0x02, 0x00, 0x00];
const PINGREQ: &[u8] = &[0xc0, 0x00];
const PINGRESP: &[u8] = &[0xd0, 0x00];

fn publish(payload_len: usize) -> Vec<u8> {
    linecut_mqtt::encode::publish("t/x", &vec![b'.'; payload_len])
}

/// Writes one proxied connection (client leg and upstream leg) and returns the file.
fn write_sample(name: &str) -> PathBuf {
    let path = temp(name);
    let tap = PcapTap::create(&path).unwrap();
    let client: SocketAddr = "127.0.0.1:40001".parse().unwrap();
    let proxy: SocketAddr = "127.0.0.1:11883".parse().unwrap();
    let out: SocketAddr = "127.0.0.1:40002".parse().unwrap();
    let broker: SocketAddr = "127.0.0.1:1883".parse().unwrap();
    let t = 1_700_000_000_000_000;
    tap.open(1, LegSide::Client, client, proxy, t);
    let connect = linecut_mqtt::encode::connect("dev-01", 60);
    tap.data(1, LegSide::Client, true, &connect, t + 10);
    tap.open(1, LegSide::Upstream, out, broker, t + 20);
    tap.data(1, LegSide::Upstream, true, &connect, t + 30);
    tap.data(1, LegSide::Upstream, false, CONNACK, t + 40);
    tap.data(1, LegSide::Client, false, CONNACK, t + 50);
    // A PUBLISH bigger than one synthesised segment.
    let big = publish(150_000);
    tap.data(1, LegSide::Upstream, false, &big, t + 60);
    tap.data(1, LegSide::Client, false, &big, t + 70);
    tap.data(1, LegSide::Client, true, PINGREQ, t + 80);
    tap.data(1, LegSide::Upstream, true, PINGREQ, t + 90);
    tap.data(1, LegSide::Upstream, false, PINGRESP, t + 100);
    tap.data(1, LegSide::Client, false, PINGRESP, t + 110);
    tap.close(1, LegSide::Client, true, false, t + 120);
    tap.close(1, LegSide::Upstream, true, true, t + 130);
    tap.finish().unwrap();
    path
}

/// Packets (connection, direction, type), closes (connection, side, RST) and the summary.
type Read = (
    Vec<(u64, Direction, String)>,
    Vec<(u64, Side, bool)>,
    linecut_capture::CaptureSummary,
);

fn packets(path: &Path, port: u16) -> Read {
    let mut seen = Vec::new();
    let mut closed = Vec::new();
    let summary = read_mqtt(path, port, |o| match o {
        Observation::Packet {
            conn, dir, packet, ..
        } => seen.push((conn, dir, packet.packet_type().name().to_string())),
        Observation::Closed { conn, by, rst, .. } => closed.push((conn, by, rst)),
        _ => {}
    })
    .unwrap();
    (seen, closed, summary)
}

#[test]
fn both_legs_read_back_packet_for_packet() {
    let path = write_sample("legs.pcap");
    let names = |list: &[(u64, Direction, String)]| -> Vec<String> {
        list.iter()
            .map(|(_, d, t)| format!("{t} {}", d.as_str()))
            .collect()
    };
    let expected = [
        "CONNECT up",
        "CONNACK down",
        "PUBLISH down",
        "PINGREQ up",
        "PINGRESP down",
    ];
    let (client_leg, closed, summary) = packets(&path, 11883);
    assert_eq!(names(&client_leg), expected);
    assert_eq!(closed, vec![(1, Side::Client, false)]);
    assert_eq!(summary.flows.stream.gaps, 0);
    assert_eq!(summary.read.container, "pcap");
    let (upstream_leg, closed, _) = packets(&path, 1883);
    assert_eq!(names(&upstream_leg), expected);
    assert_eq!(closed, vec![(1, Side::Client, true)]);
}

#[test]
fn truncated_and_foreign_files_are_read_as_far_as_they_go() {
    let path = write_sample("truncated.pcap");
    let bytes = std::fs::read(&path).unwrap();
    // Cut inside the big PUBLISH: the handshake and CONNECT/CONNACK are still there.
    let cut = temp("cut.pcap");
    std::fs::write(&cut, &bytes[..bytes.len() / 3]).unwrap();
    let (seen, _, summary) = packets(&cut, 11883);
    assert!(seen.len() >= 2, "{seen:?}");
    let stopped = summary.read.stopped.expect("a truncated file says so");
    assert!(stopped.contains("truncated"), "{stopped}");
    let junk = temp("junk.pcap");
    std::fs::write(&junk, b"this is not a capture at all, just text\n").unwrap();
    let err = read_mqtt(&junk, 1883, |_| {}).unwrap_err().to_string();
    assert!(err.contains("not a capture file"), "{err}");
    std::fs::write(&junk, b"").unwrap();
    assert!(read_mqtt(&junk, 1883, |_| {}).is_err());
}

/// An IPv4/TCP packet carrying `payload` from port 40000 to 1883.
fn ipv4_tcp(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    etherparse::PacketBuilder::ipv4([127, 0, 0, 1], [127, 0, 0, 1], 64)
        .tcp(40000, 1883, 1000, 65535)
        .psh()
        .write(&mut out, payload)
        .unwrap();
    out
}

#[test]
fn every_link_type_leads_to_the_same_segment() {
    let ip = ipv4_tcp(PINGREQ);
    let mut ethernet = vec![0u8; 12];
    ethernet.extend_from_slice(&0x0800u16.to_be_bytes());
    ethernet.extend_from_slice(&ip);
    let mut vlan = vec![0u8; 12];
    vlan.extend_from_slice(&0x8100u16.to_be_bytes());
    vlan.extend_from_slice(&[0, 5]);
    vlan.extend_from_slice(&0x0800u16.to_be_bytes());
    vlan.extend_from_slice(&ip);
    let mut sll = vec![0u8; 14];
    sll.extend_from_slice(&0x0800u16.to_be_bytes());
    sll.extend_from_slice(&ip);
    let mut sll2 = 0x0800u16.to_be_bytes().to_vec();
    sll2.extend_from_slice(&[0u8; 18]);
    sll2.extend_from_slice(&ip);
    let mut null_le = 2u32.to_le_bytes().to_vec();
    null_le.extend_from_slice(&ip);
    let mut null_be = 2u32.to_be_bytes().to_vec();
    null_be.extend_from_slice(&ip);
    let mut lo = 2u32.to_be_bytes().to_vec();
    lo.extend_from_slice(&ip);
    for (linktype, frame) in [
        (link::LINKTYPE_ETHERNET, &ethernet),
        (link::LINKTYPE_ETHERNET, &vlan),
        (link::LINKTYPE_LINUX_SLL, &sll),
        (link::LINKTYPE_LINUX_SLL2, &sll2),
        (link::LINKTYPE_NULL, &null_le),
        (link::LINKTYPE_NULL, &null_be),
        (link::LINKTYPE_LOOP, &lo),
        (link::LINKTYPE_RAW, &ip),
        (link::LINKTYPE_IPV4, &ip),
    ] {
        let inner = ip_packet(linktype, frame).unwrap_or_else(|| panic!("link type {linktype}"));
        let segment = tcp_segment(inner).unwrap();
        assert_eq!(
            (segment.src.port(), segment.dst.port(), segment.seq),
            (40000, 1883, 1000)
        );
        assert_eq!(segment.payload, PINGREQ, "link type {linktype}");
    }
    // ARP over Ethernet, and an unknown link type, are not IP.
    let mut arp = vec![0u8; 12];
    arp.extend_from_slice(&0x0806u16.to_be_bytes());
    arp.extend_from_slice(&[0u8; 28]);
    assert!(ip_packet(link::LINKTYPE_ETHERNET, &arp).is_none());
    assert!(ip_packet(147, &ip).is_none());
}

#[test]
fn ipv6_segments_parse() {
    let mut ip = Vec::new();
    etherparse::PacketBuilder::ipv6([0; 16], [0; 16], 64)
        .tcp(40000, 1883, 7, 65535)
        .write(&mut ip, CONNACK)
        .unwrap();
    let segment = tcp_segment(ip_packet(link::LINKTYPE_IPV6, &ip).unwrap()).unwrap();
    assert!(segment.src.is_ipv6());
    assert_eq!(segment.payload, CONNACK);
}
