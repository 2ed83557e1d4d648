//! Changes after posting (ADR 0035): the writer's second consumer, on `order.amended`,
//! makes the ERP document hold the newer order through the connector's
//! [`ChangeOrders`] capability — once per change, never after a newer one: changes of one
//! order one after another, those of different orders side by side and many per request
//! where the ERP takes them in bulk. What the ERP refuses, and every change a connector without the
//! capability receives, is an `amendment_not_applied` exception for finance.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use ferry_config::TenantConfig;
use ferry_domain::{ExceptionKind, NewException};
use ferry_erp::{ChangeOrders, ChangeOutcome, OrderChange};
use ferry_proto::order::v1 as pb;
use ferry_runtime::consumer::{Delivery, Handler, HandlerError};
use ferry_runtime::{ExceptionSink, ServiceBase, StreamKind};
use ferry_store::Store;
use ferry_store::amendments::{Amendment, AmendmentOutcome};
use prost::Message as _;

use crate::SERVICE;

/// How long a claim on an order's change holds if its writer stops mid-change: longer than
/// any batch of changes takes (Tryton's take seconds per sale), so a claim never lapses
/// while its change is still being applied.
const CLAIM_LEASE: Duration = Duration::from_secs(600);

/// The tenant's change consumer: changes of different orders side by side, those of one
/// order one after another (`Store::claim_amendment`), so an older change never reaches
/// the ERP after a newer one.
pub fn runner(
    base: &ServiceBase,
    sink: Arc<dyn ExceptionSink>,
    tenant: &str,
) -> ferry_runtime::consumer::Runner {
    ferry_runtime::consumer::Runner::builder(
        base,
        sink,
        SERVICE,
        tenant,
        StreamKind::Orders,
        base.topology.amended_filter(tenant),
    )
    .durable(format!(
        "{}-changes",
        base.topology.consumer_name(SERVICE, tenant)
    ))
    .config(base.config.consumer.clone())
    // A change sent twice is harmless (the ERP keys it), but an ack lost after it was
    // applied would apply it again after a newer one.
    .double_ack()
    .build()
}

pub struct ChangeHandler {
    pub tenant: TenantConfig,
    /// `None`: the tenant's connector cannot change orders.
    pub erp: Option<Arc<dyn ChangeOrders>>,
    /// Changes many per request, where the ERP applies them in bulk.
    pub batches: Option<crate::batches::Changes>,
    pub store: Store,
    pub sink: Arc<dyn ExceptionSink>,
    /// The tenant's ERP requests in flight (shared with the writer's other consumers).
    pub in_flight: Arc<tokio::sync::Semaphore>,
}

#[async_trait]
impl Handler for ChangeHandler {
    async fn handle(&self, delivery: &Delivery) -> Result<(), HandlerError> {
        let amended = pb::OrderAmended::decode(delivery.payload.as_ref())
            .map_err(|e| delivery.poison("order.amended", &e))?;
        let tenant = self.tenant.id.as_str();
        let number = amended.order_number;
        let hash = amended.snapshot_hash.clone();
        if self
            .store
            .amendment(tenant, number, &hash)
            .await
            .map_err(HandlerError::transient)?
            .is_some()
        {
            // Handled before (a redelivery, a replay).
            return Ok(());
        }
        let Some(order) = amended.order.as_ref() else {
            // Published before changes carried the whole order: it cannot be applied.
            return self
                .not_applied(&amended, None, "the change does not carry the newer order")
                .await;
        };
        let fetched_at = order
            .snapshot_fetched_at
            .and_then(|t| DateTime::<Utc>::from_timestamp(t.seconds, t.nanos.max(0) as u32))
            .unwrap_or_else(Utc::now);
        let row = self
            .store
            .ledger_row(tenant, number)
            .await
            .map_err(HandlerError::transient)?;
        let Some(erp_reference) = row
            .as_ref()
            .filter(|r| r.state == "posted")
            .and_then(|r| r.erp_reference.clone())
        else {
            // Changed while still being posted: the change waits for the document.
            return Err(HandlerError::Transient {
                reason: format!("order {number} is not posted yet"),
                // The runner's backoff: posting may wait out an ERP outage of minutes.
                retry_after: None,
            });
        };
        let record = Amendment {
            tenant: tenant.to_owned(),
            order_number: number,
            snapshot_hash: hash.clone(),
            snapshot_fetched_at: fetched_at,
            outcome: AmendmentOutcome::Superseded,
            cancelled: amended.cancelled,
            reason: String::new(),
            erp_reference: erp_reference.clone(),
            erp_gross_minor: None,
            erp_tax_minor: None,
            recorded_at: None,
        };
        // Changes of one order reach the ERP one after another; those of other orders go
        // side by side (and many per request where the ERP takes them in bulk).
        if !self
            .store
            .claim_amendment(tenant, number, &hash, CLAIM_LEASE)
            .await
            .map_err(HandlerError::transient)?
        {
            return Err(HandlerError::Transient {
                reason: format!("another change of order {number} is being applied"),
                // The runner's backoff (0.5 s doubling): a fixed short wait would use up
                // the message's deliveries while a slow batch holds the claim.
                retry_after: None,
            });
        }
        let applied = self.apply(&amended, order, record, fetched_at).await;
        if let Err(e) = self.store.release_amendment(tenant, number, &hash).await {
            // The claim lapses by itself; the order's next change waits for that.
            tracing::warn!(tenant, order = number, error = %e, "releasing a change's claim");
        }
        applied
    }
}

