//! Centra's quotas as Ferry may spend them: the buckets Centra documents per plan, the share
//! of them Ferry may use (every integration of an environment spends the same budget), and
//! its split between Ferry's services. Pure arithmetic: the Centra client paces to the
//! result, the services' shared mutation budget spends its mutations.

use serde::{Deserialize, Serialize};

/// A Centra plan, for its documented quotas.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Plan {
    /// A fresh instance, as Centra's rate-limit page first documented it.
    #[default]
    Fresh,
    Growth,
    Enterprise,
}

/// One figure per bucket; `None` where Centra documents no figure (not paced by Ferry; a
/// 429 with `Retry-After` still is honoured).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quotas {
    pub requests_per_10s: Option<u64>,
    pub requests_per_hour: Option<u64>,
    pub complexity_per_10s: Option<u64>,
    pub complexity_per_hour: Option<u64>,
    pub mutations_per_10s: Option<u64>,
    pub mutations_per_hour: Option<u64>,
}

impl Plan {
    /// The quotas Centra documents for the plan (see `docs/centra.md`).
    pub fn quotas(self) -> Quotas {
        match self {
            Plan::Fresh => Quotas {
                requests_per_10s: Some(20),
                requests_per_hour: Some(10_000),
                complexity_per_10s: Some(150_000),
                complexity_per_hour: Some(20_000_000),
                mutations_per_10s: Some(100),
                mutations_per_hour: Some(1_000),
            },
            Plan::Growth => Quotas {
                requests_per_10s: Some(60),
                requests_per_hour: Some(5_000),
                complexity_per_10s: Some(250_000),
                complexity_per_hour: None,
                mutations_per_10s: Some(20),
                mutations_per_hour: Some(1_800),
            },
            Plan::Enterprise => Quotas {
                requests_per_10s: Some(1_500),
                requests_per_hour: None,
                complexity_per_10s: None,
                complexity_per_hour: None,
                mutations_per_10s: Some(500),
                mutations_per_hour: Some(25_000),
            },
        }
    }
}

/// Who in Ferry calls Centra, for splitting its share of the request and complexity buckets:
/// each service paces its own client, so together they stay within the share.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caller {
    /// Order snapshots, resyncs, events: the order path.
    Ingest,
    FulfilmentFeedback,
    InventoryPusher,
    /// Order snapshots read again to check what reached the ERP.
    Reconciler,
}

impl Caller {
    pub const ALL: [Caller; 4] = [
        Caller::Ingest,
        Caller::FulfilmentFeedback,
        Caller::InventoryPusher,
        Caller::Reconciler,
    ];

    /// Percent of Ferry's share: ingest 50, fulfilment 20, inventory 20, reconciler 10.
    pub fn percent(self) -> u64 {
        match self {
            Caller::Ingest => 50,
            Caller::FulfilmentFeedback | Caller::InventoryPusher => 20,
            Caller::Reconciler => 10,
        }
    }
}

/// What one client may spend: `u64::MAX` where a bucket is not paced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pacing {
    pub requests_per_10s: u64,
    pub requests_per_hour: u64,
    pub complexity_per_10s: u64,
    pub complexity_per_hour: u64,
}

impl Pacing {
    /// Only the 10-second request bucket (tests, tools).
    pub fn requests(per_10s: u32) -> Self {
        Pacing {
            requests_per_10s: u64::from(per_10s),
            requests_per_hour: u64::MAX,
            complexity_per_10s: u64::MAX,
            complexity_per_hour: u64::MAX,
        }
    }
}

/// `percent` of `quota`, at least one unit; `None` (no figure) stays unpaced.
fn part(quota: Option<u64>, percent: u64) -> u64 {
    quota.map_or(u64::MAX, |q| (q.saturating_mul(percent) / 100).max(1))
}

impl Quotas {
    /// Ferry's `share_percent` of every bucket.
    pub fn share(self, share_percent: u64) -> Quotas {
        let s = |q: Option<u64>| q.map(|q| part(Some(q), share_percent));
        Quotas {
            requests_per_10s: s(self.requests_per_10s),
            requests_per_hour: s(self.requests_per_hour),
            complexity_per_10s: s(self.complexity_per_10s),
            complexity_per_hour: s(self.complexity_per_hour),
            mutations_per_10s: s(self.mutations_per_10s),
            mutations_per_hour: s(self.mutations_per_hour),
        }
    }

    /// What `caller` paces its client to, out of these (already shared) quotas.
    pub fn pacing_for(self, caller: Caller) -> Pacing {
        let p = caller.percent();
        Pacing {
            requests_per_10s: part(self.requests_per_10s, p),
            requests_per_hour: part(self.requests_per_hour, p),
            complexity_per_10s: part(self.complexity_per_10s, p),
            complexity_per_hour: part(self.complexity_per_hour, p),
        }
    }

    /// How long a backlog of `requests` takes to clear at `caller`'s pace, when the request
    /// buckets bind (the figures `docs/centra.md` gives per plan).
    pub fn drain_seconds(self, caller: Caller, requests: u64) -> u64 {
        let pacing = self.pacing_for(caller);
        let by = |per: u64, window: u64| {
            if per == u64::MAX {
                0
            } else {
                requests.saturating_sub(per).div_ceil(per) * window
            }
        };
        by(pacing.requests_per_10s, 10).max(by(pacing.requests_per_hour, 3600))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_documented_tiers() {
        let growth = Plan::Growth.quotas();
        assert_eq!(growth.requests_per_10s, Some(60));
        assert_eq!(growth.mutations_per_hour, Some(1_800));
        assert_eq!(Plan::Enterprise.quotas().mutations_per_10s, Some(500));
        assert_eq!(Plan::Fresh.quotas().requests_per_10s, Some(20));
    }

    #[test]
    fn half_a_growth_plan_split_between_the_services() {
        let ours = Plan::Growth.quotas().share(50);
        assert_eq!(ours.requests_per_10s, Some(30));
        assert_eq!(ours.mutations_per_10s, Some(10));
        let ingest = ours.pacing_for(Caller::Ingest);
        assert_eq!(
            (ingest.requests_per_10s, ingest.requests_per_hour),
            (15, 1_250)
        );
        assert_eq!(
            ingest.complexity_per_hour,
            u64::MAX,
            "not documented for Growth"
        );
        let fulfilment = ours.pacing_for(Caller::FulfilmentFeedback);
        assert_eq!(fulfilment.requests_per_10s, 6);
        assert_eq!(ours.pacing_for(Caller::Reconciler).requests_per_10s, 3);
        let total: u64 = Caller::ALL.iter().map(|c| c.percent()).sum();
        assert_eq!(total, 100);
    }

    proptest! {
        /// Whatever the quota and share, the services together never plan to spend more
        /// than Ferry's share of any bucket (the one-unit floor aside).
        #[test]
        fn the_split_stays_within_the_share(quota in 100u64..10_000_000, share in 1u64..=100) {
            let q = Quotas {
                requests_per_10s: Some(quota),
                requests_per_hour: Some(quota * 10),
                complexity_per_10s: Some(quota * 100),
                complexity_per_hour: None,
                mutations_per_10s: Some(quota),
                mutations_per_hour: Some(quota),
            }
            .share(share);
            let total: u64 = Caller::ALL
                .iter()
                .map(|c| q.pacing_for(*c).requests_per_10s)
                .sum();
            prop_assert!(total <= q.requests_per_10s.unwrap_or(0).max(4));
            prop_assert!(q.requests_per_10s.unwrap_or(0) <= quota);
        }
    }
}
