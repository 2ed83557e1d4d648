//! The reconciler service: per tenant, a feed that takes the orders due a check (ADR 0028),
//! reads each again from Centra (within the reconciler's share of the tenant's Centra quota)
//! and from the ERP (its documents read back), judges it, and records the verdict. Runs are
//! incremental and resumable: the cursor is the last order number checked, and a verdict
//! replaces the previous one, so a pass repeated after a crash counts nothing twice.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::Utc;
use ferry_centra::{CentraClient, CentraError};
use ferry_config::{ReconcilerConfig, TenantConfig};
use ferry_domain::{ExceptionKind, NewException, Snapshot};
use ferry_erp::{Connectors, ReadBack};
use ferry_platform::Platform;
use ferry_runtime::{ExceptionSink, Feed, FeedError, FeedSpec, Pass};
use ferry_store::Store;
use ferry_store::reconciliation::{Due, VerdictRecord};
use futures::{StreamExt, TryStreamExt};
use secrecy::ExposeSecret;

use crate::compare::{Cause, Variance, Verdict};
use crate::expected::judge;

pub const SERVICE: &str = "reconciler";
/// The feed that checks orders due a check.
pub const CHECK_FEED: &str = "reconcile-orders";
/// The feed that reads every ERP document for those no Centra order explains.
pub const DOCUMENTS_FEED: &str = "reconcile-erp-documents";
/// ERP documents read per pass of the documents feed.
const DOCUMENTS_PAGE: usize = 500;

