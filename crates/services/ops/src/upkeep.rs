//! The exceptions' upkeep, per tenant and on the feed runner: retries that worked are
//! resolved, bulk operations whose runner stopped are resumed, and overdue exceptions are
//! counted for alerting (`ferry_exceptions_overdue{tenant,owner,kind}`).

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use ferry_runtime::{Feed, FeedError, Pass};
use ferry_store::Store;

use crate::server::OpsApi;

/// A running bulk operation not moved for this long has lost its runner.
const BULK_IDLE: Duration = Duration::from_secs(30);
/// Queued notices are kept this long: every channel has long sent them.
const NOTICES_KEPT_DAYS: i32 = 14;

/// One tenant's upkeep.
pub struct Upkeep {
    pub tenant: String,
    pub store: Store,
    api: OpsApi,
    /// How long a re-driven message must go without failing again to count as through:
    /// the time the consumer runner takes to give up on a message.
    pub quiet: Duration,
    /// Some channel of the tenant hears of overdue exceptions: queue their notices.
    escalates: bool,
    /// The (owner, kind) gauges set last pass, so those no longer overdue go to zero.
    shown: Mutex<BTreeSet<(String, String)>>,
}

impl Upkeep {
    pub fn new(tenant: &str, api: OpsApi, quiet: Duration, escalates: bool) -> Upkeep {
        Upkeep {
            tenant: tenant.to_owned(),
            store: api.store().clone(),
            api,
            quiet,
            escalates,
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
        for id in self
            .store
            .stalled_bulks(&self.tenant, BULK_IDLE)
            .await
            .map_err(FeedError::transient)?
        {
            // Taken (moved) before it is resumed: another replica's upkeep passes it by.
            if self
                .store
                .touch_bulk(id)
                .await
                .map_err(FeedError::transient)?
            {
                tracing::info!(tenant = %self.tenant, operation = %id, "resuming a bulk operation");
                self.api.spawn_bulk(id);
            }
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
        {
            let mut shown = self.shown.lock().unwrap_or_else(|e| e.into_inner());
            for (owner, kind) in shown.difference(&now) {
                gauge(owner, kind, 0.0);
            }
            *shown = now;
        }
        if self.escalates {
            let queued = self
                .store
                .queue_overdue_notices(&self.tenant)
                .await
                .map_err(FeedError::transient)?;
            if queued > 0 {
                tracing::info!(tenant = %self.tenant, queued, "overdue exceptions escalated");
            }
        }
        self.store
            .prune_notices(&self.tenant, NOTICES_KEPT_DAYS)
            .await
            .map_err(FeedError::transient)?;
        Ok(Pass::idle(cursor))
    }
}
