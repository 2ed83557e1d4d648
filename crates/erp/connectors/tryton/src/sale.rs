//! Sales: created with tax-exclusive lines, read back, balanced to what the customer paid
//! with an explicit rounding line, and taken as far as the posting policy asks.

use ferry_erp::{DocumentState, ErpDocument, ErpError, LineKind, PostLine, PostOrder};
use std::collections::HashMap;

use rust_decimal::Decimal;
use serde_json::{Value, json};

use crate::Tryton;
use crate::rpc::{decimal, read_decimal};

pub(crate) const SALE_FIELDS: &[&str] = &[
    "reference",
    "number",
    "state",
    "currency",
    "untaxed_amount",
    "tax_amount",
    "total_amount",
    "lines",
];

impl Tryton {
    /// The sale Ferry posted under `reference`, if any (the oldest, should there be two).
    pub(crate) async fn sale_id(&self, reference: &str) -> Result<Option<i64>, ErpError> {
        let ids = self
            .rpc
            .call(
                "model.sale.sale.search",
                vec![
                    json!([["reference", "=", reference]]),
                    json!(0),
                    json!(1),
                    json!([["id", "ASC"]]),
                ],
            )
            .await?;
        Ok(ids.get(0).and_then(Value::as_i64))
    }

    pub(crate) async fn read_sale(&self, id: i64) -> Result<Value, ErpError> {
        let rows = self
            .rpc
            .call(
                "model.sale.sale.read",
                vec![json!([id]), json!(SALE_FIELDS)],
            )
            .await?;
        rows.get(0)
            .cloned()
            .ok_or_else(|| ErpError::Rejected(format!("Tryton sale {id} vanished")))
    }

    pub(crate) async fn rounding_line(&self, sale: i64) -> Result<Decimal, ErpError> {
        Ok(self
            .rounding_lines(&[sale])
            .await?
            .remove(&sale)
            .unwrap_or_default())
    }

    /// The rounding lines' amounts of each of `sales` (one read).
    pub(crate) async fn rounding_lines(
        &self,
        sales: &[i64],
    ) -> Result<HashMap<i64, Decimal>, ErpError> {
        let rows = self
            .rpc
            .call(
                "model.sale.line.search_read",
                vec![
                    json!([
                        ["sale", "in", sales],
                        ["product.code", "=", self.config.rounding_item]
                    ]),
                    json!(0),
                    Value::Null,
                    Value::Null,
                    json!(["sale", "amount"]),
                ],
            )
            .await?;
        let mut out: HashMap<i64, Decimal> = HashMap::new();
        for row in rows.as_array().into_iter().flatten() {
            if let (Some(sale), Some(amount)) = (row["sale"].as_i64(), read_decimal(&row["amount"]))
            {
                *out.entry(sale).or_default() += amount;
            }
        }
        Ok(out)
    }

    /// The quantity of each of the sale's lines (not its titles or comments), its rounding
    /// lines too.
    async fn line_quantities(&self, sale: i64) -> Result<Vec<i64>, ErpError> {
        let (items, rounding) = self.amendable_lines(sale).await?;
        Ok(items
            .iter()
            .chain(&rounding)
            .map(|l| l.quantity.round() as i64)
            .collect())
    }

    /// The sale as it stands, without changing it: what a lookup reports.
    pub(crate) async fn sale_as_it_stands(&self, sale: i64) -> Result<ErpDocument, ErpError> {
        let row = self.read_sale(sale).await?;
        self.document_of(sale, &row, false).await
    }

