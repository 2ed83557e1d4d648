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
