//! Changes after posting (ADR 0035) through Tryton's own `sale_amendment` module: a sale
//! being processed is changed by an amendment — each line's quantity, unit price and
//! description set to the order as it now stands — which Tryton validates, giving the sale
//! a new revision and replacing its draft shipment and invoice lines. A line Centra
//! cancelled becomes quantity 0; a cancelled order becomes a sale of nothing (Tryton cannot
//! cancel a sale past its quotation, see `docs/connectors.md`).
//!
//! Refused, for finance to correct another way: a sale whose shipment the warehouse has
//! already picked or sent, one with a posted invoice, one cancelled in Tryton, and a change
//! that adds a line (an amendment changes lines, it cannot add one).

use std::collections::HashMap;

use async_trait::async_trait;
use ferry_erp::{ChangeOrders, ChangeOutcome, ErpError, OrderChange};
use serde_json::{Value, json};

use crate::Tryton;
use crate::rpc::{decimal, read_decimal};
use crate::sale::SaleState;

/// A change ready to be applied to a sale being processed, as Tryton amendments.
#[derive(Debug, Clone)]
pub(crate) struct Amend {
    pub(crate) sale: i64,
    pub(crate) change_id: String,
    pub(crate) actions: Vec<Value>,
    /// The sale's rounding lines, to balance it to `paid` afterwards (none when cancelled).
    pub(crate) rounding: Vec<SaleLine>,
    pub(crate) paid: i64,
    pub(crate) digits: u32,
}

/// A sale line as the amendment sees it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SaleLine {
    pub(crate) id: i64,
    pub(crate) product: i64,
    pub(crate) unit: i64,
    pub(crate) quantity: f64,
    pub(crate) unit_price: Value,
    pub(crate) description: String,
}

#[async_trait]
impl ChangeOrders for Tryton {
    async fn change_sales_order(&self, change: &OrderChange) -> Result<ChangeOutcome, ErpError> {
        let order = &change.order;
        let reference = self.reference(&order.external_ref);
        let Some(sale) = self.sale_id(&reference).await? else {
            return Ok(ChangeOutcome::Refused(format!(
                "Tryton has no sale with reference {reference} to change"
            )));
        };
        let row = self.read_sale(sale).await?;
        match SaleState::of(&row)? {
            SaleState::Cancelled if change.cancel => {
                Ok(ChangeOutcome::Applied(self.sale_as_it_stands(sale).await?))
            }
            SaleState::Cancelled => Ok(ChangeOutcome::Refused(format!(
                "the Tryton sale {} is cancelled",
                sale_name(&row, sale)
            ))),
            SaleState::Draft => self.change_draft(sale, change).await,
            // Posted means processing under the confirming policy; a sale found short of
            // it is first taken there, as the writer would, then amended.
            SaleState::Quotation | SaleState::Confirmed => {
                self.finish(sale, order.gross_minor).await?;
                self.amend(sale, change).await
            }
            SaleState::Processing | SaleState::Done => self.amend(sale, change).await,
        }
    }

    fn change_batch_limit(&self) -> usize {
        self.config.batch
    }

    async fn change_sales_orders(
        &self,
        changes: &[OrderChange],
    ) -> Vec<Result<ChangeOutcome, ErpError>> {
        self.change_batch(changes).await
    }
}

impl Tryton {
    /// A draft (the policy that leaves drafts for review) is changed in place: its lines
    /// replaced, then balanced again; a cancellation cancels it.
    async fn change_draft(
        &self,
        sale: i64,
        change: &OrderChange,
    ) -> Result<ChangeOutcome, ErpError> {
        if change.cancel {
            self.button(sale, "cancel").await?;
            return Ok(ChangeOutcome::Applied(self.sale_as_it_stands(sale).await?));
        }
        let row = self.read_sale(sale).await?;
        let (_, digits) = self
            .currency_by_id(row["currency"].as_i64().unwrap_or_default())
            .await?;
        let old: Vec<i64> = row["lines"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_i64)
            .collect();
        let lines = self.sale_lines(&change.order, digits).await?;
        self.rpc
            .call(
                "model.sale.sale.write",
                vec![
                    json!([sale]),
                    json!({"lines": [["delete", old], ["create", lines]]}),
                ],
            )
            .await?;
        Ok(ChangeOutcome::Applied(
            self.finish(sale, change.order.gross_minor).await?,
        ))
    }