    /// Takes a sale from whatever state it is found in to the one the posting policy asks
    /// for, one Tryton step at a time, and returns it as Tryton then holds it:
    ///
    /// - a draft is balanced to `paid` (what the customer paid) with a rounding line, then
    ///   quoted when the policy confirms (left as a balanced draft when it does not);
    /// - a quotation is confirmed;
    /// - a confirmed sale is processed: Tryton makes the shipment and invoice in a task
    ///   that runs after the confirm's commit and can fail on its own (SQLite "database is
    ///   locked", a queue worker that is down), leaving a sale the warehouse never sees;
    /// - a processing or done sale is complete; a cancelled one is reported, never changed.
    ///
    /// Every step is safe to repeat, so an attempt interrupted anywhere is finished by the
    /// next one instead of being taken for done.
    pub(crate) async fn finish(&self, sale: i64, paid: i64) -> Result<ErpDocument, ErpError> {
        // A draft needs three steps to reach processing; more means Tryton is not moving.
        for _ in 0..4 {
            let row = self.read_sale(sale).await?;
            let state = SaleState::of(&row)?;
            let step = match next_step(state, self.config.confirm) {
                Some(step) => step,
                None => return self.document_of(sale, &row, false).await,
            };
            tracing::debug!(sale, state = state.as_str(), ?step, "finishing Tryton sale");
            match step {
                Step::Balance { then_quote } => {
                    self.balance(sale, &row, paid).await?;
                    if !then_quote {
                        // The policy leaves drafts for review: balanced is finished.
                        let row = self.read_sale(sale).await?;
                        return self.document_of(sale, &row, true).await;
                    }
                    self.button(sale, "quote").await?;
                }
                Step::Confirm => self.button(sale, "confirm").await?,
                Step::Process => self.button(sale, "process").await?,
            }
        }
        let row = self.read_sale(sale).await?;
        let state = SaleState::of(&row)?;
        Err(ErpError::Unavailable {
            reason: format!(
                "Tryton sale {sale} stays {} after quote, confirm and process",
                state.as_str()
            ),
            retry_after: None,
        })
    }

    /// Presses one of the sale's workflow buttons (they answer `null` whatever happened, so
    /// the caller reads the state back).
    pub(crate) async fn button(&self, sale: i64, name: &str) -> Result<(), ErpError> {
        self.rpc
            .call(&format!("model.sale.sale.{name}"), vec![json!([sale])])
            .await
            .map(|_| ())
    }

    /// Adds a rounding line so that the draft's total is what the customer paid (nothing
    /// when it already is, so repeating is harmless).
    async fn balance(&self, sale: i64, row: &Value, paid: i64) -> Result<(), ErpError> {
        let Some(write) = self.rounding_write(sale, row, paid).await? else {
            return Ok(());
        };
        self.rpc
            .call("model.sale.sale.write", write.to_vec())
            .await
            .map(|_| ())
    }

    /// The `write` arguments (ids, values) that add the rounding line making the sale of
    /// `row` (its currency and total) come to `paid`; `None` when it already does.
    pub(crate) async fn rounding_write(
        &self,
        sale: i64,
        row: &Value,
        paid: i64,
    ) -> Result<Option<[Value; 2]>, ErpError> {
        let (_, digits) = self
            .currency_by_id(row["currency"].as_i64().unwrap_or_default())
            .await?;
        let total = read_decimal(&row["total_amount"]).unwrap_or_default();
        let difference = from_minor(paid, digits) - total;
        if difference.is_zero() {
            return Ok(None);
        }
        let rounding = self.config.rounding_item.clone();
        let product = self.products(&[rounding.as_str()]).await?[&rounding];
        Ok(Some([
            json!([sale]),
            json!({"lines": [["create", [{
                "type": "line",
                "product": product.id,
                "unit": product.uom,
                "quantity": 1.0,
                "unit_price": decimal(difference),
                "description": "Rounding to the amount the customer paid",
            }]]]}),
        ]))
    }

    /// The document for a sale row; `balanced_draft` says a draft was just balanced under a
    /// policy that leaves drafts (a draft found by lookup may still lack its rounding line).
    async fn document_of(
        &self,
        sale: i64,
        row: &Value,
        balanced_draft: bool,
    ) -> Result<ErpDocument, ErpError> {
        let rounding = self.rounding_line(sale).await?;
        self.document_with(sale, row, rounding)
            .await
            .map(|mut document| {
                if balanced_draft {
                    document.state = DocumentState::Complete;
                }
                document
            })
    }

