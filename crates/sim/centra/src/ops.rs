//! Centra's back office as the simulator keeps it: the catalogue's sizes, stock per size and
//! warehouse (physical, allocated, demand; free-to-allocate derived), allocations made when
//! an order is confirmed, shipments, returns, sent emails and the Events queues.
//!
//! The rules follow `centra-integration-api.md` §6–§9 and §12.4. Where the reference marks
//! a behaviour as inferred, the choice made here is written next to it and listed in
//! `docs/centra.md`.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use async_graphql::{Enum, SimpleObject};
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::Serialize;

use crate::generate::{BUNDLES, sizes};
use crate::model::{Order, OrderStatus, PaymentEntry};

/// Units of a line's reservation taken from demand and from allocated stock.
#[derive(Debug, Clone, Copy)]
struct Taken {
    demand: i64,
    allocated: i64,
}

/// The stocked SKUs a line consumes per unit: its own, or a bundle's components.
fn stocked_parts(line: &crate::model::OrderLine) -> Vec<(String, i64)> {
    if line.bundle_items.is_empty() {
        vec![(line.sku.clone(), 1)]
    } else {
        line.bundle_items
            .iter()
            .map(|b| (b.sku.clone(), b.quantity))
            .collect()
    }
}

/// A business error, returned in `userErrors` with HTTP 200.
#[derive(SimpleObject, Clone, Debug, PartialEq, Eq, Serialize)]
pub struct UserError {
    pub message: String,
    pub path: Vec<String>,
}

/// A non-fatal remark, returned in `userWarnings`.
#[derive(SimpleObject, Clone, Debug, PartialEq, Eq, Serialize)]
pub struct UserWarning {
    pub message: String,
    pub path: Vec<String>,
}

pub fn user_error(message: impl Into<String>, path: &[&str]) -> UserError {
    UserError {
        message: message.into(),
        path: path.iter().map(|p| (*p).to_owned()).collect(),
    }
}

