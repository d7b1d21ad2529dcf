//! The HTTP control API, spoken to over a raw socket as any client would.

use crate::util::*;
use serde_json::Value;
use std::net::SocketAddr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Sends one HTTP/1.1 request and returns (status, parsed JSON body or Null).
async fn http(addr: SocketAddr, method: &str, path: &str, body: Option<&str>) -> (u16, Value) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let body = body.unwrap_or("");
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    tokio::time::timeout(PROMPT, stream.read_to_end(&mut response))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8(response).unwrap();
    let status: u16 = text[9..12].parse().unwrap();
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

#[tokio::test]
async fn faults_can_be_added_listed_and_removed_over_http() {
    let rig = Rig::with(RigOptions {
        control: true,
        ..Default::default()
    })
    .await;
    let api = rig.control.unwrap();
    let (mut client, mut broker) = rig.mqtt_pair("by-hand").await;

    let (status, created) = http(api, "POST", "/faults", Some(r#"{"spec":"cut:dir=up"}"#)).await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_u64().unwrap();
    assert_eq!(created["spec"], "cut:at=0s,dir=up");
    eventually(|| rig.handle.is_active(id)).await;
    client.write_all(&PINGREQ).await.unwrap();
    assert_silent(&mut broker, "cut added over HTTP").await;

    let (status, list) = http(api, "GET", "/faults", None).await;
    assert_eq!(status, 200);
    assert_eq!(list[0]["status"], "active");
    assert_eq!(list[0]["origin"], "control");

    let (status, conns) = http(api, "GET", "/connections", None).await;
    assert_eq!(status, 200);
    assert_eq!(conns[0]["client_id"], "by-hand");

    let (status, _) = http(api, "DELETE", &format!("/faults/{id}"), None).await;
    assert_eq!(status, 204);
    assert_eq!(
        read_exact(&mut broker, 2).await,
        PINGREQ,
        "held bytes released"
    );
    let (status, err) = http(api, "DELETE", "/faults/999", None).await;
    assert_eq!(status, 404);
    assert!(err["error"].as_str().unwrap().contains("999"));
    rig.stop().await;
}

#[tokio::test]
async fn a_bad_fault_spec_over_http_is_a_400_that_says_why() {
    let rig = Rig::with(RigOptions {
        control: true,
        ..Default::default()
    })
    .await;
    let api = rig.control.unwrap();
    let (status, err) = http(
        api,
        "POST",
        "/faults",
        Some(r#"{"spec":"cut:for=forever"}"#),
    )
    .await;
    assert_eq!(status, 400);
    assert!(err["error"]
        .as_str()
        .unwrap()
        .contains("`for=forever` is not a duration"));
    let (status, err) = http(api, "POST", "/faults", Some("not json")).await;
    assert_eq!(status, 400, "{err}");
    assert!(err["error"]
        .as_str()
        .unwrap()
        .contains("expected a JSON body"));
    // A body of the wrong shape (422) is answered in JSON too.
    let (status, err) = http(api, "POST", "/faults", Some(r#"{"kind":"cut"}"#)).await;
    assert_eq!(status, 422, "{err}");
    assert!(err["error"].as_str().unwrap().contains("spec"), "{err}");
    let (status, overview) = http(api, "GET", "/", None).await;
    assert_eq!(status, 200);
    assert_eq!(overview["faults"], 0);
    rig.stop().await;
}
