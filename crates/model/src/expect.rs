//! Expectations: `metric = condition` from a scenario's `[expect]` section.
//!
//! Conditions: a number (`0`, equal), a comparison (`<= 4`, `< 4`, `>= 1`, `> 1`, `== 2`), or an
//! inclusive range (`2..4`). A metric that has no value (a subscriber that never detected the
//! outage has no `client_detect_s`) fails every condition: "never" is not "fast". The condition
//! `never` is the one that holds exactly then ("a short cut must not be noticed"). A verdict
//! metric (`delivery`) takes `as-promised` or `broken`.
//!
//! A metric names the first fault's window unless prefixed: `fault2.client_detect_s` is the
//! second window's.

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "op", content = "value")]
pub enum Condition {
    Eq(f64),
    Lt(f64),
    Le(f64),
    Gt(f64),
    Ge(f64),
    Range(f64, f64),
    /// The metric has no value (the thing never happened).
    Never,
    /// A verdict (`delivery`) held: its value is 1.
    AsPromised,
    /// A verdict (`delivery`) failed: its value is 0.
    Broken,
}

impl Condition {
    pub fn parse(text: &str) -> Result<Condition, String> {
        let t = text.trim();
        match t {
            "never" => return Ok(Condition::Never),
            "as-promised" => return Ok(Condition::AsPromised),
            "broken" => return Ok(Condition::Broken),
            _ => {}
        }
        let number = |s: &str| {
            s.trim().parse::<f64>().map_err(|_| {
                format!("`{text}` is not a condition; write e.g. 0, <= 4, >= 1, 2..4, never, or as-promised / broken for delivery")
            })
        };
        if let Some((a, b)) = t.split_once("..") {
            let (a, b) = (number(a)?, number(b)?);
            if a > b {
                return Err(format!("`{text}`: the range is empty"));
            }
            return Ok(Condition::Range(a, b));
        }
        for (op, make) in [
            ("<=", Condition::Le as fn(f64) -> Condition),
            (">=", Condition::Ge),
            ("==", Condition::Eq),
            ("<", Condition::Lt),
            (">", Condition::Gt),
            ("=", Condition::Eq),
        ] {
            if let Some(rest) = t.strip_prefix(op) {
                return Ok(make(number(rest)?));
            }
        }
        Ok(Condition::Eq(number(t)?))
    }

    pub fn holds(&self, value: Option<f64>) -> bool {
        let Some(v) = value else {
            return *self == Condition::Never;
        };
        match *self {
            Condition::Eq(x) => (v - x).abs() < 1e-9,
            Condition::Lt(x) => v < x,
            Condition::Le(x) => v <= x,
            Condition::Gt(x) => v > x,
            Condition::Ge(x) => v >= x,
            Condition::Range(a, b) => v >= a && v <= b,
            Condition::Never => false,
            Condition::AsPromised => v == 1.0,
            Condition::Broken => v == 0.0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditions_parse_and_hold() {
        assert!(Condition::parse("<= 4").unwrap().holds(Some(4.0)));
        assert!(!Condition::parse("< 4").unwrap().holds(Some(4.0)));
        assert!(Condition::parse("2..4").unwrap().holds(Some(3.1)));
        assert!(!Condition::parse("2..4").unwrap().holds(Some(4.1)));
        assert!(Condition::parse("0").unwrap().holds(Some(0.0)));
        assert!(Condition::parse(">=1").unwrap().holds(Some(1.0)));
        assert!(
            !Condition::parse("<= 4").unwrap().holds(None),
            "never is not fast"
        );
        assert!(Condition::parse("never").unwrap().holds(None));
        assert!(!Condition::parse(" never ").unwrap().holds(Some(0.0)));
        assert!(Condition::parse("soon")
            .unwrap_err()
            .contains("not a condition"));
        assert!(Condition::parse("4..2").unwrap_err().contains("empty"));
    }
}
