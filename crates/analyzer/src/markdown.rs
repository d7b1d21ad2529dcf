//! `report.md`: the run told as the 2014 post told it, but exact — the metrics, what happened in
//! order, and the verdict on each expectation.

use crate::delivery::Kept;
use crate::{Band, DataMetrics, DetectHow, Report, Story, Verdict, WindowMetrics, WindowReport};
use linecut_events::DisconnectCause;
use std::fmt::Write;

fn opt(v: Option<f64>) -> String {
    v.map_or("never".into(), |v| format!("{v:.3} s"))
}

fn band(b: &Option<Band>) -> String {
    match b {
        None => "—".into(),
        Some(b) => format!(
            "{} ±{} s: {}",
            span(b),
            b.tolerance_s,
            match b.verdict {
                Verdict::Outside => "**outside**".to_string(),
                v => v.words().to_string(),
            }
        ),
    }
}

/// A band's span: `low–high s`, or one value when the rule gives a single moment.
fn span(b: &Band) -> String {
    if (b.high_s - b.low_s).abs() < 0.05 {
        format!("{:.1} s", b.low_s)
    } else {
        format!("{:.1}–{:.1} s", b.low_s, b.high_s)
    }
}

/// Two views of one moment: both values and how far apart they are (from the unrounded times).
fn compare(client: Option<f64>, wire: Option<f64>, diff_ms: Option<f64>) -> String {
    let v = |x: Option<f64>| x.map_or("never".into(), |v| format!("{v:.3}"));
    match diff_ms {
        Some(d) => format!("{} / {} / {d:+.2} ms", v(client), v(wire)),
        None => format!("{} / {}", v(client), v(wire)),
    }
}

