//! The check of a batch of orders, shared by the service's feed and `ferry reconcile run`:
//! read each order again from Centra (within the reconciler's share of the brand's Centra
//! quota) and from the ERP (its documents read back), judge it, tell the teams, and record
//! the verdict with the figures each source holds.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};
use ferry_centra::CentraShipment;
use ferry_centra::{CentraClient, CentraError};
use ferry_config::{ReconcilerConfig, TenantConfig};
use ferry_domain::{ExceptionKind, NewException, Snapshot};
use ferry_erp::ReadBack;
use ferry_runtime::{ExceptionSink, FeedError};
use ferry_store::fulfilment::{ShipmentRow, ShipmentState};
use ferry_store::reconciliation::{DueOrder, VerdictRecord};
use ferry_store::{LedgerRow, SkuCache, Store};
use secrecy::ExposeSecret;

use crate::compare::{Cause, Variance, Verdict};
use crate::expected::{Judgement, judge, placed_at};
use crate::figures::order_day;
use crate::service::{CHECK_FEED, ReconcilerError, SERVICE};
use crate::shipments::check_shipments;
use crate::tell::tell;
use crate::timeliness::{Step, Targets, Times, timing};

/// Orders never seen by Ferry judged per batch (one Centra request).
const UNSEEN_BATCH: usize = 200;

/// Checks one tenant's orders.
pub struct Checker {
    pub tenant: TenantConfig,
    pub store: Store,
    /// Paced for the reconciler's share of the tenant's Centra quota.
    pub client: CentraClient,
    pub erp: Arc<dyn ReadBack>,
    pub sink: Arc<dyn ExceptionSink>,
    pub grace: chrono::Duration,
    pub erp_reads_in_flight: usize,
    /// The brand's SKU mapping, read again every few seconds (the transform's view of
    /// what Centra charged depends on it).
    pub items: SkuCache,
    /// How soon each step should follow the one before, for this brand.
    pub targets: Targets,
}

/// One order checked.
#[derive(Debug, Clone)]
pub struct Checked {
    pub order: i64,
    pub verdict: Verdict,
    /// The steps of the order's journey past the brand's targets.
    pub late: Vec<Step>,
}

impl Checker {
    /// The checker of one tenant, its Centra client paced for the reconciler's share of
    /// the tenant's quota.
    pub fn for_tenant(
        tenant: &TenantConfig,
        store: Store,
        erp: Arc<dyn ReadBack>,
        sink: Arc<dyn ExceptionSink>,
        settings: &ReconcilerConfig,
    ) -> Result<Checker, ReconcilerError> {
        let client = CentraClient::paced(
            tenant.centra.url.clone(),
            tenant.centra.token.expose_secret().to_owned().into(),
            tenant
                .centra
                .pacing_for(ferry_config::CentraCaller::Reconciler),
            tenant.centra.timeout,
        )
        .for_tenant(&tenant.id);
        Ok(Checker {
            tenant: tenant.clone(),
            store,
            client,
            erp,
            sink,
            grace: span(settings.grace, "grace")?,
            erp_reads_in_flight: settings.erp_reads_in_flight,
            items: SkuCache::new(std::time::Duration::from_secs(10)),
            targets: Targets::of(tenant),
        })
    }

    /// Checks `due` (one batch): every verdict is recorded, and every variance told, before
    /// this returns; a failure leaves the batch to be checked again whole.
    pub async fn check(
        &self,
        due: &[DueOrder],
        now: DateTime<Utc>,
    ) -> Result<Vec<Checked>, FeedError> {
        let orders: Vec<(i64, Option<&DueOrder>)> =
            due.iter().map(|d| (d.row.order_number, Some(d))).collect();
        self.judge_all(&orders, None, now).await
    }

    /// Completeness from Centra's side: the orders Centra lists as changed since `since`
    /// that the ledger does not hold. Each is judged without a ledger row — pending inside
    /// its grace (or while Centra holds it), missing after — and recorded; orders placed
    /// before `live_since` (Centra's date of the earliest order checked) are history from
    /// before Ferry, left alone.
    pub async fn check_unseen(
        &self,
        since: DateTime<Utc>,
        live_since: NaiveDate,
        now: DateTime<Utc>,
    ) -> Result<Vec<Checked>, FeedError> {
        let unseen = self.unseen_since(since).await?;
        self.check_numbers(&unseen, live_since, now).await
    }

