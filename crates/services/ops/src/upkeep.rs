//! The exceptions' upkeep, per tenant and on the feed runner: retries that worked are
//! resolved, and overdue exceptions are counted for alerting
//! (`ferry_exceptions_overdue{tenant,owner,kind}`).

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use ferry_runtime::{Feed, FeedError, Pass};
use ferry_store::Store;

/// One tenant's upkeep.
pub struct Upkeep {
    pub tenant: String,
    pub store: Store,
    /// How long a re-driven message must go without failing again to count as through:
    /// the time the consumer runner takes to give up on a message.
    pub quiet: Duration,
    /// The (owner, kind) gauges set last pass, so those no longer overdue go to zero.
    shown: Mutex<BTreeSet<(String, String)>>,
}

impl Upkeep {
    pub fn new(tenant: &str, store: Store, quiet: Duration) -> Upkeep {
        Upkeep {
            tenant: tenant.to_owned(),
            store,
            quiet,
            shown: Mutex::new(BTreeSet::new()),
        }
    }
}

#[async_trait]
impl Feed for Upkeep {
    async fn pass(&self, cursor: &str) -> Result<Pass, FeedError> {
        let settled = self
            .store
            .settle_retries(&self.tenant, self.quiet)
            .await
            .map_err(FeedError::transient)?;
        if settled > 0 {
            tracing::info!(tenant = %self.tenant, settled, "retries went through");
        }
        let overdue = self
            .store
            .overdue_exceptions(&self.tenant)
            .await
            .map_err(FeedError::transient)?;
        let now: BTreeSet<(String, String)> = overdue
            .iter()
            .map(|(owner, kind, _)| (owner.clone(), kind.clone()))
            .collect();
        let gauge = |owner: &str, kind: &str, n: f64| {
            metrics::gauge!(
                "ferry_exceptions_overdue",
                "tenant" => self.tenant.clone(),
                "owner" => owner.to_owned(),
                "kind" => kind.to_owned()
            )
            .set(n);
        };
        for (owner, kind, n) in &overdue {
            gauge(owner, kind, *n as f64);
        }
        let mut shown = self.shown.lock().unwrap_or_else(|e| e.into_inner());
        for (owner, kind) in shown.difference(&now) {
            gauge(owner, kind, 0.0);
        }
        *shown = now;
        Ok(Pass::idle(cursor))
    }
}
