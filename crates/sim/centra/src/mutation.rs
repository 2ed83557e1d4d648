//! Mutations of the simulated Integration API. Business errors come back as `userErrors`
//! in an HTTP 200 answer, as Centra does; every mutation asks for its permission.

use std::sync::Arc;

use async_graphql::{Context, Enum, InputObject, Object, SimpleObject};
use chrono::{DateTime, Utc};

use crate::auth::{integration, need};
use crate::model::OrderStatus;
use crate::ops::{
    EventChangeType, EventObjectType, ShipmentInfo, UserError, UserWarning, user_error,
};
use crate::queries::{EventListenerView, ReturnView, ShipmentView, StockChangeRef};
use crate::schema::{DirectToConsumerOrder, OrderIface};
use crate::state::{LoseAnswer, ShipmentStep, SimState, World};

pub use crate::ops::{UserError as UserErrorType, UserWarning as UserWarningType};

/// Exactly one of `id` or `number`.
#[derive(InputObject, Default, Clone)]
pub struct OrderInput {
    pub id: Option<String>,
    pub number: Option<i64>,
}

impl OrderInput {
    fn resolve(&self, world: &World<'_>) -> Result<i64, UserError> {
        match (&self.id, self.number) {
            (Some(id), None) => world.order_by_id(id),
            (None, Some(n)) => world.order(n).map(|o| o.number),
            _ => Err(user_error(
                "Exactly one input field should be provided",
                &["order"],
            )),
        }
    }
}

/// A reference by integer id (`{ id: 1 }`).
#[derive(InputObject, Clone, Copy)]
pub struct IdInput {
    pub id: i64,
}

#[derive(InputObject)]
pub struct ConfirmOrderInput {
    pub order: OrderInput,
}

#[derive(SimpleObject)]
pub struct OrderPayload {
    pub order: Option<OrderIface>,
    pub user_errors: Vec<UserError>,
    pub user_warnings: Vec<UserWarning>,
}

fn order_view(state: &SimState, number: i64) -> Option<OrderIface> {
    state
        .order(number)
        .map(|o| OrderIface::DirectToConsumerOrder(DirectToConsumerOrder(o)))
}

impl OrderPayload {
    fn from(state: &SimState, result: Result<i64, UserError>) -> Self {
        match result {
            Ok(number) => OrderPayload {
                order: order_view(state, number),
                user_errors: Vec::new(),
                user_warnings: Vec::new(),
            },
            Err(e) => OrderPayload {
                order: None,
                user_errors: vec![e],
                user_warnings: Vec::new(),
            },
        }
    }
}

#[derive(Enum, Clone, Copy, PartialEq, Eq)]
#[graphql(rename_items = "SCREAMING_SNAKE_CASE")]
pub enum CancelStockAction {
    ReleaseBackToWarehouse,
    RemoveFromStock,
}

#[derive(InputObject)]
pub struct CancelLineInput {
    pub line: IdInput,
    pub quantity: i64,
    pub stock_action: Option<CancelStockAction>,
}

#[derive(InputObject, Default)]
pub struct DirectToConsumerOrderUpdateInput {
    pub is_on_hold: Option<bool>,
    pub hold_status_change_reason: Option<String>,
    pub cancel_lines: Option<Vec<CancelLineInput>>,
    pub cancellation_comment: Option<String>,
}

#[derive(InputObject)]
pub struct SetOrdersLockInput {
    pub orders: Vec<OrderInput>,
    pub is_locked: bool,
}

#[derive(SimpleObject)]
pub struct SetOrdersLockPayload {
    pub orders: Vec<OrderIface>,
    pub user_errors: Vec<UserError>,
    pub user_warnings: Vec<UserWarning>,
}

#[derive(InputObject, Default)]
pub struct EmailOptionsInput {
    pub send_email: Option<bool>,
}

#[derive(InputObject, Default)]
pub struct CancelStockActionInput {
    pub remove_items_from_stock: Option<bool>,
}

#[derive(InputObject, Default)]
pub struct CancelOrderInput {
    pub comment: Option<String>,
    pub email_options: Option<EmailOptionsInput>,
    pub stock_action: Option<CancelStockActionInput>,
    pub cancel_authorization: Option<bool>,
}

