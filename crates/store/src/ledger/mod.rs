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

mod posting;
mod snapshots;

pub use posting::{BeginPosting, PostedRecord, PostingClaim};
pub use snapshots::{SnapshotOutcome, SnapshotRecord};

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

/// A ledger row as it stands: state, snapshot hash, order fingerprint.
pub(crate) type Prior = (LedgerState, String, String);

pub(crate) fn state_of(s: &str) -> Result<LedgerState, StoreError> {
    LedgerState::parse(s).ok_or_else(|| {
        StoreError::Database(sqlx::Error::Decode(
            format!("unknown ledger state {s:?}").into(),
        ))
    })
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
    pub erp_rounding_minor: Option<i64>,
    pub post_attempts: i32,
    pub first_accepted_at: Option<DateTime<Utc>>,
    pub received_at: DateTime<Utc>,
    pub transformed_at: Option<DateTime<Utc>>,
    pub posting_started_at: Option<DateTime<Utc>>,
    pub posted_at: Option<DateTime<Utc>>,
}

/// Positions of `keys` sorted by key with duplicates set aside: batch statements touch
/// rows in one order (no deadlocks between concurrent batches) and each key once.
pub(crate) fn unique_sorted<K: Ord + Clone>(keys: &[K]) -> (Vec<usize>, Vec<usize>) {
    let mut order: Vec<usize> = (0..keys.len()).collect();
    order.sort_by(|a, b| keys[*a].cmp(&keys[*b]).then(a.cmp(b)));
    let mut unique = Vec::with_capacity(keys.len());
    let mut repeated = Vec::new();
    for i in order {
        match unique.last() {
            Some(&last) if keys[last] == keys[i] => repeated.push(i),
            _ => unique.push(i),
        }
    }
    (unique, repeated)
}

/// Splits positions by tenant (keeping their order): each tenant's rows are one
/// statement whose lookups stay on the (tenant, order_number) primary key.
pub(crate) fn by_tenant<'a>(
    positions: &[usize],
    tenant_of: impl Fn(&usize) -> &'a str,
) -> Vec<(&'a str, Vec<usize>)> {
    let mut groups: Vec<(&'a str, Vec<usize>)> = Vec::new();
    for i in positions {
        let tenant = tenant_of(i);
        match groups.iter_mut().find(|(t, _)| *t == tenant) {
            Some((_, g)) => g.push(*i),
            None => groups.push((tenant, vec![*i])),
        }
    }
    groups
}

impl Store {
    pub async fn ledger_row(
        &self,
        tenant: &str,
        order_number: i64,
    ) -> Result<Option<LedgerRow>, StoreError> {
        Ok(sqlx::query_as::<_, LedgerRow>(
            "SELECT tenant, order_number, centra_order_id, state, snapshot_hash, snapshot_fetched_at,
                    order_fingerprint, currency, gross_minor, tax_minor, erp_reference, erp_gross_minor, erp_tax_minor,
                    erp_rounding_minor, post_attempts, first_accepted_at, received_at, transformed_at,
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
