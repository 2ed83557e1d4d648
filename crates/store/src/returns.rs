//! Returns credited in the ERP (ADR 0037): each completed Centra return priced once —
//! against what the order's earlier returns already took — and recorded before its credit
//! document is sent, so a retry sends the same money and a redelivery sends nothing.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use sqlx::Row as _;

use crate::{Store, StoreError};

/// Where a return's credit stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CreditState {
    /// Priced and being sent to the ERP.
    Crediting,
    /// The ERP holds the credit document.
    Credited,
    /// Refused or impossible; finance has the exception. A replay prices it again.
    NotCredited,
}

impl CreditState {
    pub fn as_str(self) -> &'static str {
        match self {
            CreditState::Crediting => "crediting",
            CreditState::Credited => "credited",
            CreditState::NotCredited => "not_credited",
        }
    }

    fn parse(s: &str) -> Result<Self, StoreError> {
        [
            CreditState::Crediting,
            CreditState::Credited,
            CreditState::NotCredited,
        ]
        .into_iter()
        .find(|c| c.as_str() == s)
        .ok_or_else(|| StoreError::Corrupt(format!("unknown return credit state {s:?}")))
    }
}

/// What an earlier return of the same order took.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Taken {
    /// Units per Centra order line.
    pub units: BTreeMap<i64, i64>,
    /// (gross, tax) per shipping line of the order, in its order.
    pub shipping: Vec<(i64, i64)>,
}

/// A return as priced.
#[derive(Debug, Clone, PartialEq)]
pub struct PricedReturn {
    pub currency: String,
    pub gross_minor: i64,
    pub tax_minor: i64,
    pub shipping_minor: i64,
    pub taken: Taken,
    /// The credit document as the connector takes it.
    pub credit: serde_json::Value,
}

/// A return's recorded credit.
#[derive(Debug, Clone, PartialEq)]
pub struct ReturnCredit {
    pub return_id: i64,
    pub order_number: i64,
    pub state: CreditState,
    pub priced: PricedReturn,
    pub erp_reference: Option<String>,
    pub reason: String,
    pub credited_at: Option<DateTime<Utc>>,
}

/// Refunds credited in one currency over a period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refunds {
    pub currency: String,
    pub returns: i64,
    pub gross_minor: i64,
    pub tax_minor: i64,
}

/// Advisory-lock namespace for pricing one order's returns one at a time ("FRTN").
const ORDER_LOCK: i32 = 0x4652_544e;

fn taken_json(t: &Taken) -> (serde_json::Value, serde_json::Value) {
    let units: serde_json::Map<String, serde_json::Value> = t
        .units
        .iter()
        .map(|(line, n)| (line.to_string(), (*n).into()))
        .collect();
    (
        serde_json::Value::Object(units),
        serde_json::json!(t.shipping.iter().map(|(g, x)| [g, x]).collect::<Vec<_>>()),
    )
}

fn taken_of(units: serde_json::Value, shipping: serde_json::Value) -> Result<Taken, StoreError> {
    let units: BTreeMap<String, i64> = serde_json::from_value(units)
        .map_err(|e| StoreError::Corrupt(format!("return units: {e}")))?;
    let shipping: Vec<(i64, i64)> = serde_json::from_value(shipping)
        .map_err(|e| StoreError::Corrupt(format!("return shipping: {e}")))?;
    Ok(Taken {
        units: units
            .into_iter()
            .filter_map(|(k, v)| k.parse().ok().map(|k| (k, v)))
            .collect(),
        shipping,
    })
}

fn credit_of(row: &sqlx::postgres::PgRow) -> Result<ReturnCredit, StoreError> {
    Ok(ReturnCredit {
        return_id: row.try_get("return_id")?,
        order_number: row.try_get("order_number")?,
        state: CreditState::parse(row.try_get("state")?)?,
        priced: PricedReturn {
            currency: row.try_get("currency")?,
            gross_minor: row.try_get("gross_minor")?,
            tax_minor: row.try_get("tax_minor")?,
            shipping_minor: row.try_get("shipping_minor")?,
            taken: taken_of(row.try_get("units")?, row.try_get("shipping")?)?,
            credit: row.try_get("credit")?,
        },
        erp_reference: row.try_get("erp_reference")?,
        reason: row.try_get("reason")?,
        credited_at: row.try_get("credited_at")?,
    })
}