    /// The document for a sale row whose rounding lines come to `rounding`.
    pub(crate) async fn document_with(
        &self,
        sale: i64,
        row: &Value,
        rounding: Decimal,
    ) -> Result<ErpDocument, ErpError> {
        let (code, digits) = self
            .currency_by_id(row["currency"].as_i64().unwrap_or_default())
            .await?;
        let state = SaleState::of(row)?;
        let mut document = document(row, &code, digits, rounding)?;
        document.state = document_state(state, self.config.confirm);
        document.erp_state = state.as_str().to_owned();
        // Only a sale worth nothing can have been amended to nothing: the lines are read
        // for those alone.
        if document.gross_minor == 0
            && amended_to_nothing(state, self.line_quantities(sale).await?.into_iter())
        {
            document.state = DocumentState::Cancelled;
            document.erp_state = EMPTIED.to_owned();
        }
        if let Some(plain) = document
            .external_ref
            .strip_prefix(&self.config.reference_prefix)
        {
            document.external_ref = plain.to_owned();
        }
        Ok(document)
    }

    /// The order's lines as Tryton sale lines: each line's net amount as a 4-decimal unit
    /// price, its tax, and a description that says which are shipping and handling.
    pub(crate) async fn sale_lines(
        &self,
        order: &PostOrder,
        digits: u32,
    ) -> Result<Vec<Value>, ErpError> {
        self.lines_of(&order.lines, digits, 1).await
    }

    /// `lines` as Tryton sale lines, their quantities times `sign`: 1 for a sale, -1 for a
    /// return sale (Tryton's return: a shipment back in and a credit note).
    pub(crate) async fn lines_of(
        &self,
        lines: &[PostLine],
        digits: u32,
        sign: i64,
    ) -> Result<Vec<Value>, ErpError> {
        let codes: Vec<&str> = lines.iter().map(|l| l.erp_item.as_str()).collect();
        let products = self.products(&codes).await?;
        let mut out = Vec::with_capacity(lines.len());
        for line in lines {
            let product = products[&line.erp_item];
            let tax = self.tax(line.tax_code.as_deref(), &line.tax_rate).await?;
            let quantity = line.quantity.max(1);
            let mut value = json!({
                "type": "line",
                "product": product.id,
                "unit": product.uom,
                "quantity": (sign * quantity) as f64,
                "unit_price": decimal(net_unit_price(line.net_minor, quantity, digits)),
                "description": line_description(line),
            });
            if let Some(tax) = tax {
                value["taxes"] = json!([["add", [tax]]]);
            }
            out.push(value);
        }
        Ok(out)
    }

    /// The new sale of `order` as Tryton's `create` takes it: party (matched or created),
    /// addresses, currency, reference, carrier and lines.
    pub(crate) async fn sale_values(&self, order: &PostOrder) -> Result<Value, ErpError> {
        let (party, address) = self.party(&order.customer, &order.external_ref).await?;
        let shipment_address = match &order.delivery {
            Some(delivery) => self
                .delivery_addresses(&[(party, delivery)])
                .await?
                .first()
                .copied()
                .unwrap_or(address),
            None => address,
        };
        self.sale_values_for(order, (party, address), shipment_address)
            .await
    }

    /// The sale's values for the customer's `(party, invoice address)`, the goods going to
    /// `shipment_address`.
    pub(crate) async fn sale_values_for(
        &self,
        order: &PostOrder,
        (party, address): (i64, i64),
        shipment_address: i64,
    ) -> Result<Value, ErpError> {
        let reference = self.reference(&order.external_ref);
        let currency = self.currency(&order.currency).await?;
        let lines = self.sale_lines(order, currency.digits).await?;
        let mut sale = json!({
            "party": party,
            "invoice_address": address,
            "shipment_address": shipment_address,
            "currency": currency.id,
            "reference": reference,
            "description": format!("Centra order {} ({})", order.external_ref, order.order_date),
            // Shipping was charged in Centra: Ferry posts its own line, Tryton adds none.
            "shipment_cost_method": Value::Null,
            "lines": [["create", lines]],
        });
        if let Some(carrier) = self.carrier().await? {
            sale["carrier"] = json!(carrier);
        }
        Ok(sale)
    }

