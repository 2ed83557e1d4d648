//! The reconciler's bookkeeping: which orders are due a check against Centra and the ERP,
//! and the verdict of each check (ADR 0028). An order is due once it should have settled,
//! again whenever its ledger row changes, and while its last verdict was not `reconciled`.

use chrono::{DateTime, NaiveDate, Utc};

use crate::ledger::LedgerRow;
use crate::{Store, StoreError};

/// A ledger row due a check, with the version (its `updated_at`) the verdict will refer to.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DueOrder {
    #[sqlx(flatten)]
    pub row: LedgerRow,
    pub ledger_version: DateTime<Utc>,
}

/// When orders are due a check (see [`Store::orders_to_reconcile`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Due {
    /// Orders accepted after this are still inside their grace.
    pub settled_before: DateTime<Utc>,
    /// Orders not reconciled at a check before this are checked again.
    pub recheck_before: DateTime<Utc>,
    /// Orders checked before this are checked again, whatever was found.
    pub sweep_before: DateTime<Utc>,
    /// Only orders accepted (or received) at or after this, when set.
    pub accepted_from: Option<DateTime<Utc>>,
}

impl Due {
    /// Every order, whatever its last check found and however recent it is: a run on
    /// demand (`ferry reconcile run`), which judges an order inside its grace `pending`.
    pub fn everything(accepted_from: Option<DateTime<Utc>>) -> Due {
        let end = DateTime::<Utc>::MAX_UTC;
        Due {
            settled_before: end,
            recheck_before: end,
            sweep_before: end,
            accepted_from,
        }
    }
}

/// The verdict of one check, as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerdictRecord {
    pub order_number: i64,
    /// `reconciled`, `pending` or `variance`.
    pub verdict: &'static str,
    /// The causes' names, sorted.
    pub causes: Vec<String>,
    pub money_minor: i64,
    pub currency: String,
    /// The ledger row's version checked; `None` for an order the ledger does not hold.
    pub ledger_version: Option<DateTime<Utc>>,
    /// Centra's order date, when known: the month-end report's period.
    pub order_date: Option<NaiveDate>,
    /// What each source holds, in figures (the reconciler's `Figures`), as JSON text.
    pub figures: String,
    /// The variances found (the reconciler's `Variance`s), as JSON text.
    pub variances: String,
}

/// One order's recorded check, as the month-end report reads it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct CheckedOrder {
    pub order_number: i64,
    pub verdict: String,
    pub causes: Vec<String>,
    pub currency: String,
    pub order_date: Option<NaiveDate>,
    pub figures: serde_json::Value,
    pub variances: serde_json::Value,
}

/// How many orders of a tenant stand at each verdict.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerdictCounts {
    pub reconciled: i64,
    pub pending: i64,
    pub variance: i64,
}

impl Store {
    /// Up to `limit` orders of `tenant` after order number `after` that are due a check:
    /// accepted (or, without that, received) at or before `due.settled_before`, and never
    /// checked, changed since their last check, not reconciled at a check made at or before
    /// `due.recheck_before`, or checked at all at or before `due.sweep_before` (the full
    /// sweep: what changed in the ERP alone). In order-number order, so a caller pages
    /// through a tenant.
    pub async fn orders_to_reconcile(
        &self,
        tenant: &str,
        after: i64,
        due: Due,
        limit: i64,
    ) -> Result<Vec<DueOrder>, StoreError> {
        Ok(sqlx::query_as::<_, DueOrder>(
            "SELECT l.tenant, l.order_number, l.centra_order_id, l.state, l.snapshot_hash,
                    l.snapshot_fetched_at, l.order_fingerprint, l.currency, l.gross_minor, l.tax_minor,
                    l.erp_reference, l.erp_gross_minor, l.erp_tax_minor, l.erp_rounding_minor,
                    l.post_attempts, l.first_accepted_at, l.received_at, l.transformed_at,
                    l.posting_started_at, l.posted_at, l.updated_at AS ledger_version
             FROM order_ledger l
             LEFT JOIN reconciliation r
                    ON r.tenant = l.tenant AND r.order_number = l.order_number
             WHERE l.tenant = $1 AND l.order_number > $2
               AND COALESCE(l.first_accepted_at, l.received_at) <= $3
               AND ($7::timestamptz IS NULL
                    OR COALESCE(l.first_accepted_at, l.received_at) >= $7)
               AND (r.order_number IS NULL
                    OR r.ledger_version IS DISTINCT FROM l.updated_at
                    OR (r.verdict <> 'reconciled' AND r.checked_at <= $4)
                    OR r.checked_at <= $5)
             ORDER BY l.order_number
             LIMIT $6",
        )
        .bind(tenant)
        .bind(after)
        .bind(due.settled_before)
        .bind(due.recheck_before)
        .bind(due.sweep_before)
        .bind(limit)
        .bind(due.accepted_from)
        .fetch_all(self.pool())
        .await?)
    }