#[derive(InputObject, Clone)]
pub struct OrderLineIdInput {
    pub id: i64,
}

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
    pub created_at: Option<String>,
    /// Set: the shipment is already sent (then also send `shipmentInfo`).
    pub shipped_at: Option<String>,
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
    pub shipped_at: Option<String>,
    pub shipment_info: Option<ShipmentInfoInput>,
    pub send_email: Option<bool>,
    pub additional_message: Option<String>,
}

#[derive(SimpleObject)]
pub struct ShipmentPayload {
    pub shipment: Option<ShipmentView>,
    pub user_errors: Vec<UserError>,
    pub user_warnings: Vec<UserWarning>,
}

impl ShipmentPayload {
    fn from(state: &Arc<SimState>, result: Result<i64, UserError>) -> Self {
        match result {
            Ok(id) => ShipmentPayload {
                shipment: ShipmentView::load(state, id),
                user_errors: Vec::new(),
                user_warnings: Vec::new(),
            },
            Err(e) => ShipmentPayload {
                shipment: None,
                user_errors: vec![e],
                user_warnings: Vec::new(),
            },
        }
    }
}

#[derive(InputObject)]
pub struct ReturnLineCreateInput {
    pub shipment_line: IdInput,
    pub quantity: i64,
}

#[derive(InputObject, Default)]
pub struct StockPolicyActionInput {
    pub release_items_back_to_warehouse: Option<bool>,
    pub remove_items_from_stock: Option<bool>,
}

#[derive(InputObject)]
pub struct ReturnCreateInput {
    pub shipment: IdInput,
    pub lines: Vec<ReturnLineCreateInput>,
    pub return_stock_action_policy: StockPolicyActionInput,
    pub comment: Option<String>,
}

#[derive(InputObject, Default)]
pub struct ReturnCompleteInput {
    pub send_email: Option<bool>,
}

#[derive(SimpleObject)]
pub struct ReturnPayload {
    #[graphql(name = "return")]
    pub ret: Option<ReturnView>,
    pub user_errors: Vec<UserError>,
    pub user_warnings: Vec<UserWarning>,
}

impl ReturnPayload {
    fn from(state: &Arc<SimState>, result: Result<i64, UserError>) -> Self {
        match result {
            Ok(id) => ReturnPayload {
                ret: ReturnView::load(state, id),
                user_errors: Vec::new(),
                user_warnings: Vec::new(),
            },
            Err(e) => ReturnPayload {
                ret: None,
                user_errors: vec![e],
                user_warnings: Vec::new(),
            },
        }
    }
}

#[derive(InputObject, Default, Clone)]
pub struct WarehouseInput {
    pub id: Option<i64>,
    pub name: Option<String>,
}

#[derive(InputObject, Default, Clone)]
pub struct ProductSizeInput {
    pub id: Option<i64>,
    #[graphql(name = "SKU")]
    pub sku: Option<String>,
    #[graphql(name = "EAN")]
    pub ean: Option<String>,
    #[graphql(name = "UPC")]
    pub upc: Option<String>,
    pub any: Option<String>,
}

#[derive(Enum, Clone, Copy, PartialEq, Eq)]
#[graphql(rename_items = "SCREAMING_SNAKE_CASE")]
pub enum StockQuantityType {
    Physical,
    /// [INF] the second value the reference suspects; physical = allocated + this.
    FreeToAllocate,
}

#[derive(InputObject)]
pub struct StockSetProductSizeInput {
    pub product_size: ProductSizeInput,
    pub quantity: i64,
}

#[derive(InputObject)]
pub struct StockSetInput {
    pub warehouse: WarehouseInput,
    pub description: String,
    pub stock_quantity_type: StockQuantityType,
    pub product_sizes: Option<Vec<StockSetProductSizeInput>>,
}

#[derive(InputObject)]
pub struct StockChangeProductSizeInput {
    pub product_size: ProductSizeInput,
    pub delivered_quantity: i64,
}

#[derive(InputObject)]
pub struct StockChangeInput {
    pub into_warehouse: Option<WarehouseInput>,
    pub out_from_warehouse: Option<WarehouseInput>,
    pub description: String,
    pub product_sizes: Option<Vec<StockChangeProductSizeInput>>,
}

#[derive(SimpleObject)]
pub struct StockSetPayload {
    pub stock_changes: Vec<StockChangeRef>,
    pub user_errors: Vec<UserError>,
    pub user_warnings: Vec<UserWarning>,
}

#[derive(SimpleObject)]
pub struct StockChangePayload {
    pub stock_change: Option<StockChangeRef>,
    pub user_errors: Vec<UserError>,
    pub user_warnings: Vec<UserWarning>,
}

