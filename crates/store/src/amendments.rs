//! Changes to orders after they reached the ERP (ADR 0035): what became of each newer
//! Centra snapshot of a posted order, so a change is sent to the ERP once, and never
//! after a newer one.

use chrono::{DateTime, Utc};

use crate::{Store, StoreError};

/// What became of a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AmendmentOutcome {
    /// The ERP document now holds the newer order.
    Applied,
    /// The ERP would not change the document.
    Refused,
    /// A newer change had already been applied: this one was not sent.
    Superseded,
    /// The tenant's ERP connector cannot change orders.
    Unsupported,
}

impl AmendmentOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            AmendmentOutcome::Applied => "applied",
            AmendmentOutcome::Refused => "refused",
            AmendmentOutcome::Superseded => "superseded",
            AmendmentOutcome::Unsupported => "unsupported",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        [
            AmendmentOutcome::Applied,
            AmendmentOutcome::Refused,
            AmendmentOutcome::Superseded,
            AmendmentOutcome::Unsupported,
        ]
        .into_iter()
        .find(|o| o.as_str() == s)
    }
}

/// One change and what became of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Amendment {
    pub tenant: String,
    pub order_number: i64,
    pub snapshot_hash: String,
    pub snapshot_fetched_at: DateTime<Utc>,
    pub outcome: AmendmentOutcome,
    pub cancelled: bool,
    /// Why it was refused (the ERP's words), empty otherwise.
    pub reason: String,
    pub erp_reference: String,
    /// The ERP's totals after an applied change.
    pub erp_gross_minor: Option<i64>,
    pub erp_tax_minor: Option<i64>,
    /// When it was recorded (set by the store; ignored when recording).
    pub recorded_at: Option<DateTime<Utc>>,
}

type Row = (
    String,
    i64,
    String,
    DateTime<Utc>,
    String,
    bool,
    String,
    String,
    Option<i64>,
    Option<i64>,
    DateTime<Utc>,
);

fn from_row(r: Row) -> Option<Amendment> {
    Some(Amendment {
        tenant: r.0,
        order_number: r.1,
        snapshot_hash: r.2,
        snapshot_fetched_at: r.3,
        outcome: AmendmentOutcome::parse(&r.4)?,
        cancelled: r.5,
        reason: r.6,
        erp_reference: r.7,
        erp_gross_minor: r.8,
        erp_tax_minor: r.9,
        recorded_at: Some(r.10),
    })
}

/// The columns a [`Row`] reads (a macro: queries are static strings).
macro_rules! columns {
    () => {
        "SELECT tenant, order_number, snapshot_hash, snapshot_fetched_at, outcome, cancelled, \
         reason, erp_reference, erp_gross_minor, erp_tax_minor, recorded_at FROM order_amendments "
    };
}

impl Store {
    /// The change of `order_number` made from snapshot `hash`, if one was recorded.
    pub async fn amendment(
        &self,
        tenant: &str,
        order_number: i64,
        hash: &str,
    ) -> Result<Option<Amendment>, StoreError> {
        let row: Option<Row> = sqlx::query_as(concat!(
            columns!(),
            "WHERE tenant = $1 AND order_number = $2 AND snapshot_hash = $3"
        ))
        .bind(tenant)
        .bind(order_number)
        .bind(hash)
        .fetch_optional(self.pool())
        .await?;
        Ok(row.and_then(from_row))
    }

    /// The newest change of `order_number` that was applied to the ERP, if any.
    pub async fn last_applied_amendment(
        &self,
        tenant: &str,
        order_number: i64,
    ) -> Result<Option<Amendment>, StoreError> {
        let row: Option<Row> = sqlx::query_as(concat!(
            columns!(),
            "WHERE tenant = $1 AND order_number = $2 AND outcome = 'applied'
             ORDER BY snapshot_fetched_at DESC LIMIT 1"
        ))
        .bind(tenant)
        .bind(order_number)
        .fetch_optional(self.pool())
        .await?;
        Ok(row.and_then(from_row))
    }

    /// Every change of an order, oldest first (the order's timeline).
    pub async fn amendments_of(
        &self,
        tenant: &str,
        order_number: i64,
    ) -> Result<Vec<Amendment>, StoreError> {
        let rows: Vec<Row> = sqlx::query_as(concat!(
            columns!(),
            "WHERE tenant = $1 AND order_number = $2 ORDER BY snapshot_fetched_at"
        ))
        .bind(tenant)
        .bind(order_number)
        .fetch_all(self.pool())
        .await?;
        Ok(rows.into_iter().filter_map(from_row).collect())
    }

    /// Records what became of a change; recording the same change again replaces it (a
    /// refused change applied after finance changed the ERP's settings, say).
    pub async fn record_amendment(&self, a: &Amendment) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO order_amendments (tenant, order_number, snapshot_hash,
                 snapshot_fetched_at, outcome, cancelled, reason, erp_reference,
                 erp_gross_minor, erp_tax_minor)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
             ON CONFLICT (tenant, order_number, snapshot_hash) DO UPDATE SET
                 outcome = EXCLUDED.outcome, cancelled = EXCLUDED.cancelled,
                 reason = EXCLUDED.reason, erp_reference = EXCLUDED.erp_reference,
                 erp_gross_minor = EXCLUDED.erp_gross_minor,
                 erp_tax_minor = EXCLUDED.erp_tax_minor, recorded_at = now()",
        )
        .bind(&a.tenant)
        .bind(a.order_number)
        .bind(&a.snapshot_hash)
        .bind(a.snapshot_fetched_at)
        .bind(a.outcome.as_str())
        .bind(a.cancelled)
        .bind(&a.reason)
        .bind(&a.erp_reference)
        .bind(a.erp_gross_minor)
        .bind(a.erp_tax_minor)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Claims `order_number` for applying change `hash`: `false` while another change of
    /// the order holds an unlapsed claim (that one is applied first).
    pub async fn claim_amendment(
        &self,
        tenant: &str,
        order_number: i64,
        hash: &str,
        lease: std::time::Duration,
    ) -> Result<bool, StoreError> {
        let claimed: Option<(i32,)> = sqlx::query_as(
            "INSERT INTO amendment_claims (tenant, order_number, snapshot_hash, claimed_until)
             VALUES ($1, $2, $3, now() + make_interval(secs => $4))
             ON CONFLICT (tenant, order_number) DO UPDATE SET
                 snapshot_hash = EXCLUDED.snapshot_hash,
                 claimed_until = EXCLUDED.claimed_until
             WHERE amendment_claims.claimed_until < now()
             RETURNING 1",
        )
        .bind(tenant)
        .bind(order_number)
        .bind(hash)
        .bind(lease.as_secs_f64())
        .fetch_optional(self.pool())
        .await?;
        Ok(claimed.is_some())
    }

    /// Gives up the claim on `order_number` that change `hash` holds.
    pub async fn release_amendment(
        &self,
        tenant: &str,
        order_number: i64,
        hash: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "DELETE FROM amendment_claims
             WHERE tenant = $1 AND order_number = $2 AND snapshot_hash = $3",
        )
        .bind(tenant)
        .bind(order_number)
        .bind(hash)
        .execute(self.pool())
        .await?;
        Ok(())
    }
}
