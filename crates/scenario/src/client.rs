//! The client under test: linecut's own agent, or another program the runner starts.
//!
//! Everything here is pure (no process is started): which kinds exist, what a `command`
//! argument's placeholders expand to, and whether an output pattern can yield deliveries. The
//! runner (`linecut-runner`'s `client` module) does the starting and the reading.

use linecut_model::Protocol;
use regex::Regex;
use std::path::PathBuf;

/// Who subscribes through the proxy.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientKind {
    /// linecut's own agent (rumqttc); the default.
    Rumqttc,
    /// linecut's paho-mqtt subscriber script (`crates/runner/clients/paho_subscriber.py`),
    /// shaped like the 2014 experiment's client, under a Python with the given paho-mqtt
    /// series installed.
    PahoPython {
        /// `1.6` or `2`.
        paho: String,
        /// The Python to run it with; found by the runner when not given.
        python: Option<PathBuf>,
    },
    /// `mosquitto_sub -v` from mosquitto-clients.
    MosquittoSub,
    /// A subscriber program linecut ships for another library ([`PROGRAMS`]).
    Program(Program),
    /// Any program, started without a shell.
    Command {
        /// Program and arguments, with placeholders (see [`PLACEHOLDERS`]).
        argv: Vec<String>,
        /// How its stdout reports deliveries; `None` means it prints linecut events (JSON lines).
        pattern: Option<String>,
        /// The client library it is built on, as the user names it (reports; detection bands
        /// when it names a library linecut knows, such as `paho` or `libmosquitto`).
        library: Option<String>,
    },
}

/// A client kind without its settings: what `[subscriber] client` names, and what owns the
/// `[subscriber]` fields only some kinds take ([`OWNED_SETTINGS`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Rumqttc,
    PahoPython,
    MosquittoSub,
    Program(Program),
    Command,
}

impl Kind {
    pub const ALL: [Kind; 8] = [
        Kind::Rumqttc,
        Kind::PahoPython,
        Kind::MosquittoSub,
        Kind::Program(Program::MqttJs),
        Kind::Program(Program::PahoC),
        Kind::Program(Program::Aiomqtt),
        Kind::Program(Program::PahoGo),
        Kind::Command,
    ];
    /// The names, in the order of [`Kind::ALL`].
    pub const NAMES: [&'static str; 8] = [
        "rumqttc",
        "paho-python",
        "mosquitto_sub",
        "mqttjs",
        "paho-c",
        "aiomqtt",
        "paho-go",
        "command",
    ];

    /// The kind's name as written in a scenario.
    pub fn name(self) -> &'static str {
        let i = Kind::ALL
            .iter()
            .position(|k| *k == self)
            .expect("every kind is in Kind::ALL");
        Kind::NAMES[i]
    }

    pub fn parse(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// Whether a `[subscriber]` field is this kind's to take: every field but those
    /// [`OWNED_SETTINGS`] gives to other kinds.
    pub fn owns(self, field: &str) -> bool {
        OWNED_SETTINGS
            .iter()
            .find(|(f, _, _)| *f == field)
            .is_none_or(|(_, kinds, _)| kinds.contains(&self))
    }
}

impl ClientKind {
    /// Its kind, without the settings.
    pub fn kind(&self) -> Kind {
        match self {
            ClientKind::Rumqttc => Kind::Rumqttc,
            ClientKind::PahoPython { .. } => Kind::PahoPython,
            ClientKind::MosquittoSub => Kind::MosquittoSub,
            ClientKind::Program(p) => Kind::Program(*p),
            ClientKind::Command { .. } => Kind::Command,
        }
    }

    /// The kind's name as written in a scenario.
    pub fn name(&self) -> &'static str {
        self.kind().name()
    }

    /// Whether this is a program the runner starts (anything but the built-in agent).
    pub fn is_external(&self) -> bool {
        !matches!(self, ClientKind::Rumqttc)
    }
}

/// A library linecut ships a subscriber program for. Each is one row of [`PROGRAMS`] here (what
/// a scenario may ask of it) and one of the runner's table (how it is found and started); the
/// programs themselves live in `crates/runner/clients/`, and `docs/clients.md` gives each
/// library's rules from its source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Program {
    /// MQTT.js (npm `mqtt`), under Node.
    MqttJs,
    /// Eclipse Paho C's asynchronous client (`MQTTAsync`), a small C program.
    PahoC,
    /// aiomqtt, asyncio Python on paho-mqtt 2.x.
    Aiomqtt,
    /// Eclipse Paho Go (`paho.mqtt.golang`), a small Go program.
    PahoGo,
}

