//! Returns (ADR 0037): the writer's third consumer, on `order.return`, makes each completed
//! Centra return one credit document in the ERP through the connector's [`CreditNotes`]
//! capability. The return is priced against what the order's earlier returns took
//! (`ferry_domain::credit`) and recorded before it is sent, so a retry sends the same
//! money and a redelivery sends nothing; a credit sent without an answer heard is looked
//! for in the ERP before it goes again. What cannot be credited — the order never
//! reached the ERP, a refund beyond what was paid, the ERP refusing — is an exception for
//! finance with the money at stake.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use ferry_config::TenantConfig;
use ferry_domain::credit::{Charge, CreditError, amount_share, units_share};
use ferry_domain::{ExceptionKind, NewException};
use ferry_erp::{CreditNotes, CreditOutcome, PostCredit, PostLine};
use ferry_proto::order::v1 as pb;
use ferry_runtime::consumer::{Delivery, Handler, HandlerError};
use ferry_runtime::{ExceptionSink, ServiceBase, StreamKind};
use ferry_store::Store;
use ferry_store::returns::{CreditState, PricedReturn, Taken};
use prost::Message as _;
use tokio::sync::Semaphore;

use crate::SERVICE;

/// The tenant's return consumer. Returns of different orders are credited side by side
/// (many per request where the ERP takes them in bulk); the store prices the returns of
/// one order one at a time.
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
        base.topology.returns_ready_filter(tenant),
    )
    .durable(format!(
        "{}-returns",
        base.topology.consumer_name(SERVICE, tenant)
    ))
    .config(base.config.consumer.clone())
    .build()
}

pub struct ReturnHandler {
    pub tenant: TenantConfig,
    /// `None`: the tenant's connector cannot make credit documents.
    pub erp: Option<Arc<dyn CreditNotes>>,
    /// Credit notes many per request, where the ERP makes them in bulk.
    pub batches: Option<crate::batches::Credits>,
    /// The tenant's ERP requests in flight (shared with the writer's other consumers).
    pub in_flight: Arc<Semaphore>,
    pub store: Store,
    pub sink: Arc<dyn ExceptionSink>,
    /// Where a return not credited is sent again from (the console's *Retry*).
    pub topology: ferry_runtime::Topology,
}

/// The exceptions a return's credit note settles.
const SETTLED_BY_CREDIT: [&str; 2] = ["return_not_credited", "refund_exceeds_paid"];