    /// Records the verdicts of one batch of checks (one statement), replacing earlier ones.
    pub async fn record_verdicts(
        &self,
        tenant: &str,
        verdicts: &[VerdictRecord],
    ) -> Result<(), StoreError> {
        if verdicts.is_empty() {
            return Ok(());
        }
        let numbers: Vec<i64> = verdicts.iter().map(|v| v.order_number).collect();
        let names: Vec<&str> = verdicts.iter().map(|v| v.verdict).collect();
        // Arrays of arrays cannot be bound: the causes travel as one comma-joined string.
        let causes: Vec<String> = verdicts.iter().map(|v| v.causes.join(",")).collect();
        let money: Vec<i64> = verdicts.iter().map(|v| v.money_minor).collect();
        let currencies: Vec<&str> = verdicts.iter().map(|v| v.currency.as_str()).collect();
        let versions: Vec<Option<DateTime<Utc>>> =
            verdicts.iter().map(|v| v.ledger_version).collect();
        let dates: Vec<Option<NaiveDate>> = verdicts.iter().map(|v| v.order_date).collect();
        // JSON text, made jsonb by the server: no document tree built on either side.
        let figures: Vec<&str> = verdicts.iter().map(|v| v.figures.as_str()).collect();
        let variances: Vec<&str> = verdicts.iter().map(|v| v.variances.as_str()).collect();
        sqlx::query(
            "INSERT INTO reconciliation
                 (tenant, order_number, verdict, causes, money_minor, currency, ledger_version,
                  order_date, figures, variances, checked_at)
             SELECT $1, v.n, v.verdict, COALESCE(string_to_array(NULLIF(v.causes, ''), ','), '{}'),
                    v.money, v.currency, v.version, v.day, v.figures::jsonb, v.variances::jsonb, now()
             FROM UNNEST($2::bigint[], $3::text[], $4::text[], $5::bigint[], $6::text[],
                         $7::timestamptz[], $8::date[], $9::text[], $10::text[])
                  AS v(n, verdict, causes, money, currency, version, day, figures, variances)
             ORDER BY v.n
             ON CONFLICT (tenant, order_number) DO UPDATE SET
                 verdict = EXCLUDED.verdict, causes = EXCLUDED.causes,
                 money_minor = EXCLUDED.money_minor, currency = EXCLUDED.currency,
                 ledger_version = EXCLUDED.ledger_version,
                 -- A pending check knows no figures: keep what an earlier one found.
                 order_date = COALESCE(EXCLUDED.order_date, reconciliation.order_date),
                 figures = CASE WHEN EXCLUDED.figures = '{}' THEN reconciliation.figures
                                ELSE EXCLUDED.figures END,
                 variances = EXCLUDED.variances, checked_at = EXCLUDED.checked_at",
        )
        .bind(tenant)
        .bind(&numbers)
        .bind(&names)
        .bind(&causes)
        .bind(&money)
        .bind(&currencies)
        .bind(&versions)
        .bind(&dates)
        .bind(&figures)
        .bind(&variances)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// How many of the tenant's orders were accepted (or received) at or after
    /// `accepted_from` (all of them when `None`): what a run on demand checks.
    pub async fn orders_in_scope(
        &self,
        tenant: &str,
        accepted_from: Option<DateTime<Utc>>,
    ) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT count(*) FROM order_ledger
             WHERE tenant = $1
               AND ($2::timestamptz IS NULL
                    OR COALESCE(first_accepted_at, received_at) >= $2)",
        )
        .bind(tenant)
        .bind(accepted_from)
        .fetch_one(self.pool())
        .await?)
    }

    /// Order numbers between the tenant's lowest and highest in the ledger (of orders
    /// accepted at or after `accepted_from`, when set) that the ledger does not hold, at
    /// most `limit`, in order.
    pub async fn ledger_gaps(
        &self,
        tenant: &str,
        accepted_from: Option<DateTime<Utc>>,
        limit: i64,
    ) -> Result<Vec<i64>, StoreError> {
        Ok(sqlx::query_scalar(
            "WITH span AS (
                 SELECT min(order_number) AS low, max(order_number) AS high FROM order_ledger
                 WHERE tenant = $1
                   AND ($2::timestamptz IS NULL
                        OR COALESCE(first_accepted_at, received_at) >= $2))
             SELECT n FROM span, generate_series(span.low, span.high) AS n
             WHERE NOT EXISTS (SELECT 1 FROM order_ledger l
                               WHERE l.tenant = $1 AND l.order_number = n)
             ORDER BY n LIMIT $3",
        )
        .bind(tenant)
        .bind(accepted_from)
        .bind(limit)
        .fetch_all(self.pool())
        .await?)
    }

    /// Which of `numbers` the tenant's ledger holds.
    pub async fn orders_in_ledger(
        &self,
        tenant: &str,
        numbers: &[i64],
    ) -> Result<std::collections::HashSet<i64>, StoreError> {
        let (Some(low), Some(high)) = (numbers.iter().min(), numbers.iter().max()) else {
            return Ok(std::collections::HashSet::new());
        };
        // The range bounds an index scan: asked for thousands of numbers at once, the
        // planner would otherwise read the whole table for them.
        let found: Vec<i64> = sqlx::query_scalar(
            "SELECT order_number FROM order_ledger
             WHERE tenant = $1 AND order_number BETWEEN $3 AND $4 AND order_number = ANY($2)",
        )
        .bind(tenant)
        .bind(numbers)
        .bind(low)
        .bind(high)
        .fetch_all(self.pool())
        .await?;
        Ok(found.into_iter().collect())
    }

    /// When the tenant's first order reached Ferry: ERP documents from before are history,
    /// not documents Ferry should explain.
    pub async fn first_order_at(&self, tenant: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT min(received_at) FROM order_ledger WHERE tenant = $1")
                .bind(tenant)
                .fetch_one(self.pool())
                .await?,
        )
    }

    /// When the tenant's latest order reached Ferry.
    pub async fn last_order_at(&self, tenant: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT max(received_at) FROM order_ledger WHERE tenant = $1")
                .bind(tenant)
                .fetch_one(self.pool())
                .await?,
        )
    }

    /// Centra's date of the tenant's earliest order checked: orders placed before it are
    /// from before Ferry.
    pub async fn first_order_day(&self, tenant: &str) -> Result<Option<NaiveDate>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT min(order_date) FROM reconciliation WHERE tenant = $1")
                .bind(tenant)
                .fetch_one(self.pool())
                .await?,
        )
    }

    /// The last verdict on one order: (verdict, causes).
    pub async fn verdict(
        &self,
        tenant: &str,
        order_number: i64,
    ) -> Result<Option<(String, Vec<String>)>, StoreError> {
        Ok(sqlx::query_as::<_, (String, Vec<String>)>(
            "SELECT verdict, causes FROM reconciliation WHERE tenant = $1 AND order_number = $2",
        )
        .bind(tenant)
        .bind(order_number)
        .fetch_optional(self.pool())
        .await?)
    }

    /// How many of a tenant's checked orders stand at each verdict.
    pub async fn verdict_counts(&self, tenant: &str) -> Result<VerdictCounts, StoreError> {
        let rows = sqlx::query_as::<_, (String, i64)>(
            "SELECT verdict, count(*) FROM reconciliation WHERE tenant = $1 GROUP BY verdict",
        )
        .bind(tenant)
        .fetch_all(self.pool())
        .await?;
        let mut counts = VerdictCounts::default();
        for (verdict, n) in rows {
            match verdict.as_str() {
                "reconciled" => counts.reconciled = n,
                "pending" => counts.pending = n,
                _ => counts.variance += n,
            }
        }
        Ok(counts)
    }

    /// Every checked order of a tenant with a Centra order date in `from..=to`, in order
    /// number order: what the month-end report is made of.
    pub async fn checked_orders(
        &self,
        tenant: &str,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Vec<CheckedOrder>, StoreError> {
        Ok(sqlx::query_as::<_, CheckedOrder>(
            "SELECT order_number, verdict, causes, currency, order_date, figures, variances
             FROM reconciliation
             WHERE tenant = $1 AND order_date BETWEEN $2 AND $3
             ORDER BY order_number",
        )
        .bind(tenant)
        .bind(from)
        .bind(to)
        .fetch_all(self.pool())
        .await?)
    }

    /// Records an ERP document no Centra order explains (once per document).
    pub async fn record_unexplained_document(
        &self,
        tenant: &str,
        document: &UnexplainedDocument,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO unexplained_documents
                 (tenant, erp_reference, document_date, currency, gross_minor, variance)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (tenant, erp_reference) DO UPDATE SET
                 document_date = EXCLUDED.document_date, currency = EXCLUDED.currency,
                 gross_minor = EXCLUDED.gross_minor, variance = EXCLUDED.variance",
        )
        .bind(tenant)
        .bind(&document.erp_reference)
        .bind(document.document_date)
        .bind(&document.currency)
        .bind(document.gross_minor)
        .bind(&document.variance)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// After a walk through all of a tenant's ERP documents: those recorded as unexplained
    /// that the walk no longer found so (deleted, cancelled, or now explained by an order)
    /// are forgotten, and their exceptions (`kind`, keyed `erp:<reference>`) resolved with
    /// `reason`. Returns how many were forgotten.
    pub async fn forget_unexplained_documents(
        &self,
        tenant: &str,
        still: &[String],
        kind: &str,
        reason: &str,
    ) -> Result<u64, StoreError> {
        let mut tx = self.pool().begin().await?;
        let gone: Vec<String> = sqlx::query_scalar(
            "DELETE FROM unexplained_documents
             WHERE tenant = $1 AND NOT (erp_reference = ANY($2))
             RETURNING erp_reference",
        )
        .bind(tenant)
        .bind(still)
        .fetch_all(&mut *tx)
        .await?;
        let keys: Vec<String> = gone.iter().map(|r| format!("erp:{r}")).collect();
        crate::resolve_keyed_exceptions(&mut *tx, tenant, kind, &keys, reason).await?;
        tx.commit().await?;
        Ok(gone.len() as u64)
    }

    /// The unexplained ERP documents of a tenant dated in `from..=to`, by reference.
    pub async fn unexplained_documents(
        &self,
        tenant: &str,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Vec<UnexplainedDocument>, StoreError> {
        Ok(sqlx::query_as::<_, UnexplainedDocument>(
            "SELECT erp_reference, document_date, currency, gross_minor, variance
             FROM unexplained_documents
             WHERE tenant = $1 AND document_date BETWEEN $2 AND $3
             ORDER BY erp_reference",
        )
        .bind(tenant)
        .bind(from)
        .bind(to)
        .fetch_all(self.pool())
        .await?)
    }

    /// Where the tenant's orders stand at their last checks; `completeness_causes` are the
    /// causes that make an order incomplete (rather than inaccurate).
    pub async fn standing(
        &self,
        tenant: &str,
        completeness_causes: &[&str],
    ) -> Result<Standing, StoreError> {
        let (checked, complete, accurate): (i64, i64, i64) = sqlx::query_as(
            "SELECT count(*) FILTER (WHERE verdict <> 'pending'),
                    count(*) FILTER (WHERE verdict <> 'pending' AND NOT causes && $2::text[]),
                    count(*) FILTER (WHERE verdict = 'reconciled')
             FROM reconciliation WHERE tenant = $1",
        )
        .bind(tenant)
        .bind(completeness_causes)
        .fetch_one(self.pool())
        .await?;
        let at_stake = sqlx::query_as::<_, (String, i64)>(
            // Every currency the tenant's orders are in, at zero when nothing is at stake,
            // so a gauge falls back when the last variance in a currency is fixed.
            "SELECT currency,
                    COALESCE(sum(money_minor) FILTER (WHERE verdict = 'variance'), 0)::bigint
             FROM reconciliation
             WHERE tenant = $1 AND currency <> ''
             GROUP BY currency ORDER BY currency",
        )
        .bind(tenant)
        .fetch_all(self.pool())
        .await?;
        Ok(Standing {
            checked,
            complete,
            accurate,
            at_stake,
        })
    }
}

/// Where a tenant's orders stand, over their last checks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Standing {
    /// Orders with a verdict other than `pending`.
    pub checked: i64,
    /// Checked orders with none of the completeness causes.
    pub complete: i64,
    /// Checked orders found reconciled.
    pub accurate: i64,
    /// Money at stake over the open variances, by currency (every currency of the
    /// tenant's checked orders, zero where nothing is at stake).
    pub at_stake: Vec<(String, i64)>,
}

