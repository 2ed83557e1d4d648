//! What the ERP holds, and what happens to it behind Ferry's back: documents read back line
//! by line (by external reference, or every document in order), changes a person or a
//! misbehaving import makes to a stored document, and documents entered by hand. The
//! reconciler is tested against these: what it reads is what was recorded, never an echo
//! of what Ferry sent.

use super::*;

/// A change to a stored document, as `POST /admin/sales-orders/{external_ref}/change`
/// (`{"change":"drop_line"}`) or a create-time fault makes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    /// The last line is gone (an import that lost it, a person who deleted it).
    DropLine,
    /// The first item line costs one currency unit more per piece (net), tax to match.
    ChangePrice,
    /// One minor unit moved from net to tax on the first taxed line (the ERP rounds its
    /// tax differently).
    TaxRounding,
    /// The document is in another currency (EUR, or SEK when it was EUR).
    WrongCurrency,
    /// A second document with the same external reference.
    Duplicate,
    /// The document is deleted (reads no longer return it).
    Delete,
    /// The document is cancelled in the ERP.
    Cancel,
}

impl Change {
    pub const ALL: [Change; 7] = [
        Change::DropLine,
        Change::ChangePrice,
        Change::TaxRounding,
        Change::WrongCurrency,
        Change::Duplicate,
        Change::Delete,
        Change::Cancel,
    ];
}

/// Applies `change` to one document in place (all but `Duplicate`, which adds a document
/// and is the book's to make). `false` when the change cannot apply (a one-line document
/// cannot lose a line; a document without tax cannot round it differently).
pub(crate) fn alter(order: &mut SalesOrder, change: Change) -> bool {
    let applied = match change {
        Change::DropLine => order.lines.len() > 1 && order.lines.pop().is_some(),
        Change::ChangePrice => match order.lines.iter_mut().find(|l| l.kind == "item") {
            Some(line) => {
                let more_net = 100 * line.quantity;
                let more_tax = tax_on(more_net, &line.tax_rate);
                line.net_minor += more_net;
                line.tax_minor += more_tax;
                line.gross_minor += more_net + more_tax;
                true
            }
            None => false,
        },
        Change::TaxRounding => match order.lines.iter_mut().find(|l| l.tax_minor > 0) {
            Some(line) => {
                line.tax_minor += 1;
                line.net_minor -= 1;
                true
            }
            None => false,
        },
        Change::WrongCurrency => {
            order.currency = if order.currency == "EUR" {
                "SEK"
            } else {
                "EUR"
            }
            .to_owned();
            true
        }
        Change::Delete => !std::mem::replace(&mut order.deleted, true),
        Change::Cancel => !std::mem::replace(&mut order.cancelled, true),
        Change::Duplicate => false,
    };
    order.gross_minor = order.lines.iter().map(|l| l.gross_minor).sum();
    order.tax_minor = order.lines.iter().map(|l| l.tax_minor).sum();
    order.line_count = order.lines.len();
    applied
}

/// Tax at `rate` percent ("25", "8.875") on `net` minor units, rounded half away from zero;
/// 0 when the rate cannot be read.
pub(crate) fn tax_on(net: i64, rate: &str) -> i64 {
    // The rate in millionths of a percent keeps "8.875" exact in integers.
    let (whole, fraction) = rate.trim().split_once('.').unwrap_or((rate.trim(), ""));
    let fraction = format!("{fraction:0<6}");
    let (Ok(whole), Ok(fraction)) = (whole.parse::<i128>(), fraction[..6].parse::<i128>()) else {
        return 0;
    };
    let micro_percent = whole * 1_000_000 + fraction;
    let scaled = i128::from(net) * micro_percent;
    let divisor = 100_000_000i128;
    let rounded = (scaled.abs() + divisor / 2) / divisor * scaled.signum();
    i64::try_from(rounded).unwrap_or(0)
}

impl Book {
    /// The document Ferry's lookups see for `external_ref`: the oldest not deleted.
    pub(crate) fn current(&self, external_ref: &str) -> Option<usize> {
        self.by_ref
            .get(external_ref)?
            .iter()
            .copied()
            .find(|&i| !self.orders[i].deleted)
    }

    /// The document with the ERP reference `reference` (`SO-<n>`, the n-th stored), deleted
    /// or not: found by its number, not by a scan of the book.
    pub(crate) fn by_reference(&self, reference: &str) -> Option<usize> {
        let n: usize = reference.strip_prefix("SO-")?.parse().ok()?;
        let i = n.checked_sub(1)?;
        (self.orders.get(i)?.reference == reference).then_some(i)
    }