/// The window's answers in plain words: the questions the 2014 post was left with.
fn in_short(
    r: &Report,
    window: &WindowReport,
    m: &WindowMetrics,
    data: Option<&DataMetrics>,
) -> Vec<String> {
    let mut out = Vec::new();
    let outage_s = (window.outage_end_us - window.outage_start_us) as f64 / 1e6;
    // Whoever watched the wire: linecut's proxy, or a capture (namespace runs, `analyze`).
    let watcher = if wire_is_capture(r) {
        "as the capture shows"
    } else {
        "as the proxy saw on the wire"
    };
    let how = |h: DetectHow| match h {
        DetectHow::Cause(DisconnectCause::KeepaliveTimeout) => {
            "no PINGRESP came back for its PINGREQ (its keepalive rule)".to_string()
        }
        DetectHow::SocketClosed => format!("it closed its socket, {watcher}"),
        DetectHow::NewConnection => format!("it opened a new connection, {watcher}"),
        DetectHow::Cause(DisconnectCause::ConnectionLost) => {
            "its library reported the connection lost".to_string()
        }
        DetectHow::Cause(DisconnectCause::KernelTimeout) => {
            "its kernel gave up on unacknowledged data (tcp_retries2) before its keepalive rule did"
                .to_string()
        }
        other => other.name().replace('_', " "),
    };
    let story = |s: Story| m.stories.iter().find(|t| t.story == s);
    if let Some(down) = story(Story::DownBeforeFault) {
        out.push(format!(
            "The connection had already ended before the fault began: {}. What the client did during the outage were reconnect attempts, not a detection of it.",
            down.evidence
        ));
    } else {
        match (m.client_detect_s, m.client_detect_how) {
            (Some(t), Some(h)) => {
                let mut sentence = format!(
                    "The client decided the line was dead {t:.3} s after it went: {}",
                    how(h)
                );
                if let Some(b) = &m.client_detect_band {
                    sentence.push_str(&format!(
                        "; against its library's {} (±{} s): {} ({})",
                        span(b),
                        b.tolerance_s,
                        b.verdict.words(),
                        b.why
                    ));
                }
                // A middlebox's window ends when the dead connection does, not when a line
                // returns: there is no restore to be late for.
                if t > outage_s && !is_middlebox(window) {
                    sentence.push_str(&format!(
                        ". That was {:.3} s after the line had already returned: the verdict of a ping tick that fell just after the restore, a matter of phase",
                        t - outage_s
                    ));
                }
                sentence.push('.');
                out.push(sentence);
            }
            _ => out.push(match &m.client_detect_band {
                Some(b) => format!("The client never noticed the outage: {}.", b.why),
                None => "The client never noticed the outage.".into(),
            }),
        }
        let takeover = m.told(Story::SessionTakeover);
        match (m.broker_detect_s, m.broker_detect_how) {
            (Some(t), Some(h)) => {
                out.push(format!(
                    "The broker dropped the old connection {t:.3} s after the line went ({}).",
                    if h == DetectHow::Proxy && !wire_is_capture(r) {
                        "the proxy saw it close its side"
                    } else if h == DetectHow::Proxy {
                        "the capture shows it close its side"
                    } else {
                        "its log says so"
                    }
                ));
                // Only when the drop fits mosquitto's keepalive rule: a close for another
                // reason says nothing about how it treats a silent connection.
                let by_rule = m
                    .broker_detect_band
                    .as_ref()
                    .is_some_and(|b| b.verdict == Verdict::Inside);
                if r.broker.contains("mosquitto") && by_rule {
                    out.push("So mosquitto does close a silent connection, after about 1.5 times the keepalive; `persistent_client_expiration` only limits how long a stored session (clean_session = 0) is kept, not when a live connection is closed.".into());
                }
            }
            // A one-sided capture cannot say "never": that comes first.
            _ if !m.broker_side_visible => out.push(
                "Whether the broker dropped the old connection is not visible in this capture: it shows the outage from one side only."
                    .into(),
            ),
            _ if m.told(Story::OldConnectionKept) => out.push(
                "The broker never dropped the old connection itself, and kept it open beside the client's new one, with the same client id, until it ended by itself (above)."
                    .into(),
            ),
            _ if takeover => out.push(
                "The broker never dropped the old connection itself: the client's new connection, with the same client id, took it over."
                    .into(),
            ),
            _ => out.push(match &m.broker_detect_band {
                Some(b) => format!("The broker never dropped the connection: {}.", b.why),
                None => "The broker never dropped the connection.".into(),
            }),
        }
    }
    match (m.will_s, &m.will_band) {
        (Some(t), _) => out.push(format!(
            "The rest of the system heard the client was gone {t:.3} s after the line went: the will watcher received its will{}.",
            match m.will_after_connack_s {
                Some(a) if a < 0.0 => " as the client's new connection took the session over".to_string(),
                Some(a) => format!(", {a:.3} s after the client was connected again"),
                None => String::new(),
            }
        )),
        (None, Some(b)) => out.push(format!(
            "No will was published for the client: {}.",
            b.why
        )),
        (None, None) => {}
    }
    if let Some(back) = m.reconnect_s {
        out.push(format!(
            "The client was back {back:.3} s after the line returned, after {} connection attempt(s) since it gave up.",
            m.connect_attempts
        ));
        // `+ 0.0` turns a rounded -0.0 into 0.0, which prints as "0.000 s after".
        match m.reconnect_attempt_started_s.map(|a| a + 0.0) {
            // An inferred outage ends where the new connection began, by construction: when
            // its attempt began against that end would say nothing.
            Some(_) if window.kind == crate::capture::INFERRED => {}
            Some(a) if a < 0.0 && wire_is_capture(r) => out.push(format!(
                "Its successful attempt began {:.3} s before the line returned: its SYNs went unanswered until then, and the handshake completed at the kernel's first SYN retry after the restore.",
                -a
            )),
            Some(a) if a < 0.0 => out.push(format!(
                "Its successful attempt began {:.3} s before the line returned and waited in the proxy, which completes TCP handshakes during a cut and holds the bytes; on a pulled cable the handshake would not complete, and the reconnect would come at the first attempt after the restore.",
                -a
            )),
            // After a connection it closed itself (told above), the wait is that attempt's and
            // the library's delay after it, not what remained of the back-off.
            Some(a) if m.told(Story::ClosedBeforeConnack) => out.push(format!(
                "Its successful attempt began {a:.3} s after the line returned, after the new connection it closed itself (above)."
            )),
            Some(a) => out.push(format!(
                "Its successful attempt began {a:.3} s after the line returned: the rest of its back-off, which depends on when it gave up (the phase), not on how fast it reconnects."
            )),
            None => {}
        }
        let clean = match r.session.clean_session {
            Some(true) => "it connected with clean_session = 1, so the broker kept no session",
            Some(false) => "it connected with clean_session = 0",
            None => "its clean-session flag is not known",
        };
        out.push(match (m.resubscribed, m.session_present) {
            (Some(true), Some(false)) => format!("It subscribed again, and had to: {clean} (session_present = 0). The same client id does not keep a subscription; a persistent session (clean_session = 0) would."),
            (Some(true), Some(true)) => format!("It subscribed again, though the broker had kept its session (session_present = 1): not needed ({clean})."),
            (Some(false), Some(true)) => format!("It did not subscribe again and did not need to: the broker kept its session (session_present = 1; {clean})."),
            (Some(false), _) => format!("It did not subscribe again, and the broker kept no session ({clean}): its subscription was gone."),
            _ => "Whether it subscribed again is not known.".into(),
        });
    }
    if let Some(d) = data {
        out.push(format!(
            "The longest hole in the data was {} by publish time; over the run {} message(s) were lost, {} arrived late and {} twice.",
            d.data_gap_publish_s.map_or("unknown".into(), |g| format!("{g:.3} s")),
            d.lost,
            d.late,
            d.duplicates
        ));
    }
    if let Some(x) = &m.retransmitted {
        use crate::frames::{cite, Sender, WireSign};
        let syns: Vec<_> = x
            .frames
            .iter()
            .filter(|f| matches!(f.sign, WireSign::Syn | WireSign::SynRetry))
            .collect();
        let syn_frames = cite(syns).map(|c| format!(" ({c})")).unwrap_or_default();
        let tried = match (x.connects_tried, x.syn_spacing_s) {
            (0, _) => String::new(),
            (n, Some(gap)) => format!(
                " and tried {n} new connection(s), its kernel resending their SYNs {} time(s), a median {gap:.3} s apart{syn_frames}",
                x.syn_retries
            ),
            (n, None) => format!(" and tried {n} new connection(s){syn_frames}"),
        };
        out.push(format!(
            "On the link during the outage: the client resent {} segment(s) ({} bytes){tried}; the broker resent {} segment(s) ({} bytes).",
            x.up_segments, x.up_bytes, x.down_segments, x.down_bytes
        ));
        if x.neighbour_requests > 0 {
            let requests: Vec<_> = x
                .frames
                .iter()
                .filter(|f| f.sender == Sender::Client && f.sign == WireSign::NeighbourRequest)
                .collect();
            let spacing = x
                .resolution_spacing_s
                .map(|s| format!(", a median {s:.3} s apart"))
                .unwrap_or_default();
            let died = match x.unanswered_resolutions {
                0 => "each got its answer".to_string(),
                n if n == x.resolutions => "none got an answer, so whatever waited on them (a connect's SYN, a retransmission) never left the device as TCP".to_string(),
                n => format!(
                    "{n} got no answer, and whatever waited on those (a connect's SYN, a retransmission) never left the device as TCP"
                ),
            };
            out.push(format!(
                "The client's kernel asked for its neighbour's link address {} time(s) in {} resolution(s){spacing} ({}): {died}.",
                x.neighbour_requests,
                x.resolutions,
                cite(requests).unwrap_or_default()
            ));
        }
    }
    if let Some(stale) = story(Story::StaleDataAfterAbandon) {
        out.push(format!(
            "After the client had left the old connection: {}.",
            stale.evidence
        ));
    } else if m.client_detect_s.is_some() {
        out.push("Nothing reached the abandoned connection after the client left it.".into());
    }
    if is_middlebox(window) {
        // A middlebox's window is a dead connection's afterlife, not a line that went and came
        // back: its start is the middlebox forgetting the flow, its end the connection ending
        // for the client.
        for line in &mut out {
            *line = line
                .replace("after it went", "after the middlebox forgot its flow")
                .replace("after the line went", "after the middlebox forgot the flow")
                .replace("after the line returned", "after its dead connection ended")
                .replace("the outage (", "the dead connection's time (");
        }
    }
    out
}

