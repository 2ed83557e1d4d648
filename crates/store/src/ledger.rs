//! The order ledger: the state of every order, guarded so that a stale snapshot never
//! overwrites a newer one, and an order reaches "posted" once.
//!
//! ```text
//!  snapshot ─► held / rejected / cancelled / ready ─► posting ─► posted
//!                      ▲ (newer snapshot)                │  ▲
//!                      └─────────────────────            ▼  │ (lookup finds it)
//!                                               possibly_created
//! ```

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::Row;

use crate::{Store, StoreError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LedgerState {
    Held,
    Rejected,
    Cancelled,
    Ready,
    Posting,
    PossiblyCreated,
    Posted,
}

impl LedgerState {
    pub fn as_str(&self) -> &'static str {
        match self {
            LedgerState::Held => "held",
            LedgerState::Rejected => "rejected",
            LedgerState::Cancelled => "cancelled",
            LedgerState::Ready => "ready",
            LedgerState::Posting => "posting",
            LedgerState::PossiblyCreated => "possibly_created",
            LedgerState::Posted => "posted",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "held" => LedgerState::Held,
            "rejected" => LedgerState::Rejected,
            "cancelled" => LedgerState::Cancelled,
            "ready" => LedgerState::Ready,
            "posting" => LedgerState::Posting,
            "possibly_created" => LedgerState::PossiblyCreated,
            "posted" => LedgerState::Posted,
            _ => return None,
        })
    }

    /// The ERP may already hold a document for the order.
    pub fn reached_erp(&self) -> bool {
        matches!(
            self,
            LedgerState::Posting | LedgerState::PossiblyCreated | LedgerState::Posted
        )
    }
}

impl fmt::Display for LedgerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

fn state_of(s: &str) -> Result<LedgerState, StoreError> {
    LedgerState::parse(s).ok_or_else(|| {
        StoreError::Database(sqlx::Error::Decode(
            format!("unknown ledger state {s:?}").into(),
        ))
    })
}

