//! The bands the protocol and the implementations give for detecting a silent outage, measured
//! from the outage start with keepalive K (facts from the libraries' and brokers' sources; see
//! the project's keepalive notes), and the three-way verdict on a measurement.
//!
//! MQTT 5 changes none of these rules in the brokers linecut starts (mosquitto 2.0's
//! `keepalive.c` and rumqttd 0.20's read timeout in `link/network.rs` treat both versions
//! alike); what it adds is the keepalive a broker may grant instead of the one asked for
//! (mosquitto's `max_keepalive`, sent as Server Keep Alive; rumqttd sends none), which the
//! analysis reads off the CONNACK, and the Will Delay Interval of [`will`].
//!
//! Every band carries its tolerance and where the tolerance comes from, so a value just past an
//! edge is judged by a rule the report prints, not by a hidden slack. A "never" is judged too:
//! it violates a band only when the outage (and the time watched after it) outlasted the band's
//! upper end; an outage shorter than that leaves it undecided, and one shorter than the lower end
//! makes "never" the band's own prediction.

use crate::{Band, Verdict};
use linecut_model::{BrokerFamily, ClientFamily};

/// A band before judging.
#[derive(Debug, Clone)]
pub struct Rule {
    pub low_s: f64,
    pub high_s: f64,
    /// Added to both ends when judging a measured value.
    pub tolerance_s: f64,
    /// Where the tolerance comes from.
    pub tolerance: &'static str,
    pub rule: String,
    /// Set when a "never" is what the implementation's own code gives, whatever the band says
    /// (rumqttd while it publishes to the client): the sentence saying so.
    pub never_by_design: Option<String>,
}

impl Rule {
    /// The rule with the kernel's `TCP_USER_TIMEOUT` of `ut_s` on the client's socket: with a
    /// PINGREQ unacknowledged, the kernel ends the connection `ut_s` after it was sent (its
    /// retransmission timer is clamped to what remains of the timeout), before the library's
    /// own give-up K after the ping when `ut_s` < K. The ping goes out where the rule says
    /// (from the outage start to K + 1 s in), so the band is ut..high − K + ut.
    pub fn with_user_timeout(mut self, ut_s: f64, k: f64) -> Rule {
        if ut_s >= k {
            return self;
        }
        self.low_s = ut_s.min(self.low_s);
        self.high_s = self.high_s - k + ut_s;
        self.rule = format!(
            "{}; with tcp_user_timeout = {ut_s} s on its socket the kernel ends the connection {ut_s} s after the unanswered PINGREQ, before that: {}..{} s",
            self.rule, self.low_s, self.high_s
        );
        self
    }
}

/// What a window lets the judge see.
#[derive(Debug, Clone, Copy)]
pub struct Watched {
    /// How long the outage lasted.
    pub outage_s: f64,
    /// How long after the outage start the analysis looked for a detection.
    pub watched_s: f64,
}

impl Rule {
    pub fn judge(&self, measured: Option<f64>, seen: Watched) -> Band {
        let tol = self.tolerance_s;
        let (verdict, why) = match measured {
            Some(m) if m >= self.low_s - tol && m <= self.high_s + tol => (
                Verdict::Inside,
                if m > self.high_s || m < self.low_s {
                    format!("{m:.3} s is within the {tol} s tolerance of the band")
                } else {
                    format!("{m:.3} s lies in the band")
                },
            ),
            Some(m) => (
                Verdict::Outside,
                format!(
                    "{m:.3} s is {} the band, beyond its {tol} s tolerance",
                    if m < self.low_s { "below" } else { "above" }
                ),
            ),
            None => match &self.never_by_design {
                Some(sentence) => (Verdict::Inside, sentence.clone()),
                None if seen.outage_s > self.high_s + tol && seen.watched_s > self.high_s + tol => (
                    Verdict::Outside,
                    format!(
                        "never, although the outage ({:.3} s) outlasted the band's upper end",
                        seen.outage_s
                    ),
                ),
                None if seen.outage_s <= self.low_s => (
                    Verdict::Inside,
                    format!(
                        "never, as the rule predicts: the outage ({:.3} s) was no longer than the band's lower end",
                        seen.outage_s
                    ),
                ),
                None => (
                    Verdict::NotDecidable,
                    format!(
                        "never is allowed: the outage ({:.3} s) was shorter than the band's upper end, so it depends on the phase",
                        seen.outage_s
                    ),
                ),
            },
        };
        Band {
            low_s: self.low_s,
            high_s: self.high_s,
            tolerance_s: tol,
            tolerance: self.tolerance.to_string(),
            verdict,
            why,
            rule: self.rule.clone(),
        }
    }
}