#[derive(Debug, thiserror::Error)]
pub enum ReconcilerError {
    #[error("reconciler.{0} does not fit a time span")]
    Setting(&'static str),
}

/// Runs one check feed per tenant whose ERP connector can read documents back, until the
/// platform's shutdown.
pub async fn run(platform: Platform, connectors: Connectors) -> Result<(), ReconcilerError> {
    let Platform {
        base,
        config,
        store,
        feeds,
        sink,
    } = platform;
    let settings = &config.reconciler;
    let grace = chrono::Duration::from_std(settings.grace)
        .map_err(|_| ReconcilerError::Setting("grace"))?;
    let recheck = chrono::Duration::from_std(settings.recheck)
        .map_err(|_| ReconcilerError::Setting("recheck"))?;
    let sweep = chrono::Duration::from_std(settings.sweep)
        .map_err(|_| ReconcilerError::Setting("sweep"))?;
    for tenant in &config.tenants {
        let Some(erp) = connectors.get(&tenant.id).and_then(|c| c.read_back.clone()) else {
            tracing::warn!(
                tenant = %tenant.id,
                "the tenant's ERP connector cannot read documents back: its orders are not reconciled"
            );
            continue;
        };
        let client = CentraClient::paced(
            tenant.centra.url.clone(),
            tenant.centra.token.expose_secret().to_owned().into(),
            tenant
                .centra
                .pacing_for(ferry_config::CentraCaller::Reconciler),
            tenant.centra.timeout,
        );
        let documents = Documents {
            tenant: tenant.id.clone(),
            store: store.clone(),
            erp: erp.clone(),
            sink: sink.clone(),
        };
        feeds.spawn(
            FeedSpec::source(SERVICE, &tenant.id, DOCUMENTS_FEED, settings.interval),
            Arc::new(documents),
            base.shutdown.clone(),
        );
        let check = Check {
            tenant: tenant.clone(),
            store: store.clone(),
            client,
            erp,
            settings: settings.clone(),
            grace,
            recheck,
            sweep,
            sink: sink.clone(),
        };
        feeds.spawn(
            FeedSpec::source(SERVICE, &tenant.id, CHECK_FEED, settings.interval),
            Arc::new(check),
            base.shutdown.clone(),
        );
    }
    base.shutdown.cancelled().await;
    Ok(())
}

/// One tenant's check feed.
struct Check {
    tenant: TenantConfig,
    store: Store,
    client: CentraClient,
    erp: Arc<dyn ReadBack>,
    settings: ReconcilerConfig,
    grace: chrono::Duration,
    recheck: chrono::Duration,
    sweep: chrono::Duration,
    sink: Arc<dyn ExceptionSink>,
}

#[async_trait]
impl Feed for Check {
    async fn pass(&self, cursor: &str) -> Result<Pass, FeedError> {
        let tenant = self.tenant.id.as_str();
        let after = cursor.parse::<i64>().unwrap_or(0);
        let now = Utc::now();
        let limit = i64::try_from(self.settings.batch).unwrap_or(i64::MAX);
        let due = self
            .store
            .orders_to_reconcile(
                tenant,
                after,
                Due {
                    settled_before: now - self.grace,
                    recheck_before: now - self.recheck,
                    sweep_before: now - self.sweep,
                },
                limit,
            )
            .await
            .map_err(FeedError::transient)?;
        if due.is_empty() {
            // The end of the tenant's orders: the next pass starts again from the first.
            return Ok(Pass::idle(""));
        }
        let numbers: Vec<i64> = due.iter().map(|d| d.row.order_number).collect();
        let snapshots: HashMap<i64, Vec<u8>> = self
            .client
            .order_snapshots(&numbers)
            .await
            .map_err(|e| centra_error(e, tenant))?
            .into_iter()
            .map(|s| (s.number, s.json))
            .collect();
        let documents: Vec<_> = futures::stream::iter(numbers.iter().copied())
            .map(|n| {
                let erp = self.erp.clone();
                async move { erp.read_sales_orders(&n.to_string()).await }
            })
            .buffered(self.settings.erp_reads_in_flight)
            .try_collect()
            .await
            .map_err(|e: ferry_erp::ErpError| FeedError::Transient {
                retry_after: e.retry_after(),
                reason: format!("reading the ERP's documents: {e}"),
            })?;
        let items = self
            .store
            .sku_map(tenant)
            .await
            .map_err(FeedError::transient)?;
        let mut verdicts = Vec::with_capacity(due.len());
        for (order, documents) in due.iter().zip(&documents) {
            let number = order.row.order_number;
            let Some(snapshot) = snapshots
                .get(&number)
                .and_then(|json| Snapshot::parse(json).ok())
            else {
                // Centra no longer answers for it (or not readably): nothing to compare
                // with; the next check tries again.
                tracing::warn!(
                    tenant,
                    order = number,
                    "Centra has no readable snapshot of a ledger order"
                );
                verdicts.push(record(number, &Verdict::Pending, "", order.ledger_version));
                continue;
            };
            let (charged, verdict) = judge(
                &snapshot,
                &self.tenant.rules,
                &items,
                &order.row,
                documents,
                now,
                self.grace,
            );
            count(tenant, &verdict);
            self.tell(number, &verdict).await?;
            verdicts.push(record(
                number,
                &verdict,
                &charged.currency,
                order.ledger_version,
            ));
        }
        self.store
            .record_verdicts(tenant, &verdicts)
            .await
            .map_err(FeedError::transient)?;
        Ok(Pass {
            cursor: numbers.last().map(i64::to_string).unwrap_or_default(),
            items: numbers.len() as u64,
            more: due.len() >= self.settings.batch,
            ..Pass::default()
        })
    }
}

impl Check {
    /// Raises an exception for each variance, with the team's words and the money, and
    /// resolves the reconciler's earlier ones for this order that this check no longer
    /// finds (fixed in the ERP). A pending verdict says nothing either way.
    async fn tell(&self, number: i64, verdict: &Verdict) -> Result<(), FeedError> {
        if *verdict == Verdict::Pending {
            return Ok(());
        }
        let mut keep = Vec::new();
        for variance in verdict.variances() {
            let Some(kind) = variance.cause.exception_kind() else {
                continue;
            };
            let exception = exception(&self.tenant.id, kind, variance);
            keep.push(exception.key.clone());
            self.sink
                .record(&exception)
                .await
                .map_err(FeedError::transient)?;
        }
        let kinds: Vec<&str> = Cause::ALL
            .iter()
            .filter_map(Cause::exception_kind)
            .map(|k| k.as_str())
            .collect();
        self.store
            .resolve_order_exceptions(
                &self.tenant.id,
                number,
                &kinds,
                &keep,
                "the reconciler found the order in the ERP as Centra charged it",
            )
            .await
            .map_err(FeedError::transient)?;
        Ok(())
    }
}

/// One tenant's walk through every document of its ERP, for documents no Centra order that
/// Ferry knows explains (entered by hand, or by another system). Documents from before the
/// tenant's first order are the ERP's history and are left alone.
struct Documents {
    tenant: String,
    store: Store,
    erp: Arc<dyn ReadBack>,
    sink: Arc<dyn ExceptionSink>,
}

#[async_trait]
impl Feed for Documents {
    async fn pass(&self, cursor: &str) -> Result<Pass, FeedError> {
        let Some(live_since) = self
            .store
            .first_order_at(&self.tenant)
            .await
            .map_err(FeedError::transient)?
        else {
            // No order yet: whatever the ERP holds is history.
            return Ok(Pass::idle(cursor));
        };
        let page = self
            .erp
            .sales_orders_since(cursor, DOCUMENTS_PAGE)
            .await
            .map_err(|e| FeedError::Transient {
                retry_after: e.retry_after(),
                reason: format!("listing the ERP's documents: {e}"),
            })?;
        let numbers: Vec<i64> = page
            .documents
            .iter()
            .filter_map(|d| d.external_ref.parse().ok())
            .collect();
        let known = self
            .store
            .orders_in_ledger(&self.tenant, &numbers)
            .await
            .map_err(FeedError::transient)?;
        let since = live_since.format("%Y-%m-%d").to_string();
        for document in &page.documents {
            let explained = document
                .external_ref
                .parse::<i64>()
                .is_ok_and(|n| known.contains(&n));
            // Dates compare as text: RFC 3339 and Tryton's dates both begin YYYY-MM-DD.
            let history = document
                .created_at
                .get(..10)
                .is_some_and(|day| day < since.as_str());
            if explained || history || document.state == ferry_erp::DocumentState::Cancelled {
                continue;
            }
            let variance = Variance {
                order: document.external_ref.parse().unwrap_or(0),
                cause: Cause::Unexplained,
                owner: Cause::Unexplained.owner(),
                money_minor: document.gross_minor.abs(),
                currency: document.currency.clone(),
                detail: format!(
                    "sales order {} (external reference {:?}) matches no Centra order Ferry knows",
                    document.reference, document.external_ref
                ),
                erp_reference: Some(document.reference.clone()),
            };
            count_variance(&self.tenant, &variance);
            self.sink
                .record(&exception(
                    &self.tenant,
                    ExceptionKind::UnexplainedErpDocument,
                    &variance,
                ))
                .await
                .map_err(FeedError::transient)?;
        }
        Ok(Pass {
            items: page.documents.len() as u64,
            more: page.documents.len() >= DOCUMENTS_PAGE,
            cursor: page.next_cursor,
            ..Pass::default()
        })
    }
}

/// The exception for one variance, in the owning team's words.
fn exception(tenant: &str, kind: ExceptionKind, v: &Variance) -> NewException {
    let money = ferry_domain::Currency::from_code(&v.currency)
        .map(|c| c.format(v.money_minor))
        .unwrap_or_else(|| format!("{} {}", v.money_minor, v.currency));
    let order = v.order;
    let document = v.erp_reference.as_deref().unwrap_or("(none)");
    let message = match v.cause {
        Cause::Missing => format!(
            "Order {order} ({money}) is not in the ERP although it should be by now. Ferry has \
             not posted it: engineering must find where it stopped."
        ),
        Cause::DeletedInErp => format!(
            "Order {order} ({money}) was posted to the ERP and is no longer there: someone \
             deleted the sales order. Restore it, or record why the sale is void."
        ),
        Cause::Duplicate => format!(
            "Order {order} is in the ERP twice: sales order {document} ({money}) is a second \
             document for one sale. Cancel or delete the extra one."
        ),
        Cause::AlteredInErp => format!(
            "Sales order {document} for order {order} no longer matches what the customer was \
             charged ({money} difference): it was changed in the ERP. Correct it, or record \
             why the change is right."
        ),
        Cause::RecordedDifferently => format!(
            "Sales order {document} for order {order} was booked differently from what the \
             customer paid ({money} difference). Correct it in the ERP so the books match."
        ),
        Cause::Rounding => format!(
            "Sales order {document} for order {order} has {money} of tax rounded differently \
             from what the customer was charged, with no rounding line. Add one or correct \
             the tax."
        ),
        Cause::Currency => format!(
            "Sales order {document} for order {order} is in another currency than the \
             customer paid in ({money}). Correct its currency in the ERP."
        ),
        Cause::OneSidedCancellation => format!(
            "Order {order} ({money}) is cancelled on one side only — in Centra but not in the \
             ERP, or the other way round. Check with the customer which is right, then cancel \
             or restore the other."
        ),
        Cause::AmendmentNotApplied => format!(
            "Order {order} changed in Centra after it reached the ERP, and sales order \
             {document} still holds the earlier version ({money} difference). Apply the \
             change in the ERP."
        ),
        Cause::Unexplained => format!(
            "Sales order {document} ({money}) is in the ERP, but no Centra order Ferry knows \
             explains it (entered by hand, or by another system). Check it is a real sale; \
             if it duplicates a Centra order, cancel it."
        ),
        Cause::UnmappedItem => v.detail.clone(),
    };
    NewException {
        tenant: tenant.to_owned(),
        kind,
        key: match v.cause {
            // The same problem the writer reports when the ERP answers so at posting.
            Cause::RecordedDifferently => format!("order:{order}:totals"),
            Cause::Unexplained => format!("erp:{document}"),
            cause => format!("order:{order}:{}", cause.as_str()),
        },
        message,
        reason: v.detail.clone(),
        order_number: (v.cause != Cause::Unexplained).then_some(order),
        amount_minor: Some(v.money_minor),
        currency: Some(v.currency.clone()),
        service: SERVICE.to_owned(),
        source_subject: None,
        payload: serde_json::to_vec(v).unwrap_or_default(),
    }
}

fn record(
    number: i64,
    verdict: &Verdict,
    currency: &str,
    version: chrono::DateTime<Utc>,
) -> VerdictRecord {
    let variances = verdict.variances();
    let mut causes: Vec<String> = variances
        .iter()
        .map(|v| v.cause.as_str().to_owned())
        .collect();
    causes.sort();
    causes.dedup();
    VerdictRecord {
        order_number: number,
        verdict: verdict.as_str(),
        causes,
        money_minor: variances.iter().map(|v| v.money_minor).sum(),
        currency: currency.to_owned(),
        ledger_version: Some(version),
    }
}

/// `ferry_reconcile_orders_checked_total` and `ferry_reconcile_variances_total` by cause
/// and owner.
fn count(tenant: &str, verdict: &Verdict) {
    metrics::counter!("ferry_reconcile_orders_checked_total", "tenant" => tenant.to_owned(), "verdict" => verdict.as_str())
        .increment(1);
    for v in verdict.variances() {
        count_variance(tenant, v);
    }
}

fn count_variance(tenant: &str, v: &Variance) {
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
