//! Shipments as Centra's back office keeps them: created (lines, shipped time, e-mail,
//! capture), updated, completed, captured; an order is Shipped once every line is.

use super::*;

/// `ShipmentInfoInput` as the back office applies it.
#[derive(Debug, Clone, Default)]
pub struct ShipmentInfo {
    pub carrier: Option<String>,
    pub service: Option<String>,
    pub packages: Option<i64>,
    pub tracking_number: Option<String>,
    pub return_tracking_number: Option<String>,
}

impl ShipmentInfo {
    fn apply(self, s: &mut Shipment) {
        if self.carrier.is_some() {
            s.carrier = self.carrier;
        }
        if self.service.is_some() {
            s.service = self.service;
        }
        if self.packages.is_some() {
            s.packages = self.packages;
        }
        if self.tracking_number.is_some() {
            s.tracking_number = self.tracking_number;
        }
        if self.return_tracking_number.is_some() {
            s.return_tracking_number = self.return_tracking_number;
        }
    }
}

impl Ops {
    pub fn shipments_of(&self, order_number: i64) -> Vec<&Shipment> {
        self.shipments_by_order
            .get(&order_number)
            .map(|ids| ids.iter().filter_map(|id| self.shipments.get(id)).collect())
            .unwrap_or_default()
    }

    /// Units of a line already on a shipment (completed or not).
    pub fn on_shipments(&self, order_number: i64, line_id: i64) -> i64 {
        self.shipments_of(order_number)
            .iter()
            .flat_map(|s| s.lines.iter())
            .filter(|l| l.order_line_id == line_id)
            .map(|l| l.quantity)
            .sum()
    }

    /// `createShipment`. `lines` empty: every unshipped unit.
    #[allow(clippy::too_many_arguments)]
    pub fn create_shipment(
        &mut self,
        order: &mut Order,
        lines: &[(i64, i64)],
        good_to_go: bool,
        paid: bool,
        created_at: Option<DateTime<Utc>>,
        additional_message: Option<String>,
    ) -> Result<i64, UserError> {
        if order.status == OrderStatus::Pending {
            return Err(user_error(
                "Only confirmed orders can have shipments created",
                &["input", "order"],
            ));
        }
        if matches!(
            order.status,
            OrderStatus::Cancelled | OrderStatus::Shipped | OrderStatus::Archived
        ) {
            return Err(user_error(
                format!(
                    "Order {} is {:?} and cannot be shipped",
                    order.number, order.status
                ),
                &["input", "order"],
            ));
        }
        // [INF] Centra refuses to ship an order on hold; documented as inferred.
        if order.is_on_hold {
            return Err(user_error(
                format!("Order {} is on hold", order.number),
                &["input", "order"],
            ));
        }
        let wanted: Vec<(i64, i64)> = if lines.is_empty() {
            order
                .lines
                .iter()
                .map(|l| (l.id, l.quantity - self.on_shipments(order.number, l.id)))
                .filter(|(_, q)| *q > 0)
                .collect()
        } else {
            lines.to_vec()
        };
        if wanted.is_empty() {
            return Err(user_error(
                "Nothing left to ship on this order",
                &["input", "lines"],
            ));
        }
        let mut value = Decimal::ZERO;
        for (i, (line_id, quantity)) in wanted.iter().enumerate() {
            let index = i.to_string();
            let Some(line) = order.lines.iter().find(|l| l.id == *line_id) else {
                return Err(user_error(
                    format!("Order line {line_id} is not on order {}", order.number),
                    &["input", "lines", &index, "orderLine"],
                ));
            };
            let open = line.quantity - self.on_shipments(order.number, *line_id);
            if *quantity <= 0 || *quantity > open {
                return Err(user_error(
                    format!(
                        "Quantity {quantity} of order line {line_id} is more than the {open} left to ship"
                    ),
                    &["input", "lines", &index, "quantity"],
                ));
            }
            value += line.unit_price * Decimal::from(*quantity);
        }
        let first = self.shipments_of(order.number).is_empty();
        if first {
            let f = order.figures();
            value += order.shipping + order.handling + f.vouchers + f.tax_added;
        }
        let id = self.id();
        let n = self.shipments_of(order.number).len() + 1;
        let now = Utc::now();
        let mut shipment_lines = Vec::new();
        for (line_id, quantity) in wanted {
            let line_ref = self.id();
            shipment_lines.push(ShipmentLine {
                id: line_ref,
                order_line_id: line_id,
                quantity,
            });
        }
        self.shipments.insert(
            id,
            Shipment {
                id,
                number: format!("{}-{n}", order.number),
                order_number: order.number,
                lines: shipment_lines,
                created_at: created_at.unwrap_or(now),
                updated_at: now,
                is_good_to_go: good_to_go,
                is_paid: paid,
                paid_at: paid.then_some(now),
                is_captured: false,
                captured_at: None,
                is_shipped: false,
                shipped_at: None,
                carrier: None,
                service: None,
                packages: None,
                tracking_number: None,
                return_tracking_number: None,
                additional_message,
                value,
            },
        );
        self.shipments_by_order
            .entry(order.number)
            .or_default()
            .push(id);
        if order.status == OrderStatus::Confirmed {
            order.status = OrderStatus::Processing;
        }
        self.raise(
            EventObjectType::Shipment,
            EventChangeType::Created,
            id,
            Some("create"),
        );
        if good_to_go {
            self.announcements.push(Announcement {
                object_type: "shipment",
                action: "good_to_go",
                id,
            });
        }
        self.order_updated(order);
        Ok(id)
    }

