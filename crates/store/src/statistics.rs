//! Keeps PostgreSQL's planner statistics of the keyed tables current while they are young.
//!
//! Every batch statement of the ledger looks rows up by key (`tenant = $1 AND
//! order_number = ANY($2)`). Until a table has been analysed, PostgreSQL guesses that a
//! tenant holds 0.5 % of it and prefers reading "those few" rows of the tenant over 200
//! index descents, so each batch reads the whole tenant: measured 37–128 ms per
//! statement at 35,000–60,000 rows instead of about 1 ms, growing with the table.
//! Autovacuum analyses a table only after `autovacuum_naptime` (one minute by default) and
//! 10 % growth, which a fresh install or a busy first minute outruns. So each service checks
//! PostgreSQL's row counters every `analyze_interval` and analyses a table
//! that has grown by half since it was last analysed (ADR 0019). One process at a time does
//! so (a transaction-scoped advisory lock); the cost falls with the table's growth rate:
//! a logarithmic number of `ANALYZE`s while a table grows, then none beyond autovacuum's.

use sqlx::Row;

use crate::{Store, StoreError};

/// The tables Ferry looks up by key in batches, each with the statement that analyses the
/// columns whose statistics steer those plans: the tenant (its share of the table) and the
/// keys (unique, so one row per key); a column list keeps it cheap. Whole
/// statements as constants: table names cannot be bound as parameters.
const KEYED_TABLES: &[(&str, &str)] = &[
    (
        "order_ledger",
        "ANALYZE (SKIP_LOCKED) order_ledger (tenant, order_number, state)",
    ),
    (
        "order_snapshots",
        "ANALYZE (SKIP_LOCKED) order_snapshots (tenant, order_number)",
    ),
    (
        "order_commitments",
        "ANALYZE (SKIP_LOCKED) order_commitments (tenant, order_number)",
    ),
    (
        "stock_levels",
        "ANALYZE (SKIP_LOCKED) stock_levels (tenant, warehouse, sku)",
    ),
    (
        "reconciliation",
        "ANALYZE (SKIP_LOCKED) reconciliation (tenant, order_number, verdict)",
    ),
    (
        "shipment_ledger",
        "ANALYZE (SKIP_LOCKED) shipment_ledger (tenant, erp_shipment_id, order_number, state)",
    ),
];

/// Rows a never-analysed table reaches before its first analysis.
const FIRST_ANALYZE_ROWS: f64 = 500.0;
/// After that, growth (as a share of the rows at the last analysis) that triggers the next.
const GROWTH_SHARE: f64 = 0.5;

/// Whether a table that had `analysed_rows` rows at its last analysis (negative when never
/// analysed) and has `live_rows` now should be analysed. Growth, not churn, is what
/// misleads the planner here: updates leave the tenants' shares as they were. (PostgreSQL's
/// own modification counter is no guide: an `ANALYZE` of some columns does not reset it.)
pub fn needs_analyze(analysed_rows: f64, live_rows: i64) -> bool {
    let analysed_rows = analysed_rows.max(0.0);
    live_rows as f64 - analysed_rows >= FIRST_ANALYZE_ROWS + GROWTH_SHARE * analysed_rows
}

/// Advisory-lock key (namespace, key) held while one process refreshes statistics.
const LOCK: (i32, i32) = (0x4645_5259, 0x5354_4154); // "FERY", "STAT"

impl Store {
    /// Analyses the keyed tables that have outgrown their statistics; returns the tables
    /// analysed. Another process doing the same at this moment makes this a no-op.
    pub async fn refresh_statistics(&self) -> Result<Vec<&'static str>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1, $2)")
            .bind(LOCK.0)
            .bind(LOCK.1)
            .fetch_one(&mut *tx)
            .await?;
        if !locked {
            return Ok(Vec::new());
        }
        let names: Vec<&str> = KEYED_TABLES.iter().map(|(t, _)| *t).collect();
        let rows = sqlx::query(
            "SELECT c.relname::text AS name, c.reltuples::float8 AS rows,
                    s.n_live_tup AS live
             FROM pg_class c JOIN pg_stat_user_tables s ON s.relid = c.oid
             WHERE c.relname = ANY($1) AND c.relnamespace = to_regnamespace(current_schema())",
        )
        .bind(&names)
        .fetch_all(&mut *tx)
        .await?;
        let mut analysed = Vec::new();
        for row in rows {
            let name: String = row.try_get("name")?;
            let Some((table, analyze)) = KEYED_TABLES.iter().find(|(t, _)| *t == name) else {
                continue;
            };
            let live: i64 = row.try_get("live")?;
            if !needs_analyze(row.try_get("rows")?, live) {
                continue;
            }
            sqlx::query(*analyze).execute(&mut *tx).await?;
            // `SKIP_LOCKED` skips a table that autovacuum (or an operator) is working on,
            // with only a warning; the table counts as analysed when its row estimate moved.
            let rows_now: f64 = sqlx::query_scalar(
                "SELECT reltuples::float8 FROM pg_class
                 WHERE relname = $1 AND relnamespace = to_regnamespace(current_schema())",
            )
            .bind(*table)
            .fetch_one(&mut *tx)
            .await?;
            if !needs_analyze(rows_now, live) {
                analysed.push(*table);
            }
        }
        tx.commit().await?;
        Ok(analysed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_fresh_table_is_analysed_after_its_first_rows() {
        assert!(!needs_analyze(-1.0, 499));
        assert!(needs_analyze(-1.0, 500));
        assert!(needs_analyze(0.0, 500));
    }

    #[test]
    fn a_grown_table_waits_for_half_again() {
        assert!(!needs_analyze(100_000.0, 150_000));
        assert!(needs_analyze(100_000.0, 150_500));
        // Shrinking (deletes, pruning) never asks for one.
        assert!(!needs_analyze(100_000.0, 10));
    }

    proptest! {
        /// While a table grows steadily, the analyses are logarithmic in its size: each
        /// one needs half again the rows of the previous one.
        #[test]
        fn analyses_grow_geometrically(total in 1_000i64..5_000_000) {
            let (mut analysed, mut analyses) = (-1.0f64, 0u32);
            for live in (100..=total).step_by(100) {
                if needs_analyze(analysed, live) {
                    analysed = live as f64;
                    analyses += 1;
                }
            }
            let bound = (total as f64 / FIRST_ANALYZE_ROWS).log(1.0 + GROWTH_SHARE).ceil() as u32 + 1;
            prop_assert!(analyses <= bound, "{analyses} analyses for {total} rows (bound {bound})");
            prop_assert!(analyses >= 1);
        }
    }
}
