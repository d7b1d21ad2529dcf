//! Each fault's semantics, seen from both endpoints.

use crate::util::*;
use linecut_events::{EventKind, Fate};
use linecut_mqtt::Role;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[tokio::test]
async fn cut_holds_bytes_and_fin_and_delivers_them_in_order_after_restore() {
    let rig = Rig::start().await;
    let (mut client, mut broker) = rig.mqtt_pair("cut-1").await;
    let cut = rig.fault("cut").await;

    // During the cut: the client publishes and then closes; the broker sends a PUBLISH.
    let mut sent_up = Vec::new();
    for i in 0..3u8 {
        let p = publish_packet("t", &[i; 10]);
        client.write_all(&p).await.unwrap();
        sent_up.extend_from_slice(&p);
    }
    client.shutdown().await.unwrap();
    let down = publish_packet("t", b"from broker");
    broker.write_all(&down).await.unwrap();
    assert_silent(&mut broker, "broker during cut").await;
    assert_silent(&mut client, "client during cut").await;

    rig.end_fault(cut).await;
    // Held bytes arrive in order, and the FIN sent during the cut arrives after them.
    assert_eq!(read_exact(&mut broker, sent_up.len()).await, sent_up);
    assert_eq!(read_to_end(&mut broker).await, (End::Fin, 0));
    assert_eq!(read_exact(&mut client, down.len()).await, down);
    drop(broker);
    assert_eq!(read_to_end(&mut client).await.0, End::Fin);

    let events = rig.stop().await;
    let fates: Vec<(Fate, &str)> = packet_events(&events)
        .iter()
        .filter(|p| p.packet_type == "PUBLISH")
        .map(|p| (p.fate, p.dir.as_str()))
        .collect();
    assert_eq!(
        fates.iter().filter(|f| **f == (Fate::Held, "up")).count(),
        3
    );
    assert_eq!(
        fates
            .iter()
            .filter(|f| **f == (Fate::Released, "up"))
            .count(),
        3
    );
    assert_eq!(
        fates
            .iter()
            .filter(|f| **f == (Fate::Released, "down"))
            .count(),
        1
    );
    assert!(!fates.iter().any(|f| f.0 == Fate::Forwarded), "{fates:?}");
}

#[tokio::test]
async fn cut_with_give_up_resets_both_ends_once_bytes_were_held_that_long() {
    let rig = Rig::start().await;
    let (mut client, mut broker) = rig.mqtt_pair("cut-2").await;
    rig.fault("cut:give_up=300ms").await;
    let started = Instant::now();
    client.write_all(&PINGREQ).await.unwrap();
    assert_eq!(read_to_end(&mut broker).await, (End::Reset, 0));
    assert_eq!(read_to_end(&mut client).await, (End::Reset, 0));
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(300),
        "gave up after {waited:?}"
    );
    assert!(
        waited < Duration::from_millis(300) + PROMPT,
        "gave up after {waited:?}"
    );
    let events = rig.stop().await;
    assert!(events.iter().any(|e| matches!(&e.kind,
        EventKind::FaultAction(a) if a.action == "give_up")));
    assert!(packet_events(&events)
        .iter()
        .any(|p| p.packet_type == "PINGREQ" && p.fate == Fate::Discarded));
}

#[tokio::test]
async fn cut_pushes_back_on_the_sender_once_its_hold_bound_is_full() {
    let rig = Rig::start().await;
    let (client, mut broker) = rig.pair().await;
    let cut = rig.fault("cut:hold=64KiB").await;
    const TOTAL: usize = 8 * 1024 * 1024;
    let writer = tokio::spawn(async move {
        let mut client = client;
        let data: Vec<u8> = (0..TOTAL).map(|i| (i % 251) as u8).collect();
        client.write_all(&data).await.unwrap();
        client.shutdown().await.unwrap();
        client
    });
    // The proxy stops reading at the bound: what it has read stays far below what was written.
    let conn = {
        eventually(|| !rig.handle.connections().is_empty()).await;
        rig.handle.connections()[0].clone()
    };
    let bytes_read = || conn.bytes_up.load(std::sync::atomic::Ordering::Relaxed) as usize;
    eventually(|| bytes_read() >= 64 * 1024).await;
    assert_silent(&mut broker, "broker during cut").await;
    assert!(
        bytes_read() < 64 * 1024 + 2 * 64 * 1024,
        "proxy read {} bytes past a 64 KiB hold",
        bytes_read()
    );
    assert!(
        !writer.is_finished(),
        "the sender should be blocked by back-pressure"
    );
    rig.end_fault(cut).await;
    let mut received = Vec::with_capacity(TOTAL);
    tokio::time::timeout(PROMPT, broker.read_to_end(&mut received))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(received.len(), TOTAL);
    assert!(received
        .iter()
        .enumerate()
        .all(|(i, &b)| b == (i % 251) as u8));
    writer.await.unwrap();
    rig.stop().await;
}

