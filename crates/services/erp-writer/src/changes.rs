//! Changes after posting (ADR 0035): the writer's second consumer, on `order.amended`,
//! makes the ERP document hold the newer order through the connector's
//! [`ChangeOrders`] capability — once per change, never after a newer one, one message
//! at a time per tenant. What the ERP refuses, and every change a connector without the
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

/// How long a change waits before looking again for its order's posting to finish.
const NOT_POSTED_YET: Duration = Duration::from_secs(5);

/// The tenant's change consumer: one message at a time across every replica, so changes
/// reach the ERP in the order they were made.
pub fn runner(
    base: &ServiceBase,
    sink: Arc<dyn ExceptionSink>,
    tenant: &str,
) -> ferry_runtime::consumer::Runner {
    one_at_a_time(
        base,
        sink,
        tenant,
        StreamKind::Orders,
        base.topology.amended_filter(tenant),
        "changes",
    )
    // A change sent twice is harmless (the ERP keys it), but an ack lost after it was
    // applied would send an older change after a newer one.
    .double_ack()
    .build()
}

/// A consumer `<writer>-<tenant>-<name>` that takes one message at a time across every
/// replica: what must reach the ERP in the order it happened.
pub(crate) fn one_at_a_time(
    base: &ServiceBase,
    sink: Arc<dyn ExceptionSink>,
    tenant: &str,
    stream: StreamKind,
    filter: String,
    name: &str,
) -> ferry_runtime::consumer::RunnerBuilder {
    let mut consumer = base.config.consumer.clone();
    consumer.concurrency = 1;
    consumer.max_ack_pending = 1;
    ferry_runtime::consumer::Runner::builder(base, sink, SERVICE, tenant, stream, filter)
        .durable(format!(
            "{}-{name}",
            base.topology.consumer_name(SERVICE, tenant)
        ))
        .config(consumer)
}

pub struct ChangeHandler {
    pub tenant: TenantConfig,
    /// `None`: the tenant's connector cannot change orders.
    pub erp: Option<Arc<dyn ChangeOrders>>,
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
                retry_after: Some(NOT_POSTED_YET),
            });
        };
        let mut record = Amendment {
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
                    &amended,
                    Some(&erp_reference),
                    "this brand's ERP connector cannot change orders",
                )
                .await;
        };
        let change = OrderChange {
            change_id: hash.clone(),
            erp_reference: erp_reference.clone(),
            order: crate::convert::post_order(&self.tenant, order),
            cancel: amended.cancelled,
        };
        let changed = {
            let _slot = self
                .in_flight
                .acquire()
                .await
                .map_err(HandlerError::transient)?;
            erp.change_sales_order(&change).await
        };
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
        self.not_applied(&amended, Some(&erp_reference), &why).await
    }
}

impl ChangeHandler {
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
