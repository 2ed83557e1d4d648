//! Sales read back as Tryton holds them — every line, its product, quantity, unit price and
//! tax, the sale's own totals and state — for the reconciler: whatever Ferry sent, and
//! whatever a person changed in Tryton since.

use std::collections::{BTreeSet, HashMap};

use ferry_erp::{DocumentState, ErpError, ReadDocument, ReadLine, ReadLineKind, ReadPage};
use rust_decimal::{Decimal, RoundingStrategy};
use serde_json::{Value, json};

use crate::Tryton;
use crate::rpc::{read_datetime, read_decimal};
use crate::sale::{EMPTIED, SaleState, amended_to_nothing};

const SALE_FIELDS: &[&str] = &[
    "reference",
    "number",
    "state",
    "currency",
    "tax_amount",
    "total_amount",
    "sale_date",
];

const LINE_FIELDS: &[&str] = &[
    "sale",
    "type",
    "product",
    "quantity",
    "unit_price",
    "amount",
    "description",
    "taxes",
];

impl Tryton {
    /// Every sale under Ferry's reference for `external_ref`, oldest first.
    pub(crate) async fn read_back(
        &self,
        external_ref: &str,
    ) -> Result<Vec<ReadDocument>, ErpError> {
        let ids = self
            .rpc
            .call(
                "model.sale.sale.search",
                vec![
                    json!([["reference", "=", self.reference(external_ref)]]),
                    json!(0),
                    Value::Null,
                    json!([["id", "ASC"]]),
                ],
            )
            .await?;
        let ids: Vec<i64> = ids
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_i64)
            .collect();
        self.read_documents(&ids).await
    }

    /// Every sale in Tryton with an id above `cursor`, oldest first.
    pub(crate) async fn read_back_since(
        &self,
        cursor: &str,
        limit: usize,
    ) -> Result<ReadPage, ErpError> {
        let after: i64 = cursor.parse().unwrap_or(0);
        // A Tryton shared by several brands (a reference prefix each): only this brand's
        // sales. Sales entered by hand there cannot be told apart by brand, so only a
        // Tryton of one brand (no prefix) lists them.
        let mut domain = vec![
            json!(["id", ">", after]),
            // Return sales (credit notes, ADR 0037) are no sales orders: `<order>-R<id>`.
            json!([
                "OR",
                ["reference", "=", null],
                [
                    "reference",
                    "not like",
                    format!("{}%-R%", self.config.reference_prefix)
                ]
            ]),
        ];
        if !self.config.reference_prefix.is_empty() {
            domain.push(json!([
                "reference",
                "like",
                format!("{}%", self.config.reference_prefix)
            ]));
        }
        let ids = self
            .rpc
            .call(
                "model.sale.sale.search",
                vec![
                    json!(domain),
                    json!(0),
                    json!(limit.max(1)),
                    json!([["id", "ASC"]]),
                ],
            )
            .await?;
        let ids: Vec<i64> = ids
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_i64)
            .collect();
        let next_cursor = ids.last().map_or_else(|| cursor.to_owned(), i64::to_string);
        Ok(ReadPage {
            documents: self.read_documents(&ids).await?,
            next_cursor,
        })
    }

    async fn read_documents(&self, ids: &[i64]) -> Result<Vec<ReadDocument>, ErpError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let sales = self
            .rpc
            .call("model.sale.sale.read", vec![json!(ids), json!(SALE_FIELDS)])
            .await?;
        let lines = self
            .rpc
            .call(
                "model.sale.line.search_read",
                vec![
                    json!([["sale", "in", ids]]),
                    json!(0),
                    Value::Null,
                    json!([["sequence", "ASC"], ["id", "ASC"]]),
                    json!(LINE_FIELDS),
                ],
            )
            .await?;
        let lines: Vec<&Value> = lines.as_array().into_iter().flatten().collect();
        let products = self.product_codes(&lines).await?;
        let rates = self.tax_rates(&lines).await?;
        let mut by_sale: HashMap<i64, Vec<&Value>> = HashMap::new();
        for line in &lines {
            by_sale
                .entry(line["sale"].as_i64().unwrap_or_default())
                .or_default()
                .push(line);
        }
        let mut documents: Vec<(i64, ReadDocument)> = Vec::with_capacity(ids.len());
        for sale in sales.as_array().into_iter().flatten() {
            let id = sale["id"].as_i64().unwrap_or_default();
            let (currency, digits) = self
                .currency_by_id(sale["currency"].as_i64().unwrap_or_default())
                .await?;
            let state = SaleState::of(sale)?;
            let amount = |f: &str| {
                read_decimal(&sale[f])
                    .map(|d| to_minor(d, digits))
                    .unwrap_or_default()
            };
            let read_lines: Vec<ReadLine> = by_sale
                .get(&id)
                .into_iter()
                .flatten()
                .filter(|l| l["type"].as_str() == Some("line"))
                .map(|l| self.read_line(l, &products, &rates, digits))
                .collect();
            // An amendment leaves a removed line at quantity 0: it holds nothing.
            let emptied = amended_to_nothing(state, read_lines.iter().map(|l| l.quantity));
            let read_lines = read_lines.into_iter().filter(|l| l.quantity != 0).collect();
            let reference = sale["reference"].as_str().unwrap_or_default();
            documents.push((
                id,
                ReadDocument {
                    reference: sale["number"]
                        .as_str()
                        .map(str::to_owned)
                        .unwrap_or_else(|| format!("sale.sale,{id}")),
                    external_ref: reference
                        .strip_prefix(&self.config.reference_prefix)
                        .unwrap_or(reference)
                        .to_owned(),
                    currency,
                    state: if emptied {
                        DocumentState::Cancelled
                    } else {
                        read_state(state, self.config.confirm)
                    },
                    erp_state: if emptied {
                        EMPTIED.to_owned()
                    } else {
                        state.as_str().to_owned()
                    },
                    lines: read_lines,
                    gross_minor: amount("total_amount"),
                    tax_minor: amount("tax_amount"),
                    created_at: read_datetime(&sale["sale_date"]).unwrap_or_default(),
                },
            ));
        }
        documents.sort_by_key(|(id, _)| *id);
        Ok(documents.into_iter().map(|(_, d)| d).collect())
    }

    fn read_line(
        &self,
        line: &Value,
        products: &HashMap<i64, String>,
        rates: &HashMap<i64, Decimal>,
        digits: u32,
    ) -> ReadLine {
        let erp_item = line["product"]
            .as_i64()
            .and_then(|p| products.get(&p).cloned())
            .unwrap_or_default();
        let description = line["description"].as_str().unwrap_or_default().to_owned();
        let kind = if erp_item == self.config.rounding_item {
            ReadLineKind::Rounding
        } else if description.starts_with("Shipping: ") {
            ReadLineKind::Shipping
        } else if description.starts_with("Handling: ") {
            ReadLineKind::Handling
        } else if erp_item.is_empty() {
            ReadLineKind::Other
        } else {
            ReadLineKind::Item
        };
        let net = read_decimal(&line["amount"]).unwrap_or_default();
        let rate: Decimal = line["taxes"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_i64)
            .filter_map(|t| rates.get(&t))
            .sum();
        // Tryton keeps no tax per sale line (it sums taxes per document): the line's tax is
        // its amount at its taxes' rates, rounded as Tryton rounds a currency (half to even).
        let tax =
            (net * rate).round_dp_with_strategy(digits, RoundingStrategy::MidpointNearestEven);
        let net_minor = to_minor(net, digits);
        let tax_minor = to_minor(tax, digits);
        ReadLine {
            kind,
            erp_item,
            description,
            quantity: line["quantity"].as_f64().map_or(0, |q| q.round() as i64),
            unit_price: read_decimal(&line["unit_price"]),
            tax_rate: if rate.is_zero() {
                String::new()
            } else {
                (rate * Decimal::ONE_HUNDRED).normalize().to_string()
            },
            gross_minor: net_minor + tax_minor,
            tax_minor,
            net_minor,
        }
    }

    /// Product id → code for the products on `lines`.
    async fn product_codes(&self, lines: &[&Value]) -> Result<HashMap<i64, String>, ErpError> {
        let ids: BTreeSet<i64> = lines.iter().filter_map(|l| l["product"].as_i64()).collect();
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        let rows = self
            .rpc
            .call(
                "model.product.product.read",
                vec![json!(ids), json!(["code"])],
            )
            .await?;
        Ok(rows
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|r| Some((r["id"].as_i64()?, r["code"].as_str()?.to_owned())))
            .collect())
    }

    /// Tax id → rate (a fraction: 0.25) for the taxes on `lines`.
    async fn tax_rates(&self, lines: &[&Value]) -> Result<HashMap<i64, Decimal>, ErpError> {
        let ids: BTreeSet<i64> = lines
            .iter()
            .flat_map(|l| l["taxes"].as_array().into_iter().flatten())
            .filter_map(Value::as_i64)
            .collect();
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        let rows = self
            .rpc
            .call("model.account.tax.read", vec![json!(ids), json!(["rate"])])
            .await?;
        Ok(rows
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|r| Some((r["id"].as_i64()?, read_decimal(&r["rate"])?)))
            .collect())
    }
}

/// Where a sale read back stands. Under the draft policy (`confirm = false`) a draft is
/// where Ferry leaves it: complete for the reconciler, which compares the totals itself (a
/// lookup by the writer calls it unfinished until it knows the draft is balanced).
fn read_state(state: SaleState, confirm: bool) -> DocumentState {
    match crate::sale::document_state(state, confirm) {
        DocumentState::Unfinished if !confirm && state == SaleState::Draft => {
            DocumentState::Complete
        }
        other => other,
    }
}

fn to_minor(value: Decimal, digits: u32) -> i64 {
    ferry_domain::money::decimal_to_minor(value, digits).unwrap_or_default()
}
