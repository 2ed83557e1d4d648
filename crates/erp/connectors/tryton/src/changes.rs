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
use ferry_erp::{ChangeOrders, ChangeOutcome, ErpError, OrderChange, PostOrder};
use serde_json::{Value, json};

use crate::Tryton;
use crate::rpc::{decimal, read_decimal};
use crate::sale::{SaleState, line_description, net_unit_price};

/// A change ready to be applied to a sale being processed, as Tryton amendments.
#[derive(Debug, Clone)]
pub(crate) struct Amend {
    pub(crate) sale: i64,
    change_id: String,
    actions: Vec<Value>,
    /// The sale's rounding lines, to balance it to `paid` afterwards (none when cancelled).
    rounding: Vec<SaleLine>,
    paid: i64,
    digits: u32,
}

/// A sale line as the amendment sees it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SaleLine {
    id: i64,
    product: i64,
    unit: i64,
    pub(crate) quantity: f64,
    unit_price: Value,
    description: String,
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
        let amend = match self.prepare_amendment(sale, change).await? {
            Ok(amend) => amend,
            Err(reason) => return Ok(ChangeOutcome::Refused(reason)),
        };
        self.apply_amendments(std::slice::from_ref(&amend)).await?;
        Ok(ChangeOutcome::Applied(self.sale_as_it_stands(sale).await?))
    }

    /// What amending `sale` to hold `change.order` takes, read from Tryton; `Ok(Err(why))`
    /// when Tryton cannot amend it that way.
    pub(crate) async fn prepare_amendment(
        &self,
        sale: i64,
        change: &OrderChange,
    ) -> Result<Result<Amend, String>, ErpError> {
        if let Some(reason) = self.why_unchangeable(sale).await? {
            return Ok(Err(reason));
        }
        let row = self.read_sale(sale).await?;
        let (_, digits) = self
            .currency_by_id(row["currency"].as_i64().unwrap_or_default())
            .await?;
        let (lines, rounding) = self.amendable_lines(sale).await?;
        let wanted = self
            .wanted_lines(&change.order, change.cancel, digits)
            .await?;
        let plan = match plan(&lines, &wanted) {
            Ok(plan) => plan,
            Err(reason) => return Ok(Err(reason)),
        };
        let mut actions: Vec<Value> = Vec::new();
        if !change.cancel {
            actions.extend(self.moved_delivery(sale, change).await?);
        }
        actions.extend(plan.iter().map(amendment_line));
        if change.cancel {
            // Nothing is owed: the rounding line goes too.
            actions.extend(rounding.iter().filter(|r| r.quantity != 0.0).map(|r| {
                amendment_line(&SaleLine {
                    quantity: 0.0,
                    ..r.clone()
                })
            }));
        }
        Ok(Ok(Amend {
            sale,
            change_id: change.change_id.clone(),
            actions,
            // A cancelled sale owes nothing: there is nothing to balance.
            rounding: if change.cancel { Vec::new() } else { rounding },
            paid: change.order.gross_minor,
            digits,
        }))
    }

    /// Validates the amendments (one create, one validate, whatever their number), then
    /// balances each amended sale to what its customer now pays through its rounding line
    /// (a second round). A sale posted without a rounding line keeps Tryton's total: the
    /// reconciler then shows the difference, which an amendment cannot add a line for.
    pub(crate) async fn apply_amendments(&self, amends: &[Amend]) -> Result<(), ErpError> {
        let first = amends
            .iter()
            .filter(|a| !a.actions.is_empty())
            .map(|a| (a.sale, a.change_id.as_str(), a.actions.clone()));
        self.validate_amendments(first.collect()).await?;
        let balanced: Vec<&Amend> = amends.iter().filter(|a| !a.rounding.is_empty()).collect();
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

    /// The amendment line that sends the goods where the order now says (ADR 0039), when
    /// that is not where the sale sends them: the recipient's address, or the customer's
    /// own (the sale's invoice address) when the order no longer names another.
    async fn moved_delivery(
        &self,
        sale: i64,
        change: &OrderChange,
    ) -> Result<Option<Value>, ErpError> {
        let rows = self
            .rpc
            .call(
                "model.sale.sale.read",
                vec![
                    json!([sale]),
                    json!([
                        "party",
                        "invoice_party",
                        "invoice_address",
                        "shipment_party",
                        "shipment_address"
                    ]),
                ],
            )
            .await?;
        let row = rows.get(0).cloned().unwrap_or_default();
        let (Some(party), Some(invoice_address)) =
            (row["party"].as_i64(), row["invoice_address"].as_i64())
        else {
            return Ok(None);
        };
        let wanted = match &change.order.delivery {
            Some(delivery) => self
                .delivery_addresses(&[(party, delivery)])
                .await?
                .first()
                .copied()
                .unwrap_or(invoice_address),
            None => invoice_address,
        };
        if row["shipment_address"].as_i64() == Some(wanted) {
            return Ok(None);
        }
        Ok(Some(json!({
            "action": "party",
            "party": party,
            "invoice_party": row["invoice_party"],
            "invoice_address": invoice_address,
            "shipment_party": row["shipment_party"],
            "shipment_address": wanted,
        })))
    }

    /// Why Tryton's amendment would not change what the customer gets or is billed: a
    /// shipment already picked or sent, an invoice already posted. `None` when it can.
    async fn why_unchangeable(&self, sale: i64) -> Result<Option<String>, ErpError> {
        let rows = self
            .rpc
            .call(
                "model.sale.sale.read",
                vec![json!([sale]), json!(["number", "shipments", "invoices"])],
            )
            .await?;
        let row = rows.get(0).cloned().unwrap_or_default();
        let name = sale_name(&row, sale);
        let ids = |field: &str| -> Vec<i64> {
            row[field]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_i64)
                .collect()
        };
        // The amendment replaces only draft or waiting shipments; one assigned, picked,
        // packed or done stays as it is and would no longer match the sale.
        let shipments = self.states("stock.shipment.out", &ids("shipments")).await?;
        if let Some((number, state)) = shipments
            .iter()
            .find(|(_, s)| !matches!(s.as_str(), "draft" | "waiting" | "cancelled"))
        {
            return Ok(Some(format!(
                "the warehouse has already handled the Tryton sale {name}: its shipment \
                 {number} is {state}"
            )));
        }
        let invoices = self.states("account.invoice", &ids("invoices")).await?;
        if let Some((number, state)) = invoices
            .iter()
            .find(|(_, s)| !matches!(s.as_str(), "draft" | "cancelled"))
        {
            return Ok(Some(format!(
                "the Tryton sale {name} is invoiced: invoice {number} is {state} (a credit \
                 note corrects it)"
            )));
        }
        Ok(None)
    }

    /// (number or id, state) of each record of `model`.
    async fn states(&self, model: &str, ids: &[i64]) -> Result<Vec<(String, String)>, ErpError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let rows = self
            .rpc
            .call(
                &format!("model.{model}.read"),
                vec![json!(ids), json!(["number", "state"])],
            )
            .await?;
        Ok(rows
            .as_array()
            .into_iter()
            .flatten()
            .map(|r| {
                let number = r["number"]
                    .as_str()
                    .map(str::to_owned)
                    .unwrap_or_else(|| r["id"].to_string());
                (number, r["state"].as_str().unwrap_or_default().to_owned())
            })
            .collect())
    }

    /// The sale's lines in Ferry's order, and its rounding lines apart.
    pub(crate) async fn amendable_lines(
        &self,
        sale: i64,
    ) -> Result<(Vec<SaleLine>, Vec<SaleLine>), ErpError> {
        let rows = self
            .rpc
            .call(
                "model.sale.line.search_read",
                vec![
                    json!([["sale", "=", sale], ["type", "=", "line"]]),
                    json!(0),
                    Value::Null,
                    json!([["sequence", "ASC"], ["id", "ASC"]]),
                    json!(["product", "unit", "quantity", "unit_price", "description"]),
                ],
            )
            .await?;
        let rounding = self
            .products(&[self.config.rounding_item.as_str()])
            .await?
            .get(&self.config.rounding_item)
            .map(|p| p.id);
        let lines = rows.as_array().into_iter().flatten().map(|r| SaleLine {
            id: r["id"].as_i64().unwrap_or_default(),
            product: r["product"].as_i64().unwrap_or_default(),
            unit: r["unit"].as_i64().unwrap_or_default(),
            quantity: r["quantity"].as_f64().unwrap_or_default(),
            unit_price: r["unit_price"].clone(),
            description: r["description"].as_str().unwrap_or_default().to_owned(),
        });
        Ok(lines.partition(|l| Some(l.product) != rounding))
    }

    /// What each line of `order` should be in Tryton (product, quantity, unit price,
    /// description); every line at 0 for a cancellation.
    async fn wanted_lines(
        &self,
        order: &PostOrder,
        cancel: bool,
        digits: u32,
    ) -> Result<Vec<SaleLine>, ErpError> {
        let codes: Vec<&str> = order.lines.iter().map(|l| l.erp_item.as_str()).collect();
        let products = self.products(&codes).await?;
        Ok(order
            .lines
            .iter()
            .map(|line| {
                let product = products[&line.erp_item];
                let quantity = line.quantity.max(1);
                SaleLine {
                    id: 0,
                    product: product.id,
                    unit: product.uom,
                    quantity: if cancel { 0.0 } else { line.quantity as f64 },
                    unit_price: decimal(net_unit_price(line.net_minor, quantity, digits)),
                    description: line_description(line),
                }
            })
            .collect())
    }
}

/// Each existing line's new values, pairing the order's lines with the sale's by product
/// in order (the sale's lines were created in the order's order); an existing line the
/// order no longer has goes to 0. Lines already as wanted are left out. `Err` when the
/// order has a line the sale has no place for.
fn plan(existing: &[SaleLine], wanted: &[SaleLine]) -> Result<Vec<SaleLine>, String> {
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

fn amendment_line(line: &SaleLine) -> Value {
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

fn sale_name(row: &Value, id: i64) -> String {
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
