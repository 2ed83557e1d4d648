//! The fulfilment ledger (each ERP shipment and what Ferry told Centra about it) and the
//! per-tenant budget of Centra mutations shared by every Ferry service.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::Row;
/// The JSON column type of [`ShipmentRow::items`], for those who build rows.
pub use sqlx::types::Json;

use crate::{Store, StoreError};

/// Where one ERP shipment stands with Centra.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShipmentState {
    /// A Centra call may be under way or may have happened: look it up before sending.
    Sending,
    /// Centra has it (sent, with the e-mail and capture the policy asks for).
    Sent,
    /// Nothing to tell Centra yet: half a bundle, told when the rest ships.
    Merged,
    /// The ERP has not given a tracking number yet; the shipment comes again when it does.
    WaitingTracking,
    /// An exception says why Centra was not told.
    Failed,
}

impl ShipmentState {
    pub fn as_str(&self) -> &'static str {
        match self {
            ShipmentState::Sending => "sending",
            ShipmentState::Sent => "sent",
            ShipmentState::Merged => "merged",
            ShipmentState::WaitingTracking => "waiting_tracking",
            ShipmentState::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "sending" => ShipmentState::Sending,
            "sent" => ShipmentState::Sent,
            "merged" => ShipmentState::Merged,
            "waiting_tracking" => ShipmentState::WaitingTracking,
            "failed" => ShipmentState::Failed,
            _ => return None,
        })
    }

    /// Nothing more will be done for it (the ERP sending it again changes nothing).
    pub fn is_settled(&self) -> bool {
        matches!(
            self,
            ShipmentState::Sent | ShipmentState::Merged | ShipmentState::Failed
        )
    }
}

impl TryFrom<String> for ShipmentState {
    type Error = String;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        ShipmentState::parse(&s).ok_or_else(|| format!("unknown shipment state {s:?}"))
    }
}

/// One ERP shipment in the ledger.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ShipmentRow {
    pub tenant: String,
    pub erp_shipment_id: String,
    pub order_number: i64,
    #[sqlx(try_from = "String")]
    pub state: ShipmentState,
    pub items: sqlx::types::Json<BTreeMap<String, i64>>,
    pub carrier: Option<String>,
    pub tracking_number: Option<String>,
    pub erp_shipped_at: Option<String>,
    pub centra_shipment_id: Option<i64>,
    pub centra_completed_at: Option<DateTime<Utc>>,
    pub email_sent: bool,
    pub captured: bool,
    pub attempts: i32,
    pub first_seen_at: DateTime<Utc>,
}

/// What the ERP says about one shipment, as the ledger records it.
#[derive(Debug, Clone)]
pub struct ShipmentSeen<'a> {
    pub tenant: &'a str,
    pub erp_shipment_id: &'a str,
    pub order_number: i64,
    pub items: &'a BTreeMap<String, i64>,
    pub carrier: Option<&'a str>,
    pub tracking_number: Option<&'a str>,
    pub erp_shipped_at: &'a str,
    /// The trace the shipment is handled in (`None` without OpenTelemetry).
    pub trace_id: Option<&'a str>,
}

/// Who may spend the Centra mutation budget first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Priority {
    /// Shipments and tracking: the customer is waiting for an e-mail.
    Shipments,
    /// Stock that reached zero or its buffer: overselling risk.
    ZeroStock,
    /// Everything else.
    Ordinary,
}

/// Centra's mutation quotas for one tenant and how they are shared.
#[derive(Debug, Clone)]
pub struct MutationBudget {
    pub per_10s: u32,
    pub per_hour: u32,
    /// Use only this share of each quota (clock differences, other integrations).
    pub safety_pct: u32,
    /// Kept for shipments: zero-stock and ordinary work may not dip into it.
    pub reserve_shipments_pct: u32,
    /// Kept for shipments and zero-stock: ordinary work may not dip into it.
    pub reserve_zero_stock_pct: u32,
}