    /// Creates the sale (after looking for one an earlier attempt made) and finishes it.
    pub(crate) async fn create_sale(&self, order: &PostOrder) -> Result<ErpDocument, ErpError> {
        // Tryton has no unique reference: Ferry keeps it idempotent by looking first.
        let reference = self.reference(&order.external_ref);
        if let Some(id) = self.sale_id(&reference).await? {
            return self.finish(id, order.gross_minor).await;
        }
        let sale = self.sale_values(order).await?;
        let id = self.create_one_sale(sale).await?;
        tracing::debug!(order = %order.external_ref, sale = id, "Tryton sale created");
        self.finish(id, order.gross_minor).await
    }

    /// Creates one sale from its values; its id.
    pub(crate) async fn create_one_sale(&self, sale: Value) -> Result<i64, ErpError> {
        let created = self
            .rpc
            .call("model.sale.sale.create", vec![json!([sale])])
            .await?;
        created
            .get(0)
            .and_then(Value::as_i64)
            .ok_or_else(|| ErpError::Rejected("Tryton created no sale".into()))
    }
}

/// What Ferry calls a sale amended to nothing (Tryton cannot cancel a sale past its
/// quotation: a cancelled order's sale has every line at quantity 0 and ends `done`).
pub(crate) const EMPTIED: &str = "amended to nothing";

/// Whether a sale in `state` whose lines hold `quantities` is a cancelled order's.
pub(crate) fn amended_to_nothing(state: SaleState, quantities: impl Iterator<Item = i64>) -> bool {
    let mut quantities = quantities.peekable();
    matches!(state, SaleState::Processing | SaleState::Done)
        && quantities.peek().is_some()
        && quantities.all(|q| q == 0)
}

/// What a sale line says it is: shipping and handling lines are marked so the read-back
/// tells them from items.
pub(crate) fn line_description(line: &PostLine) -> String {
    match line.kind {
        LineKind::Item => line.description.clone(),
        LineKind::Shipping => format!("Shipping: {}", line.description),
        LineKind::Handling => format!("Handling: {}", line.description),
    }
}

/// A Tryton sale's workflow state (`sale.sale.state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SaleState {
    Draft,
    Quotation,
    Confirmed,
    Processing,
    Done,
    Cancelled,
}

impl SaleState {
    const ALL: [SaleState; 6] = [
        SaleState::Draft,
        SaleState::Quotation,
        SaleState::Confirmed,
        SaleState::Processing,
        SaleState::Done,
        SaleState::Cancelled,
    ];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            SaleState::Draft => "draft",
            SaleState::Quotation => "quotation",
            SaleState::Confirmed => "confirmed",
            SaleState::Processing => "processing",
            SaleState::Done => "done",
            SaleState::Cancelled => "cancelled",
        }
    }

    pub(crate) fn of(row: &Value) -> Result<Self, ErpError> {
        let text = row["state"].as_str().unwrap_or_default();
        Self::ALL
            .into_iter()
            .find(|s| s.as_str() == text)
            // A state this connector does not know (a module adding one): never posted.
            .ok_or_else(|| ErpError::Rejected(format!("Tryton sale in unknown state {text:?}")))
    }
}

/// One step of Tryton's sale workflow that Ferry takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// Add the rounding line, then quote when the policy confirms.
    Balance {
        then_quote: bool,
    },
    Confirm,
    Process,
}

/// What to do next with a sale in `state` when the policy does (`confirm`) or does not
/// quote and confirm; `None` when it stands where the policy wants it, or is cancelled.
fn next_step(state: SaleState, confirm: bool) -> Option<Step> {
    match state {
        SaleState::Draft => Some(Step::Balance {
            then_quote: confirm,
        }),
        SaleState::Quotation if confirm => Some(Step::Confirm),
        SaleState::Confirmed if confirm => Some(Step::Process),
        // Beyond a draft under a draft policy: someone took it further by hand.
        SaleState::Quotation | SaleState::Confirmed => None,
        SaleState::Processing | SaleState::Done | SaleState::Cancelled => None,
    }
}

/// How a sale found in `state` counts for Ferry. A draft is unfinished even under a draft
/// policy until it is known to be balanced (a lookup does not know what was paid).
pub(crate) fn document_state(state: SaleState, confirm: bool) -> DocumentState {
    match next_step(state, confirm) {
        Some(_) => DocumentState::Unfinished,
        None if state == SaleState::Cancelled => DocumentState::Cancelled,
        None => DocumentState::Complete,
    }
}

