//! Clients under test, end to end: real paho-mqtt (1.6 and 2.x, from the virtual environments
//! `scripts/setup-clients` creates), real mosquitto_sub, and arbitrary commands, each behind the
//! real proxy in front of a real mosquitto. Detection is judged against the client library's
//! band (K..2K+1 s for paho and libmosquitto) with the analyzer's scheduling slack.

mod support;

use linecut_analyzer::{Report, Verdict};
use linecut_runner::{run, DisplayMode, RunError, RunOptions, RunStatus};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn temp_dir(name: &str) -> PathBuf {
    linecut_testkit::fresh_path("clients", name)
}

fn options(dir: &Path) -> RunOptions {
    RunOptions {
        dir: dir.to_path_buf(),
        force: false,
        display: DisplayMode::Quiet,
    }
}

fn repo_file(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(path)
}

fn scenario(text: &str) -> linecut_scenario::Scenario {
    linecut_scenario::parse(Path::new("test.toml"), text).unwrap_or_else(|e| panic!("{e}"))
}

async fn run_ok(text: &str, name: &str) -> (Report, PathBuf) {
    let dir = temp_dir(name);
    let outcome = run(&scenario(text), &options(&dir), std::future::pending())
        .await
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(outcome.status, RunStatus::Complete, "{name}");
    (outcome.report.expect("analysed"), dir)
}

/// The CI-length 2014 scenario shipped in `scenarios/`, with paho pinned to `series`.
fn seed_ci_with_paho(series: &str) -> String {
    let text = std::fs::read_to_string(repo_file("scenarios/seed-2014-paho-ci.toml")).unwrap();
    let pinned = text.replace("paho = \"2\"", &format!("paho = \"{series}\""));
    assert!(pinned.contains(&format!("paho = \"{series}\"")));
    pinned
}

fn assert_2014_shape(report: &Report, what: &str) {
    let failed: Vec<_> = report.expectations.iter().filter(|x| !x.ok).collect();
    assert!(failed.is_empty(), "{what}: {failed:#?}");
    // The short cut went unnoticed by both sides; the long one was detected inside paho's band
    // because of the keepalive (not a reset or a FIN), and the client came back by itself.
    let short = &report.windows[0].subscribers[0];
    assert_eq!(
        (short.client_detect_s, short.broker_detect_s),
        (None, None),
        "{what}"
    );
    let long = &report.windows[1].subscribers[0];
    assert_eq!(
        long.client_detect_how.map(|h| h.name()).as_deref(),
        Some("keepalive_timeout"),
        "{what}"
    );
    let band = long.client_detect_band.as_ref().expect("paho has a band");
    assert_eq!(band.verdict, Verdict::Inside, "{what}: {long:#?}");
    assert_eq!((band.low_s, band.high_s), (2.0, 5.0), "{what}");
    assert!(
        long.reconnect_s.is_some() && long.resubscribed == Some(true),
        "{what}"
    );
    assert!(
        long.reported_by_client,
        "{what}: paho's script reports its own events"
    );
    // Its own report and the wire agree on when it came back, to within scheduling noise.
    let (own, wire) = (long.reconnect_s.unwrap(), long.wire_reconnect_s.unwrap());
    assert!(
        (own - wire).abs() < 0.25,
        "{what}: client {own} vs wire {wire}"
    );
    assert!(
        report.data[0].delivered > 0 && report.data[0].pings > 0,
        "{what}"
    );
}

/// paho-mqtt 1.0, the release of 2014: no reconnect back-off to set (the scenario's line goes),
/// `loop_forever` retries 1 s after each failure; the same shape as 1.6 and 2.x.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paho_1_0_the_seeds_release_reproduces_the_2014_shape_at_ci_length() {
    let text =
        seed_ci_with_paho("1.0").replace("reconnect = \"exponential:min=1s,max=120s\"\n", "");
    let (report, dir) = run_ok(&text, "paho10").await;
    assert!(
        report.client_library.starts_with("paho-mqtt 1.0"),
        "{}",
        report.client_library
    );
    assert_2014_shape(&report, "paho 1.0");
    // Its 1 s sleep between attempts, not a back-off: every attempt after the first comes
    // time.sleep(1) after the failure before it (loop_forever, client.py 1232-1240). sleep
    // never returns early (Python retries it on EINTR), so at least 1 s less the few ms between
    // the two stamps; at most 0.5 s more for a loaded machine's scheduling.
    let delays: Vec<u64> = report_attempt_delays(&dir);
    assert!(!delays.is_empty(), "paho 1.0 made no reconnect attempt");
    for d in &delays {
        assert!((995..=1500).contains(d), "delays {delays:?} ms");
    }
}