#[tokio::test]
async fn cut_keeps_new_connections_from_reaching_the_broker_until_it_ends() {
    let rig = Rig::start().await;
    let cut = rig.fault("cut").await;
    let mut client = TcpStream::connect(rig.addr).await.unwrap();
    let connect = connect_packet("late", 5);
    client.write_all(&connect).await.unwrap();
    let accepted = tokio::time::timeout(QUIET, rig.upstream.accept()).await;
    assert!(
        accepted.is_err(),
        "the broker must not see a connection during a cut"
    );
    rig.end_fault(cut).await;
    let (mut broker, _) = tokio::time::timeout(PROMPT, rig.upstream.accept())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(read_exact(&mut broker, connect.len()).await, connect);
    rig.stop().await;
}

#[tokio::test]
async fn a_client_that_gives_up_during_a_cut_never_reaches_the_broker() {
    let rig = Rig::start().await;
    let cut = rig.fault("cut").await;
    let mut quitter = TcpStream::connect(rig.addr).await.unwrap();
    quitter
        .write_all(&connect_packet("same-id", 5))
        .await
        .unwrap();
    drop(quitter);
    // Wait until the proxy has seen the client come and go, then end the cut.
    eventually(|| rig.handle.accepted() == 1 && rig.handle.connections().is_empty()).await;
    rig.end_fault(cut).await;
    // A successor connects after the cut: it is the only connection the broker ever sees.
    let (mut client, mut broker) = rig.pair().await;
    let connect = connect_packet("same-id", 5);
    client.write_all(&connect).await.unwrap();
    assert_eq!(read_exact(&mut broker, connect.len()).await, connect);
    let stale = tokio::time::timeout(QUIET, rig.upstream.accept()).await;
    assert!(
        stale.is_err(),
        "the stale CONNECT must not be delivered after the cut"
    );
    let events = rig.stop().await;
    assert!(events
        .iter()
        .any(|e| matches!(&e.kind, EventKind::LegClosed(l)
        if l.reason.as_deref() == Some("closed during a cut, before reaching the broker"))));
}

#[tokio::test]
async fn packet_blackhole_drops_whole_packets_so_the_stream_still_parses() {
    let rig = Rig::start().await;
    let (mut client, mut broker) = rig.mqtt_pair("bh-1").await;
    // Half a PUBLISH goes out before the blackhole; the rest completes it while the blackhole is
    // active, so the whole packet is dropped rather than half of it.
    let split = publish_packet("sensors/1", &[7u8; 100]);
    client.write_all(&split[..20]).await.unwrap();
    client.flush().await.unwrap();
    let conn = {
        eventually(|| !rig.handle.connections().is_empty()).await;
        rig.handle.connections()[0].clone()
    };
    let up = || conn.bytes_up.load(std::sync::atomic::Ordering::Relaxed) as usize;
    eventually(|| up() == connect_packet("bh-1", 60).len() + 20).await;
    let bh = rig.fault("blackhole").await;
    client.write_all(&split[20..]).await.unwrap();
    for _ in 0..3 {
        client
            .write_all(&publish_packet("x", b"lost"))
            .await
            .unwrap();
    }
    client.write_all(&PINGREQ).await.unwrap();
    assert_silent(&mut broker, "broker during blackhole").await;
    rig.end_fault(bh).await;
    client.write_all(&PINGREQ).await.unwrap();
    client.shutdown().await.unwrap();
    let mut rest = Vec::new();
    tokio::time::timeout(PROMPT, broker.read_to_end(&mut rest))
        .await
        .unwrap()
        .unwrap();
    let mut whole = connect_packet("bh-1", 60);
    whole.extend_from_slice(&rest);
    assert_eq!(
        parse_stream(&whole, Role::Client),
        vec!["CONNECT", "PINGREQ"]
    );
    let events = rig.stop().await;
    let dropped = packet_events(&events)
        .iter()
        .filter(|p| p.fate == Fate::Dropped)
        .count();
    assert_eq!(dropped, 5, "the split PUBLISH, three more and a PINGREQ");
}

#[tokio::test]
async fn raw_blackhole_drops_bytes_and_the_stream_is_then_logged_as_raw() {
    let rig = Rig::start().await;
    let (mut client, mut broker) = rig.mqtt_pair("bh-2").await;
    let bh = rig.fault("blackhole:mode=raw,dir=up").await;
    client.write_all(b"\x30\x10partial").await.unwrap();
    assert_silent(&mut broker, "broker during raw blackhole").await;
    rig.end_fault(bh).await;
    client.write_all(&PINGREQ).await.unwrap();
    assert_eq!(read_exact(&mut broker, 2).await, PINGREQ);
    let events = rig.stop().await;
    let raw: Vec<_> = events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::RawBytes(r) => Some((r.fate, r.len)),
            _ => None,
        })
        .collect();
    assert!(raw.contains(&(Fate::Dropped, 9)), "{raw:?}");
    assert!(
        raw.contains(&(Fate::Forwarded, 2)),
        "after raw drops the stream is raw: {raw:?}"
    );
}

