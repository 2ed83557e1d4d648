//! What the console's sync health page reads: orders received per minute (and how many of
//! them are posted) over the last hour, and the stock drift still open.

use chrono::{DateTime, Utc};

use crate::{Store, StoreError};

/// One minute of orders.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct MinuteRow {
    pub minute: DateTime<Utc>,
    pub received: i64,
    pub posted: i64,
}

impl Store {
    /// Orders received per minute over the last `minutes`, with how many of each minute's
    /// are in the ERP now (minutes without orders are absent).
    pub async fn orders_per_minute(
        &self,
        tenant: &str,
        minutes: i32,
    ) -> Result<Vec<MinuteRow>, StoreError> {
        Ok(sqlx::query_as::<_, MinuteRow>(
            "SELECT date_trunc('minute', received_at) AS minute, count(*) AS received,
                    count(*) FILTER (WHERE state = 'posted') AS posted
             FROM order_ledger
             WHERE tenant = $1 AND received_at > now() - make_interval(mins => $2)
             GROUP BY 1 ORDER BY 1",
        )
        .bind(tenant)
        .bind(minutes)
        .fetch_all(self.pool())
        .await?)
    }

    /// SKUs whose Centra stock differs from what Ferry expects, still open: how many, and
    /// the units apart over them all.
    pub async fn open_stock_drift(&self, tenant: &str) -> Result<(i64, i64), StoreError> {
        Ok(sqlx::query_as::<_, (i64, i64)>(
            "SELECT count(*), COALESCE(sum(abs(last_expected - last_centra)), 0)::bigint
             FROM stock_drift WHERE tenant = $1 AND cleared_at IS NULL",
        )
        .bind(tenant)
        .fetch_one(self.pool())
        .await?)
    }
}

impl Store {
    /// Records a replica's ERP breaker for `tenant` (open: posting paused), keeping the
    /// time it last changed.
    pub async fn record_breaker(
        &self,
        tenant: &str,
        replica: uuid::Uuid,
        open: bool,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO erp_breakers (tenant, replica, open) VALUES ($1, $2, $3)
             ON CONFLICT (tenant, replica) DO UPDATE
             SET since = CASE WHEN erp_breakers.open = EXCLUDED.open THEN erp_breakers.since
                              ELSE now() END,
                 open = EXCLUDED.open, seen_at = now()",
        )
        .bind(tenant)
        .bind(replica)
        .bind(open)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Since when posting to `tenant`'s ERP has been paused by a live replica's open
    /// breaker; `None` while every breaker is closed.
    pub async fn erp_breaker_open_since(
        &self,
        tenant: &str,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT min(since) FROM erp_breakers
             WHERE tenant = $1 AND open AND seen_at > now() - interval '1 minute'",
        )
        .bind(tenant)
        .fetch_one(self.pool())
        .await?)
    }
}