    /// Amends a sale being processed to hold `change.order`, then balances it to what the
    /// customer now pays through its rounding line. Repeating it changes nothing: lines
    /// that already hold what the order asks are left out, and no amendment is made when
    /// none differ.
    async fn amend(&self, sale: i64, change: &OrderChange) -> Result<ChangeOutcome, ErpError> {
        let prepared = self.prepare_amendments(&[(sale, change)]).await?;
        let amend = match prepared.into_iter().next() {
            Some(Ok(amend)) => amend,
            Some(Err(reason)) => return Ok(ChangeOutcome::Refused(reason)),
            None => return Err(ErpError::Rejected("no amendment prepared".into())),
        };
        self.apply_amendments(std::slice::from_ref(&amend)).await?;
        Ok(ChangeOutcome::Applied(self.sale_as_it_stands(sale).await?))
    }

    /// Validates the amendments (one create, one validate, whatever their number), then
    /// balances each amended sale to what its customer now pays through its rounding line
    /// (a second round). A sale posted without a rounding line keeps Tryton's total: the
    /// reconciler then shows the difference, which an amendment cannot add a line for.
    pub(crate) async fn apply_amendments(&self, amends: &[Amend]) -> Result<(), ErpError> {
        // One validate per number of decimals: Tryton would write a sale without decimals
        // another's `0.00` (see `create_and_finish`).
        let mut alike: std::collections::BTreeMap<u32, Vec<&Amend>> = Default::default();
        for a in amends {
            alike.entry(a.digits).or_default().push(a);
        }
        for group in alike.into_values() {
            self.apply_alike(&group).await?;
        }
        Ok(())
    }

    /// [`Tryton::apply_amendments`] for sales of one number of decimals.
    async fn apply_alike(&self, amends: &[&Amend]) -> Result<(), ErpError> {
        let first = amends
            .iter()
            .filter(|a| !a.actions.is_empty())
            .map(|a| (a.sale, a.change_id.as_str(), a.actions.clone()));
        self.validate_amendments(first.collect()).await?;
        let balanced: Vec<&Amend> = amends
            .iter()
            .copied()
            .filter(|a| !a.rounding.is_empty())
            .collect();
        if balanced.is_empty() {
            return Ok(());
        }
        let ids: Vec<i64> = balanced.iter().map(|a| a.sale).collect();
        let rows = self
            .rpc
            .call(
                "model.sale.sale.read",
                vec![json!(ids), json!(["total_amount"])],
            )
            .await?;
        let totals: HashMap<i64, rust_decimal::Decimal> = rows
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|r| Some((r["id"].as_i64()?, read_decimal(&r["total_amount"])?)))
            .collect();
        let mut second = Vec::new();
        for a in balanced {
            let total = totals.get(&a.sale).copied().unwrap_or_default();
            let difference = ferry_domain::money::minor_to_decimal(a.paid, a.digits) - total;
            if difference.is_zero() {
                continue;
            }
            let line = &a.rounding[0];
            let current = read_decimal(&line.unit_price).unwrap_or_default()
                * rust_decimal::Decimal::from_f64_retain(line.quantity).unwrap_or_default();
            let action = amendment_line(&SaleLine {
                quantity: 1.0,
                unit_price: decimal(current + difference),
                ..line.clone()
            });
            second.push((a.sale, "rounding", vec![action]));
        }
        self.validate_amendments(second).await
    }

    /// Creates one amendment per (sale, change, actions) named by the change, and validates
    /// them in one call: Tryton then reprocesses the sales. One sale at most once.
    async fn validate_amendments(
        &self,
        amendments: Vec<(i64, &str, Vec<Value>)>,
    ) -> Result<(), ErpError> {
        if amendments.is_empty() {
            return Ok(());
        }
        let n = amendments.len();
        let values: Vec<Value> = amendments
            .into_iter()
            .map(|(sale, change_id, actions)| {
                json!({
                    "sale": sale,
                    "description": format!("Centra change {change_id} (Ferry)"),
                    "lines": [["create", actions]],
                })
            })
            .collect();
        let created = self
            .rpc
            .call_many("model.sale.amendment.create", vec![Value::Array(values)], n)
            .await?;
        let ids = crate::rpc::created_ids(&created, n, "amendments")?;
        if let Err(e) = self
            .rpc
            .call_many(
                "model.sale.amendment.validate_amendment",
                vec![json!(ids)],
                n,
            )
            .await
        {
            // Nothing was validated (Tryton's call is one transaction): the drafts go, so
            // that staff find no amendment Ferry abandoned.
            if let Err(gone) = self
                .rpc
                .call("model.sale.amendment.delete", vec![json!(ids)])
                .await
            {
                tracing::warn!(error = %gone, "deleting unvalidated Tryton amendments");
            }
            return Err(e);
        }
        Ok(())
    }
}

