//! What amending sales takes (ADR 0035), read from Tryton for a whole batch of changes at
//! once: the sales (one read), their shipments' and invoices' states (one read each), their
//! lines (one search), and the delivery addresses the orders now name (one search and one
//! create) — then, per change, the amendment's lines, or why Tryton cannot amend the sale
//! that way: a shipment the warehouse has already handled, a posted invoice, an order
//! line the sale has no place for.

use std::collections::HashMap;

use ferry_erp::{ErpError, OrderChange, PostOrder};
use serde_json::{Value, json};

use crate::Tryton;
use crate::changes::{Amend, SaleLine, amendment_line, plan, sale_name};
use crate::rpc::decimal;
use crate::sale::{line_description, net_unit_price};

/// The sale fields the preparation reads.
const FIELDS: [&str; 9] = [
    "number",
    "shipments",
    "invoices",
    "currency",
    "party",
    "invoice_party",
    "invoice_address",
    "shipment_party",
    "shipment_address",
];

/// (number or id, state) of a shipment or invoice, by id.
type States = HashMap<i64, (String, String)>;

impl Tryton {
    /// For each (sale, change), in order: the amendment, or why Tryton cannot amend the
    /// sale that way. An error is Tryton not answering a read (every change's error).
    pub(crate) async fn prepare_amendments(
        &self,
        items: &[(i64, &OrderChange)],
    ) -> Result<Vec<Result<Amend, String>>, ErpError> {
        let ids: Vec<i64> = items.iter().map(|(sale, _)| *sale).collect();
        let rows = self
            .rpc
            .call("model.sale.sale.read", vec![json!(ids), json!(FIELDS)])
            .await?;
        let sales: HashMap<i64, &Value> = crate::rpc::by_id(&rows);
        let all =
            |field: &str| -> Vec<i64> { sales.values().flat_map(|r| ids_in(r, field)).collect() };
        let shipments = self
            .states_by_id("stock.shipment.out", &all("shipments"))
            .await?;
        let invoices = self
            .states_by_id("account.invoice", &all("invoices"))
            .await?;
        let mut lines = self.amendable_lines_of(&ids).await?;
        // Where each order now sends its goods, when it names a recipient of its own.
        let deliveries: Vec<(usize, i64, &ferry_erp::Address)> = items
            .iter()
            .enumerate()
            .filter(|(_, (_, change))| !change.cancel)
            .filter_map(|(k, (sale, change))| {
                let party = sales.get(sale)?["party"].as_i64()?;
                Some((k, party, change.order.delivery.as_ref()?))
            })
            .collect();
        let pairs: Vec<(i64, &ferry_erp::Address)> =
            deliveries.iter().map(|(_, p, a)| (*p, *a)).collect();
        let delivery_ids: HashMap<usize, i64> = deliveries
            .iter()
            .map(|(k, _, _)| *k)
            .zip(self.delivery_addresses(&pairs).await?)
            .collect();
        let mut out = Vec::with_capacity(items.len());
        for (k, &(sale, change)) in items.iter().enumerate() {
            let row = sales
                .get(&sale)
                .ok_or_else(|| ErpError::Rejected(format!("Tryton sale {sale} vanished")))?;
            if let Some(reason) = why_unchangeable(row, sale, &shipments, &invoices) {
                out.push(Err(reason));
                continue;
            }
            let (_, digits) = self
                .currency_by_id(row["currency"].as_i64().unwrap_or_default())
                .await?;
            let (existing, rounding) = lines.remove(&sale).unwrap_or_default();
            let wanted = self
                .wanted_lines(&change.order, change.cancel, digits)
                .await?;
            let plan = match plan(&existing, &wanted) {
                Ok(plan) => plan,
                Err(reason) => {
                    out.push(Err(reason));
                    continue;
                }
            };
            let mut actions: Vec<Value> = Vec::new();
            if !change.cancel {
                actions.extend(moved_delivery(row, delivery_ids.get(&k).copied()));
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
            out.push(Ok(Amend {
                sale,
                change_id: change.change_id.clone(),
                actions,
                // A cancelled sale owes nothing: there is nothing to balance.
                rounding: if change.cancel { Vec::new() } else { rounding },
                paid: change.order.gross_minor,
                digits,
            }));
        }
        Ok(out)
    }

    /// The sale's lines in Ferry's order, and its rounding lines apart.
    pub(crate) async fn amendable_lines(
        &self,
        sale: i64,
    ) -> Result<(Vec<SaleLine>, Vec<SaleLine>), ErpError> {
        Ok(self
            .amendable_lines_of(&[sale])
            .await?
            .remove(&sale)
            .unwrap_or_default())
    }

    /// Each sale's lines in Ferry's order, and its rounding lines apart, in one search.
    async fn amendable_lines_of(
        &self,
        sales: &[i64],
    ) -> Result<HashMap<i64, (Vec<SaleLine>, Vec<SaleLine>)>, ErpError> {
        let rows = self
            .rpc
            .call(
                "model.sale.line.search_read",
                vec![
                    json!([["sale", "in", sales], ["type", "=", "line"]]),
                    json!(0),
                    Value::Null,
                    json!([["sale", "ASC"], ["sequence", "ASC"], ["id", "ASC"]]),
                    json!([
                        "sale",
                        "product",
                        "unit",
                        "quantity",
                        "unit_price",
                        "description"
                    ]),
                ],
            )
            .await?;
        let rounding = self
            .products(&[self.config.rounding_item.as_str()])
            .await?
            .get(&self.config.rounding_item)
            .map(|p| p.id);
        let mut out: HashMap<i64, (Vec<SaleLine>, Vec<SaleLine>)> = HashMap::new();
        for r in rows.as_array().into_iter().flatten() {
            let line = SaleLine {
                id: r["id"].as_i64().unwrap_or_default(),
                product: r["product"].as_i64().unwrap_or_default(),
                unit: r["unit"].as_i64().unwrap_or_default(),
                quantity: r["quantity"].as_f64().unwrap_or_default(),
                unit_price: r["unit_price"].clone(),
                description: r["description"].as_str().unwrap_or_default().to_owned(),
            };
            let (items, rounding_lines) = out
                .entry(r["sale"].as_i64().unwrap_or_default())
                .or_default();
            if Some(line.product) == rounding {
                rounding_lines.push(line);
            } else {
                items.push(line);
            }
        }
        Ok(out)
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
        order
            .lines
            .iter()
            .map(|line| {
                let product = products.get(&line.erp_item).ok_or_else(|| {
                    ErpError::Rejected(format!("Tryton has no product {}", line.erp_item))
                })?;
                let quantity = line.quantity.max(1);
                Ok(SaleLine {
                    id: 0,
                    product: product.id,
                    unit: product.uom,
                    quantity: if cancel { 0.0 } else { line.quantity as f64 },
                    unit_price: decimal(net_unit_price(line.net_minor, quantity, digits)),
                    description: line_description(line),
                })
            })
            .collect()
    }

    /// (number or id, state) of each record of `model`, by id, in one read.
    async fn states_by_id(&self, model: &str, ids: &[i64]) -> Result<States, ErpError> {
        if ids.is_empty() {
            return Ok(States::new());
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
            .filter_map(|r| {
                let number = r["number"]
                    .as_str()
                    .map(str::to_owned)
                    .unwrap_or_else(|| r["id"].to_string());
                let state = r["state"].as_str().unwrap_or_default().to_owned();
                Some((r["id"].as_i64()?, (number, state)))
            })
            .collect())
    }
}

/// The ids in a many-valued field of a read row.
fn ids_in(row: &Value, field: &str) -> Vec<i64> {
    row[field]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_i64)
        .collect()
}

