//! The operations API's reads and writes: exceptions listed by filter a page at a time,
//! the actions people take on one (each with its audit row, a retried call acting once),
//! and the API tokens that say who they are.

use chrono::{DateTime, Utc};
use sqlx::{Postgres, QueryBuilder, Row};
use uuid::Uuid;

use crate::{Store, StoreError};

/// Which exceptions a List asks for; every field set must hold.
#[derive(Debug, Clone, Default)]
pub struct ExceptionQuery {
    /// `None`: every tenant.
    pub tenants: Option<Vec<String>>,
    pub owner: Option<String>,
    pub kind: Option<String>,
    /// open (with no assignee), assigned (open, with one), retrying, resolved, ignored;
    /// active: open, assigned or retrying.
    pub state: Option<String>,
    pub order: Option<i64>,
    pub assignee: Option<String>,
    pub overdue: Option<bool>,
    pub text: Option<String>,
    /// The last row of the previous page: (due time, id).
    pub after: Option<(DateTime<Utc>, Uuid)>,
    pub limit: i64,
}

/// One exception as the API shows it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OpsException {
    pub id: Uuid,
    pub tenant: String,
    pub kind: String,
    pub owner: String,
    pub severity: String,
    pub message: String,
    pub reason: String,
    pub order_number: Option<i64>,
    pub amount_minor: Option<i64>,
    pub currency: Option<String>,
    pub service: String,
    /// Where the blocked message came from (re-driven there on retry).
    pub source_subject: Option<String>,
    pub state: String,
    pub state_reason: Option<String>,
    pub assignee: Option<String>,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    pub seen_count: i64,
    pub sla_due: DateTime<Utc>,
    pub payload: Vec<u8>,
}

/// One line of an exception's audit.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct AuditRow {
    pub at: DateTime<Utc>,
    pub actor: String,
    pub action: String,
    pub note: String,
}

/// What a person does to an exception.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExceptionAction {
    Resolve {
        note: String,
    },
    Ignore {
        reason: String,
    },
    Assign {
        assignee: Option<String>,
    },
    Comment {
        text: String,
    },
    /// The work is being re-driven: `retrying` until it succeeds or fails again.
    Retry,
}

impl ExceptionAction {
    pub fn name(&self) -> &'static str {
        match self {
            ExceptionAction::Resolve { .. } => "resolve",
            ExceptionAction::Ignore { .. } => "ignore",
            ExceptionAction::Assign { .. } => "assign",
            ExceptionAction::Comment { .. } => "comment",
            ExceptionAction::Retry => "retry",
        }
    }

    fn note(&self) -> String {
        match self {
            ExceptionAction::Resolve { note } => note.clone(),
            ExceptionAction::Ignore { reason } => reason.clone(),
            ExceptionAction::Assign { assignee } => assignee.clone().unwrap_or_default(),
            ExceptionAction::Comment { text } => text.clone(),
            ExceptionAction::Retry => String::new(),
        }
    }
}

/// An API token as stored (its secret only as a hash).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct TokenRow {
    pub id: Uuid,
    pub name: String,
    pub role: String,
    pub tenants: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// The columns of [`OpsException`] (a macro: sqlx takes only literal SQL).
macro_rules! columns {
    () => {
        "id, tenant, kind, owner, severity, message, reason, order_number, amount_minor,
         currency, service, source_subject, state, state_reason, assignee, first_seen,
         last_seen, seen_count, sla_due, payload"
    };
}

impl Store {
    /// A page of exceptions, most overdue first (by due time, then id).
    pub async fn list_exceptions(
        &self,
        q: &ExceptionQuery,
    ) -> Result<Vec<OpsException>, StoreError> {
        let mut sql = QueryBuilder::new(concat!("SELECT ", columns!(), " FROM exceptions"));
        push_conditions(&mut sql, q);
        if let Some((due, id)) = q.after {
            sql.push(" AND (sla_due, id) > (")
                .push_bind(due)
                .push(", ")
                .push_bind(id)
                .push(")");
        }
        sql.push(" ORDER BY sla_due, id LIMIT ").push_bind(q.limit);
        Ok(sql
            .build_query_as::<OpsException>()
            .fetch_all(self.pool())
            .await?)
    }

    /// How many exceptions `q` finds (its page bounds ignored).
    pub async fn count_exceptions(&self, q: &ExceptionQuery) -> Result<i64, StoreError> {
        let mut sql = QueryBuilder::new("SELECT count(*) FROM exceptions");
        push_conditions(&mut sql, q);
        Ok(sql
            .build_query_scalar::<i64>()
            .fetch_one(self.pool())
            .await?)
    }

