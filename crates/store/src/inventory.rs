//! Inventory pushing: the latest ERP stock and what Centra was told per (Centra warehouse,
//! SKU), and the units of known Centra orders that Centra holds allocated.

use sqlx::Row;

use crate::{Store, StoreError};

/// One (Centra warehouse, SKU) as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StockRow {
    pub warehouse: i64,
    pub sku: String,
    pub erp_available: i64,
    pub erp_version: i64,
    /// When the level was read from the ERP, µs since the epoch (0: unknown).
    pub erp_read_at: i64,
    pub pushed_physical: Option<i64>,
    pub pushed_sellable: Option<i64>,
    pub skip: Option<String>,
}

/// The ERP's latest word on one (Centra warehouse, SKU).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErpStock {
    pub warehouse: i64,
    pub sku: String,
    pub available: i64,
    pub version: i64,
    /// When the source read it from the ERP, µs since the epoch.
    pub read_at: i64,
}

/// What Centra accepted for one (warehouse, SKU).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pushed {
    pub warehouse: i64,
    pub sku: String,
    pub physical: i64,
    pub sellable: i64,
}

/// What [`Store::prune_commitments`] forgot.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pruned {
    /// Orders whose commitments went (cancelled, or shipped in full).
    pub orders: u64,
    /// Per SKU, the units of the posted orders forgotten (all shipped).
    pub shipped: std::collections::HashMap<String, i64>,
}

/// Units of Centra orders per SKU that Centra holds allocated: `pending` are not in the
/// ERP yet; `posted_unshipped` are in the ERP (so its available stock already excludes
/// them) but Centra has not recorded them shipped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Commitment {
    pub sku: String,
    pub pending: i64,
    pub posted_unshipped: i64,
    /// Units of these orders Centra has recorded shipped (it lowered its physical stock by
    /// them); only grows while the orders' rows are kept.
    pub shipped: i64,
    /// Of `posted_unshipped`, the orders posted recently. A stock level read before an
    /// order was posted may not show it yet.
    pub recent: Vec<RecentPost>,
}

/// An order posted recently, for one SKU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecentPost {
    /// When the ledger recorded it posted, µs since the epoch.
    pub posted_at: i64,
    /// When its posting began (the ERP cannot have had it before), µs since the epoch.
    pub started_at: i64,
    pub units: i64,
}

/// The item units of one Centra order: (ERP item, SKU, units), one entry per pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderUnits {
    pub order_number: i64,
    pub lines: Vec<(String, String, i64)>,
}