#[async_trait]
impl Handler for ReturnHandler {
    async fn handle(&self, delivery: &Delivery) -> Result<(), HandlerError> {
        let ready = pb::ReturnReady::decode(delivery.payload.as_ref())
            .map_err(|e| delivery.poison("order.return", &e))?;
        let tenant = self.tenant.id.as_str();
        let (return_id, number) = (ready.return_id, ready.order_number);
        let recorded = self
            .store
            .return_credit(tenant, return_id)
            .await
            .map_err(HandlerError::transient)?;
        if let Some(credited) = recorded
            .as_ref()
            .filter(|c| c.state == CreditState::Credited)
        {
            // Credited before (a redelivery, a retry, the same return read again).
            let reference = credited.erp_reference.clone().unwrap_or_default();
            return self.settle(return_id, &reference).await;
        }
        let row = self
            .store
            .ledger_row(tenant, number)
            .await
            .map_err(HandlerError::transient)?;
        let erp_reference = match row.as_ref().map(|r| (r.state.as_str(), &r.erp_reference)) {
            Some(("posted", Some(reference))) => reference.clone(),
            Some(("ready" | "posting" | "possibly_created", _)) => {
                return Err(HandlerError::Transient {
                    reason: format!("order {number} is not posted yet"),
                    // The runner's backoff: posting may wait out an ERP outage of minutes.
                    retry_after: None,
                });
            }
            _ => {
                let why = "its order never reached the ERP, so there is no sales order to credit";
                return self
                    .not_credited(&ready, ExceptionKind::ReturnNotCredited, why)
                    .await;
            }
        };
        let Some(erp) = &self.erp else {
            let why = "this brand's ERP connector cannot make credit documents";
            return self
                .not_credited(&ready, ExceptionKind::ReturnNotCredited, why)
                .await;
        };
        let priced = self
            .store
            .price_return(tenant, return_id, number, |others| {
                price(&self.tenant, &ready, &erp_reference, others)
            })
            .await
            .map_err(HandlerError::transient)?;
        let credit = match priced {
            Ok(credit) => credit,
            Err(CreditError::MoreThanCharged { asked, left }) => {
                let why = format!(
                    "it gives back more than the order has left to give back ({asked} asked, \
                     {left} left, counting the order's earlier returns)"
                );
                return self
                    .not_credited(&ready, ExceptionKind::RefundExceedsPaid, &why)
                    .await;
            }
            Err(CreditError::Invalid(why)) => {
                return self
                    .not_credited(&ready, ExceptionKind::ReturnNotCredited, &why)
                    .await;
            }
        };
        let document: PostCredit = serde_json::from_value(credit.priced.credit.clone())
            .map_err(|e| HandlerError::transient(format!("return {return_id} as priced: {e}")))?;
        // Sent before without an answer heard: the ERP may hold it already. Asked first, so
        // an ERP that ignores idempotency keys is not sent the same credit twice.
        let sent_before = recorded.is_some_and(|c| c.state == CreditState::Crediting);
        let found = if sent_before {
            let _slot = self
                .in_flight
                .acquire()
                .await
                .map_err(HandlerError::transient)?;
            erp.find_credit_note(&document).await
        } else {
            Ok(None)
        };
        let outcome = match found {
            Ok(Some(earlier)) => Ok(CreditOutcome::Credited(earlier)),
            Ok(None) => {
                crate::batches::send(
                    self.batches.as_ref(),
                    &self.in_flight,
                    document,
                    |credit| async move { erp.create_credit_note(&credit).await },
                )
                .await?
            }
            Err(e) => Err(e),
        };
        match outcome {
            Ok(CreditOutcome::Credited(doc)) => {
                self.store
                    .return_credited(tenant, return_id, &doc.reference)
                    .await
                    .map_err(HandlerError::transient)?;
                self.settle(return_id, &doc.reference).await?;
                metrics::counter!("ferry_returns_total", "tenant" => tenant.to_owned(), "outcome" => "credited")
                    .increment(1);
                Ok(())
            }
            Ok(CreditOutcome::Refused(reason)) => {
                let why = format!("the ERP refused the credit note: {reason}");
                self.not_credited(&ready, ExceptionKind::ReturnNotCredited, &why)
                    .await
            }
            Err(e) if e.is_transient() => Err(HandlerError::Transient {
                reason: format!("crediting return {return_id}: {e}"),
                retry_after: e.retry_after(),
            }),
            Err(e) => {
                let why = format!("the ERP did not accept the credit note: {e}");
                self.not_credited(&ready, ExceptionKind::ReturnNotCredited, &why)
                    .await
            }
        }
    }
}

impl ReturnHandler {
    /// The return is credited: an exception it was sent again for (the console's Retry)
    /// is settled.
    async fn settle(&self, return_id: i64, reference: &str) -> Result<(), HandlerError> {
        for kind in SETTLED_BY_CREDIT {
            self.store
                .resolve_exceptions_by_key(
                    &self.tenant.id,
                    kind,
                    &[format!("return:{return_id}")],
                    &format!("credited in the ERP as {reference}"),
                )
                .await
                .map_err(HandlerError::transient)?;
        }
        Ok(())
    }

    /// Records the return not credited and tells finance, with what it is worth.
    async fn not_credited(
        &self,
        ready: &pb::ReturnReady,
        kind: ExceptionKind,
        why: &str,
    ) -> Result<(), HandlerError> {
        let tenant = self.tenant.id.as_str();
        self.store
            .return_not_credited(
                tenant,
                ready.return_id,
                ready.order_number,
                &ready.currency,
                why,
            )
            .await
            .map_err(HandlerError::transient)?;
        // What the return is worth on its own (earlier returns aside), when it can be told.
        let worth = price(&self.tenant, ready, "", &[])
            .ok()
            .map(|p| p.gross_minor);
        let outcome = match kind {
            ExceptionKind::RefundExceedsPaid => "refund_exceeds_paid",
            _ => "not_credited",
        };
        metrics::counter!("ferry_returns_total", "tenant" => tenant.to_owned(), "outcome" => outcome)
            .increment(1);
        let worth_text = worth
            .map(|w| {
                format!(
                    " (worth {})",
                    ferry_domain::money::format_minor(w, &ready.currency)
                )
            })
            .unwrap_or_default();
        self.sink
            .record(&NewException {
                tenant: tenant.to_owned(),
                kind,
                key: format!("return:{}", ready.return_id),
                message: format!(
                    "Return {} of order {}{worth_text} was completed in Centra, but Ferry made no \
                     credit note: {why}. Credit it in the ERP by hand, or fix the cause and \
                     press Retry: Ferry then credits it once.",
                    ready.return_id, ready.order_number
                ),
                reason: why.to_owned(),
                order_number: Some(ready.order_number),
                amount_minor: worth,
                currency: Some(ready.currency.clone()),
                service: SERVICE.to_owned(),
                // The console's Retry sends the priced return here again, once the cause
                // is fixed; the credit settles the exception.
                source_subject: Some(self.topology.return_ready_subject(tenant, ready.return_id)),
                payload: ready.encode_to_vec(),
            })
            .await
            .map_err(HandlerError::transient)
    }
}

