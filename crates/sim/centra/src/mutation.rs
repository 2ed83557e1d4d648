//! Mutations of the simulated Integration API. Business errors come back as `userErrors`
//! in an HTTP 200 answer, as Centra does.

use std::sync::Arc;

use async_graphql::{Context, InputObject, Object, SimpleObject};

use crate::model::OrderStatus;
use crate::schema::{DirectToConsumerOrder, OrderIface};
use crate::state::SimState;

#[derive(SimpleObject, Clone)]
pub struct UserError {
    pub message: String,
    pub path: Vec<String>,
}

#[derive(SimpleObject, Clone)]
pub struct UserWarning {
    pub message: String,
    pub path: Vec<String>,
}

fn user_error(message: impl Into<String>, path: &[&str]) -> UserError {
    UserError {
        message: message.into(),
        path: path.iter().map(|p| (*p).to_owned()).collect(),
    }
}

/// Exactly one of `id` or `number`.
#[derive(InputObject, Default)]
pub struct OrderInput {
    pub id: Option<String>,
    pub number: Option<i64>,
}

impl OrderInput {
    fn resolve(&self, state: &SimState) -> Result<i64, UserError> {
        match (&self.id, self.number) {
            (Some(id), None) => state
                .order_by_id(id)
                .map(|o| o.number)
                .ok_or_else(|| user_error(format!("Order {id} not found"), &["order"])),
            (None, Some(n)) if state.order(n).is_some() => Ok(n),
            (None, Some(n)) => Err(user_error(format!("Order {n} not found"), &["order"])),
            _ => Err(user_error(
                "Exactly one input field should be provided",
                &["order"],
            )),
        }
    }
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

impl OrderPayload {
    fn ok(state: &SimState, number: i64) -> Self {
        OrderPayload {
            order: state
                .order(number)
                .map(|o| OrderIface::DirectToConsumerOrder(DirectToConsumerOrder(o))),
            user_errors: Vec::new(),
            user_warnings: Vec::new(),
        }
    }

    fn failed(error: UserError) -> Self {
        OrderPayload {
            order: None,
            user_errors: vec![error],
            user_warnings: Vec::new(),
        }
    }
}

#[derive(InputObject, Default)]
pub struct DirectToConsumerOrderUpdateInput {
    pub is_on_hold: Option<bool>,
    pub hold_status_change_reason: Option<String>,
}

pub struct Mutation;

#[Object]
impl Mutation {
    /// PENDING → CONFIRMED. "The only time in Centra when you set the order status directly."
    async fn confirm_order(
        &self,
        ctx: &Context<'_>,
        input: ConfirmOrderInput,
    ) -> async_graphql::Result<OrderPayload> {
        let state = ctx.data::<Arc<SimState>>()?;
        let number = match input.order.resolve(state) {
            Ok(n) => n,
            Err(e) => return Ok(OrderPayload::failed(e)),
        };
        let result = state.update(number, |o| {
            if o.status == OrderStatus::Pending {
                o.status = OrderStatus::Confirmed;
                Ok(())
            } else {
                Err(user_error(
                    format!(
                        "Order {number} is {:?}; only PENDING orders can be confirmed",
                        o.status
                    ),
                    &["order"],
                ))
            }
        });
        Ok(match result {
            Some(Ok(_)) => OrderPayload::ok(state, number),
            Some(Err(e)) => OrderPayload::failed(e),
            None => {
                OrderPayload::failed(user_error(format!("Order {number} not found"), &["order"]))
            }
        })
    }

    /// Hold and release (line cancellations come with the full simulator).
    async fn update_direct_to_consumer_order(
        &self,
        ctx: &Context<'_>,
        order: OrderInput,
        input: DirectToConsumerOrderUpdateInput,
    ) -> async_graphql::Result<OrderPayload> {
        let state = ctx.data::<Arc<SimState>>()?;
        let number = match order.resolve(state) {
            Ok(n) => n,
            Err(e) => return Ok(OrderPayload::failed(e)),
        };
        let result = state.update(number, |o| {
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
            Ok(())
        });
        Ok(match result {
            Some(Ok(_)) => OrderPayload::ok(state, number),
            Some(Err(e)) => OrderPayload::failed(e),
            None => {
                OrderPayload::failed(user_error(format!("Order {number} not found"), &["order"]))
            }
        })
    }
}
