//! Queries of the back office: shipments, returns, stock per size, warehouses, the Events
//! queue and the rate-limit buckets.

use std::sync::Arc;

use async_graphql::{Context, InputObject, Object, SimpleObject, Union};

use crate::auth::{integration, need};
use crate::limits::RateLimit;
use crate::ops::{self, EventChangeType, EventObjectType, Listener};
use crate::schema::{DirectToConsumerOrder, ProductSize};
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

/// A direct-to-consumer shipment.
pub struct ShipmentView(ops::Shipment);

impl ShipmentView {
    pub fn load(state: &SimState, id: i64) -> Option<ShipmentView> {
        state.ops(|o| o.shipments.get(&id).cloned().map(ShipmentView))
    }
}

#[Object(name = "Shipment")]
impl ShipmentView {
    async fn id(&self) -> i64 {
        self.0.id
    }
    /// `<order number>-<n>`.
    async fn number(&self) -> &str {
        &self.0.number
    }
    async fn created_at(&self) -> String {
        time(&self.0.created_at)
    }
    async fn updated_at(&self) -> String {
        time(&self.0.updated_at)
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
    async fn paid_at(&self) -> Option<String> {
        self.0.paid_at.as_ref().map(time)
    }
    async fn is_captured(&self) -> bool {
        self.0.is_captured
    }
    async fn captured_at(&self) -> Option<String> {
        self.0.captured_at.as_ref().map(time)
    }
    async fn shipped_at(&self) -> Option<String> {
        self.0.shipped_at.as_ref().map(time)
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
    async fn shipment(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<ShipmentView>> {
        let state = ctx.data::<Arc<SimState>>()?;
        Ok(ShipmentView::load(state, self.0.shipment_id))
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
    Shipment(ShipmentView),
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
    async fn created_at(&self) -> String {
        time(&self.0.created_at)
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
            EventObjectType::Shipment => {
                ShipmentView::load(state, self.0.reference).map(EventTarget::Shipment)
            }
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
}

#[derive(InputObject, Default)]
pub struct ProductSizeFilter {
    pub id: Option<Vec<i64>>,
    #[graphql(name = "SKU")]
    pub sku: Option<Vec<String>>,
}

#[derive(InputObject, Default)]
pub struct ShipmentFilter {
    pub id: Option<Vec<i64>>,
    pub order_number: Option<Vec<i64>>,
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
        Ok(state.ops(|o| {
            let indexes: Vec<usize> = match (&filter.id, &filter.sku) {
                (Some(ids), _) => ids
                    .iter()
                    .filter_map(|id| usize::try_from(id - 1).ok().filter(|i| *i < o.sizes.len()))
                    .collect(),
                (None, Some(skus)) => skus.iter().filter_map(|s| o.size_by_sku(s)).collect(),
                (None, None) => (0..o.sizes.len()).collect(),
            };
            indexes
                .into_iter()
                .skip(skip)
                .take(limit)
                .map(|i| ProductSize::catalogue(&o.sizes[i]))
                .collect()
        }))
    }

    async fn shipments(
        &self,
        ctx: &Context<'_>,
        #[graphql(name = "where")] filter: Option<ShipmentFilter>,
        #[graphql(default = 20)] limit: i32,
        #[graphql(default = 1)] page: i32,
    ) -> async_graphql::Result<Vec<ShipmentView>> {
        need(ctx, "Shipment:read", "shipments")?;
        let (limit, skip) = page_bounds(limit, page)?;
        let state = ctx.data::<Arc<SimState>>()?;
        let filter = filter.unwrap_or_default();
        Ok(state.ops(|o| {
            o.shipments
                .values()
                .filter(|s| filter.id.as_ref().is_none_or(|ids| ids.contains(&s.id)))
                .filter(|s| {
                    filter
                        .order_number
                        .as_ref()
                        .is_none_or(|n| n.contains(&s.order_number))
                })
                .skip(skip)
                .take(limit)
                .cloned()
                .map(ShipmentView)
                .collect()
        }))
    }

    /// The oldest events this integration has not confirmed.
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
        Ok(state.ops(|o| {
            o.events(
                &name,
                filter.object_type.as_deref(),
                filter.change_type.as_deref(),
                limit,
            )
            .into_iter()
            .map(EventView)
            .collect()
        }))
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