pub fn user_warning(message: impl Into<String>, path: &[&str]) -> UserWarning {
    UserWarning {
        message: message.into(),
        path: path.iter().map(|p| (*p).to_owned()).collect(),
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Warehouse {
    pub id: i64,
    pub name: String,
}

/// One size of the catalogue (bundles are sizes too, with components and no own stock).
#[derive(Debug, Clone, Serialize)]
pub struct SizeRecord {
    pub id: i64,
    /// The variant the size belongs to (`productVariant: { id }` with `size: { name }`).
    pub variant_id: i64,
    pub sku: String,
    pub ean: String,
    pub size_number: String,
    /// (size index, quantity per bundle) for a bundle.
    pub components: Vec<(usize, i64)>,
}

/// Stock of one size in one warehouse. Free-to-allocate = physical − allocated.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct StockLevel {
    pub physical: i64,
    pub allocated: i64,
    /// Ordered but not allocated (there was no free stock).
    pub demand: i64,
}

impl StockLevel {
    pub fn free_to_allocate(&self) -> i64 {
        self.physical - self.allocated
    }
}

/// Stock reserved for one order line (per component for a bundle line).
#[derive(Debug, Clone, Serialize)]
pub struct Allocation {
    pub line_id: i64,
    pub size: usize,
    pub warehouse: i64,
    /// Units of this size per unit of the line (bundle quantity, else 1).
    pub per_unit: i64,
    pub allocated: i64,
    pub demand: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ShipmentLine {
    pub id: i64,
    pub order_line_id: i64,
    pub quantity: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Shipment {
    pub id: i64,
    /// `<order number>-<n>`.
    pub number: String,
    pub order_number: i64,
    pub lines: Vec<ShipmentLine>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub is_good_to_go: bool,
    pub is_paid: bool,
    pub paid_at: Option<DateTime<Utc>>,
    pub is_captured: bool,
    pub captured_at: Option<DateTime<Utc>>,
    pub is_shipped: bool,
    pub shipped_at: Option<DateTime<Utc>>,
    pub carrier: Option<String>,
    pub service: Option<String>,
    pub packages: Option<i64>,
    pub tracking_number: Option<String>,
    pub return_tracking_number: Option<String>,
    pub additional_message: Option<String>,
    /// What the shipment is worth: its lines, plus the order's charges and vouchers on the
    /// first shipment ([INF] Centra: "only one shipment should carry the shipping cost").
    pub value: Decimal,
}

#[derive(Debug, Clone, Serialize)]
pub struct ReturnLine {
    pub id: i64,
    pub shipment_line_id: i64,
    pub order_line_id: i64,
    pub quantity: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Return {
    pub id: i64,
    pub shipment_id: i64,
    pub order_number: i64,
    pub lines: Vec<ReturnLine>,
    pub release_to_stock: bool,
    pub completed: bool,
    pub created_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
    pub comment: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EmailKind {
    ShippingConfirmation,
    OrderCancelled,
    ReturnCompleted,
}

/// An email Centra sent to the customer (recorded so tests can assert it).
#[derive(Debug, Clone, Serialize)]
pub struct Email {
    pub kind: EmailKind,
    pub order_number: i64,
    pub to: String,
    pub shipment_number: Option<String>,
    pub tracking_number: Option<String>,
    pub carrier: Option<String>,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize)]
pub struct StockChange {
    pub id: i64,
    pub warehouse: i64,
    pub description: String,
    /// (SKU, change in physical units).
    pub lines: Vec<(String, i64)>,
    pub at: DateTime<Utc>,
}

/// The object types the simulator raises events for (Centra's enum has many more).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Enum)]
#[graphql(rename_items = "PascalCase")]
pub enum EventObjectType {
    Order,
    Shipment,
    Return,
    ProductSize,
    StockChange,
    Customer,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Enum)]
#[graphql(rename_items = "SCREAMING_SNAKE_CASE")]
pub enum EventChangeType {
    Created,
    Updated,
    Deleted,
    Completed,
    DependentDataChanged,
}

#[derive(Debug, Clone, Serialize)]
pub struct Event {
    pub id: i64,
    pub object_type: EventObjectType,
    pub change_type: EventChangeType,
    /// The order number for orders, the id otherwise.
    pub reference: i64,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Listener {
    pub object_type: EventObjectType,
    /// Empty: every change type.
    pub change_types: Vec<EventChangeType>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Listener {
    fn wants(&self, object_type: EventObjectType, change: EventChangeType) -> bool {
        self.object_type == object_type
            && (self.change_types.is_empty() || self.change_types.contains(&change))
    }
}

/// Per integration: its listeners and its unconfirmed events.
#[derive(Debug, Default)]
pub struct Integration {
    pub listeners: Vec<Listener>,
    pending: BTreeSet<i64>,
}

/// What happened, for webhooks (the Events queue is fed directly).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Announcement {
    pub object_type: &'static str,
    pub action: &'static str,
    pub id: i64,
}

/// The back office.
#[derive(Debug)]
pub struct Ops {
    pub warehouses: Vec<Warehouse>,
    pub sizes: Vec<SizeRecord>,
    by_sku: HashMap<String, usize>,
    by_ean: HashMap<String, usize>,
    stock: HashMap<(usize, i64), StockLevel>,
    allocations: HashMap<i64, Vec<Allocation>>,
    pub shipments: BTreeMap<i64, Shipment>,
    shipments_by_order: HashMap<i64, Vec<i64>>,
    pub returns: BTreeMap<i64, Return>,
    pub emails: Vec<Email>,
    pub stock_changes: Vec<StockChange>,
    /// Events some integration still has to confirm, by id.
    events: BTreeMap<i64, Event>,
    next_event: i64,
    pub integrations: HashMap<String, Integration>,
    next_id: i64,
    /// Webhooks to send once the change is done.
    pub announcements: Vec<Announcement>,
}

/// Units each warehouse-1 size starts with.
pub const OPENING_STOCK: i64 = 1000;

impl Ops {
    pub fn new() -> Self {
        let mut ops = Ops {
            warehouses: vec![
                Warehouse {
                    id: 1,
                    name: "Main warehouse".to_owned(),
                },
                Warehouse {
                    id: 2,
                    name: "Retail store".to_owned(),
                },
            ],
            sizes: Vec::new(),
            by_sku: HashMap::new(),
            by_ean: HashMap::new(),
            stock: HashMap::new(),
            allocations: HashMap::new(),
            shipments: BTreeMap::new(),
            shipments_by_order: HashMap::new(),
            returns: BTreeMap::new(),
            emails: Vec::new(),
            stock_changes: Vec::new(),
            events: BTreeMap::new(),
            next_event: 1,
            integrations: HashMap::new(),
            next_id: 1,
            announcements: Vec::new(),
        };
        for s in sizes() {
            let idx = ops.add_size(s.variant_id, &s.sku, &s.ean, s.size);
            ops.stock.insert(
                (idx, 1),
                StockLevel {
                    physical: OPENING_STOCK,
                    ..StockLevel::default()
                },
            );
        }
        for b in BUNDLES {
            let components: Vec<(usize, i64)> = b
                .components
                .iter()
                .filter_map(|(sku, q)| ops.by_sku.get(*sku).map(|i| (*i, *q)))
                .collect();
            let ean = crate::generate::ean_for(b.sku);
            let idx = ops.add_size(b.id * 10, b.sku, &ean, "OS");
            ops.sizes[idx].components = components;
        }
        ops
    }

    fn add_size(&mut self, variant_id: i64, sku: &str, ean: &str, size_number: &str) -> usize {
        let idx = self.sizes.len();
        self.sizes.push(SizeRecord {
            id: idx as i64 + 1,
            variant_id,
            sku: sku.to_owned(),
            ean: ean.to_owned(),
            size_number: size_number.to_owned(),
            components: Vec::new(),
        });
        self.by_sku.insert(sku.to_owned(), idx);
        self.by_ean.insert(ean.to_owned(), idx);
        idx
    }

    /// Adds `count` synthetic one-size products (`GEN-000001-OS`…) with `physical` units in
    /// warehouse 1: a catalogue of scale for benchmarks.
    pub fn add_synthetic_sizes(&mut self, count: usize, physical: i64) -> usize {
        let start = self.sizes.len();
        for i in 0..count {
            let sku = format!("GEN-{:06}-OS", start + i + 1);
            let ean = crate::generate::ean_for(&sku);
            let idx = self.add_size(0, &sku, &ean, "OS");
            self.stock.insert(
                (idx, 1),
                StockLevel {
                    physical,
                    ..StockLevel::default()
                },
            );
        }
        self.sizes.len()
    }

    fn id(&mut self) -> i64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    pub fn size_by_sku(&self, sku: &str) -> Option<usize> {
        self.by_sku.get(sku).copied()
    }

    /// Centra's `ProductSizeInput`: exactly one of id, SKU, EAN, UPC or any.
    pub fn find_size(
        &self,
        id: Option<i64>,
        sku: Option<&str>,
        ean: Option<&str>,
        any: Option<&str>,
    ) -> Result<Option<usize>, UserError> {
        let given = usize::from(id.is_some())
            + usize::from(sku.is_some())
            + usize::from(ean.is_some())
            + usize::from(any.is_some());
        if given != 1 {
            return Err(user_error(
                "Exactly one input field should be provided",
                &["productSize"],
            ));
        }
        Ok(if let Some(id) = id {
            usize::try_from(id - 1)
                .ok()
                .filter(|i| *i < self.sizes.len())
        } else if let Some(sku) = sku {
            self.by_sku.get(sku).copied()
        } else if let Some(ean) = ean {
            self.by_ean.get(ean).copied()
        } else {
            any.and_then(|a| self.by_sku.get(a).or_else(|| self.by_ean.get(a)).copied())
        })
    }

    /// A size by its variant and size name (`{ productVariant: { id }, size: { name } }`).
    pub fn variant_size(&self, variant_id: i64, size_name: &str) -> Option<usize> {
        self.sizes
            .iter()
            .position(|s| s.variant_id == variant_id && s.size_number == size_name)
    }

    pub fn warehouse(&self, id: i64) -> Option<&Warehouse> {
        self.warehouses.iter().find(|w| w.id == id)
    }

    /// Stock of a size in a warehouse; a bundle's is derived from its components.
    pub fn stock_of(&self, size: usize, warehouse: i64) -> StockLevel {
        let record = &self.sizes[size];
        if record.components.is_empty() {
            return self
                .stock
                .get(&(size, warehouse))
                .copied()
                .unwrap_or_default();
        }
        let mut physical = i64::MAX;
        let mut free = i64::MAX;
        for (c, q) in &record.components {
            let level = self
                .stock
                .get(&(*c, warehouse))
                .copied()
                .unwrap_or_default();
            physical = physical.min(level.physical.max(0) / q);
            free = free.min(level.free_to_allocate().max(0) / q);
        }
        if physical == i64::MAX {
            return StockLevel::default();
        }
        StockLevel {
            physical,
            allocated: physical - free,
            demand: 0,
        }
    }

    fn level_mut(&mut self, size: usize, warehouse: i64) -> &mut StockLevel {
        self.stock.entry((size, warehouse)).or_default()
    }

    // ----- events and webhooks -------------------------------------------------------

    /// Raises an event for every integration listening, and a webhook.
    pub fn raise(
        &mut self,
        object_type: EventObjectType,
        change: EventChangeType,
        reference: i64,
        webhook_action: Option<&'static str>,
    ) {
        if let Some(action) = webhook_action {
            let kind = match object_type {
                EventObjectType::Order => "order",
                EventObjectType::Shipment => "shipment",
                EventObjectType::Return => "return",
                EventObjectType::Customer => "customer",
                EventObjectType::ProductSize | EventObjectType::StockChange => "",
            };
            if !kind.is_empty() {
                self.announcements.push(Announcement {
                    object_type: kind,
                    action,
                    id: reference,
                });
            }
        }
        let listening: Vec<String> = self
            .integrations
            .iter()
            .filter(|(_, i)| i.listeners.iter().any(|l| l.wants(object_type, change)))
            .map(|(name, _)| name.clone())
            .collect();
        if listening.is_empty() {
            return;
        }
        let id = self.next_event;
        self.next_event += 1;
        self.events.insert(
            id,
            Event {
                id,
                object_type,
                change_type: change,
                reference,
                created_at: Utc::now(),
            },
        );
        for name in listening {
            if let Some(i) = self.integrations.get_mut(&name) {
                i.pending.insert(id);
            }
        }
    }

    /// `setEventListeners`: additive and idempotent; a listener for a type already
    /// listened to has its change types replaced.
    pub fn set_listeners(
        &mut self,
        integration: &str,
        wanted: Vec<(EventObjectType, Vec<EventChangeType>)>,
    ) -> Vec<Listener> {
        let now = Utc::now();
        let i = self.integrations.entry(integration.to_owned()).or_default();
        for (object_type, change_types) in wanted {
            match i
                .listeners
                .iter_mut()
                .find(|l| l.object_type == object_type)
            {
                // Additive (Centra's docs): types already listened to stay; no types
                // means every type, which nothing narrows.
                Some(l) => {
                    if change_types.is_empty() {
                        l.change_types.clear();
                    } else if !l.change_types.is_empty() {
                        for t in change_types {
                            if !l.change_types.contains(&t) {
                                l.change_types.push(t);
                            }
                        }
                    }
                    l.updated_at = now;
                }
                None => i.listeners.push(Listener {
                    object_type,
                    change_types,
                    created_at: now,
                    updated_at: now,
                }),
            }
        }
        i.listeners.clone()
    }

    /// `unsetEventListeners`: also deletes the queued events of those types.
    pub fn unset_listeners(
        &mut self,
        integration: &str,
        types: &[EventObjectType],
    ) -> Vec<Listener> {
        let Some(i) = self.integrations.get_mut(integration) else {
            return Vec::new();
        };
        i.listeners.retain(|l| !types.contains(&l.object_type));
        let events = &self.events;
        i.pending.retain(|id| {
            events
                .get(id)
                .is_some_and(|e| !types.contains(&e.object_type))
        });
        let listeners = i.listeners.clone();
        self.collect_confirmed();
        listeners
    }

    /// `events`: the oldest unconfirmed events of this integration.
    pub fn events(
        &self,
        integration: &str,
        types: Option<&[EventObjectType]>,
        changes: Option<&[EventChangeType]>,
        limit: usize,
    ) -> Vec<Event> {
        let Some(i) = self.integrations.get(integration) else {
            return Vec::new();
        };
        i.pending
            .iter()
            .filter_map(|id| self.events.get(id))
            .filter(|e| types.is_none_or(|t| t.contains(&e.object_type)))
            .filter(|e| changes.is_none_or(|c| c.contains(&e.change_type)))
            .take(limit)
            .cloned()
            .collect()
    }

    /// `confirmEvents`: unknown or already confirmed ids are a warning, not an error.
    pub fn confirm_events(&mut self, integration: &str, ids: &[i64]) -> Vec<UserWarning> {
        let mut warnings = Vec::new();
        let Some(i) = self.integrations.get_mut(integration) else {
            return vec![user_warning("No event listeners are set", &["input"])];
        };
        for id in ids {
            if !i.pending.remove(id) {
                warnings.push(user_warning(
                    format!("Event {id} is not waiting for confirmation, skipped"),
                    &["input", "eventsIds"],
                ));
            }
        }
        self.collect_confirmed();
        warnings
    }

    /// Forgets events no integration waits for.
    fn collect_confirmed(&mut self) {
        let waiting: BTreeSet<i64> = self
            .integrations
            .values()
            .flat_map(|i| i.pending.iter().copied())
            .collect();
        self.events.retain(|id, _| waiting.contains(id));
    }

    pub fn unconfirmed(&self, integration: &str) -> usize {
        self.integrations
            .get(integration)
            .map_or(0, |i| i.pending.len())
    }

    /// An order changed: bump its version and tell listeners and webhooks.
    pub fn order_updated(&mut self, order: &mut Order) {
        order.touch();
        self.raise(
            EventObjectType::Order,
            EventChangeType::Updated,
            order.number,
            Some("update"),
        );
    }

    // ----- allocation -----------------------------------------------------------------

    /// Reserves stock for a confirmed order (once): free stock in the main warehouse, the
    /// rest as demand.
    pub fn allocate(&mut self, order: &Order) {
        if self.allocations.contains_key(&order.number) {
            return;
        }
        let mut made = Vec::new();
        for line in order.lines.iter().filter(|l| l.quantity > 0) {
            for (sku, per_unit) in stocked_parts(line) {
                let Some(size) = self.size_by_sku(&sku) else {
                    continue;
                };
                let units = line.quantity * per_unit;
                let level = self.level_mut(size, 1);
                let take = units.min(level.free_to_allocate().max(0));
                level.allocated += take;
                level.demand += units - take;
                made.push(Allocation {
                    line_id: line.id,
                    size,
                    warehouse: 1,
                    per_unit,
                    allocated: take,
                    demand: units - take,
                });
            }
        }
        self.allocations.insert(order.number, made);
    }

    /// Takes `units` line units off an order line's reservation, from demand or from
    /// allocated stock first, and returns per (size, warehouse) how many came from each.
    fn unreserve(
        &mut self,
        order_number: i64,
        line_id: i64,
        units: i64,
        demand_first: bool,
    ) -> Vec<(usize, i64, Taken)> {
        let Some(allocs) = self.allocations.get_mut(&order_number) else {
            return Vec::new();
        };
        let mut taken = Vec::new();
        for a in allocs.iter_mut().filter(|a| a.line_id == line_id) {
            let mut left = units * a.per_unit;
            let mut take = |pool: &mut i64| {
                let n = left.min(*pool);
                *pool -= n;
                left -= n;
                n
            };
            let (demand, allocated) = if demand_first {
                let d = take(&mut a.demand);
                (d, take(&mut a.allocated))
            } else {
                let al = take(&mut a.allocated);
                (take(&mut a.demand), al)
            };
            taken.push((a.size, a.warehouse, Taken { demand, allocated }));
        }
        taken
    }

    /// Gives back `units` line units of an order's reservation: demand first, then
    /// allocated stock; `remove` also takes them out of physical stock.
    fn release(&mut self, order_number: i64, line_id: i64, units: i64, remove: bool) {
        for (size, warehouse, t) in self.unreserve(order_number, line_id, units, true) {
            let level = self.level_mut(size, warehouse);
            level.demand -= t.demand;
            level.allocated -= t.allocated;
            if remove {
                level.physical -= t.allocated;
            }
        }
    }

    /// Stock leaves the warehouse: allocated units first, then (shipped from demand) the
    /// shelf directly.
    fn ship_out(&mut self, order_number: i64, line_id: i64, units: i64) {
        for (size, warehouse, t) in self.unreserve(order_number, line_id, units, false) {
            let level = self.level_mut(size, warehouse);
            level.allocated -= t.allocated;
            level.demand -= t.demand;
            level.physical -= t.allocated + t.demand;
        }
    }

    pub fn allocations_of(&self, order_number: i64) -> &[Allocation] {
        self.allocations
            .get(&order_number)
            .map_or(&[], |a| a.as_slice())
    }

    // ----- stock mutations ---------------------------------------------------------

    /// `setStock`: absolute quantities; physical (or free-to-allocate, from which physical
    /// follows). Returns the recorded stock change.
    pub fn set_stock(
        &mut self,
        warehouse: i64,
        description: &str,
        free_to_allocate: bool,
        levels: &[(usize, i64)],
    ) -> i64 {
        let mut lines = Vec::new();
        for (size, quantity) in levels {
            let sku = self.sizes[*size].sku.clone();
            let level = self.level_mut(*size, warehouse);
            let target = if free_to_allocate {
                level.allocated + quantity
            } else {
                *quantity
            };
            let delta = target - level.physical;
            level.physical = target;
            if delta != 0 {
                lines.push((sku, delta));
            }
        }
        self.record_stock_change(warehouse, description, lines)
    }

    /// `changeStock`: into a warehouse, out of one, or both (a transfer).
    pub fn change_stock(
        &mut self,
        into: Option<i64>,
        out_of: Option<i64>,
        description: &str,
        changes: &[(usize, i64)],
    ) -> Result<i64, UserError> {
        if let Some(out) = out_of {
            for (size, q) in changes {
                if self.stock_of(*size, out).free_to_allocate() < *q {
                    return Err(user_error(
                        format!(
                            "Not enough free stock of {} in warehouse {out}",
                            self.sizes[*size].sku
                        ),
                        &["input", "productSizes"],
                    ));
                }
            }
        }
        let mut lines = Vec::new();
        for (size, q) in changes {
            let sku = self.sizes[*size].sku.clone();
            if let Some(out) = out_of {
                self.level_mut(*size, out).physical -= q;
                lines.push((sku.clone(), -q));
            }
            if let Some(into) = into {
                self.level_mut(*size, into).physical += q;
                lines.push((sku, *q));
            }
        }
        let warehouse = into.or(out_of).unwrap_or(1);
        Ok(self.record_stock_change(warehouse, description, lines))
    }

    fn record_stock_change(
        &mut self,
        warehouse: i64,
        description: &str,
        lines: Vec<(String, i64)>,
    ) -> i64 {
        let id = self.id();
        self.stock_changes.push(StockChange {
            id,
            warehouse,
            description: description.to_owned(),
            lines,
            at: Utc::now(),
        });
        self.raise(
            EventObjectType::StockChange,
            EventChangeType::Created,
            id,
            None,
        );
        id
    }

    // ----- shipments -----------------------------------------------------------------

    pub fn shipments_of(&self, order_number: i64) -> Vec<&Shipment> {
        self.shipments_by_order
            .get(&order_number)
            .map(|ids| ids.iter().filter_map(|id| self.shipments.get(id)).collect())
            .unwrap_or_default()
    }

    /// Units of a line already on a shipment (completed or not).
    pub fn on_shipments(&self, order_number: i64, line_id: i64) -> i64 {
        self.shipments_of(order_number)
            .iter()
            .flat_map(|s| s.lines.iter())
            .filter(|l| l.order_line_id == line_id)
            .map(|l| l.quantity)
            .sum()
    }

    /// `createShipment`. `lines` empty: every unshipped unit.
    #[allow(clippy::too_many_arguments)]
    pub fn create_shipment(
        &mut self,
        order: &mut Order,
        lines: &[(i64, i64)],
        good_to_go: bool,
        paid: bool,
        created_at: Option<DateTime<Utc>>,
        additional_message: Option<String>,
    ) -> Result<i64, UserError> {
        if order.status == OrderStatus::Pending {
            return Err(user_error(
                "Only confirmed orders can have shipments created",
                &["input", "order"],
            ));
        }
        if matches!(
            order.status,
            OrderStatus::Cancelled | OrderStatus::Shipped | OrderStatus::Archived
        ) {
            return Err(user_error(
                format!(
                    "Order {} is {:?} and cannot be shipped",
                    order.number, order.status
                ),
                &["input", "order"],
            ));
        }
        // [INF] Centra refuses to ship an order on hold; documented as inferred.
        if order.is_on_hold {
            return Err(user_error(
                format!("Order {} is on hold", order.number),
                &["input", "order"],
            ));
        }
        let wanted: Vec<(i64, i64)> = if lines.is_empty() {
            order
                .lines
                .iter()
                .map(|l| (l.id, l.quantity - self.on_shipments(order.number, l.id)))
                .filter(|(_, q)| *q > 0)
                .collect()
        } else {
            lines.to_vec()
        };
        if wanted.is_empty() {
            return Err(user_error(
                "Nothing left to ship on this order",
                &["input", "lines"],
            ));
        }
        let mut value = Decimal::ZERO;
        for (i, (line_id, quantity)) in wanted.iter().enumerate() {
            let index = i.to_string();
            let Some(line) = order.lines.iter().find(|l| l.id == *line_id) else {
                return Err(user_error(
                    format!("Order line {line_id} is not on order {}", order.number),
                    &["input", "lines", &index, "orderLine"],
                ));
            };
            let open = line.quantity - self.on_shipments(order.number, *line_id);
            if *quantity <= 0 || *quantity > open {
                return Err(user_error(
                    format!(
                        "Quantity {quantity} of order line {line_id} is more than the {open} left to ship"
                    ),
                    &["input", "lines", &index, "quantity"],
                ));
            }
            value += line.unit_price * Decimal::from(*quantity);
        }
        let first = self.shipments_of(order.number).is_empty();
        if first {
            let f = order.figures();
            value += order.shipping + order.handling + f.vouchers + f.tax_added;
        }
        let id = self.id();
        let n = self.shipments_of(order.number).len() + 1;
        let now = Utc::now();
        let mut shipment_lines = Vec::new();
        for (line_id, quantity) in wanted {
            let line_ref = self.id();
            shipment_lines.push(ShipmentLine {
                id: line_ref,
                order_line_id: line_id,
                quantity,
            });
        }
        self.shipments.insert(
            id,
            Shipment {
                id,
                number: format!("{}-{n}", order.number),
                order_number: order.number,
                lines: shipment_lines,
                created_at: created_at.unwrap_or(now),
                updated_at: now,
                is_good_to_go: good_to_go,
                is_paid: paid,
                paid_at: paid.then_some(now),
                is_captured: false,
                captured_at: None,
                is_shipped: false,
                shipped_at: None,
                carrier: None,
                service: None,
                packages: None,
                tracking_number: None,
                return_tracking_number: None,
                additional_message,
                value,
            },
        );
        self.shipments_by_order
            .entry(order.number)
            .or_default()
            .push(id);
        if order.status == OrderStatus::Confirmed {
            order.status = OrderStatus::Processing;
        }
        self.raise(
            EventObjectType::Shipment,
            EventChangeType::Created,
            id,
            Some("create"),
        );
        if good_to_go {
            self.announcements.push(Announcement {
                object_type: "shipment",
                action: "good_to_go",
                id,
            });
        }
        self.order_updated(order);
        Ok(id)
    }

    /// `updateShipment`.
    pub fn update_shipment(
        &mut self,
        id: i64,
        good_to_go: Option<bool>,
        paid: Option<bool>,
        info: Option<ShipmentInfo>,
        additional_message: Option<String>,
    ) -> Result<(), UserError> {
        let Some(s) = self.shipments.get_mut(&id) else {
            return Err(user_error(format!("Shipment {id} not found"), &["id"]));
        };
        let now = Utc::now();
        let became_good_to_go = good_to_go == Some(true) && !s.is_good_to_go;
        if let Some(g) = good_to_go {
            s.is_good_to_go = g;
        }
        if let Some(p) = paid {
            if p && !s.is_paid {
                s.paid_at = Some(now);
            }
            s.is_paid = p;
        }
        if let Some(info) = info {
            info.apply(s);
        }
        if additional_message.is_some() {
            s.additional_message = additional_message;
        }
        s.updated_at = now;
        self.raise(
            EventObjectType::Shipment,
            EventChangeType::Updated,
            id,
            Some(if became_good_to_go {
                "good_to_go"
            } else {
                "update"
            }),
        );
        Ok(())
    }

    /// `captureShipment`: captures the shipment's value through the payment method.
    pub fn capture_shipment(&mut self, order: &mut Order, id: i64) -> Result<(), UserError> {
        let Some(s) = self.shipments.get_mut(&id) else {
            return Err(user_error(format!("Shipment {id} not found"), &["id"]));
        };
        if s.is_captured {
            return Err(user_error(
                format!("Shipment {} is already captured", s.number),
                &["id"],
            ));
        }
        let now = Utc::now();
        s.is_captured = true;
        s.captured_at = Some(now);
        s.is_paid = true;
        s.paid_at.get_or_insert(now);
        s.updated_at = now;
        let value = s.value;
        let next_id = order
            .payment_history
            .iter()
            .map(|p| p.id)
            .max()
            .unwrap_or(0)
            + 1;
        order.payment_history.push(PaymentEntry {
            id: next_id,
            created_at: now.format("%Y-%m-%dT%H:%M:%S+00:00").to_string(),
            status: "SUCCESS",
            entry_type: "CAPTURE",
            external_reference: format!("cap-{id}"),
            value,
        });
        order.touch();
        self.raise(
            EventObjectType::Shipment,
            EventChangeType::Updated,
            id,
            Some("update"),
        );
        Ok(())
    }

    /// `completeShipment`: shipped, stock leaves the warehouse, the email goes out if asked
    /// for, and the order completes with its last shipment.
    pub fn complete_shipment(
        &mut self,
        order: &mut Order,
        id: i64,
        shipped_at: DateTime<Utc>,
        info: Option<ShipmentInfo>,
        send_email: bool,
        additional_message: Option<String>,
    ) -> Result<(), UserError> {
        if shipped_at > Utc::now() + chrono::Duration::seconds(1) {
            return Err(user_error(
                "shippedAt cannot be in the future",
                &["input", "shippedAt"],
            ));
        }
        let Some(s) = self.shipments.get_mut(&id) else {
            return Err(user_error(format!("Shipment {id} not found"), &["id"]));
        };
        if s.is_shipped {
            return Err(user_error(
                format!("Shipment {} is already completed", s.number),
                &["id"],
            ));
        }
        s.is_shipped = true;
        s.shipped_at = Some(shipped_at);
        s.is_good_to_go = true;
        if let Some(info) = info {
            info.apply(s);
        }
        if additional_message.is_some() {
            s.additional_message = additional_message;
        }
        s.updated_at = Utc::now();
        let shipment = s.clone();
        for line in &shipment.lines {
            self.ship_out(order.number, line.order_line_id, line.quantity);
        }
        if send_email {
            self.emails.push(Email {
                kind: EmailKind::ShippingConfirmation,
                order_number: order.number,
                to: order.customer.email.clone(),
                shipment_number: Some(shipment.number.clone()),
                tracking_number: shipment.tracking_number.clone(),
                carrier: shipment.carrier.clone(),
                at: Utc::now(),
            });
        }
        self.raise(
            EventObjectType::Shipment,
            EventChangeType::Completed,
            id,
            Some("update"),
        );
        self.settle_order(order);
        Ok(())
    }

    /// SHIPPED once every unit is on a completed shipment (or cancelled).
    fn settle_order(&mut self, order: &mut Order) {
        let shipments = self.shipments_of(order.number);
        let all_completed = !shipments.is_empty() && shipments.iter().all(|s| s.is_shipped);
        let fully = order
            .lines
            .iter()
            .all(|l| self.on_shipments(order.number, l.id) >= l.quantity);
        if all_completed && fully {
            order.status = OrderStatus::Shipped;
            order.touch();
            self.raise(
                EventObjectType::Order,
                EventChangeType::Completed,
                order.number,
                Some("update"),
            );
        } else {
            self.order_updated(order);
        }
    }

    // ----- order changes ----------------------------------------------------------

    /// Cancels units of a line (`updateDirectToConsumerOrder.cancelLines`).
    pub fn cancel_line(
        &mut self,
        order: &mut Order,
        line_id: i64,
        quantity: i64,
        remove_from_stock: bool,
    ) -> Result<(), UserError> {
        let shipped = self.on_shipments(order.number, line_id);
        let Some(line) = order.lines.iter_mut().find(|l| l.id == line_id) else {
            return Err(user_error(
                format!("Order line {line_id} is not on order {}", order.number),
                &["input", "cancelLines"],
            ));
        };
        let open = line.quantity - shipped;
        if quantity <= 0 || quantity > open {
            return Err(user_error(
                format!("Cannot cancel {quantity} of order line {line_id}: {open} are not shipped"),
                &["input", "cancelLines"],
            ));
        }
        line.quantity -= quantity;
        line.cancelled_quantity += quantity;
        self.release(order.number, line_id, quantity, remove_from_stock);
        Ok(())
    }

    /// `cancelDirectToConsumerOrder`: irreversible; refused once anything shipped or was
    /// captured (then it is a return).
    pub fn cancel_order(
        &mut self,
        order: &mut Order,
        send_email: bool,
        remove_from_stock: bool,
    ) -> Result<(), UserError> {
        if order.status == OrderStatus::Cancelled {
            return Err(user_error(
                format!("Order {} is already cancelled", order.number),
                &["id"],
            ));
        }
        if !self.shipments_of(order.number).is_empty()
            || order
                .payment_history
                .iter()
                .any(|p| p.entry_type == "CAPTURE")
        {
            return Err(user_error(
                format!(
                    "Order {} has shipments or captured payments; create a return instead",
                    order.number
                ),
                &["id"],
            ));
        }
        let lines: Vec<(i64, i64)> = order.lines.iter().map(|l| (l.id, l.quantity)).collect();
        for (line_id, quantity) in lines {
            self.release(order.number, line_id, quantity, remove_from_stock);
        }
        order.status = OrderStatus::Cancelled;
        if send_email {
            self.emails.push(Email {
                kind: EmailKind::OrderCancelled,
                order_number: order.number,
                to: order.customer.email.clone(),
                shipment_number: None,
                tracking_number: None,
                carrier: None,
                at: Utc::now(),
            });
        }
        Ok(())
    }

    // ----- returns -----------------------------------------------------------------

    /// `createReturn` against a completed shipment.
    pub fn create_return(
        &mut self,
        shipment_id: i64,
        lines: &[(i64, i64)],
        release_to_stock: bool,
        comment: Option<String>,
    ) -> Result<i64, UserError> {
        let Some(s) = self.shipments.get(&shipment_id).cloned() else {
            return Err(user_error(
                format!("Shipment {shipment_id} not found"),
                &["input", "shipment"],
            ));
        };
        if !s.is_shipped {
            return Err(user_error(
                format!("Shipment {} is not completed", s.number),
                &["input", "shipment"],
            ));
        }
        if lines.is_empty() {
            return Err(user_error("A return needs lines", &["input", "lines"]));
        }
        let mut return_lines = Vec::new();
        for (i, (line_id, quantity)) in lines.iter().enumerate() {
            let index = i.to_string();
            let Some(sl) = s.lines.iter().find(|l| l.id == *line_id) else {
                return Err(user_error(
                    format!("Shipment line {line_id} is not on shipment {}", s.number),
                    &["input", "lines", &index, "shipmentLine"],
                ));
            };
            let returned: i64 = self
                .returns
                .values()
                .flat_map(|r| r.lines.iter())
                .filter(|l| l.shipment_line_id == *line_id)
                .map(|l| l.quantity)
                .sum();
            if *quantity <= 0 || *quantity > sl.quantity - returned {
                return Err(user_error(
                    format!(
                        "Cannot return {quantity} of shipment line {line_id}: {} left",
                        sl.quantity - returned
                    ),
                    &["input", "lines", &index, "quantity"],
                ));
            }
            return_lines.push(ReturnLine {
                id: 0,
                shipment_line_id: *line_id,
                order_line_id: sl.order_line_id,
                quantity: *quantity,
            });
        }
        for l in &mut return_lines {
            l.id = self.id();
        }
        let id = self.id();
        self.returns.insert(
            id,
            Return {
                id,
                shipment_id,
                order_number: s.order_number,
                lines: return_lines,
                release_to_stock,
                completed: false,
                created_at: Utc::now(),
                completed_at: None,
                comment,
            },
        );
        self.raise(
            EventObjectType::Return,
            EventChangeType::Created,
            id,
            Some("create"),
        );
        Ok(id)
    }

    /// `completeReturn`: returned units go back on the shelf if the policy says so.
    pub fn complete_return(
        &mut self,
        order: &Order,
        id: i64,
        send_email: bool,
    ) -> Result<(), UserError> {
        let Some(r) = self.returns.get_mut(&id) else {
            return Err(user_error(format!("Return {id} not found"), &["id"]));
        };
        if r.completed {
            return Err(user_error(
                format!("Return {id} is already completed"),
                &["id"],
            ));
        }
        r.completed = true;
        r.completed_at = Some(Utc::now());
        let r = r.clone();
        if r.release_to_stock {
            for l in &r.lines {
                let Some(line) = order.lines.iter().find(|x| x.id == l.order_line_id) else {
                    continue;
                };
                for (sku, per_unit) in stocked_parts(line) {
                    if let Some(size) = self.size_by_sku(&sku) {
                        self.level_mut(size, 1).physical += l.quantity * per_unit;
                    }
                }
            }
        }
        if send_email {
            self.emails.push(Email {
                kind: EmailKind::ReturnCompleted,
                order_number: order.number,
                to: order.customer.email.clone(),
                shipment_number: None,
                tracking_number: None,
                carrier: None,
                at: Utc::now(),
            });
        }
        self.raise(
            EventObjectType::Return,
            EventChangeType::Completed,
            id,
            Some("update"),
        );
        Ok(())
    }
}

impl Default for Ops {
    fn default() -> Self {
        Self::new()
    }
}

/// `ShipmentInfoInput` as the back office applies it.
#[derive(Debug, Clone, Default)]
pub struct ShipmentInfo {
    pub carrier: Option<String>,
    pub service: Option<String>,
    pub packages: Option<i64>,
    pub tracking_number: Option<String>,
    pub return_tracking_number: Option<String>,
}

impl ShipmentInfo {
    fn apply(self, s: &mut Shipment) {
        if self.carrier.is_some() {
            s.carrier = self.carrier;
        }
        if self.service.is_some() {
            s.service = self.service;
        }
        if self.packages.is_some() {
            s.packages = self.packages;
        }
        if self.tracking_number.is_some() {
            s.tracking_number = self.tracking_number;
        }
        if self.return_tracking_number.is_some() {
            s.return_tracking_number = self.return_tracking_number;
        }
    }
}
