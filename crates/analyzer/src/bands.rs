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
/// MQTT.js's timer is Node's `setInterval`, run when the event loop is free.
const MQTTJS_TOLERANCE: &str = "Node's interval timer fires when the event loop is free; events are stamped when the program's callback runs";
/// Paho C's own check spacing is inside the band; its receive thread also waits on `select`.
const PAHO_C_TOLERANCE: &str = "the library's receive thread reaches its keepalive check between socket waits; events are stamped in the program's callbacks";
/// Paho Go's ticker runs on the Go runtime's timer.
const PAHO_GO_TOLERANCE: &str = "the Go runtime's ticker and goroutine scheduling; events are stamped in the program's handlers";
/// rumqttd's read timeout is a tokio timer in its connection task.
const RUMQTTD_TOLERANCE: &str =
    "rumqttd's read timeout runs on its async runtime's timer; the close is stamped when the proxy or the capture sees it";
/// aedes's keepalive is a Node `setTimeout` per client.
const AEDES_TOLERANCE: &str = "aedes's keepalive timer is Node's setTimeout, run when the event loop is free; the close is stamped when the proxy or the capture sees it";
/// amqtt's reader wait is an asyncio timeout.
const AMQTT_TOLERANCE: &str = "amqtt's timers run on its asyncio loop; the close is stamped when the proxy or the capture sees it";
/// A will is stamped by the watcher, not at the broker's close.
const WILL_TOLERANCE: &str =
    "the broker's loop (mosquitto's wakes at least every 100 ms, rumqttd's timers are its runtime's) and the will's loopback hop to the watcher, stamped when the watcher's task runs";
/// One tolerance for every rule: well above the measured tick drift (a few ms over a run) and
/// well below the shortest keepalive the bands are drawn for (1 s).
const TOLERANCE_S: f64 = 0.1;

/// One client library's detection rule, written from its source (docs/clients.md gives the
/// file and line of each): everything the analysis needs to know about a library is its row of
/// [`CLIENT_RULES`].
struct ClientRule {
    family: ClientFamily,
    /// The band's ends for keepalive K, seconds after a silent outage starts.
    band: fn(f64) -> (f64, f64),
    /// The rule in words, for the band.
    rule: &'static str,
    /// What it does, in words, for keepalive K (the report's "the client's rule").
    how: fn(u16) -> String,
    tolerance: &'static str,
    /// Longest silence of an idle, healthy client between two packets it sends (K for a
    /// library that pings every K; more where its check runs on a coarser clock).
    silence: fn(f64) -> f64,
    /// Whether it runs on the keepalive an MQTT 5 broker grants in its CONNACK (Server Keep
    /// Alive), as MQTT 5.0 §3.2.2.3.14 requires.
    adopts_server_keepalive: bool,
}

/// Paho C's keepalive check runs at most every clamp(K/10, 0.1 s, 5 s)
/// (`MQTTProtocolClient.c` `MQTTProtocol_keepalive`, called from the receive loop).
fn paho_c_spacing(k: f64) -> f64 {
    (k / 10.0).clamp(0.1, 5.0)
}

/// Paho Go's ping ticker: every 5 s when K > 10 s, else every K/2 (`ping.go`, `keepalive`).
fn paho_go_tick(k: f64) -> f64 {
    if k > 10.0 {
        5.0
    } else {
        k / 2.0
    }
}

/// Paho Go's default `PingTimeout` (`options.go`, `NewClientOptions`).
const PAHO_GO_PING_TIMEOUT_S: f64 = 10.0;

