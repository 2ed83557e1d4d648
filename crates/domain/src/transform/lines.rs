//! The sales order's lines from the snapshot's figures, step by step: read the figures and
//! the lines (a bundle with its items is one entry), check that they add up to what the
//! customer paid, spread each voucher over the item lines, split bundles over their
//! components, add the charges, then tax per line — each step exact to the minor unit.

use rust_decimal::Decimal;

use super::tax::apply_tax;
use super::{LineKind, OrderLine, Problem, inconsistent, invalid};
use crate::bundles::{self, BundleProblem, Component};
use crate::money::{Currency, allocate};
use crate::rules::Rules;
use crate::snapshot::{Line, Money, Snapshot};

/// An item line (or a bundle, with its components) and its value, before vouchers.
struct ItemInput<'a> {
    line: &'a Line,
    value: i64,
    rate: Decimal,
    /// The components of a bundle (each posted once, as part of it); empty otherwise.
    components: Vec<Component<'a>>,
}

/// The order-level figures, in minor units.
struct Figures {
    grand_total: i64,
    /// The grand total for people ("£284.84"), for messages.
    amount: String,
    shipping: i64,
    handling: i64,
    tax_added: i64,
    tax_deducted: i64,
    tax_included: i64,
    vouchers: Vec<i64>,
}

/// Reads money of one order: a missing or sub-minor-unit amount is an invalid snapshot.
#[derive(Clone, Copy)]
struct Reader {
    number: i64,
    cur: Currency,
}

impl Reader {
    /// `what` names the value only when something is wrong: no formatting on the happy path.
    fn minor(&self, v: Option<Decimal>, what: &dyn Fn() -> String) -> Result<i64, Problem> {
        let v = v.ok_or_else(|| invalid(self.number, &format!("{} is missing", what())))?;
        self.cur
            .to_minor(v)
            .map_err(|e| invalid(self.number, &format!("{}: {e}", what())))
    }

    fn optional(&self, m: &Option<Money>, what: &dyn Fn() -> String) -> Result<i64, Problem> {
        match Money::get(m) {
            None => Ok(0),
            some => self.minor(some, what),
        }
    }

    fn inconsistent(&self, figures: &Figures, detail: &str) -> Problem {
        inconsistent(self.number, &figures.amount, detail)
    }
}

pub(super) fn compute_lines(
    snap: &Snapshot,
    cur: Currency,
    _rules: &Rules,
) -> Result<Vec<OrderLine>, Problem> {
    let read = Reader {
        number: snap.number,
        cur,
    };
    let figures = read_figures(snap, read)?;
    let (items, all_values) = read_items(snap, read, &figures)?;
    check_identity(read, &figures, all_values)?;
    let values = spread_vouchers(read, &figures, &items)?;
    let mut lines = explode_bundles(read, &figures, &items, &values)?;
    add_charges(&mut lines, &items, &figures);
    if let Some(l) = lines.iter().find(|l| l.gross < 0) {
        return Err(read.inconsistent(
            &figures,
            &format!(
                "after vouchers, {} would be posted at {}",
                l.sku.as_deref().unwrap_or("a charge"),
                cur.format(l.gross)
            ),
        ));
    }
    apply_tax(
        &mut lines,
        figures.tax_included,
        figures.tax_added,
        figures.tax_deducted,
    )
    .map_err(|detail| read.inconsistent(&figures, &detail))?;
    check_sums(read, &figures, &lines)?;
    Ok(lines)
}

fn read_figures(snap: &Snapshot, read: Reader) -> Result<Figures, Problem> {
    let grand_total = read.minor(
        snap.grand_total.as_ref().and_then(|g| g.value).map(|d| d.0),
        &|| "the grand total".to_owned(),
    )?;
    let totals = snap.totals.clone().unwrap_or_default();
    let mut vouchers = Vec::with_capacity(snap.discounts_applied.len());
    for d in &snap.discounts_applied {
        vouchers.push(read.optional(&d.value, &|| "a voucher value".to_owned())?);
    }
    Ok(Figures {
        grand_total,
        amount: read.cur.format(grand_total),
        shipping: read.optional(&totals.shipping, &|| "the shipping charge".to_owned())?,
        handling: read.optional(&totals.handling, &|| "the handling charge".to_owned())?,
        tax_added: read.optional(&totals.tax_added, &|| "the added tax".to_owned())?,
        tax_deducted: read.optional(&totals.tax_deducted, &|| "the deducted tax".to_owned())?,
        tax_included: read.optional(&totals.tax_included, &|| "the included tax".to_owned())?,
        vouchers,
    })
}

