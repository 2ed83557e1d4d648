//! Many orders per Tryton call (issue 21, part 4). Tryton's RPC takes lists: the batch's
//! customers are matched or created in one search and one create, its sales created in one
//! call, balanced in one write, then quoted, confirmed and
//! processed with one call each, and read back in two. Most of a sale's cost in Tryton is
//! per call — its transaction, its checks, the task that processes a confirmed sale — so a
//! batch of 100 costs 0.16 s a sale where one by one costs 0.8 s (SQLite, see
//! `docs/performance.md`).
//!
//! Each order keeps its own verdict: one that cannot be built (an unknown item, a tax
//! Tryton lacks) fails alone before the batch is sent; a sale already there (an earlier
//! attempt) is finished alone; and when a batched step fails — Tryton refuses a whole call
//! for one bad sale — every sale of the batch is taken on one by one from wherever that
//! left it (each step is safe to repeat, `Tryton::finish`), until one of them goes
//! unanswered ([`OneByOne`]).

use std::collections::{BTreeMap, HashMap};

use ferry_erp::{ErpDocument, ErpError, PostOrder};
use serde_json::{Value, json};

use crate::Tryton;

/// Sales of one number of decimals: (order index, paid) and their values, in step.
type Alike = (Vec<(usize, i64)>, Vec<Value>);

/// The items of a failed batched call, taken on one at a time — until one goes unanswered
/// (a timeout, or an answer lost). Tryton is then hanging or overloaded: waiting out a
/// timeout for each of fifty items would hold the batch for fifty timeouts and add to the
/// load. The items not tried get that answer as theirs, an uncertain one, so that each
/// retry looks for what the batch may have left behind (found by reference, finished
/// from where it stands).
#[derive(Default)]
pub(crate) struct OneByOne {
    unanswered: Option<ErpError>,
}

impl OneByOne {
    /// `call`'s answer, or — once an earlier item went unanswered — that, without calling.
    pub(crate) async fn take<T>(
        &mut self,
        call: impl std::future::Future<Output = Result<T, ErpError>>,
    ) -> Result<T, ErpError> {
        if let Some(why) = &self.unanswered {
            return Err(ErpError::Timeout(format!(
                "not tried after another item of the batch went unanswered ({why})"
            )));
        }
        let result = call.await;
        if let Err(e @ ErpError::Timeout(_)) = &result {
            tracing::warn!(error = %e, "Tryton left an item unanswered; the rest of the batch is left to its retries");
            self.unanswered = Some(e.clone());
        }
        result
    }
}