fn charge(l: &pb::SalesOrderLine) -> Charge {
    Charge {
        quantity: l.quantity,
        gross: l.gross_minor,
        tax: l.tax_minor,
    }
}

/// The credit document for `ready`, given what the order's other returns took: each
/// returned line's posted lines credited for the units coming back now, the shipping
/// refund against what the shipping lines have left.
pub fn price(
    tenant: &TenantConfig,
    ready: &pb::ReturnReady,
    erp_reference: &str,
    others: &[Taken],
) -> Result<PricedReturn, CreditError> {
    // Two return lines may name one order line (two shipment lines of it).
    let mut returned: BTreeMap<i64, (i64, &pb::ReturnedLine)> = BTreeMap::new();
    for line in &ready.lines {
        returned
            .entry(line.centra_line_id)
            .and_modify(|(n, _)| *n += line.quantity)
            .or_insert((line.quantity, line));
    }
    let mut lines: Vec<PostLine> = Vec::new();
    let mut taken = Taken::default();
    for (id, (now, line)) in &returned {
        let before: i64 = others.iter().filter_map(|t| t.units.get(id)).sum();
        let posted: Vec<Charge> = line.posted.iter().map(charge).collect();
        let shares = units_share(&posted, line.of_quantity, before, *now)?;
        for (posted, share) in line.posted.iter().zip(shares) {
            if share.quantity == 0 && share.gross == 0 {
                continue;
            }
            lines.push(credit_line(tenant, posted, share));
        }
        taken.units.insert(*id, *now);
    }
    let shipping_minor = ready.shipping_refund_minor;
    if shipping_minor > 0 {
        let left: Vec<Charge> = ready
            .shipping_lines
            .iter()
            .enumerate()
            .map(|(i, l)| {
                let (gross, tax) = others
                    .iter()
                    .filter_map(|t| t.shipping.get(i))
                    .fold((0, 0), |(g, x), (tg, tx)| (g + tg, x + tx));
                Charge {
                    quantity: l.quantity,
                    gross: l.gross_minor - gross,
                    tax: l.tax_minor - tax,
                }
            })
            .collect();
        let shares = amount_share(&left, shipping_minor)?;
        for (posted, share) in ready.shipping_lines.iter().zip(&shares) {
            taken.shipping.push((share.gross, share.tax));
            if share.gross > 0 {
                lines.push(credit_line(tenant, posted, *share));
            }
        }
    }
    if lines.is_empty() {
        return Err(CreditError::Invalid("the return gives nothing back".into()));
    }
    let gross_minor: i64 = lines.iter().map(|l| l.gross_minor).sum();
    let tax_minor: i64 = lines.iter().map(|l| l.tax_minor).sum();
    let credit = PostCredit {
        tenant: ready.tenant.clone(),
        external_ref: format!("{}-R{}", ready.order_number, ready.return_id),
        order_ref: ready.order_number.to_string(),
        order_erp_reference: erp_reference.to_owned(),
        return_id: ready.return_id,
        currency: ready.currency.clone(),
        date: ready.created_at.clone(),
        lines,
        gross_minor,
        tax_minor,
        restock: ready.restock,
    };
    Ok(PricedReturn {
        currency: ready.currency.clone(),
        gross_minor,
        tax_minor,
        shipping_minor,
        taken,
        credit: serde_json::to_value(&credit)
            .map_err(|e| CreditError::Invalid(format!("the credit cannot be written: {e}")))?,
    })
}

/// A posted line's credited part, as the connector takes it.
fn credit_line(tenant: &TenantConfig, posted: &pb::SalesOrderLine, share: Charge) -> PostLine {
    let mut line = crate::convert::post_line(tenant, posted);
    line.quantity = share.quantity;
    line.gross_minor = share.gross;
    line.tax_minor = share.tax;
    line.net_minor = share.net();
    line
}