/// Every line; fully cancelled lines take part in the identity but are not posted. A bundle
/// and its item lines are one entry, counted once. Returns the posted items and the sum of
/// every line's value.
fn read_items<'s>(
    snap: &'s Snapshot,
    read: Reader,
    figures: &Figures,
) -> Result<(Vec<ItemInput<'s>>, i64), Problem> {
    let n = read.number;
    let entries = bundles::group(&snap.lines).map_err(|e| invalid(n, &e))?;
    let mut all_values: i64 = 0;
    let mut items: Vec<ItemInput<'_>> = Vec::with_capacity(entries.len());
    for entry in &entries {
        let line = entry.line;
        let id = LineRef(line.id);
        let mut value = read.minor(Money::get(&line.line_value), &|| {
            format!("line {id}'s value")
        })?;
        let qty = line
            .quantity
            .ok_or_else(|| invalid(n, &format!("line {id} has no quantity")))?;
        if qty < 0 || line.cancelled_quantity.unwrap_or(0) < 0 {
            return Err(invalid(n, &format!("line {id} has a negative quantity")));
        }
        let rate = line.tax_percent.map(|d| d.0.normalize());
        let mut components = Vec::new();
        if line.is_bundle() {
            let mut item_figures = Vec::with_capacity(entry.items.len());
            for item in &entry.items {
                let item_id = LineRef(item.id);
                item_figures.push(bundles::ItemFigures {
                    value: read
                        .optional(&item.line_value, &|| format!("item line {item_id}'s value"))?,
                    list_value: read.optional(&item.unit_original_price, &|| {
                        format!("item line {item_id}'s list price")
                    })? * item.quantity.unwrap_or(0),
                });
            }
            let bundle_rate = rate.unwrap_or(Decimal::ZERO);
            (value, components) = bundles::price(entry, value, bundle_rate, &item_figures)
                .map_err(|problem| match problem {
                    BundleProblem::Shape(detail) => invalid(n, &detail),
                    BundleProblem::Figures(detail) => read.inconsistent(figures, &detail),
                })?;
        }
        all_values += value;
        if qty == 0 {
            if value != 0 {
                return Err(read.inconsistent(
                    figures,
                    &format!(
                        "line {id} is fully cancelled but still carries {}",
                        read.cur.format(value)
                    ),
                ));
            }
            continue;
        }
        if line.id.is_none() {
            return Err(invalid(n, "a line has no id"));
        }
        let rate = rate.ok_or_else(|| invalid(n, &format!("line {id} has no tax rate")))?;
        if rate.is_sign_negative() {
            return Err(invalid(n, &format!("line {id} has a negative tax rate")));
        }
        if !line.is_bundle() && line.sku().is_none_or(str::is_empty) {
            return Err(invalid(n, &format!("line {id} has no SKU")));
        }
        items.push(ItemInput {
            line,
            value,
            rate,
            components,
        });
    }
    Ok((items, all_values))
}

/// Centra's grand total is the lines, charges, vouchers and added tax less deducted tax.
fn check_identity(read: Reader, f: &Figures, all_values: i64) -> Result<(), Problem> {
    let voucher_total: i64 = f.vouchers.iter().sum();
    let expected =
        all_values + f.shipping + f.handling + voucher_total + f.tax_added - f.tax_deducted;
    if expected == f.grand_total {
        return Ok(());
    }
    let fmt = |v: i64| read.cur.format(v);
    Err(read.inconsistent(
        f,
        &format!(
            "the grand total {} is not lines {} + shipping {} + handling {} + vouchers {} + added tax {} − deducted tax {} = {}",
            fmt(f.grand_total),
            fmt(all_values),
            fmt(f.shipping),
            fmt(f.handling),
            fmt(voucher_total),
            fmt(f.tax_added),
            fmt(f.tax_deducted),
            fmt(expected)
        ),
    ))
}