const CLIENT_RULES: [ClientRule; 7] = [
    ClientRule {
        family: ClientFamily::Rumqttc,
        band: |k| (k, 2.0 * k),
        rule: "rumqttc sends PINGREQ every K from CONNACK, whatever else it sends or receives, and gives up at the next tick if that PINGREQ is still unanswered: K..2K after the outage starts",
        how: |k| format!("rumqttc sends PINGREQ every {k} s from CONNACK and gives up at the next tick if it is unanswered"),
        tolerance: RUMQTTC_TOLERANCE,
        silence: |k| k,
        // v5/eventloop.rs, `connect`.
        adopts_server_keepalive: true,
    },
    ClientRule {
        family: ClientFamily::Libmosquitto,
        band: |k| (k, 2.0 * k + 1.0),
        rule: "libmosquitto sends PINGREQ once K has passed since it last sent a packet and gives up K after an unanswered PINGREQ; its loop checks about once a second: K..2K+1 s",
        how: |k| format!("libmosquitto sends PINGREQ once {k} s have passed since it last sent anything and gives up {k} s after an unanswered PINGREQ"),
        tolerance: PAHO_TOLERANCE,
        silence: |k| k + 1.0,
        // handle_connack.c.
        adopts_server_keepalive: true,
    },
    ClientRule {
        family: ClientFamily::Paho,
        band: |k| (k, 2.0 * k + 1.0),
        rule: "paho sends PINGREQ once K has passed since its last PINGREQ (1.6 and 2.1, whose writes leave that clock alone; 1.0: since it last sent anything) or since it last received a packet, whichever comes first, so incoming data does not postpone it, and gives up K after an unanswered PINGREQ; it checks on each loop wake-up, at least once a second: K..2K+1 s (client.py `_check_keepalive`, the band the same in paho-mqtt 1.0, 1.6 and 2.1)",
        how: |k| format!("paho sends PINGREQ once {k} s have passed since its last PINGREQ (1.0: since it last sent anything, the same for a subscriber that only receives), every {k} to {} s as its check runs about once a second, and gives up {k} s after an unanswered PINGREQ", k + 1),
        tolerance: PAHO_TOLERANCE,
        // Measured: paho 2.1 pings every K or K + 1 s while it only receives.
        silence: |k| k + 1.0,
        // 1.6 and 2.1's `_handle_connack` hand the property to on_connect only.
        adopts_server_keepalive: false,
    },
    ClientRule {
        family: ClientFamily::MqttJs,
        band: |k| (0.5 * k, 1.5 * k),
        rule: "MQTT.js runs a K/2 interval timer from the last PINGRESP (or acknowledgement of its own packets), sends PINGREQ at the second tick and gives up at the third if it is unanswered; an incoming PUBLISH does not postpone it: 0.5K..1.5K after the outage starts (KeepaliveManager.js, handlers/index.js)",
        how: |k| format!("MQTT.js sends PINGREQ {k} s after the last PINGRESP and gives up {:.1} s after that PINGRESP if the new one has not come", 1.5 * f64::from(k)),
        tolerance: MQTTJS_TOLERANCE,
        silence: |k| k,
        // client.js `_handleConnack` takes serverKeepAlive and shifts its ping interval.
        adopts_server_keepalive: true,
    },
    ClientRule {
        family: ClientFamily::PahoC,
        band: |k| (1.5 * k, 2.5 * k + 2.0 * paho_c_spacing(k)),
        rule: "Paho C sends PINGREQ once K has passed since it last sent a packet (or last received one), and gives up once that PINGREQ is 1.5K old and nothing at all came for 1.5K; it checks every clamp(K/10, 0.1 s, 5 s): 1.5K..2.5K plus two check spacings (MQTTProtocolClient.c `MQTTProtocol_keepalive`)",
        how: |k| format!("Paho C sends PINGREQ once {k} s have passed since it last sent anything and gives up {:.1} s after an unanswered PINGREQ", 1.5 * f64::from(k)),
        tolerance: PAHO_C_TOLERANCE,
        silence: |k| k + paho_c_spacing(k),
        // MQTTAsync.c keeps the keepAliveInterval the application set; no Server Keep Alive.
        adopts_server_keepalive: false,
    },
    ClientRule {
        family: ClientFamily::Aiomqtt,
        band: |k| (k, 2.0 * k + 2.0),
        rule: "aiomqtt runs paho-mqtt's rule (PINGREQ once K has passed since it last sent or received, give up K after an unanswered PINGREQ) from asyncio, which calls paho's check once a second: K..2K+2 s (aiomqtt client.py `_misc_loop`, paho client.py `_check_keepalive`)",
        how: |k| format!("aiomqtt (paho-mqtt underneath) sends PINGREQ once {k} s have passed since it last sent anything and gives up {k} s after an unanswered PINGREQ, checked once a second"),
        tolerance: PAHO_TOLERANCE,
        silence: |k| k + 1.0,
        // paho-mqtt 2.x underneath, which does not adopt it.
        adopts_server_keepalive: false,
    },
    ClientRule {
        family: ClientFamily::PahoGo,
        band: |k| {
            let tick = paho_go_tick(k);
            (
                PAHO_GO_PING_TIMEOUT_S,
                k + 1.0 + PAHO_GO_PING_TIMEOUT_S + 2.0 * tick,
            )
        },
        rule: "Paho Go's ping ticker (every 5 s for K > 10 s, else every K/2) sends PINGREQ once K has passed, at 1 s resolution, since it last sent or received, and gives up at the first tick where that PINGREQ has been unanswered for PingTimeout (10 s): 10 s..K + 11 s + two ticks (ping.go `keepalive`)",
        how: |k| format!("Paho Go sends PINGREQ once {k} s have passed since it last sent anything and gives up when it has been unanswered for its PingTimeout of 10 s, whatever the keepalive"),
        tolerance: PAHO_GO_TOLERANCE,
        silence: |k| k + 1.0 + paho_go_tick(k),
        // MQTT 3.1.1 only: there is no Server Keep Alive to adopt.
        adopts_server_keepalive: false,
    },
];

