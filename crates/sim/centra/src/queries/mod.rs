//! Queries of the back office: shipments, returns, stock per size, warehouses, the Events
//! queue and the rate-limit buckets.

// async-graphql's interface derive repeats `ty = "…"` for fields of one type.
#![allow(clippy::duplicated_attributes)]

use std::sync::Arc;

use async_graphql::{Context, InputObject, Object, SimpleObject, Union};

use crate::auth::{integration, need};
use crate::limits::RateLimit;
use crate::ops::{self, EventChangeType, EventObjectType, Listener};
use crate::schema::{DateRange, DateTimeTz, DirectToConsumerOrder, ProductSize};
use crate::state::SimState;

mod views;

pub use views::*;

#[derive(InputObject, Default)]
pub struct EventFilter {
    pub object_type: Option<Vec<EventObjectType>>,
    pub change_type: Option<Vec<EventChangeType>>,
    pub store_id: Option<Vec<i64>>,
    pub market_id: Option<Vec<i64>>,
}

/// A text condition: "Exactly one input field should be provided".
#[derive(InputObject, Default, Clone)]
pub struct StringMatch {
    pub equals: Option<String>,
    pub contains: Option<String>,
}

impl StringMatch {
    fn check(&self, field: &str) -> async_graphql::Result<()> {
        if self.equals.is_some() == self.contains.is_some() {
            return Err(format!("{field}: exactly one input field should be provided").into());
        }
        Ok(())
    }

    fn matches(&self, text: &str) -> bool {
        match (&self.equals, &self.contains) {
            (Some(e), _) => text == e,
            (None, Some(c)) => text.contains(c.as_str()),
            (None, None) => true,
        }
    }
}

/// Centra's documented `ProductSizeFilter`; the simulator filters by `id`, `SKU`, `EAN` and
/// `sizeNumber`, and says so when asked for more.
#[derive(InputObject, Default)]
pub struct ProductSizeFilter {
    pub id: Option<Vec<i64>>,
    pub description: Option<StringMatch>,
    #[graphql(name = "EAN")]
    pub ean: Option<StringMatch>,
    #[graphql(name = "UPC")]
    pub upc: Option<StringMatch>,
    #[graphql(name = "SKU")]
    pub sku: Option<StringMatch>,
    pub size_number: Option<StringMatch>,
    pub preorder: Option<bool>,
    pub size_id: Option<Vec<i64>>,
    pub search: Option<String>,
    pub not_null: Option<Vec<String>>,
    pub negate: Option<Vec<String>>,
    pub is_active: Option<bool>,
    pub updated_at: Option<DateRange>,
}

/// Centra's documented `ShipmentFilter` (`orderId` is the order's hash id); the simulator
/// filters by the fields Ferry and the documented examples use, and says so when asked for
/// the others.
#[derive(InputObject, Default)]
pub struct ShipmentFilter {
    pub id: Option<Vec<i64>>,
    pub number: Option<Vec<String>>,
    pub created_at: Option<DateRange>,
    pub updated_at: Option<DateRange>,
    pub is_good_to_go: Option<bool>,
    pub is_shipped: Option<bool>,
    pub shipped_at: Option<DateRange>,
    pub is_paid: Option<bool>,
    pub is_captured: Option<bool>,
    pub tracking_number: Option<Vec<String>>,
    pub customer_id: Option<Vec<i64>>,
    pub order_id: Option<Vec<String>>,
    pub store_id: Option<Vec<i64>>,
    pub store_type: Option<crate::schema::StoreType>,
    pub external_id: Option<Vec<String>>,
    pub search: Option<String>,
    pub not_null: Option<Vec<String>>,
    pub negate: Option<Vec<String>>,
}

/// Refuses a filter field the simulator does not implement (rather than ignore it and
/// answer with more than was asked for).
/// `ReturnFilter` [CODE: `returns(where: {id: $id})`, `{customerId, storeType}`,
/// `{createdAt: {from, to}}`]: the simulator answers by id and creation time.
#[derive(InputObject, Default)]
pub struct ReturnFilter {
    pub id: Option<Vec<i64>>,
    pub created_at: Option<DateRange>,
    pub customer_id: Option<Vec<i64>>,
    pub store_type: Option<crate::schema::StoreType>,
}

/// `CustomerFilter` [INF: by id and e-mail, as `customers(where: {email: {equals}})`].
#[derive(InputObject, Default)]
pub struct CustomerFilter {
    pub id: Option<Vec<i64>>,
}

pub(crate) fn not_simulated(set: bool, what: &str) -> async_graphql::Result<()> {
    if set {
        return Err(format!("the simulator does not filter by {what}").into());
    }
    Ok(())
}

pub(crate) fn page_bounds(limit: i32, page: i32) -> async_graphql::Result<(usize, usize)> {
    if !(1..=200).contains(&limit) {
        return Err("Limit must be in range 1 - 200".into());
    }
    if page < 1 {
        return Err("Page must be 1 or more".into());
    }
    Ok((limit as usize, (page as usize - 1) * limit as usize))
}