    /// The orders Centra lists as changed since `since` that the ledger does not hold, in
    /// order.
    pub async fn unseen_since(&self, since: DateTime<Utc>) -> Result<Vec<i64>, FeedError> {
        let tenant = self.tenant.id.as_str();
        let listed = self
            .client
            .orders_changed_since(since)
            .await
            .map_err(|e| centra_error(e, tenant))?;
        let known = self
            .store
            .orders_in_ledger(tenant, &listed)
            .await
            .map_err(FeedError::transient)?;
        let mut unseen: Vec<i64> = listed.into_iter().filter(|n| !known.contains(n)).collect();
        unseen.sort_unstable();
        unseen.dedup();
        Ok(unseen)
    }

    /// Checks orders the ledger does not hold by number: those Centra has (placed since
    /// `live_since`) are judged and recorded; numbers Centra does not know are skipped.
    pub async fn check_numbers(
        &self,
        numbers: &[i64],
        live_since: NaiveDate,
        now: DateTime<Utc>,
    ) -> Result<Vec<Checked>, FeedError> {
        let mut checked = Vec::new();
        for chunk in numbers.chunks(UNSEEN_BATCH) {
            let orders: Vec<(i64, Option<&DueOrder>)> = chunk.iter().map(|&n| (n, None)).collect();
            checked.extend(self.judge_all(&orders, Some(live_since), now).await?);
        }
        Ok(checked)
    }

    /// Reads `orders` from Centra and the ERP, judges, tells and records each. An order
    /// the ledger does not hold (`None`) placed before `history_before` is skipped.
    async fn judge_all(
        &self,
        orders: &[(i64, Option<&DueOrder>)],
        history_before: Option<NaiveDate>,
        now: DateTime<Utc>,
    ) -> Result<Vec<Checked>, FeedError> {
        let tenant = self.tenant.id.as_str();
        let numbers: Vec<i64> = orders.iter().map(|(n, _)| *n).collect();
        let mut snapshots: HashMap<i64, Snapshot> = self
            .client
            .order_snapshots_parsed(&numbers)
            .await
            .map_err(|e| centra_error(e, tenant))?
            .into_iter()
            .map(|s| (s.number, s))
            .collect();
        let refs: Vec<String> = numbers.iter().map(i64::to_string).collect();
        let documents = self
            .erp
            .read_many(&refs, self.erp_reads_in_flight)
            .await
            .map_err(|e| FeedError::Transient {
                retry_after: e.retry_after(),
                reason: format!("reading the ERP's documents: {e}"),
            })?;
        let items = self
            .items
            .get(&self.store, tenant, false)
            .await
            .map_err(FeedError::transient)?;
        let (mut erp_shipments, mut centra_shipments) = self.shipments(orders).await?;
        let mut checked = Vec::with_capacity(orders.len());
        let mut records = Vec::with_capacity(orders.len());
        for (&(number, due), documents) in orders.iter().zip(&documents) {
            let Some(snapshot) = snapshots.remove(&number) else {
                if due.is_none() {
                    // Not an order of Centra's: nothing to check.
                    continue;
                }
                // Centra no longer answers for it (or not readably): nothing to compare
                // with; the next check tries again.
                tracing::warn!(
                    tenant,
                    order = number,
                    "Centra has no readable snapshot of the order"
                );
                records.push(pending(number, due));
                checked.push(Checked {
                    order: number,
                    verdict: Verdict::Pending,
                    late: Vec::new(),
                });
                continue;
            };
            if due.is_none()
                && let Some(before) = history_before
                && snapshot
                    .order_date
                    .as_deref()
                    .and_then(order_day)
                    .is_some_and(|day| day < before)
            {
                continue;
            }
            let mut judgement = judge(
                &snapshot,
                &self.tenant.rules,
                items.as_ref(),
                due.map(|d| &d.row),
                documents,
                now,
                self.grace,
            );
            self.journey(
                &mut judgement,
                due.map(|d| &d.row),
                snapshot.order_date.as_deref().and_then(placed_at),
                &erp_shipments.remove(&number).unwrap_or_default(),
                &centra_shipments.remove(&number).unwrap_or_default(),
                now,
            );
            records.push(record(number, &judgement, due));
            checked.push(Checked {
                order: number,
                late: judgement.figures.timing.late.clone(),
                verdict: judgement.verdict,
            });
        }
        count(tenant, &checked);
        let told: Vec<(i64, &Verdict)> = checked.iter().map(|c| (c.order, &c.verdict)).collect();
        tell(&self.store, self.sink.as_ref(), tenant, &told).await?;
        self.store
            .record_verdicts(tenant, &records)
            .await
            .map_err(FeedError::transient)?;
        Ok(checked)
    }
}