    /// Stores a document; `key` is the idempotency key it was created under, if any.
    pub(crate) fn push(&mut self, key: Option<String>, mut order: SalesOrder) -> usize {
        let index = self.orders.len();
        order.reference = format!("SO-{:07}", index + 1);
        self.by_ref
            .entry(order.external_ref.clone())
            .or_default()
            .push(index);
        if let Some(key) = key {
            self.by_key.insert(key, index);
        }
        self.orders.push(order);
        index
    }

    /// Makes `change` to the current document of `external_ref`: whether it applied.
    pub(crate) fn change(&mut self, external_ref: &str, change: Change) -> Option<usize> {
        let i = self.current(external_ref)?;
        if change == Change::Duplicate {
            let copy = SalesOrder {
                created_at: chrono::Utc::now().to_rfc3339(),
                ..self.orders[i].clone()
            };
            return Some(self.push(None, copy));
        }
        alter(&mut self.orders[i], change).then_some(i)
    }
}

/// A document as the read-back endpoints describe it: the record, line by line.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Document {
    reference: String,
    external_ref: String,
    currency: String,
    state: DocState,
    gross_minor: i64,
    tax_minor: i64,
    lines: Vec<Line>,
    created_at: String,
}

fn document(order: &SalesOrder) -> Document {
    Document {
        lines: order.lines.clone(),
        ..header(order)
    }
}

/// A document without its lines (`lines=false`).
fn header(order: &SalesOrder) -> Document {
    Document {
        reference: order.reference.clone(),
        external_ref: order.external_ref.clone(),
        currency: order.currency.clone(),
        state: order.state(),
        gross_minor: order.gross_minor,
        tax_minor: order.tax_minor,
        lines: Vec::new(),
        created_at: order.created_at.clone(),
    }
}

#[derive(Deserialize)]
pub(crate) struct DocumentsQuery {
    #[serde(default)]
    external_ref: Option<String>,
    /// Many at once: comma-separated, at most 500.
    #[serde(default)]
    external_refs: Option<String>,
    #[serde(default)]
    after: String,
    #[serde(default = "default_page")]
    limit: usize,
    /// `false`: the listing leaves each document's lines out.
    #[serde(default = "default_lines")]
    lines: bool,
}

fn default_page() -> usize {
    500
}

fn default_lines() -> bool {
    true
}

#[derive(Serialize)]
pub(crate) struct DocumentPage {
    documents: Vec<Document>,
    next_cursor: String,
}

/// `GET /api/sales-orders/documents?external_ref=48170` — every document under that
/// reference, oldest first; `GET /api/sales-orders/documents?after=CURSOR&limit=N` — every
/// document the ERP holds, in the order it created them. Deleted documents are not read.
pub(crate) async fn documents(
    State(sim): State<Arc<Sim>>,
    Query(q): Query<DocumentsQuery>,
) -> Response {
    sim.reads.fetch_add(1, Ordering::Relaxed);
    // Not counted in flight: reads come from the reconciler, outside the writer's bound
    // that `max_in_flight` proves (a read beside 16 posts made it 17).
    if let Some(answer) = before(&sim).await {
        return answer;
    }
    if let Some(refs) = &q.external_refs
        && refs.split(',').count() > 500
    {
        return error(
            StatusCode::BAD_REQUEST,
            "external_refs: at most 500 references per request",
        );
    }
    let book = sim.book.lock();
    let one = |external_ref: &str| {
        book.by_ref
            .get(external_ref)
            .into_iter()
            .flatten()
            .map(|&i| &book.orders[i])
            .filter(|o| !o.deleted)
            .map(document)
    };
    let page = match (q.external_ref, q.external_refs) {
        (_, Some(refs)) => DocumentPage {
            documents: refs.split(',').flat_map(one).collect(),
            next_cursor: String::new(),
        },
        (Some(external_ref), None) => DocumentPage {
            documents: one(&external_ref).collect(),
            next_cursor: String::new(),
        },
        (None, None) => {
            let start = q.after.parse::<usize>().unwrap_or(0).min(book.orders.len());
            let end = start
                .saturating_add(q.limit.clamp(1, 5_000))
                .min(book.orders.len());
            let shown = if q.lines { document } else { header };
            DocumentPage {
                documents: book.orders[start..end]
                    .iter()
                    .filter(|o| !o.deleted)
                    .map(shown)
                    .collect(),
                next_cursor: end.to_string(),
            }
        }
    };
    Json(page).into_response()
}

/// The body of `POST /admin/sales-orders/{external_ref}/change`.
#[derive(Deserialize)]
pub(crate) struct ChangeRequest {
    change: Change,
}

pub(crate) async fn admin_change(
    State(sim): State<Arc<Sim>>,
    Path(external_ref): Path<String>,
    Json(request): Json<ChangeRequest>,
) -> Response {
    let changed = sim.change(&external_ref, request.change);
    match changed {
        Some(i) => Json(document(&sim.book.lock().orders[i])).into_response(),
        None => error(
            StatusCode::NOT_FOUND,
            "no such sales order, or the change does not apply to it",
        ),
    }
}