    /// `updateShipment`.
    pub fn update_shipment(
        &mut self,
        id: i64,
        good_to_go: Option<bool>,
        paid: Option<bool>,
        info: Option<ShipmentInfo>,
        additional_message: Option<String>,
    ) -> Result<(), UserError> {
        let Some(s) = self.shipments.get_mut(&id) else {
            return Err(user_error(format!("Shipment {id} not found"), &["id"]));
        };
        let now = Utc::now();
        let became_good_to_go = good_to_go == Some(true) && !s.is_good_to_go;
        if let Some(g) = good_to_go {
            s.is_good_to_go = g;
        }
        if let Some(p) = paid {
            if p && !s.is_paid {
                s.paid_at = Some(now);
            }
            s.is_paid = p;
        }
        if let Some(info) = info {
            info.apply(s);
        }
        if additional_message.is_some() {
            s.additional_message = additional_message;
        }
        s.updated_at = now;
        self.raise(
            EventObjectType::Shipment,
            EventChangeType::Updated,
            id,
            Some(if became_good_to_go {
                "good_to_go"
            } else {
                "update"
            }),
        );
        Ok(())
    }

    /// `captureShipment`: captures the shipment's value through the payment method.
    pub fn capture_shipment(&mut self, order: &mut Order, id: i64) -> Result<(), UserError> {
        let Some(s) = self.shipments.get_mut(&id) else {
            return Err(user_error(format!("Shipment {id} not found"), &["id"]));
        };
        if s.is_captured {
            return Err(user_error(
                format!("Shipment {} is already captured", s.number),
                &["id"],
            ));
        }
        let now = Utc::now();
        s.is_captured = true;
        s.captured_at = Some(now);
        s.is_paid = true;
        s.paid_at.get_or_insert(now);
        s.updated_at = now;
        let value = s.value;
        let next_id = order
            .payment_history
            .iter()
            .map(|p| p.id)
            .max()
            .unwrap_or(0)
            + 1;
        order.payment_history.push(PaymentEntry {
            id: next_id,
            created_at: now.format("%Y-%m-%dT%H:%M:%S+00:00").to_string(),
            status: "SUCCESS",
            entry_type: "CAPTURE",
            external_reference: format!("cap-{id}"),
            value,
        });
        order.touch();
        self.raise(
            EventObjectType::Shipment,
            EventChangeType::Updated,
            id,
            Some("update"),
        );
        Ok(())
    }

    /// `completeShipment`: shipped, stock leaves the warehouse, the email goes out if asked
    /// for, and the order completes with its last shipment.
    pub fn complete_shipment(
        &mut self,
        order: &mut Order,
        id: i64,
        shipped_at: DateTime<Utc>,
        info: Option<ShipmentInfo>,
        send_email: bool,
        additional_message: Option<String>,
    ) -> Result<(), UserError> {
        if shipped_at > Utc::now() + chrono::Duration::seconds(1) {
            return Err(user_error(
                "shippedAt cannot be in the future",
                &["input", "shippedAt"],
            ));
        }
        let Some(s) = self.shipments.get_mut(&id) else {
            return Err(user_error(format!("Shipment {id} not found"), &["id"]));
        };
        if s.is_shipped {
            return Err(user_error(
                format!("Shipment {} is already completed", s.number),
                &["id"],
            ));
        }
        s.is_shipped = true;
        s.shipped_at = Some(shipped_at);
        s.is_good_to_go = true;
        if let Some(info) = info {
            info.apply(s);
        }
        if additional_message.is_some() {
            s.additional_message = additional_message;
        }
        s.updated_at = Utc::now();
        let shipment = s.clone();
        for line in &shipment.lines {
            self.ship_out(order.number, line.order_line_id, line.quantity);
        }
        if send_email {
            self.emails.push(Email {
                kind: EmailKind::ShippingConfirmation,
                order_number: order.number,
                to: order.customer.email.clone(),
                shipment_number: Some(shipment.number.clone()),
                tracking_number: shipment.tracking_number.clone(),
                carrier: shipment.carrier.clone(),
                at: Utc::now(),
            });
        }
        self.raise(
            EventObjectType::Shipment,
            EventChangeType::Completed,
            id,
            Some("update"),
        );
        self.settle_order(order);
        Ok(())
    }

    /// SHIPPED once every unit is on a completed shipment (or cancelled).
    pub(crate) fn settle_order(&mut self, order: &mut Order) {
        let shipments = self.shipments_of(order.number);
        let all_completed = !shipments.is_empty() && shipments.iter().all(|s| s.is_shipped);
        let fully = order
            .lines
            .iter()
            .all(|l| self.on_shipments(order.number, l.id) >= l.quantity);
        if all_completed && fully {
            order.status = OrderStatus::Shipped;
            order.touch();
            self.raise(
                EventObjectType::Order,
                EventChangeType::Completed,
                order.number,
                Some("update"),
            );
        } else {
            self.order_updated(order);
        }
    }

    // ----- order changes ----------------------------------------------------------
}