impl ChangeHandler {
    /// Applies the claimed change, unless a newer one is in the ERP already, and records
    /// what became of it.
    async fn apply(
        &self,
        amended: &pb::OrderAmended,
        order: &pb::SalesOrder,
        mut record: Amendment,
        fetched_at: DateTime<Utc>,
    ) -> Result<(), HandlerError> {
        let tenant = self.tenant.id.as_str();
        let number = amended.order_number;
        let erp_reference = record.erp_reference.clone();
        if let Some(last) = self
            .store
            .last_applied_amendment(tenant, number)
            .await
            .map_err(HandlerError::transient)?
            && last.snapshot_fetched_at >= fetched_at
        {
            // A newer version of the order is in the ERP already.
            return self.record(&record).await;
        }
        let Some(erp) = &self.erp else {
            record.outcome = AmendmentOutcome::Unsupported;
            self.record(&record).await?;
            return self
                .not_applied(
                    amended,
                    Some(&erp_reference),
                    "this brand's ERP connector cannot change orders",
                )
                .await;
        };
        let change = OrderChange {
            change_id: record.snapshot_hash.clone(),
            erp_reference: erp_reference.clone(),
            order: crate::convert::post_order(&self.tenant, order),
            cancel: amended.cancelled,
        };
        let changed = crate::batches::send(
            self.batches.as_ref(),
            &self.in_flight,
            change,
            |change| async move { erp.change_sales_order(&change).await },
        )
        .await?;
        let (reason, why) = match changed {
            Ok(ChangeOutcome::Applied(document)) => {
                record.outcome = AmendmentOutcome::Applied;
                record.erp_gross_minor = Some(document.gross_minor);
                record.erp_tax_minor = Some(document.tax_minor);
                self.record(&record).await?;
                // Earlier changes finance was told about are in the ERP now too.
                self.store
                    .resolve_order_exceptions(
                        tenant,
                        number,
                        &[ExceptionKind::AmendmentNotApplied.as_str()],
                        &[],
                        "a newer version of the order was applied to the ERP",
                    )
                    .await
                    .map_err(HandlerError::transient)?;
                metrics::counter!("ferry_amendments_total", "tenant" => tenant.to_owned(), "outcome" => "applied")
                    .increment(1);
                return Ok(());
            }
            Ok(ChangeOutcome::Refused(reason)) => {
                let why = format!("the ERP refused the change: {reason}");
                (reason, why)
            }
            Err(e) if e.is_transient() => {
                return Err(HandlerError::Transient {
                    reason: format!("changing {erp_reference}: {e}"),
                    retry_after: e.retry_after(),
                });
            }
            Err(e) => (
                e.to_string(),
                format!("the ERP did not accept the change: {e}"),
            ),
        };
        // Refused, or not accepted at all: either way finance corrects it.
        record.outcome = AmendmentOutcome::Refused;
        record.reason = reason;
        self.record(&record).await?;
        self.not_applied(amended, Some(&erp_reference), &why).await
    }

    async fn record(&self, record: &Amendment) -> Result<(), HandlerError> {
        self.store
            .record_amendment(record)
            .await
            .map_err(HandlerError::transient)
    }

    /// Tells finance the ERP still holds the earlier version, with the money at stake.
    async fn not_applied(
        &self,
        amended: &pb::OrderAmended,
        erp_reference: Option<&str>,
        why: &str,
    ) -> Result<(), HandlerError> {
        let number = amended.order_number;
        let before = amended.previous_totals.unwrap_or_default().gross_minor;
        let now = amended.totals.unwrap_or_default().gross_minor;
        let what = if amended.cancelled {
            "was cancelled in Centra".to_owned()
        } else {
            format!(
                "changed in Centra (now {})",
                ferry_domain::money::format_minor(now, &amended.currency)
            )
        };
        let lines = if amended.lines_known && !amended.changes.is_empty() {
            format!(" {} line(s) differ.", amended.changes.len())
        } else {
            String::new()
        };
        let at_stake = if amended.cancelled {
            before
        } else {
            (before - now).abs()
        };
        metrics::counter!("ferry_amendments_total", "tenant" => self.tenant.id.clone(), "outcome" => "not_applied")
            .increment(1);
        self.sink
            .record(&NewException {
                tenant: self.tenant.id.clone(),
                kind: ExceptionKind::AmendmentNotApplied,
                key: format!("amendment:{}", amended.snapshot_hash),
                message: format!(
                    "Order {number} {what} after it reached the ERP ({}).{lines} Ferry could not \
                     apply it: {why}. The ERP still holds the earlier version: adjust the sales \
                     order in the ERP or issue a credit note.",
                    erp_reference.unwrap_or("no reference yet"),
                ),
                reason: why.to_owned(),
                order_number: Some(number),
                amount_minor: Some(at_stake),
                currency: Some(amended.currency.clone()),
                service: SERVICE.to_owned(),
                source_subject: None,
                payload: amended.encode_to_vec(),
            })
            .await
            .map_err(HandlerError::transient)
    }
}