/// Vouchers: each one on its own, over the item lines by their line value. Returns each
/// item's value after them.
fn spread_vouchers(
    read: Reader,
    f: &Figures,
    items: &[ItemInput<'_>],
) -> Result<Vec<i64>, Problem> {
    let weights: Vec<i64> = items.iter().map(|i| i.value).collect();
    let mut values = weights.clone();
    for d in &f.vouchers {
        let shares = allocate(*d, &weights).ok_or_else(|| {
            read.inconsistent(
                f,
                &format!(
                    "a voucher of {} has no item lines to apply to",
                    read.cur.format(*d)
                ),
            )
        })?;
        values.iter_mut().zip(shares).for_each(|(v, s)| *v += s);
    }
    Ok(values)
}

/// One sales order line per item, a bundle's value split over its components
/// (`bundles::price` weighed them).
fn explode_bundles(
    read: Reader,
    f: &Figures,
    items: &[ItemInput<'_>],
    values: &[i64],
) -> Result<Vec<OrderLine>, Problem> {
    let mut lines: Vec<OrderLine> = Vec::with_capacity(items.len() + 2);
    for (item, value) in items.iter().zip(values) {
        let id = item.line.id;
        let qty = item.line.quantity.unwrap_or(0);
        if item.components.is_empty() {
            lines.push(OrderLine {
                kind: LineKind::Item,
                centra_line_id: id,
                sku: item.line.sku().map(str::to_owned),
                erp_item: None,
                quantity: qty,
                tax_rate: item.rate,
                gross: *value,
                tax: 0,
                net: 0,
                bundle_line_id: None,
                bundle_quantity: None,
                description: describe(item.line),
            });
            continue;
        }
        let w: Vec<i64> = item.components.iter().map(|c| c.weight).collect();
        let shares = allocate(*value, &w).ok_or_else(|| {
            read.inconsistent(f, "a bundle's value cannot be split over its components")
        })?;
        for (component, share) in item.components.iter().zip(shares) {
            lines.push(OrderLine {
                kind: LineKind::Item,
                centra_line_id: Some(component.id),
                sku: Some(component.sku.to_owned()),
                erp_item: None,
                quantity: component.quantity,
                tax_rate: item.rate,
                gross: share,
                tax: 0,
                net: 0,
                bundle_line_id: id,
                bundle_quantity: Some(qty),
                description: format!("{} (bundle {})", component.sku, describe(item.line)),
            });
        }
    }
    Ok(lines)
}

/// Shipping and handling, taxed at the highest rate among the posted item lines.
fn add_charges(lines: &mut Vec<OrderLine>, items: &[ItemInput<'_>], f: &Figures) {
    let charge_rate = items.iter().map(|i| i.rate).max().unwrap_or(Decimal::ZERO);
    for (kind, value, text) in [
        (LineKind::Shipping, f.shipping, "Shipping"),
        (LineKind::Handling, f.handling, "Handling"),
    ] {
        if value != 0 {
            lines.push(OrderLine {
                kind,
                centra_line_id: None,
                sku: None,
                erp_item: None,
                quantity: 1,
                tax_rate: charge_rate,
                gross: value,
                tax: 0,
                net: 0,
                bundle_line_id: None,
                bundle_quantity: None,
                description: text.to_owned(),
            });
        }
    }
}

/// The lines add up to what the customer paid, with Centra's tax.
fn check_sums(read: Reader, f: &Figures, lines: &[OrderLine]) -> Result<(), Problem> {
    let gross: i64 = lines.iter().map(|l| l.gross).sum();
    let tax: i64 = lines.iter().map(|l| l.tax).sum();
    if gross == f.grand_total && tax == f.tax_included + f.tax_added {
        return Ok(());
    }
    let fmt = |v: i64| read.cur.format(v);
    Err(read.inconsistent(
        f,
        &format!(
            "the lines add up to {} with {} tax, not {} with {} tax",
            fmt(gross),
            fmt(tax),
            fmt(f.grand_total),
            fmt(f.tax_included + f.tax_added)
        ),
    ))
}

/// A line id for messages ("?" when the snapshot has none), formatted only when used.
#[derive(Clone, Copy)]
struct LineRef(Option<i64>);

impl std::fmt::Display for LineRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(id) => write!(f, "{id}"),
            None => f.write_str("?"),
        }
    }
}

fn describe(line: &Line) -> String {
    let name = line
        .product
        .as_ref()
        .and_then(|p| p.name.as_deref())
        .unwrap_or("");
    let size = line
        .product_size
        .as_ref()
        .and_then(|s| s.description.as_deref().or(s.size_number.as_deref()))
        .unwrap_or("");
    match (name.is_empty(), size.is_empty()) {
        (false, false) => format!("{name}, size {size}"),
        (false, true) => name.to_owned(),
        _ => line.sku().unwrap_or("").to_owned(),
    }
}