/// Why Tryton's amendment would not change what the customer gets or is billed: a
/// shipment already picked or sent, an invoice already posted. `None` when it can.
fn why_unchangeable(
    row: &Value,
    sale: i64,
    shipments: &States,
    invoices: &States,
) -> Option<String> {
    let name = sale_name(row, sale);
    // The amendment replaces only draft or waiting shipments; one assigned, picked,
    // packed or done stays as it is and would no longer match the sale.
    let handled = ids_in(row, "shipments").into_iter().find_map(|id| {
        let (number, state) = shipments.get(&id)?;
        (!matches!(state.as_str(), "draft" | "waiting" | "cancelled")).then_some((number, state))
    });
    if let Some((number, state)) = handled {
        return Some(format!(
            "the warehouse has already handled the Tryton sale {name}: its shipment {number} \
             is {state}"
        ));
    }
    let invoiced = ids_in(row, "invoices").into_iter().find_map(|id| {
        let (number, state) = invoices.get(&id)?;
        (!matches!(state.as_str(), "draft" | "cancelled")).then_some((number, state))
    });
    invoiced.map(|(number, state)| {
        format!(
            "the Tryton sale {name} is invoiced: invoice {number} is {state} (a credit note \
             corrects it)"
        )
    })
}

/// The amendment line that sends the goods where the order now says (ADR 0039), when that
/// is not where the sale sends them: the recipient's address (`delivery`, found or made),
/// or the customer's own (the sale's invoice address) when the order names no other.
fn moved_delivery(row: &Value, delivery: Option<i64>) -> Option<Value> {
    let party = row["party"].as_i64()?;
    let invoice_address = row["invoice_address"].as_i64()?;
    let wanted = delivery.unwrap_or(invoice_address);
    if row["shipment_address"].as_i64() == Some(wanted) {
        return None;
    }
    Some(json!({
        "action": "party",
        "party": party,
        "invoice_party": row["invoice_party"],
        "invoice_address": invoice_address,
        "shipment_party": row["shipment_party"],
        "shipment_address": wanted,
    }))
}