impl Default for MutationBudget {
    fn default() -> Self {
        Self {
            per_10s: 100,
            per_hour: 1000,
            safety_pct: 90,
            reserve_shipments_pct: 20,
            reserve_zero_stock_pct: 20,
        }
    }
}

impl MutationBudget {
    /// A tenant's quotas (`centra.mutations_per_10s`, `centra.mutations_per_hour`), shared
    /// by every service that writes to its Centra.
    pub fn for_tenant(tenant: &ferry_config::TenantConfig) -> Self {
        let quotas = tenant.centra.quotas();
        let figure = |q: Option<u64>| q.map_or(u32::MAX, |q| u32::try_from(q).unwrap_or(u32::MAX));
        Self {
            per_10s: figure(quotas.mutations_per_10s),
            per_hour: figure(quotas.mutations_per_hour),
            ..Self::default()
        }
    }
}

const MICRO: i128 = 1_000_000;

impl MutationBudget {
    /// (bucket, capacity in micro-tokens, interval in µs)
    fn buckets(&self) -> [(&'static str, i128, i128); 2] {
        let cap = |quota: u32| i128::from(quota) * i128::from(self.safety_pct) * MICRO / 100;
        [
            ("10s", cap(self.per_10s), 10_000_000),
            ("1h", cap(self.per_hour), 3_600_000_000),
        ]
    }

    fn floor(&self, capacity: i128, priority: Priority) -> i128 {
        let pct = match priority {
            Priority::Shipments => 0,
            Priority::ZeroStock => self.reserve_shipments_pct,
            Priority::Ordinary => self.reserve_shipments_pct + self.reserve_zero_stock_pct,
        };
        capacity * i128::from(pct.min(100)) / 100
    }
}

impl Store {
    pub async fn shipment(
        &self,
        tenant: &str,
        erp_shipment_id: &str,
    ) -> Result<Option<ShipmentRow>, StoreError> {
        Ok(sqlx::query_as::<_, ShipmentRow>(
            "SELECT tenant, erp_shipment_id, order_number, state, items, carrier, tracking_number,
                    erp_shipped_at, centra_shipment_id, centra_completed_at, email_sent, captured,
                    attempts, first_seen_at
             FROM shipment_ledger WHERE tenant = $1 AND erp_shipment_id = $2",
        )
        .bind(tenant)
        .bind(erp_shipment_id)
        .fetch_optional(self.pool())
        .await?)
    }

    /// Every ERP shipment of `order_numbers` (for the reconciler), by order and shipment.
    pub async fn shipments_of_orders(
        &self,
        tenant: &str,
        order_numbers: &[i64],
    ) -> Result<Vec<ShipmentRow>, StoreError> {
        Ok(sqlx::query_as::<_, ShipmentRow>(
            "SELECT tenant, erp_shipment_id, order_number, state, items, carrier, tracking_number,
                    erp_shipped_at, centra_shipment_id, centra_completed_at, email_sent, captured,
                    attempts, first_seen_at
             FROM shipment_ledger WHERE tenant = $1 AND order_number = ANY($2)
             ORDER BY order_number, erp_shipment_id",
        )
        .bind(tenant)
        .bind(order_numbers)
        .fetch_all(self.pool())
        .await?)
    }

