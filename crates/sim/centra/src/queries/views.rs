//! The back office's objects as the schema shows them: shipments, returns, stock,
//! warehouses, event listeners and events.

// async-graphql's interface derive repeats `ty = "…"` for fields of one type.
#![allow(clippy::duplicated_attributes)]

use super::*;

pub(crate) fn time(t: &chrono::DateTime<chrono::Utc>) -> String {
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
pub struct ShipmentView(pub(crate) ops::Shipment);

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

pub struct ReturnView(pub(crate) ops::Return);

/// A return's money besides its lines (the simulator keeps the shipping refund only).
pub struct ReturnTotals {
    order: Arc<crate::model::Order>,
    shipping: rust_decimal::Decimal,
}

#[Object]
impl ReturnTotals {
    async fn shipping(&self) -> crate::schema::MonetaryValue {
        crate::schema::MonetaryValue::of(&self.order, self.shipping)
    }
}

impl ReturnView {
    pub fn load(state: &SimState, id: i64) -> Option<ReturnView> {
        state.ops(|o| o.returns.get(&id).cloned().map(ReturnView))
    }

    fn state(&self) -> ReturnStatus {
        if self.0.completed {
            ReturnStatus::Completed
        } else {
            ReturnStatus::Pending
        }
    }
}

#[Object(name = "Return")]
impl ReturnView {
    async fn id(&self) -> i64 {
        self.0.id
    }
    async fn status(&self) -> ReturnStatus {
        self.state()
    }
    /// [CODE] the field community integrations read; its values are [INF].
    async fn return_status(&self) -> ReturnStatus {
        self.state()
    }
    async fn order(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Option<DirectToConsumerOrder>> {
        need(ctx, "Order:read", "Return.order")?;
        let state = ctx.data::<Arc<SimState>>()?;
        Ok(state.order(self.0.order_number).map(DirectToConsumerOrder))
    }
    /// [CODE] `totals { shipping { value } … }`: what the return refunds besides its lines.
    async fn totals(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<ReturnTotals>> {
        let state = ctx.data::<Arc<SimState>>()?;
        Ok(state.order(self.0.order_number).map(|order| ReturnTotals {
            order,
            shipping: self.0.shipping_refund,
        }))
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

pub struct EventView(pub(crate) ops::Event);

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