/// The `delay_ms` of every connect attempt after the first, from the subscriber's events.
fn report_attempt_delays(dir: &Path) -> Vec<u64> {
    std::fs::read_to_string(dir.join("subscriber.jsonl"))
        .unwrap()
        .lines()
        .filter(|l| l.contains("\"connect_attempt\""))
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["attempt"].as_u64() > Some(1))
        .map(|v| v["delay_ms"].as_u64().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paho_1_6_reproduces_the_2014_shape_at_ci_length() {
    let (report, dir) = run_ok(&seed_ci_with_paho("1.6"), "paho16").await;
    assert!(
        report.client_library.starts_with("paho-mqtt 1.6"),
        "{}",
        report.client_library
    );
    assert_2014_shape(&report, "paho 1.6");
    assert!(dir.join("paho_subscriber.py").is_file());
    // Its stderr is kept when it wrote any; an empty log is not left behind.
    let stderr = dir.join("client.stderr.log");
    assert!(!stderr.exists() || std::fs::metadata(&stderr).unwrap().len() > 0);
    // meta.json names the script the run ran by its content.
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("meta.json")).unwrap()).unwrap();
    let script = std::fs::read(dir.join("paho_subscriber.py")).unwrap();
    use sha2::Digest;
    let sha: String = sha2::Sha256::digest(&script)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(meta["client_script"]["sha256"], sha.as_str());
    assert_eq!(meta["subscriber_identity"]["family"], "paho");
    assert!(meta["subscriber_identity"]["version"]
        .as_str()
        .unwrap()
        .starts_with("1.6"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paho_2_reproduces_the_2014_shape_at_ci_length() {
    let (report, _) = run_ok(&seed_ci_with_paho("2"), "paho2").await;
    assert!(
        report.client_library.starts_with("paho-mqtt 2."),
        "{}",
        report.client_library
    );
    assert_2014_shape(&report, "paho 2");
}

const MOSQUITTO_SUB: &str = r#"
name = "mosquitto-sub"
duration = "32s"
[broker]
kind = "mosquitto"
[publisher]
topics = ["linecut/sensor"]
interval = "200ms"
[subscriber]
client = "mosquitto_sub"
client_id = "ms-under-test"
keepalive = "5s"
topics = ["linecut/#:0"]
[[fault]]
kind = "cut"
at = "2s"
for = "2s"
[[fault]]
kind = "cut"
at = "8s"
for = "15s"
[expect]
"fault1.client_detect_s" = "never"
"fault2.client_detect_s" = "5..11"
"fault2.reconnect_s" = "<= 3"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mosquitto_sub_is_measured_from_the_wire() {
    let (report, _) = run_ok(MOSQUITTO_SUB, "mosquitto-sub").await;
    let failed: Vec<_> = report.expectations.iter().filter(|x| !x.ok).collect();
    assert!(failed.is_empty(), "{failed:#?}");
    assert!(report.client_library.starts_with("mosquitto_sub"));
    let long = &report.windows[1].subscribers[0];
    // mosquitto_sub prints only messages: everything about its connection came off the wire.
    assert!(!long.reported_by_client);
    assert!(
        long.client_detect_band
            .as_ref()
            .is_some_and(|b| b.verdict == Verdict::Inside),
        "{long:#?}"
    );
    assert_eq!(
        long.resubscribed,
        Some(true),
        "mosquitto_sub subscribes on every connect"
    );
    let data = &report.data[0];
    assert!(data.delivered > 20 && data.reconnects == 1, "{data:#?}");
    // libmosquitto pings every K while it sends nothing else.
    let interval = data.ping_interval_s.expect("pings on the wire");
    assert!((4.75..=6.25).contains(&interval), "{interval}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_with_an_output_pattern_is_parsed() {
    // mosquitto_sub again, but as an arbitrary program with its own output format.
    let text = r#"
name = "command-pattern"
duration = "6s"
[broker]
kind = "mosquitto"
[publisher]
topics = ["linecut/sensor"]
interval = "100ms"
[subscriber]
client = "command"
client_id = "cmd-under-test"
keepalive = "5s"
topics = ["linecut/#:0"]
command = ["mosquitto_sub", "-h", "{host}", "-p", "{port}", "-i", "{client_id}", "-k", "{keepalive}", "-t", "{topic}", "-F", "at %U got %p"]
pattern = '^at \S+ got lc1/(?P<seq>\d+)/(?P<ts>\d+)/'
library = "libmosquitto"
"#;
    let (report, dir) = run_ok(text, "command-pattern").await;
    let data = &report.data[0];
    assert!(data.delivered >= 50, "{data:#?}");
    assert_eq!((data.lost, data.foreign), (0, 0), "{data:#?}");
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);
    assert_eq!(
        report.client_library,
        "libmosquitto (command `mosquitto_sub`)"
    );
    let events = std::fs::read_to_string(dir.join("subscriber.jsonl")).unwrap();
    assert!(events.contains(r#""type":"client_exited""#) && events.contains(r#""expected":true"#));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_that_matches_nothing_is_counted_not_ignored() {
    let text = r#"
name = "command-unmatched"
duration = "2s"
[broker]
kind = "mosquitto"
[publisher]
interval = "100ms"
[subscriber]
client = "command"
client_id = "cmd-unmatched"
keepalive = "2s"
command = ["mosquitto_sub", "-h", "{host}", "-p", "{port}", "-i", "{client_id}", "-t", "{topic}", "-F", "%t %p"]
pattern = '^delivered #(?P<seq>\d+)$'
"#;
    let (report, _) = run_ok(text, "command-unmatched").await;
    assert_eq!(report.data[0].delivered, 0);
    let warning = report
        .warnings
        .iter()
        .find(|w| w.contains("stdout lines were not understood"))
        .unwrap_or_else(|| panic!("{:?}", report.warnings));
    assert!(warning.contains("lc1/"), "{warning}");
}

/// The reliability review's unbounded client line (memory grows with a line that never ends)
/// and `sh -c` grandchild (left running after the run): a 200 kB line is skipped and counted as
/// not understood, deliveries after it are read, and stopping the client stops the whole
/// process group, so the mosquitto_sub the shell started is gone after the run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_lines_are_capped_and_a_shells_children_stop_with_it() {
    let text = r#"
name = "command-long-line"
duration = "2s"
[broker]
kind = "mosquitto"
[publisher]
interval = "100ms"
[subscriber]
client = "command"
client_id = "cmd-long-line"
keepalive = "2s"
command = ["sh", "-c", "head -c 200000 /dev/zero | tr '\\0' x; echo; mosquitto_sub -h \"$0\" -p \"$1\" -i \"$2\" -t \"$3\" -v", "{host}", "{port}", "{client_id}", "{topic}"]
pattern = '^\S+ (?P<payload>\S+)$'
"#;
    let (report, _) = run_ok(text, "command-long-line").await;
    assert!(report.data[0].delivered > 5, "{:?}", report.data[0]);
    let warning = report
        .warnings
        .iter()
        .find(|w| w.contains("stdout lines were not understood"))
        .unwrap_or_else(|| panic!("{:?}", report.warnings));
    assert!(warning.contains("longer than 65536 bytes"), "{warning}");
    let left = std::process::Command::new("pgrep")
        .args(["-f", "cmd-long-line"])
        .output()
        .unwrap();
    assert!(
        left.stdout.is_empty(),
        "left running: {}",
        String::from_utf8_lossy(&left.stdout)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_ends_mid_run_marks_the_run_without_hanging() {
    // `-C 5`: mosquitto_sub exits by itself after five messages, about 1 s into a 20 s run.
    let text = r#"
name = "client-ends"
duration = "20s"
[broker]
kind = "mosquitto"
[publisher]
interval = "200ms"
[subscriber]
client = "command"
client_id = "cmd-ends"
keepalive = "5s"
command = ["mosquitto_sub", "-h", "{host}", "-p", "{port}", "-i", "{client_id}", "-t", "{topic}", "-v", "-C", "5"]
pattern = '^\S+ (?P<payload>\S+)$'
"#;
    let dir = temp_dir("client-ends");
    let started = Instant::now();
    let outcome = run(&scenario(text), &options(&dir), std::future::pending())
        .await
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "the run waited for its full length"
    );
    let RunStatus::Incomplete(reason) = &outcome.status else {
        panic!("{:?}", outcome.status)
    };
    assert!(
        reason.contains("`cmd-ends` exited with status 0") && reason.contains("into the run"),
        "{reason}"
    );
    let report = outcome.report.unwrap();
    assert!(!report.complete);
    assert_eq!(report.data[0].delivered, 5);
    assert!(
        report
            .warnings
            .iter()
            .any(|w| w.contains("ended before the run did")),
        "{:?}",
        report.warnings
    );
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("meta.json")).unwrap()).unwrap();
    assert_eq!(meta["status"], "incomplete");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_fails_at_once_ends_the_run_before_the_subscribe_timeout() {
    let text = r#"
name = "client-fails"
duration = "20s"
[subscriber]
keepalive = "2s"
client = "command"
command = ["false"]
"#;
    let dir = temp_dir("client-fails");
    let started = Instant::now();
    let outcome = run(&scenario(text), &options(&dir), std::future::pending())
        .await
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(10));
    let RunStatus::Incomplete(reason) = &outcome.status else {
        panic!("{:?}", outcome.status)
    };
    assert!(
        reason.contains("exited with status 1 before the experiment started"),
        "{reason}"
    );
    // The run directory is closed like any other: meta says why, summary.json exists.
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("meta.json")).unwrap()).unwrap();
    assert_eq!(meta["status"], "incomplete");
    assert!(meta["reason"]
        .as_str()
        .unwrap()
        .contains("exited with status 1"));
    assert!(dir.join("summary.json").is_file());
}