#[derive(Default)]
pub struct OpsQuery;

#[Object]
impl OpsQuery {
    /// The six buckets; needs no permission, and is itself rate limited.
    async fn rate_limits(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<RateLimit>> {
        let state = ctx.data::<Arc<SimState>>()?;
        Ok(state.limits.view())
    }

    async fn warehouses(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<WarehouseView>> {
        need(ctx, "Warehouse:read", "warehouses")?;
        let state = ctx.data::<Arc<SimState>>()?;
        Ok(state.ops(|o| {
            o.warehouses
                .iter()
                .map(|w| WarehouseView {
                    id: w.id,
                    name: w.name.clone(),
                })
                .collect()
        }))
    }

    /// Sizes by id or SKU, in catalogue order; paginate with `page`.
    #[graphql(complexity = "limit.max(1) as usize * child_complexity + 1")]
    async fn product_sizes(
        &self,
        ctx: &Context<'_>,
        #[graphql(name = "where")] filter: Option<ProductSizeFilter>,
        #[graphql(default = 20)] limit: i32,
        #[graphql(default = 1)] page: i32,
    ) -> async_graphql::Result<Vec<ProductSize>> {
        need(ctx, "ProductSize:read", "productSizes")?;
        let (limit, skip) = page_bounds(limit, page)?;
        let state = ctx.data::<Arc<SimState>>()?;
        let filter = filter.unwrap_or_default();
        for (m, name) in [
            (&filter.sku, "SKU"),
            (&filter.ean, "EAN"),
            (&filter.size_number, "sizeNumber"),
        ] {
            if let Some(m) = m {
                m.check(name)?;
            }
        }
        not_simulated(
            filter.description.is_some()
                || filter.upc.is_some()
                || filter.preorder.is_some()
                || filter.size_id.is_some()
                || filter.search.is_some()
                || filter.not_null.is_some()
                || filter.negate.is_some()
                || filter.is_active.is_some()
                || filter.updated_at.is_some(),
            "description, UPC, preorder, sizeId, search, notNull, negate, isActive or updatedAt",
        )?;
        Ok(state.ops(|o| {
            o.sizes
                .iter()
                .enumerate()
                .filter(|(_, s)| filter.id.as_ref().is_none_or(|ids| ids.contains(&s.id)))
                .filter(|(_, s)| filter.sku.as_ref().is_none_or(|m| m.matches(&s.sku)))
                .filter(|(_, s)| filter.ean.as_ref().is_none_or(|m| m.matches(&s.ean)))
                .filter(|(_, s)| {
                    filter
                        .size_number
                        .as_ref()
                        .is_none_or(|m| m.matches(&s.size_number))
                })
                .skip(skip)
                .take(limit)
                .map(|(i, _)| ProductSize::catalogue(&o.sizes[i]))
                .collect()
        }))
    }

    #[graphql(complexity = "limit.max(1) as usize * child_complexity + 1")]
    async fn shipments(
        &self,
        ctx: &Context<'_>,
        #[graphql(name = "where")] filter: Option<ShipmentFilter>,
        #[graphql(default = 20)] limit: i32,
        #[graphql(default = 1)] page: i32,
    ) -> async_graphql::Result<Vec<ShipmentIface>> {
        need(ctx, "Shipment:read", "shipments")?;
        let (limit, skip) = page_bounds(limit, page)?;
        let state = ctx.data::<Arc<SimState>>()?;
        let filter = filter.unwrap_or_default();
        not_simulated(
            filter.created_at.is_some()
                || filter.updated_at.is_some()
                || filter.shipped_at.is_some()
                || filter.customer_id.is_some()
                || filter.external_id.is_some()
                || filter.search.is_some()
                || filter.not_null.is_some()
                || filter.negate.is_some(),
            "createdAt, updatedAt, shippedAt, customerId, externalId, search, notNull or negate",
        )?;
        // Order hash ids → numbers, before the back office is locked.
        let numbers: Option<Vec<i64>> = filter.order_id.as_ref().map(|ids| {
            ids.iter()
                .filter_map(|id| state.order_by_id(id).map(|o| o.number))
                .collect()
        });
        let direct_to_consumer = filter
            .store_type
            .is_none_or(|t| t == crate::schema::StoreType::DirectToConsumer)
            && filter.store_id.as_ref().is_none_or(|ids| ids.contains(&1));
        Ok(state.ops(|o| {
            o.shipments
                .values()
                .filter(|_| direct_to_consumer)
                .filter(|s| filter.id.as_ref().is_none_or(|ids| ids.contains(&s.id)))
                .filter(|s| filter.number.as_ref().is_none_or(|n| n.contains(&s.number)))
                .filter(|s| numbers.as_ref().is_none_or(|n| n.contains(&s.order_number)))
                .filter(|s| {
                    filter.tracking_number.as_ref().is_none_or(|t| {
                        s.tracking_number
                            .as_ref()
                            .is_some_and(|mine| t.contains(mine))
                    })
                })
                .filter(|s| filter.is_good_to_go.is_none_or(|b| s.is_good_to_go == b))
                .filter(|s| filter.is_shipped.is_none_or(|b| s.is_shipped == b))
                .filter(|s| filter.is_paid.is_none_or(|b| s.is_paid == b))
                .filter(|s| filter.is_captured.is_none_or(|b| s.is_captured == b))
                .skip(skip)
                .take(limit)
                .cloned()
                .map(|s| ShipmentView(s).into())
                .collect()
        }))
    }

    #[graphql(complexity = "limit.max(1) as usize * child_complexity + 1")]
    async fn returns(
        &self,
        ctx: &Context<'_>,
        #[graphql(name = "where")] filter: Option<ReturnFilter>,
        #[graphql(default = 20)] limit: i32,
        #[graphql(default = 1)] page: i32,
    ) -> async_graphql::Result<Vec<ReturnView>> {
        need(ctx, "Return:read", "returns")?;
        let (limit, skip) = page_bounds(limit, page)?;
        let state = ctx.data::<Arc<SimState>>()?;
        let filter = filter.unwrap_or_default();
        not_simulated(filter.customer_id.is_some(), "customerId")?;
        let direct_to_consumer = filter
            .store_type
            .is_none_or(|t| t == crate::schema::StoreType::DirectToConsumer);
        Ok(state.ops(|o| {
            let by_id: Box<dyn Iterator<Item = &ops::Return>> = match &filter.id {
                Some(ids) => Box::new(ids.iter().filter_map(|id| o.returns.get(id))),
                None => Box::new(o.returns.values()),
            };
            by_id
                .filter(|_| direct_to_consumer)
                .filter(|r| {
                    filter
                        .created_at
                        .as_ref()
                        .is_none_or(|range| range.contains(r.created_at))
                })
                .skip(skip)
                .take(limit)
                .cloned()
                .map(ReturnView)
                .collect()
        }))
    }

    /// Customer accounts; an erased customer is gone.
    #[graphql(complexity = "limit.max(1) as usize * child_complexity + 1")]
    async fn customers(
        &self,
        ctx: &Context<'_>,
        #[graphql(name = "where")] filter: Option<CustomerFilter>,
        #[graphql(default = 20)] limit: i32,
        #[graphql(default = 1)] page: i32,
    ) -> async_graphql::Result<Vec<crate::schema::Customer>> {
        need(ctx, "Customer:read", "customers")?;
        let (limit, skip) = page_bounds(limit, page)?;
        let state = ctx.data::<Arc<SimState>>()?;
        let filter = filter.unwrap_or_default();
        Ok(state.ops(|o| {
            let found: Box<dyn Iterator<Item = &ops::CustomerAccount>> = match &filter.id {
                Some(ids) => Box::new(ids.iter().filter_map(|id| o.customers.get(id))),
                None => Box::new(o.customers.values()),
            };
            found
                .skip(skip)
                .take(limit)
                .cloned()
                .map(crate::schema::Customer)
                .collect()
        }))
    }

    /// The oldest events this integration has not confirmed.
    #[graphql(complexity = "limit.max(1) as usize * child_complexity + 1")]
    async fn events(
        &self,
        ctx: &Context<'_>,
        #[graphql(name = "where")] filter: Option<EventFilter>,
        #[graphql(default = 20)] limit: i32,
    ) -> async_graphql::Result<Vec<EventView>> {
        need(ctx, "Event:read", "events")?;
        let (limit, _) = page_bounds(limit, 1)?;
        let state = ctx.data::<Arc<SimState>>()?;
        let name = integration(ctx);
        let filter = filter.unwrap_or_default();
        if filter
            .store_id
            .as_ref()
            .is_some_and(|ids| !ids.contains(&1))
        {
            // The simulator's only store.
            return Ok(Vec::new());
        }
        let markets = filter.market_id.clone();
        let in_market = |e: &ops::Event| {
            markets.as_ref().is_none_or(|ids| {
                e.object_type == EventObjectType::Order
                    && state
                        .order(e.reference)
                        .is_some_and(|o| ids.contains(&o.market.id))
            })
        };
        // With a market filter, read the whole queue first: markets are looked up on the
        // orders, which must not be locked while the back office is (lock order).
        let read = if markets.is_some() { usize::MAX } else { limit };
        let events = state.ops(|o| {
            o.events(
                &name,
                filter.object_type.as_deref(),
                filter.change_type.as_deref(),
                read,
            )
        });
        Ok(events
            .into_iter()
            .filter(|e| in_market(e))
            .take(limit)
            .map(EventView)
            .collect())
    }

    async fn event_listeners(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Vec<EventListenerView>> {
        need(ctx, "Event:read", "eventListeners")?;
        let state = ctx.data::<Arc<SimState>>()?;
        let name = integration(ctx);
        Ok(state.ops(|o| {
            o.integrations
                .get(&name)
                .map(|i| {
                    i.listeners
                        .iter()
                        .cloned()
                        .map(|l| EventListenerView::new(&name, l))
                        .collect()
                })
                .unwrap_or_default()
        }))
    }
}
