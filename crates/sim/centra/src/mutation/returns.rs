//! Return mutations: create and complete.

use std::sync::Arc;

use async_graphql::{Context, InputObject, Object, SimpleObject};

use crate::auth::need;
use crate::ops::{UserError, UserWarning, user_error};
use crate::queries::ReturnView;
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
}
