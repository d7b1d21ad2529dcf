//! The `linecut` binary's contract with scripts: what it prints, where, and its exit codes.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn linecut() -> Command {
    Command::new(env!("CARGO_BIN_EXE_linecut"))
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("linecut-cli-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs to completion and returns (exit code, stderr).
fn fails(args: &[&str]) -> (i32, String) {
    let out = linecut().args(args).output().unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
fn proxy_prints_its_bound_address_first_and_forwards_through_it() {
    let broker = TcpListener::bind("127.0.0.1:0").unwrap();
    let events = temp_dir("forward").join("proxy.jsonl");
    let mut child = linecut()
        .args(["proxy", "--listen", "127.0.0.1:0", "--upstream"])
        .arg(broker.local_addr().unwrap().to_string())
        .args(["--duration", "20s", "--events"])
        .arg(&events)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    let addr: SocketAddr = first
        .trim()
        .parse()
        .expect("first line is the bound address");
    assert_ne!(addr.port(), 0);

    let mut client = TcpStream::connect(addr).unwrap();
    let (mut upstream, _) = broker.accept().unwrap();
    client.write_all(&[0xc0, 0x00]).unwrap();
    let mut buf = [0u8; 2];
    upstream.read_exact(&mut buf).unwrap();
    assert_eq!(buf, [0xc0, 0x00]);
    drop((client, upstream));

    // SIGTERM stops it cleanly, with a complete events file.
    let pid = child.id().to_string();
    Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    let text = std::fs::read_to_string(&events).unwrap();
    let first_event: serde_json::Value =
        serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(first_event["type"], "header");
    assert!(text.contains(r#""type":"proxy_stopped""#), "{text}");
    assert!(text.contains(r#""packet_type":"PINGREQ""#) || text.contains(r#""type":"raw_bytes""#));
}

#[test]
fn duration_stops_the_proxy_by_itself() {
    let started = Instant::now();
    let out = linecut()
        .args([
            "proxy",
            "--listen",
            "127.0.0.1:0",
            "--upstream",
            "127.0.0.1:9",
        ])
        .args(["--duration", "300ms"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[test]
fn a_malformed_fault_exits_2_naming_the_flag_and_the_problem() {
    let (code, stderr) = fails(&[
        "proxy",
        "--upstream",
        "127.0.0.1:1883",
        "--fault",
        "cut:for=soon",
    ]);
    assert_eq!(code, 2);
    assert!(stderr.contains("--fault"), "{stderr}");
    assert!(stderr.contains("`for=soon` is not a duration"), "{stderr}");

    let (code, stderr) = fails(&["proxy", "--upstream", "127.0.0.1:1883", "--fault", "flood"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("unknown fault kind `flood`"), "{stderr}");
}

#[test]
fn malformed_addresses_exit_2_naming_the_flag() {
    let (code, stderr) = fails(&["proxy", "--upstream", "localhost"]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("--upstream") && stderr.contains("HOST:PORT"),
        "{stderr}"
    );
    let (code, stderr) = fails(&["proxy", "--upstream", "h:1", "--listen", "nowhere"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("--listen"), "{stderr}");
}

#[test]
fn the_control_api_stays_on_loopback_unless_explicitly_allowed() {
    let (code, stderr) = fails(&["proxy", "--upstream", "h:1", "--control", "0.0.0.0:0"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("--allow-remote-control"), "{stderr}");
}

#[test]
fn an_unwritable_events_file_exits_2_naming_it() {
    let (code, stderr) = fails(&[
        "proxy",
        "--listen",
        "127.0.0.1:0",
        "--upstream",
        "127.0.0.1:9",
        "--events",
        "/nonexistent-dir/proxy.jsonl",
    ]);
    assert_eq!(code, 2);
    assert!(stderr.contains("/nonexistent-dir/proxy.jsonl"), "{stderr}");
}
