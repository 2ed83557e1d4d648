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

mod customers;
mod events;
mod returns;
mod shipments;
mod stock;

pub use customers::CustomerAccount;
pub use returns::ShippingRefund;
pub use shipments::ShipmentInfo;

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
    /// Shipping cost refunded with this return (`shippingCost` of `createReturn`); zero
    /// when none.
    pub shipping_refund: Decimal,
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
    /// Customer accounts by id.
    pub customers: BTreeMap<i64, CustomerAccount>,
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
            customers: BTreeMap::new(),
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
}

impl Default for Ops {
    fn default() -> Self {
        Self::new()
    }
}