type ByOrder<T> = HashMap<i64, Vec<T>>;

impl Checker {
    /// The ERP's shipments of `orders` as the fulfilment ledger holds them, and Centra's
    /// shipments of those orders that have any to tell Centra (one request for the batch;
    /// nothing is asked of Centra for orders not shipped).
    async fn shipments(
        &self,
        orders: &[(i64, Option<&DueOrder>)],
    ) -> Result<(ByOrder<ShipmentRow>, ByOrder<CentraShipment>), FeedError> {
        let tenant = self.tenant.id.as_str();
        let numbers: Vec<i64> = orders
            .iter()
            .filter(|(_, due)| due.is_some())
            .map(|(n, _)| *n)
            .collect();
        let mut erp: ByOrder<ShipmentRow> = HashMap::new();
        for row in self
            .store
            .shipments_of_orders(tenant, &numbers)
            .await
            .map_err(FeedError::transient)?
        {
            erp.entry(row.order_number).or_default().push(row);
        }
        let ids: Vec<&str> = orders
            .iter()
            .filter_map(|(n, due)| {
                let rows = erp.get(n)?;
                rows.iter()
                    .any(|r| r.state != ShipmentState::Merged)
                    .then(|| due.map(|d| d.row.centra_order_id.as_str()))?
            })
            .collect();
        let mut centra: ByOrder<CentraShipment> = HashMap::new();
        if !ids.is_empty() {
            for shipment in self
                .client
                .shipments_of_orders(&ids)
                .await
                .map_err(|e| centra_error(e, tenant))?
            {
                if let Some(order) = shipment.order_number() {
                    centra.entry(order).or_default().push(shipment);
                }
            }
        }
        Ok((erp, centra))
    }

    /// After the ERP document, the rest of the order's journey: how long each step took
    /// (recorded with the figures) and whether each ERP shipment is one Centra shipment
    /// with its tracking number (variances beside the document's, once it is judged).
    fn journey(
        &self,
        judgement: &mut Judgement,
        row: Option<&LedgerRow>,
        placed: Option<DateTime<Utc>>,
        erp: &[ShipmentRow],
        centra: &[CentraShipment],
        now: DateTime<Utc>,
    ) {
        let expected = &judgement.expected;
        let captured: Vec<(&ShipmentRow, bool)> = erp
            .iter()
            .map(|s| {
                let in_centra = centra
                    .iter()
                    .any(|c| Some(c.id) == s.centra_shipment_id && c.is_captured);
                (s, in_centra)
            })
            .collect();
        // An order Ferry never saw is timed from when the customer placed it.
        let accepted_at = row
            .map(|r| r.first_accepted_at.unwrap_or(r.received_at))
            .or(placed);
        if let Some(accepted_at) = accepted_at {
            let times = Times {
                accepted_at,
                posted_at: row.and_then(|r| r.posted_at),
                should_post: !expected.cancelled && !expected.awaiting_centra,
            };
            judgement.figures.timing = timing(&times, &captured, &self.targets, now);
        }
        let found = check_shipments(
            expected.order_number,
            &expected.currency,
            &expected.lines,
            erp,
            centra,
            self.targets.shipped,
            now,
        );
        if found.is_empty() {
            return;
        }
        judgement.verdict = match std::mem::replace(&mut judgement.verdict, Verdict::Pending) {
            Verdict::Pending => Verdict::Pending,
            Verdict::Reconciled => Verdict::Variances(found),
            Verdict::Variances(mut v) => {
                v.extend(found);
                Verdict::Variances(v)
            }
        };
    }
}

