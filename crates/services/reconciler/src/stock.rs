//! Centra's sellable stock against what Ferry expects: what Ferry last told Centra was
//! sellable, less the units of orders Ferry has heard of since (Centra allocates those as
//! they are placed). A difference past the brand's threshold is drift, listed per SKU,
//! recorded (ADR 0030) and raised to operations; it closes when a later check finds it gone.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use ferry_centra::CentraClient;
use ferry_config::TenantConfig;
use ferry_domain::ExceptionKind;
use ferry_runtime::{ExceptionSink, Feed, FeedError, Pass};
use ferry_store::Store;
use ferry_store::stock_drift::{StockExpectation, StockFinding};
use futures::{StreamExt as _, TryStreamExt as _};
use secrecy::ExposeSecret as _;

use crate::compare::{Cause, Variance};
use crate::tell::exception;

/// SKUs compared per pass (Centra is asked per warehouse, in its own chunks).
pub const STOCK_PAGE: usize = 200;

/// One tenant's stock check, a page of SKUs at a time.
pub struct StockCheck {
    pub tenant: String,
    pub store: Store,
    /// Paced for the reconciler's share of the tenant's Centra quota.
    pub client: CentraClient,
    pub sink: Arc<dyn ExceptionSink>,
    pub units: i64,
    pub percent: i64,
    /// The Centra warehouse Centra allocates orders from.
    pub allocation_warehouse: i64,
    pub page: usize,
    /// SKUs found drifting since the walk last started from the first (published as
    /// `ferry_reconcile_stock_drift_skus` at the end of each walk).
    drifting: AtomicU64,
}

impl StockCheck {
    /// The check of a tenant whose stock Ferry pushes (`None` for one it does not).
    pub fn for_tenant(
        tenant: &TenantConfig,
        store: Store,
        sink: Arc<dyn ExceptionSink>,
        page: usize,
    ) -> Option<StockCheck> {
        let inventory = &tenant.inventory;
        // As the pusher counts open orders: the named warehouse, else the lowest mapped.
        let allocation_warehouse = inventory
            .allocation_warehouse
            .or_else(|| inventory.warehouses.values().min().copied())?;
        Some(StockCheck {
            tenant: tenant.id.clone(),
            store,
            client: CentraClient::paced(
                tenant.centra.url.clone(),
                tenant.centra.token.expose_secret().to_owned().into(),
                tenant
                    .centra
                    .pacing_for(ferry_config::CentraCaller::Reconciler),
                tenant.centra.timeout,
            )
            .for_tenant(&tenant.id),
            sink,
            units: tenant.targets.stock_drift_units,
            percent: tenant.targets.stock_drift_percent,
            allocation_warehouse,
            page,
            drifting: AtomicU64::new(0),
        })
    }

    /// One page of the walk from `cursor` (`"<warehouse>:<sku>"` of the last SKU checked;
    /// empty: the first): the pass, and the drift found (recorded, raised, and drift found
    /// gone closed, before this returns). At the end the walk starts again from the first.
    pub async fn walk(&self, cursor: &str) -> Result<(Pass, Vec<Variance>), FeedError> {
        let after = cursor
            .split_once(':')
            .and_then(|(w, sku)| Some((w.parse::<i64>().ok()?, sku)))
            .unwrap_or((i64::MIN, ""));
        let limit = i64::try_from(self.page).unwrap_or(i64::MAX);
        let expected = self
            .store
            .stock_expectations(&self.tenant, after, self.allocation_warehouse, limit)
            .await
            .map_err(FeedError::transient)?;
        let Some(last) = expected.last() else {
            // Past a last page that happened to be full.
            if !cursor.is_empty() {
                metrics::gauge!("ferry_reconcile_stock_drift_skus", "tenant" => self.tenant.clone())
                    .set(self.drifting.swap(0, Ordering::Relaxed) as f64);
            }
            return Ok((Pass::idle(""), Vec::new()));
        };
        // The last page: the next pass starts again from the first SKU.
        let end = expected.len() < self.page;
        let next = if end {
            String::new()
        } else {
            format!("{}:{}", last.warehouse, last.sku)
        };
        let centra = self.centra_levels(&expected).await?;
        let mut drifting = Vec::new();
        let mut steady = Vec::new();
        for e in &expected {
            // A SKU Centra does not answer for is the pusher's to report (`stock_refused`).
            let Some(&offered) = centra.get(&(e.warehouse, e.sku.clone())) else {
                continue;
            };
            if drifts(e.expected, offered, self.units, self.percent) {
                drifting.push(StockFinding {
                    warehouse: e.warehouse,
                    sku: e.sku.clone(),
                    expected: e.expected,
                    centra: offered,
                });
            } else {
                steady.push((e.warehouse, e.sku.clone()));
            }
        }
        let cleared = self
            .store
            .record_stock_drift(&self.tenant, &drifting, &steady)
            .await
            .map_err(FeedError::transient)?;
        let found: Vec<Variance> = drifting.iter().map(variance).collect();
        self.tell(&found, &cleared).await?;
        let drifting = self
            .drifting
            .fetch_add(found.len() as u64, Ordering::Relaxed)
            + found.len() as u64;
        if end {
            metrics::gauge!("ferry_reconcile_stock_drift_skus", "tenant" => self.tenant.clone())
                .set(drifting as f64);
            self.drifting.store(0, Ordering::Relaxed);
        }
        let pass = Pass {
            items: expected.len() as u64,
            more: !end,
            cursor: next,
            ..Pass::default()
        };
        Ok((pass, found))
    }