    pub async fn exception_by_id(&self, id: Uuid) -> Result<Option<OpsException>, StoreError> {
        Ok(sqlx::query_as::<_, OpsException>(concat!(
            "SELECT ",
            columns!(),
            " FROM exceptions WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(self.pool())
        .await?)
    }

    /// Who did what to an exception, oldest first.
    pub async fn exception_audit(&self, id: Uuid) -> Result<Vec<AuditRow>, StoreError> {
        Ok(sqlx::query_as::<_, AuditRow>(
            "SELECT at, actor, action, note FROM exception_audit
             WHERE exception_id = $1 ORDER BY id",
        )
        .bind(id)
        .fetch_all(self.pool())
        .await?)
    }

    /// Does `action` to exception `id` as `actor`, with its audit row, in one transaction.
    /// A call whose `request_id` this actor used before does nothing again; resolving or
    /// ignoring an exception already closed changes nothing and records nothing. Returns
    /// whether anything was done.
    pub async fn act_on_exception(
        &self,
        id: Uuid,
        actor: &str,
        action: &ExceptionAction,
        request_id: Option<&str>,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool().begin().await?;
        // One action at a time on an exception: the row lock orders them.
        let row = sqlx::query("SELECT tenant, state FROM exceptions WHERE id = $1 FOR UPDATE")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(row) = row else {
            return Ok(false);
        };
        let tenant: String = row.try_get("tenant")?;
        let state: String = row.try_get("state")?;
        if let Some(request_id) = request_id {
            let seen: Option<i64> = sqlx::query_scalar(
                "SELECT id FROM exception_audit WHERE actor = $1 AND request_id = $2",
            )
            .bind(actor)
            .bind(request_id)
            .fetch_optional(&mut *tx)
            .await?;
            if seen.is_some() {
                return Ok(false);
            }
        }
        let closed = state == "resolved" || state == "ignored";
        let changed = match action {
            ExceptionAction::Resolve { note } | ExceptionAction::Ignore { reason: note } => {
                if closed {
                    return Ok(false);
                }
                let to = if matches!(action, ExceptionAction::Resolve { .. }) {
                    "resolved"
                } else {
                    "ignored"
                };
                sqlx::query(
                    "UPDATE exceptions SET state = $2, state_reason = $3, resolved_at = now()
                     WHERE id = $1",
                )
                .bind(id)
                .bind(to)
                .bind(format!("{}: {note}", actor))
                .execute(&mut *tx)
                .await?;
                true
            }
            ExceptionAction::Assign { assignee } => {
                sqlx::query("UPDATE exceptions SET assignee = $2 WHERE id = $1")
                    .bind(id)
                    .bind(assignee)
                    .execute(&mut *tx)
                    .await?;
                true
            }
            ExceptionAction::Comment { .. } => true,
            ExceptionAction::Retry => {
                if closed {
                    return Ok(false);
                }
                sqlx::query(
                    "UPDATE exceptions SET state = 'retrying', retried_at = now() WHERE id = $1",
                )
                .bind(id)
                .execute(&mut *tx)
                .await?;
                true
            }
        };
        sqlx::query(
            "INSERT INTO exception_audit (exception_id, tenant, actor, action, note, request_id)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(id)
        .bind(&tenant)
        .bind(actor)
        .bind(action.name())
        .bind(action.note())
        .bind(request_id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(changed)
    }

    /// Whether `actor` already made a call with `request_id` (it acts once).
    pub async fn request_seen(&self, actor: &str, request_id: &str) -> Result<bool, StoreError> {
        let seen: Option<i64> = sqlx::query_scalar(
            "SELECT id FROM exception_audit WHERE actor = $1 AND request_id = $2",
        )
        .bind(actor)
        .bind(request_id)
        .fetch_optional(self.pool())
        .await?;
        Ok(seen.is_some())
    }

    /// Closes the tenant's retries that worked: an order the ERP refused that is now
    /// posted, and any other retry not raised again within `quiet` (the re-driven message
    /// went through). Returns how many were resolved.
    pub async fn settle_retries(
        &self,
        tenant: &str,
        quiet: std::time::Duration,
    ) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "WITH closed AS (
                 UPDATE exceptions e SET state = 'resolved', resolved_at = now(),
                        state_reason = CASE WHEN e.kind = 'erp_rejected'
                            THEN 'posted to the ERP after a retry'
                            ELSE 'retried; the work went through' END
                 WHERE e.tenant = $1 AND e.state = 'retrying'
                   AND CASE WHEN e.kind = 'erp_rejected' THEN EXISTS (
                           SELECT 1 FROM order_ledger l
                           WHERE l.tenant = e.tenant AND l.order_number = e.order_number
                             AND l.state = 'posted')
                       ELSE e.retried_at < now() - make_interval(secs => $2)
                            AND e.last_seen < e.retried_at END
                 RETURNING e.id, e.tenant, e.state_reason)
             -- Ferry's own actions are audited like people's ('ferry' is no token's name).
             INSERT INTO exception_audit (exception_id, tenant, actor, action, note)
             SELECT id, tenant, 'ferry', 'resolve', state_reason FROM closed",
        )
        .bind(tenant)
        .bind(quiet.as_secs_f64())
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected())
    }

    /// Overdue open exceptions of a tenant by (owner, kind).
    pub async fn overdue_exceptions(
        &self,
        tenant: &str,
    ) -> Result<Vec<(String, String, i64)>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT owner, kind, count(*) FROM exceptions
             WHERE tenant = $1 AND state IN ('open', 'retrying') AND sla_due < now()
             GROUP BY owner, kind ORDER BY owner, kind",
        )
        .bind(tenant)
        .fetch_all(self.pool())
        .await?)
    }

    /// The SKUs holding orders back (open `unmapped_sku` exceptions, keyed
    /// `order:<n>:sku:<sku>`): per SKU and currency, the orders and their money.
    pub async fn unmapped_skus(
        &self,
        tenant: &str,
    ) -> Result<Vec<(String, String, i64, i64)>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT substring(dedupe_key from ':sku:(.*)$') AS sku, COALESCE(currency, ''),
                    count(DISTINCT order_number), COALESCE(sum(amount_minor), 0)::bigint
             FROM exceptions
             WHERE tenant = $1 AND kind = 'unmapped_sku' AND state IN ('open', 'retrying')
               AND dedupe_key LIKE '%:sku:%'
             GROUP BY 1, 2
             ORDER BY 4 DESC, 1",
        )
        .bind(tenant)
        .fetch_all(self.pool())
        .await?)
    }

    /// Stores a new token (its secret already hashed by the caller).
    pub async fn create_token(
        &self,
        name: &str,
        role: &str,
        tenants: &[String],
        secret_hash: &[u8],
    ) -> Result<Uuid, StoreError> {
        let id = Uuid::now_v7();
        sqlx::query(
            "INSERT INTO api_tokens (id, name, role, tenants, secret_hash)
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(id)
        .bind(name)
        .bind(role)
        .bind(tenants)
        .bind(secret_hash)
        .execute(self.pool())
        .await?;
        Ok(id)
    }

    /// The live (not revoked) token whose secret hashes to `secret_hash`.
    pub async fn token_by_hash(&self, secret_hash: &[u8]) -> Result<Option<TokenRow>, StoreError> {
        Ok(sqlx::query_as::<_, TokenRow>(
            "SELECT id, name, role, tenants, created_at, revoked_at FROM api_tokens
             WHERE secret_hash = $1 AND revoked_at IS NULL",
        )
        .bind(secret_hash)
        .fetch_optional(self.pool())
        .await?)
    }

    pub async fn list_tokens(&self) -> Result<Vec<TokenRow>, StoreError> {
        Ok(sqlx::query_as::<_, TokenRow>(
            "SELECT id, name, role, tenants, created_at, revoked_at FROM api_tokens
             ORDER BY created_at",
        )
        .fetch_all(self.pool())
        .await?)
    }

    /// Revokes a token; returns whether a live one was revoked.
    pub async fn revoke_token(&self, id: Uuid) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE api_tokens SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL",
        )
        .bind(id)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }
}

