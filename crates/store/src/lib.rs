//! Ferry's PostgreSQL store: the order ledger that proves every order arrived once, the
//! exceptions inbox and SKU mappings. sqlx with bound parameters only;
//! migrations are embedded and run at start-up.

use std::time::Duration;

use chrono::{DateTime, Utc};
use ferry_config::DatabaseConfig;
use ferry_domain::NewException;
use secrecy::ExposeSecret;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgPool, Row};

pub mod amendments;
pub mod bulk;
pub mod console;
pub mod fulfilment;
pub mod health;
pub mod inventory;
pub mod ledger;
pub mod notify;
pub mod ops;
pub mod pending_returns;
pub mod reconciliation;
pub mod returns;
pub mod sku_cache;
pub mod statistics;
pub mod stock_drift;
pub mod timeline;

pub use ledger::{
    BeginPosting, LedgerRow, LedgerState, PostedRecord, PostingClaim, SnapshotOutcome,
    SnapshotRecord,
};
pub use sku_cache::SkuCache;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A stored value this build cannot read (a newer build wrote it, or a person did).
    #[error("stored data: {0}")]
    Corrupt(String),
}

impl StoreError {
    /// Connection trouble, timeouts and serialization conflicts pass; the rest is a bug or
    /// bad data.
    pub fn is_transient(&self) -> bool {
        match self {
            StoreError::Database(e) => match e {
                sqlx::Error::Io(_)
                | sqlx::Error::PoolTimedOut
                | sqlx::Error::PoolClosed
                | sqlx::Error::WorkerCrashed
                | sqlx::Error::Protocol(_) => true,
                sqlx::Error::Database(db) => {
                    // 40001 serialization_failure, 40P01 deadlock, 57P01 admin shutdown,
                    // 08xxx connection exceptions, 53xxx insufficient resources.
                    db.code().is_some_and(|c| {
                        c == "40001"
                            || c == "40P01"
                            || c == "57P01"
                            || c.starts_with("08")
                            || c.starts_with("53")
                    })
                }
                _ => false,
            },
            StoreError::Migrate(_) | StoreError::Corrupt(_) => false,
        }
    }
}

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Identifies the schema the migrations produce (changes whenever a migration does), so
/// test harnesses can cache a migrated template database. 24 hex digits, whatever the
/// number of migrations: it becomes part of a database name (63 bytes at most).
pub fn schema_fingerprint() -> String {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    for m in MIGRATOR.iter() {
        hasher.update(m.version.to_be_bytes());
        hasher.update(&m.checksum);
    }
    hex::encode(&hasher.finalize()[..12])
}

/// A handle on the database; cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    pool: PgPool,
}

impl Store {
    /// Connects with the configured pool size (the URL is a secret and is never logged).
    pub async fn connect(config: &DatabaseConfig) -> Result<Store, StoreError> {
        let options: PgConnectOptions = config.url.expose_secret().parse()?;
        // Prepared statements keep PostgreSQL's default plan caching: after five custom
        // plans a generic one is kept per connection. A generic plan made while a table had
        // no statistics would read the whole tenant for every batch; the statistics keeper
        // (ADR 0019) analyses young tables as they grow, and new statistics make PostgreSQL
        // re-plan every statement that uses the table.
        let pool = PgPoolOptions::new()
            .max_connections(config.max_connections)
            .acquire_timeout(config.acquire_timeout)
            .idle_timeout(Some(Duration::from_secs(300)))
            // A ping before every checkout doubles the round trips; a broken connection
            // fails the statement instead, which the caller retries as transient.
            .test_before_acquire(false)
            .connect_with(options)
            .await?;
        Ok(Store { pool })
    }

    pub fn from_pool(pool: PgPool) -> Store {
        Store { pool }
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Answers when the database does (readiness).
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query_scalar::<_, i32>("SELECT 1")
            .fetch_one(&self.pool)
            .await?;
        Ok(())
    }

    /// Applies the embedded migrations (sqlx takes an advisory lock, so concurrent starts
    /// are safe).
    pub async fn migrate(&self) -> Result<(), StoreError> {
        MIGRATOR.run(&self.pool).await?;
        Ok(())
    }

    /// Records an exception, or bumps the open one with the same (tenant, kind, key).
    /// Returns its id and how often it has now been seen.
    pub async fn upsert_exception(&self, e: &NewException) -> Result<(String, i64), StoreError> {
        self.upsert_traced_exception(e, None).await
    }

