//! Stock per size and warehouse: what an order reserves when it is confirmed (allocated or
//! demand), what a shipment takes out, and `setStock` / `changeStock`.

use super::*;

/// Units of a line's reservation taken from demand and from allocated stock.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Taken {
    demand: i64,
    allocated: i64,
}

/// The stocked SKUs a line consumes per unit: its own, or a bundle's components.
pub(super) fn stocked_parts(line: &crate::model::OrderLine) -> Vec<(String, i64)> {
    if line.bundle_items.is_empty() {
        vec![(line.sku.clone(), 1)]
    } else {
        line.bundle_items
            .iter()
            .map(|b| (b.sku.clone(), b.quantity))
            .collect()
    }
}

impl Ops {
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

    pub(crate) fn level_mut(&mut self, size: usize, warehouse: i64) -> &mut StockLevel {
        self.stock.entry((size, warehouse)).or_default()
    }

    // ----- events and webhooks -------------------------------------------------------

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
    pub(crate) fn unreserve(
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
    pub(crate) fn release(&mut self, order_number: i64, line_id: i64, units: i64, remove: bool) {
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
    pub(crate) fn ship_out(&mut self, order_number: i64, line_id: i64, units: i64) {
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

    pub(crate) fn record_stock_change(
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
}
