//! Posting an order exactly once: claimed with a lease, marked possibly created after an
//! uncertain attempt, released, rejected or posted with the ERP's figures (ADR 0006).

use super::*;

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

impl Store {
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
}
