//! Credit notes for returns (ADR 0037) as Tryton makes them: a **return sale** — a sale of
//! the returned lines at negative quantities for the original sale's party and addresses —
//! which Tryton turns into a return shipment (the warehouse receives the goods) and a
//! credit note. Its reference is the credit's (`<order>-R<return id>`), so a repeat finds
//! it; it is balanced to the refunded amount with a rounding line and taken as far as the
//! posting policy takes sales.
//!
//! Credits come in batches as orders do (`batch.rs`): the credits' own sales and the sales
//! they credit found in one search, the originals read in one call, the return sales
//! created, quoted, confirmed and processed with one call per step. Each credit keeps its
//! own verdict.

use std::collections::HashMap;

use async_trait::async_trait;
use ferry_erp::{CreditNotes, CreditOutcome, ErpError, PostCredit};
use serde_json::{Value, json};

use crate::Tryton;

#[async_trait]
impl CreditNotes for Tryton {
    async fn create_credit_note(&self, credit: &PostCredit) -> Result<CreditOutcome, ErpError> {
        self.credit_batch(std::slice::from_ref(credit))
            .await
            .pop()
            .unwrap_or_else(|| Err(ErpError::Rejected("no result".into())))
    }

    fn credit_batch_limit(&self) -> usize {
        self.config.batch
    }

    async fn create_credit_notes(
        &self,
        credits: &[PostCredit],
    ) -> Vec<Result<CreditOutcome, ErpError>> {
        self.credit_batch(credits).await
    }
}

type Verdict = Option<Result<CreditOutcome, ErpError>>;

impl Tryton {
    /// One result per credit, in order.
    async fn credit_batch(&self, credits: &[PostCredit]) -> Vec<Result<CreditOutcome, ErpError>> {
        let mut results: Vec<Verdict> = vec![None; credits.len()];
        let references = credits.iter().flat_map(|c| {
            [
                self.reference(&c.external_ref),
                self.reference(&c.order_ref),
            ]
        });
        let sales = match self.sale_ids(references.collect()).await {
            Ok(sales) => sales,
            Err(e) => return credits.iter().map(|_| Err(e.clone())).collect(),
        };
        // A credit twice in one batch (a redelivery) is made once; the copy gets its result.
        let mut first: HashMap<&str, usize> = HashMap::new();
        let mut copies: Vec<(usize, usize)> = Vec::new();
        let mut new: Vec<(usize, i64)> = Vec::new();
        let mut earlier = crate::batch::OneByOne::default();
        for (i, credit) in credits.iter().enumerate() {
            if let Some(&j) = first.get(credit.external_ref.as_str()) {
                copies.push((i, j));
                continue;
            }
            first.insert(&credit.external_ref, i);
            // Idempotent by reference, as sales are: an earlier attempt's return sale is
            // finished, never made twice.
            if let Some(&id) = sales.get(&self.reference(&credit.external_ref)) {
                let done = earlier.take(self.finish(id, -credit.gross_minor)).await;
                results[i] = Some(done.map(CreditOutcome::Credited));
                continue;
            }
            match sales.get(&self.reference(&credit.order_ref)) {
                Some(&original) => new.push((i, original)),
                None => {
                    results[i] = Some(Ok(CreditOutcome::Refused(format!(
                        "Tryton has no sale for order {}",
                        credit.order_ref
                    ))))
                }
            }
        }
        let fresh = self.return_sales(credits, &new, &mut results).await;
        if !fresh.is_empty() {
            let paid: Vec<(usize, i64)> = fresh
                .iter()
                .map(|(i, _)| (*i, -credits[*i].gross_minor))
                .collect();
            let values: Vec<Value> = fresh.into_iter().map(|(_, v)| v).collect();
            for (i, result) in self.create_and_finish(&paid, values).await {
                tracing::debug!(credit = %credits[i].external_ref, ok = result.is_ok(), "Tryton return sale");
                results[i] = Some(result.map(CreditOutcome::Credited));
            }
        }
        for (copy, of) in copies {
            results[copy] = results[of].clone();
        }
        results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err(ErpError::Rejected("no result".into()))))
            .collect()
    }

    /// The return sales to create for `new` (credit index, original sale), the originals
    /// read in one call. A credit that cannot be made gets its verdict in `results`.
    async fn return_sales(
        &self,
        credits: &[PostCredit],
        new: &[(usize, i64)],
        results: &mut [Verdict],
    ) -> Vec<(usize, Value)> {
        if new.is_empty() {
            return Vec::new();
        }
        let ids: Vec<i64> = new.iter().map(|(_, original)| *original).collect();
        let rows = match self
            .rpc
            .call(
                "model.sale.sale.read",
                vec![
                    json!(ids),
                    json!(["party", "invoice_address", "shipment_address", "state"]),
                ],
            )
            .await
        {
            Ok(rows) => rows,
            Err(e) => {
                for (i, _) in new {
                    results[*i] = Some(Err(e.clone()));
                }
                return Vec::new();
            }
        };
        let by_id: HashMap<i64, &Value> = crate::rpc::by_id(&rows);
        let mut fresh = Vec::with_capacity(new.len());
        for &(i, original) in new {
            let credit = &credits[i];
            let verdict = match by_id.get(&original) {
                None => Err(ErpError::Rejected(format!(
                    "Tryton sale {original} vanished"
                ))),
                Some(row) if row["state"].as_str() == Some("cancelled") => {
                    Ok(CreditOutcome::Refused(format!(
                        "the sale of order {} is cancelled in Tryton: there is nothing to credit",
                        credit.order_ref
                    )))
                }
                Some(row) => match self.return_sale(credit, row).await {
                    Ok(values) => {
                        fresh.push((i, values));
                        continue;
                    }
                    Err(e) => Err(e),
                },
            };
            results[i] = Some(verdict);
        }
        fresh
    }

    /// The return sale of `credit` against the original sale `row`.
    async fn return_sale(&self, credit: &PostCredit, row: &Value) -> Result<Value, ErpError> {
        let currency = self.currency(&credit.currency).await?;
        let lines = self.lines_of(&credit.lines, currency.digits, -1).await?;
        Ok(json!({
            "party": row["party"],
            "invoice_address": row["invoice_address"],
            "shipment_address": row["shipment_address"],
            "currency": currency.id,
            "reference": self.reference(&credit.external_ref),
            "description": format!(
                "Return {} of Centra order {} ({}){}",
                credit.return_id,
                credit.order_ref,
                credit.date,
                if credit.restock { "" } else { ": not for resale" }
            ),
            "shipment_cost_method": Value::Null,
            "lines": [["create", lines]],
        }))
    }
}
