//! Order mutations: confirm, lock, hold and cancel lines, cancel the order.

use std::sync::Arc;

use async_graphql::{Context, Enum, InputObject, Object, SimpleObject};

use crate::auth::need;
use crate::model::OrderStatus;
use crate::ops::{UserError, UserWarning, user_error};
use crate::schema::{DirectToConsumerOrder, OrderIface};
use crate::state::SimState;

use super::{IdInput, OrderInput};

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

#[derive(Default)]
pub struct OrderMutation;

#[Object]
impl OrderMutation {
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
}