/// An ERP document no Centra order explains.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct UnexplainedDocument {
    pub erp_reference: String,
    pub document_date: Option<NaiveDate>,
    pub currency: String,
    pub gross_minor: i64,
    pub variance: serde_json::Value,
}

/// The steps of an order's journey the reconciler times, in the order the day figures
/// keep them (the reconciler's `Step`, as it writes them in `figures.timing`).
pub const TIMED_STEPS: [&str; 4] = ["posted", "shipped", "email", "captured"];

/// A day's figures counted from its verdicts (`$4`: the completeness causes), in the
/// columns of [`DayFigures`]; steps timed and late as `figures.timing` records them.
macro_rules! day_figures {
    () => {
        "order_date AS day,
         count(*) FILTER (WHERE verdict <> 'pending') AS checked,
         count(*) FILTER (WHERE verdict <> 'pending' AND NOT causes && $4::text[]) AS complete,
         count(*) FILTER (WHERE verdict = 'reconciled') AS accurate,
         count(*) FILTER (WHERE verdict = 'pending') AS pending,
         ARRAY[count(*) FILTER (WHERE figures->'timing' ? 'posted_s'),
               count(*) FILTER (WHERE figures->'timing' ? 'shipped_s'),
               count(*) FILTER (WHERE figures->'timing' ? 'email_s'),
               count(*) FILTER (WHERE figures->'timing' ? 'captured_s')] AS timed,
         ARRAY[count(*) FILTER (WHERE figures->'timing'->'late' ? 'posted'),
               count(*) FILTER (WHERE figures->'timing'->'late' ? 'shipped'),
               count(*) FILTER (WHERE figures->'timing'->'late' ? 'email'),
               count(*) FILTER (WHERE figures->'timing'->'late' ? 'captured')] AS late"
    };
}