impl Store {
    /// The recorded credit of a return, if it was priced.
    pub async fn return_credit(
        &self,
        tenant: &str,
        return_id: i64,
    ) -> Result<Option<ReturnCredit>, StoreError> {
        let row = sqlx::query(
            "SELECT return_id, order_number, state, currency, gross_minor, tax_minor, \
             shipping_minor, units, shipping, credit, erp_reference, reason, credited_at \
             FROM return_credits WHERE tenant = $1 AND return_id = $2",
        )
        .bind(tenant)
        .bind(return_id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(credit_of).transpose()
    }

    /// Prices a return once: with the order's returns locked, `price` gets what the
    /// order's other returns took and its answer is recorded `crediting`. A return priced
    /// before is returned as recorded (a return refused before is priced again). `price`'s
    /// own refusal is handed back and nothing is recorded.
    pub async fn price_return<E>(
        &self,
        tenant: &str,
        return_id: i64,
        order_number: i64,
        price: impl FnOnce(&[Taken]) -> Result<PricedReturn, E>,
    ) -> Result<Result<ReturnCredit, E>, StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1, hashtext($2 || ':' || $3::text))")
            .bind(ORDER_LOCK)
            .bind(tenant)
            .bind(order_number)
            .execute(&mut *tx)
            .await?;
        let rows = sqlx::query(
            "SELECT return_id, order_number, state, currency, gross_minor, tax_minor, \
             shipping_minor, units, shipping, credit, erp_reference, reason, credited_at \
             FROM return_credits WHERE tenant = $1 AND order_number = $2",
        )
        .bind(tenant)
        .bind(order_number)
        .fetch_all(&mut *tx)
        .await?;
        let mut others = Vec::with_capacity(rows.len());
        for row in &rows {
            let credit = credit_of(row)?;
            if credit.return_id == return_id && credit.state != CreditState::NotCredited {
                return Ok(Ok(credit));
            }
            if credit.return_id != return_id && credit.state != CreditState::NotCredited {
                others.push(credit.priced.taken);
            }
        }
        let priced = match price(&others) {
            Ok(p) => p,
            Err(e) => return Ok(Err(e)),
        };
        let (units, shipping) = taken_json(&priced.taken);
        let row = sqlx::query(
            "INSERT INTO return_credits (tenant, return_id, order_number, state, currency, \
             gross_minor, tax_minor, shipping_minor, units, shipping, credit) \
             VALUES ($1, $2, $3, 'crediting', $4, $5, $6, $7, $8, $9, $10) \
             ON CONFLICT (tenant, return_id) DO UPDATE SET state = 'crediting', \
             currency = EXCLUDED.currency, gross_minor = EXCLUDED.gross_minor, \
             tax_minor = EXCLUDED.tax_minor, shipping_minor = EXCLUDED.shipping_minor, \
             units = EXCLUDED.units, shipping = EXCLUDED.shipping, credit = EXCLUDED.credit, \
             reason = '', created_at = now() \
             RETURNING return_id, order_number, state, currency, gross_minor, tax_minor, \
             shipping_minor, units, shipping, credit, erp_reference, reason, credited_at",
        )
        .bind(tenant)
        .bind(return_id)
        .bind(order_number)
        .bind(&priced.currency)
        .bind(priced.gross_minor)
        .bind(priced.tax_minor)
        .bind(priced.shipping_minor)
        .bind(units)
        .bind(shipping)
        .bind(&priced.credit)
        .fetch_one(&mut *tx)
        .await?;
        let credit = credit_of(&row)?;
        tx.commit().await?;
        Ok(Ok(credit))
    }

    /// The ERP holds the return's credit document `erp_reference`.
    pub async fn return_credited(
        &self,
        tenant: &str,
        return_id: i64,
        erp_reference: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE return_credits SET state = 'credited', erp_reference = $3, \
             credited_at = COALESCE(credited_at, now()) WHERE tenant = $1 AND return_id = $2",
        )
        .bind(tenant)
        .bind(return_id)
        .bind(erp_reference)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The return could not be credited (`reason`, for finance); a replay prices it again.
    /// A return never priced (its order was never posted) is recorded with no money.
    pub async fn return_not_credited(
        &self,
        tenant: &str,
        return_id: i64,
        order_number: i64,
        currency: &str,
        reason: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO return_credits (tenant, return_id, order_number, state, currency, \
             gross_minor, tax_minor, units, credit, reason) \
             VALUES ($1, $2, $3, 'not_credited', $4, 0, 0, '{}', 'null', $5) \
             ON CONFLICT (tenant, return_id) DO UPDATE SET state = 'not_credited', reason = $5 \
             WHERE return_credits.state <> 'credited'",
        )
        .bind(tenant)
        .bind(return_id)
        .bind(order_number)
        .bind(currency)
        .bind(reason)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Every return of an order, oldest first.
    pub async fn returns_of_order(
        &self,
        tenant: &str,
        order_number: i64,
    ) -> Result<Vec<ReturnCredit>, StoreError> {
        let rows = sqlx::query(
            "SELECT return_id, order_number, state, currency, gross_minor, tax_minor, \
             shipping_minor, units, shipping, credit, erp_reference, reason, credited_at \
             FROM return_credits WHERE tenant = $1 AND order_number = $2 ORDER BY return_id",
        )
        .bind(tenant)
        .bind(order_number)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(credit_of).collect()
    }

    /// Refunds credited in `[from, to)`, per currency: the month-end's refunds.
    pub async fn refunds(
        &self,
        tenant: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<Refunds>, StoreError> {
        let rows = sqlx::query(
            "SELECT currency, count(*) AS returns, sum(gross_minor)::bigint AS gross, \
             sum(tax_minor)::bigint AS tax FROM return_credits \
             WHERE tenant = $1 AND state = 'credited' AND credited_at >= $2 AND credited_at < $3 \
             GROUP BY currency ORDER BY currency",
        )
        .bind(tenant)
        .bind(from)
        .bind(to)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Refunds {
                    currency: r.try_get("currency")?,
                    returns: r.try_get("returns")?,
                    gross_minor: r.try_get("gross")?,
                    tax_minor: r.try_get("tax")?,
                })
            })
            .collect()
    }
}