#[tokio::test]
async fn a_client_that_does_not_exist_is_an_error_before_anything_starts() {
    let text = r#"
duration = "5s"
[subscriber]
keepalive = "2s"
client = "command"
command = ["/nonexistent/linecut-test-client", "{host}"]
"#;
    let dir = temp_dir("no-client");
    match run(&scenario(text), &options(&dir), std::future::pending()).await {
        Err(RunError::Client(message)) => {
            assert!(
                message.contains("`/nonexistent/linecut-test-client` is not an executable file"),
                "{message}"
            );
        }
        other => panic!("{:?}", other.map(|o| o.status)),
    }
    assert!(
        !dir.exists(),
        "no run directory for a run that never started"
    );
    let text = r#"
duration = "5s"
[subscriber]
keepalive = "2s"
client = "paho-python"
python = "/nonexistent/python3"
"#;
    match run(&scenario(text), &options(&dir), std::future::pending()).await {
        Err(RunError::Client(message)) => {
            assert!(
                message.contains("subscriber.python: /nonexistent/python3 does not exist"),
                "{message}"
            );
        }
        other => panic!("{:?}", other.map(|o| o.status)),
    }
}

/// The reliability review's D1 behind a command client: linecut's own clients are refused an id
/// the embedded broker rejects, but a command can send one itself. rumqttd 0.20 then panics
/// (and every later connection on its poisoned lock); the run ends at once with that panic as
/// its stated reason, not after 30 s of "only 0 of 1 subscribers were subscribed".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_panic_is_the_runs_stated_reason() {
    let dir = temp_dir("broker-panic");
    let text = r#"