/// One day of a period as the console charts it (by Centra's order date).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct DayFigures {
    pub day: NaiveDate,
    pub checked: i64,
    pub complete: i64,
    pub accurate: i64,
    pub pending: i64,
    /// Per step of [`TIMED_STEPS`]: orders timed, and those late.
    pub timed: Vec<i64>,
    pub late: Vec<i64>,
}

/// Orders and money a cause accounts for over a period, per currency.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct CauseFigures {
    pub cause: String,
    pub currency: String,
    pub orders: i64,
    pub money_minor: i64,
}

impl Store {
    /// A period's standing day by day, counted from the verdicts (a month of a busy
    /// brand is a million rows: the reconciler counts it once per pass, see
    /// [`Store::refresh_reconciliation_days`]).
    pub async fn count_reconciliation_days(
        &self,
        tenant: &str,
        from: NaiveDate,
        to: NaiveDate,
        completeness_causes: &[&str],
    ) -> Result<Vec<DayFigures>, StoreError> {
        Ok(sqlx::query_as::<_, DayFigures>(concat!(
            "SELECT ",
            day_figures!(),
            " FROM reconciliation
                 WHERE tenant = $1 AND order_date BETWEEN $2 AND $3
                 GROUP BY order_date ORDER BY order_date"
        ))
        .bind(tenant)
        .bind(from)
        .bind(to)
        .bind(completeness_causes)
        .fetch_all(self.pool())
        .await?)
    }

