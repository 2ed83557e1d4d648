//! Client-side pacing for Centra's quotas: every documented bucket — requests per 10 s and
//! per hour, query complexity per 10 s and per hour — each a generic cell rate algorithm
//! (`quota` per `window`, bursts up to the quota), plus the pause a 429 asks for. A
//! request takes one unit of each request bucket before it is sent; its complexity is only
//! known from Centra's answer (`extensions.complexity`), so it is charged afterwards and
//! holds the next requests back while it is being paid off. Mutations are paced by the
//! tenant's shared budget (ADR 0016), not here.

use std::time::Duration;

use parking_lot::Mutex;
use tokio::time::Instant;

pub use ferry_domain::quota::Pacing;

/// One bucket: `quota` per `window`, as the theoretical arrival time of the next unit.
#[derive(Debug)]
struct Bucket {
    /// Time one unit takes to refill.
    per_unit: Duration,
    /// How far ahead of now the bucket may run: a full burst.
    tolerance: Duration,
    tat: Instant,
}

impl Bucket {
    fn new(quota: u64, window: Duration, now: Instant) -> Option<Self> {
        if quota == u64::MAX {
            return None;
        }
        let quota = u32::try_from(quota.max(1)).unwrap_or(u32::MAX);
        let per_unit = window / quota;
        Some(Bucket {
            per_unit,
            tolerance: window.saturating_sub(per_unit),
            tat: now,
        })
    }

    /// When a request may go, given this bucket (before taking anything).
    fn ready_at(&self, now: Instant) -> Instant {
        now.max(self.tat.checked_sub(self.tolerance).unwrap_or(now))
    }

    /// Takes `units` at `at`.
    fn take(&mut self, units: u64, at: Instant) {
        let cost = self
            .per_unit
            .saturating_mul(u32::try_from(units).unwrap_or(u32::MAX));
        self.tat = self.tat.max(at) + cost;
    }

    /// Whole units still free now.
    fn free(&self, now: Instant) -> u64 {
        let used = self.tat.saturating_duration_since(now);
        let free = (self.tolerance + self.per_unit).saturating_sub(used);
        (free.as_nanos() / self.per_unit.as_nanos().max(1)) as u64
    }
}

#[derive(Debug)]
pub struct RateLimiter {
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    requests: Vec<Bucket>,
    complexity: Vec<Bucket>,
    blocked_until: Option<Instant>,
}

impl RateLimiter {
    /// `quota` requests per `window` (Centra's default: 20 per 10 s), nothing else paced.
    pub fn new(quota: u32, window: Duration) -> Self {
        let now = Instant::now();
        Self {
            state: Mutex::new(State {
                requests: Bucket::new(u64::from(quota), window, now)
                    .into_iter()
                    .collect(),
                complexity: Vec::new(),
                blocked_until: None,
            }),
        }
    }

    /// Every bucket of `pacing`.
    pub fn paced(pacing: Pacing) -> Self {
        let now = Instant::now();
        let ten = Duration::from_secs(10);
        let hour = Duration::from_secs(3600);
        Self {
            state: Mutex::new(State {
                requests: [
                    Bucket::new(pacing.requests_per_10s, ten, now),
                    Bucket::new(pacing.requests_per_hour, hour, now),
                ]
                .into_iter()
                .flatten()
                .collect(),
                complexity: [
                    Bucket::new(pacing.complexity_per_10s, ten, now),
                    Bucket::new(pacing.complexity_per_hour, hour, now),
                ]
                .into_iter()
                .flatten()
                .collect(),
                blocked_until: None,
            }),
        }
    }

    /// Reserves the next request slot in every bucket and returns how long to wait for it.
    pub fn reserve(&self) -> Duration {
        let now = Instant::now();
        let mut s = self.state.lock();
        let mut at = s
            .requests
            .iter()
            .chain(&s.complexity)
            .map(|b| b.ready_at(now))
            .max()
            .unwrap_or(now);
        if let Some(blocked) = s.blocked_until {
            at = at.max(blocked);
        }
        for b in &mut s.requests {
            b.take(1, at);
        }
        at - now
    }

    /// Waits for the next slot.
    pub async fn acquire(&self) {
        let wait = self.reserve();
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }

    /// Charges the complexity Centra reported for a request.
    pub fn charge_complexity(&self, complexity: u64) {
        let now = Instant::now();
        let mut s = self.state.lock();
        for b in &mut s.complexity {
            b.take(complexity, now);
        }
    }

    /// Centra said 429: nobody sends before `after` has passed.
    pub fn block_for(&self, after: Duration) {
        let until = Instant::now() + after;
        let mut s = self.state.lock();
        s.blocked_until = Some(s.blocked_until.map_or(until, |b| b.max(until)));
    }

    /// Requests this client may still send now, by its own count (the tightest bucket).
    pub fn remaining(&self) -> u32 {
        let now = Instant::now();
        let s = self.state.lock();
        if s.blocked_until.is_some_and(|b| b > now)
            || s.complexity.iter().any(|b| b.ready_at(now) > now)
        {
            return 0;
        }
        let free = s
            .requests
            .iter()
            .map(|b| b.free(now))
            .min()
            .unwrap_or(u64::MAX);
        u32::try_from(free).unwrap_or(u32::MAX)
    }
}

pub use ferry_domain::http::parse_retry_after;

#[cfg(test)]
mod tests {
    use super::*;

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
    async fn the_hourly_bucket_paces_too() {
        // 60 per 10 s but 100 per hour: the hour binds after a burst of 60.
        let limiter = RateLimiter::paced(Pacing {
            requests_per_10s: 60,
            requests_per_hour: 100,
            complexity_per_10s: u64::MAX,
            complexity_per_hour: u64::MAX,
        });
        let start = Instant::now();
        for _ in 0..100 {
            limiter.acquire().await;
        }
        // 60 at once, then the 10 s bucket (1 per 166 ms) until the hour's burst of 100.
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{:?}",
            start.elapsed()
        );
        limiter.acquire().await;
        // The 101st waits for the hour: 36 s per request.
        assert!(
            start.elapsed() >= Duration::from_secs(36),
            "{:?}",
            start.elapsed()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn complexity_is_paid_off_before_the_next_request() {
        let limiter = RateLimiter::paced(Pacing {
            requests_per_10s: 1_000,
            requests_per_hour: u64::MAX,
            complexity_per_10s: 10_000,
            complexity_per_hour: u64::MAX,
        });
        let start = Instant::now();
        limiter.acquire().await;
        // Centra reported 15,000 points: 5,000 beyond the burst, half a window to refill.
        limiter.charge_complexity(15_000);
        assert_eq!(limiter.remaining(), 0);
        limiter.acquire().await;
        let waited = start.elapsed();
        assert!(
            waited >= Duration::from_millis(4_990) && waited < Duration::from_millis(5_100),
            "{waited:?}"
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