fn client_rule(library: ClientFamily) -> Option<&'static ClientRule> {
    CLIENT_RULES.iter().find(|r| r.family == library)
}

/// Whether the library runs on the keepalive an MQTT 5 broker grants in its CONNACK (Server
/// Keep Alive), as MQTT 5.0 §3.2.2.3.14 requires.
pub fn adopts_server_keepalive(library: ClientFamily) -> bool {
    client_rule(library).is_some_and(|r| r.adopts_server_keepalive)
}

/// The client library's band.
pub fn client(library: ClientFamily, k: u16) -> Option<Rule> {
    let r = client_rule(library)?;
    if k == 0 {
        return None;
    }
    let (low_s, high_s) = (r.band)(f64::from(k));
    Some(Rule {
        low_s,
        high_s,
        tolerance_s: TOLERANCE_S,
        tolerance: r.tolerance,
        rule: r.rule.into(),
        never_by_design: None,
    })
}

/// The client's rule and what it means for an outage, in words, for keepalive `k`: when a cut
/// is never noticed, always noticed, and when it depends on the phase.
pub fn client_consequence(library: ClientFamily, k: u16) -> Option<String> {
    let band = client(library, k)?;
    let how = (client_rule(library)?.how)(k);
    let (low, high) = (band.low_s, band.high_s);
    Some(format!(
        "{how}. So an outage of {low:.0} s or less is never noticed, one of {high:.0} s or more always is, and in between it depends on where the outage falls in the ping cycle."
    ))
}

/// Longest silence of an idle, healthy client between two packets it sends.
fn client_silence(library: ClientFamily, k: f64) -> f64 {
    client_rule(library).map_or(k, |r| (r.silence)(k))
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
        BrokerFamily::Aedes => Some(Rule {
            low_s: (1.5 * k - before.0).max(0.0),
            high_s: 1.5 * k - before.1,
            tolerance_s: TOLERANCE_S,
            tolerance: AEDES_TOLERANCE,
            rule: format!("aedes drops a client 1.5K (+1 ms) after its last packet, a timer every packet from it restarts (lib/handlers/connect.js, lib/handlers/index.js); {before_words}"),
            never_by_design: None,
        }),
        BrokerFamily::Amqtt => Some(Rule {
            low_s: (1.5 * k - before.0).max(0.0),
            high_s: 1.5 * k - before.1,
            tolerance_s: TOLERANCE_S,
            tolerance: AMQTT_TOLERANCE,
            rule: format!("the MQTT spec (3.1.1 §3.1.2.10) has the broker drop a client after 1.5K of silence; {before_words}"),
            never_by_design: Some(
                "never, as amqtt's code gives: its reader times out after K, but the broker's keepalive-timeout handler does nothing (mqtt/protocol/broker_handler.py), so a silent client stays connected for good. That departs from the spec's 1.5K rule".to_string(),
            ),
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
        // MQTT 3.1.1 only: no Will Delay Interval.
        BrokerFamily::Aedes => (
            0.0,
            0.0,
            "aedes publishes the will as it drops the client (1 ms later, measured)".to_string(),
        ),
        BrokerFamily::Amqtt => (
            0.0,
            0.0,
            "amqtt publishes the will when it ends the client's connection".to_string(),
        ),
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

    #[test]
    fn every_named_library_has_a_band_that_opens_after_the_outage_starts() {
        use ClientFamily::*;
        for family in [Rumqttc, Libmosquitto, Paho, MqttJs, PahoC, Aiomqtt, PahoGo] {
            for k in [2, 5, 60] {
                let r = client(family, k).unwrap();
                assert!(
                    0.0 < r.low_s && r.low_s < r.high_s,
                    "{family:?} K={k}: {r:?}"
                );
                assert!(client_consequence(family, k).is_some());
            }
        }
        assert!(client(Other, 5).is_none());
        // The libraries' own numbers (docs/clients.md): MQTT.js 0.5K..1.5K; Paho C at K = 10
        // 15..27 s (measured 23.0-25.4 s); Paho Go at K = 60 10..81 s (about K + 20 s).
        let band = |f, k| {
            let r = client(f, k).unwrap();
            (r.low_s, r.high_s)
        };
        assert_eq!(band(MqttJs, 10), (5.0, 15.0));
        assert_eq!(band(PahoC, 10), (15.0, 27.0));
        assert_eq!(band(PahoGo, 60), (10.0, 81.0));
        assert!(adopts_server_keepalive(MqttJs) && !adopts_server_keepalive(PahoC));
    }
}