#[tokio::test]
async fn reset_gives_both_endpoints_a_connection_reset() {
    let rig = Rig::start().await;
    let (mut client, mut broker) = rig.mqtt_pair("rst").await;
    rig.fault("reset").await;
    assert_eq!(read_to_end(&mut client).await, (End::Reset, 0));
    assert_eq!(read_to_end(&mut broker).await, (End::Reset, 0));
    let events = rig.stop().await;
    let closes: Vec<_> = events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::LegClosed(l) => Some((l.leg, l.by, l.how)),
            _ => None,
        })
        .collect();
    use linecut_events::{CloseHow::Rst, ClosedBy::Proxy, Leg};
    assert!(closes.contains(&(Leg::Client, Proxy, Rst)), "{closes:?}");
    assert!(closes.contains(&(Leg::Upstream, Proxy, Rst)), "{closes:?}");
}

#[tokio::test]
async fn close_gives_both_endpoints_a_fin() {
    let rig = Rig::start().await;
    let (mut client, mut broker) = rig.mqtt_pair("fin").await;
    rig.fault("close").await;
    assert_eq!(read_to_end(&mut client).await, (End::Fin, 0));
    assert_eq!(read_to_end(&mut broker).await, (End::Fin, 0));
    rig.stop().await;
}

#[tokio::test]
async fn refuse_fails_new_connects_at_once_while_live_ones_keep_working() {
    let rig = Rig::start().await;
    let (mut client, mut broker) = rig.mqtt_pair("live").await;
    let refuse = rig.fault("refuse").await;
    // The fault is active at once; the listener closes a moment later, when the accept loop
    // sees it (a connect in between is reset, not refused).
    eventually(|| !rig.handle.is_listening()).await;
    let started = Instant::now();
    let attempt = TcpStream::connect(rig.addr).await;
    let err = attempt.expect_err("connects must be refused");
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "refusal must be immediate"
    );
    client.write_all(&PINGREQ).await.unwrap();
    assert_eq!(read_exact(&mut broker, 2).await, PINGREQ);
    broker.write_all(&PINGRESP).await.unwrap();
    assert_eq!(read_exact(&mut client, 2).await, PINGRESP);
    rig.end_fault(refuse).await;
    eventually(|| rig.handle.is_listening()).await;
    // Reopened on the same address.
    let mut attempt = None;
    for _ in 0..100 {
        if let Ok(s) = TcpStream::connect(rig.addr).await {
            attempt = Some(s);
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(
        attempt.is_some(),
        "the listener should reopen after the refusal"
    );
    let events = rig.stop().await;
    let actions: Vec<_> = events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::FaultAction(a) => Some(a.action.as_str()),
            _ => None,
        })
        .collect();
    assert!(actions.contains(&"listener_closed") && actions.contains(&"listener_reopened"));
}

