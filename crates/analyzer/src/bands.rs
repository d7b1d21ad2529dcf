//! The bands the protocol and the implementations give for detecting a silent outage, measured
//! from the outage start with keepalive K (facts from the libraries' and brokers' sources; see
//! the project's keepalive notes). A measurement is judged against its band with a small slack
//! for scheduling on a loaded machine.

use crate::Band;
use linecut_model::{BrokerFamily, ClientFamily};

/// Scheduling slack added to both ends of a band when judging a measurement.
pub const SLACK_S: f64 = 0.25;

/// A band before judging.
#[derive(Debug, Clone)]
pub struct Rule {
    pub low_s: f64,
    pub high_s: f64,
    pub rule: String,
}

impl Rule {
    pub fn judge(&self, measured: Option<f64>) -> Band {
        Band {
            low_s: self.low_s,
            high_s: self.high_s,
            inside: measured
                .is_some_and(|m| m >= self.low_s - SLACK_S && m <= self.high_s + SLACK_S),
            rule: self.rule.clone(),
        }
    }
}

/// The client library's band.
pub fn client(library: ClientFamily, k: u16) -> Option<Rule> {
    let k = f64::from(k);
    if k == 0.0 {
        return None;
    }
    if library == ClientFamily::Rumqttc {
        return Some(Rule {
            low_s: k,
            high_s: 2.0 * k,
            rule: "rumqttc pings every K from CONNACK and gives up when the previous PINGREQ is still unanswered at the next tick: K..2K after the outage starts".into(),
        });
    }
    if library == ClientFamily::Libmosquitto {
        return Some(Rule {
            low_s: k,
            high_s: 2.0 * k + 1.0,
            rule: "libmosquitto pings after K without sending and gives up K after an unanswered PINGREQ; its loop wakes about once a second: K..2K+1 s".into(),
        });
    }
    if library == ClientFamily::Paho {
        return Some(Rule {
            low_s: k,
            high_s: 2.0 * k + 1.0,
            rule: "paho pings after K of silence and gives up K after an unanswered PINGREQ, checking about once a second: K..2K+1 s".into(),
        });
    }
    None
}

/// Longest silence of an idle, healthy client between two packets it sends: K for rumqttc (it
/// pings every K from CONNACK); up to K + 1 s for paho and libmosquitto, which check once a
/// second whether K has passed (measured: paho 2.1 pings every K + 1 s while it only receives).
fn client_silence(library: ClientFamily, k: f64) -> f64 {
    if matches!(library, ClientFamily::Paho | ClientFamily::Libmosquitto) {
        k + 1.0
    } else {
        k
    }
}

/// The broker's band, given the client library (whose ping rhythm decides how long before the
/// outage the broker last heard from it).
pub fn broker(broker: BrokerFamily, k: u16, library: ClientFamily) -> Option<Rule> {
    if k == 0 {
        return None;
    }
    let k = f64::from(k);
    let limit = (1.5 * k).floor();
    let silence = client_silence(library, k);
    if broker == BrokerFamily::Mosquitto {
        return Some(Rule {
            low_s: (limit - silence).max(0.0),
            high_s: limit + 6.0,
            rule: format!("mosquitto drops a client more than floor(1.5K) after its last packet, checking about every 6 s; the last packet came up to {} before the outage", if silence > k { "K + 1 s (the client checks once a second)" } else { "K" }),
        });
    }
    if broker == BrokerFamily::Rumqttd {
        return Some(Rule {
            low_s: (1.5 * k - silence).max(0.0),
            high_s: 1.5 * k,
            rule: "rumqttd times out a read after 1.5K, but the timer restarts whenever it sends to the client, so it may be late or never while it publishes".into(),
        });
    }
    None
}