/// `POST /admin/sales-orders`: a document entered by hand in the ERP (no Centra order
/// behind it; `external_ref` may be empty or anything a person typed).
pub(crate) async fn admin_enter(
    State(sim): State<Arc<Sim>>,
    Json(order): Json<NewSalesOrder>,
) -> Response {
    let i = sim.enter_by_hand(order);
    Json(document(&sim.book.lock().orders[i])).into_response()
}

impl Sim {
    pub(crate) fn change(&self, external_ref: &str, change: Change) -> Option<usize> {
        let mut book = self.book.lock();
        let changed = book.change(external_ref, change)?;
        if change == Change::Duplicate {
            // A second document promises its items a second time.
            self.logistics.lock().reserve(&book.orders[changed].lines);
        }
        self.altered.fetch_add(1, Ordering::Relaxed);
        Some(changed)
    }

    pub(crate) fn enter_by_hand(&self, order: NewSalesOrder) -> usize {
        let stored = SalesOrder::from_new(order);
        self.logistics.lock().reserve(&stored.lines);
        self.book.lock().push(None, stored)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(kind: &str, gross: i64, tax: i64, rate: &str) -> Line {
        Line {
            kind: kind.to_owned(),
            erp_item: format!("{kind}-1"),
            sku: None,
            centra_line_id: None,
            quantity: 2,
            tax_rate: rate.to_owned(),
            tax_code: None,
            gross_minor: gross,
            tax_minor: tax,
            net_minor: gross - tax,
            description: String::new(),
        }
    }

    fn order() -> SalesOrder {
        SalesOrder::from_new(NewSalesOrder {
            external_ref: "48170".into(),
            currency: "SEK".into(),
            order_date: String::new(),
            customer: serde_json::Value::Null,
            delivery: None,
            lines: vec![
                line("item", 99_800, 19_960, "25"),
                line("shipping", 4_900, 980, "25"),
            ],
            payment_term: None,
            carrier: None,
            sales_channel: None,
        })
    }

    #[test]
    fn tax_is_exact_for_fractional_rates() {
        assert_eq!(tax_on(200, "25"), 50);
        assert_eq!(tax_on(10_000, "8.875"), 888); // 887.5 rounds away from zero
        assert_eq!(tax_on(-10_000, "8.875"), -888);
        assert_eq!(tax_on(1_000, "0"), 0);
        assert_eq!(tax_on(1_000, "not a rate"), 0);
    }

    #[test]
    fn every_change_alters_what_is_recorded_and_keeps_the_totals_honest() {
        for change in Change::ALL {
            let mut book = Book::default();
            book.push(Some("48170".into()), order());
            let before = book.orders[0].clone();
            let changed = book.change("48170", change).expect("applies");
            let after = &book.orders[changed];
            match change {
                Change::DropLine => assert_eq!(after.lines.len(), 1),
                Change::ChangePrice => {
                    assert_eq!(after.lines[0].net_minor, before.lines[0].net_minor + 200);
                    assert_eq!(after.lines[0].tax_minor, before.lines[0].tax_minor + 50);
                }
                Change::TaxRounding => {
                    assert_eq!(after.lines[0].tax_minor, before.lines[0].tax_minor + 1);
                    assert_eq!(after.lines[0].gross_minor, before.lines[0].gross_minor);
                }
                Change::WrongCurrency => assert_eq!(after.currency, "EUR"),
                Change::Duplicate => {
                    assert_eq!(changed, 1);
                    assert_eq!(book.by_ref["48170"], vec![0, 1]);
                    assert_ne!(after.reference, before.reference);
                }
                Change::Delete => assert_eq!(book.current("48170"), None),
                Change::Cancel => assert_eq!(after.state(), DocState::Cancelled),
            }
            let after = &book.orders[changed];
            assert_eq!(
                after.gross_minor,
                after.lines.iter().map(|l| l.gross_minor).sum::<i64>()
            );
            assert_eq!(
                after.tax_minor,
                after.lines.iter().map(|l| l.tax_minor).sum::<i64>()
            );
            assert!(
                after
                    .lines
                    .iter()
                    .all(|l| l.net_minor == l.gross_minor - l.tax_minor)
            );
        }
    }

    #[test]
    fn a_change_that_cannot_apply_says_so() {
        let mut one_line = order();
        one_line.lines.truncate(1);
        assert!(!alter(&mut one_line, Change::DropLine));
        let mut book = Book::default();
        book.push(None, order());
        assert_eq!(book.change("unknown", Change::Cancel), None);
        assert!(book.change("48170", Change::Delete).is_some());
        assert_eq!(
            book.change("48170", Change::Delete),
            None,
            "nothing left to delete"
        );
    }
}
