//! linecut-capture: MQTT traffic as packets on the wire.
//!
//! - [`describe`]: one MQTT packet as a linecut `mqtt_packet` event (shared by the proxy and the
//!   capture reader, so both describe the wire alike);
//! - [`write`]: the proxy's pcap of both legs of every connection (`linecut proxy --pcap`);
//! - reading captures (`linecut analyze CAPTURE`): [`read`] streams pcap and pcapng frames,
//!   [`link`] strips the link layer (Ethernet, Linux SLL and SLL2, NULL/LOOP, raw IP) and parses
//!   IPv4/IPv6 and TCP, [`reassembly`] rebuilds each direction's byte stream, and [`flows`]
//!   follows the connections to the MQTT port and decodes them with linecut's MQTT decoder.
//!   [`read_mqtt`] also reports every neighbour request (ARP, IPv6 solicitation), so an
//!   attempt that never left as TCP is still seen. It runs the whole pipeline and hands each [`Observation`] to the caller as it
//!   goes, so memory does not grow with the file.

pub mod describe;
pub mod flows;
pub mod link;
pub mod read;
pub mod reassembly;
pub mod write;

pub use describe::describe;
pub use flows::{FlowStats, Observation, Side, WireTotals};
pub use read::ReadSummary;
pub use write::{LegSide, PcapTap, RawPcap};

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: not a capture file: {why}", path.display())]
    NotACapture { path: PathBuf, why: String },
}

/// What reading a capture found, besides the observations.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CaptureSummary {
    pub read: ReadSummary,
    pub flows: FlowStats,
    /// Frames that were not TCP to or from the MQTT port (other traffic, other protocols).
    pub other_frames: u64,
    /// Frames whose link type linecut does not read, by link type.
    pub unknown_linktypes: Vec<i32>,
    pub first_ts_us: Option<i64>,
    pub last_ts_us: Option<i64>,
}

/// Reads the capture at `path` and reports every connection to `port`, in capture order.
pub fn read_mqtt(
    path: &Path,
    port: u16,
    mut out: impl FnMut(Observation<'_>),
) -> Result<CaptureSummary, CaptureError> {
    let mut flows = flows::Flows::new(port);
    let mut summary = CaptureSummary::default();
    let mut last_ts = 0i64;
    let read = read::read_frames(path, |frame| {
        // A frame without a timestamp (pcapng simple packet) keeps the previous one's.
        let ts = if frame.ts_us == 0 {
            last_ts
        } else {
            frame.ts_us
        };
        last_ts = ts;
        summary.first_ts_us.get_or_insert(ts);
        summary.last_ts_us = Some(ts);
        if let Some(request) = link::neighbour_request(frame.linktype, frame.data) {
            summary.other_frames += 1;
            out(Observation::Neighbour {
                ts_us: ts,
                frame: frame.number,
                request,
            });
            return;
        }
        let Some(ip) = link::ip_packet(frame.linktype, frame.data) else {
            summary.other_frames += 1;
            if !is_known_linktype(frame.linktype)
                && !summary.unknown_linktypes.contains(&frame.linktype)
            {
                summary.unknown_linktypes.push(frame.linktype);
            }
            return;
        };
        let Some(segment) = link::tcp_segment(ip) else {
            summary.other_frames += 1;
            return;
        };
        let len = segment.payload.len() + frame.missing as usize;
        let wire_len = frame.data.len() + frame.missing as usize;
        flows.frame(ts, frame.number, wire_len, &segment, len, &mut out);
    })?;
    flows.finish(last_ts, &mut out);
    summary.read = read;
    summary.flows = flows.stats;
    Ok(summary)
}

fn is_known_linktype(linktype: i32) -> bool {
    use link::*;
    matches!(
        linktype,
        LINKTYPE_NULL
            | LINKTYPE_ETHERNET
            | LINKTYPE_RAW
            | LINKTYPE_LOOP
            | LINKTYPE_LINUX_SLL
            | LINKTYPE_IPV4
            | LINKTYPE_IPV6
            | LINKTYPE_LINUX_SLL2
            | 12
            | 14
    )
}
