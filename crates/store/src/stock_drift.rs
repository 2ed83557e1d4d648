//! The reconciler's stock check: what Ferry expects Centra to offer per (Centra warehouse,
//! SKU), and the drift it found (ADR 0030).

use chrono::{DateTime, Utc};

use crate::{Store, StoreError};

/// What Ferry expects Centra to offer of one SKU in one Centra warehouse: what it last told
/// Centra was sellable, less the units of orders Ferry has heard of since (Centra
/// allocated those from the allocation warehouse as they were placed).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct StockExpectation {
    pub warehouse: i64,
    pub sku: String,
    pub expected: i64,
}

/// One SKU's check: what Ferry expected and what Centra offered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StockFinding {
    pub warehouse: i64,
    pub sku: String,
    pub expected: i64,
    pub centra: i64,
}

/// Drift as recorded: the first finding's figures, the last check's, and when it cleared.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct StockDriftRow {
    pub warehouse: i64,
    pub sku: String,
    pub expected: i64,
    pub centra: i64,
    pub found_at: DateTime<Utc>,
    pub last_expected: i64,
    pub last_centra: i64,
    pub cleared_at: Option<DateTime<Utc>>,
}

impl Store {
    /// A page of the SKUs Ferry has pushed to Centra (and Centra took), after
    /// `(warehouse, sku)` in that order, with what Ferry expects Centra to offer of each.
    pub async fn stock_expectations(
        &self,
        tenant: &str,
        after: (i64, &str),
        allocation_warehouse: i64,
        limit: i64,
    ) -> Result<Vec<StockExpectation>, StoreError> {
        Ok(sqlx::query_as::<_, StockExpectation>(
            "SELECT l.warehouse, l.sku,
                    l.pushed_sellable - CASE WHEN l.warehouse = $4 THEN COALESCE((
                        SELECT sum(u.units)
                        FROM order_commitments c, UNNEST(c.skus, c.quantities) AS u(sku, units)
                        WHERE c.tenant = l.tenant AND c.created_at > l.pushed_at
                          AND u.sku = l.sku), 0)::bigint ELSE 0 END AS expected
             FROM stock_levels l
             WHERE l.tenant = $1 AND l.pushed_sellable IS NOT NULL AND l.skip IS NULL
               AND (l.warehouse, l.sku) > ($2, $3)
             ORDER BY l.warehouse, l.sku
             LIMIT $5",
        )
        .bind(tenant)
        .bind(after.0)
        .bind(after.1)
        .bind(allocation_warehouse)
        .bind(limit)
        .fetch_all(self.pool())
        .await?)
    }

    /// Records a page's findings: drift opened (or its last figures updated) for each of
    /// `drifting`, closed for each of `steady` that had drift open. Returns the `steady`
    /// SKUs whose drift was closed, as `(warehouse, sku)`.
    pub async fn record_stock_drift(
        &self,
        tenant: &str,
        drifting: &[StockFinding],
        steady: &[(i64, String)],
    ) -> Result<Vec<(i64, String)>, StoreError> {
        let mut tx = self.pool().begin().await?;
        for d in drifting {
            sqlx::query(
                "INSERT INTO stock_drift
                     (tenant, warehouse, sku, expected, centra, last_expected, last_centra)
                 VALUES ($1, $2, $3, $4, $5, $4, $5)
                 ON CONFLICT (tenant, warehouse, sku) WHERE cleared_at IS NULL DO UPDATE SET
                     last_expected = EXCLUDED.last_expected,
                     last_centra = EXCLUDED.last_centra, checked_at = now()",
            )
            .bind(tenant)
            .bind(d.warehouse)
            .bind(&d.sku)
            .bind(d.expected)
            .bind(d.centra)
            .execute(&mut *tx)
            .await?;
        }
        let warehouses: Vec<i64> = steady.iter().map(|(w, _)| *w).collect();
        let skus: Vec<&str> = steady.iter().map(|(_, s)| s.as_str()).collect();
        let cleared: Vec<(i64, String)> = sqlx::query_as(
            "UPDATE stock_drift d SET cleared_at = now(), checked_at = now()
             FROM UNNEST($2::bigint[], $3::text[]) AS s(warehouse, sku)
             WHERE d.tenant = $1 AND d.cleared_at IS NULL
               AND d.warehouse = s.warehouse AND d.sku = s.sku
             RETURNING d.warehouse, d.sku",
        )
        .bind(tenant)
        .bind(&warehouses)
        .bind(&skus)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(cleared)
    }

    /// Drift first found in `from..to`, cleared or not, by warehouse and SKU.
    pub async fn stock_drift_found(
        &self,
        tenant: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<StockDriftRow>, StoreError> {
        Ok(sqlx::query_as::<_, StockDriftRow>(
            "SELECT warehouse, sku, expected, centra, found_at, last_expected, last_centra,
                    cleared_at
             FROM stock_drift WHERE tenant = $1 AND found_at >= $2 AND found_at < $3
             ORDER BY warehouse, sku, found_at",
        )
        .bind(tenant)
        .bind(from)
        .bind(to)
        .fetch_all(self.pool())
        .await?)
    }
}