/// rumqttc re-arms its ping timer from the moment it fires, so each tick drifts by about 1 ms;
/// events are stamped when the client's task runs, which a loaded machine delays.
const RUMQTTC_TOLERANCE: &str =
    "timer drift (about 1 ms per tick, the timer is re-armed when it fires) and event stamping on a loaded machine";
/// paho's check runs on each loop wake-up (a packet, or the 1 s select timeout), already in the
/// band's +1 s; what remains is the stamping of its callback.
const PAHO_TOLERANCE: &str = "the client loop's wake-up and event stamping on a loaded machine";
/// mosquitto's clock is whole seconds and its check runs in its event loop.
const MOSQUITTO_TOLERANCE: &str =
    "mosquitto's event loop wakes at least once a second; the close is stamped when the proxy or the capture sees it";
/// rumqttd's read timeout is a tokio timer in its connection task.
const RUMQTTD_TOLERANCE: &str =
    "rumqttd's read timeout runs on its async runtime's timer; the close is stamped when the proxy or the capture sees it";
/// A will is stamped by the watcher, not at the broker's close.
const WILL_TOLERANCE: &str =
    "the broker's loop (mosquitto's wakes at least every 100 ms, rumqttd's timers are its runtime's) and the will's loopback hop to the watcher, stamped when the watcher's task runs";
/// One tolerance for every rule: well above the measured tick drift (a few ms over a run) and
/// well below the shortest keepalive the bands are drawn for (1 s).
const TOLERANCE_S: f64 = 0.1;

/// Whether the library runs on the keepalive an MQTT 5 broker grants in its CONNACK (Server
/// Keep Alive), as MQTT 5.0 §3.2.2.3.14 requires: rumqttc does (`v5/eventloop.rs`, `connect`),
/// libmosquitto does (`handle_connack.c`); paho-mqtt 1.6 and 2.1 do not (their
/// `_handle_connack` hands the property to `on_connect` only and keeps pinging on their own).
pub fn adopts_server_keepalive(library: ClientFamily) -> bool {
    matches!(library, ClientFamily::Rumqttc | ClientFamily::Libmosquitto)
}

/// The client library's band.
pub fn client(library: ClientFamily, k: u16) -> Option<Rule> {
    let k = f64::from(k);
    if k == 0.0 {
        return None;
    }
    let (high_s, rule, tolerance) = match library {
        ClientFamily::Rumqttc => (2.0 * k, "rumqttc sends PINGREQ every K from CONNACK, whatever else it sends or receives, and gives up at the next tick if that PINGREQ is still unanswered: K..2K after the outage starts", RUMQTTC_TOLERANCE),
        ClientFamily::Libmosquitto => (2.0 * k + 1.0, "libmosquitto sends PINGREQ once K has passed since it last sent a packet and gives up K after an unanswered PINGREQ; its loop checks about once a second: K..2K+1 s", PAHO_TOLERANCE),
        ClientFamily::Paho => (2.0 * k + 1.0, "paho sends PINGREQ once K has passed since it last sent a packet or since it last received one, whichever is first (so incoming data does not postpone it), and gives up K after an unanswered PINGREQ; it checks on each loop wake-up, at least once a second: K..2K+1 s (client.py `_check_keepalive`, the same in paho-mqtt 1.0, 1.6 and 2.1)", PAHO_TOLERANCE),
        _ => return None,
    };
    Some(Rule {
        low_s: k,
        high_s,
        tolerance_s: TOLERANCE_S,
        tolerance,
        rule: rule.into(),
        never_by_design: None,
    })
}

/// The client's rule and what it means for an outage, in words, for keepalive `k`: when a cut
/// is never noticed, always noticed, and when it depends on the phase.
pub fn client_consequence(library: ClientFamily, k: u16) -> Option<String> {
    let r = client(library, k)?;
    let (low, high) = (r.low_s, r.high_s);
    let how = match library {
        ClientFamily::Rumqttc => format!("rumqttc sends PINGREQ every {k} s from CONNACK and gives up at the next tick if it is unanswered"),
        ClientFamily::Paho => format!("paho sends PINGREQ once {k} s have passed since it last sent anything (every {k} to {} s for a subscriber that only receives, as its check runs about once a second) and gives up {k} s after an unanswered PINGREQ", k + 1),
        ClientFamily::Libmosquitto => format!("libmosquitto sends PINGREQ once {k} s have passed since it last sent anything and gives up {k} s after an unanswered PINGREQ"),
        _ => return None,
    };
    Some(format!(
        "{how}. So an outage of {low:.0} s or less is never noticed, one of {high:.0} s or more always is, and in between it depends on where the outage falls in the ping cycle."
    ))
}

