//! Changes of many orders per Tryton call (issue 21, part 4), as orders and credit notes
//! are batched: the sales found in one search and their states read in one call, what
//! amending them takes read for all of them together (`amend_prep.rs`); every sale being
//! processed amended in one `sale.amendment` create and one validate, then
//! balanced in a second round of the same, and read back together. Each change keeps its
//! own verdict: one Tryton refuses to amend is refused alone; a sale in any other state
//! (a draft, a quotation, cancelled) and a second change of one sale are handled on their
//! own; and when Tryton refuses a batched validate, every change of the batch is applied
//! one by one (an amendment repeated changes nothing, `changes.rs`).

use std::collections::{HashMap, HashSet};

use ferry_erp::{ChangeOutcome, ErpError, OrderChange};
use serde_json::json;

use crate::Tryton;
use crate::changes::Amend;
use crate::sale::SaleState;

type Verdict = Option<Result<ChangeOutcome, ErpError>>;

impl Tryton {
    /// One result per change, in order.
    pub(crate) async fn change_batch(
        &self,
        changes: &[OrderChange],
    ) -> Vec<Result<ChangeOutcome, ErpError>> {
        let mut results: Vec<Verdict> = vec![None; changes.len()];
        let references = changes
            .iter()
            .map(|c| self.reference(&c.order.external_ref));
        let sales = match self.sale_ids(references.collect()).await {
            Ok(sales) => sales,
            Err(e) => return changes.iter().map(|_| Err(e.clone())).collect(),
        };
        let ids: Vec<i64> = sales.values().copied().collect();
        let states = match self.sale_states(&ids).await {
            Ok(states) => states,
            Err(e) => return changes.iter().map(|_| Err(e.clone())).collect(),
        };
        // Sales being processed are amended together; the rest, and a sale's second
        // change (Tryton validates one amendment per sale per call), on their own.
        let mut together: Vec<(usize, i64)> = Vec::new();
        let mut alone: Vec<usize> = Vec::new();
        let mut seen: HashSet<i64> = HashSet::new();
        for (i, change) in changes.iter().enumerate() {
            let reference = self.reference(&change.order.external_ref);
            match sales.get(&reference) {
                None => {
                    results[i] = Some(Ok(ChangeOutcome::Refused(format!(
                        "Tryton has no sale with reference {reference} to change"
                    ))))
                }
                Some(&sale)
                    if matches!(
                        states.get(&sale),
                        Some(SaleState::Processing | SaleState::Done)
                    ) && seen.insert(sale) =>
                {
                    together.push((i, sale))
                }
                Some(_) => alone.push(i),
            }
        }
        let mut amends: Vec<(usize, Amend)> = Vec::new();
        let items: Vec<(i64, &OrderChange)> = together
            .iter()
            .map(|&(i, sale)| (sale, &changes[i]))
            .collect();
        match self.prepare_amendments(&items).await {
            Ok(prepared) => {
                for (&(i, _), amend) in together.iter().zip(prepared) {
                    match amend {
                        Ok(amend) => amends.push((i, amend)),
                        Err(reason) => results[i] = Some(Ok(ChangeOutcome::Refused(reason))),
                    }
                }
            }
            Err(e) => {
                for &(i, _) in &together {
                    results[i] = Some(Err(e.clone()));
                }
            }
        }
        if !amends.is_empty() {
            let batch: Vec<Amend> = amends.iter().map(|(_, a)| a.clone()).collect();
            match self.apply_amendments(&batch).await {
                Ok(()) => {
                    let ids: Vec<i64> = batch.iter().map(|a| a.sale).collect();
                    for ((i, _), document) in amends.iter().zip(self.documents(&ids).await) {
                        results[*i] = Some(document.map(ChangeOutcome::Applied));
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, changes = amends.len(), "a batched Tryton amendment failed; applying its changes one by one");
                    alone.extend(amends.iter().map(|(i, _)| *i));
                }
            }
        }
        alone.sort_unstable();
        let mut one_by_one = crate::batch::OneByOne::default();
        for i in alone {
            let change = ferry_erp::ChangeOrders::change_sales_order(self, &changes[i]);
            results[i] = Some(one_by_one.take(change).await);
        }
        results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err(ErpError::Rejected("no result".into()))))
            .collect()
    }

    /// Each sale's workflow state, in one read.
    async fn sale_states(&self, ids: &[i64]) -> Result<HashMap<i64, SaleState>, ErpError> {
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        let rows = self
            .rpc
            .call("model.sale.sale.read", vec![json!(ids), json!(["state"])])
            .await?;
        let mut states = HashMap::new();
        for row in rows.as_array().into_iter().flatten() {
            if let Some(id) = row["id"].as_i64() {
                states.insert(id, SaleState::of(row)?);
            }
        }
        Ok(states)
    }
}