/// What a scenario may ask of a shipped program.
#[derive(Debug, Clone, Copy)]
pub struct ProgramSpec {
    pub program: Program,
    /// The library, as reports name it (`MQTT.js`).
    pub library: &'static str,
    /// The MQTT versions the library speaks.
    pub protocols: &'static [Protocol],
    /// The smallest keepalive it takes, in seconds, and why (`None`: any).
    pub min_keepalive: Option<(u16, &'static str)>,
}

/// The shipped programs, in the order of [`Program`].
pub const PROGRAMS: [ProgramSpec; 4] = [
    ProgramSpec {
        program: Program::MqttJs,
        library: "MQTT.js",
        protocols: &[Protocol::V311, Protocol::V5],
        min_keepalive: None,
    },
    ProgramSpec {
        program: Program::PahoC,
        library: "Eclipse Paho C",
        protocols: &[Protocol::V311, Protocol::V5],
        min_keepalive: None,
    },
    ProgramSpec {
        program: Program::Aiomqtt,
        library: "aiomqtt",
        protocols: &[Protocol::V311, Protocol::V5],
        min_keepalive: None,
    },
    ProgramSpec {
        program: Program::PahoGo,
        library: "Eclipse Paho Go",
        protocols: &[Protocol::V311],
        // ping.go ticks every K/2 whole seconds for K <= 10: K = 1 makes a zero ticker, and
        // Go's time.NewTicker panics on it.
        min_keepalive: Some((2, "Paho Go 1.1.1 ticks every K/2 whole seconds, and K = 1 makes its ping ticker zero, which panics")),
    },
];

impl Program {
    /// Its row of [`PROGRAMS`].
    pub fn spec(self) -> &'static ProgramSpec {
        &PROGRAMS[self as usize]
    }
}

/// The `[subscriber]` settings that belong to some client kinds only, each with the kinds (by
/// their scenario names) that take it and why another kind does not, where that is worth
/// saying. A file that sets one for another kind is refused: it would say something the run
/// silently ignores.
pub const OWNED_SETTINGS: [(&str, &[Kind], &str); 8] = [
    ("paho", &[Kind::PahoPython], ""),
    ("python", &[Kind::PahoPython], ""),
    ("command", &[Kind::Command], ""),
    ("pattern", &[Kind::Command], ""),
    ("library", &[Kind::Command], ""),
    ("connect_timeout", &[Kind::Rumqttc], ""),
    (
        "resubscribe",
        &[Kind::Rumqttc],
        " (paho-python subscribes in on_connect, as the 2014 client did; mosquitto_sub re-subscribes on every connect; mqttjs, paho-c, aiomqtt and paho-go do what their library does or its documentation shows, docs/clients.md)",
    ),
    (
        "reconnect",
        &[Kind::Rumqttc, Kind::PahoPython],
        " (it reconnects by its own rules, which linecut measures)",
    ),
];

/// The paho-mqtt series a `paho-python` client can pin. 1.0 is the release of 2014 (the seed's
/// client): MQTT 3.1.1 only, and `loop_forever` reconnects 1 s after each failure with no
/// back-off setting.
pub const PAHO_SERIES: [&str; 3] = ["1.0", "1.6", "2"];

/// Placeholders a `command` argument may contain, and what each becomes.
pub const PLACEHOLDERS: [(&str, &str); 15] = [
    (
        "host",
        "the proxy's host (the client connects through the proxy)",
    ),
    ("port", "the proxy's port"),
    ("client_id", "this subscriber's client id"),
    ("keepalive", "the keepalive in whole seconds"),
    ("topic", "the first topic filter"),
    ("qos", "the first topic filter's QoS"),
    ("clean_session", "1 or 0"),
    ("mqtt", "3.1.1 or 5"),
    (
        "will_topic",
        "the will's topic, with this subscriber's id in it (empty without a will)",
    ),
    ("will_payload", "the will's payload, likewise"),
    ("will_qos", "the will's QoS"),
    ("will_retain", "1 or 0"),
    (
        "will_delay",
        "MQTT 5's Will Delay Interval in whole seconds (0 when none is set)",
    ),
    (
        "session_expiry",
        "MQTT 5's Session Expiry Interval in whole seconds (0 when none is set)",
    ),
    (
        "receive_maximum",
        "MQTT 5's Receive Maximum (65535, the protocol's default, when none is set)",
    ),
];