/// Whether the window is a flow an idle-timeout middlebox forgot.
fn is_middlebox(window: &WindowReport) -> bool {
    window
        .spec
        .parse::<linecut_model::LinkFaultSpec>()
        .is_ok_and(|s| s.kind.is_middlebox())
}

/// The run's wire was a capture (a namespace run's links, or `linecut analyze CAPTURE`), not
/// linecut's proxy: what the report says the wire showed, and how, follows from it.
fn wire_is_capture(r: &Report) -> bool {
    r.capture.is_some() || r.network.is_some()
}

pub fn render(r: &Report) -> String {
    let mut out = String::new();
    header(&mut out, r);
    windows(&mut out, r);
    unexpected(&mut out, r);
    data(&mut out, r);
    timeline(&mut out, r);
    expectations(&mut out, r);
    capture_check(&mut out, r);
    warnings(&mut out, r);
    out
}

/// The report's the title, the run's settings, its network and capture, and how to read the times.
fn header(w: &mut String, r: &Report) {
    let _ = writeln!(w, "# {} — linecut report\n", r.scenario);
    if let Some(d) = &r.description {
        let _ = writeln!(w, "{d}\n");
    }
    let _ = writeln!(w, "- Broker: {}", r.broker);
    let _ = writeln!(w, "- Subscriber client: {}", r.client_library);
    let _ = writeln!(
        w,
        "- Keepalive: {}; clean session: {}; subscription QoS: {}",
        match (r.keepalive_s, r.keepalive_granted_s) {
            (Some(k), Some(g)) => format!(
                "the client asked for {} s and the broker granted {g} s in its CONNACK (Server Keep Alive), which it holds the client to, so the broker's band uses {g} s; {}",
                r.keepalive_asked_s.unwrap_or(g),
                if k == g {
                    format!("the client runs on {g} s too, and its band uses it")
                } else {
                    format!("the client runs on the {k} s it asked for (its library does not adopt the Server Keep Alive, which MQTT 5.0 §3.2.2.3.14 requires), and its band uses {k} s")
                }
            ),
            (Some(k), None) => format!("{k} s"),
            (None, _) => "unknown".into(),
        },
        match r.session.clean_session {
            Some(true) => "yes (clean_session = 1)",
            Some(false) => "no (clean_session = 0)",
            None => "unknown",
        },
        r.session
            .subscribe_qos
            .map_or("unknown".into(), |q| q.to_string())
    );
    if let Some(phase) = &r.phase {
        for f in &phase.faults {
            let _ = writeln!(
                w,
                "- Fault {} phase: started {:.3} s after its planned t+{:.3} s (drawn from 0–{:.3} s, jitter {}; seed {})",
                f.fault, f.offset_s, f.planned_at_s, f.span_s, f.jitter, phase.seed
            );
        }
    }
    if let Some(net) = &r.network {
        let tcp = if net.tcp.is_empty() {
            "the kernel's defaults".to_string()
        } else {
            net.tcp
                .iter()
                .map(|(k, v)| format!("{k} = {v}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let _ = writeln!(w, "- Network: namespace mode (run {}): each subscriber in its own network namespace on a veth pair to the broker at {}, faults as nftables rules on the pair, so both kernels see them (SYNs unanswered, data retransmitted on the kernels' timers); the wire is the capture on the host end of each pair. Device TCP settings: {tcp}.", net.run_id, net.broker_addr);
        // Which event each fault played: what a cut drops decides what the device's kernel
        // does, so the header says it.
        let mut told = std::collections::BTreeSet::new();
        for win in &r.windows {
            if !told.insert(win.fault) {
                continue;
            }
            if let Ok(spec) = win.spec.parse::<linecut_model::LinkFaultSpec>() {
                let _ = writeln!(
                    w,
                    "- Fault {} (`{}`): {}.",
                    win.fault,
                    win.spec,
                    spec.kind.event()
                );
            }
        }
    }
    let proxied_silence = r.capture.is_none()
        && r.network.is_none()
        && r.windows
            .iter()
            .any(|w| matches!(w.kind.as_str(), "cut" | "blackhole"));
    if proxied_silence {
        let _ = writeln!(w, "- Fault model: a proxy. During a cut its kernel completes new TCP handshakes and holds their bytes, and held bytes are released the instant the cut ends; a pulled cable would leave SYNs unanswered and release data on the broker's retransmission timer. Detection times are unaffected; reconnect and stale-data timings carry the proxy's model.");
    }
    if r.complete {
        let _ = writeln!(w, "- Run: complete");
    } else {
        let _ = writeln!(
            w,
            "- Run: **incomplete** — {}",
            r.incomplete_reason
                .as_deref()
                .unwrap_or("no reason recorded")
        );
    }
    if let Some(c) = &r.capture {
        let _ = writeln!(
            w,
            "- Capture: `{}` ({}, {} frames, {} bytes; MQTT on port {}: {} connection(s), {} packet(s); {} other frame(s))",
            c.file, c.container, c.frames, c.bytes, c.port, c.connections, c.mqtt_packets, c.other_frames
        );
        let _ = writeln!(
            w,
            "- TCP: {} byte(s) retransmitted, {} segment(s) out of order, {} gap(s) ({} byte(s) the capture lacks)",
            c.retransmitted_bytes, c.out_of_order_segments, c.gaps, c.gap_bytes
        );
        if let Some(stopped) = &c.stopped {
            let _ = writeln!(
                w,
                "- **Reading stopped early**: {stopped}; everything before it is analysed"
            );
        }
        if let Some(f) = &c.folded {
            let list = |m: &std::collections::BTreeMap<String, u64>| {
                m.iter()
                    .map(|(k, n)| format!("{n} {k}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let _ = writeln!(
                w,
                "- **Summarised**: {} connection(s) are counted, not described: this report describes the {} most informative connections (left without DISCONNECT, reset, retransmissions or stale data, broken streams, linecut's messages; the earliest among equals; one still open when the capture ends counts as ended there), plus those an inferred outage is made of. The counted ones ended: {}; their control packets: {}.",
                f.connections,
                f.in_detail,
                list(&f.ended),
                list(&f.packets)
            );
            if f.late_observations > 0 {
                let _ = writeln!(
                    w,
                    "- {} later segment(s) on counted connections were counted, not read",
                    f.late_observations
                );
            }
        }
        if c.inferred_windows > 0 {
            let _ = writeln!(
                w,
                "- {} outage window(s) **inferred** from the capture (the broker silent for at least the keepalive, then a reconnect): each starts at the broker's last word on the old connection and ends when the broker is heard again on any of the client's connections (attempts that got no answer are part of the outage)",
                c.inferred_windows
            );
        }
        let _ = writeln!(w, "\nTimes are seconds from the capture's first frame.\n");
    } else {
        let _ = writeln!(
            w,
            "\nTimes are seconds from the experiment start (every subscriber subscribed).\n"
        );
    }
}

/// The report's one section per fault window: its timings per subscriber, bands, stories and frames.
fn windows(w: &mut String, r: &Report) {
    for window in &r.windows {
        fault_window(w, r, window);
    }
    if r.windows.is_empty() {
        let _ = writeln!(w, "No fault was played in this run.\n");
    }
}

/// One fault window's section: its timings per subscriber, bands, stories and frames.
fn fault_window(w: &mut String, r: &Report, window: &crate::report::WindowReport) {
    let t = |us: i64| (us - r.experiment_start_us) as f64 / 1e6;
    if is_middlebox(window) {
        let whose = window
            .subscribers
            .iter()
            .map(|m| m.client.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        let _ = writeln!(
            w,
            "## Fault {}: {} forgot {whose}'s flow at t+{:.3} s (its connection dead until t+{:.3} s)\n\n`{}`\n",
            window.fault,
            window.kind,
            t(window.outage_start_us),
            t(window.outage_end_us),
            window.spec
        );
    } else {
        let _ = writeln!(
            w,
            "## Fault {}: {} from t+{:.3} s to t+{:.3} s\n\n`{}`\n",
            window.fault,
            window.kind,
            t(window.outage_start_us),
            t(window.outage_end_us),
            window.spec
        );
    }
    if let Some(rule) = &r.client_rule {
        let _ = writeln!(w, "The client's rule: {rule}\n");
    }
    // Faults that began while this one was on: what the window measures is theirs too.
    let overlapped: std::collections::BTreeSet<u64> = window
        .subscribers
        .iter()
        .flat_map(|m| m.overlapped_by.iter().copied())
        .collect();
    if !overlapped.is_empty() {
        let names: Vec<String> = overlapped.iter().map(|f| format!("fault {f}")).collect();
        let _ = writeln!(
            w,
            "{} began while this fault was on: the timings below are what the faults did together, not this one's alone.\n",
            names.join(", ")
        );
    }
    let _ = writeln!(w, "| subscriber | client gave up | how | expected | broker gave up | expected | back (CONNACK) | re-subscribed | first fresh message | attempts since giving up |");
    let _ = writeln!(w, "|---|---|---|---|---|---|---|---|---|---|");
    for m in &window.subscribers {
        if let Some(fault) = m.inside_fault {
            let _ = writeln!(
                w,
                "| {} | began inside fault {fault} (still on for this subscriber): measured in its window, which covers both | — | — | — | — | — | — | — | — |",
                m.client
            );
            continue;
        }
        let _ = writeln!(
            w,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            m.client,
            opt(m.client_detect_s),
            m.client_detect_how
                .map_or_else(|| "—".to_string(), |h| h.name()),
            band(&m.client_detect_band),
            if m.broker_detect_s.is_none() && !m.broker_side_visible {
                "not visible in this capture".to_string()
            } else {
                opt(m.broker_detect_s)
            },
            band(&m.broker_detect_band),
            m.reconnect_s
                .map_or("—".into(), |v| format!("{v:+.3} s after the end")),
            match m.resubscribed {
                Some(true) => format!(
                    "yes (session_present={})",
                    m.session_present.unwrap_or(false)
                ),
                Some(false) => format!(
                    "no (session_present={})",
                    m.session_present.unwrap_or(false)
                ),
                None => "—".into(),
            },
            m.first_fresh_s
                .map_or("—".into(), |v| format!("{v:+.3} s after the end")),
            m.connect_attempts,
        );
    }
    if window.subscribers.len() > 1 {
        let _ = writeln!(
            w,
            "\nAcross the {} subscribers:\n",
            window.subscribers.len()
        );
        let _ = writeln!(w, "| timing | measured | min | p50 | p90 | p99 | max |");
        let _ = writeln!(w, "|---|---|---|---|---|---|---|");
        for (name, d) in &window.distribution {
            let _ = writeln!(
                w,
                "| {name} | {} of {} | {:.3} s | {:.3} s | {:.3} s | {:.3} s | {:.3} s |",
                d.count,
                d.count + d.missing,
                d.min,
                d.p50,
                d.p90,
                d.p99,
                d.max
            );
        }
    }
    let from_wire: Vec<&str> = window
        .subscribers
        .iter()
        .filter(|m| !m.reported_by_client)
        .map(|m| m.client.as_str())
        .collect();
    if !from_wire.is_empty() {
        let _ = writeln!(
            w,
            "\nMeasured from the wire (the client reports nothing about its connection): {}.",
            from_wire.join(", ")
        );
    }
    let both: Vec<_> = window
        .subscribers
        .iter()
        .filter(|m| m.reported_by_client)
        .collect();
    if !both.is_empty() {
        let _ = writeln!(
            w,
            "\nWhat the client reported against what {} saw on the wire:\n",
            if wire_is_capture(r) {
                "the capture"
            } else {
                "the proxy"
            }
        );
        let _ = writeln!(w, "| subscriber | gave up: client / wire / difference | back: client / wire / difference | re-subscribed: client / wire / difference |");
        let _ = writeln!(w, "|---|---|---|---|");
        for m in both {
            let _ = writeln!(
                w,
                "| {} | {} | {} | {} |",
                m.client,
                match (m.wire_detect_how, wire_is_capture(r)) {
                    (Some(DetectHow::NewConnection), true) => format!(
                        "{} / no close from the client on the wire (its first sign there: a new connection's SYN at {}) / —",
                        m.client_detect_s.map_or("never".into(), |v| format!("{v:.3}")),
                        m.wire_detect_s.map_or("never".into(), |v| format!("{v:.3} s")),
                    ),
                    _ => compare(
                        m.client_detect_s,
                        m.wire_detect_s,
                        m.client_minus_wire.detect_ms
                    ),
                },
                compare(
                    m.reconnect_s,
                    m.wire_reconnect_s,
                    m.client_minus_wire.reconnect_ms
                ),
                compare(
                    m.resubscribe_s,
                    m.wire_resubscribe_s,
                    m.client_minus_wire.resubscribe_ms
                ),
            );
        }
    }
    // When the rest of the system heard (runs whose subscribers leave a will).
    if window
        .subscribers
        .iter()
        .any(|m| m.will_s.is_some() || m.will_band.is_some())
    {
        let _ = writeln!(
            w,
            "\n| subscriber | will heard by the watcher | expected | after the client was back |"
        );
        let _ = writeln!(w, "|---|---|---|---|");
        for m in window
            .subscribers
            .iter()
            .filter(|m| m.inside_fault.is_none())
        {
            let _ = writeln!(
                w,
                "| {} | {} | {} | {} |",
                m.client,
                m.will_s.map_or("never".into(), |t| format!("{t:.3} s")),
                band(&m.will_band),
                m.will_after_connack_s.map_or("—".into(), |t| {
                    if t < 0.0 {
                        format!("with its new connection ({:.3} s before its CONNACK)", -t)
                    } else {
                        format!("{t:.3} s after its CONNACK")
                    }
                })
            );
        }
    }
    for m in &window.subscribers {
        for told in &m.stories {
            let _ = writeln!(w, "\n- {}: {}: {}.", m.client, told.story, told.evidence);
        }
    }
    // The bands in full for a handful of subscribers: rule, tolerance and its source.
    if window.subscribers.len() <= 3 {
        for m in &window.subscribers {
            for (side, b) in [
                ("client", &m.client_detect_band),
                ("broker", &m.broker_detect_band),
                ("will", &m.will_band),
            ] {
                if let Some(b) = b {
                    let _ = writeln!(
                        w,
                        "\n- {} band for {}: {}. Tolerance ±{} s: {}.",
                        side, m.client, b.rule, b.tolerance_s, b.tolerance
                    );
                }
            }
        }
    }
    // Plain answers for a handful of subscribers; a fleet has its distribution table.
    if window.subscribers.len() <= 3 {
        for m in &window.subscribers {
            let data = r.data.iter().find(|d| d.client == m.client);
            let _ = writeln!(w, "\n**In short ({}):**", m.client);
            for sentence in in_short(r, window, m, data) {
                let _ = writeln!(w, "{sentence}");
            }
        }
    }
    let _ = writeln!(w);
}

/// The report's disconnects no fault explains.
fn unexpected(w: &mut String, r: &Report) {
    // A weak link is a fault but not an outage: disconnects during it are listed here, under a
    // heading that does not say they came outside every fault.
    let weak = r
        .unexpected_disconnects
        .iter()
        .any(|u| u.weak_link.is_some());
    let _ = writeln!(
        w,
        "## Disconnects {}\n",
        if weak {
            "no outage explains"
        } else {
            "outside any fault"
        }
    );
    if r.unexpected_disconnects.is_empty() {
        let _ = writeln!(
            w,
            "None: every subscriber connection that ended, ended inside a fault window or its settling time, after the client's DISCONNECT, or when the run stopped (connections that never subscribed, a capture's publishers among them, are not judged).\n"
        );
    } else {
        if r.unexpected_disconnects
            .iter()
            .any(|u| u.weak_link.is_some())
        {
            let _ = writeln!(w, "No outage explains these: the line never went down. Those marked \"weak link\" happened while a weak-link fault slowed and thinned it: false disconnects, a deadline missed on a link that was still up.\n");
        } else {
            let _ = writeln!(w, "No fault explains these: the line was healthy.\n");
        }
        let _ = writeln!(w, "| subscriber | at | ended by | cause | evidence |");
        let _ = writeln!(w, "|---|---|---|---|---|");
        for u in &r.unexpected_disconnects {
            let _ = writeln!(
                w,
                "| {} | t{:+.3} s{} | {} | {} | {} |",
                u.client,
                u.t_s,
                u.weak_link
                    .map(|f| format!(" (weak link, fault {f})"))
                    .unwrap_or_default(),
                u.by,
                u.cause,
                u.evidence
            );
        }
        let _ = writeln!(w);
    }
}

/// The report's per subscriber, what was published, delivered, lost, late and out of order.
fn data(w: &mut String, r: &Report) {
    let _ = writeln!(w, "## Data\n");
    // What the connections cost on the wire, where a capture counted their frames.
    let wire = r.data.iter().any(|d| d.wire.is_some());
    let _ = writeln!(
        w,
        "| subscriber | published | delivered | lost | duplicates | late (max delay) | out of order | longest gap, receive time | longest gap, publish time | reconnects | foreign | PINGREQs (median interval) |{}",
        if wire { " on the wire (frames, bytes with headers) |" } else { "" }
    );
    let _ = writeln!(
        w,
        "|---|---|---|---|---|---|---|---|---|---|---|---|{}",
        if wire { "---|" } else { "" }
    );
    for d in &r.data {
        let _ = writeln!(
            w,
            "| {} | {} | {} | {} | {} | {} ({}) | {} | {} | {} | {} | {} | {} ({}) |{}",
            d.client,
            d.published,
            d.delivered,
            d.lost,
            d.duplicates,
            d.late,
            d.late_max_delay_s
                .map_or("—".into(), |v| format!("{v:.3} s")),
            d.out_of_order,
            opt(d.data_gap_receive_s),
            opt(d.data_gap_publish_s),
            d.reconnects,
            d.foreign,
            d.pings,
            d.ping_interval_s
                .map_or("—".into(), |v| format!("{v:.3} s")),
            match (wire, d.wire) {
                (false, _) => String::new(),
                (true, Some(c)) => format!(" {} frames, {} bytes |", c.frames, c.bytes),
                (true, None) => " — |".into(),
            }
        );
    }
    for d in &r.data {
        if let Some(q) = d.delay_s {
            let _ = writeln!(
                w,
                "\n{}: on the weak link, deliveries took {:.3} s (median), {:.3} s (p99), {:.3} s at most, publish to receipt.",
                d.client, q.p50, q.p99, q.max
            );
        }
    }
    // Fleets: the verdicts that were not kept, and a count of the rest.
    let verdicts: Vec<(&str, &crate::DeliveryVerdict)> = r
        .data
        .iter()
        .filter_map(|d| Some((d.client.as_str(), d.delivery.as_ref()?)))
        .collect();
    if verdicts.is_empty() {
        return;
    }
    let _ = writeln!(w, "\nWhat the QoS and the session promised:\n");
    let shown = verdicts
        .iter()
        .filter(|(_, v)| verdicts.len() <= 3 || v.kept != Kept::AsPromised);
    for (client, v) in shown {
        let _ = writeln!(
            w,
            "- {client}: **{}**: {}.",
            match v.kept {
                Kept::AsPromised => "as promised",
                Kept::Broken => "broken",
                Kept::NotDecidable => "not decidable",
            },
            v.why
        );
    }
    if verdicts.len() > 3 {
        let kept = verdicts
            .iter()
            .filter(|(_, v)| v.kept == Kept::AsPromised)
            .count();
        let _ = writeln!(
            w,
            "- {kept} of {} subscribers: as promised.",
            verdicts.len()
        );
    }
}

/// The report's the run's events in time order.
fn timeline(w: &mut String, r: &Report) {
    let _ = writeln!(w, "\n## Timeline\n");
    for e in &r.timeline {
        let who = e
            .client
            .as_deref()
            .map(|c| format!("{c}: "))
            .unwrap_or_default();
        let _ = writeln!(w, "- t{:+.3} s — {who}{}", e.t_s, e.what);
    }
}

/// The report's the scenario's expectations and their verdicts.
fn expectations(w: &mut String, r: &Report) {
    let _ = writeln!(w, "\n## Expectations\n");
    if r.expectations.is_empty() {
        let _ = writeln!(w, "None were set.");
    } else {
        let _ = writeln!(w, "| metric | condition | value(s) | verdict |");
        let _ = writeln!(w, "|---|---|---|---|");
        for x in &r.expectations {
            let values = x
                .values
                .iter()
                .map(|(c, v)| format!("{c}: {}", v.map_or("none".into(), |v| format!("{v}"))))
                .collect::<Vec<_>>()
                .join(", ");
            let verdict = match (&x.problem, x.ok) {
                (Some(p), _) => format!("**fail** ({p})"),
                (None, true) => "pass".into(),
                (None, false) => "**fail**".into(),
            };
            let _ = writeln!(
                w,
                "| {} | `{}` | {} | {} |",
                x.metric, x.condition, values, verdict
            );
        }
    }
}

/// The report's the capture's control packets against the proxy's log.
fn capture_check(w: &mut String, r: &Report) {
    if let Some(check) = &r.capture_check {
        let _ = writeln!(
            w,
            "\n## Capture against events\n\n`{}` against the proxy's log, control packets on the client side: {}.\n",
            check.file,
            if check.agree {
                "the two views agree"
            } else {
                "**they differ** (rows marked below)"
            }
        );
        let _ = writeln!(w, "| subscriber | packet | events | capture | |");
        let _ = writeln!(w, "|---|---|---|---|---|");
        for row in &check.rows {
            let _ = writeln!(
                w,
                "| {} | {} | {} | {} | {} |",
                row.client,
                row.packet,
                row.events,
                row.capture,
                if row.events == row.capture {
                    ""
                } else {
                    "**differ**"
                }
            );
        }
    }
}

/// The report's what the analysis could not read or decide.
fn warnings(w: &mut String, r: &Report) {
    if !r.warnings.is_empty() {
        let _ = writeln!(w, "\n## Warnings\n");
        for warning in &r.warnings {
            let _ = writeln!(w, "- {warning}");
        }
    }
}