#[derive(InputObject)]
pub struct EventListenerInput {
    pub object_type: EventObjectType,
    pub change_types: Option<Vec<EventChangeType>>,
}

#[derive(InputObject)]
pub struct EventListenerUnsetInput {
    pub object_type: EventObjectType,
}

#[derive(SimpleObject)]
pub struct EventListenersPayload {
    pub event_listeners: Vec<EventListenerView>,
    pub user_errors: Vec<UserError>,
    pub user_warnings: Vec<UserWarning>,
}

#[derive(InputObject)]
pub struct ConfirmEventsInput {
    pub events_ids: Vec<i64>,
}

#[derive(SimpleObject)]
pub struct ConfirmEventsPayload {
    pub user_errors: Vec<UserError>,
    pub user_warnings: Vec<UserWarning>,
}

/// Reads the date forms Centra accepts in inputs: RFC 3339, `Y-m-d H:i:s`, or `now`.
pub fn parse_input_time(text: &str) -> Option<DateTime<Utc>> {
    if text.trim() == "now" {
        return Some(Utc::now());
    }
    crate::state::parse_time(text)
}

fn capture_declined() -> UserError {
    user_error(
        "The payment provider declined the capture",
        &["input", "capture"],
    )
}

fn time_or_error(text: Option<&str>, path: &[&str]) -> Result<Option<DateTime<Utc>>, UserError> {
    match text {
        None => Ok(None),
        Some(t) => parse_input_time(t)
            .map(Some)
            .ok_or_else(|| user_error(format!("{t} is not a date Centra understands"), path)),
    }
}

fn size_index(ops: &crate::ops::Ops, input: &ProductSizeInput) -> Result<Option<usize>, UserError> {
    ops.find_size(
        input.id,
        input.sku.as_deref(),
        input.ean.as_deref().or(input.upc.as_deref()),
        input.any.as_deref(),
    )
}

fn warehouse_id(
    ops: &crate::ops::Ops,
    input: &WarehouseInput,
    path: &str,
) -> Result<i64, UserError> {
    let found = match (input.id, input.name.as_deref()) {
        (Some(id), None) => ops.warehouse(id),
        (None, Some(name)) => ops.warehouses.iter().find(|w| w.name == name),
        _ => {
            return Err(user_error(
                "Exactly one input field should be provided",
                &["input", path],
            ));
        }
    };
    found
        .map(|w| w.id)
        .ok_or_else(|| user_error("Warehouse not found", &["input", path]))
}

pub struct Mutation;

#[Object]
impl Mutation {
    /// PENDING → CONFIRMED, which allocates stock. "The only time in Centra when you set
    /// the order status directly."
    async fn confirm_order(
        &self,
        ctx: &Context<'_>,
        input: ConfirmOrderInput,
    ) -> async_graphql::Result<OrderPayload> {
        need(ctx, "Order:write", "confirmOrder")?;
        let state = ctx.data::<Arc<SimState>>()?;
        let result = state.transact(|w| {
            let number = input.order.resolve(w)?;
            w.with_order(number, |o, ops| {
                if o.status != OrderStatus::Pending {
                    return Err(user_error(
                        format!(
                            "Order {number} is {:?}; only PENDING orders can be confirmed",
                            o.status
                        ),
                        &["input", "order"],
                    ));
                }
                o.status = OrderStatus::Confirmed;
                ops.order_updated(o);
                Ok(number)
            })
        });
        Ok(OrderPayload::from(state, result))
    }

    /// Locked orders can only be processed through the API.
    async fn set_orders_lock(
        &self,
        ctx: &Context<'_>,
        input: SetOrdersLockInput,
    ) -> async_graphql::Result<SetOrdersLockPayload> {
        need(ctx, "Order:write", "setOrdersLock")?;
        let state = ctx.data::<Arc<SimState>>()?;
        let result = state.transact(|w| {
            let numbers = input
                .orders
                .iter()
                .map(|o| o.resolve(w))
                .collect::<Result<Vec<_>, _>>()?;
            for n in &numbers {
                w.with_order(*n, |o, ops| {
                    o.is_locked = input.is_locked;
                    ops.order_updated(o);
                    Ok(())
                })?;
            }
            Ok(numbers)
        });
        Ok(match result {
            Ok(numbers) => SetOrdersLockPayload {
                orders: numbers
                    .iter()
                    .filter_map(|n| order_view(state, *n))
                    .collect(),
                user_errors: Vec::new(),
                user_warnings: Vec::new(),
            },
            Err(e) => SetOrdersLockPayload {
                orders: Vec::new(),
                user_errors: vec![e],
                user_warnings: Vec::new(),
            },
        })
    }

