//! Cancelling lines and orders, and returns (created, completed).

use super::stock::stocked_parts;
use super::*;

/// What `createReturn`'s `shippingCost` policy asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShippingRefund {
    None,
    /// `{ fromShipment: true }`: what the shipment carried of the order's shipping.
    FromShipment {
        order_shipping: Decimal,
    },
    /// `{ value: { value, currencyIsoCode } }`: this amount.
    Value(Decimal),
}

impl Ops {
    /// Cancels units of a line (`updateDirectToConsumerOrder.cancelLines`).
    pub fn cancel_line(
        &mut self,
        order: &mut Order,
        line_id: i64,
        quantity: i64,
        remove_from_stock: bool,
    ) -> Result<(), UserError> {
        let shipped = self.on_shipments(order.number, line_id);
        let Some(line) = order.lines.iter_mut().find(|l| l.id == line_id) else {
            return Err(user_error(
                format!("Order line {line_id} is not on order {}", order.number),
                &["input", "cancelLines"],
            ));
        };
        let open = line.quantity - shipped;
        if quantity <= 0 || quantity > open {
            return Err(user_error(
                format!("Cannot cancel {quantity} of order line {line_id}: {open} are not shipped"),
                &["input", "cancelLines"],
            ));
        }
        line.quantity -= quantity;
        line.cancelled_quantity += quantity;
        self.release(order.number, line_id, quantity, remove_from_stock);
        Ok(())
    }

    /// `cancelDirectToConsumerOrder`: irreversible; refused once anything shipped or was
    /// captured (then it is a return).
    pub fn cancel_order(
        &mut self,
        order: &mut Order,
        send_email: bool,
        remove_from_stock: bool,
    ) -> Result<(), UserError> {
        if order.status == OrderStatus::Cancelled {
            return Err(user_error(
                format!("Order {} is already cancelled", order.number),
                &["id"],
            ));
        }
        if !self.shipments_of(order.number).is_empty()
            || order
                .payment_history
                .iter()
                .any(|p| p.entry_type == "CAPTURE")
        {
            return Err(user_error(
                format!(
                    "Order {} has shipments or captured payments; create a return instead",
                    order.number
                ),
                &["id"],
            ));
        }
        let lines: Vec<(i64, i64)> = order.lines.iter().map(|l| (l.id, l.quantity)).collect();
        for (line_id, quantity) in lines {
            self.release(order.number, line_id, quantity, remove_from_stock);
        }
        order.status = OrderStatus::Cancelled;
        if send_email {
            self.emails.push(Email {
                kind: EmailKind::OrderCancelled,
                order_number: order.number,
                to: order.customer.email.clone(),
                shipment_number: None,
                tracking_number: None,
                carrier: None,
                at: Utc::now(),
            });
        }
        Ok(())
    }

    // ----- returns -----------------------------------------------------------------

    /// `createReturn` against a completed shipment.
    pub fn create_return(
        &mut self,
        shipment_id: i64,
        lines: &[(i64, i64)],
        release_to_stock: bool,
        shipping_refund: ShippingRefund,
        comment: Option<String>,
    ) -> Result<i64, UserError> {
        let Some(s) = self.shipments.get(&shipment_id).cloned() else {
            return Err(user_error(
                format!("Shipment {shipment_id} not found"),
                &["input", "shipment"],
            ));
        };
        if !s.is_shipped {
            return Err(user_error(
                format!("Shipment {} is not completed", s.number),
                &["input", "shipment"],
            ));
        }
        if lines.is_empty() {
            return Err(user_error("A return needs lines", &["input", "lines"]));
        }
        let mut return_lines = Vec::new();
        for (i, (line_id, quantity)) in lines.iter().enumerate() {
            let index = i.to_string();
            let Some(sl) = s.lines.iter().find(|l| l.id == *line_id) else {
                return Err(user_error(
                    format!("Shipment line {line_id} is not on shipment {}", s.number),
                    &["input", "lines", &index, "shipmentLine"],
                ));
            };
            let returned: i64 = self
                .returns
                .values()
                .flat_map(|r| r.lines.iter())
                .filter(|l| l.shipment_line_id == *line_id)
                .map(|l| l.quantity)
                .sum();
            if *quantity <= 0 || *quantity > sl.quantity - returned {
                return Err(user_error(
                    format!(
                        "Cannot return {quantity} of shipment line {line_id}: {} left",
                        sl.quantity - returned
                    ),
                    &["input", "lines", &index, "quantity"],
                ));
            }
            return_lines.push(ReturnLine {
                id: 0,
                shipment_line_id: *line_id,
                order_line_id: sl.order_line_id,
                quantity: *quantity,
            });
        }
        let shipping_refund = match shipping_refund {
            ShippingRefund::None => Decimal::ZERO,
            // [INF] "only one shipment should carry the shipping cost" (Centra): the
            // order's first shipment carries it, so only a return of that one refunds it.
            ShippingRefund::FromShipment { order_shipping } => {
                let first = self.shipments_of(s.order_number).first().map(|f| f.id);
                if first == Some(shipment_id) {
                    order_shipping
                } else {
                    Decimal::ZERO
                }
            }
            ShippingRefund::Value(v) if v < Decimal::ZERO => {
                return Err(user_error(
                    "A shipping refund cannot be negative",
                    &["input", "shippingCost"],
                ));
            }
            ShippingRefund::Value(v) => v,
        };
        for l in &mut return_lines {
            l.id = self.id();
        }
        let id = self.id();
        self.returns.insert(
            id,
            Return {
                id,
                shipment_id,
                order_number: s.order_number,
                lines: return_lines,
                release_to_stock,
                shipping_refund,
                completed: false,
                created_at: Utc::now(),
                completed_at: None,
                comment,
            },
        );
        self.raise(
            EventObjectType::Return,
            EventChangeType::Created,
            id,
            Some("create"),
        );
        Ok(id)
    }

    /// `completeReturn`: returned units go back on the shelf if the policy says so.
    pub fn complete_return(
        &mut self,
        order: &Order,
        id: i64,
        send_email: bool,
    ) -> Result<(), UserError> {
        let Some(r) = self.returns.get_mut(&id) else {
            return Err(user_error(format!("Return {id} not found"), &["id"]));
        };
        if r.completed {
            return Err(user_error(
                format!("Return {id} is already completed"),
                &["id"],
            ));
        }
        r.completed = true;
        r.completed_at = Some(Utc::now());
        let r = r.clone();
        if r.release_to_stock {
            for l in &r.lines {
                let Some(line) = order.lines.iter().find(|x| x.id == l.order_line_id) else {
                    continue;
                };
                for (sku, per_unit) in stocked_parts(line) {
                    if let Some(size) = self.size_by_sku(&sku) {
                        self.level_mut(size, 1).physical += l.quantity * per_unit;
                    }
                }
            }
        }
        if send_email {
            self.emails.push(Email {
                kind: EmailKind::ReturnCompleted,
                order_number: order.number,
                to: order.customer.email.clone(),
                shipment_number: None,
                tracking_number: None,
                carrier: None,
                at: Utc::now(),
            });
        }
        self.raise(
            EventObjectType::Return,
            EventChangeType::Completed,
            id,
            Some("update"),
        );
        Ok(())
    }
}
