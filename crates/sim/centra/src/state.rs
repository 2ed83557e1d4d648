//! The simulator's state: orders by number, the back office (stock, shipments, returns,
//! emails, Events queues), the rate-limit buckets, faults, the request log, and the change
//! log that feeds webhooks.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};

use crate::generate::{Generator, OrderMix};
use crate::limits::{Limits, Quotas};
use crate::model::{Order, OrderStatus};
use crate::ops::{EventChangeType, EventObjectType, Ops, UserError, user_error};
use crate::schema::OrderFilter;
use crate::webhook::WebhookSender;

/// Faults the simulator injects into `/graphql` answers. Rates are per mille.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Faults {
    /// Added to every answer.
    pub latency_ms: u64,
    /// Answers this slow, at `slow_per_mille`.
    pub slow_ms: u64,
    pub slow_per_mille: u32,
    /// HTTP 503 at this rate.
    pub error_per_mille: u32,
    /// Every request is answered 429 for this long from when it is set.
    pub storm_ms: u64,
    /// The payment provider declines every capture (a userError; nothing is changed).
    pub decline_captures: bool,
    /// The next `interrupt_shipments` calls of `createShipment` stop after this step and
    /// answer HTTP 500, keeping what was done: a Centra that fails halfway through, or an
    /// answer lost. (Whether Centra's `createShipment` with `shippedAt` and `capture` is
    /// atomic is not documented; Ferry must not depend on it.)
    pub interrupt_shipment_after: Option<ShipmentStep>,
    pub interrupt_shipments: u32,
    /// Introspection answers with this field renamed: a Centra whose schema differs from
    /// the one Ferry was built against (what `ferry centra check` must name).
    pub rename_in_schema: Option<SchemaRename>,
    #[serde(skip)]
    pub storm_until: Option<std::time::Instant>,
}

/// One field of one type, renamed in introspection answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchemaRename {
    pub type_name: String,
    pub field: String,
    pub to: String,
}

impl SchemaRename {
    /// Renames the field in an introspection answer's `data`.
    pub fn apply(&self, data: &mut serde_json::Value) {
        let types = data
            .pointer_mut("/__schema/types")
            .and_then(serde_json::Value::as_array_mut);
        for t in types.into_iter().flatten() {
            if t["name"] != self.type_name.as_str() {
                continue;
            }
            for key in ["fields", "inputFields"] {
                for f in t[key].as_array_mut().into_iter().flatten() {
                    if f["name"] == self.field.as_str() {
                        f["name"] = serde_json::Value::String(self.to.clone());
                    }
                }
            }
        }
    }
}

/// The steps of `createShipment` in the order the simulator takes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ShipmentStep {
    /// The shipment exists, not yet sent (no e-mail) or captured.
    Created,
    /// Sent: shipped time, tracking, the customer's e-mail; not yet captured.
    Completed,
    /// Everything done; only the answer is lost.
    Captured,
}

impl SimState {
    /// Whether this `createShipment` call is to stop after `step` (and counts it if so).
    pub fn interrupts_shipment_after(&self, step: ShipmentStep) -> bool {
        let mut faults = self.faults.write();
        if faults.interrupt_shipments == 0 || faults.interrupt_shipment_after != Some(step) {
            return false;
        }
        faults.interrupt_shipments -= 1;
        true
    }
}

/// Set by a resolver when the request must be answered HTTP 500 whatever it did.
#[derive(Debug, Default)]
pub struct LoseAnswer(pub std::sync::atomic::AtomicBool);

impl LoseAnswer {
    pub fn set(&self) {
        self.0.store(true, std::sync::atomic::Ordering::Relaxed);
    }

    pub fn is_set(&self) -> bool {
        self.0.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// One `/graphql` call, for the admin request log.
#[derive(Debug, Clone, Serialize)]
pub struct RequestRecord {
    pub at: chrono::DateTime<chrono::Utc>,
    pub operation: Option<String>,
    pub status: u16,
    pub mutations: u64,
    pub complexity: u64,
}

/// How many calls the request log keeps.
const REQUEST_LOG: usize = 10_000;

pub struct SimState {
    /// The markets this instance sells in.
    pub markets: Vec<crate::model::Market>,
    orders: RwLock<BTreeMap<i64, Arc<Order>>>,
    /// Order id → number: lookups by id (shipments, the reconciler's reads) were a scan of
    /// every order, the chaos run's largest cost at 100,000 orders. An order's id never
    /// changes once it is stored.
    ids: RwLock<HashMap<String, i64>>,
    ops: Mutex<Ops>,
    generator: Mutex<Generator>,
    next_number: Mutex<i64>,
    pub webhooks: WebhookSender,
    pub limits: Limits,
    pub faults: RwLock<Faults>,
    requests: Mutex<VecDeque<RequestRecord>>,
    /// Contract queries answered by the precompiled path.
    pub fast_answers: std::sync::atomic::AtomicU64,
}

/// Orders and the back office, locked together for one change.
pub struct World<'a> {
    orders: &'a mut BTreeMap<i64, Arc<Order>>,
    ids: &'a HashMap<String, i64>,
    pub ops: &'a mut Ops,
}

impl World<'_> {
    pub fn order(&self, number: i64) -> Result<&Order, UserError> {
        self.orders
            .get(&number)
            .map(|o| &**o)
            .ok_or_else(|| user_error(format!("Order {number} not found"), &["order"]))
    }