/// A setting as a span of time the clock arithmetic takes.
pub fn span(
    setting: std::time::Duration,
    name: &'static str,
) -> Result<chrono::Duration, ReconcilerError> {
    chrono::Duration::from_std(setting).map_err(|_| ReconcilerError::Setting(name))
}

/// The record of a check that could not judge: no figures, no variances.
fn pending(number: i64, order: Option<&DueOrder>) -> VerdictRecord {
    VerdictRecord {
        order_number: number,
        verdict: Verdict::Pending.as_str(),
        causes: Vec::new(),
        money_minor: 0,
        currency: order.map(|o| o.row.currency.clone()).unwrap_or_default(),
        ledger_version: order.map(|o| o.ledger_version),
        order_date: None,
        figures: "{}".to_owned(),
        variances: "[]".to_owned(),
    }
}

fn record(number: i64, judgement: &Judgement, order: Option<&DueOrder>) -> VerdictRecord {
    let variances = judgement.verdict.variances();
    let mut causes: Vec<String> = variances
        .iter()
        .map(|v| v.cause.as_str().to_owned())
        .collect();
    causes.sort();
    causes.dedup();
    VerdictRecord {
        order_number: number,
        verdict: judgement.verdict.as_str(),
        causes,
        money_minor: variances.iter().map(|v| v.money_minor).sum(),
        currency: judgement.expected.currency.clone(),
        ledger_version: order.map(|o| o.ledger_version),
        order_date: judgement.order_day,
        figures: serde_json::to_string(&judgement.figures).unwrap_or_else(|_| "{}".to_owned()),
        variances: serde_json::to_string(variances).unwrap_or_else(|_| "[]".to_owned()),
    }
}

/// `ferry_reconcile_orders_checked_total` by verdict, `ferry_reconcile_variances_total`
/// by cause and owner and `ferry_reconcile_late_total` by step (each check of an order
/// past its target counts), for a batch at once (a counter's labels are looked up per call).
fn count(tenant: &str, checked: &[Checked]) {
    let mut verdicts: BTreeMap<&'static str, u64> = BTreeMap::new();
    let mut causes: BTreeMap<Cause, u64> = BTreeMap::new();
    let mut late: BTreeMap<Step, u64> = BTreeMap::new();
    for c in checked {
        *verdicts.entry(c.verdict.as_str()).or_default() += 1;
        for step in &c.late {
            *late.entry(*step).or_default() += 1;
        }
        for v in c.verdict.variances() {
            *causes.entry(v.cause).or_default() += 1;
        }
    }
    for (verdict, n) in verdicts {
        metrics::counter!("ferry_reconcile_orders_checked_total", "tenant" => tenant.to_owned(), "verdict" => verdict)
            .increment(n);
    }
    for (step, n) in late {
        metrics::counter!("ferry_reconcile_late_total", "tenant" => tenant.to_owned(), "step" => step.as_str())
            .increment(n);
    }
    for (cause, n) in causes {
        metrics::counter!(
            "ferry_reconcile_variances_total",
            "tenant" => tenant.to_owned(),
            "cause" => cause.as_str(),
            "owner" => cause.owner().as_str()
        )
        .increment(n);
    }
}

pub fn count_variance(tenant: &str, v: &Variance) {
    metrics::counter!(
        "ferry_reconcile_variances_total",
        "tenant" => tenant.to_owned(),
        "cause" => v.cause.as_str(),
        "owner" => v.owner.as_str()
    )
    .increment(1);
}

fn centra_error(e: CentraError, tenant: &str) -> FeedError {
    if e.is_transient() || matches!(e, CentraError::GraphQl { .. }) {
        return FeedError::Transient {
            retry_after: e.retry_after(),
            reason: format!("reading order snapshots from Centra: {e}"),
        };
    }
    FeedError::Permanent(Box::new(NewException {
        tenant: tenant.to_owned(),
        kind: ExceptionKind::FeedFailed,
        key: format!("feed:{CHECK_FEED}"),
        message: format!(
            "Ferry cannot read Centra's orders to check them against the ERP: {e}. Orders \
             still flow, but nothing proves they arrived whole until this is fixed. Check the \
             integration token's permissions in Centra."
        ),
        reason: e.to_string(),
        order_number: None,
        amount_minor: None,
        currency: None,
        service: SERVICE.to_owned(),
        source_subject: None,
        payload: Vec::new(),
    }))
}