/// The conditions of `q`, only those it sets (every value bound): a statement the planner
/// can fit to an index — a catch-all one (`$n IS NULL OR …`) cannot use the inbox indexes.
fn push_conditions(sql: &mut QueryBuilder<Postgres>, q: &ExceptionQuery) {
    sql.push(" WHERE true");
    match q.tenants.as_deref() {
        Some([one]) => {
            sql.push(" AND tenant = ").push_bind(one.clone());
        }
        Some(many) => {
            sql.push(" AND tenant = ANY(")
                .push_bind(many.to_vec())
                .push(")");
        }
        None => {}
    }
    if let Some(owner) = &q.owner {
        sql.push(" AND owner = ").push_bind(owner.clone());
    }
    if let Some(kind) = &q.kind {
        sql.push(" AND kind = ").push_bind(kind.clone());
    }
    match q.state.as_deref() {
        Some("open") => {
            sql.push(" AND state = 'open' AND assignee IS NULL");
        }
        Some("assigned") => {
            sql.push(" AND state = 'open' AND assignee IS NOT NULL");
        }
        Some("active") => {
            sql.push(" AND state IN ('open', 'retrying')");
        }
        Some(state) => {
            sql.push(" AND state = ").push_bind(state.to_owned());
        }
        None => {}
    }
    if let Some(order) = q.order {
        sql.push(" AND order_number = ").push_bind(order);
    }
    if let Some(assignee) = &q.assignee {
        sql.push(" AND assignee = ").push_bind(assignee.clone());
    }
    match q.overdue {
        Some(true) => {
            sql.push(" AND state IN ('open', 'retrying') AND sla_due < now()");
        }
        Some(false) => {
            sql.push(" AND NOT (state IN ('open', 'retrying') AND sla_due < now())");
        }
        None => {}
    }
    if let Some(text) = &q.text {
        let pattern = format!("%{}%", escape_like(text));
        sql.push(" AND (message ILIKE ")
            .push_bind(pattern.clone())
            .push(" OR reason ILIKE ")
            .push_bind(pattern)
            .push(")");
    }
}

/// `text` matched literally by ILIKE: its `%`, `_` and `\` are not patterns.
fn escape_like(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}
