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

fn time(t: &chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S+00:00").to_string()
}

#[derive(SimpleObject, Clone, Copy)]
pub struct StockChangeRef {
    pub id: i64,
}

#[derive(SimpleObject, Clone)]
pub struct CarrierInformation {
    pub carrier_name: Option<String>,
    pub service_name: Option<String>,
}

#[derive(SimpleObject, Clone, Copy)]
pub struct OrderLineRef {
    pub id: i64,
}

#[derive(SimpleObject, Clone)]
pub struct ShipmentLineView {
    pub id: i64,
    pub quantity: i64,
    pub order_line: OrderLineRef,
}

/// A direct-to-consumer shipment (`DirectToConsumerShipment implements Shipment`).
pub struct ShipmentView(ops::Shipment);

/// Centra's `Shipment` interface; the simulator has direct-to-consumer shipments only.
#[derive(async_graphql::Interface)]
#[graphql(
    name = "Shipment",
    field(name = "id", ty = "i64"),
    field(name = "number", ty = "&str"),
    field(name = "created_at", ty = "DateTimeTz"),
    field(name = "updated_at", ty = "DateTimeTz"),
    field(name = "is_good_to_go", ty = "bool"),
    field(name = "is_shipped", ty = "bool"),
    field(name = "is_paid", ty = "bool"),
    field(name = "paid_at", ty = "Option<DateTimeTz>"),
    field(name = "is_captured", ty = "bool"),
    field(name = "captured_at", ty = "Option<DateTimeTz>"),
    field(name = "shipped_at", ty = "Option<DateTimeTz>"),
    field(name = "number_of_packages", ty = "Option<i64>"),
    field(name = "tracking_number", ty = "Option<&str>"),
    field(name = "return_tracking_number", ty = "Option<&str>"),
    field(name = "additional_message", ty = "Option<&str>"),
    field(name = "carrier_information", ty = "Option<CarrierInformation>"),
    field(name = "lines", ty = "Vec<ShipmentLineView>")
)]
pub enum ShipmentIface {
    DirectToConsumerShipment(ShipmentView),
}

impl ShipmentView {
    pub fn load(state: &SimState, id: i64) -> Option<ShipmentView> {
        state.ops(|o| o.shipments.get(&id).cloned().map(ShipmentView))
    }

    pub fn order_number(&self) -> i64 {
        self.0.order_number
    }
}