#[tokio::test]
async fn latency_delays_each_unit_by_the_delay_measured_from_when_it_was_read() {
    let rig = Rig::start().await;
    let (mut client, mut broker) = rig.mqtt_pair("slow").await;
    rig.fault("latency:delay=200ms,dir=up").await;
    // Several sends 50 ms apart: each is delayed 200 ms from its own read, not cumulatively.
    let mut sent = Vec::new();
    for _ in 0..4 {
        sent.push(Instant::now());
        client.write_all(&PINGREQ).await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for (i, at) in sent.iter().enumerate() {
        read_exact(&mut broker, 2).await;
        let delay = at.elapsed();
        assert!(
            delay >= Duration::from_millis(195) && delay < Duration::from_millis(300),
            "unit {i} delayed {delay:?}"
        );
    }
    // The other direction is untouched.
    let start = Instant::now();
    broker.write_all(&PINGRESP).await.unwrap();
    read_exact(&mut client, 2).await;
    assert!(start.elapsed() < Duration::from_millis(100));
    rig.stop().await;
}

#[tokio::test]
async fn latency_with_jitter_never_reorders() {
    let rig = Rig::start().await;
    let (mut client, mut broker) = rig.mqtt_pair("jitter").await;
    rig.fault("latency:delay=30ms,jitter=25ms").await;
    let mut sent = Vec::new();
    for i in 0..40u8 {
        let p = publish_packet("seq", &[i]);
        client.write_all(&p).await.unwrap();
        sent.extend_from_slice(&p);
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    assert_eq!(read_exact(&mut broker, sent.len()).await, sent);
    rig.stop().await;
}

#[tokio::test]
async fn bandwidth_caps_throughput_at_its_rate() {
    let rig = Rig::start().await;
    let (mut client, mut broker) = rig.pair().await;
    rig.fault("bandwidth:rate=1MiB,dir=up").await;
    let data = vec![5u8; 512 * 1024];
    let start = Instant::now();
    let writer = tokio::spawn(async move {
        client.write_all(&data).await.unwrap();
        client
    });
    read_exact(&mut broker, 512 * 1024).await;
    let took = start.elapsed();
    // 512 KiB at 1 MiB/s is 0.5 s; the first slice goes at once, so allow a little under.
    assert!(
        took >= Duration::from_millis(450) && took < Duration::from_millis(1500),
        "took {took:?}"
    );
    writer.await.unwrap();
    rig.stop().await;
}

/// The idle time a test leaves a connection: past the 1 s timeout by more than the timer
/// slack of a loaded machine, the experiment's condition rather than a synchronisation.
const PAST_IDLE_TIMEOUT: Duration = Duration::from_millis(1300);

/// `idle_timeout`, drop: a connection silent for longer than the timeout is forgotten from
/// the timeout's end, and nothing either side sends on it after crosses (held, never
/// released); a connection that keeps talking more often than the timeout lives on.
#[tokio::test]
async fn idle_timeout_forgets_a_silent_connection_and_drops_both_ways() {
    let rig = Rig::start().await;
    rig.fault("idle_timeout:timeout=1s").await;
    let (mut client, mut broker) = rig.mqtt_pair("idle").await;
    let (mut chatty, mut chatty_broker) = rig.mqtt_pair("chatty").await;
    // The chatty pair pings every 400 ms for twice the idle time: never idle for 1 s.
    let talk = async {
        let until = Instant::now() + 2 * PAST_IDLE_TIMEOUT;
        while Instant::now() < until {
            chatty.write_all(&PINGREQ).await.unwrap();
            assert_eq!(read_exact(&mut chatty_broker, 2).await, PINGREQ);
            tokio::time::sleep(Duration::from_millis(400)).await;
        }
    };
    let ((), ()) = tokio::join!(talk, tokio::time::sleep(PAST_IDLE_TIMEOUT));
    client.write_all(&PINGREQ).await.unwrap();
    let down = publish_packet("t", b"into the void");
    broker.write_all(&down).await.unwrap();
    assert_silent(&mut broker, "broker side of a forgotten connection").await;
    assert_silent(&mut client, "client side of a forgotten connection").await;
    let events = rig.stop().await;
    let forgot: Vec<(u64, i64)> = events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::FaultAction(a) if a.action == linecut_events::ACTION_FORGOT => {
                Some((a.conn.unwrap(), e.ts_us))
            }
            _ => None,
        })
        .collect();
    assert_eq!(forgot.len(), 1, "only the silent connection: {forgot:?}");
    // Stamped at the timeout's end: 1 s after the CONNACK, the connection's last unit.
    let connack = events
        .iter()
        .find(|e| {
            matches!(&e.kind, EventKind::MqttPacket(p)
            if p.conn == forgot[0].0 && p.packet_type == "CONNACK")
        })
        .unwrap()
        .ts_us;
    let idle = forgot[0].1 - connack;
    // The proxy stamps the unit when logging it, a few µs after the read the timer counts
    // from: a millisecond covers it.
    assert!((999_000..1_001_000).contains(&idle), "{idle} µs");
    let fates: Vec<(Fate, &str)> = packet_events(&events)
        .iter()
        .filter(|p| p.conn == forgot[0].0 && p.fate != Fate::Forwarded)
        .map(|p| (p.fate, p.dir.as_str()))
        .collect();
    assert!(fates.contains(&(Fate::Held, "up")), "{fates:?}");
    assert!(fates.contains(&(Fate::Held, "down")), "{fates:?}");
    assert!(!fates.iter().any(|f| f.0 == Fate::Released), "{fates:?}");
}

/// `idle_timeout`, reset: whichever side sends on a forgotten connection gets a reset, and
/// only it: the other learns when it sends.
#[tokio::test]
async fn idle_timeout_reset_resets_each_side_when_it_sends() {
    let rig = Rig::start().await;
    rig.fault("idle_timeout:timeout=1s,then=reset").await;
    let (mut client, mut broker) = rig.mqtt_pair("idle-rst").await;
    tokio::time::sleep(PAST_IDLE_TIMEOUT).await;
    client.write_all(&PINGREQ).await.unwrap();
    assert_eq!(read_to_end(&mut client).await, (End::Reset, 0));
    assert_silent(&mut broker, "the broker, which has sent nothing").await;
    broker.write_all(&PINGRESP).await.unwrap();
    assert_eq!(read_to_end(&mut broker).await, (End::Reset, 0));
    rig.stop().await;
}