    /// Hold and release, and cancelling units of lines (stock released or removed).
    async fn update_direct_to_consumer_order(
        &self,
        ctx: &Context<'_>,
        order: OrderInput,
        input: DirectToConsumerOrderUpdateInput,
    ) -> async_graphql::Result<OrderPayload> {
        need(ctx, "Order:write", "updateDirectToConsumerOrder")?;
        let state = ctx.data::<Arc<SimState>>()?;
        let result = state.transact(|w| {
            let number = order.resolve(w)?;
            w.with_order(number, |o, ops| {
                if matches!(
                    o.status,
                    OrderStatus::Shipped | OrderStatus::Archived | OrderStatus::Cancelled
                ) {
                    return Err(user_error(
                        format!("Order {number} can no longer be changed"),
                        &["order"],
                    ));
                }
                if let Some(hold) = input.is_on_hold {
                    o.is_on_hold = hold;
                }
                for c in input.cancel_lines.as_deref().unwrap_or_default() {
                    ops.cancel_line(
                        o,
                        c.line.id,
                        c.quantity,
                        c.stock_action == Some(CancelStockAction::RemoveFromStock),
                    )?;
                }
                ops.order_updated(o);
                Ok(number)
            })
        });
        Ok(OrderPayload::from(state, result))
    }

    /// Irreversible. Refused once something shipped or was captured.
    async fn cancel_direct_to_consumer_order(
        &self,
        ctx: &Context<'_>,
        id: Option<String>,
        order: Option<OrderInput>,
        input: Option<CancelOrderInput>,
    ) -> async_graphql::Result<OrderPayload> {
        need(ctx, "Order:write", "cancelDirectToConsumerOrder")?;
        let state = ctx.data::<Arc<SimState>>()?;
        let input = input.unwrap_or_default();
        let selector = match (id, order) {
            (Some(id), None) => OrderInput {
                id: Some(id),
                number: None,
            },
            (None, Some(o)) => o,
            _ => OrderInput::default(),
        };
        let result = state.transact(|w| {
            let number = selector.resolve(w)?;
            w.with_order(number, |o, ops| {
                ops.cancel_order(
                    o,
                    input
                        .email_options
                        .as_ref()
                        .and_then(|e| e.send_email)
                        .unwrap_or(false),
                    input
                        .stock_action
                        .as_ref()
                        .and_then(|s| s.remove_items_from_stock)
                        .unwrap_or(false),
                )?;
                ops.order_updated(o);
                Ok(number)
            })
        });
        Ok(OrderPayload::from(state, result))
    }

