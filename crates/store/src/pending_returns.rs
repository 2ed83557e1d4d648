//! Returns seen pending in Centra, read again by id until completed or deleted (the
//! returns' resync, ADR 0037).

use std::time::Duration;

use crate::{Store, StoreError};

impl Store {
    /// Records the returns as seen pending now (their next check is one interval away).
    pub async fn note_pending_returns(
        &self,
        tenant: &str,
        returns: &[(i64, i64)],
    ) -> Result<(), StoreError> {
        if returns.is_empty() {
            return Ok(());
        }
        let (ids, orders): (Vec<i64>, Vec<i64>) = returns.iter().copied().unzip();
        sqlx::query(
            "INSERT INTO pending_returns (tenant, return_id, order_number)
             SELECT $1, r.id, r.order_number FROM UNNEST($2::bigint[], $3::bigint[])
                 AS r(id, order_number)
             ON CONFLICT (tenant, return_id) DO UPDATE SET checked_at = now()",
        )
        .bind(tenant)
        .bind(&ids)
        .bind(&orders)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Forgets returns that are pending no longer (completed and stored, or deleted).
    pub async fn forget_pending_returns(
        &self,
        tenant: &str,
        return_ids: &[i64],
    ) -> Result<(), StoreError> {
        if return_ids.is_empty() {
            return Ok(());
        }
        sqlx::query("DELETE FROM pending_returns WHERE tenant = $1 AND return_id = ANY($2)")
            .bind(tenant)
            .bind(return_ids)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Up to `limit` pending returns not checked for `every`, the longest unchecked first;
    /// those seen first more than `keep` ago are forgotten (returned as the count).
    pub async fn pending_returns_due(
        &self,
        tenant: &str,
        every: Duration,
        keep: Duration,
        limit: i64,
    ) -> Result<(Vec<i64>, u64), StoreError> {
        let expired = sqlx::query(
            "DELETE FROM pending_returns
             WHERE tenant = $1 AND first_seen_at < now() - make_interval(secs => $2)",
        )
        .bind(tenant)
        .bind(keep.as_secs_f64())
        .execute(self.pool())
        .await?
        .rows_affected();
        let due: Vec<(i64,)> = sqlx::query_as(
            "SELECT return_id FROM pending_returns
             WHERE tenant = $1 AND checked_at <= now() - make_interval(secs => $2)
             ORDER BY checked_at LIMIT $3",
        )
        .bind(tenant)
        .bind(every.as_secs_f64())
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        Ok((due.into_iter().map(|(id,)| id).collect(), expired))
    }
}
