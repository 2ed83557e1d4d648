//! An order's journey as Ferry recorded it, for people: the ledger's steps, its shipments,
//! the stock it holds, the reconciler's verdict, the exceptions on the way and what people
//! did about them — read from the tables each service writes, not kept twice.

use chrono::{DateTime, Utc};

use crate::{Store, StoreError};

/// An order found by a search.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct OrderFound {
    pub tenant: String,
    pub order_number: i64,
    pub state: String,
    pub erp_reference: Option<String>,
    pub gross_minor: Option<i64>,
    pub currency: String,
}

/// One step, oldest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub at: DateTime<Utc>,
    pub step: String,
    pub by: String,
    pub detail: String,
    /// The trace the step was taken in (empty: none recorded — a person's action, or a
    /// deployment without OpenTelemetry).
    pub trace_id: String,
}

/// An order's journey.
#[derive(Debug, Clone)]
pub struct Timeline {
    pub order: OrderFound,
    pub steps: Vec<Step>,
    pub verdict: Option<String>,
    pub causes: Vec<String>,
    pub exception_ids: Vec<uuid::Uuid>,
}

impl Store {
    /// Orders of `tenants` whose number, ERP reference, shipment tracking number or
    /// customer e-mail is `query` (at most 50).
    pub async fn search_orders(
        &self,
        tenants: &[String],
        query: &str,
    ) -> Result<Vec<OrderFound>, StoreError> {
        let number: Option<i64> = query.trim().parse().ok();
        // An e-mail address is matched by its brand-scoped key: the ledger keeps no address.
        let email_keys: Vec<Vec<u8>> = tenants
            .iter()
            .filter_map(|t| ferry_domain::lookup::email_key(t, query))
            .collect();
        // One lookup per way of finding an order, each by its own index (an OR of them
        // read every row of the ledger).
        Ok(sqlx::query_as::<_, OrderFound>(
            "SELECT l.tenant, l.order_number, l.state, l.erp_reference, l.gross_minor, l.currency
             FROM order_ledger l
             WHERE (l.tenant, l.order_number) IN (
                 SELECT tenant, order_number FROM order_ledger
                 WHERE tenant = ANY($1) AND order_number = $2
                 UNION
                 SELECT tenant, order_number FROM order_ledger
                 WHERE tenant = ANY($1) AND erp_reference = $3
                 UNION
                 SELECT tenant, order_number FROM order_ledger
                 WHERE tenant = ANY($1) AND customer_email_key = ANY($4)
                 UNION
                 SELECT tenant, order_number FROM shipment_ledger
                 WHERE tenant = ANY($1) AND tracking_number = $3)
             ORDER BY l.tenant, l.order_number
             LIMIT 50",
        )
        .bind(tenants)
        .bind(number)
        .bind(query.trim())
        .bind(&email_keys)
        .fetch_all(self.pool())
        .await?)
    }