    /// A shipment of some (or all unshipped) lines; with `shippedAt` it is already sent.
    async fn create_shipment(
        &self,
        ctx: &Context<'_>,
        input: ShipmentCreateInput,
    ) -> async_graphql::Result<ShipmentPayload> {
        need(ctx, "Shipment:write", "createShipment")?;
        let state = ctx.data::<Arc<SimState>>()?;
        let declined = state.faults.read().decline_captures;
        let result = state.transact(|w| {
            let number = input.order.resolve(w)?;
            if declined && input.capture.unwrap_or(false) {
                return Err(capture_declined());
            }
            let created_at = time_or_error(input.created_at.as_deref(), &["input", "createdAt"])?;
            let shipped_at = time_or_error(input.shipped_at.as_deref(), &["input", "shippedAt"])?;
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
        Ok(ShipmentPayload::from(state, result))
    }

    async fn update_shipment(
        &self,
        ctx: &Context<'_>,
        id: i64,
        input: ShipmentUpdateInput,
    ) -> async_graphql::Result<ShipmentPayload> {
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
        Ok(ShipmentPayload::from(state, result))
    }

    async fn capture_shipment(
        &self,
        ctx: &Context<'_>,
        id: i64,
    ) -> async_graphql::Result<ShipmentPayload> {
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
        Ok(ShipmentPayload::from(state, result))
    }

    /// Shipped with tracking; the last completed shipment completes the order.
    async fn complete_shipment(
        &self,
        ctx: &Context<'_>,
        id: i64,
        input: Option<ShipmentCompleteInput>,
    ) -> async_graphql::Result<ShipmentPayload> {
        need(ctx, "Shipment:write", "completeShipment")?;
        let state = ctx.data::<Arc<SimState>>()?;
        let input = input.unwrap_or_default();
        let result = state.transact(|w| {
            let shipped_at = time_or_error(input.shipped_at.as_deref(), &["input", "shippedAt"])?
                .unwrap_or_else(Utc::now);
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
        Ok(ShipmentPayload::from(state, result))
    }

    async fn create_return(
        &self,
        ctx: &Context<'_>,
        input: ReturnCreateInput,
    ) -> async_graphql::Result<ReturnPayload> {
        need(ctx, "Return:write", "createReturn")?;
        let state = ctx.data::<Arc<SimState>>()?;
        let policy = &input.return_stock_action_policy;
        let result = match (
            policy.release_items_back_to_warehouse.unwrap_or(false),
            policy.remove_items_from_stock.unwrap_or(false),
        ) {
            (true, false) | (false, true) => {
                let lines: Vec<(i64, i64)> = input
                    .lines
                    .iter()
                    .map(|l| (l.shipment_line.id, l.quantity))
                    .collect();
                let release = policy.release_items_back_to_warehouse.unwrap_or(false);
                state.transact(|w| {
                    w.ops
                        .create_return(input.shipment.id, &lines, release, input.comment.clone())
                })
            }
            _ => Err(user_error(
                "Exactly one stock action should be provided",
                &["input", "returnStockActionPolicy"],
            )),
        };
        Ok(ReturnPayload::from(state, result))
    }

    async fn complete_return(
        &self,
        ctx: &Context<'_>,
        id: i64,
        input: Option<ReturnCompleteInput>,
    ) -> async_graphql::Result<ReturnPayload> {
        need(ctx, "Return:write", "completeReturn")?;
        let state = ctx.data::<Arc<SimState>>()?;
        let send_email = input.and_then(|i| i.send_email).unwrap_or(false);
        let result = state.transact(|w| {
            let number = w
                .ops
                .returns
                .get(&id)
                .map(|r| r.order_number)
                .ok_or_else(|| user_error(format!("Return {id} not found"), &["id"]))?;
            let order = w.order(number)?.clone();
            w.ops.complete_return(&order, id, send_email)?;
            Ok(id)
        });
        Ok(ReturnPayload::from(state, result))
    }

    /// Absolute stock per size in one warehouse. Bundles and unknown sizes are skipped with
    /// a warning ([INF]), so one bad row does not block a batch.
    async fn set_stock(
        &self,
        ctx: &Context<'_>,
        input: StockSetInput,
    ) -> async_graphql::Result<StockSetPayload> {
        need(ctx, "StockChange:write", "setStock")?;
        let state = ctx.data::<Arc<SimState>>()?;
        let outcome = state.ops_mut(|ops| {
            let warehouse = warehouse_id(ops, &input.warehouse, "warehouse")?;
            let mut warnings = Vec::new();
            let mut levels = Vec::new();
            for (i, row) in input
                .product_sizes
                .as_deref()
                .unwrap_or_default()
                .iter()
                .enumerate()
            {
                let index = i.to_string();
                if row.quantity < 0 {
                    return Err(user_error(
                        "Quantity must be 0 or more",
                        &["input", "productSizes", &index, "quantity"],
                    ));
                }
                match size_index(ops, &row.product_size)? {
                    Some(size) if ops.sizes[size].components.is_empty() => {
                        levels.push((size, row.quantity));
                    }
                    Some(size) => warnings.push(crate::ops::user_warning(
                        format!(
                            "{} is a bundle; its stock comes from its components, skipped",
                            ops.sizes[size].sku
                        ),
                        &["input", "productSizes", &index],
                    )),
                    None => warnings.push(crate::ops::user_warning(
                        "Product size not found, skipped",
                        &["input", "productSizes", &index],
                    )),
                }
            }
            let id = ops.set_stock(
                warehouse,
                &input.description,
                input.stock_quantity_type == StockQuantityType::FreeToAllocate,
                &levels,
            );
            Ok((id, warnings))
        });
        Ok(match outcome {
            Ok((id, warnings)) => StockSetPayload {
                stock_changes: vec![StockChangeRef { id }],
                user_errors: Vec::new(),
                user_warnings: warnings,
            },
            Err(e) => StockSetPayload {
                stock_changes: Vec::new(),
                user_errors: vec![e],
                user_warnings: Vec::new(),
            },
        })
    }

    /// Stock in (`intoWarehouse`), out (`outFromWarehouse`), or a transfer (both).
    async fn change_stock(
        &self,
        ctx: &Context<'_>,
        input: StockChangeInput,
    ) -> async_graphql::Result<StockChangePayload> {
        need(ctx, "StockChange:write", "changeStock")?;
        let state = ctx.data::<Arc<SimState>>()?;
        let outcome = state.ops_mut(|ops| {
            let into = input
                .into_warehouse
                .as_ref()
                .map(|w| warehouse_id(ops, w, "intoWarehouse"))
                .transpose()?;
            let out = input
                .out_from_warehouse
                .as_ref()
                .map(|w| warehouse_id(ops, w, "outFromWarehouse"))
                .transpose()?;
            if into.is_none() && out.is_none() {
                return Err(user_error(
                    "Provide intoWarehouse, outFromWarehouse or both",
                    &["input"],
                ));
            }
            let mut changes = Vec::new();
            for (i, row) in input
                .product_sizes
                .as_deref()
                .unwrap_or_default()
                .iter()
                .enumerate()
            {
                let index = i.to_string();
                if row.delivered_quantity <= 0 {
                    return Err(user_error(
                        "deliveredQuantity must be positive",
                        &["input", "productSizes", &index, "deliveredQuantity"],
                    ));
                }
                match size_index(ops, &row.product_size)? {
                    Some(size) if ops.sizes[size].components.is_empty() => {
                        changes.push((size, row.delivered_quantity));
                    }
                    _ => {
                        return Err(user_error(
                            "Product size not found or a bundle",
                            &["input", "productSizes", &index, "productSize"],
                        ));
                    }
                }
            }
            ops.change_stock(into, out, &input.description, &changes)
        });
        Ok(match outcome {
            Ok(id) => StockChangePayload {
                stock_change: Some(StockChangeRef { id }),
                user_errors: Vec::new(),
                user_warnings: Vec::new(),
            },
            Err(e) => StockChangePayload {
                stock_change: None,
                user_errors: vec![e],
                user_warnings: Vec::new(),
            },
        })
    }

    /// Additive and idempotent; the token's integration owns the queue.
    async fn set_event_listeners(
        &self,
        ctx: &Context<'_>,
        input: Vec<EventListenerInput>,
    ) -> async_graphql::Result<EventListenersPayload> {
        need(ctx, "Event:write", "setEventListeners")?;
        let state = ctx.data::<Arc<SimState>>()?;
        let name = integration(ctx);
        let wanted = input
            .into_iter()
            .map(|l| (l.object_type, l.change_types.unwrap_or_default()))
            .collect();
        let listeners = state.ops_mut(|ops| ops.set_listeners(&name, wanted));
        Ok(EventListenersPayload {
            event_listeners: listeners
                .into_iter()
                .map(|l| EventListenerView::new(&name, l))
                .collect(),
            user_errors: Vec::new(),
            user_warnings: Vec::new(),
        })
    }

    /// Removes listeners and deletes their queued events.
    async fn unset_event_listeners(
        &self,
        ctx: &Context<'_>,
        input: Vec<EventListenerUnsetInput>,
    ) -> async_graphql::Result<EventListenersPayload> {
        need(ctx, "Event:write", "unsetEventListeners")?;
        let state = ctx.data::<Arc<SimState>>()?;
        let name = integration(ctx);
        let types: Vec<EventObjectType> = input.iter().map(|i| i.object_type).collect();
        let listeners = state.ops_mut(|ops| ops.unset_listeners(&name, &types));
        Ok(EventListenersPayload {
            event_listeners: listeners
                .into_iter()
                .map(|l| EventListenerView::new(&name, l))
                .collect(),
            user_errors: Vec::new(),
            user_warnings: Vec::new(),
        })
    }

    /// Every processed event must be confirmed, or `events` keeps returning it.
    async fn confirm_events(
        &self,
        ctx: &Context<'_>,
        input: ConfirmEventsInput,
    ) -> async_graphql::Result<ConfirmEventsPayload> {
        need(ctx, "Event:write", "confirmEvents")?;
        let state = ctx.data::<Arc<SimState>>()?;
        let name = integration(ctx);
        let warnings = state.ops_mut(|ops| ops.confirm_events(&name, &input.events_ids));
        Ok(ConfirmEventsPayload {
            user_errors: Vec::new(),
            user_warnings: warnings,
        })
    }
}