/// Replaces `{name}` placeholders in `arg`; `{{` and `}}` stand for literal braces.
pub fn expand(arg: &str, value: impl Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(arg.len());
    let mut rest = arg;
    while let Some(pos) = rest.find(['{', '}']) {
        out.push_str(&rest[..pos]);
        let tail = &rest[pos..];
        if tail.starts_with("{{") || tail.starts_with("}}") {
            out.push_str(&tail[..1]);
            rest = &tail[2..];
            continue;
        }
        if tail.starts_with('}') {
            return Err(format!(
                "`{arg}`: unmatched `}}` (write `}}}}` for a brace)"
            ));
        }
        let Some(end) = tail.find('}') else {
            return Err(format!("`{arg}`: unclosed `{{` (write `{{{{` for a brace)"));
        };
        let name = &tail[1..end];
        match value(name) {
            Some(v) => out.push_str(&v),
            None => {
                let known: Vec<String> = PLACEHOLDERS
                    .iter()
                    .map(|(n, _)| format!("{{{n}}}"))
                    .collect();
                return Err(format!(
                    "`{{{name}}}` is not a placeholder; use {}",
                    known.join(", ")
                ));
            }
        }
        rest = &tail[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Checks that `arg` only uses known placeholders.
pub fn check_placeholders(arg: &str) -> Result<(), String> {
    expand(arg, |name| {
        PLACEHOLDERS
            .iter()
            .any(|(n, _)| *n == name)
            .then(String::new)
    })
    .map(|_| ())
}

/// Named groups an output pattern may have.
pub const PATTERN_GROUPS: [&str; 4] = ["seq", "ts", "payload", "topic"];

/// Compiles an output pattern and checks that a match can say which message it was: a `seq`
/// group (with an optional `ts`, the publish time), or a `payload` group holding linecut's payload.
pub fn compile_pattern(pattern: &str) -> Result<Regex, String> {
    let regex = Regex::new(pattern).map_err(|e| format!("not a valid pattern: {e}"))?;
    let names: Vec<&str> = regex.capture_names().flatten().collect();
    if !names.contains(&"seq") && !names.contains(&"payload") {
        return Err(
            "the pattern needs a `(?P<seq>...)` group (and optionally `(?P<ts>...)`, the publish time) or a `(?P<payload>...)` group holding linecut's payload"
                .into(),
        );
    }
    if let Some(other) = names.iter().find(|n| !PATTERN_GROUPS.contains(n)) {
        return Err(format!(
            "unknown group `{other}`; the groups linecut reads are {}",
            PATTERN_GROUPS.join(", ")
        ));
    }
    Ok(regex)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_reads_back_from_its_name_and_owns_its_own_fields_only() {
        for kind in Kind::ALL {
            assert_eq!(Kind::parse(kind.name()), Some(kind));
        }
        for (i, spec) in PROGRAMS.iter().enumerate() {
            assert_eq!(
                spec.program as usize, i,
                "PROGRAMS is in the order of Program"
            );
            assert!(spec.protocols.contains(&Protocol::V311));
        }
        assert!(Kind::PahoPython.owns("paho") && !Kind::Rumqttc.owns("paho"));
        assert!(Kind::Command.owns("pattern") && !Kind::MosquittoSub.owns("pattern"));
        // A field no kind claims is everyone's.
        assert!(Kind::MosquittoSub.owns("keepalive"));
        assert_eq!(
            ClientKind::PahoPython {
                paho: "2".into(),
                python: None
            }
            .kind(),
            Kind::PahoPython
        );
    }

    fn values(name: &str) -> Option<String> {
        match name {
            "host" => Some("127.0.0.1".into()),
            "port" => Some("4242".into()),
            _ => None,
        }
    }

    #[test]
    fn placeholders_expand_and_braces_escape() {
        assert_eq!(expand("{host}:{port}", values).unwrap(), "127.0.0.1:4242");
        assert_eq!(expand("--x={{raw}}", values).unwrap(), "--x={raw}");
        assert_eq!(expand("plain", values).unwrap(), "plain");
    }

    #[test]
    fn unknown_and_unbalanced_placeholders_are_errors() {
        assert!(expand("{hots}", values)
            .unwrap_err()
            .contains("`{hots}` is not a placeholder"));
        assert!(expand("{host", values).unwrap_err().contains("unclosed"));
        assert!(expand("a}b", values).unwrap_err().contains("unmatched"));
        assert!(check_placeholders("{client_id}-{keepalive}").is_ok());
    }

    #[test]
    fn patterns_need_a_group_that_identifies_the_message() {
        assert!(compile_pattern(r"got (?P<seq>\d+) at (?P<ts>\d+)").is_ok());
        assert!(compile_pattern(r"(?P<topic>\S+) (?P<payload>.*)").is_ok());
        assert!(compile_pattern(r"got (\d+)")
            .unwrap_err()
            .contains("(?P<seq>"));
        assert!(compile_pattern(r"(?P<seq>\d+) (?P<when>\d+)")
            .unwrap_err()
            .contains("unknown group `when`"));
        assert!(compile_pattern(r"(?P<seq>\d+")
            .unwrap_err()
            .contains("not a valid pattern"));
    }
}