    /// The journey of one order; `None` if the ledger does not hold it.
    pub async fn order_timeline(
        &self,
        tenant: &str,
        number: i64,
    ) -> Result<Option<Timeline>, StoreError> {
        let Some(row) = self.ledger_row(tenant, number).await? else {
            return Ok(None);
        };
        // The order's own trace runs from the webhook through the transform to the writer.
        let order_trace: Option<String> = sqlx::query_scalar(
            "SELECT trace_id FROM order_ledger WHERE tenant = $1 AND order_number = $2",
        )
        .bind(tenant)
        .bind(number)
        .fetch_one(self.pool())
        .await?;
        let order_trace = order_trace.unwrap_or_default();
        let shipment_traces: std::collections::HashMap<String, String> =
            sqlx::query_as::<_, (String, Option<String>)>(
                "SELECT erp_shipment_id, trace_id FROM shipment_ledger
             WHERE tenant = $1 AND order_number = $2",
            )
            .bind(tenant)
            .bind(number)
            .fetch_all(self.pool())
            .await?
            .into_iter()
            .map(|(id, trace)| (id, trace.unwrap_or_default()))
            .collect();
        let mut steps = Vec::new();
        push(
            &mut steps,
            &order_trace,
            Some(row.first_accepted_at.unwrap_or(row.received_at)),
            "seen",
            "ingest",
            "Centra's order reached Ferry (webhook, Events or resync)".into(),
        );
        push(
            &mut steps,
            &order_trace,
            Some(row.snapshot_fetched_at),
            "snapshot_fetched",
            "ingest",
            format!(
                "the order as Centra holds it (version {})",
                short(&row.snapshot_hash)
            ),
        );
        push(
            &mut steps,
            &order_trace,
            row.transformed_at,
            "transformed",
            "transform",
            format!("now {}", row.state),
        );
        push(
            &mut steps,
            &order_trace,
            row.posting_started_at,
            "posting",
            "erp-writer",
            format!("attempt {}", row.post_attempts),
        );
        push(
            &mut steps,
            &order_trace,
            row.posted_at,
            "posted",
            "erp-writer",
            format!(
                "ERP document {}",
                row.erp_reference.as_deref().unwrap_or("?")
            ),
        );
        for a in self.amendments_of(tenant, number).await? {
            use crate::amendments::AmendmentOutcome;
            let what = if a.cancelled {
                "cancellation"
            } else {
                "change"
            };
            let (step, detail) = match a.outcome {
                AmendmentOutcome::Applied => (
                    "changed_in_erp",
                    format!(
                        "Centra's {what} (version {}) applied to ERP document {}",
                        short(&a.snapshot_hash),
                        a.erp_reference
                    ),
                ),
                AmendmentOutcome::Refused => (
                    "change_refused",
                    format!("the ERP refused Centra's {what}: {}", a.reason),
                ),
                AmendmentOutcome::Superseded => (
                    "change_superseded",
                    format!(
                        "Centra's {what} (version {}) not sent: a newer one was applied",
                        short(&a.snapshot_hash)
                    ),
                ),
                AmendmentOutcome::Unsupported => (
                    "change_not_applied",
                    format!("Centra's {what}: this ERP connector cannot change orders"),
                ),
            };
            push(&mut steps, "", a.recorded_at, step, "erp-writer", detail);
        }
        let committed: Option<DateTime<Utc>> = sqlx::query_scalar(
            "SELECT created_at FROM order_commitments WHERE tenant = $1 AND order_number = $2",
        )
        .bind(tenant)
        .bind(number)
        .fetch_optional(self.pool())
        .await?;
        push(
            &mut steps,
            &order_trace,
            committed,
            "stock_committed",
            "inventory-pusher",
            "its units held back from Centra's sellable stock until shipped".into(),
        );
        for s in self.shipments_of_orders(tenant, &[number]).await? {
            let tracking = s
                .tracking_number
                .as_deref()
                .unwrap_or("no tracking number yet");
            let trace = shipment_traces
                .get(&s.erp_shipment_id)
                .map(String::as_str)
                .unwrap_or_default();
            push(
                &mut steps,
                trace,
                Some(s.first_seen_at),
                "shipped_in_erp",
                "fulfilment-feedback",
                format!("ERP shipment {} ({tracking})", s.erp_shipment_id),
            );
            push(
                &mut steps,
                trace,
                s.centra_completed_at,
                "shipment_in_centra",
                "fulfilment-feedback",
                format!(
                    "Centra shipment {} with tracking {tracking}",
                    s.centra_shipment_id
                        .map(|i| i.to_string())
                        .unwrap_or_default()
                ),
            );
            if s.email_sent {
                push(
                    &mut steps,
                    trace,
                    s.centra_completed_at,
                    "email_sent",
                    "fulfilment-feedback",
                    "Centra sent the shipping e-mail".into(),
                );
            }
            if s.captured {
                push(
                    &mut steps,
                    trace,
                    s.centra_completed_at,
                    "captured",
                    "fulfilment-feedback",
                    "the payment was captured with the shipment".into(),
                );
            }
        }
        let verdict: Option<(String, Vec<String>, DateTime<Utc>)> = sqlx::query_as(
            "SELECT verdict, causes, checked_at FROM reconciliation
             WHERE tenant = $1 AND order_number = $2",
        )
        .bind(tenant)
        .bind(number)
        .fetch_optional(self.pool())
        .await?;
        if let Some((v, causes, at)) = &verdict {
            push(
                &mut steps,
                "",
                Some(*at),
                "reconciled",
                "reconciler",
                if causes.is_empty() {
                    v.clone()
                } else {
                    format!("{v}: {}", causes.join(", "))
                },
            );
        }
        let exceptions: Vec<RaisedOn> = sqlx::query_as(
            "SELECT id, kind, service, first_seen, trace_id FROM exceptions
             WHERE tenant = $1 AND order_number = $2 ORDER BY first_seen",
        )
        .bind(tenant)
        .bind(number)
        .fetch_all(self.pool())
        .await?;
        for (_, kind, service, at, trace) in &exceptions {
            push(
                &mut steps,
                trace.as_deref().unwrap_or_default(),
                Some(*at),
                "exception",
                service,
                kind.clone(),
            );
        }
        let ids: Vec<uuid::Uuid> = exceptions.iter().map(|e| e.0).collect();
        let audit: Vec<(DateTime<Utc>, String, String, String)> = sqlx::query_as(
            "SELECT at, actor, action, note FROM exception_audit
             WHERE exception_id = ANY($1) ORDER BY id",
        )
        .bind(&ids)
        .fetch_all(self.pool())
        .await?;
        for (at, actor, action, note) in audit {
            push(&mut steps, "", Some(at), &action, &actor, note);
        }
        steps.sort_by_key(|s| s.at);
        let (verdict, causes) = verdict.map_or((None, Vec::new()), |(v, c, _)| (Some(v), c));
        Ok(Some(Timeline {
            order: OrderFound {
                tenant: row.tenant,
                order_number: row.order_number,
                state: row.state,
                erp_reference: row.erp_reference,
                gross_minor: row.gross_minor,
                currency: row.currency,
            },
            steps,
            verdict,
            causes,
            exception_ids: ids,
        }))
    }
}

/// An exception of the order: id, kind, raising service, when, its trace.
type RaisedOn = (uuid::Uuid, String, String, DateTime<Utc>, Option<String>);

/// Adds a step that happened (`at` set), taken in `trace`.
fn push(
    steps: &mut Vec<Step>,
    trace: &str,
    at: Option<DateTime<Utc>>,
    step: &str,
    by: &str,
    detail: String,
) {
    if let Some(at) = at {
        steps.push(Step {
            at,
            step: step.to_owned(),
            by: by.to_owned(),
            detail,
            trace_id: trace.to_owned(),
        });
    }
}

fn short(hash: &str) -> &str {
    hash.get(..12).unwrap_or(hash)
}