/// Longest silence of an idle, healthy client between two packets it sends: K for rumqttc (it
/// pings every K from CONNACK); up to K + 1 s for paho and libmosquitto, whose check runs about
/// once a second (measured: paho 2.1 pings every K or K + 1 s while it only receives).
fn client_silence(library: ClientFamily, k: f64) -> f64 {
    if matches!(library, ClientFamily::Paho | ClientFamily::Libmosquitto) {
        k + 1.0
    } else {
        k
    }
}

/// The broker's band, given the client library (whose ping rhythm decides how long before the
/// outage the broker last heard from it) or, better, the client's last packet before the
/// outage (`silent_before_s`: how long before the outage start it was sent).
pub fn broker(
    broker: BrokerFamily,
    k: u16,
    library: ClientFamily,
    silent_before_s: Option<f64>,
    broker_kept_sending: bool,
) -> Option<Rule> {
    if k == 0 {
        return None;
    }
    let k = f64::from(k);
    let (before, before_words) = match silent_before_s {
        Some(s) => (
            (s, s),
            format!("the client's last packet came {s:.3} s before the outage"),
        ),
        None => {
            let silence = client_silence(library, k);
            (
                (silence, 0.0),
                format!(
                    "the client's last packet came up to {} before the outage",
                    if silence > k { "K + 1 s" } else { "K" }
                ),
            )
        }
    };
    match broker {
        BrokerFamily::Mosquitto => {
            let limit = (1.5 * k).floor();
            Some(Rule {
                low_s: (limit - before.0).max(0.0),
                high_s: limit + 7.0 - before.1,
                tolerance_s: TOLERANCE_S,
                tolerance: MOSQUITTO_TOLERANCE,
                rule: format!("mosquitto drops a client once more than floor(1.5K) = {limit:.0} whole seconds pass without a packet from it, checking every 6 whole seconds (so up to 7 s late); {before_words}"),
                never_by_design: None,
            })
        }
        BrokerFamily::Rumqttd => Some(Rule {
            low_s: (1.5 * k - before.0).max(0.0),
            high_s: 1.5 * k - before.1,
            tolerance_s: TOLERANCE_S,
            tolerance: RUMQTTD_TOLERANCE,
            rule: format!("the MQTT spec (3.1.1 §3.1.2.10) has the broker drop a client after 1.5K of silence; {before_words}"),
            never_by_design: broker_kept_sending.then(|| {
                "never, as rumqttd's code gives: it restarts its keepalive timer whenever it sends to the client, and it kept publishing to it through the outage. That departs from the spec's 1.5K rule".to_string()
            }),
        }),
        _ => None,
    }
}