use ferry_domain::money::minor_to_decimal as from_minor;

fn to_minor(value: Decimal, digits: u32) -> i64 {
    ferry_domain::money::decimal_to_minor(value, digits).unwrap_or_default()
}

fn document(
    row: &Value,
    currency: &str,
    digits: u32,
    rounding: Decimal,
) -> Result<ErpDocument, ErpError> {
    let id = row["id"].as_i64().unwrap_or_default();
    let amount = |f: &str| {
        read_decimal(&row[f])
            .map(|d| to_minor(d, digits))
            .unwrap_or_default()
    };
    Ok(ErpDocument {
        reference: row["number"]
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| format!("sale.sale,{id}")),
        external_ref: row["reference"].as_str().unwrap_or_default().to_owned(),
        currency: currency.to_owned(),
        gross_minor: amount("total_amount"),
        tax_minor: amount("tax_amount"),
        line_count: row["lines"].as_array().map(Vec::len).unwrap_or(0),
        rounding_minor: to_minor(rounding, digits),
        state: DocumentState::Complete,
        erp_state: String::new(),
    })
}

/// The net unit price Tryton gets: the line's net amount over its quantity, to Tryton's four
/// decimals, so that quantity × unit price rounds back to the net amount (exactly below 100
/// units; beyond, the document's rounding line takes up the last cent).
pub fn net_unit_price(net_minor: i64, quantity: i64, digits: u32) -> Decimal {
    let net = Decimal::new(net_minor, digits);
    (net / Decimal::from(quantity.max(1))).round_dp(4)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Quantity × the 4-decimal unit price rounds back to the line's net amount below 100
        /// units (the error is at most qty × 0.00005); above, the rounding line absorbs it.
        #[test]
        fn unit_price_reproduces_the_net_amount(net in 0i64..10_000_000, qty in 1i64..100, digits in 0u32..3) {
            let unit = net_unit_price(net, qty, digits);
            let back = (unit * Decimal::from(qty)).round_dp_with_strategy(digits, rust_decimal::RoundingStrategy::MidpointNearestEven);
            prop_assert_eq!(back, Decimal::new(net, digits));
        }
    }

    /// From every state, following the steps reaches a state the policy accepts, and only
    /// that state counts as complete; a cancelled sale is never complete.
    #[test]
    fn every_state_is_driven_to_the_policy_or_reported() {
        for confirm in [true, false] {
            for start in SaleState::ALL {
                let mut state = start;
                let mut steps = 0;
                while let Some(step) = next_step(state, confirm) {
                    state = match step {
                        Step::Balance { then_quote: true } => SaleState::Quotation,
                        // A balanced draft under a draft policy is finished.
                        Step::Balance { then_quote: false } => break,
                        Step::Confirm => SaleState::Confirmed,
                        Step::Process => SaleState::Processing,
                    };
                    steps += 1;
                    assert!(steps <= 3, "{start:?} loops");
                }
                match (start, confirm) {
                    (SaleState::Cancelled, _) => {
                        assert_eq!(document_state(state, confirm), DocumentState::Cancelled)
                    }
                    (SaleState::Draft, false) => assert_eq!(state, SaleState::Draft),
                    (_, true) => {
                        assert!(matches!(state, SaleState::Processing | SaleState::Done));
                        assert_eq!(document_state(state, confirm), DocumentState::Complete);
                    }
                    (_, false) => {
                        assert_eq!(document_state(state, confirm), DocumentState::Complete)
                    }
                }
            }
        }
        // The states the bug took for posted.
        assert_eq!(
            document_state(SaleState::Quotation, true),
            DocumentState::Unfinished
        );
        assert_eq!(
            document_state(SaleState::Confirmed, true),
            DocumentState::Unfinished
        );
        assert_eq!(
            document_state(SaleState::Draft, true),
            DocumentState::Unfinished
        );
    }

    #[test]
    fn minor_units() {
        assert_eq!(to_minor(Decimal::new(28484, 2), 2), 28484);
        assert_eq!(to_minor(Decimal::new(-1, 2), 2), -1);
        assert_eq!(to_minor(Decimal::from(1990), 0), 1990);
    }
}