    pub fn order_by_id(&self, id: &str) -> Result<i64, UserError> {
        self.ids
            .get(id)
            .copied()
            .filter(|n| self.orders.contains_key(n))
            .ok_or_else(|| user_error(format!("Order {id} not found"), &["order"]))
    }

    /// Changes an order together with the back office. A confirmation allocates stock.
    pub fn with_order<R>(
        &mut self,
        number: i64,
        change: impl FnOnce(&mut Order, &mut Ops) -> Result<R, UserError>,
    ) -> Result<R, UserError> {
        let Some(slot) = self.orders.get_mut(&number) else {
            return Err(user_error(format!("Order {number} not found"), &["order"]));
        };
        let mut order = (**slot).clone();
        let before = order.status;
        let result = change(&mut order, self.ops)?;
        if before == OrderStatus::Pending && order.status == OrderStatus::Confirmed {
            self.ops.allocate(&order);
        }
        *slot = Arc::new(order);
        Ok(result)
    }
}

impl SimState {
    pub fn new(seed: u64, first_number: i64) -> Self {
        Self::with(
            seed,
            first_number,
            Quotas::default(),
            crate::generate::markets(),
        )
    }

    pub fn with(
        seed: u64,
        first_number: i64,
        quotas: Quotas,
        markets: Vec<crate::model::Market>,
    ) -> Self {
        Self {
            markets: markets.clone(),
            orders: RwLock::new(BTreeMap::new()),
            ids: RwLock::new(HashMap::new()),
            ops: Mutex::new(Ops::new()),
            generator: Mutex::new(Generator::with_markets(seed, markets)),
            next_number: Mutex::new(first_number),
            webhooks: WebhookSender::new(),
            limits: Limits::new(quotas),
            faults: RwLock::new(Faults::default()),
            requests: Mutex::new(VecDeque::new()),
            fast_answers: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Runs one change over orders and the back office atomically, then sends the webhooks
    /// it raised. Orders are locked before the back office, always.
    pub fn transact<R>(
        &self,
        change: impl FnOnce(&mut World<'_>) -> Result<R, UserError>,
    ) -> Result<R, UserError> {
        let (result, announcements) = {
            let mut orders = self.orders.write();
            let mut ops = self.ops.lock();
            let ids = self.ids.read();
            let mut world = World {
                orders: &mut orders,
                ids: &ids,
                ops: &mut ops,
            };
            let result = change(&mut world);
            (result, std::mem::take(&mut ops.announcements))
        };
        for a in announcements {
            self.webhooks.announce(a.object_type, a.action, a.id);
        }
        result
    }

    /// Reads the back office.
    pub fn ops<R>(&self, read: impl FnOnce(&Ops) -> R) -> R {
        read(&self.ops.lock())
    }

    /// Changes the back office alone (stock, events).
    pub fn ops_mut<R>(&self, change: impl FnOnce(&mut Ops) -> R) -> R {
        let (result, announcements) = {
            let mut ops = self.ops.lock();
            let r = change(&mut ops);
            (r, std::mem::take(&mut ops.announcements))
        };
        for a in announcements {
            self.webhooks.announce(a.object_type, a.action, a.id);
        }
        result
    }

    pub fn log_request(&self, record: RequestRecord) {
        let mut log = self.requests.lock();
        if log.len() == REQUEST_LOG {
            log.pop_front();
        }
        log.push_back(record);
    }

    pub fn request_log(&self) -> Vec<RequestRecord> {
        self.requests.lock().iter().cloned().collect()
    }

    /// Creates `count` orders from the generator and announces them (`order insert`).
    pub fn generate(&self, count: usize, mix: &OrderMix) -> Vec<i64> {
        let mut numbers = Vec::with_capacity(count);
        let announcements = {
            let mut generator = self.generator.lock();
            let mut next = self.next_number.lock();
            let mut orders = self.orders.write();
            let mut ops = self.ops.lock();
            for _ in 0..count {
                let number = *next;
                *next += 1;
                let order = generator.order(number, mix);
                if order.status != OrderStatus::Pending {
                    ops.allocate(&order);
                }
                self.ids.write().insert(order.id.clone(), number);
                ops.register_customer(&order);
                orders.insert(number, Arc::new(order));
                ops.raise(
                    EventObjectType::Order,
                    EventChangeType::Created,
                    number,
                    Some("insert"),
                );
                numbers.push(number);
            }
            std::mem::take(&mut ops.announcements)
        };
        for a in announcements {
            self.webhooks.announce(a.object_type, a.action, a.id);
        }
        numbers
    }

    /// Stores an order as given (a loaded snapshot, or a test's own) and announces it.
    /// Refuses a number already taken; later generated orders are numbered after it.
    pub fn insert(&self, order: Order) -> Result<(), UserError> {
        let number = order.number;
        {
            let mut next = self.next_number.lock();
            let mut orders = self.orders.write();
            if orders.contains_key(&number) {
                return Err(user_error(
                    format!("order {number} already exists"),
                    &["number"],
                ));
            }
            *next = (*next).max(number + 1);
            let mut ops = self.ops.lock();
            if order.status != OrderStatus::Pending {
                ops.allocate(&order);
            }
            self.ids.write().insert(order.id.clone(), number);
            orders.insert(number, Arc::new(order));
            ops.raise(
                EventObjectType::Order,
                EventChangeType::Created,
                number,
                None,
            );
        }
        self.webhooks.announce("order", "insert", number);
        Ok(())
    }

    pub fn order(&self, number: i64) -> Option<Arc<Order>> {
        self.orders.read().get(&number).cloned()
    }

    pub fn order_by_id(&self, id: &str) -> Option<Arc<Order>> {
        let number = *self.ids.read().get(id)?;
        self.orders.read().get(&number).cloned()
    }

    pub fn order_count(&self) -> usize {
        self.orders.read().len()
    }

    /// Applies a change to one order and announces it (`order update`). Returns the new
    /// order, or the error the change raised.
    pub fn update<E>(
        &self,
        number: i64,
        change: impl FnOnce(&mut Order) -> Result<(), E>,
    ) -> Option<Result<Arc<Order>, E>> {
        let updated = {
            let mut orders = self.orders.write();
            let current = orders.get(&number)?;
            let mut order = (**current).clone();
            let before = order.status;
            match change(&mut order) {
                Ok(()) => {
                    order.touch();
                    let mut ops = self.ops.lock();
                    if before == OrderStatus::Pending && order.status == OrderStatus::Confirmed {
                        ops.allocate(&order);
                    }
                    ops.raise(
                        EventObjectType::Order,
                        EventChangeType::Updated,
                        number,
                        None,
                    );
                    if order.id != current.id {
                        self.ids.write().insert(order.id.clone(), number);
                    }
                    let order = Arc::new(order);
                    orders.insert(number, order.clone());
                    Ok(order)
                }
                Err(e) => Err(e),
            }
        };
        if updated.is_ok() {
            self.webhooks.announce("order", "update", number);
        }
        Some(updated)
    }

    /// Confirms every PENDING order (as shop staff would), returning how many.
    pub fn confirm_pending(&self) -> usize {
        let pending: Vec<i64> = self
            .orders
            .read()
            .values()
            .filter(|o| o.status == OrderStatus::Pending)
            .map(|o| o.number)
            .collect();
        for number in &pending {
            self.update::<()>(*number, |o| {
                o.status = OrderStatus::Confirmed;
                Ok(())
            });
        }
        pending.len()
    }

    /// The orders matching a filter, by number, one page.
    pub fn find_orders(&self, filter: &OrderFilter, limit: usize, page: usize) -> Vec<Arc<Order>> {
        let orders = self.orders.read();
        let matches = |o: &Order| {
            filter.id.as_ref().is_none_or(|ids| ids.contains(&o.id))
                && filter
                    .status
                    .as_ref()
                    .is_none_or(|s: &Vec<OrderStatus>| s.contains(&o.status))
                && filter
                    .store_type
                    .is_none_or(|t| t == crate::schema::StoreType::DirectToConsumer)
                && filter
                    .updated_at
                    .as_ref()
                    .is_none_or(|range| range.contains(o.updated_at))
                && (filter.created_at.is_none() && filter.order_date.is_none()
                    || parse_time(&o.order_date).is_some_and(|at| {
                        filter.created_at.as_ref().is_none_or(|r| r.contains(at))
                            && filter.order_date.as_ref().is_none_or(|r| r.contains(at))
                    }))
        };
        let skip = (page - 1) * limit;
        match &filter.number {
            Some(numbers) => {
                let mut wanted: Vec<i64> = numbers.clone();
                wanted.sort_unstable();
                wanted.dedup();
                wanted
                    .iter()
                    .filter_map(|n| orders.get(n))
                    .filter(|o| matches(o))
                    .skip(skip)
                    .take(limit)
                    .cloned()
                    .collect()
            }
            None => orders
                .values()
                .filter(|o| matches(o))
                .skip(skip)
                .take(limit)
                .cloned()
                .collect(),
        }
    }
}

/// Reads the date formats Centra accepts in filters: RFC 3339 or `YYYY-MM-DD HH:MM:SS` (UTC).
pub fn parse_time(text: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&chrono::Utc))
        .ok()
        .or_else(|| {
            chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f")
                .ok()
                .map(|t| t.and_utc())
        })
}
