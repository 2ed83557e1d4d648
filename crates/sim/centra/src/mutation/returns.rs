//! Return mutations: create and complete.

use std::sync::Arc;

use async_graphql::{Context, InputObject, Object, SimpleObject};

use rust_decimal::Decimal;

use crate::auth::need;
use crate::ops::{ShippingRefund, UserError, UserWarning, user_error};
use crate::queries::ReturnView;
use crate::schema::MonetaryValueInput;
use crate::state::SimState;

use super::IdInput;

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

/// `ReturnCostPolicyInput` (`shippingCost`, `handlingCost`, `voucherValue`): an amount, or
/// what the shipment carried. The simulator keeps the shipping one.
#[derive(InputObject, Default)]
pub struct ReturnCostPolicyInput {
    pub value: Option<MonetaryValueInput>,
    pub from_shipment: Option<bool>,
}

#[derive(InputObject)]
pub struct ReturnCreateInput {
    pub shipment: IdInput,
    pub lines: Vec<ReturnLineCreateInput>,
    pub return_stock_action_policy: StockPolicyActionInput,
    pub shipping_cost: Option<ReturnCostPolicyInput>,
    pub comment: Option<String>,
}

/// The shipping refund asked for. Centra's `MonetaryValueInput.value` is a GraphQL `Float`:
/// it is read as the decimal it was written as, rounded to cents, never computed with.
fn shipping_refund(
    policy: Option<&ReturnCostPolicyInput>,
    order_shipping: Decimal,
) -> Result<ShippingRefund, UserError> {
    let Some(policy) = policy else {
        return Ok(ShippingRefund::None);
    };
    match (&policy.value, policy.from_shipment.unwrap_or(false)) {
        (Some(_), true) => Err(user_error(
            "Give either a value or fromShipment, not both",
            &["input", "shippingCost"],
        )),
        (Some(v), false) => Decimal::from_str_exact(&v.value.to_string())
            .map(|d| ShippingRefund::Value(d.round_dp(2)))
            .map_err(|_| user_error("Not a monetary value", &["input", "shippingCost", "value"])),
        (None, true) => Ok(ShippingRefund::FromShipment { order_shipping }),
        (None, false) => Ok(ShippingRefund::None),
    }
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

#[derive(Default)]
pub struct ReturnMutation;

#[Object]
impl ReturnMutation {
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
                    let number = w
                        .ops
                        .shipments
                        .get(&input.shipment.id)
                        .map(|s| s.order_number);
                    let order_shipping = match number {
                        Some(n) => w.order(n)?.shipping,
                        None => Decimal::ZERO,
                    };
                    let refund = shipping_refund(input.shipping_cost.as_ref(), order_shipping)?;
                    w.ops.create_return(
                        input.shipment.id,
                        &lines,
                        release,
                        refund,
                        input.comment.clone(),
                    )
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
}