    /// Claims a shipment for sending. Returns the state it was in before (`None`: new).
    /// Shipments already settled are not claimed again.
    pub async fn begin_shipment(
        &self,
        seen: &ShipmentSeen<'_>,
    ) -> Result<Option<ShipmentState>, StoreError> {
        let row = sqlx::query(
            "WITH before AS (
                 SELECT state FROM shipment_ledger WHERE tenant = $1 AND erp_shipment_id = $2
             ), upsert AS (
                 INSERT INTO shipment_ledger (tenant, erp_shipment_id, order_number, state, items,
                                              carrier, tracking_number, erp_shipped_at, attempts, trace_id)
                 VALUES ($1, $2, $3, 'sending', $4, $5, $6, $7, 1, $8)
                 ON CONFLICT (tenant, erp_shipment_id) DO UPDATE
                 SET state = 'sending', attempts = shipment_ledger.attempts + 1,
                     items = EXCLUDED.items, carrier = EXCLUDED.carrier,
                     tracking_number = EXCLUDED.tracking_number,
                     erp_shipped_at = EXCLUDED.erp_shipped_at, updated_at = now(),
                     trace_id = COALESCE(EXCLUDED.trace_id, shipment_ledger.trace_id)
                 WHERE shipment_ledger.state IN ('sending', 'waiting_tracking')
                 RETURNING 1
             )
             SELECT (SELECT state FROM before) AS previous",
        )
        .bind(seen.tenant)
        .bind(seen.erp_shipment_id)
        .bind(seen.order_number)
        .bind(sqlx::types::Json(seen.items))
        .bind(seen.carrier)
        .bind(seen.tracking_number)
        .bind(seen.erp_shipped_at)
        .bind(seen.trace_id)
        .fetch_one(self.pool())
        .await?;
        let previous: Option<String> = row.try_get("previous")?;
        previous
            .map(|s| ShipmentState::try_from(s).map_err(StoreError::Corrupt))
            .transpose()
    }

    /// Records what happened to a claimed shipment.
    pub async fn settle_shipment(
        &self,
        tenant: &str,
        erp_shipment_id: &str,
        state: ShipmentState,
        centra_shipment_id: Option<i64>,
        email_sent: bool,
        captured: bool,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE shipment_ledger
             SET state = $3, centra_shipment_id = COALESCE($4, centra_shipment_id),
                 centra_completed_at = CASE WHEN $3 = 'sent' THEN now() ELSE centra_completed_at END,
                 email_sent = $5, captured = $6, updated_at = now()
             WHERE tenant = $1 AND erp_shipment_id = $2",
        )
        .bind(tenant)
        .bind(erp_shipment_id)
        .bind(state.as_str())
        .bind(centra_shipment_id)
        .bind(email_sent)
        .bind(captured)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Item units of the order's other shipments already accounted for (sent or merged).
    pub async fn shipped_items(
        &self,
        tenant: &str,
        order_number: i64,
        except: &str,
    ) -> Result<BTreeMap<String, i64>, StoreError> {
        let rows: Vec<sqlx::types::Json<BTreeMap<String, i64>>> = sqlx::query_scalar(
            "SELECT items FROM shipment_ledger
             WHERE tenant = $1 AND order_number = $2 AND erp_shipment_id <> $3
               AND state IN ('sent', 'merged', 'sending')",
        )
        .bind(tenant)
        .bind(order_number)
        .bind(except)
        .fetch_all(self.pool())
        .await?;
        let mut total = BTreeMap::new();
        for items in rows {
            for (item, units) in items.0 {
                *total.entry(item).or_insert(0) += units;
            }
        }
        Ok(total)
    }

    /// Shipments still waiting for a tracking number since before `older_than`.
    pub async fn overdue_tracking(
        &self,
        tenant: &str,
        older_than: Duration,
    ) -> Result<Vec<ShipmentRow>, StoreError> {
        Ok(sqlx::query_as::<_, ShipmentRow>(
            "SELECT tenant, erp_shipment_id, order_number, state, items, carrier, tracking_number,
                    erp_shipped_at, centra_shipment_id, centra_completed_at, email_sent, captured,
                    attempts, first_seen_at
             FROM shipment_ledger
             WHERE tenant = $1 AND state = 'waiting_tracking'
               AND first_seen_at < now() - make_interval(secs => $2)",
        )
        .bind(tenant)
        .bind(older_than.as_secs_f64())
        .fetch_all(self.pool())
        .await?)
    }

