//! Brokers linecut starts as programs of their own projects besides mosquitto: which exist and
//! what a scenario may ask of them. Pure data; the runner's `brokers` module finds, starts and
//! stops them, and docs/clients.md gives each one's keepalive rule from its source.

use linecut_model::Protocol;

/// A broker linecut starts from an install under `target/clients/` (scripts/setup-clients).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BrokerProgram {
    /// aedes (npm), under Node: a small launcher linecut ships.
    Aedes,
    /// amqtt (PyPI), its own `amqtt` command with a configuration linecut writes.
    Amqtt,
}

/// What a scenario may ask of a broker program.
#[derive(Debug, Clone, Copy)]
pub struct BrokerProgramSpec {
    pub program: BrokerProgram,
    /// `[broker] kind`.
    pub kind: &'static str,
    /// The MQTT versions it speaks.
    pub protocols: &'static [Protocol],
}

/// The broker programs, in the order of [`BrokerProgram`].
pub const BROKER_PROGRAMS: [BrokerProgramSpec; 2] = [
    BrokerProgramSpec {
        program: BrokerProgram::Aedes,
        kind: "aedes",
        // aedes 1.x answers a CONNECT with protocol level 5 with "unsupported protocol version".
        protocols: &[Protocol::V311],
    },
    BrokerProgramSpec {
        program: BrokerProgram::Amqtt,
        kind: "amqtt",
        // amqtt 0.12 implements MQTT 3.1.1 only.
        protocols: &[Protocol::V311],
    },
];

impl BrokerProgram {
    pub fn spec(self) -> &'static BrokerProgramSpec {
        &BROKER_PROGRAMS[self as usize]
    }

    pub fn parse(kind: &str) -> Option<BrokerProgram> {
        BROKER_PROGRAMS
            .iter()
            .find(|s| s.kind == kind)
            .map(|s| s.program)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_in_the_order_of_the_programs() {
        for (i, spec) in BROKER_PROGRAMS.iter().enumerate() {
            assert_eq!(spec.program as usize, i);
            assert_eq!(BrokerProgram::parse(spec.kind), Some(spec.program));
        }
    }
}
