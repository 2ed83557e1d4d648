//! Centra's rate limits: three token buckets (requests, query complexity, mutations) ×
//! two windows (10 s, 1 h), refilled at a constant rate. A request that finds any bucket
//! empty gets HTTP 429 with `Retry-After`; the `rateLimits` query reports every bucket.
//! Complexity is only known after validation, so it is charged afterwards and may run a
//! bucket negative, which then refuses requests until it refills.

use std::time::{Duration, Instant, SystemTime};

pub use ferry_domain::quota::Plan;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

/// Quotas per window; the defaults are Centra's Growth plan (`Quotas::plan` for the others).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Quotas {
    pub request_count_10s: u64,
    pub request_count_1h: u64,
    pub complexity_10s: u64,
    pub complexity_1h: u64,
    pub mutation_count_10s: u64,
    pub mutation_count_1h: u64,
    /// How `Retry-After` is written. Centra documents "a timestamp"; the other forms are
    /// there to prove the client reads all three.
    pub retry_after: RetryAfterFormat,
}

impl Default for Quotas {
    fn default() -> Self {
        Quotas::plan(Plan::Growth)
    }
}

impl Quotas {
    /// The quotas Centra documents for `plan`; a bucket Centra gives no figure for is not
    /// enforced (as if it were unlimited).
    pub fn plan(plan: Plan) -> Self {
        let q = plan.quotas();
        let or_unlimited = |v: Option<u64>| v.unwrap_or(u64::MAX / 4);
        Quotas {
            request_count_10s: or_unlimited(q.requests_per_10s),
            request_count_1h: or_unlimited(q.requests_per_hour),
            complexity_10s: or_unlimited(q.complexity_per_10s),
            complexity_1h: or_unlimited(q.complexity_per_hour),
            mutation_count_10s: or_unlimited(q.mutations_per_10s),
            mutation_count_1h: or_unlimited(q.mutations_per_hour),
            retry_after: RetryAfterFormat::Timestamp,
        }
    }

    /// Quotas high enough never to bite (benchmarks of other parts).
    pub fn unlimited() -> Self {
        let big = u64::MAX / 4;
        Quotas {
            request_count_10s: big,
            request_count_1h: big,
            complexity_10s: big,
            complexity_1h: big,
            mutation_count_10s: big,
            mutation_count_1h: big,
            retry_after: RetryAfterFormat::Timestamp,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RetryAfterFormat {
    /// Unix seconds at which to retry.
    Timestamp,
    /// Seconds to wait.
    Seconds,
    /// An HTTP date.
    HttpDate,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, async_graphql::Enum)]
#[graphql(rename_items = "SCREAMING_SNAKE_CASE")]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RateLimitType {
    RequestCount,
    QueryComplexity,
    MutationCount,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, async_graphql::Enum)]
#[graphql(rename_items = "SCREAMING_SNAKE_CASE")]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RateLimitInterval {
    TenSeconds,
    OneHour,
}

impl RateLimitInterval {
    fn duration(self) -> Duration {
        match self {
            RateLimitInterval::TenSeconds => Duration::from_secs(10),
            RateLimitInterval::OneHour => Duration::from_secs(3600),
        }
    }
}

/// One bucket as the `rateLimits` query shows it (`quota = usedQuota + remainingQuota`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, async_graphql::SimpleObject)]
#[serde(rename_all = "camelCase")]
pub struct RateLimit {
    #[graphql(name = "type")]
    #[serde(rename = "type")]
    pub kind: RateLimitType,
    pub interval_seconds: RateLimitInterval,
    pub quota: u64,
    pub used_quota: u64,
    pub remaining_quota: u64,
}

#[derive(Debug)]
struct Bucket {
    kind: RateLimitType,
    interval: RateLimitInterval,
    quota: u64,
    /// Tokens available; fractional because refill is continuous.
    level: f64,
    at: Instant,
}

impl Bucket {
    fn new(kind: RateLimitType, interval: RateLimitInterval, quota: u64) -> Self {
        Bucket {
            kind,
            interval,
            quota,
            level: quota as f64,
            at: Instant::now(),
        }
    }