    /// Takes `n` Centra mutations from the tenant's shared budget at `priority`: `Ok(None)`
    /// when granted, `Ok(Some(wait))` when the caller must wait that long and ask again.
    /// Both of Centra's mutation buckets (10 s and 1 h) are mirrored as token buckets, so a
    /// caller that waits as told never meets a 429.
    pub async fn reserve_mutations(
        &self,
        tenant: &str,
        budget: &MutationBudget,
        priority: Priority,
        n: u32,
    ) -> Result<Option<Duration>, StoreError> {
        let mut tx = self.pool().begin().await?;
        let buckets = budget.buckets();
        for (bucket, capacity, _) in buckets {
            sqlx::query(
                "INSERT INTO centra_budget (tenant, bucket, micro_tokens, refilled_at)
                 VALUES ($1, $2, $3, now()) ON CONFLICT DO NOTHING",
            )
            .bind(tenant)
            .bind(bucket)
            .bind(i64::try_from(capacity).unwrap_or(i64::MAX))
            .execute(&mut *tx)
            .await?;
        }
        let rows = sqlx::query(
            "SELECT bucket, micro_tokens,
                    (EXTRACT(EPOCH FROM (now() - refilled_at)) * 1000000)::bigint AS elapsed_us
             FROM centra_budget WHERE tenant = $1 ORDER BY bucket FOR UPDATE",
        )
        .bind(tenant)
        .fetch_all(&mut *tx)
        .await?;
        let need = i128::from(n) * MICRO;
        let mut wait_us: i128 = 0;
        let mut after = Vec::with_capacity(2);
        for row in &rows {
            let bucket: String = row.try_get("bucket")?;
            let Some((_, capacity, interval)) = buckets.iter().find(|(b, _, _)| *b == bucket)
            else {
                continue;
            };
            let tokens = i128::from(row.try_get::<i64, _>("micro_tokens")?);
            let elapsed = i128::from(row.try_get::<i64, _>("elapsed_us")?.max(0));
            let now = (tokens + elapsed * capacity / interval).min(*capacity);
            let floor = budget.floor(*capacity, priority);
            if now - floor < need {
                let short = need - (now - floor);
                wait_us = wait_us.max(short * interval / (*capacity).max(1) + 1);
            }
            after.push((bucket, now - need));
        }
        if wait_us > 0 {
            tx.rollback().await?;
            return Ok(Some(Duration::from_micros(
                u64::try_from(wait_us).unwrap_or(u64::MAX),
            )));
        }
        for (bucket, tokens) in after {
            sqlx::query(
                "UPDATE centra_budget SET micro_tokens = $3, refilled_at = now()
                 WHERE tenant = $1 AND bucket = $2",
            )
            .bind(tenant)
            .bind(bucket)
            .bind(i64::try_from(tokens).unwrap_or(0))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(None)
    }
}

/// What is left of one of Centra's mutation buckets now (refilled since its last use),
/// of what Ferry allows itself (the quota times `safety_pct`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BudgetLeft {
    pub bucket: &'static str,
    pub left: u64,
    pub capacity: u64,
}

impl Store {
    /// The tenant's mutation buckets as they stand (full where nothing was used yet),
    /// read without taking anything.
    pub async fn mutation_budget_left(
        &self,
        tenant: &str,
        budget: &MutationBudget,
    ) -> Result<Vec<BudgetLeft>, StoreError> {
        let rows = sqlx::query_as::<_, (String, i64, i64)>(
            "SELECT bucket, micro_tokens,
                    (EXTRACT(EPOCH FROM (now() - refilled_at)) * 1000000)::bigint
             FROM centra_budget WHERE tenant = $1",
        )
        .bind(tenant)
        .fetch_all(self.pool())
        .await?;
        Ok(budget
            .buckets()
            .into_iter()
            .map(|(bucket, capacity, interval)| {
                let now = rows.iter().find(|(b, _, _)| b == bucket).map_or(
                    capacity,
                    |(_, tokens, elapsed)| {
                        let refill = i128::from((*elapsed).max(0)) * capacity / interval.max(1);
                        (i128::from(*tokens) + refill).min(capacity)
                    },
                );
                let whole = |micro: i128| u64::try_from(micro.max(0) / MICRO).unwrap_or(u64::MAX);
                BudgetLeft {
                    bucket,
                    left: whole(now),
                    capacity: whole(capacity),
                }
            })
            .collect())
    }
}