impl Store {
    pub async fn stock_rows(&self, tenant: &str) -> Result<Vec<StockRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT warehouse, sku, erp_available, erp_version, erp_read_at, pushed_physical,
                    pushed_sellable, skip
             FROM stock_levels WHERE tenant = $1",
        )
        .bind(tenant)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(StockRow {
                    warehouse: r.try_get("warehouse")?,
                    sku: r.try_get("sku")?,
                    erp_available: r.try_get("erp_available")?,
                    erp_version: r.try_get("erp_version")?,
                    erp_read_at: r.try_get("erp_read_at")?,
                    pushed_physical: r.try_get("pushed_physical")?,
                    pushed_sellable: r.try_get("pushed_sellable")?,
                    skip: r.try_get("skip")?,
                })
            })
            .collect()
    }

    /// Stores the ERP's latest levels. A level older than the stored one (by version)
    /// changes nothing; of two levels of one size in `levels`, the later counts.
    pub async fn save_erp_stock(
        &self,
        tenant: &str,
        levels: &[ErpStock],
    ) -> Result<(), StoreError> {
        let mut latest: std::collections::HashMap<(i64, &str), &ErpStock> =
            std::collections::HashMap::with_capacity(levels.len());
        for level in levels {
            let slot = latest
                .entry((level.warehouse, level.sku.as_str()))
                .or_insert(level);
            if slot.version < level.version {
                *slot = level;
            }
        }
        let latest: Vec<&ErpStock> = latest.into_values().collect();
        for chunk in latest.chunks(10_000) {
            let warehouses: Vec<i64> = chunk.iter().map(|l| l.warehouse).collect();
            let skus: Vec<&str> = chunk.iter().map(|l| l.sku.as_str()).collect();
            let available: Vec<i64> = chunk.iter().map(|l| l.available).collect();
            let versions: Vec<i64> = chunk.iter().map(|l| l.version).collect();
            let read_at: Vec<i64> = chunk.iter().map(|l| l.read_at).collect();
            sqlx::query(
                "INSERT INTO stock_levels (tenant, warehouse, sku, erp_available, erp_version,
                                           erp_read_at)
                 SELECT $1, * FROM UNNEST($2::bigint[], $3::text[], $4::bigint[], $5::bigint[],
                                          $6::bigint[])
                 ON CONFLICT (tenant, warehouse, sku) DO UPDATE
                 SET erp_available = EXCLUDED.erp_available,
                     erp_version = EXCLUDED.erp_version,
                     erp_read_at = EXCLUDED.erp_read_at,
                     updated_at = now()
                 WHERE stock_levels.erp_version < EXCLUDED.erp_version",
            )
            .bind(tenant)
            .bind(&warehouses)
            .bind(&skus)
            .bind(&available)
            .bind(&versions)
            .bind(&read_at)
            .execute(self.pool())
            .await?;
        }
        Ok(())
    }

    /// Records what Centra accepted.
    pub async fn mark_pushed(&self, tenant: &str, pushed: &[Pushed]) -> Result<(), StoreError> {
        let warehouses: Vec<i64> = pushed.iter().map(|p| p.warehouse).collect();
        let skus: Vec<&str> = pushed.iter().map(|p| p.sku.as_str()).collect();
        let physical: Vec<i64> = pushed.iter().map(|p| p.physical).collect();
        let sellable: Vec<i64> = pushed.iter().map(|p| p.sellable).collect();
        sqlx::query(
            "UPDATE stock_levels s
             SET pushed_physical = u.physical, pushed_sellable = u.sellable, pushed_at = now()
             FROM UNNEST($2::bigint[], $3::text[], $4::bigint[], $5::bigint[])
                  AS u(warehouse, sku, physical, sellable)
             WHERE s.tenant = $1 AND s.warehouse = u.warehouse AND s.sku = u.sku",
        )
        .bind(tenant)
        .bind(&warehouses)
        .bind(&skus)
        .bind(&physical)
        .bind(&sellable)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Remembers that Centra will not take a SKU (`None` clears it).
    pub async fn mark_stock_skip(
        &self,
        tenant: &str,
        warehouse: i64,
        sku: &str,
        reason: Option<&str>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE stock_levels SET skip = $4, updated_at = now()
             WHERE tenant = $1 AND warehouse = $2 AND sku = $3",
        )
        .bind(tenant)
        .bind(warehouse)
        .bind(sku)
        .bind(reason)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Records the item units of Centra orders, many per statement (replacing what an
    /// earlier version of an order said). Each order's lines are (ERP item, SKU, units).
    pub async fn record_commitments(
        &self,
        tenant: &str,
        orders: &[OrderUnits],
    ) -> Result<(), StoreError> {
        // The same order twice in one batch (a redelivery): the later one counts.
        let latest: std::collections::BTreeMap<i64, &OrderUnits> =
            orders.iter().map(|o| (o.order_number, o)).collect();
        // Each order's lines, one per (ERP item, SKU) summed, laid end to end in three
        // arrays; an order is the slice `first..=last` of them (1-based, as in SQL; an
        // order without lines has `last < first`).
        let mut numbers = Vec::with_capacity(latest.len());
        let (mut first, mut last) = (Vec::new(), Vec::new());
        let (mut items, mut skus, mut units) = (Vec::new(), Vec::new(), Vec::new());
        for (number, order) in &latest {
            let mut lines: std::collections::BTreeMap<(&str, &str), i64> = Default::default();
            for (item, sku, q) in &order.lines {
                *lines.entry((item.as_str(), sku.as_str())).or_default() += *q;
            }
            numbers.push(*number);
            first.push(items.len() as i32 + 1);
            for ((item, sku), q) in lines {
                items.push(item);
                skus.push(sku);
                units.push(q);
            }
            last.push(items.len() as i32);
        }
        // One statement, one row per order, replacing what an earlier version said;
        // unchanged rows are not rewritten.
        sqlx::query(
            "INSERT INTO order_commitments (tenant, order_number, erp_items, skus, quantities)
             SELECT $1, o.order_number, ($2::text[])[o.first:o.last], ($3::text[])[o.first:o.last],
                    ($4::bigint[])[o.first:o.last]
             FROM UNNEST($5::bigint[], $6::int4[], $7::int4[]) AS o(order_number, first, last)
             ON CONFLICT (tenant, order_number) DO UPDATE
                 SET erp_items = EXCLUDED.erp_items, skus = EXCLUDED.skus,
                     quantities = EXCLUDED.quantities
                 WHERE (order_commitments.erp_items, order_commitments.skus,
                        order_commitments.quantities)
                       IS DISTINCT FROM (EXCLUDED.erp_items, EXCLUDED.skus, EXCLUDED.quantities)",
        )
        .bind(tenant)
        .bind(&items)
        .bind(&skus)
        .bind(&units)
        .bind(&numbers)
        .bind(&first)
        .bind(&last)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Units per SKU that Centra holds allocated for orders Ferry knows: pending (not in
    /// the ERP yet) and posted but not yet recorded shipped in Centra. Cancelled orders
    /// hold nothing. Orders posted within `recent` are also listed with their posting
    /// time, so the caller can count them pending for a size whose level predates them.
    pub async fn commitments(
        &self,
        tenant: &str,
        recent: std::time::Duration,
    ) -> Result<Vec<Commitment>, StoreError> {
        let rows = sqlx::query(
            "WITH shipped AS (
                 -- Only the shipments of orders still committed: the ledger of every
                 -- shipment ever grows without end.
                 SELECT s.order_number, i.key AS erp_item, sum(i.value::bigint) AS units
                 FROM order_commitments oc
                 JOIN shipment_ledger s
                   ON s.tenant = oc.tenant AND s.order_number = oc.order_number,
                 jsonb_each_text(s.items) i
                 WHERE oc.tenant = $1 AND s.state = 'sent'
                 GROUP BY 1, 2)
             SELECT x.sku,
                    coalesce(sum(x.quantity) FILTER (WHERE l.state <> 'posted'), 0)::bigint
                        AS pending,
                    coalesce(sum(greatest(x.quantity - coalesce(sh.units, 0), 0))
                        FILTER (WHERE l.state = 'posted'), 0)::bigint AS posted_unshipped,
                    coalesce(sum(least(x.quantity, coalesce(sh.units, 0)))
                        FILTER (WHERE l.state = 'posted'), 0)::bigint AS shipped,
                    coalesce(array_agg((extract(epoch FROM l.posted_at) * 1000000)::bigint)
                        FILTER (WHERE l.state = 'posted'
                                AND l.posted_at > now() - make_interval(secs => $2)),
                        '{}') AS recent_at,
                    coalesce(array_agg((extract(epoch FROM coalesce(l.posting_started_at, l.posted_at))
                                        * 1000000)::bigint)
                        FILTER (WHERE l.state = 'posted'
                                AND l.posted_at > now() - make_interval(secs => $2)),
                        '{}') AS recent_started,
                    coalesce(array_agg(greatest(x.quantity - coalesce(sh.units, 0), 0)::bigint)
                        FILTER (WHERE l.state = 'posted'
                                AND l.posted_at > now() - make_interval(secs => $2)),
                        '{}') AS recent_units
             FROM order_commitments c
             JOIN order_ledger l ON l.tenant = c.tenant AND l.order_number = c.order_number
             CROSS JOIN LATERAL unnest(c.erp_items, c.skus, c.quantities)
                 AS x(erp_item, sku, quantity)
             LEFT JOIN shipped sh ON sh.order_number = c.order_number AND sh.erp_item = x.erp_item
             WHERE c.tenant = $1 AND l.state <> 'cancelled'
             GROUP BY x.sku",
        )
        .bind(tenant)
        .bind(recent.as_secs_f64())
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Commitment {
                    sku: r.try_get("sku")?,
                    pending: r.try_get("pending")?,
                    posted_unshipped: r.try_get("posted_unshipped")?,
                    shipped: r.try_get("shipped")?,
                    recent: {
                        let at: Vec<i64> = r.try_get("recent_at")?;
                        let started: Vec<i64> = r.try_get("recent_started")?;
                        let units: Vec<i64> = r.try_get("recent_units")?;
                        at.into_iter()
                            .zip(started)
                            .zip(units)
                            .map(|((posted_at, started_at), units)| RecentPost {
                                posted_at,
                                started_at,
                                units,
                            })
                            .collect()
                    },
                })
            })
            .collect()
    }

    /// Forgets the commitments of orders that no longer hold stock in Centra: cancelled,
    /// or posted and shipped in full. Returns, per SKU, the units of the forgotten posted
    /// orders — what [`Store::commitments`] counted `shipped` for them, and no longer will
    /// — so a reader of that running total can take them off its own.
    pub async fn prune_commitments(&self, tenant: &str) -> Result<Pruned, StoreError> {
        let rows = sqlx::query(
            "DELETE FROM order_commitments c
             USING order_ledger l
             WHERE c.tenant = $1 AND l.tenant = c.tenant AND l.order_number = c.order_number
               AND (l.state = 'cancelled'
                    OR (l.state = 'posted' AND NOT EXISTS (
                        SELECT 1 FROM unnest(c.erp_items, c.quantities) AS x(erp_item, quantity)
                        WHERE x.quantity > (
                            SELECT coalesce(sum((s.items ->> x.erp_item)::bigint), 0)
                            FROM shipment_ledger s
                            WHERE s.tenant = c.tenant AND s.order_number = c.order_number
                              AND s.state = 'sent'))))
             RETURNING l.state, c.skus, c.quantities",
        )
        .bind(tenant)
        .fetch_all(self.pool())
        .await?;
        let mut pruned = Pruned {
            orders: rows.len() as u64,
            ..Pruned::default()
        };
        for row in rows {
            let state: String = row.try_get("state")?;
            if state != "posted" {
                continue;
            }
            let skus: Vec<String> = row.try_get("skus")?;
            let quantities: Vec<i64> = row.try_get("quantities")?;
            for (sku, units) in skus.into_iter().zip(quantities) {
                *pruned.shipped.entry(sku).or_default() += units;
            }
        }
        Ok(pruned)
    }
}
