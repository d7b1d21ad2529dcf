//! Durations as people write them (`500ms`, `10s`, `2m`), bounded where they are parsed.
//!
//! A duration becomes a deadline (`Instant + duration`), and a deadline far enough out
//! overflows and panics; `humantime` itself accepts values up to about 5.8e11 years. No linecut
//! experiment runs for more than [`MAX_DURATION`] (a year), so every duration a user gives is
//! refused above it, with the limit in the message, before anything uses it.

use std::time::Duration;

/// The longest duration linecut accepts anywhere: 365 days.
pub const MAX_DURATION: Duration = Duration::from_secs(365 * 24 * 3600);

/// Why a duration was refused; the caller names the value and the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("is not a duration ({0})")]
    Syntax(String),
    #[error("is longer than linecut accepts (365 days)")]
    TooLong,
}

/// Parses a duration and refuses one longer than [`MAX_DURATION`].
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let d =
        humantime::parse_duration(text.trim()).map_err(|e| DurationError::Syntax(e.to_string()))?;
    check_duration(d)
}

/// Refuses a duration longer than [`MAX_DURATION`].
pub fn check_duration(d: Duration) -> Result<Duration, DurationError> {
    if d > MAX_DURATION {
        return Err(DurationError::TooLong);
    }
    Ok(d)
}

/// The time between samples at `rate` per second: a positive, finite rate whose interval lies
/// between 1 ms (the finest the publisher schedules) and [`MAX_DURATION`].
pub fn interval_from_rate(rate: f64) -> Result<Duration, String> {
    if !rate.is_finite() || rate <= 0.0 {
        return Err(format!(
            "{rate}: must be a positive number of samples per second"
        ));
    }
    let secs = 1.0 / rate;
    if secs < 0.001 {
        return Err(format!(
            "{rate}: at most 1000 samples per second (an interval of at least 1ms)"
        ));
    }
    if secs > MAX_DURATION.as_secs_f64() {
        return Err(format!(
            "{rate}: at least one sample in 365 days (an interval of at most {})",
            humantime::format_duration(MAX_DURATION)
        ));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// A whole number of seconds no larger than `max`, from a duration such as `60s` or `2m`.
pub fn parse_whole_seconds(text: &str, max: u64) -> Result<u64, String> {
    let d = parse_duration(text).map_err(|e| format!("`{text}` {e}"))?;
    if d.subsec_nanos() != 0 {
        return Err(format!("`{text}`: must be a whole number of seconds"));
    }
    if d.as_secs() > max {
        return Err(format!("`{text}`: at most {max}s"));
    }
    Ok(d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_near_the_instant_limit_are_refused_with_the_limit() {
        for text in ["300000000000y", "366days", "9999999999999999s"] {
            assert_eq!(parse_duration(text), Err(DurationError::TooLong), "{text}");
        }
        assert!(matches!(
            parse_duration("ten"),
            Err(DurationError::Syntax(_))
        ));
        assert_eq!(parse_duration("365days").unwrap(), MAX_DURATION);
        assert_eq!(parse_duration(" 2m ").unwrap(), Duration::from_secs(120));
    }

    #[test]
    fn rates_are_bounded_both_ways_and_never_panic() {
        for rate in [1e-300, 1e9, 0.0, -1.0, f64::NAN, f64::INFINITY] {
            assert!(interval_from_rate(rate).is_err(), "{rate}");
        }
        assert_eq!(
            interval_from_rate(1000.0).unwrap(),
            Duration::from_millis(1)
        );
        assert_eq!(interval_from_rate(0.5).unwrap(), Duration::from_secs(2));
    }

    #[test]
    fn whole_seconds_refuse_fractions_and_excess() {
        assert_eq!(parse_whole_seconds("2m", 3600), Ok(120));
        assert!(parse_whole_seconds("1.5s", 3600)
            .unwrap_err()
            .contains("whole"));
        assert!(parse_whole_seconds("2h", 3600)
            .unwrap_err()
            .contains("at most"));
    }
}
