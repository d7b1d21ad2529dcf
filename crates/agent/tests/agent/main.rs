//! Agent tests against a real broker (embedded rumqttd) over real sockets, through the real
//! proxy where a fault is involved. Timing checks use the bands the protocol gives: rumqttc
//! detects a silent outage between K and 2K after it starts (see `rig::detection_band`).

mod policies;
mod rig;
mod subscriber;
