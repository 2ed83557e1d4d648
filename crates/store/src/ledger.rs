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

/// A ledger row as it stands: state, snapshot hash, order fingerprint.
type Prior = (LedgerState, String, String);

fn classify(r: &SnapshotRecord, applied: bool, prior: Option<&Prior>) -> SnapshotOutcome {
    if applied {
        return SnapshotOutcome::Applied;
    }
    match prior {
        // Not applied and no row before: a concurrent writer inserted it meanwhile.
        None => SnapshotOutcome::Raced,
        Some((state, hash, _)) if *hash == r.snapshot_hash => {
            SnapshotOutcome::AlreadyApplied(*state)
        }
        Some((state, _, fingerprint)) if state.reached_erp() => {
            SnapshotOutcome::AfterPosting(*state, fingerprint.clone())
        }
        Some(_) => SnapshotOutcome::Stale,
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
pub struct SnapshotRecord {
    pub tenant: String,
    pub order_number: i64,
    pub centra_order_id: String,
    pub snapshot_hash: String,
    pub fetched_at: DateTime<Utc>,
    pub first_accepted_at: Option<DateTime<Utc>>,
    /// Hash of the sales order's lines and totals.
    pub order_fingerprint: String,
    /// Held, Rejected, Cancelled or Ready.
    pub state: LedgerState,
    pub currency: String,
    pub gross_minor: Option<i64>,
    pub tax_minor: Option<i64>,
    /// The snapshot as read from Centra; kept (and sent to the database) only for orders
    /// that wait, not for `Ready` ones.
    pub body: bytes::Bytes,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SnapshotOutcome {
    /// The ledger now reflects this snapshot (a new order).
    Applied,
    /// The ledger now reflects this snapshot; the order was in the given state before.
    Changed(LedgerState),
    /// This very snapshot was recorded before (a redelivery or duplicate).
    AlreadyApplied(LedgerState),
    /// A newer snapshot is already recorded; this one changes nothing.
    Stale,
    /// The order is already (being) posted; a newer snapshot may be an amendment.
    /// Carries the state and the fingerprint of what was posted.
    AfterPosting(LedgerState, String),
    /// Another writer created the row in the same instant; try again.
    Raced,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BeginPosting {
    /// Go ahead. `previous` says whether an earlier attempt may have reached the ERP.
    Proceed {
        previous: LedgerState,
        attempts: i32,
    },
    /// Already posted: nothing to do.
    AlreadyPosted { erp_reference: String },
    /// Another attempt holds the order right now.
    Busy,
    /// The ledger no longer wants this snapshot posted (newer snapshot, hold, cancel).
    Superseded(LedgerState),
    /// The ledger has never heard of the order.
    Missing,
}

/// A claim on one order for posting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostingClaim {
    pub tenant: String,
    pub order_number: i64,
    pub snapshot_hash: String,
}

/// The ERP document of a posted order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostedRecord {
    pub tenant: String,
    pub order_number: i64,
    pub erp_reference: String,
    pub erp_gross_minor: Option<i64>,
    pub erp_tax_minor: Option<i64>,
    /// The explicit rounding line the connector added, if one was needed.
    pub erp_rounding_minor: Option<i64>,
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
fn unique_sorted<K: Ord + Clone>(keys: &[K]) -> (Vec<usize>, Vec<usize>) {
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
fn by_tenant<'a>(
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
    /// Records one transformed snapshot; see [`Store::record_snapshots`].
    pub async fn record_snapshot(
        &self,
        record: &SnapshotRecord,
    ) -> Result<SnapshotOutcome, StoreError> {
        let mut outcomes = self.record_snapshots(std::slice::from_ref(record)).await?;
        outcomes
            .pop()
            .ok_or_else(|| StoreError::Database(sqlx::Error::RowNotFound))
    }

    /// Records transformed snapshots (and their bodies) in one statement. The guard is the
    /// fetch time: only a later read of Centra may change a row, and never once the order
    /// has gone to the ERP. Returns one outcome per record, in order.
    pub async fn record_snapshots(
        &self,
        records: &[SnapshotRecord],
    ) -> Result<Vec<SnapshotOutcome>, StoreError> {
        // Of several snapshots of one order in a batch, the latest read goes to the database.
        let keys: Vec<(&str, i64, std::cmp::Reverse<DateTime<Utc>>)> = records
            .iter()
            .map(|r| {
                (
                    r.tenant.as_str(),
                    r.order_number,
                    std::cmp::Reverse(r.fetched_at),
                )
            })
            .collect();
        let (mut unique, mut repeated) = unique_sorted(&keys);
        let same_order = |a: usize, b: usize| keys[a].0 == keys[b].0 && keys[a].1 == keys[b].1;
        let mut winners: Vec<usize> = Vec::with_capacity(unique.len());
        for i in unique.drain(..) {
            match winners.last() {
                Some(&w) if same_order(w, i) => repeated.push(i),
                _ => winners.push(i),
            }
        }
        // Per order: written by this statement, and the row as it stands (for the others).
        let mut known: std::collections::HashMap<(String, i64), (bool, Option<Prior>)> =
            std::collections::HashMap::with_capacity(winners.len());
        // Orders this statement changed, with the state they were in before.
        let mut released_from: std::collections::HashMap<(String, i64), LedgerState> =
            std::collections::HashMap::new();
        for (tenant, group) in by_tenant(&winners, |i| records[*i].tenant.as_str()) {
            let pick = |f: &dyn Fn(&SnapshotRecord) -> String| {
                group.iter().map(|i| f(&records[*i])).collect::<Vec<_>>()
            };
            let written: Vec<(i64, Option<String>)> = sqlx::query_as(
                    "WITH input AS (
                         SELECT $1::text AS tenant, i.* FROM UNNEST($2::int8[], $3::text[], $4::text[],
                                              $5::timestamptz[], $6::timestamptz[], $7::text[], $8::text[],
                                              $9::int8[], $10::int8[], $11::text[], $12::bytea[])
                           AS i(order_number, centra_order_id, snapshot_hash, fetched_at, first_accepted_at,
                                state, currency, gross_minor, tax_minor, order_fingerprint, body)
                     ),
                     body AS (
                         -- Kept for orders that wait (held, rejected, cancelled): they are
                         -- released or replayed from exactly this snapshot. A ready order's
                         -- snapshot stays in the CENTRA stream.
                         INSERT INTO order_snapshots (tenant, order_number, snapshot_hash, fetched_at, body)
                         SELECT tenant, order_number, snapshot_hash, fetched_at, body FROM input
                         WHERE state <> 'ready'
                         ON CONFLICT DO NOTHING
                     ),
                     applied AS (
                         INSERT INTO order_ledger (tenant, order_number, centra_order_id, snapshot_hash,
                                                   snapshot_fetched_at, first_accepted_at, state, currency,
                                                   gross_minor, tax_minor, order_fingerprint, transformed_at)
                         SELECT tenant, order_number, centra_order_id, snapshot_hash, fetched_at, first_accepted_at,
                                state, currency, gross_minor, tax_minor, order_fingerprint, now()
                         FROM input
                         ON CONFLICT (tenant, order_number) DO UPDATE SET
                             previous_state = order_ledger.state,
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
                           AND (order_ledger.snapshot_fetched_at < EXCLUDED.snapshot_fetched_at
                                -- The same snapshot evaluated again (a mapping or a rule was
                                -- fixed) may release an order that waits.
                                OR (order_ledger.snapshot_hash = EXCLUDED.snapshot_hash
                                    AND order_ledger.state IN ('held', 'rejected')
                                    AND order_ledger.state <> EXCLUDED.state))
                         RETURNING order_number, previous_state
                     )
                     SELECT order_number, previous_state FROM applied",
                )
                .bind(tenant)
                .bind(group.iter().map(|i| records[*i].order_number).collect::<Vec<_>>())
                .bind(pick(&|r| r.centra_order_id.clone()))
                .bind(pick(&|r| r.snapshot_hash.clone()))
                .bind(group.iter().map(|i| records[*i].fetched_at).collect::<Vec<_>>())
                .bind(group.iter().map(|i| records[*i].first_accepted_at).collect::<Vec<_>>())
                .bind(pick(&|r| r.state.as_str().to_owned()))
                .bind(pick(&|r| r.currency.clone()))
                .bind(group.iter().map(|i| records[*i].gross_minor).collect::<Vec<_>>())
                .bind(group.iter().map(|i| records[*i].tax_minor).collect::<Vec<_>>())
                .bind(pick(&|r| r.order_fingerprint.clone()))
                .bind(
                    // Only waiting orders keep their body (see the `body` CTE): a ready
                    // order's is not even sent.
                    group
                        .iter()
                        .map(|i| {
                            let r = &records[*i];
                            (r.state != LedgerState::Ready).then_some(r.body.as_ref())
                        })
                        .collect::<Vec<_>>(),
                )
                .fetch_all(self.pool())
                .await?;
            for (n, previous) in written {
                known.insert((tenant.to_owned(), n), (true, None));
                if let Some(p) = previous.as_deref().and_then(LedgerState::parse) {
                    released_from.insert((tenant.to_owned(), n), p);
                }
            }
        }

        // The orders not written are read back (rarely: a redelivery, a stale snapshot, an
        // order already in the ERP) to say why.
        for (tenant, group) in by_tenant(&winners, |i| records[*i].tenant.as_str()) {
            let unwritten: Vec<i64> = group
                .iter()
                .map(|i| records[*i].order_number)
                .filter(|n| !known.contains_key(&(tenant.to_owned(), *n)))
                .collect();
            if unwritten.is_empty() {
                continue;
            }
            let rows = sqlx::query(
                "SELECT order_number, state, snapshot_hash, order_fingerprint FROM order_ledger
                 WHERE tenant = $1 AND order_number = ANY($2)",
            )
            .bind(tenant)
            .bind(&unwritten)
            .fetch_all(self.pool())
            .await?;
            for row in rows {
                let prior = (
                    state_of(row.try_get("state")?)?,
                    row.try_get::<String, _>("snapshot_hash")?,
                    row.try_get::<String, _>("order_fingerprint")?,
                );
                known.insert(
                    (tenant.to_owned(), row.try_get("order_number")?),
                    (false, Some(prior)),
                );
            }
        }
        let mut outcomes = vec![SnapshotOutcome::Stale; records.len()];
        for &i in &winners {
            let r = &records[i];
            let (applied, prior) = known
                .get(&(r.tenant.clone(), r.order_number))
                .cloned()
                .unwrap_or((false, None));
            outcomes[i] = classify(r, applied, prior.as_ref());
            if outcomes[i] == SnapshotOutcome::Applied
                && let Some(previous) = released_from.get(&(r.tenant.clone(), r.order_number))
            {
                outcomes[i] = SnapshotOutcome::Changed(*previous);
            }
        }
        for &i in &repeated {
            let r = &records[i];
            let winner = winners.iter().copied().find(|&w| same_order(w, i));
            outcomes[i] = match winner {
                Some(w) if records[w].snapshot_hash == r.snapshot_hash => match &outcomes[w] {
                    SnapshotOutcome::Applied | SnapshotOutcome::Changed(_) => {
                        SnapshotOutcome::AlreadyApplied(records[w].state)
                    }
                    other => other.clone(),
                },
                Some(w)
                    if matches!(
                        outcomes[w],
                        SnapshotOutcome::Applied | SnapshotOutcome::Changed(_)
                    ) =>
                {
                    SnapshotOutcome::Stale
                }
                _ => {
                    let prior = known
                        .get(&(r.tenant.clone(), r.order_number))
                        .and_then(|(_, p)| p.clone());
                    classify(r, false, prior.as_ref())
                }
            };
        }
        Ok(outcomes)
    }
    /// Claims one order for posting; see [`Store::begin_postings`].
    pub async fn begin_posting(
        &self,
        tenant: &str,
        order_number: i64,
        snapshot_hash: &str,
        lease: Duration,
    ) -> Result<BeginPosting, StoreError> {
        let claim = PostingClaim {
            tenant: tenant.to_owned(),
            order_number,
            snapshot_hash: snapshot_hash.to_owned(),
        };
        let mut answers = self
            .begin_postings(std::slice::from_ref(&claim), lease)
            .await?;
        answers
            .pop()
            .ok_or_else(|| StoreError::Database(sqlx::Error::RowNotFound))
    }

    /// Claims orders for posting, in one statement. A claim older than `lease` is
    /// considered abandoned (a crashed writer) and may be taken over; the taker must look
    /// the order up in the ERP before creating it.
    pub async fn begin_postings(
        &self,
        claims: &[PostingClaim],
        lease: Duration,
    ) -> Result<Vec<BeginPosting>, StoreError> {
        let keys: Vec<(&str, i64)> = claims
            .iter()
            .map(|c| (c.tenant.as_str(), c.order_number))
            .collect();
        let (unique, repeated) = unique_sorted(&keys);
        let mut by_key = std::collections::HashMap::with_capacity(unique.len());
        for (tenant, group) in by_tenant(&unique, |i| claims[*i].tenant.as_str()) {
            let numbers: Vec<i64> = group.iter().map(|i| claims[*i].order_number).collect();
            // In SET, `l.state` is the row's state before this update: it lands in
            // previous_state, so the claim learns in one statement whether an earlier attempt
            // may have reached the ERP.
            let claimed = sqlx::query(
                "UPDATE order_ledger l SET previous_state = l.state, state = 'posting',
                        posting_started_at = now(), post_attempts = l.post_attempts + 1, updated_at = now()
                 FROM UNNEST($2::int8[], $3::text[]) AS i(order_number, snapshot_hash)
                 WHERE l.tenant = $1 AND l.order_number = ANY($2) AND l.order_number = i.order_number
                   AND l.snapshot_hash = i.snapshot_hash
                   AND (l.state IN ('ready', 'possibly_created')
                        OR (l.state = 'posting' AND l.posting_started_at < now() - make_interval(secs => $4)))
                 RETURNING l.order_number, l.previous_state, l.post_attempts",
            )
            .bind(tenant)
            .bind(&numbers)
            .bind(group.iter().map(|i| claims[*i].snapshot_hash.clone()).collect::<Vec<_>>())
            .bind(lease.as_secs_f64())
            .fetch_all(self.pool())
            .await?;
            for row in &claimed {
                by_key.insert(
                    (tenant.to_owned(), row.try_get::<i64, _>("order_number")?),
                    BeginPosting::Proceed {
                        previous: state_of(
                            &row.try_get::<Option<String>, _>("previous_state")?
                                .unwrap_or_default(),
                        )?,
                        attempts: row.try_get("post_attempts")?,
                    },
                );
            }
            // The orders not claimed say why (posted, busy, superseded), rarely.
            let unclaimed: Vec<i64> = numbers
                .iter()
                .copied()
                .filter(|n| !by_key.contains_key(&(tenant.to_owned(), *n)))
                .collect();
            if unclaimed.is_empty() {
                continue;
            }
            let rows = sqlx::query(
                "SELECT order_number, state, erp_reference FROM order_ledger
                 WHERE tenant = $1 AND order_number = ANY($2)",
            )
            .bind(tenant)
            .bind(&unclaimed)
            .fetch_all(self.pool())
            .await?;
            for row in &rows {
                let answer = match state_of(row.try_get("state")?)? {
                    LedgerState::Posted => BeginPosting::AlreadyPosted {
                        erp_reference: row
                            .try_get::<Option<String>, _>("erp_reference")?
                            .unwrap_or_default(),
                    },
                    LedgerState::Posting => BeginPosting::Busy,
                    other => BeginPosting::Superseded(other),
                };
                by_key.insert(
                    (tenant.to_owned(), row.try_get::<i64, _>("order_number")?),
                    answer,
                );
            }
        }
        let mut answers = vec![BeginPosting::Busy; claims.len()];
        for &i in &unique {
            answers[i] = by_key
                .remove(&(claims[i].tenant.clone(), claims[i].order_number))
                .unwrap_or(BeginPosting::Missing);
        }
        // The same order twice in one batch: the first claim holds it.
        for &i in &repeated {
            answers[i] = BeginPosting::Busy;
        }
        Ok(answers)
    }

    /// The ERP call timed out: the document may exist. A lookup settles it before any retry.
    pub async fn mark_possibly_created(
        &self,
        tenant: &str,
        order_number: i64,
    ) -> Result<(), StoreError> {
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
            // An order that was possibly created stays so: the next attempt must look it up
            // in the ERP before creating, or a lost answer followed by a failed lookup would
            // post it twice.
            "UPDATE order_ledger
             SET state = CASE WHEN previous_state IN ('possibly_created', 'posting')
                              THEN 'possibly_created' ELSE 'ready' END,
                 updated_at = now()
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

    /// Records the ERP document of one order; see [`Store::mark_posted_many`].
    pub async fn mark_posted(
        &self,
        tenant: &str,
        order_number: i64,
        erp_reference: &str,
        erp_gross_minor: Option<i64>,
        erp_tax_minor: Option<i64>,
    ) -> Result<bool, StoreError> {
        let record = PostedRecord {
            tenant: tenant.to_owned(),
            order_number,
            erp_reference: erp_reference.to_owned(),
            erp_gross_minor,
            erp_tax_minor,
            erp_rounding_minor: None,
        };
        Ok(self
            .mark_posted_many(std::slice::from_ref(&record))
            .await?
            .first()
            .copied()
            .unwrap_or(false))
    }

    /// Records ERP documents in one statement. Per record: true when it moved the order to
    /// `posted`, false when the order was not being posted (already posted, say).
    pub async fn mark_posted_many(
        &self,
        records: &[PostedRecord],
    ) -> Result<Vec<bool>, StoreError> {
        let keys: Vec<(&str, i64)> = records
            .iter()
            .map(|r| (r.tenant.as_str(), r.order_number))
            .collect();
        let (unique, _) = unique_sorted(&keys);
        let mut rows = Vec::with_capacity(unique.len());
        for (tenant, group) in by_tenant(&unique, |i| records[*i].tenant.as_str()) {
            rows.extend(
                sqlx::query(
                    "UPDATE order_ledger l SET state = 'posted', erp_reference = i.erp_reference,
                            erp_gross_minor = i.erp_gross_minor, erp_tax_minor = i.erp_tax_minor,
                            erp_rounding_minor = i.erp_rounding_minor, posted_at = now(), updated_at = now()
                     FROM UNNEST($2::int8[], $3::text[], $4::int8[], $5::int8[], $6::int8[])
                          AS i(order_number, erp_reference, erp_gross_minor, erp_tax_minor,
                               erp_rounding_minor)
                     WHERE l.tenant = $1 AND l.order_number = ANY($2) AND l.order_number = i.order_number
                       AND l.state IN ('posting', 'possibly_created')
                     RETURNING l.tenant, l.order_number",
                )
                .bind(tenant)
                .bind(group.iter().map(|i| records[*i].order_number).collect::<Vec<_>>())
                .bind(group.iter().map(|i| records[*i].erp_reference.clone()).collect::<Vec<_>>())
                .bind(group.iter().map(|i| records[*i].erp_gross_minor).collect::<Vec<_>>())
                .bind(group.iter().map(|i| records[*i].erp_tax_minor).collect::<Vec<_>>())
                .bind(group.iter().map(|i| records[*i].erp_rounding_minor).collect::<Vec<_>>())
                .fetch_all(self.pool())
                .await?,
            );
        }
        let mut done = std::collections::HashSet::with_capacity(rows.len());
        for row in &rows {
            done.insert((
                row.try_get::<String, _>("tenant")?,
                row.try_get::<i64, _>("order_number")?,
            ));
        }
        Ok(records
            .iter()
            .enumerate()
            .map(|(i, r)| unique.contains(&i) && done.contains(&(r.tenant.clone(), r.order_number)))
            .collect())
    }

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