/// The will's band, from the broker's band for dropping the client (`drop`): mosquitto
/// publishes the will in the pass that drops the client, or, with a Will Delay Interval of D s,
/// once its once-a-second will-delay check finds the delay past: (D, D + 1] s later
/// (`will_delay.c`, wall-clock seconds). rumqttd waits min(D, Session Expiry Interval) — no
/// delay without a session expiry, none ever for MQTT 3.1.1 — on a millisecond timer
/// (`server/broker.rs`, `link/remote.rs`). The will's way to the watcher is a loopback hop.
pub fn will(
    drop: Rule,
    broker: BrokerFamily,
    delay_s: Option<u32>,
    session_expiry_s: Option<u32>,
) -> Option<Rule> {
    let (low, high, words) = match broker {
        BrokerFamily::Mosquitto => match delay_s.filter(|d| *d > 0) {
            None => (
                0.0,
                0.0,
                "mosquitto publishes the will as it drops the client".to_string(),
            ),
            Some(d) => {
                let d = f64::from(d);
                (
                    d,
                    d + 1.0,
                    format!("mosquitto publishes the will once its once-a-second check finds the Will Delay Interval ({d:.0} s) past: {d:.0}..{:.0} s after it drops the client", d + 1.0),
                )
            }
        },
        BrokerFamily::Rumqttd => {
            let d = f64::from(delay_s.unwrap_or(0).min(session_expiry_s.unwrap_or(0)));
            (
                d,
                d,
                if d > 0.0 {
                    format!("rumqttd publishes the will min(Will Delay Interval, Session Expiry Interval) = {d:.0} s after it drops the client")
                } else {
                    "rumqttd publishes the will as it drops the client (it waits min(Will Delay Interval, Session Expiry Interval), 0 here)".to_string()
                },
            )
        }
        _ => return None,
    };
    Some(Rule {
        low_s: drop.low_s + low,
        high_s: drop.high_s + high,
        tolerance_s: drop.tolerance_s,
        tolerance: WILL_TOLERANCE,
        rule: format!("{words}; {}", drop.rule),
        never_by_design: drop.never_by_design,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(outage_s: f64) -> Watched {
        Watched {
            outage_s,
            watched_s: outage_s + 20.0,
        }
    }

    #[test]
    fn a_never_is_outside_only_when_the_outage_outlasted_the_band() {
        let r = client(ClientFamily::Rumqttc, 2).unwrap();
        assert_eq!(r.judge(None, seen(5.0)).verdict, Verdict::Outside);
        assert_eq!(r.judge(None, seen(3.0)).verdict, Verdict::NotDecidable);
        assert_eq!(r.judge(None, seen(2.0)).verdict, Verdict::Inside);
        // The run ended before the band's upper end: nothing can be said.
        let short = Watched {
            outage_s: 10.0,
            watched_s: 3.0,
        };
        assert_eq!(r.judge(None, short).verdict, Verdict::NotDecidable);
    }

    #[test]
    fn values_just_past_an_edge_are_inside_by_the_printed_tolerance() {
        let r = client(ClientFamily::Rumqttc, 5).unwrap();
        let b = r.judge(Some(10.003), seen(10.0));
        assert_eq!(b.verdict, Verdict::Inside);
        assert!(b.why.contains("tolerance"), "{}", b.why);
        assert_eq!(r.judge(Some(10.2), seen(10.0)).verdict, Verdict::Outside);
        assert_eq!(r.judge(Some(4.8), seen(10.0)).verdict, Verdict::Outside);
    }

    #[test]
    fn the_broker_band_narrows_with_the_known_last_packet() {
        let r = broker(
            BrokerFamily::Mosquitto,
            60,
            ClientFamily::Rumqttc,
            Some(0.004),
            false,
        )
        .unwrap();
        assert!((r.low_s - 89.996).abs() < 1e-9 && (r.high_s - 96.996).abs() < 1e-9);
        let loose = broker(BrokerFamily::Mosquitto, 60, ClientFamily::Paho, None, false).unwrap();
        assert_eq!((loose.low_s, loose.high_s), (29.0, 97.0));
        let rumqttd = broker(
            BrokerFamily::Rumqttd,
            2,
            ClientFamily::Rumqttc,
            Some(0.5),
            true,
        )
        .unwrap();
        let b = rumqttd.judge(None, seen(8.0));
        assert_eq!(b.verdict, Verdict::Inside);
        assert!(b.why.contains("departs from the spec"), "{}", b.why);
    }

    #[test]
    fn the_will_band_is_the_drop_band_moved_by_the_brokers_delay() {
        let drop = || {
            broker(
                BrokerFamily::Mosquitto,
                2,
                ClientFamily::Rumqttc,
                Some(0.5),
                false,
            )
            .unwrap()
        };
        let now = will(drop(), BrokerFamily::Mosquitto, None, None).unwrap();
        assert_eq!((now.low_s, now.high_s), (2.5, 9.5));
        let later = will(drop(), BrokerFamily::Mosquitto, Some(5), Some(60)).unwrap();
        assert_eq!((later.low_s, later.high_s), (7.5, 15.5));
        assert!(
            later.rule.contains("Will Delay Interval (5 s)"),
            "{}",
            later.rule
        );
        // rumqttd delays only by what the session expiry allows.
        let r = broker(
            BrokerFamily::Rumqttd,
            10,
            ClientFamily::Rumqttc,
            Some(0.0),
            false,
        )
        .unwrap();
        let w = will(r.clone(), BrokerFamily::Rumqttd, Some(30), Some(4)).unwrap();
        assert_eq!((w.low_s, w.high_s), (19.0, 19.0));
        let w = will(r, BrokerFamily::Rumqttd, Some(30), None).unwrap();
        assert_eq!((w.low_s, w.high_s), (15.0, 15.0));
    }

    #[test]
    fn the_consequence_names_the_never_and_always_lengths() {
        let text = client_consequence(ClientFamily::Rumqttc, 60).unwrap();
        assert!(text.contains("60 s or less is never noticed"), "{text}");
        assert!(text.contains("120 s or more always is"), "{text}");
        let text = client_consequence(ClientFamily::Paho, 5).unwrap();
        assert!(
            text.contains("every 5 to 6 s") && text.contains("11 s or more"),
            "{text}"
        );
    }
}
