//! The simulator's state: orders by number, the order generator, and the change log that
//! feeds webhooks.

use std::collections::BTreeMap;
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};

use crate::generate::{Generator, OrderMix};
use crate::model::{Order, OrderStatus};
use crate::schema::OrderFilter;
use crate::webhook::WebhookSender;

pub struct SimState {
    orders: RwLock<BTreeMap<i64, Arc<Order>>>,
    generator: Mutex<Generator>,
    next_number: Mutex<i64>,
    pub webhooks: WebhookSender,
    /// Contract queries answered by the precompiled path.
    pub fast_answers: std::sync::atomic::AtomicU64,
}

impl SimState {
    pub fn new(seed: u64, first_number: i64) -> Self {
        Self {
            orders: RwLock::new(BTreeMap::new()),
            generator: Mutex::new(Generator::new(seed)),
            next_number: Mutex::new(first_number),
            webhooks: WebhookSender::new(),
            fast_answers: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Creates `count` orders from the generator and announces them (`order insert`).
    pub fn generate(&self, count: usize, mix: &OrderMix) -> Vec<i64> {
        let mut numbers = Vec::with_capacity(count);
        {
            let mut generator = self.generator.lock();
            let mut next = self.next_number.lock();
            let mut orders = self.orders.write();
            for _ in 0..count {
                let number = *next;
                *next += 1;
                orders.insert(number, Arc::new(generator.order(number, mix)));
                numbers.push(number);
            }
        }
        for n in &numbers {
            self.webhooks.announce("order", "insert", *n);
        }
        numbers
    }

    /// Stores an order as given (tests, or a loaded snapshot) and announces it.
    pub fn insert(&self, order: Order) {
        let number = order.number;
        self.orders.write().insert(number, Arc::new(order));
        self.webhooks.announce("order", "insert", number);
    }

    pub fn order(&self, number: i64) -> Option<Arc<Order>> {
        self.orders.read().get(&number).cloned()
    }

    pub fn order_by_id(&self, id: &str) -> Option<Arc<Order>> {
        self.orders.read().values().find(|o| o.id == id).cloned()
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
            match change(&mut order) {
                Ok(()) => {
                    order.touch();
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
                && filter.updated_at.as_ref().is_none_or(|range| {
                    range
                        .from
                        .as_deref()
                        .and_then(parse_time)
                        .is_none_or(|f| o.updated_at >= f)
                        && range
                            .to
                            .as_deref()
                            .and_then(parse_time)
                            .is_none_or(|t| o.updated_at <= t)
                })
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