impl Tryton {
    /// One result per order, in order.
    pub(crate) async fn create_sales_batch(
        &self,
        orders: &[PostOrder],
    ) -> Vec<Result<ErpDocument, ErpError>> {
        let mut results: Vec<Option<Result<ErpDocument, ErpError>>> = vec![None; orders.len()];
        let references = orders.iter().map(|o| self.reference(&o.external_ref));
        let existing = match self.sale_ids(references.collect()).await {
            Ok(existing) => existing,
            Err(e) => return orders.iter().map(|_| Err(e.clone())).collect(),
        };
        // An order twice in one batch (a redelivery) is created once; the copy gets its
        // result.
        let mut first: HashMap<&str, usize> = HashMap::new();
        let mut copies: Vec<(usize, usize)> = Vec::new();
        let mut new: Vec<usize> = Vec::new();
        let mut earlier = OneByOne::default();
        for (i, order) in orders.iter().enumerate() {
            if let Some(&j) = first.get(order.external_ref.as_str()) {
                copies.push((i, j));
                continue;
            }
            first.insert(&order.external_ref, i);
            if let Some(&id) = existing.get(&self.reference(&order.external_ref)) {
                results[i] = Some(earlier.take(self.finish(id, order.gross_minor)).await);
                continue;
            }
            new.push(i);
        }
        // The customers' parties in a few calls for the whole batch.
        let customers: Vec<(&ferry_erp::Customer, &str)> = new
            .iter()
            .map(|&i| (&orders[i].customer, orders[i].external_ref.as_str()))
            .collect();
        let parties = self.parties_of(&customers).await;
        // Delivery addresses (gifts, work addresses) in one search and one create.
        let deliveries: Vec<(usize, i64, &ferry_erp::Address)> = new
            .iter()
            .zip(&parties)
            .filter_map(|(&i, party)| {
                let (party, _) = party.as_ref().ok()?;
                Some((i, *party, orders[i].delivery.as_ref()?))
            })
            .collect();
        let wanted: Vec<(i64, &ferry_erp::Address)> =
            deliveries.iter().map(|(_, p, a)| (*p, *a)).collect();
        let shipment_addresses: HashMap<usize, Result<i64, ErpError>> =
            match self.delivery_addresses(&wanted).await {
                Ok(ids) => deliveries
                    .iter()
                    .zip(ids)
                    .map(|((i, _, _), id)| (*i, Ok(id)))
                    .collect(),
                Err(e) => deliveries
                    .iter()
                    .map(|(i, _, _)| (*i, Err(e.clone())))
                    .collect(),
            };
        // Built first, so that an order Tryton cannot take fails alone.
        let mut fresh: Vec<(usize, Value)> = Vec::new();
        for (i, party) in new.into_iter().zip(parties) {
            let values = match (party, shipment_addresses.get(&i)) {
                (Ok(party), None) => self.sale_values_for(&orders[i], party, party.1).await,
                (Ok(party), Some(Ok(shipment))) => {
                    self.sale_values_for(&orders[i], party, *shipment).await
                }
                (Ok(_), Some(Err(e))) => Err(e.clone()),
                (Err(e), _) => Err(e),
            };
            match values {
                Ok(values) => fresh.push((i, values)),
                Err(e) => results[i] = Some(Err(e)),
            }
        }
        if !fresh.is_empty() {
            let paid: Vec<(usize, i64)> = fresh
                .iter()
                .map(|(i, _)| (*i, orders[*i].gross_minor))
                .collect();
            let values: Vec<Value> = fresh.into_iter().map(|(_, v)| v).collect();
            for (i, result) in self.create_and_finish(&paid, values).await {
                results[i] = Some(result);
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

    /// The sales under these references (Ferry's earlier attempts', or the sales a credit
    /// is against), by reference.
    pub(crate) async fn sale_ids(
        &self,
        references: Vec<String>,
    ) -> Result<HashMap<String, i64>, ErpError> {
        let rows = self
            .rpc
            .call(
                "model.sale.sale.search_read",
                vec![
                    json!([["reference", "in", references]]),
                    json!(0),
                    Value::Null,
                    // The oldest first: it is the one kept, as `sale_id` does.
                    json!([["id", "DESC"]]),
                    json!(["reference"]),
                ],
            )
            .await?;
        Ok(rows
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|r| Some((r["reference"].as_str()?.to_owned(), r["id"].as_i64()?)))
            .collect())
    }

    /// Creates the sales and takes them to where the policy wants them, one call per step
    /// for the sales of each number of decimals; `paid` is each sale's order index and what
    /// its customer paid, in the order of `values`.
    pub(crate) async fn create_and_finish(
        &self,
        paid: &[(usize, i64)],
        values: Vec<Value>,
    ) -> Vec<(usize, Result<ErpDocument, ErpError>)> {
        // Tryton saves records whose new values are equal with one write, and
        // `Decimal("0")` equals `Decimal("0.00")`: a sale in a currency without decimals
        // beside one with two, both totalling nothing (a cancellation, a free order), is
        // written the other's `0.00` and the whole call refused. So no call mixes them.
        let mut out = Vec::with_capacity(paid.len());
        let mut alike: BTreeMap<u32, Alike> = BTreeMap::new();
        for (&(i, gross), v) in paid.iter().zip(values) {
            match self
                .currency_by_id(v["currency"].as_i64().unwrap_or_default())
                .await
            {
                Ok((_, digits)) => {
                    let group = alike.entry(digits).or_default();
                    group.0.push((i, gross));
                    group.1.push(v);
                }
                Err(e) => out.push((i, Err(e))),
            }
        }
        for (paid, values) in alike.into_values() {
            out.extend(self.create_and_finish_alike(&paid, values).await);
        }
        out
    }

    /// [`Tryton::create_and_finish`] for sales of one number of decimals.
    async fn create_and_finish_alike(
        &self,
        paid: &[(usize, i64)],
        values: Vec<Value>,
    ) -> Vec<(usize, Result<ErpDocument, ErpError>)> {
        let created = match self
            .rpc
            .call_many(
                "model.sale.sale.create",
                vec![Value::Array(values)],
                paid.len(),
            )
            .await
        {
            Ok(created) => created,
            // Nothing was created (Tryton's call is one transaction): each order's error.
            Err(e) => return paid.iter().map(|(i, _)| (*i, Err(e.clone()))).collect(),
        };
        let ids = match crate::rpc::created_ids(&created, paid.len(), "sales") {
            Ok(ids) => ids,
            Err(e) => return paid.iter().map(|(i, _)| (*i, Err(e.clone()))).collect(),
        };
        let sales: Vec<(usize, i64, i64)> = paid
            .iter()
            .zip(&ids)
            .map(|(&(i, gross), &id)| (i, id, gross))
            .collect();
        if let Err(e) = self.steps(&sales).await {
            tracing::warn!(error = %e, sales = sales.len(), "a batched Tryton step failed; finishing its sales one by one");
        }
        // Every sale is read back as it stands — and one a batched step left behind is
        // finished alone.
        let mut out = Vec::with_capacity(sales.len());
        let documents = self.documents(&ids).await;
        let mut alone = OneByOne::default();
        for (&(i, id, gross), document) in sales.iter().zip(documents) {
            let result = match document {
                Ok(d) if d.state == ferry_erp::DocumentState::Complete => Ok(d),
                _ => alone.take(self.finish(id, gross)).await,
            };
            out.push((i, result));
        }
        out
    }

    /// Balance, quote, confirm and process every sale with one call per step.
    async fn steps(&self, sales: &[(usize, i64, i64)]) -> Result<(), ErpError> {
        let ids: Vec<i64> = sales.iter().map(|(_, id, _)| *id).collect();
        self.balance_many(sales).await?;
        if !self.config.confirm {
            return Ok(());
        }
        for step in ["quote", "confirm"] {
            self.rpc
                .call_many(
                    &format!("model.sale.sale.{step}"),
                    vec![json!(ids)],
                    ids.len(),
                )
                .await?;
        }
        // Processing follows the confirm's commit in a task of its own (ADR 0022); those
        // it has not reached are processed here.
        let rows = self
            .rpc
            .call("model.sale.sale.read", vec![json!(ids), json!(["state"])])
            .await?;
        let confirmed: Vec<i64> = rows
            .as_array()
            .into_iter()
            .flatten()
            .filter(|r| r["state"].as_str() == Some("confirmed"))
            .filter_map(|r| r["id"].as_i64())
            .collect();
        if !confirmed.is_empty() {
            self.rpc
                .call_many(
                    "model.sale.sale.process",
                    vec![json!(confirmed)],
                    confirmed.len(),
                )
                .await?;
        }
        Ok(())
    }

    /// Adds each draft's rounding line (one write for the batch) so its total is what the
    /// customer paid.
    async fn balance_many(&self, sales: &[(usize, i64, i64)]) -> Result<(), ErpError> {
        let ids: Vec<i64> = sales.iter().map(|(_, id, _)| *id).collect();
        let rows = self
            .rpc
            .call(
                "model.sale.sale.read",
                vec![json!(ids), json!(["currency", "total_amount"])],
            )
            .await?;
        let mut writes = Vec::new();
        for row in rows.as_array().into_iter().flatten() {
            let id = row["id"].as_i64().unwrap_or_default();
            let Some(&(_, _, paid)) = sales.iter().find(|(_, sale, _)| *sale == id) else {
                continue;
            };
            if let Some(write) = self.rounding_write(id, row, paid).await? {
                writes.extend(write);
            }
        }
        if writes.is_empty() {
            return Ok(());
        }
        let sales = writes.len() / 2;
        self.rpc
            .call_many("model.sale.sale.write", writes, sales)
            .await
            .map(|_| ())
    }

    /// Each sale as it stands (one read of the sales, one of their rounding lines).
    pub(crate) async fn documents(&self, ids: &[i64]) -> Vec<Result<ErpDocument, ErpError>> {
        let read = async {
            let rows = self
                .rpc
                .call(
                    "model.sale.sale.read",
                    vec![json!(ids), json!(crate::sale::SALE_FIELDS)],
                )
                .await?;
            let rounding = self.rounding_lines(ids).await?;
            Ok::<_, ErpError>((rows, rounding))
        };
        let (rows, rounding) = match read.await {
            Ok(read) => read,
            Err(e) => return ids.iter().map(|_| Err(e.clone())).collect(),
        };
        let by_id: HashMap<i64, &Value> = crate::rpc::by_id(&rows);
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            out.push(match by_id.get(id) {
                Some(row) => {
                    self.document_with(*id, row, rounding.get(id).copied().unwrap_or_default())
                        .await
                }
                None => Err(ErpError::Rejected(format!("Tryton sale {id} vanished"))),
            });
        }
        out
    }
}