    /// Counts `from..=to` day by day and keeps the figures for the console (the
    /// reconciler, at the end of each pass through the brand's orders).
    pub async fn refresh_reconciliation_days(
        &self,
        tenant: &str,
        from: NaiveDate,
        to: NaiveDate,
        completeness_causes: &[&str],
    ) -> Result<(), StoreError> {
        sqlx::query(concat!(
            "INSERT INTO reconciliation_days
                     (day, checked, complete, accurate, pending, timed, late, tenant)
                 SELECT ",
            day_figures!(),
            ", $1 FROM reconciliation
                 WHERE tenant = $1 AND order_date BETWEEN $2 AND $3
                 GROUP BY order_date
                 ON CONFLICT (tenant, day) DO UPDATE
                 SET checked = EXCLUDED.checked, complete = EXCLUDED.complete,
                     accurate = EXCLUDED.accurate, pending = EXCLUDED.pending,
                     timed = EXCLUDED.timed, late = EXCLUDED.late, counted_at = now()"
        ))
        .bind(tenant)
        .bind(from)
        .bind(to)
        .bind(completeness_causes)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// A period's standing day by day as last counted, and when it was counted (`None`:
    /// never counted for this period).
    pub async fn reconciliation_days(
        &self,
        tenant: &str,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<(Vec<DayFigures>, Option<DateTime<Utc>>), StoreError> {
        let counted: Option<DateTime<Utc>> = sqlx::query_scalar(
            "SELECT min(counted_at) FROM reconciliation_days
             WHERE tenant = $1 AND day BETWEEN $2 AND $3",
        )
        .bind(tenant)
        .bind(from)
        .bind(to)
        .fetch_one(self.pool())
        .await?;
        let days = sqlx::query_as::<_, DayFigures>(
            "SELECT day, checked, complete, accurate, pending, timed, late
             FROM reconciliation_days
             WHERE tenant = $1 AND day BETWEEN $2 AND $3 ORDER BY day",
        )
        .bind(tenant)
        .bind(from)
        .bind(to)
        .fetch_all(self.pool())
        .await?;
        Ok((days, counted))
    }

    /// A period's variances by cause: orders and money at stake per currency.
    pub async fn reconciliation_causes(
        &self,
        tenant: &str,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Vec<CauseFigures>, StoreError> {
        Ok(sqlx::query_as::<_, CauseFigures>(
            "SELECT cause, currency, count(*) AS orders, COALESCE(sum(money_minor), 0)::bigint
                    AS money_minor
             FROM reconciliation, unnest(causes) AS cause
             WHERE tenant = $1 AND order_date BETWEEN $2 AND $3 AND verdict = 'variance'
             GROUP BY cause, currency ORDER BY money_minor DESC, cause",
        )
        .bind(tenant)
        .bind(from)
        .bind(to)
        .fetch_all(self.pool())
        .await?)
    }
}