name = "broker-panic"
duration = "10s"
[subscriber]
client = "command"
keepalive = "5s"
command = ["mosquitto_sub", "-h", "{host}", "-p", "{port}", "-i", "a/b", "-k", "{keepalive}", "-t", "{topic}"]
"#;
    let started = Instant::now();
    let outcome = run(&scenario(text), &options(&dir), std::future::pending())
        .await
        .unwrap();
    let RunStatus::Incomplete(reason) = &outcome.status else {
        panic!("{:?}", outcome.status);
    };
    assert!(
        reason.contains("the embedded broker panicked") && reason.contains("rumqttd"),
        "{reason}"
    );
    // The subscribe wait polls the broker every 5 ms; mosquitto_sub retries a refused
    // connection within a second or two (its reconnect delay): well inside the 30 s wait.
    assert!(started.elapsed() < Duration::from_secs(20), "{reason}");
}

/// A client under test given a will leaves it: a reset 0.5 s into a 4 s refusal drops its
/// connection (mosquitto publishes the will of a connection lost without DISCONNECT, after its
/// Will Delay Interval in MQTT 5) and keeps it from coming back before the will is out.
async fn leaves_its_will(name: &str, client: &str, mqtt: &str, delay: Option<u32>) {
    let will = match delay {
        Some(d) => format!(
            r#"{{ topic = "devices/{{client_id}}/status", payload = "{name} offline", delay = "{d}s" }}"#
        ),
        None => {
            format!(r#"{{ topic = "devices/{{client_id}}/status", payload = "{name} offline" }}"#)
        }
    };
    let text = format!(
        r#"
name = "{name}"
duration = "8s"
[broker]
kind = "mosquitto"
[publisher]
interval = "200ms"
[subscriber]
client_id = "{name}"
keepalive = "5s"
mqtt = "{mqtt}"
{client}
will = {will}
[[fault]]
kind = "refuse"
at = "2s"
for = "4s"
[[fault]]
kind = "reset"
at = "2500ms"
"#
    );
    let (report, dir) = run_ok(&text, name).await;
    let heard = support::wills_heard(&dir);
    assert_eq!(heard.len(), 1, "{name}: {heard:?}");
    let (client, len, at) = &heard[0];
    assert_eq!(client, name, "attributed by its topic and payload");
    assert_eq!(*len, format!("{name} offline").len() as u64);
    assert_eq!(
        report.session.will,
        Some(true),
        "{name}: the CONNECT carried it"
    );
    assert_eq!(report.session.will_delay_s, delay);
    // After the reset: at once, or D..D + 1 s later; 0.1 s for mosquitto's loop and the hop.
    let after = (*at - report.windows[0].outage_start_us) as f64 / 1e6 - 0.5;
    let d = f64::from(delay.unwrap_or(0));
    let high = if delay.is_some() { d + 1.0 } else { 0.0 } + 0.1;
    assert!(
        (d - 0.1..=high).contains(&after),
        "{name}: {after} s after the reset"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paho_leaves_its_delayed_mqtt_5_will() {
    leaves_its_will(
        "paho-will",
        "client = \"paho-python\"\npaho = \"2\"",
        "5",
        Some(1),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mosquitto_sub_leaves_its_will() {
    leaves_its_will(
        "mosquitto-sub-will",
        "client = \"mosquitto_sub\"",
        "3.1.1",
        None,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_is_told_its_will_through_placeholders() {
    let command = r#"client = "command"
command = ["mosquitto_sub", "-h", "{host}", "-p", "{port}", "-i", "{client_id}", "-k", "{keepalive}", "-t", "{topic}", "-v", "--will-topic", "{will_topic}", "--will-payload", "{will_payload}", "--will-qos", "{will_qos}"]
pattern = '^\S+ (?P<payload>.*)$'"#;
    leaves_its_will("command-will", command, "3.1.1", None).await;
}

/// paho-mqtt 2.1 does not adopt an MQTT 5 Server Keep Alive (its `_handle_connack` only hands
/// the property to on_connect): asking for 30 s from a mosquitto whose `max_keepalive` is 10, it
/// keeps pinging every 30 s while mosquitto holds it to 10 (more than 15 whole seconds of
/// silence, checked every 6 s), so the healthy client is dropped with no fault at all, between
/// 15 and 22 s after its last packet. The report says asked, granted, and which band uses which.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paho_ignoring_the_server_keep_alive_is_dropped_on_a_healthy_line() {
    let text = r#"
name = "paho-server-keepalive"
duration = "32s"
[broker]
kind = "mosquitto"
max_keepalive = 10
[publisher]
interval = "1s"
[subscriber]
client = "paho-python"
paho = "2"
client_id = "paho-sk"
keepalive = "30s"
mqtt = "5"
"#;
    let (report, _) = run_ok(text, "paho-server-keepalive").await;
    assert_eq!(
        (
            report.keepalive_s,
            report.keepalive_granted_s,
            report.keepalive_asked_s
        ),
        (Some(30), Some(10), Some(30)),
        "paho runs on what it asked for"
    );
    let dropped = report
        .unexpected_disconnects
        .iter()
        .find(|u| u.by == "broker")
        .unwrap_or_else(|| panic!("{:#?}", report.unexpected_disconnects));
    assert!(
        (15.0..=22.1).contains(&dropped.t_s),
        "dropped at t+{} s",
        dropped.t_s
    );
}
