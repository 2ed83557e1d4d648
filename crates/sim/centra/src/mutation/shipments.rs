//! Shipment mutations: create (optionally already sent and captured), update, capture,
//! complete.

use std::sync::Arc;

use async_graphql::{Context, InputObject, Object, SimpleObject};
use chrono::Utc;

use crate::auth::need;
use crate::ops::{ShipmentInfo, UserError, UserWarning, user_error};
use crate::queries::{ShipmentIface, ShipmentView};
use crate::schema::{MonetaryValueInput, PaymentHistoryEntry};
use crate::state::{LoseAnswer, ShipmentStep, SimState};

use super::{OrderInput, OrderLineIdInput};
use crate::schema::DateTimeTz;

#[derive(InputObject)]
pub struct ShipmentLineInput {
    pub order_line: OrderLineIdInput,
    pub quantity: i64,
}

#[derive(InputObject, Default, Clone)]
pub struct ShipmentInfoInput {
    pub carrier: Option<String>,
    pub service: Option<String>,
    pub packages_number: Option<i64>,
    pub tracking_number: Option<String>,
    pub return_tracking_number: Option<String>,
    pub internal_shipping_cost: Option<MonetaryValueInput>,
}

impl From<ShipmentInfoInput> for ShipmentInfo {
    fn from(i: ShipmentInfoInput) -> Self {
        ShipmentInfo {
            carrier: i.carrier,
            service: i.service,
            packages: i.packages_number,
            tracking_number: i.tracking_number,
            return_tracking_number: i.return_tracking_number,
        }
    }
}

#[derive(InputObject)]
pub struct ShipmentCreateInput {
    pub order: OrderInput,
    pub lines: Option<Vec<ShipmentLineInput>>,
    pub is_good_to_go: Option<bool>,
    pub is_paid: Option<bool>,
    pub created_at: Option<DateTimeTz>,
    /// Set: the shipment is already sent (then also send `shipmentInfo`).
    pub shipped_at: Option<DateTimeTz>,
    pub shipment_info: Option<ShipmentInfoInput>,
    pub send_email: Option<bool>,
    pub additional_message: Option<String>,
    pub allocate_demand: Option<bool>,
    /// Capture the payment right away.
    pub capture: Option<bool>,
}

#[derive(InputObject, Default)]
pub struct ShipmentUpdateInput {
    pub is_good_to_go: Option<bool>,
    pub is_paid: Option<bool>,
    pub additional_message: Option<String>,
    pub shipment_info: Option<ShipmentInfoInput>,
}

#[derive(InputObject, Default)]
pub struct ShipmentCompleteInput {
    pub shipped_at: Option<DateTimeTz>,
    pub shipment_info: Option<ShipmentInfoInput>,
    pub send_email: Option<bool>,
    pub additional_message: Option<String>,
}

/// The documented payloads of `createShipment`, `updateShipment` and `completeShipment`:
/// the same fields under their own names.
macro_rules! shipment_payload {
    ($name:ident) => {
        #[derive(SimpleObject)]
        pub struct $name {
            pub shipment: Option<ShipmentIface>,
            pub user_errors: Vec<UserError>,
            pub user_warnings: Vec<UserWarning>,
        }

        impl $name {
            fn from(state: &Arc<SimState>, result: Result<i64, UserError>) -> Self {
                match result {
                    Ok(id) => $name {
                        shipment: ShipmentView::load(state, id).map(ShipmentIface::from),
                        user_errors: Vec::new(),
                        user_warnings: Vec::new(),
                    },
                    Err(e) => $name {
                        shipment: None,
                        user_errors: vec![e],
                        user_warnings: Vec::new(),
                    },
                }
            }
        }
    };
}

shipment_payload!(ShipmentCreatePayload);
shipment_payload!(ShipmentUpdatePayload);
shipment_payload!(ShipmentCompletePayload);

/// `captureShipment`'s payload: the shipment and the payment entry the capture made.
#[derive(SimpleObject)]
pub struct ShipmentCapturePayload {
    pub shipment: Option<ShipmentIface>,
    pub payment_history_entry: Option<PaymentHistoryEntry>,
    pub payment_history_entries: Vec<PaymentHistoryEntry>,
    pub user_errors: Vec<UserError>,
    pub user_warnings: Vec<UserWarning>,
}

fn capture_declined() -> UserError {
    user_error(
        "The payment provider declined the capture",
        &["input", "capture"],
    )
}

#[derive(Default)]
pub struct ShipmentMutation;

