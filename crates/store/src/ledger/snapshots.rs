//! Recording what the transform judged of each snapshot: only a later read of Centra may
//! change a ledger row, and never once the order went to the ERP (ADR 0007).

use super::*;

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
    /// The trace the transform judged it in (`None` without OpenTelemetry).
    pub trace_id: Option<String>,
    /// The customer's e-mail as a lookup key (`ferry_domain::lookup::email_key`).
    pub customer_email_key: Option<Vec<u8>>,
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
                                              $9::int8[], $10::int8[], $11::text[], $12::bytea[], $13::text[], $14::bytea[])
                           AS i(order_number, centra_order_id, snapshot_hash, fetched_at, first_accepted_at,
                                state, currency, gross_minor, tax_minor, order_fingerprint, body, trace_id,
                                customer_email_key)
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
                                                   gross_minor, tax_minor, order_fingerprint, transformed_at, trace_id,
                                                   customer_email_key)
                         SELECT tenant, order_number, centra_order_id, snapshot_hash, fetched_at, first_accepted_at,
                                state, currency, gross_minor, tax_minor, order_fingerprint, now(), trace_id,
                                customer_email_key
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
                             trace_id = COALESCE(EXCLUDED.trace_id, order_ledger.trace_id),
                             customer_email_key = COALESCE(EXCLUDED.customer_email_key,
                                                           order_ledger.customer_email_key),
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
                .bind(group.iter().map(|i| records[*i].trace_id.clone()).collect::<Vec<_>>())
                .bind(
                    group
                        .iter()
                        .map(|i| records[*i].customer_email_key.as_deref())
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
}