/// What the transform learned from one snapshot.
#[derive(Debug, Clone)]
pub struct SnapshotRecord<'a> {
    pub tenant: &'a str,
    pub order_number: i64,
    pub centra_order_id: &'a str,
    pub snapshot_hash: &'a str,
    pub fetched_at: DateTime<Utc>,
    pub first_accepted_at: Option<DateTime<Utc>>,
    /// Hash of the sales order's lines and totals.
    pub order_fingerprint: &'a str,
    /// Held, Rejected, Cancelled or Ready.
    pub state: LedgerState,
    pub currency: &'a str,
    pub gross_minor: Option<i64>,
    pub tax_minor: Option<i64>,
    pub body: &'a [u8],
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SnapshotOutcome {
    /// The ledger now reflects this snapshot.
    Applied,
    /// This very snapshot was recorded before (a redelivery or duplicate).
    AlreadyApplied(LedgerState),
    /// A newer snapshot is already recorded; this one changes nothing.
    Stale,
    /// The order is already (being) posted; a newer snapshot may be an amendment.
    /// Carries the state and the fingerprint of what was posted.
    AfterPosting(LedgerState, String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BeginPosting {
    /// Go ahead. `previous` says whether an earlier attempt may have reached the ERP.
    Proceed { previous: LedgerState, attempts: i32 },
    /// Already posted: nothing to do.
    AlreadyPosted { erp_reference: String },
    /// Another attempt holds the order right now.
    Busy,
    /// The ledger no longer wants this snapshot posted (newer snapshot, hold, cancel).
    Superseded(LedgerState),
    /// The ledger has never heard of the order.
    Missing,
}

/// One ledger row.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct LedgerRow {
    pub tenant: String,
    pub order_number: i64,
    pub centra_order_id: String,
    pub state: String,
    pub snapshot_hash: String,
    pub snapshot_fetched_at: DateTime<Utc>,
    pub order_fingerprint: String,
    pub currency: String,
    pub gross_minor: Option<i64>,
    pub tax_minor: Option<i64>,
    pub erp_reference: Option<String>,
    pub erp_gross_minor: Option<i64>,
    pub erp_tax_minor: Option<i64>,
    pub post_attempts: i32,
    pub first_accepted_at: Option<DateTime<Utc>>,
    pub received_at: DateTime<Utc>,
    pub transformed_at: Option<DateTime<Utc>>,
    pub posting_started_at: Option<DateTime<Utc>>,
    pub posted_at: Option<DateTime<Utc>>,
}

impl Store {
    /// Records a transformed snapshot (and its body) in one statement. The guard is the
    /// fetch time: only a later read of Centra may change the row, and never once the
    /// order has gone to the ERP.
    pub async fn record_snapshot(&self, r: &SnapshotRecord<'_>) -> Result<SnapshotOutcome, StoreError> {
        let applied = sqlx::query(
            "WITH body AS (
                 INSERT INTO order_snapshots (tenant, order_number, snapshot_hash, fetched_at, body)
                 VALUES ($1, $2, $4, $5, $11)
                 ON CONFLICT DO NOTHING
             )
             INSERT INTO order_ledger (tenant, order_number, centra_order_id, snapshot_hash,
                                       snapshot_fetched_at, first_accepted_at, state, currency,
                                       gross_minor, tax_minor, order_fingerprint, transformed_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $12, now())
             ON CONFLICT (tenant, order_number) DO UPDATE SET
                 centra_order_id = EXCLUDED.centra_order_id,
                 snapshot_hash = EXCLUDED.snapshot_hash,
                 snapshot_fetched_at = EXCLUDED.snapshot_fetched_at,
                 first_accepted_at = LEAST(order_ledger.first_accepted_at, EXCLUDED.first_accepted_at),
                 state = EXCLUDED.state,
                 currency = EXCLUDED.currency,
                 gross_minor = EXCLUDED.gross_minor,
                 tax_minor = EXCLUDED.tax_minor,
                 order_fingerprint = EXCLUDED.order_fingerprint,
                 transformed_at = now(),
                 updated_at = now()
             WHERE order_ledger.state NOT IN ('posting', 'possibly_created', 'posted')
               AND order_ledger.snapshot_fetched_at < EXCLUDED.snapshot_fetched_at
             RETURNING 1",
        )
        .bind(r.tenant)
        .bind(r.order_number)
        .bind(r.centra_order_id)
        .bind(r.snapshot_hash)
        .bind(r.fetched_at)
        .bind(r.first_accepted_at)
        .bind(r.state.as_str())
        .bind(r.currency)
        .bind(r.gross_minor)
        .bind(r.tax_minor)
        .bind(r.body)
        .bind(r.order_fingerprint)
        .fetch_optional(self.pool())
        .await?;
        if applied.is_some() {
            return Ok(SnapshotOutcome::Applied);
        }
        let row = sqlx::query(
            "SELECT state, snapshot_hash, order_fingerprint FROM order_ledger
             WHERE tenant = $1 AND order_number = $2",
        )
        .bind(r.tenant)
        .bind(r.order_number)
        .fetch_one(self.pool())
        .await?;
        let state = state_of(row.try_get("state")?)?;
        let hash: String = row.try_get("snapshot_hash")?;
        Ok(if hash == r.snapshot_hash {
            SnapshotOutcome::AlreadyApplied(state)
        } else if state.reached_erp() {
            SnapshotOutcome::AfterPosting(state, row.try_get("order_fingerprint")?)
        } else {
            SnapshotOutcome::Stale
        })
    }

    /// Claims an order for posting. A claim older than `lease` is considered abandoned
    /// (a crashed writer) and may be taken over; the taker must look the order up in the
    /// ERP before creating it.
    pub async fn begin_posting(
        &self,
        tenant: &str,
        order_number: i64,
        snapshot_hash: &str,
        lease: Duration,
    ) -> Result<BeginPosting, StoreError> {
        let lease_secs = lease.as_secs_f64();
        let claimed = sqlx::query(
            "WITH prev AS (
                 SELECT state FROM order_ledger
                 WHERE tenant = $1 AND order_number = $2 FOR UPDATE
             )
             UPDATE order_ledger l SET state = 'posting', posting_started_at = now(),
                    post_attempts = l.post_attempts + 1, updated_at = now()
             FROM prev
             WHERE l.tenant = $1 AND l.order_number = $2 AND l.snapshot_hash = $3
               AND (l.state IN ('ready', 'possibly_created')
                    OR (l.state = 'posting'
                        AND l.posting_started_at < now() - make_interval(secs => $4)))
             RETURNING prev.state AS previous, l.post_attempts",
        )
        .bind(tenant)
        .bind(order_number)
        .bind(snapshot_hash)
        .bind(lease_secs)
        .fetch_optional(self.pool())
        .await?;
        if let Some(row) = claimed {
            return Ok(BeginPosting::Proceed {
                previous: state_of(row.try_get("previous")?)?,
                attempts: row.try_get("post_attempts")?,
            });
        }
        let current = sqlx::query(
            "SELECT state, snapshot_hash, erp_reference FROM order_ledger
             WHERE tenant = $1 AND order_number = $2",
        )
        .bind(tenant)
        .bind(order_number)
        .fetch_optional(self.pool())
        .await?;
        let Some(row) = current else {
            return Ok(BeginPosting::Missing);
        };
        let state = state_of(row.try_get("state")?)?;
        Ok(match state {
            LedgerState::Posted => BeginPosting::AlreadyPosted {
                erp_reference: row
                    .try_get::<Option<String>, _>("erp_reference")?
                    .unwrap_or_default(),
            },
            LedgerState::Posting => BeginPosting::Busy,
            other => BeginPosting::Superseded(other),
        })
    }

    /// The ERP call timed out: the document may exist. A lookup settles it before any retry.
    pub async fn mark_possibly_created(&self, tenant: &str, order_number: i64) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE order_ledger SET state = 'possibly_created', updated_at = now()
             WHERE tenant = $1 AND order_number = $2 AND state = 'posting'",
        )
        .bind(tenant)
        .bind(order_number)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Gives a claimed order back (the ERP said no, for now, before creating anything).
    pub async fn release_posting(&self, tenant: &str, order_number: i64) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE order_ledger SET state = 'ready', updated_at = now()
             WHERE tenant = $1 AND order_number = $2 AND state = 'posting'",
        )
        .bind(tenant)
        .bind(order_number)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// The ERP refused the order: it is parked as rejected (an exception says why).
    pub async fn mark_rejected(&self, tenant: &str, order_number: i64) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE order_ledger SET state = 'rejected', updated_at = now()
             WHERE tenant = $1 AND order_number = $2 AND state IN ('posting', 'possibly_created')",
        )
        .bind(tenant)
        .bind(order_number)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Records the ERP document. Returns false when the order was already posted (with the
    /// same reference, which makes this call a no-op).
    pub async fn mark_posted(
        &self,
        tenant: &str,
        order_number: i64,
        erp_reference: &str,
        erp_gross_minor: Option<i64>,
        erp_tax_minor: Option<i64>,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE order_ledger SET state = 'posted', erp_reference = $3, erp_gross_minor = $4,
                    erp_tax_minor = $5, posted_at = now(), updated_at = now()
             WHERE tenant = $1 AND order_number = $2 AND state IN ('posting', 'possibly_created')",
        )
        .bind(tenant)
        .bind(order_number)
        .bind(erp_reference)
        .bind(erp_gross_minor)
        .bind(erp_tax_minor)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn ledger_row(&self, tenant: &str, order_number: i64) -> Result<Option<LedgerRow>, StoreError> {
        Ok(sqlx::query_as::<_, LedgerRow>(
            "SELECT tenant, order_number, centra_order_id, state, snapshot_hash, snapshot_fetched_at,
                    order_fingerprint, currency, gross_minor, tax_minor, erp_reference, erp_gross_minor, erp_tax_minor,
                    post_attempts, first_accepted_at, received_at, transformed_at,
                    posting_started_at, posted_at
             FROM order_ledger WHERE tenant = $1 AND order_number = $2",
        )
        .bind(tenant)
        .bind(order_number)
        .fetch_optional(self.pool())
        .await?)
    }

    /// How many orders of a tenant are in each state.
    pub async fn count_by_state(&self, tenant: &str) -> Result<Vec<(String, i64)>, StoreError> {
        let rows = sqlx::query(
            "SELECT state, count(*) AS n FROM order_ledger WHERE tenant = $1 GROUP BY state ORDER BY state",
        )
        .bind(tenant)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("state")?, r.try_get("n")?)))
            .collect()
    }
}
