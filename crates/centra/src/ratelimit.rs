//! Client-side pacing for Centra's request quota (a generic cell rate algorithm: `quota`
//! requests per `window`, bursts up to the quota), plus the pause a 429 asks for.

use std::time::{Duration, SystemTime};

use parking_lot::Mutex;
use tokio::time::Instant;

#[derive(Debug)]
pub struct RateLimiter {
    state: Mutex<State>,
    interval: Duration,
    tolerance: Duration,
}

#[derive(Debug)]
struct State {
    /// Theoretical arrival time of the next request.
    tat: Instant,
    blocked_until: Option<Instant>,
    granted: u64,
}

impl RateLimiter {
    /// `quota` requests per `window` (Centra's default: 20 per 10 s).
    pub fn new(quota: u32, window: Duration) -> Self {
        let quota = quota.max(1);
        let interval = window / quota;
        Self {
            state: Mutex::new(State {
                tat: Instant::now(),
                blocked_until: None,
                granted: 0,
            }),
            interval,
            tolerance: window.saturating_sub(interval),
        }
    }

    /// Reserves the next slot and returns how long to wait for it.
    pub fn reserve(&self) -> Duration {
        let now = Instant::now();
        let mut s = self.state.lock();
        let mut at = now.max(s.tat.checked_sub(self.tolerance).unwrap_or(now));
        if let Some(blocked) = s.blocked_until {
            at = at.max(blocked);
        }
        s.tat = s.tat.max(at) + self.interval;
        s.granted += 1;
        at - now
    }

    /// Waits for the next slot.
    pub async fn acquire(&self) {
        let wait = self.reserve();
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }

    /// Centra said 429: nobody sends before `after` has passed.
    pub fn block_for(&self, after: Duration) {
        let until = Instant::now() + after;
        let mut s = self.state.lock();
        s.blocked_until = Some(s.blocked_until.map_or(until, |b| b.max(until)));
    }

    /// Requests still available in the current window, by this client's count.
    pub fn remaining(&self) -> u32 {
        let now = Instant::now();
        let s = self.state.lock();
        if s.blocked_until.is_some_and(|b| b > now) {
            return 0;
        }
        let used = s.tat.saturating_duration_since(now);
        let free = (self.tolerance + self.interval).saturating_sub(used);
        (free.as_nanos() / self.interval.as_nanos().max(1)) as u32
    }
}

/// Parses a `Retry-After` value: delta-seconds, an HTTP date, or (as Centra documents it) a
/// Unix timestamp. Returns the time to wait from `now`.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(n) = value.parse::<u64>() {
        // Anything past 2001-09-09 is a timestamp, anything smaller a number of seconds.
        if n >= 1_000_000_000 {
            let at = SystemTime::UNIX_EPOCH + Duration::from_secs(n);
            return Some(at.duration_since(now).unwrap_or(Duration::ZERO));
        }
        return Some(Duration::from_secs(n));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_in_all_three_forms() {
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
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-1", now), None);
    }

    #[tokio::test(start_paused = true)]
    async fn paces_to_the_quota() {
        let limiter = RateLimiter::new(20, Duration::from_secs(10));
        let start = Instant::now();
        for _ in 0..20 {
            limiter.acquire().await;
        }
        assert!(
            start.elapsed() < Duration::from_millis(1),
            "a full burst is allowed"
        );
        assert_eq!(limiter.remaining(), 0);
        for _ in 0..20 {
            limiter.acquire().await;
        }
        let elapsed = start.elapsed();
        assert!(
            elapsed >= Duration::from_secs(10) && elapsed < Duration::from_millis(10_100),
            "{elapsed:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_429_blocks_everyone() {
        let limiter = RateLimiter::new(100, Duration::from_secs(10));
        limiter.block_for(Duration::from_secs(3));
        let start = Instant::now();
        limiter.acquire().await;
        assert!(start.elapsed() >= Duration::from_secs(3));
        assert!(limiter.remaining() > 0);
    }
}