    fn rate(&self) -> f64 {
        self.quota as f64 / self.interval.duration().as_secs_f64()
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.level = (self.level + elapsed * self.rate()).min(self.quota as f64);
        self.at = now;
    }

    /// How long until `n` tokens are there (zero if they are).
    fn wait_for(&self, n: f64) -> Duration {
        if self.level >= n {
            return Duration::ZERO;
        }
        Duration::from_secs_f64(((n - self.level) / self.rate()).max(0.001))
    }

    fn view(&self) -> RateLimit {
        let remaining = self.level.max(0.0).floor() as u64;
        RateLimit {
            kind: self.kind,
            interval_seconds: self.interval,
            quota: self.quota,
            used_quota: self.quota - remaining.min(self.quota),
            remaining_quota: remaining.min(self.quota),
        }
    }
}

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    pub kind: RateLimitType,
    pub interval: RateLimitInterval,
    pub wait: Duration,
}

impl Refusal {
    /// The `Retry-After` header value.
    pub fn retry_after(&self, format: RetryAfterFormat) -> String {
        // Rounded up: retrying at the stated time must succeed.
        let wait =
            Duration::from_secs(self.wait.as_secs() + u64::from(self.wait.subsec_nanos() > 0));
        match format {
            RetryAfterFormat::Seconds => wait.as_secs().to_string(),
            RetryAfterFormat::Timestamp => (SystemTime::now() + wait)
                .duration_since(SystemTime::UNIX_EPOCH)
                .map(|d| (d.as_secs() + 1).to_string())
                .unwrap_or_else(|_| "1".to_owned()),
            RetryAfterFormat::HttpDate => {
                httpdate::fmt_http_date(SystemTime::now() + wait + Duration::from_secs(1))
            }
        }
    }
}

/// The six buckets of one Centra instance.
#[derive(Debug)]
pub struct Limits {
    inner: Mutex<(Quotas, Vec<Bucket>)>,
}

fn buckets(q: &Quotas) -> Vec<Bucket> {
    use RateLimitInterval::*;
    use RateLimitType::*;
    vec![
        Bucket::new(RequestCount, TenSeconds, q.request_count_10s),
        Bucket::new(RequestCount, OneHour, q.request_count_1h),
        Bucket::new(QueryComplexity, TenSeconds, q.complexity_10s),
        Bucket::new(QueryComplexity, OneHour, q.complexity_1h),
        Bucket::new(MutationCount, TenSeconds, q.mutation_count_10s),
        Bucket::new(MutationCount, OneHour, q.mutation_count_1h),
    ]
}

impl Limits {
    pub fn new(quotas: Quotas) -> Self {
        Limits {
            inner: Mutex::new((quotas, buckets(&quotas))),
        }
    }

    /// New quotas, all buckets full again.
    pub fn reset(&self, quotas: Quotas) {
        *self.inner.lock() = (quotas, buckets(&quotas));
    }

    pub fn quotas(&self) -> Quotas {
        self.inner.lock().0
    }

    /// Takes one request and `mutations` mutation tokens, or refuses without taking any.
    /// Complexity must have at least one token left.
    pub fn admit(&self, mutations: u64) -> Result<(), Refusal> {
        let now = Instant::now();
        let mut guard = self.inner.lock();
        let mut refusal: Option<Refusal> = None;
        for b in guard.1.iter_mut() {
            b.refill(now);
            let need = match b.kind {
                RateLimitType::RequestCount => 1.0,
                RateLimitType::MutationCount => mutations as f64,
                RateLimitType::QueryComplexity => 1.0,
            };
            if need > 0.0 && b.level < need {
                let wait = b.wait_for(need);
                if refusal.as_ref().is_none_or(|r| r.wait < wait) {
                    refusal = Some(Refusal {
                        kind: b.kind,
                        interval: b.interval,
                        wait,
                    });
                }
            }
        }
        if let Some(r) = refusal {
            return Err(r);
        }
        for b in guard.1.iter_mut() {
            match b.kind {
                RateLimitType::RequestCount => b.level -= 1.0,
                RateLimitType::MutationCount => b.level -= mutations as f64,
                RateLimitType::QueryComplexity => {}
            }
        }
        Ok(())
    }