#[Object]
impl ShipmentMutation {
    /// A shipment of some (or all unshipped) lines; with `shippedAt` it is already sent.
    async fn create_shipment(
        &self,
        ctx: &Context<'_>,
        input: ShipmentCreateInput,
    ) -> async_graphql::Result<ShipmentCreatePayload> {
        need(ctx, "Shipment:write", "createShipment")?;
        let state = ctx.data::<Arc<SimState>>()?;
        let declined = state.faults.read().decline_captures;
        let result = state.transact(|w| {
            let number = input.order.resolve(w)?;
            if declined && input.capture.unwrap_or(false) {
                return Err(capture_declined());
            }
            let created_at = input.created_at.map(|t| t.0);
            let shipped_at = input.shipped_at.map(|t| t.0);
            let lines: Vec<(i64, i64)> = input
                .lines
                .as_deref()
                .unwrap_or_default()
                .iter()
                .map(|l| (l.order_line.id, l.quantity))
                .collect();
            if input.lines.as_ref().is_some_and(Vec::is_empty) {
                return Err(user_error("A shipment needs lines", &["input", "lines"]));
            }
            // Created, then completed (sent, e-mail), then captured: each step kept even
            // when a later one is interrupted.
            let stop = |step| {
                let interrupted = state.interrupts_shipment_after(step);
                if interrupted && let Ok(lose) = ctx.data::<Arc<LoseAnswer>>() {
                    lose.set();
                }
                interrupted
            };
            w.with_order(number, |o, ops| {
                let capture = input.capture.unwrap_or(false);
                let id = ops.create_shipment(
                    o,
                    &lines,
                    input.is_good_to_go.unwrap_or(false) || shipped_at.is_some(),
                    input.is_paid.unwrap_or(false) && !capture,
                    created_at,
                    input.additional_message.clone(),
                )?;
                if let Some(info) = input.shipment_info.clone() {
                    ops.update_shipment(id, None, None, Some(info.into()), None)?;
                }
                if stop(ShipmentStep::Created) {
                    return Ok(id);
                }
                if let Some(at) = shipped_at {
                    ops.complete_shipment(
                        o,
                        id,
                        at,
                        None,
                        input.send_email.unwrap_or(false),
                        None,
                    )?;
                }
                if stop(ShipmentStep::Completed) {
                    return Ok(id);
                }
                if capture {
                    ops.capture_shipment(o, id)?;
                }
                stop(ShipmentStep::Captured);
                Ok(id)
            })
        });
        Ok(ShipmentCreatePayload::from(state, result))
    }

    async fn update_shipment(
        &self,
        ctx: &Context<'_>,
        id: i64,
        input: ShipmentUpdateInput,
    ) -> async_graphql::Result<ShipmentUpdatePayload> {
        need(ctx, "Shipment:write", "updateShipment")?;
        let state = ctx.data::<Arc<SimState>>()?;
        let result = state.transact(|w| {
            w.ops.update_shipment(
                id,
                input.is_good_to_go,
                input.is_paid,
                input.shipment_info.clone().map(Into::into),
                input.additional_message.clone(),
            )?;
            Ok(id)
        });
        Ok(ShipmentUpdatePayload::from(state, result))
    }

    async fn capture_shipment(
        &self,
        ctx: &Context<'_>,
        id: i64,
    ) -> async_graphql::Result<ShipmentCapturePayload> {
        need(ctx, "Shipment:write", "captureShipment")?;
        let state = ctx.data::<Arc<SimState>>()?;
        let result = state.transact(|w| {
            let number = w
                .ops
                .shipments
                .get(&id)
                .map(|s| s.order_number)
                .ok_or_else(|| user_error(format!("Shipment {id} not found"), &["id"]))?;
            if state.faults.read().decline_captures {
                return Err(capture_declined());
            }
            w.with_order(number, |o, ops| ops.capture_shipment(o, id))?;
            Ok(id)
        });
        Ok(match result {
            Ok(id) => {
                let view = ShipmentView::load(state, id);
                let entry = view
                    .as_ref()
                    .and_then(|v| state.order(v.order_number()))
                    .and_then(PaymentHistoryEntry::latest);
                let entries = entry.clone().into_iter().collect();
                ShipmentCapturePayload {
                    shipment: view.map(ShipmentIface::from),
                    payment_history_entry: entry,
                    payment_history_entries: entries,
                    user_errors: Vec::new(),
                    user_warnings: Vec::new(),
                }
            }
            Err(e) => ShipmentCapturePayload {
                shipment: None,
                payment_history_entry: None,
                payment_history_entries: Vec::new(),
                user_errors: vec![e],
                user_warnings: Vec::new(),
            },
        })
    }

    /// Shipped with tracking; the last completed shipment completes the order.
    async fn complete_shipment(
        &self,
        ctx: &Context<'_>,
        id: i64,
        input: Option<ShipmentCompleteInput>,
    ) -> async_graphql::Result<ShipmentCompletePayload> {
        need(ctx, "Shipment:write", "completeShipment")?;
        let state = ctx.data::<Arc<SimState>>()?;
        let input = input.unwrap_or_default();
        let result = state.transact(|w| {
            let shipped_at = input.shipped_at.map_or_else(Utc::now, |t| t.0);
            let number = w
                .ops
                .shipments
                .get(&id)
                .map(|s| s.order_number)
                .ok_or_else(|| user_error(format!("Shipment {id} not found"), &["id"]))?;
            w.with_order(number, |o, ops| {
                ops.complete_shipment(
                    o,
                    id,
                    shipped_at,
                    input.shipment_info.clone().map(Into::into),
                    input.send_email.unwrap_or(false),
                    input.additional_message.clone(),
                )
            })?;
            Ok(id)
        });
        Ok(ShipmentCompletePayload::from(state, result))
    }
}
