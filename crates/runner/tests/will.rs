//! The Last Will end to end: linecut's subscriber leaves a will with a real mosquitto, the will
//! watcher (straight to the broker) records what mosquitto publishes, and the report judges it
//! against mosquitto's rule. mosquitto is installed by the test command.

mod support;

use std::path::{Path, PathBuf};
use support::read_json;

/// The times (Unix µs) of the wills the watcher received.
fn wills(dir: &Path) -> Vec<i64> {
    support::wills_heard(dir).into_iter().map(|w| w.2).collect()
}

async fn run_text(name: &str, text: &str) -> PathBuf {
    support::need_mosquitto();
    support::run_complete("will", name, text).await.1
}

/// K = 2 s: mosquitto drops a client after more than floor(1.5K) = 3 whole seconds of silence,
/// found by a check every 6 s. A 1 s blip leaves at most 2 s + 1 s of silence (rumqttc pings
/// every K; the cut holds the ping and delivers it at the end): no drop, no will (measured:
/// a first run of this test had its blip hold a ping, and its 3 s of silence made the band
/// call "no will" allowed rather than predicted). A 10 s cut
/// outlasts the band's upper end (3 + 7 s): the will must come, inside the band.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_will_comes_inside_mosquittos_band_after_a_long_cut_and_not_after_a_blip_or_the_stop() {
    let dir = run_text(
        "band",
        r#"
name = "will-band"
duration = "20s"
[broker]
kind = "mosquitto"
[publisher]
interval = "200ms"
[subscriber]
client_id = "will-band-sub"
keepalive = "2s"
reconnect = "immediate"
will = { topic = "devices/{client_id}/status", payload = "gone {client_id}", qos = 1 }
[[fault]]
kind = "cut"
at = "2s"
for = "1s"
[[fault]]
kind = "cut"
at = "5s"
for = "10s"
"#,
    )
    .await;
    let report = read_json(&dir.join("report.json"));
    let blip = &report["windows"][0]["subscribers"][0];
    assert!(blip["will_s"].is_null(), "{blip}");
    // "No will" is what the band predicts ("inside") or allows ("not decidable": when the
    // blip holds a ping, the broker's silence reaches 2 + 1 = 3 s, the band's edge); never
    // "outside".
    assert_ne!(blip["will_band"]["verdict"], "outside", "{blip}");
    let cut = &report["windows"][1]["subscribers"][0];
    let will_s = cut["will_s"].as_f64().expect("a will after the 10 s cut");
    assert_eq!(cut["will_band"]["verdict"], "inside", "{cut}");
    assert!(will_s <= 10.1, "{will_s}");
    // Published as mosquitto dropped the client: the same moment, within the loop's 100 ms.
    let drop = cut["broker_detect_s"].as_f64().unwrap();
    assert!(
        (will_s - drop).abs() < 0.1,
        "will {will_s} s, drop {drop} s"
    );
    // Exactly one: none for the blip, none for the subscriber's orderly stop (a DISCONNECT).
    assert_eq!(wills(&dir).len(), 1);
    assert_eq!(read_json(&dir.join("summary.json"))["wills"], 1);
    let md = std::fs::read_to_string(dir.join("report.md")).unwrap();
    assert!(md.contains("will heard by the watcher"), "{md}");
}

/// MQTT 5's Will Delay Interval: mosquitto holds the will D s after the drop (its once-a-second
/// check: D..D + 1 s) and clears it when the client's session comes back first. A reset drops
/// the connection at once; `refuse` keeps the client away for 8 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delayed_will_is_published_only_when_the_client_stays_away_past_the_delay() {
    let scenario = |name: &str, delay: u32| {
        format!(
            r#"
name = "{name}"
duration = "14s"
[broker]
kind = "mosquitto"
[publisher]
interval = "200ms"
[subscriber]
client_id = "{name}"
keepalive = "5s"
mqtt = "5"
reconnect = "fixed:500ms"
will = {{ topic = "devices/{{client_id}}/status", delay = "{delay}s" }}
[[fault]]
kind = "refuse"
at = "2s"
for = "8s"
[[fault]]
kind = "reset"
at = "2500ms"
"#
        )
    };
    let dir = run_text("delay-short", &scenario("delay-short", 2)).await;
    let heard = wills(&dir);
    assert_eq!(
        heard.len(),
        1,
        "the client stayed away 7.5 s, past the 2 s delay"
    );
    let report = read_json(&dir.join("report.json"));
    assert_eq!(report["session"]["will_delay_s"], 2, "read off the CONNECT");
    let window = &report["windows"][0];
    let start = window["outage_start_us"].as_i64().unwrap();
    // The reset came 0.5 s into the refuse window; mosquitto's delay check gives D..D + 1 s,
    // with 0.1 s for its loop and the hop to the watcher.
    let after_reset = (heard[0] - start) as f64 / 1e6 - 0.5;
    assert!(
        (2.0..=3.1 + 0.1).contains(&after_reset),
        "{after_reset} s after the reset"
    );

    let dir = run_text("delay-long", &scenario("delay-long", 30)).await;
    assert!(
        wills(&dir).is_empty(),
        "the client came back 7.5 s after the reset, inside the 30 s delay: no will"
    );
}
