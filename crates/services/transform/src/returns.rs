//! Returns (ADR 0037): a completed Centra return and its order's snapshot in, the return
//! priced as the order charged it out (`order.return`). The order goes through the same
//! transform as when it was posted, so every returned line finds the money the ERP holds
//! for it — after vouchers, a bundle's price as spread over its components — and the
//! erp-writer credits the returned part of it.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use ferry_config::TenantConfig;
use ferry_domain::transform::LineKind;
use ferry_domain::{Currency, ExceptionKind, SalesOrder, Snapshot, transform};
use ferry_proto::centra::v1 as centra_pb;
use ferry_proto::order::v1 as order_pb;
use ferry_runtime::consumer::{Delivery, Handler, HandlerError, Runner};
use ferry_runtime::{ExceptionSink, Outgoing, ServiceBase, StreamKind};
use ferry_store::{SkuCache, Store};
use prost::Message as _;
use rust_decimal::Decimal;

use crate::{SERVICE, convert};

pub struct ReturnHandler {
    pub tenant: TenantConfig,
    pub store: Store,
    pub base: ServiceBase,
    pub items: SkuCache,
}

/// The tenant's return consumer, on the CENTRA stream's return snapshots.
pub fn runner(base: &ServiceBase, sink: Arc<dyn ExceptionSink>, tenant: &str) -> Runner {
    Runner::builder(
        base,
        sink,
        SERVICE,
        tenant,
        StreamKind::Centra,
        base.topology.return_snapshots_filter(tenant),
    )
    .durable(format!(
        "{}-returns",
        base.topology.consumer_name(SERVICE, tenant)
    ))
    .build()
}

#[async_trait]
impl Handler for ReturnHandler {
    async fn handle(&self, delivery: &Delivery) -> Result<(), HandlerError> {
        let message = centra_pb::ReturnSnapshot::decode(delivery.payload.clone())
            .map_err(|e| delivery.poison("return snapshot", &e))?;
        let not_credited = |why: String| {
            let mut error = delivery.permanent(
                ExceptionKind::ReturnNotCredited,
                format!("return:{}", message.return_id),
                format!(
                    "Return {} of order {} cannot be priced, so no credit note was made: {why}. \
                     Credit the return by hand, or fix the cause and replay it.",
                    message.return_id, message.order_number
                ),
                why.clone(),
            );
            if let HandlerError::Permanent(e) = &mut error {
                e.order_number = Some(message.order_number);
            }
            error
        };
        let snapshot = Snapshot::parse(&message.order_snapshot_json)
            .map_err(|e| not_credited(format!("its order's data could not be read ({e})")))?;
        let items = self
            .items
            .get(&self.store, &self.tenant.id, false)
            .await
            .map_err(HandlerError::transient)?;
        let order = transform(&snapshot, &self.tenant.rules, items.as_ref());
        let ready = price(&message, &snapshot, &order).map_err(not_credited)?;
        self.base
            .publisher
            .publish(&Outgoing {
                subject: self
                    .base
                    .topology
                    .return_ready_subject(&self.tenant.id, message.return_id),
                msg_id: format!(
                    "{}:return:{}:{}:ready",
                    self.tenant.id, message.return_id, message.content_hash
                ),
                payload: Bytes::from(ready.encode_to_vec()),
            })
            .await?;
        Ok(())
    }
}

/// The return with each of its lines matched to the lines the order posted for it: the
/// line itself, or every component of a returned bundle; and the shipping refund in minor
/// units against the order's shipping lines.
pub fn price(
    message: &centra_pb::ReturnSnapshot,
    snapshot: &Snapshot,
    order: &SalesOrder,
) -> Result<order_pb::ReturnReady, String> {
    let currency = Currency::from_code(&order.currency)
        .ok_or_else(|| format!("the order's currency {:?} is unknown", order.currency))?;
    let refund = message.shipping_refund.trim();
    let shipping_refund_minor = if refund.is_empty() {
        0
    } else {
        let value: Decimal = refund
            .parse()
            .map_err(|_| format!("the shipping refund {refund:?} is not an amount"))?;
        currency
            .to_minor(value)
            .map_err(|e| format!("the shipping refund {refund}: {e}"))?
    };
    let mut lines = Vec::with_capacity(message.lines.len());
    for returned in &message.lines {
        let id = returned.order_line_id;
        let of_quantity = snapshot
            .lines
            .iter()
            .find(|l| l.id == Some(id))
            .and_then(|l| l.quantity)
            .ok_or_else(|| format!("the order has no line {id}"))?;
        let posted: Vec<order_pb::SalesOrderLine> = order
            .lines
            .iter()
            .filter(|l| l.kind == LineKind::Item)
            .filter(|l| l.centra_line_id == Some(id) || l.bundle_line_id == Some(id))
            .map(convert::line)
            .collect();
        if posted.is_empty() {
            return Err(format!("the order posted nothing for its line {id}"));
        }
        lines.push(order_pb::ReturnedLine {
            centra_line_id: id,
            quantity: returned.quantity,
            of_quantity,
            posted,
        });
    }
    Ok(order_pb::ReturnReady {
        tenant: message.tenant.clone(),
        return_id: message.return_id,
        order_number: message.order_number,
        currency: order.currency.clone(),
        lines,
        shipping_refund_minor,
        shipping_lines: order
            .lines
            .iter()
            .filter(|l| l.kind == LineKind::Shipping)
            .map(convert::line)
            .collect(),
        order_totals: Some(order_pb::Totals {
            gross_minor: order.totals.gross,
            tax_minor: order.totals.tax,
            net_minor: order.totals.net,
        }),
        restock: message.returned_to_stock,
        created_at: message.created_at.clone(),
        fetched_at: message.fetched_at,
    })
}
