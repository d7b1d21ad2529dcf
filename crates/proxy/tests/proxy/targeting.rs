//! Direction and target filters: a fault hits only what it names.

use crate::util::*;
use tokio::io::AsyncWriteExt;

#[tokio::test]
async fn a_cut_in_one_direction_leaves_the_other_flowing() {
    let rig = Rig::start().await;
    let (mut client, mut broker) = rig.mqtt_pair("dir").await;
    let cut = rig.fault("cut:dir=up").await;
    client.write_all(&PINGREQ).await.unwrap();
    broker.write_all(&PINGRESP).await.unwrap();
    assert_eq!(
        read_exact(&mut client, 2).await,
        PINGRESP,
        "down still flows"
    );
    assert_silent(&mut broker, "up is cut").await;
    rig.end_fault(cut).await;
    assert_eq!(read_exact(&mut broker, 2).await, PINGREQ);
    rig.stop().await;
}

#[tokio::test]
async fn client_id_targeting_hits_only_matching_clients() {
    let rig = Rig::start().await;
    let (mut sensor, mut sensor_broker) = rig.mqtt_pair("sensor-17").await;
    let (mut other, mut other_broker) = rig.mqtt_pair("dashboard").await;
    rig.fault("reset:target=client=sensor-*").await;
    assert_eq!(read_to_end(&mut sensor).await.0, End::Reset);
    assert_eq!(read_to_end(&mut sensor_broker).await.0, End::Reset);
    other.write_all(&PINGREQ).await.unwrap();
    assert_eq!(read_exact(&mut other_broker, 2).await, PINGREQ);
    rig.stop().await;
}

#[tokio::test]
async fn target_new_spares_connections_opened_before_the_fault() {
    let rig = Rig::start().await;
    let (mut old, mut old_broker) = rig.mqtt_pair("old").await;
    let bh = rig.fault("blackhole:target=new").await;
    let (mut young, mut young_broker) = rig.pair().await;
    old.write_all(&PINGREQ).await.unwrap();
    assert_eq!(read_exact(&mut old_broker, 2).await, PINGREQ);
    young.write_all(&connect_packet("young", 5)).await.unwrap();
    assert_silent(&mut young_broker, "new connection under blackhole").await;
    rig.end_fault(bh).await;
    rig.stop().await;
}

#[tokio::test]
async fn refuse_for_one_client_id_resets_that_client_at_connect() {
    let rig = Rig::start().await;
    rig.fault("refuse:target=client=banned").await;
    let (mut banned, mut banned_broker) = rig.pair().await;
    banned
        .write_all(&connect_packet("banned", 5))
        .await
        .unwrap();
    assert_eq!(read_to_end(&mut banned).await.0, End::Reset);
    assert_eq!(
        read_to_end(&mut banned_broker).await,
        (End::Reset, 0),
        "CONNECT not forwarded"
    );
    let (_ok, _ok_broker) = rig.mqtt_pair("welcome").await;
    rig.stop().await;
}
