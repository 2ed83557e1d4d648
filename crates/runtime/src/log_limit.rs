//! Logging at a bounded rate what an outsider can cause at will (refused webhooks): a
//! flood is one line per (tenant, outcome) each interval, saying how many there were — not
//! one line each (a flood of bad signatures wrote 64,378 lines in 20 s). What is limited
//! should still be counted in a metric.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// (tenant, outcome): configured tenants (or "unknown") × outcomes, a bounded set.
type Key = (String, &'static str);

pub struct LogLimit {
    every: Duration,
    /// When each key was last logged, and how many went unlogged since.
    last: Mutex<HashMap<Key, (Instant, u64)>>,
}

impl LogLimit {
    pub fn new(every: Duration) -> Self {
        LogLimit {
            every,
            last: Mutex::new(HashMap::new()),
        }
    }

    /// `Some(n)`: log this refusal now, `n` like it having gone unlogged since the last
    /// line; `None`: stay quiet (it is counted for the next line).
    pub fn admit(&self, tenant: &str, outcome: &'static str, now: Instant) -> Option<u64> {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        match last.get_mut(&(tenant.to_owned(), outcome)) {
            Some((at, quiet)) if now.duration_since(*at) < self.every => {
                *quiet += 1;
                None
            }
            Some((at, quiet)) => {
                let unlogged = *quiet;
                (*at, *quiet) = (now, 0);
                Some(unlogged)
            }
            None => {
                last.insert((tenant.to_owned(), outcome), (now, 0));
                Some(0)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_is_one_line_an_interval_with_its_count() {
        let limit = LogLimit::new(Duration::from_secs(10));
        let t0 = Instant::now();
        assert_eq!(limit.admit("acme", "bad_signature", t0), Some(0));
        for i in 1..=1_000 {
            assert_eq!(
                limit.admit("acme", "bad_signature", t0 + Duration::from_millis(i)),
                None
            );
        }
        // Another outcome or tenant has its own line.
        assert_eq!(limit.admit("acme", "stale", t0), Some(0));
        assert_eq!(limit.admit("globex", "bad_signature", t0), Some(0));
        let later = t0 + Duration::from_secs(10);
        assert_eq!(limit.admit("acme", "bad_signature", later), Some(1_000));
        assert_eq!(limit.admit("acme", "bad_signature", later), None);
    }
}
