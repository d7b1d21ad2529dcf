//! The brokers linecut starts from other projects (aedes, amqtt; installed by
//! scripts/setup-clients), each in a real run: linecut's agent (rumqttc, K = 2 s) behind a cut
//! long enough for the broker's own keepalive rule to act, then the run's stop. aedes must drop
//! the silent client 1.5K after its last packet (3 s; docs/clients.md, from its source); amqtt
//! never drops one, and the report must say so plainly. Either way the broker must stop with
//! the run and leave no process or listening port behind.

mod support;

use linecut_analyzer::Verdict;
use std::path::Path;

fn scenario(kind: &str) -> String {
    format!(
        r#"
name = "{kind}-silent-client"
duration = "10s"
[broker]
kind = "{kind}"
[publisher]
interval = "250ms"
[subscriber]
client_id = "{kind}-sub"
keepalive = "2s"
[[fault]]
kind = "cut"
at = "2s"
for = "6s"
"#
    )
}

/// Nothing of the run's broker is left: no process started from the run directory's files,
/// and its address refuses connections.
fn nothing_left(dir: &Path) {
    let meta = support::read_json(&dir.join("meta.json"));
    let address = meta["broker_address"].as_str().unwrap();
    assert!(
        std::net::TcpStream::connect(address).is_err(),
        "the broker still listens on {address}"
    );
    let marker = dir.display().to_string();
    let found = std::process::Command::new("pgrep")
        .args(["-f", &marker])
        .output()
        .unwrap();
    assert!(
        found.stdout.is_empty(),
        "processes of the run left behind: {}",
        String::from_utf8_lossy(&found.stdout)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aedes_drops_a_silent_client_at_one_and_a_half_keepalives() {
    let (report, dir) = support::run_complete("brokers", "aedes", &scenario("aedes")).await;
    let meta = support::read_json(&dir.join("meta.json"));
    assert!(
        meta["broker"].as_str().unwrap().starts_with("aedes 1.2.0"),
        "{meta}"
    );
    let m = &report.windows[0].subscribers[0];
    let band = m.broker_detect_band.as_ref().expect("aedes has a band");
    assert_eq!(band.verdict, Verdict::Inside, "{m:#?}");
    // 1.5K = 3 s after the client's last packet, which came at most K before the cut.
    assert!(
        m.broker_detect_s.is_some_and(|s| (0.9..=3.1).contains(&s)),
        "{m:#?}"
    );
    let log = std::fs::read_to_string(dir.join("broker.log")).unwrap();
    assert!(log.contains("keepalive_timeout client aedes-sub"), "{log}");
    nothing_left(&dir);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amqtt_never_drops_a_silent_client_and_the_report_says_so() {
    let (report, dir) = support::run_complete("brokers", "amqtt", &scenario("amqtt")).await;
    let m = &report.windows[0].subscribers[0];
    // 6 s of silence is twice the spec's 1.5K: a broker that follows it would have dropped the
    // client (and linecut's proxy would have seen the close).
    assert_eq!(m.broker_detect_s, None, "{m:#?}");
    let band = m.broker_detect_band.as_ref().expect("amqtt has a rule");
    assert!(
        band.why.contains("never, as amqtt's code gives"),
        "{band:?}"
    );
    // Said plainly either way the run went: with amqtt's own rule, or, when the client's new
    // connection reached the broker while the proxy still held the old one open, as the old
    // connection kept beside the new one, which the broker had never dropped.
    let md = std::fs::read_to_string(dir.join("report.md")).unwrap();
    assert!(md.contains("The broker never dropped"), "{md}");
    // And never as a takeover: with a clean session amqtt leaves the old connection running
    // beside the new one (broker.py `_delete_session`; docs/clients.md).
    assert!(
        !m.told(linecut_analyzer::Story::SessionTakeover),
        "{:?}",
        m.stories
    );
    // It stopped on SIGINT within the grace period: a broker that had to be killed would have
    // made the run incomplete, which run_complete refuses.
    nothing_left(&dir);
    let _ = std::fs::remove_dir_all(&dir);
}