#[Object(name = "DirectToConsumerShipment")]
impl ShipmentView {
    async fn id(&self) -> i64 {
        self.0.id
    }
    /// `<order number>-<n>`.
    async fn number(&self) -> &str {
        &self.0.number
    }
    async fn created_at(&self) -> DateTimeTz {
        DateTimeTz(self.0.created_at)
    }
    async fn updated_at(&self) -> DateTimeTz {
        DateTimeTz(self.0.updated_at)
    }
    async fn is_good_to_go(&self) -> bool {
        self.0.is_good_to_go
    }
    async fn is_shipped(&self) -> bool {
        self.0.is_shipped
    }
    async fn is_paid(&self) -> bool {
        self.0.is_paid
    }
    async fn paid_at(&self) -> Option<DateTimeTz> {
        self.0.paid_at.map(DateTimeTz)
    }
    async fn is_captured(&self) -> bool {
        self.0.is_captured
    }
    async fn captured_at(&self) -> Option<DateTimeTz> {
        self.0.captured_at.map(DateTimeTz)
    }
    async fn shipped_at(&self) -> Option<DateTimeTz> {
        self.0.shipped_at.map(DateTimeTz)
    }
    async fn number_of_packages(&self) -> Option<i64> {
        self.0.packages
    }
    async fn tracking_number(&self) -> Option<&str> {
        self.0.tracking_number.as_deref()
    }
    async fn return_tracking_number(&self) -> Option<&str> {
        self.0.return_tracking_number.as_deref()
    }
    async fn additional_message(&self) -> Option<&str> {
        self.0.additional_message.as_deref()
    }
    async fn carrier_information(&self) -> Option<CarrierInformation> {
        (self.0.carrier.is_some() || self.0.service.is_some()).then(|| CarrierInformation {
            carrier_name: self.0.carrier.clone(),
            service_name: self.0.service.clone(),
        })
    }
    async fn lines(&self) -> Vec<ShipmentLineView> {
        self.0
            .lines
            .iter()
            .map(|l| ShipmentLineView {
                id: l.id,
                quantity: l.quantity,
                order_line: OrderLineRef {
                    id: l.order_line_id,
                },
            })
            .collect()
    }
    async fn order(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Option<DirectToConsumerOrder>> {
        need(ctx, "Order:read", "Shipment.order")?;
        let state = ctx.data::<Arc<SimState>>()?;
        Ok(state.order(self.0.order_number).map(DirectToConsumerOrder))
    }
}

#[derive(SimpleObject, Clone)]
pub struct ReturnLineView {
    pub id: i64,
    pub quantity: i64,
    pub shipment_line: OrderLineRef,
    pub order_line: OrderLineRef,
}

#[derive(async_graphql::Enum, Clone, Copy, PartialEq, Eq)]
#[graphql(rename_items = "SCREAMING_SNAKE_CASE")]
pub enum ReturnStatus {
    Pending,
    Completed,
}

pub struct ReturnView(ops::Return);

impl ReturnView {
    pub fn load(state: &SimState, id: i64) -> Option<ReturnView> {
        state.ops(|o| o.returns.get(&id).cloned().map(ReturnView))
    }
}

#[Object(name = "Return")]
impl ReturnView {
    async fn id(&self) -> i64 {
        self.0.id
    }
    async fn status(&self) -> ReturnStatus {
        if self.0.completed {
            ReturnStatus::Completed
        } else {
            ReturnStatus::Pending
        }
    }
    async fn created_at(&self) -> String {
        time(&self.0.created_at)
    }
    async fn returned_to_stock(&self) -> bool {
        self.0.completed && self.0.release_to_stock
    }
    async fn lines(&self) -> Vec<ReturnLineView> {
        self.0
            .lines
            .iter()
            .map(|l| ReturnLineView {
                id: l.id,
                quantity: l.quantity,
                shipment_line: OrderLineRef {
                    id: l.shipment_line_id,
                },
                order_line: OrderLineRef {
                    id: l.order_line_id,
                },
            })
            .collect()
    }
    async fn shipment(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<ShipmentIface>> {
        let state = ctx.data::<Arc<SimState>>()?;
        Ok(ShipmentView::load(state, self.0.shipment_id).map(Into::into))
    }
}

#[derive(SimpleObject, Clone)]
pub struct WarehouseView {
    pub id: i64,
    pub name: String,
}

/// Stock of one size in one warehouse.
#[derive(SimpleObject, Clone)]
#[graphql(name = "Stock")]
pub struct StockView {
    pub warehouse: WarehouseView,
    pub physical_quantity: i64,
    pub free_to_allocate_quantity: i64,
    pub allocated_quantity: i64,
    pub demand_quantity: i64,
    pub available_now_quantity: i64,
}

impl StockView {
    pub fn of(ops: &ops::Ops, size: usize, warehouse: &ops::Warehouse) -> StockView {
        let level = ops.stock_of(size, warehouse.id);
        StockView {
            warehouse: WarehouseView {
                id: warehouse.id,
                name: warehouse.name.clone(),
            },
            physical_quantity: level.physical,
            free_to_allocate_quantity: level.free_to_allocate(),
            allocated_quantity: level.allocated,
            demand_quantity: level.demand,
            available_now_quantity: level.free_to_allocate() - level.demand,
        }
    }
}

#[derive(InputObject, Default)]
pub struct StockFilter {
    pub warehouse_id: Option<Vec<i64>>,
}

pub struct EventListenerView {
    integration: String,
    listener: Listener,
}

impl EventListenerView {
    pub fn new(integration: &str, listener: Listener) -> Self {
        EventListenerView {
            integration: integration.to_owned(),
            listener,
        }
    }
}

#[Object(name = "EventListener")]
impl EventListenerView {
    async fn integration_name(&self) -> &str {
        &self.integration
    }
    async fn object_type(&self) -> EventObjectType {
        self.listener.object_type
    }
    async fn change_types(&self) -> Vec<EventChangeType> {
        self.listener.change_types.clone()
    }
    async fn created_at(&self) -> String {
        time(&self.listener.created_at)
    }
    async fn updated_at(&self) -> String {
        time(&self.listener.updated_at)
    }
}

/// Centra's `Int64` scalar (`Event.objectReference`).
#[derive(Clone, Copy)]
pub struct Int64(pub i64);

#[async_graphql::Scalar(name = "Int64")]
impl async_graphql::ScalarType for Int64 {
    fn parse(value: async_graphql::Value) -> async_graphql::InputValueResult<Self> {
        match &value {
            async_graphql::Value::Number(n) => n
                .as_i64()
                .map(Int64)
                .ok_or_else(|| async_graphql::InputValueError::expected_type(value.clone())),
            _ => Err(async_graphql::InputValueError::expected_type(value)),
        }
    }
    fn to_value(&self) -> async_graphql::Value {
        async_graphql::Value::Number(self.0.into())
    }
}

/// What an event is about, in its current state (`null` when deleted).
#[derive(Union)]
pub enum EventTarget {
    DirectToConsumerOrder(DirectToConsumerOrder),
    DirectToConsumerShipment(ShipmentView),
    Return(ReturnView),
}

pub struct EventView(ops::Event);

#[Object(name = "Event")]
impl EventView {
    async fn id(&self) -> i64 {
        self.0.id
    }
    async fn object_type(&self) -> EventObjectType {
        self.0.object_type
    }
    async fn change_type(&self) -> EventChangeType {
        self.0.change_type
    }
    /// Usually the id, but the number for an order.
    async fn object_reference(&self) -> Int64 {
        Int64(self.0.reference)
    }
    async fn created_at(&self) -> DateTimeTz {
        DateTimeTz(self.0.created_at)
    }
    /// The simulator has one store.
    async fn store(&self) -> crate::schema::Store {
        crate::schema::Store
    }
    /// The order's market, for events about orders.
    async fn market(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Option<crate::schema::Market>> {
        let state = ctx.data::<Arc<SimState>>()?;
        Ok(match self.0.object_type {
            EventObjectType::Order => state.order(self.0.reference).map(crate::schema::Market),
            _ => None,
        })
    }
    async fn object(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<EventTarget>> {
        let state = ctx.data::<Arc<SimState>>()?;
        Ok(match self.0.object_type {
            EventObjectType::Order => {
                need(ctx, "Order:read", "Event.object")?;
                state
                    .order(self.0.reference)
                    .map(|o| EventTarget::DirectToConsumerOrder(DirectToConsumerOrder(o)))
            }
            EventObjectType::Shipment => ShipmentView::load(state, self.0.reference)
                .map(EventTarget::DirectToConsumerShipment),
            EventObjectType::Return => {
                ReturnView::load(state, self.0.reference).map(EventTarget::Return)
            }
            _ => None,
        })
    }
}

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
fn not_simulated(set: bool, what: &str) -> async_graphql::Result<()> {
    if set {
        return Err(format!("the simulator does not filter by {what}").into());
    }
    Ok(())
}

fn page_bounds(limit: i32, page: i32) -> async_graphql::Result<(usize, usize)> {
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
