//! The units of each ready sales order, per (ERP item, SKU): Centra holds them allocated,
//! and until the order is in the ERP the ERP's available stock still counts them. Stored
//! group-committed, one statement for every order in flight.

use std::collections::BTreeMap;

use async_trait::async_trait;
use ferry_proto::order::v1 as pb;
use ferry_runtime::coalesce::Coalescer;
use ferry_runtime::{Delivery, Handler, HandlerError};
use ferry_store::Store;
use ferry_store::inventory::OrderUnits;
use prost::Message;

/// Records the item units of each ready sales order: Centra has them allocated, and until
/// the order is in the ERP the ERP's available stock still counts them.
pub(crate) struct Commitments {
    writes: Coalescer<OrderUnits, Result<(), String>>,
}

impl Commitments {
    pub(crate) fn new(tenant: &str, store: Store) -> Self {
        let tenant = tenant.to_owned();
        let writes = Coalescer::spawn(256, 1, move |orders: Vec<OrderUnits>| {
            let store = store.clone();
            let tenant = tenant.clone();
            async move {
                let n = orders.len();
                let result = store
                    .record_commitments(&tenant, &orders)
                    .await
                    .map_err(|e| e.to_string());
                vec![result; n]
            }
        });
        Commitments { writes }
    }
}

#[async_trait]
impl Handler for Commitments {
    async fn handle(&self, delivery: &Delivery) -> Result<(), HandlerError> {
        // Only the units are needed: the view skips the rest of the order undecoded.
        let ready = pb::OrderReadyUnits::decode(delivery.payload.as_ref())
            .map_err(|e| delivery.poison("ready order", &e))?;
        let Some(order) = ready.order else {
            return Err(delivery.poison("ready order", &"no order in the message"));
        };
        self.writes
            .call(order_units(order))
            .await
            .ok_or_else(|| HandlerError::transient("the commitment writer stopped"))?
            .map_err(HandlerError::transient)
    }
}

/// An order's item units per (ERP item, SKU); shipping and handling lines hold no stock.
fn order_units(order: pb::SalesOrderUnits) -> OrderUnits {
    let mut units: BTreeMap<(String, String), i64> = BTreeMap::new();
    for line in order.lines {
        if line.kind != pb::LineKind::Item as i32 || line.quantity <= 0 {
            continue;
        }
        let Some(sku) = line.sku else { continue };
        *units.entry((line.erp_item, sku)).or_insert(0) += line.quantity;
    }
    OrderUnits {
        order_number: order.order_number,
        lines: units
            .into_iter()
            .map(|((item, sku), q)| (item, sku, q))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::expect_used)] // a failing test says what broke

    use super::*;

    fn line(
        kind: pb::LineKind,
        sku: Option<&str>,
        item: &str,
        quantity: i64,
    ) -> pb::SalesOrderLine {
        pb::SalesOrderLine {
            kind: kind as i32,
            centra_line_id: Some(7),
            sku: sku.map(str::to_owned),
            erp_item: item.to_owned(),
            quantity,
            tax_rate_percent: "25".to_owned(),
            gross_minor: 12_500,
            tax_minor: 2_500,
            net_minor: 10_000,
            bundle_line_id: None,
            description: "Jacket".to_owned(),
            bundle_quantity: None,
        }
    }

    /// The units view reads a whole published `OrderReady` (same field numbers) and yields
    /// what decoding the full order would: item lines only, summed per (item, SKU).
    #[test]
    fn the_units_view_reads_a_full_ready_order() {
        let full = pb::OrderReady {
            order: Some(pb::SalesOrder {
                tenant: "acme".to_owned(),
                order_number: 4711,
                centra_order_id: "c-4711".to_owned(),
                currency: "SEK".to_owned(),
                lines: vec![
                    line(pb::LineKind::Item, Some("JKT-M"), "JKT", 2),
                    line(pb::LineKind::Item, Some("JKT-M"), "JKT", 1),
                    line(pb::LineKind::Item, Some("TEE-S"), "TEE", 3),
                    line(pb::LineKind::Item, Some("GONE"), "GONE", 0),
                    line(pb::LineKind::Shipping, None, "SHIP", 1),
                ],
                customer: Some(pb::Customer {
                    email: "someone@example.com".to_owned(),
                    ..Default::default()
                }),
                market: "SE".to_owned(),
                snapshot_hash: "h".to_owned(),
                ..Default::default()
            }),
        }
        .encode_to_vec();
        let view = pb::OrderReadyUnits::decode(full.as_slice()).expect("decodes");
        let units = order_units(view.order.expect("an order"));
        assert_eq!(units.order_number, 4711);
        assert_eq!(
            units.lines,
            vec![
                ("JKT".to_owned(), "JKT-M".to_owned(), 3),
                ("TEE".to_owned(), "TEE-S".to_owned(), 3),
            ]
        );
    }
}