    /// [`Store::upsert_exception`], remembering the trace it was raised in.
    pub async fn upsert_traced_exception(
        &self,
        e: &NewException,
        trace_id: Option<&str>,
    ) -> Result<(String, i64), StoreError> {
        let sla_due = Utc::now() + chrono::Duration::hours(i64::from(e.kind.sla_hours()));
        let row = sqlx::query(
            "INSERT INTO exceptions (id, tenant, kind, owner, severity, dedupe_key, message, reason,
                                     order_number, amount_minor, currency, service, source_subject,
                                     payload, sla_due, trace_id)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)
             ON CONFLICT (tenant, kind, dedupe_key) WHERE state IN ('open', 'retrying')
             DO UPDATE SET last_seen = now(), seen_count = exceptions.seen_count + 1,
                           -- Raised again while being retried: the retry failed.
                           state = 'open',
                           message = EXCLUDED.message, reason = EXCLUDED.reason,
                           payload = EXCLUDED.payload, amount_minor = EXCLUDED.amount_minor,
                           trace_id = COALESCE(EXCLUDED.trace_id, exceptions.trace_id)
             RETURNING id, seen_count",
        )
        .bind(uuid::Uuid::now_v7())
        .bind(&e.tenant)
        .bind(e.kind.as_str())
        .bind(e.owner().as_str())
        .bind(e.kind.severity().as_str())
        .bind(&e.key)
        .bind(&e.message)
        .bind(&e.reason)
        .bind(e.order_number)
        .bind(e.amount_minor)
        .bind(&e.currency)
        .bind(&e.service)
        .bind(&e.source_subject)
        .bind(&e.payload)
        .bind(sla_due)
        .bind(trace_id)
        .fetch_one(&self.pool)
        .await?;
        let id: uuid::Uuid = row.try_get("id")?;
        Ok((id.to_string(), row.try_get("seen_count")?))
    }

    /// Open exceptions of a tenant, newest first.
    pub async fn open_exceptions(&self, tenant: &str) -> Result<Vec<ExceptionRow>, StoreError> {
        let rows = sqlx::query_as::<_, ExceptionRow>(
            "SELECT id, tenant, kind, owner, severity, dedupe_key, message, reason, order_number,
                    amount_minor, currency, service, source_subject, payload, state, first_seen,
                    last_seen, seen_count, sla_due
             FROM exceptions WHERE tenant = $1 AND state IN ('open', 'retrying')
             ORDER BY last_seen DESC",
        )
        .bind(tenant)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows)
    }

    /// The tenant's Centra SKU → ERP item mapping.
    pub async fn sku_map(
        &self,
        tenant: &str,
    ) -> Result<std::collections::HashMap<String, String>, StoreError> {
        let rows: Vec<(String, String)> =
            sqlx::query_as("SELECT centra_sku, erp_item FROM sku_mappings WHERE tenant = $1")
                .bind(tenant)
                .fetch_all(&self.pool)
                .await?;
        Ok(rows.into_iter().collect())
    }

    /// Adds or changes mappings; returns how many rows were written.
    pub async fn upsert_sku_mappings(
        &self,
        tenant: &str,
        rows: &[(String, String)],
    ) -> Result<u64, StoreError> {
        let (skus, items): (Vec<&str>, Vec<&str>) =
            rows.iter().map(|(s, i)| (s.as_str(), i.as_str())).unzip();
        let done = sqlx::query(
            "INSERT INTO sku_mappings (tenant, centra_sku, erp_item)
             SELECT $1, sku, item FROM UNNEST($2::text[], $3::text[]) AS m(sku, item)
             ON CONFLICT (tenant, centra_sku) DO UPDATE SET erp_item = EXCLUDED.erp_item, updated_at = now()
             WHERE sku_mappings.erp_item IS DISTINCT FROM EXCLUDED.erp_item",
        )
        .bind(tenant)
        .bind(&skus)
        .bind(&items)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    /// The tenant's mappings, sorted by SKU, with when each last changed.
    pub async fn sku_mappings(
        &self,
        tenant: &str,
    ) -> Result<Vec<(String, String, DateTime<Utc>)>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT centra_sku, erp_item, updated_at FROM sku_mappings WHERE tenant = $1 ORDER BY centra_sku",
        )
        .bind(tenant)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Changes whenever the tenant's mapping changes (count and latest change).
    pub async fn mapping_version(
        &self,
        tenant: &str,
    ) -> Result<(i64, Option<DateTime<Utc>>), StoreError> {
        Ok(
            sqlx::query_as("SELECT count(*), max(updated_at) FROM sku_mappings WHERE tenant = $1")
                .bind(tenant)
                .fetch_one(&self.pool)
                .await?,
        )
    }

    /// Orders parked as rejected by a cause that configuration can fix (a SKU mapping, a
    /// currency, a tax code), with the snapshot they were judged on.
    pub async fn blocked_orders(
        &self,
        tenant: &str,
        limit: i64,
    ) -> Result<Vec<BlockedOrder>, StoreError> {
        Ok(sqlx::query_as::<_, BlockedOrder>(
            "SELECT l.order_number, l.snapshot_hash, l.snapshot_fetched_at, l.first_accepted_at, s.body
             FROM (SELECT DISTINCT order_number FROM exceptions
                   WHERE tenant = $1 AND state IN ('open', 'retrying') AND order_number IS NOT NULL
                     AND kind IN ('unmapped_sku', 'unmapped_currency', 'unmapped_tax_rate')) e
             JOIN order_ledger l ON l.tenant = $1 AND l.order_number = e.order_number
             JOIN order_snapshots s ON s.tenant = $1 AND s.order_number = l.order_number
                                   AND s.snapshot_hash = l.snapshot_hash
             WHERE l.state = 'rejected'
             ORDER BY l.order_number
             LIMIT $2",
        )
        .bind(tenant)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }

    /// The snapshot the ledger kept for an order (bodies are kept for orders that wait,
    /// not for those that went straight to the ERP).
    pub async fn kept_snapshot(
        &self,
        tenant: &str,
        order_number: i64,
    ) -> Result<Option<BlockedOrder>, StoreError> {
        Ok(sqlx::query_as::<_, BlockedOrder>(
            "SELECT l.order_number, l.snapshot_hash, l.snapshot_fetched_at, l.first_accepted_at, s.body
             FROM order_ledger l
             JOIN order_snapshots s ON s.tenant = l.tenant AND s.order_number = l.order_number
                                   AND s.snapshot_hash = l.snapshot_hash
             WHERE l.tenant = $1 AND l.order_number = $2",
        )
        .bind(tenant)
        .bind(order_number)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Resolves an order's open exceptions of `kinds` except those whose key is still a
    /// problem (`keep`): the cause is gone. Returns how many were resolved.
    pub async fn resolve_order_exceptions(
        &self,
        tenant: &str,
        order_number: i64,
        kinds: &[&str],
        keep: &[String],
        reason: &str,
    ) -> Result<u64, StoreError> {
        self.resolve_orders_exceptions(tenant, &[order_number], kinds, keep, reason)
            .await
    }

    /// [`Store::resolve_order_exceptions`] for many orders in one statement (`keep` holds
    /// the keys still a problem for any of them: keys name their order).
    pub async fn resolve_orders_exceptions(
        &self,
        tenant: &str,
        order_numbers: &[i64],
        kinds: &[&str],
        keep: &[String],
        reason: &str,
    ) -> Result<u64, StoreError> {
        let (Some(low), Some(high)) = (
            order_numbers.iter().min().copied(),
            order_numbers.iter().max().copied(),
        ) else {
            return Ok(0);
        };
        // The range lets the (tenant, order_number) index bound the scan: a batch of a
        // sweep is a run of consecutive numbers.
        let done = sqlx::query(
            "WITH closed AS (
                 UPDATE exceptions SET state = 'resolved', resolved_at = now(), state_reason = $5
                 WHERE tenant = $1 AND order_number BETWEEN $6 AND $7
                   AND order_number = ANY($2) AND kind = ANY($3)
                   AND state IN ('open', 'retrying') AND NOT (dedupe_key = ANY($4))
                 RETURNING id, tenant)
             INSERT INTO exception_audit (exception_id, tenant, actor, action, note)
             SELECT id, tenant, 'ferry', 'resolve', $5 FROM closed",
        )
        .bind(tenant)
        .bind(order_numbers)
        .bind(kinds)
        .bind(keep)
        .bind(reason)
        .bind(low)
        .bind(high)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }
}

/// Resolves a tenant's open exceptions of `kind` whose keys are among `keys` (a problem
/// found gone by whoever looked last), with `reason`.
pub(crate) async fn resolve_keyed_exceptions<'e, E: sqlx::PgExecutor<'e>>(
    executor: E,
    tenant: &str,
    kind: &str,
    keys: &[String],
    reason: &str,
) -> Result<u64, StoreError> {
    let done = sqlx::query(
        "WITH closed AS (
             UPDATE exceptions SET state = 'resolved', resolved_at = now(), state_reason = $4
             WHERE tenant = $1 AND kind = $2 AND dedupe_key = ANY($3)
               AND state IN ('open', 'retrying')
             RETURNING id, tenant)
         INSERT INTO exception_audit (exception_id, tenant, actor, action, note)
         SELECT id, tenant, 'ferry', 'resolve', $4 FROM closed",
    )
    .bind(tenant)
    .bind(kind)
    .bind(keys)
    .bind(reason)
    .execute(executor)
    .await?;
    Ok(done.rows_affected())
}

impl Store {
    /// [`resolve_keyed_exceptions`] on the pool.
    pub async fn resolve_exceptions_by_key(
        &self,
        tenant: &str,
        kind: &str,
        keys: &[String],
        reason: &str,
    ) -> Result<u64, StoreError> {
        resolve_keyed_exceptions(&self.pool, tenant, kind, keys, reason).await
    }
}

/// An order waiting for a configuration fix, with the snapshot it was judged on.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct BlockedOrder {
    pub order_number: i64,
    pub snapshot_hash: String,
    pub snapshot_fetched_at: DateTime<Utc>,
    pub first_accepted_at: Option<DateTime<Utc>>,
    pub body: Vec<u8>,
}

/// One row of the exceptions inbox.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ExceptionRow {
    pub id: uuid::Uuid,
    pub tenant: String,
    pub kind: String,
    pub owner: String,
    pub severity: String,
    pub dedupe_key: String,
    pub message: String,
    pub reason: String,
    pub order_number: Option<i64>,
    pub amount_minor: Option<i64>,
    pub currency: Option<String>,
    pub service: String,
    pub source_subject: Option<String>,
    pub payload: Vec<u8>,
    pub state: String,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    pub seen_count: i64,
    pub sla_due: DateTime<Utc>,
}