/// Each existing line's new values, pairing the order's lines with the sale's by product
/// in order (the sale's lines were created in the order's order); an existing line the
/// order no longer has goes to 0. Lines already as wanted are left out. `Err` when the
/// order has a line the sale has no place for.
pub(crate) fn plan(existing: &[SaleLine], wanted: &[SaleLine]) -> Result<Vec<SaleLine>, String> {
    let mut by_product: HashMap<i64, Vec<&SaleLine>> = HashMap::new();
    for line in existing {
        by_product.entry(line.product).or_default().push(line);
    }
    let mut taken: HashMap<i64, usize> = HashMap::new();
    let mut changed = Vec::new();
    let mut matched = std::collections::HashSet::new();
    for want in wanted {
        let next = taken.entry(want.product).or_default();
        let Some(line) = by_product.get(&want.product).and_then(|l| l.get(*next)) else {
            return Err(format!(
                "the order now has a line ({}) the Tryton sale does not: an amendment can \
                 change lines, not add one",
                want.description
            ));
        };
        *next += 1;
        matched.insert(line.id);
        let new = SaleLine {
            id: line.id,
            unit: line.unit,
            ..want.clone()
        };
        if !same(line, &new) {
            changed.push(new);
        }
    }
    for line in existing {
        if !matched.contains(&line.id) && line.quantity != 0.0 {
            changed.push(SaleLine {
                quantity: 0.0,
                ..line.clone()
            });
        }
    }
    Ok(changed)
}

/// Whether a line already holds what is wanted (Tryton answers decimals as objects, so
/// prices compare as decimals).
fn same(a: &SaleLine, b: &SaleLine) -> bool {
    a.product == b.product
        && a.quantity == b.quantity
        && a.description == b.description
        && read_decimal(&a.unit_price) == read_decimal(&b.unit_price)
}

pub(crate) fn amendment_line(line: &SaleLine) -> Value {
    json!({
        "action": "line",
        "line": line.id,
        "product": line.product,
        "unit": line.unit,
        "quantity": line.quantity,
        "unit_price": line.unit_price,
        "description": line.description,
    })
}

pub(crate) fn sale_name(row: &Value, id: i64) -> String {
    row["number"]
        .as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| format!("sale.sale,{id}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(id: i64, product: i64, quantity: f64, price: &str) -> SaleLine {
        SaleLine {
            id,
            product,
            unit: 1,
            quantity,
            unit_price: json!({"__class__": "Decimal", "decimal": price}),
            description: format!("item {product}"),
        }
    }

    #[test]
    fn lines_pair_by_product_in_order_and_a_line_gone_goes_to_zero() {
        let sale = [
            line(10, 1, 2.0, "100"),
            line(11, 2, 1.0, "50"),
            line(12, 1, 1.0, "100"),
        ];
        // The order now: product 1 once with one unit, product 2 unchanged.
        let wanted = [line(0, 1, 1.0, "100"), line(0, 2, 1.0, "50")];
        let changed = plan(&sale, &wanted).expect("a plan");
        let by_id: HashMap<i64, f64> = changed.iter().map(|l| (l.id, l.quantity)).collect();
        assert_eq!(by_id, HashMap::from([(10, 1.0), (12, 0.0)]));
    }

    #[test]
    fn a_sale_that_already_holds_the_order_needs_no_amendment() {
        let sale = [line(10, 1, 2.0, "100.0000"), line(11, 2, 0.0, "50")];
        // Tryton answers 100.0000 for 100: the same price.
        let wanted = [line(0, 1, 2.0, "100")];
        assert!(plan(&sale, &wanted).expect("a plan").is_empty());
    }

    #[test]
    fn a_line_the_sale_has_no_place_for_is_refused() {
        let sale = [line(10, 1, 1.0, "100")];
        let wanted = [line(0, 1, 1.0, "100"), line(0, 1, 1.0, "100")];
        let refused = plan(&sale, &wanted).expect_err("cannot add");
        assert!(refused.contains("not add"), "{refused}");
    }
}