    /// Charges the complexity of an answered request.
    pub fn charge_complexity(&self, complexity: u64) {
        let now = Instant::now();
        let mut guard = self.inner.lock();
        for b in guard
            .1
            .iter_mut()
            .filter(|b| b.kind == RateLimitType::QueryComplexity)
        {
            b.refill(now);
            b.level -= complexity as f64;
        }
    }

    /// Every bucket now.
    pub fn view(&self) -> Vec<RateLimit> {
        let now = Instant::now();
        let mut guard = self.inner.lock();
        guard
            .1
            .iter_mut()
            .map(|b| {
                b.refill(now);
                b.view()
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> Quotas {
        Quotas {
            request_count_10s: 5,
            mutation_count_10s: 3,
            ..Quotas::default()
        }
    }

    #[test]
    fn requests_run_out_then_refuse_with_a_wait() {
        let limits = Limits::new(small());
        for _ in 0..5 {
            assert!(limits.admit(0).is_ok());
        }
        let refusal = limits.admit(0).err();
        let Some(r) = refusal else {
            panic!("the sixth request in 10 s must be refused");
        };
        assert_eq!(r.kind, RateLimitType::RequestCount);
        assert_eq!(r.interval, RateLimitInterval::TenSeconds);
        assert!(r.wait > Duration::from_millis(1500) && r.wait <= Duration::from_secs(2));
    }

    #[test]
    fn mutations_are_their_own_bucket_and_a_refusal_takes_nothing() {
        let limits = Limits::new(small());
        assert!(limits.admit(2).is_ok());
        let r = limits.admit(2).err().map(|r| r.kind);
        assert_eq!(r, Some(RateLimitType::MutationCount));
        // The refused request did not spend a request token.
        let view = limits.view();
        let requests = view
            .iter()
            .find(|b| {
                b.kind == RateLimitType::RequestCount
                    && b.interval_seconds == RateLimitInterval::TenSeconds
            })
            .map(|b| b.remaining_quota);
        assert_eq!(requests, Some(4));
        assert!(limits.admit(1).is_ok());
    }

    #[test]
    fn complexity_is_charged_after_and_blocks_when_spent() {
        let limits = Limits::new(Quotas {
            complexity_10s: 1000,
            ..Quotas::default()
        });
        assert!(limits.admit(0).is_ok());
        limits.charge_complexity(1500);
        let r = limits.admit(0).err().map(|r| r.kind);
        assert_eq!(r, Some(RateLimitType::QueryComplexity));
    }

    #[test]
    fn the_view_adds_up() {
        let limits = Limits::new(Quotas::plan(Plan::Fresh));
        assert!(limits.admit(1).is_ok());
        limits.charge_complexity(229);
        let view = limits.view();
        assert_eq!(view.len(), 6);
        for b in &view {
            assert_eq!(b.quota, b.used_quota + b.remaining_quota);
        }
        let used: Vec<u64> = view.iter().map(|b| b.used_quota).collect();
        assert_eq!(used, vec![1, 1, 229, 229, 1, 1]);
    }

    #[test]
    fn retry_after_forms() {
        let r = Refusal {
            kind: RateLimitType::RequestCount,
            interval: RateLimitInterval::TenSeconds,
            wait: Duration::from_millis(1200),
        };
        assert_eq!(r.retry_after(RetryAfterFormat::Seconds), "2");
        let ts: u64 = r
            .retry_after(RetryAfterFormat::Timestamp)
            .parse()
            .unwrap_or(0);
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        assert!(ts >= now + 2 && ts <= now + 4, "{ts} vs {now}");
        assert!(httpdate::parse_http_date(&r.retry_after(RetryAfterFormat::HttpDate)).is_ok());
    }
}