    /// Centra's free-to-allocate stock of the page's SKUs, by (warehouse, SKU).
    async fn centra_levels(
        &self,
        expected: &[StockExpectation],
    ) -> Result<BTreeMap<(i64, String), i64>, FeedError> {
        let mut by_warehouse: BTreeMap<i64, Vec<&str>> = BTreeMap::new();
        for e in expected {
            by_warehouse.entry(e.warehouse).or_default().push(&e.sku);
        }
        let mut levels = BTreeMap::new();
        for (warehouse, skus) in by_warehouse {
            let seen = self
                .client
                .stock_levels(warehouse, &skus)
                .await
                .map_err(|e| FeedError::Transient {
                    retry_after: e.retry_after(),
                    reason: format!("reading Centra's stock: {e}"),
                })?;
            for s in seen {
                levels.insert((warehouse, s.sku), s.free_to_allocate);
            }
        }
        Ok(levels)
    }

    async fn tell(&self, found: &[Variance], cleared: &[(i64, String)]) -> Result<(), FeedError> {
        let raised: Vec<_> = found
            .iter()
            .map(|v| exception(&self.tenant, ExceptionKind::StockDrift, v))
            .collect();
        futures::stream::iter(0..raised.len())
            .map(|i| self.sink.record(&raised[i]))
            .buffer_unordered(16)
            .try_collect::<Vec<_>>()
            .await
            .map_err(FeedError::transient)?;
        if cleared.is_empty() {
            return Ok(());
        }
        let keys: Vec<String> = cleared
            .iter()
            .map(|(w, sku)| format!("sku:{w}:{sku}"))
            .collect();
        self.store
            .resolve_exceptions_by_key(
                &self.tenant,
                ExceptionKind::StockDrift.as_str(),
                &keys,
                "the reconciler found Centra's stock as Ferry expects it",
            )
            .await
            .map_err(FeedError::transient)?;
        Ok(())
    }
}

#[async_trait]
impl Feed for StockCheck {
    async fn pass(&self, cursor: &str) -> Result<Pass, FeedError> {
        Ok(self.walk(cursor).await?.0)
    }
}

/// The variance of one SKU's drift (no money: Ferry knows no price for stock).
fn variance(d: &StockFinding) -> Variance {
    let off = d.centra - d.expected;
    let what = if off > 0 {
        format!("{off} more than Ferry expects: customers may buy stock that is not there")
    } else {
        format!("{} fewer than Ferry expects: sales may be refused", -off)
    };
    Variance {
        order: 0,
        cause: Cause::StockDrift,
        owner: Cause::StockDrift.owner(),
        money_minor: 0,
        currency: String::new(),
        detail: format!(
            "SKU {} in Centra warehouse {}: Centra offers {}, {what}",
            d.sku, d.warehouse, d.centra
        ),
        erp_reference: Some(format!("{}:{}", d.warehouse, d.sku)),
    }
}

/// Whether Centra's `centra` free-to-allocate units stray from Ferry's `expected` by more
/// than the brand allows: more than `units` *and* more than `percent` of what is expected
/// (a few units of a best-seller are noise; of a size with three left, they are not).
pub fn drifts(expected: i64, centra: i64, units: i64, percent: i64) -> bool {
    let off = i128::from(centra) - i128::from(expected);
    let off = off.abs();
    off > i128::from(units) && off * 100 > i128::from(percent) * i128::from(expected).abs()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn drift_is_past_both_the_units_and_the_percentage() {
        // 5 units or 5 %: 6 off 100 is drift, 6 off 1,000 is not, 5 off 10 is not.
        assert!(drifts(100, 106, 5, 5));
        assert!(drifts(100, 94, 5, 5));
        assert!(!drifts(1_000, 1_006, 5, 5));
        assert!(!drifts(10, 15, 5, 5));
        assert!(drifts(0, 6, 5, 5));
        assert!(!drifts(0, 0, 0, 0));
    }

    proptest! {
        #[test]
        fn drift_is_symmetric_and_never_within_the_threshold(
            expected in 0i64..100_000, off in -10_000i64..10_000,
            units in 0i64..50, percent in 0i64..50,
        ) {
            let d = drifts(expected, expected + off, units, percent);
            prop_assert_eq!(d, drifts(expected, expected - off, units, percent));
            if off.abs() <= units {
                prop_assert!(!d);
            }
        }
    }
}
