//! Bulk actions over a filter as named operations: created once per request, their
//! progress and first failures kept as they run, resumable from the last exception handled.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::{Store, StoreError};

/// Failures kept with an operation (the rest are counted).
const ERRORS_KEPT: i32 = 20;

/// A bulk operation as stored.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct BulkRow {
    pub id: Uuid,
    pub tenant: String,
    pub action: String,
    pub filter: String,
    pub note: String,
    pub created_by: String,
    pub role: String,
    pub state: String,
    pub total: i64,
    pub succeeded: i64,
    pub failed: i64,
    pub errors: sqlx::types::Json<Vec<String>>,
    pub after_due: Option<DateTime<Utc>>,
    pub after_id: Option<Uuid>,
    pub cancel_requested: bool,
    pub created_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

/// A bulk operation to start.
#[derive(Debug, Clone)]
pub struct NewBulk<'a> {
    pub tenant: &'a str,
    pub action: &'a str,
    pub filter: &'a str,
    pub note: &'a str,
    pub created_by: &'a str,
    pub role: &'a str,
    pub request_id: Option<&'a str>,
    pub total: i64,
}

impl Store {
    /// Records a new operation; the same caller's same `request_id` gets the one it
    /// started before. Returns its id and whether it is new.
    pub async fn create_bulk(&self, new: &NewBulk<'_>) -> Result<(Uuid, bool), StoreError> {
        let id = Uuid::now_v7();
        let created: Option<Uuid> = sqlx::query_scalar(
            "INSERT INTO bulk_operations (id, tenant, action, filter, note, created_by, role,
                                          request_id, total)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
             ON CONFLICT (created_by, request_id) WHERE request_id IS NOT NULL DO NOTHING
             RETURNING id",
        )
        .bind(id)
        .bind(new.tenant)
        .bind(new.action)
        .bind(new.filter)
        .bind(new.note)
        .bind(new.created_by)
        .bind(new.role)
        .bind(new.request_id)
        .bind(new.total)
        .fetch_optional(self.pool())
        .await?;
        if let Some(id) = created {
            return Ok((id, true));
        }
        let existing: Uuid = sqlx::query_scalar(
            "SELECT id FROM bulk_operations WHERE created_by = $1 AND request_id = $2",
        )
        .bind(new.created_by)
        .bind(new.request_id)
        .fetch_one(self.pool())
        .await?;
        Ok((existing, false))
    }

    pub async fn bulk(&self, id: Uuid) -> Result<Option<BulkRow>, StoreError> {
        Ok(sqlx::query_as::<_, BulkRow>(
            "SELECT id, tenant, action, filter, note, created_by, role, state, total, succeeded,
                    failed, errors, after_due, after_id, cancel_requested, created_at, finished_at
             FROM bulk_operations WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(self.pool())
        .await?)
    }

    /// Records a page done: counts, the first failures, where to go on from.
    pub async fn bulk_progress(
        &self,
        id: Uuid,
        succeeded: i64,
        failed: i64,
        errors: &[String],
        after: (DateTime<Utc>, Uuid),
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE bulk_operations SET
                 succeeded = succeeded + $2, failed = failed + $3,
                 errors = CASE WHEN jsonb_array_length(errors) >= $6 THEN errors
                               ELSE (SELECT COALESCE(jsonb_agg(e), '[]') FROM (
                                        SELECT e FROM jsonb_array_elements(errors || $4) AS e
                                        LIMIT $6) AS kept) END,
                 after_due = $5, after_id = $7, updated_at = now()
             WHERE id = $1",
        )
        .bind(id)
        .bind(succeeded)
        .bind(failed)
        .bind(sqlx::types::Json(errors))
        .bind(after.0)
        .bind(ERRORS_KEPT)
        .bind(after.1)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Ends a running operation as `state` (done, cancelled).
    pub async fn finish_bulk(&self, id: Uuid, state: &str) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE bulk_operations SET state = $2, finished_at = now(), updated_at = now()
             WHERE id = $1 AND state = 'running'",
        )
        .bind(id)
        .bind(state)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Asks a running operation to stop after the page in hand.
    pub async fn cancel_bulk(&self, id: Uuid) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE bulk_operations SET cancel_requested = true WHERE id = $1 AND state = 'running'",
        )
        .bind(id)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Running operations no one has moved for `idle` (their runner stopped): to resume.
    pub async fn stalled_bulks(
        &self,
        tenant: &str,
        idle: std::time::Duration,
    ) -> Result<Vec<Uuid>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT id FROM bulk_operations
             WHERE tenant = $1 AND state = 'running'
               AND updated_at < now() - make_interval(secs => $2)",
        )
        .bind(tenant)
        .bind(idle.as_secs_f64())
        .fetch_all(self.pool())
        .await?)
    }

    /// Marks an operation as moved (a runner has it), so no other runner resumes it.
    pub async fn touch_bulk(&self, id: Uuid) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE bulk_operations SET updated_at = now() WHERE id = $1 AND state = 'running'",
        )
        .bind(id)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// A page of a bulk retry, recorded at once: the orders the ERP refused made `ready`
    /// again (before their work is re-driven).
    pub async fn ready_rejected_orders(
        &self,
        tenant: &str,
        orders: &[i64],
    ) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "UPDATE order_ledger SET state = 'ready', updated_at = now()
             WHERE tenant = $1 AND order_number = ANY($2) AND state = 'rejected'",
        )
        .bind(tenant)
        .bind(orders)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected())
    }

    /// A page of a bulk retry, recorded at once once its work is re-driven: the open
    /// exceptions among `ids` become `retrying`, each with its audit row.
    pub async fn mark_retrying(
        &self,
        ids: &[Uuid],
        actor: &str,
        note: &str,
    ) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "WITH moved AS (
                 UPDATE exceptions SET state = 'retrying', retried_at = now()
                 WHERE id = ANY($1) AND state IN ('open', 'retrying')
                 RETURNING id, tenant)
             INSERT INTO exception_audit (exception_id, tenant, actor, action, note)
             SELECT id, tenant, $2, 'retry', $3 FROM moved",
        )
        .bind(ids)
        .bind(actor)
        .bind(note)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected())
    }
}
