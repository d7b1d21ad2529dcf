//! Fuzz target: the whole capture pipeline (pcap/pcapng container, link layers, IP, TCP
//! reassembly, MQTT decoding) on arbitrary file contents. It must never panic, every reported
//! packet must lie within the bytes it came from, every observation must name a frame the file
//! has (in order), and a file that is not a capture must be an
//! error rather than an empty success.
#![no_main]

use libfuzzer_sys::fuzz_target;
use linecut_capture::{read_mqtt, Observation};
use std::io::Write;

fuzz_target!(|data: &[u8]| {
    let path = std::env::temp_dir().join(format!("linecut-fuzz-capture-{}", std::process::id()));
    let mut file = std::fs::File::create(&path).unwrap();
    file.write_all(data).unwrap();
    drop(file);
    let mut packets = 0usize;
    let mut last_frame = 0u64;
    if let Ok(summary) = read_mqtt(&path, 1883, |o| {
        let frame = match o {
            Observation::Packet { len, frame, .. } => {
                assert!(len >= 2);
                packets += 1;
                frame
            }
            Observation::Opened { frame, .. }
            | Observation::Malformed { frame, .. }
            | Observation::Gap { frame, .. }
            | Observation::Resent { frame, .. }
            | Observation::Closed { frame, .. }
            | Observation::Ended { frame, .. }
            | Observation::Neighbour { frame, .. } => frame,
            Observation::Quiet {
                frame,
                ts_us,
                since_us,
                ..
            } => {
                // A silence is at least a second, and ends with the frame that broke it.
                assert!(ts_us - since_us >= linecut_capture::flows::QUIET_US);
                frame
            }
        };
        // Frames are cited by number: each names a frame the file has, in file order.
        assert!(frame >= 1 && frame >= last_frame);
        last_frame = frame;
    }) {
        assert!(summary.read.bytes as usize <= data.len());
        assert!(packets as u64 == summary.flows.mqtt_packets);
        assert!(last_frame <= summary.read.frames);
    }
});
