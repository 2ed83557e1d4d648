//! What Ferry's HTTP clients (Centra's, the ERP connectors') share: reading `Retry-After`,
//! and what an HTTP status means for a retry.

use std::time::{Duration, SystemTime};

/// Parses a `Retry-After` value: delta-seconds, an HTTP date, or — as Centra documents it,
/// "a timestamp" without saying which — Unix seconds, Unix milliseconds or ISO 8601. Returns
/// the time to wait from `now`.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    let until = |at: SystemTime| at.duration_since(now).unwrap_or(Duration::ZERO);
    if let Ok(n) = value.parse::<u64>() {
        // Past 2001-09-09 in seconds is a timestamp, past 33658 AD in seconds is one in
        // milliseconds; anything smaller is a number of seconds.
        if n >= 1_000_000_000_000 {
            return Some(until(SystemTime::UNIX_EPOCH + Duration::from_millis(n)));
        }
        if n >= 1_000_000_000 {
            return Some(until(SystemTime::UNIX_EPOCH + Duration::from_secs(n)));
        }
        return Some(Duration::from_secs(n));
    }
    if let Ok(at) = chrono::DateTime::parse_from_rfc3339(value) {
        let millis = u64::try_from(at.timestamp_millis()).ok()?;
        return Some(until(
            SystemTime::UNIX_EPOCH + Duration::from_millis(millis),
        ));
    }
    if let Ok(f) = value.parse::<f64>()
        && f.is_finite()
        && f >= 0.0
    {
        return Duration::try_from_secs_f64(f).ok();
    }
    httpdate::parse_http_date(value)
        .ok()
        .map(|at| at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// What an HTTP status means for the request that got it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusClass {
    Success,
    /// The server is away, overloaded or asks to slow down (429, 502, 503, other 5xx):
    /// retry later; nothing was done.
    RetryLater,
    /// No answer in time from behind a gateway (504, 408): the request may have taken
    /// effect; settle by looking before repeating it.
    Uncertain,
    /// Credentials or permissions (401, 403): a person must fix the set-up.
    Misconfigured,
    /// The request itself was refused (other 4xx): repeating it fails again.
    Refused,
}

pub fn class_of(status: u16) -> StatusClass {
    match status {
        200..=299 => StatusClass::Success,
        408 | 504 => StatusClass::Uncertain,
        401 | 403 => StatusClass::Misconfigured,
        429 | 500..=599 => StatusClass::RetryLater,
        _ => StatusClass::Refused,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_in_every_form() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(parse_retry_after("7", now), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_retry_after("1700000012", now),
            Some(Duration::from_secs(12))
        );
        assert_eq!(parse_retry_after("1600000000", now), Some(Duration::ZERO));
        let date = httpdate::fmt_http_date(now + Duration::from_secs(30));
        assert_eq!(parse_retry_after(&date, now), Some(Duration::from_secs(30)));
        assert_eq!(
            parse_retry_after("0.5", now),
            Some(Duration::from_millis(500))
        );
        assert_eq!(
            parse_retry_after("1700000012500", now),
            Some(Duration::from_millis(12_500)),
            "epoch milliseconds"
        );
        assert_eq!(
            parse_retry_after("2023-11-14T22:13:40Z", now),
            Some(Duration::from_secs(20)),
            "ISO 8601"
        );
        assert_eq!(
            parse_retry_after("2023-11-14T23:13:45+01:00", now),
            Some(Duration::from_secs(25)),
            "ISO 8601 with an offset"
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-1", now), None);
    }

    #[test]
    fn statuses_by_class() {
        assert_eq!(class_of(201), StatusClass::Success);
        assert_eq!(class_of(429), StatusClass::RetryLater);
        assert_eq!(class_of(503), StatusClass::RetryLater);
        assert_eq!(class_of(500), StatusClass::RetryLater);
        assert_eq!(class_of(504), StatusClass::Uncertain);
        assert_eq!(class_of(403), StatusClass::Misconfigured);
        assert_eq!(class_of(422), StatusClass::Refused);
        assert_eq!(class_of(404), StatusClass::Refused);
    }
}
