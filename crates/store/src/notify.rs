//! The notification queue: what each team is to be told about its exceptions (raised,
//! overdue), once per exception and event, read by each channel from its own cursor.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::{Store, StoreError};

/// One queued notice with what the message says about its exception.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Notice {
    /// The queue's id: a channel's cursor.
    pub id: i64,
    pub event: String,
    pub exception_id: Uuid,
    pub kind: String,
    pub message: String,
    pub order_number: Option<i64>,
    pub amount_minor: Option<i64>,
    pub currency: Option<String>,
    /// The exception's state now: a notice for one already resolved is not worth a line.
    pub state: String,
    pub sla_due: DateTime<Utc>,
    pub queued_at: DateTime<Utc>,
}

impl Store {
    /// Queues a notice; false when this exception's event was queued before.
    pub async fn queue_notice(
        &self,
        tenant: &str,
        owner: &str,
        event: &str,
        exception: Uuid,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "INSERT INTO notification_queue (tenant, owner, event, exception_id)
             VALUES ($1, $2, $3, $4) ON CONFLICT (exception_id, event) DO NOTHING",
        )
        .bind(tenant)
        .bind(owner)
        .bind(event)
        .bind(exception)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Queues an `overdue` notice for every open exception of the tenant past its due
    /// time that has none; returns how many were queued.
    pub async fn queue_overdue_notices(&self, tenant: &str) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "INSERT INTO notification_queue (tenant, owner, event, exception_id)
             SELECT e.tenant, e.owner, 'overdue', e.id FROM exceptions e
             WHERE e.tenant = $1 AND e.state IN ('open', 'retrying') AND e.sla_due < now()
               AND NOT EXISTS (SELECT 1 FROM notification_queue q
                               WHERE q.exception_id = e.id AND q.event = 'overdue')
             ON CONFLICT (exception_id, event) DO NOTHING",
        )
        .bind(tenant)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    /// A channel's next notices: the team's, of the events it hears, after its cursor
    /// (`None`: a new channel, which starts with the last day's).
    pub async fn notices_after(
        &self,
        tenant: &str,
        owner: &str,
        events: &[String],
        after: Option<i64>,
        limit: i64,
    ) -> Result<Vec<Notice>, StoreError> {
        let rows = sqlx::query_as::<_, Notice>(
            "SELECT q.id, q.event, q.exception_id, e.kind, e.message, e.order_number,
                    e.amount_minor, e.currency, e.state, e.sla_due, q.queued_at
             FROM notification_queue q JOIN exceptions e ON e.id = q.exception_id
             WHERE q.tenant = $1 AND q.owner = $2 AND q.event = ANY($3)
               AND CASE WHEN $4::bigint IS NULL THEN q.queued_at > now() - interval '1 day'
                        ELSE q.id > $4 END
             ORDER BY q.id LIMIT $5",
        )
        .bind(tenant)
        .bind(owner)
        .bind(events)
        .bind(after)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows)
    }

    /// When a channel's waiting notices were queued, first and last (`None`: none wait):
    /// the channel sends once the first has waited its window or the storm has calmed.
    pub async fn notices_waiting(
        &self,
        tenant: &str,
        owner: &str,
        events: &[String],
        after: Option<i64>,
    ) -> Result<Option<(DateTime<Utc>, DateTime<Utc>)>, StoreError> {
        let row: (Option<DateTime<Utc>>, Option<DateTime<Utc>>) = sqlx::query_as(
            "SELECT min(q.queued_at), max(q.queued_at) FROM notification_queue q
             WHERE q.tenant = $1 AND q.owner = $2 AND q.event = ANY($3)
               AND CASE WHEN $4::bigint IS NULL THEN q.queued_at > now() - interval '1 day'
                        ELSE q.id > $4 END",
        )
        .bind(tenant)
        .bind(owner)
        .bind(events)
        .bind(after)
        .fetch_one(&self.pool)
        .await?;
        Ok(row.0.zip(row.1))
    }

    /// Forgets notices older than `days`: every channel has long passed them.
    pub async fn prune_notices(&self, tenant: &str, days: i32) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "DELETE FROM notification_queue
             WHERE tenant = $1 AND queued_at < now() - make_interval(days => $2)",
        )
        .bind(tenant)
        .bind(days)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }
}
