//! The GraphQL schema of the simulated Integration API, answering the contract query
//! (`order-snapshot.graphql`) field for field. The SDL it prints is checked in as
//! `crates/sim/centra/schema.graphql`.

// async-graphql's derive takes repeated `field(...)` / `arg(...)` attributes by design;
// clippy mistakes them for duplicates.
#![allow(clippy::duplicated_attributes)]

use std::str::FromStr;
use std::sync::Arc;

use async_graphql::{
    Context, EmptySubscription, Enum, InputObject, InputValueError, InputValueResult, Interface,
    Object, Scalar, ScalarType, Schema, Value,
};
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;

use crate::model::{self, Order, OrderLine, OrderStatus};
use crate::state::SimState;

pub type CentraSchema = Schema<QueryRoot, crate::mutation::Mutation, EmptySubscription>;

/// Orders and the back office, as one query type.
#[derive(async_graphql::MergedObject, Default)]
#[graphql(name = "Query")]
pub struct QueryRoot(OrderQuery, crate::queries::OpsQuery);

pub fn build(state: Arc<SimState>) -> CentraSchema {
    Schema::build_with_ignore_name_conflicts(
        QueryRoot::default(),
        crate::mutation::Mutation::default(),
        EmptySubscription,
        ["Float"],
    )
    .data(state)
    .extension(async_graphql::extensions::Analyzer)
    .limit_depth(16)
    .finish()
}

mod lines;
mod market;
mod money;
mod order;
mod scalars;

pub use lines::*;
pub use market::*;
pub use money::*;
pub use order::*;
pub use scalars::*;

/// `MonetaryValueInput` (e.g. `internalShippingCost`, `unitCost`): accepted, not kept.
#[derive(InputObject, Default, Clone)]
pub struct MonetaryValueInput {
    pub value: f64,
    pub currency_iso_code: String,
}

/// A time range (`{ from, to }`, each optional).
#[derive(InputObject, Default)]
pub struct DateRange {
    pub from: Option<DateTimeTz>,
    pub to: Option<DateTimeTz>,
}

impl DateRange {
    pub fn contains(&self, at: chrono::DateTime<chrono::Utc>) -> bool {
        self.from.is_none_or(|f| at >= f.0) && self.to.is_none_or(|t| at <= t.0)
    }
}

#[derive(InputObject, Default)]
pub struct OrderFilter {
    pub id: Option<Vec<String>>,
    pub number: Option<Vec<i64>>,
    pub status: Option<Vec<OrderStatus>>,
    pub store_type: Option<StoreType>,
    pub created_at: Option<DateRange>,
    /// Centra's filter for "changed since"; used by Ferry's periodic resync.
    pub updated_at: Option<DateRange>,
    pub order_date: Option<DateRange>,
}

#[derive(Default)]
pub struct OrderQuery;

/// The permissions reading orders takes, by what the query selects.
pub(crate) fn order_permissions(ctx: &Context<'_>, field: &str) -> async_graphql::Result<()> {
    crate::auth::need(ctx, "Order:read", field)?;
    let look = ctx.look_ahead();
    if look.field("shippingAddress").exists() {
        crate::auth::need(ctx, "Order.shippingAddress:read", field)?;
    }
    if look.field("billingAddress").exists() {
        crate::auth::need(ctx, "Order.billingAddress:read", field)?;
    }
    if look.field("customer").exists() {
        crate::auth::need(ctx, "Purchaser:read", field)?;
    }
    Ok(())
}

#[Object]
impl OrderQuery {
    /// Orders by filter, oldest number first; `page` is 1-based, `limit` 1–200. Complexity:
    /// nested lists multiply (Centra's docs), each paginated list by its `limit`.
    #[graphql(complexity = "limit.max(1) as usize * child_complexity + 1")]
    async fn orders(
        &self,
        ctx: &Context<'_>,
        #[graphql(name = "where")] filter: Option<OrderFilter>,
        #[graphql(default = 20)] limit: i32,
        #[graphql(default = 1)] page: i32,
    ) -> async_graphql::Result<Vec<OrderIface>> {
        if !(1..=200).contains(&limit) {
            return Err("Limit must be in range 1 - 200".into());
        }
        if page < 1 {
            return Err("Page must be 1 or more".into());
        }
        order_permissions(ctx, "orders")?;
        let state = ctx.data::<Arc<SimState>>()?;
        let filter = filter.unwrap_or_default();
        let orders = state.find_orders(&filter, limit as usize, page as usize);
        Ok(orders
            .into_iter()
            .map(|o| OrderIface::DirectToConsumerOrder(DirectToConsumerOrder(o)))
            .collect())
    }

    /// One order by its hash id.
    async fn order(
        &self,
        ctx: &Context<'_>,
        id: String,
    ) -> async_graphql::Result<Option<OrderIface>> {
        order_permissions(ctx, "order")?;
        let state = ctx.data::<Arc<SimState>>()?;
        Ok(state
            .order_by_id(&id)
            .map(|o| OrderIface::DirectToConsumerOrder(DirectToConsumerOrder(o))))
    }
}
