//! The order-to-cash transform: one Centra order snapshot → the ERP-bound sales order, with
//! exact money, vouchers and bundles allocated by largest remainder, tax per line, and the
//! exceptions that block it. The contract is `contracts/order-snapshot.md`.
//!
//! The four invariants, exact to the minor unit, for every snapshot that is not rejected:
//! 1. Σ lines.gross == grandTotal;
//! 2. Σ lines.tax == taxIncluded + taxAdded;
//! 3. voucher and bundle shares are within one unit of their exact proportions;
//! 4. each line's tax is within one unit of its exact share.

use std::cmp::Ordering;

use rust_decimal::Decimal;
use serde::Serialize;

use crate::bundles::{self, BundleProblem, Component};
use crate::exception::{ExceptionKind, Owner};
use crate::money::{Currency, allocate};
use crate::rules::{ItemMap, ReleasePolicy, Rules};
use crate::snapshot::{Line, Money, Snapshot};

/// What the transform decided about an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Release {
    /// Releasable: confirmed (or paid, per policy), not on hold, nothing blocking.
    Ready,
    /// On hold, or still PENDING while the tenant releases on confirmation.
    Held,
    /// Cancelled in Centra: nothing to post.
    Cancelled,
    /// A blocking exception.
    Rejected,
}

impl Release {
    pub fn as_str(&self) -> &'static str {
        match self {
            Release::Ready => "ready",
            Release::Held => "held",
            Release::Cancelled => "cancelled",
            Release::Rejected => "rejected",
        }
    }
}

/// Centra's order status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CentraStatus {
    Pending,
    Confirmed,
    Processing,
    Shipped,
    Archived,
    Cancelled,
}

impl CentraStatus {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "PENDING" => CentraStatus::Pending,
            "CONFIRMED" => CentraStatus::Confirmed,
            "PROCESSING" => CentraStatus::Processing,
            "SHIPPED" => CentraStatus::Shipped,
            "ARCHIVED" => CentraStatus::Archived,
            "CANCELLED" => CentraStatus::Cancelled,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LineKind {
    Item,
    Shipping,
    Handling,
}

/// One line of the sales order. `net = gross − tax` always.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderLine {
    pub kind: LineKind,
    /// The Centra line posted (a bundle component's own item line); none for charges.
    pub centra_line_id: Option<i64>,
    pub sku: Option<String>,
    pub erp_item: Option<String>,
    pub quantity: i64,
    /// Normalised rate in percent: 25, 5.5, 8.875.
    pub tax_rate: Decimal,
    pub gross: i64,
    pub tax: i64,
    pub net: i64,
    /// Set on the components of a bundle: the Centra line id of the bundle.
    pub bundle_line_id: Option<i64>,
    /// Set on the components of a bundle: how many bundles the Centra line has (the
    /// component's quantity per bundle is `quantity / bundle_quantity`).
    pub bundle_quantity: Option<i64>,
    pub description: String,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    pub gross: i64,
    pub tax: i64,
    pub net: i64,
}

/// A blocking (or informative) problem found by the transform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub kind: ExceptionKind,
    /// Deduplication key within the order (e.g. the SKU).
    pub key: String,
    /// Plain words for the owning team.
    pub message: String,
    /// Detail for engineers.
    pub reason: String,
}

impl Problem {
    pub fn owner(&self) -> Owner {
        self.kind.owner()
    }
}

/// The customer and addresses, as the ERP connector needs them to match or create a party.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Party {
    pub centra_customer_id: Option<i64>,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    pub vat_number: String,
    pub billing: Option<PostalAddress>,
    pub shipping: Option<PostalAddress>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PostalAddress {
    pub company_name: String,
    pub first_name: String,
    pub last_name: String,
    pub address1: String,
    pub address2: String,
    pub city: String,
    pub state_or_province: String,
    pub zip_code: String,
    pub country_code: String,
    pub email: String,
    pub phone_number: String,
    pub vat_number: String,
}

/// The result of transforming one snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SalesOrder {
    pub order_number: i64,
    pub centra_order_id: String,
    pub release: Release,
    /// Why the order is held, in words.
    pub hold_reason: Option<String>,
    pub currency: String,
    pub lines: Vec<OrderLine>,
    pub totals: Totals,
    pub problems: Vec<Problem>,
    pub party: Party,
    pub market: String,
    pub payment_method: String,
    pub shipping_option: String,
    pub order_date: String,
    /// The amount the customer paid, in minor units (when it could be read).
    pub grand_total: Option<i64>,
}

impl SalesOrder {
    /// A hash of what the ERP would hold (currency, lines and their money), so that a
    /// newer snapshot that changes none of it (a status change) is recognised as such.
    pub fn fingerprint(&self) -> String {
        use sha2::{Digest, Sha256};
        use std::fmt::Write as _;
        // Stored fingerprints are compared with new ones: these bytes must never change.
        let mut text = String::with_capacity(self.currency.len() + 64 * self.lines.len());
        text.push_str(&self.currency);
        for l in &self.lines {
            let _ = write!(
                text,
                "|{:?}:{:?}:{:?}:{:?}:{}:{}:{}:{}",
                l.kind, l.centra_line_id, l.sku, l.erp_item, l.quantity, l.tax_rate, l.gross, l.tax
            );
        }
        hex::encode(&Sha256::digest(text.as_bytes())[..16])
    }

    /// The grand total formatted for people, e.g. "£284.84".
    pub fn amount_text(&self) -> String {
        match (Currency::from_code(&self.currency), self.grand_total) {
            (Some(c), Some(minor)) => c.format(minor),
            _ => format!(
                "an amount in {}",
                display_or(&self.currency, "an unknown currency")
            ),
        }
    }
}

fn display_or<'a>(s: &'a str, fallback: &'a str) -> &'a str {
    if s.is_empty() { fallback } else { s }
}

/// Transforms one snapshot under a tenant's rules and SKU mapping.
pub fn transform(snap: &Snapshot, rules: &Rules, items: &dyn ItemMap) -> SalesOrder {
    let mut order = SalesOrder {
        order_number: snap.number,
        centra_order_id: snap.id.clone().unwrap_or_default(),
        release: Release::Rejected,
        hold_reason: None,
        currency: snap.currency_code().unwrap_or_default().to_owned(),
        lines: Vec::new(),
        totals: Totals::default(),
        problems: Vec::new(),
        party: party(snap),
        market: snap
            .market
            .as_ref()
            .and_then(|m| m.name.clone())
            .unwrap_or_default(),
        payment_method: snap
            .payment_method
            .as_ref()
            .and_then(|p| p.uri.clone())
            .unwrap_or_default(),
        shipping_option: snap
            .shipping_price_group
            .as_ref()
            .and_then(|g| g.shipping_option.as_ref())
            .and_then(|o| o.uri.clone())
            .unwrap_or_default(),
        order_date: snap.order_date.clone().unwrap_or_default(),
        grand_total: None,
    };

    let status = match snap.status.as_deref().map(CentraStatus::parse) {
        Some(Some(s)) => s,
        other => {
            let shown = snap.status.as_deref().unwrap_or("(none)");
            let detail = if other.is_none() {
                "it has no status".to_owned()
            } else {
                format!("its status {shown:?} is not one Ferry knows")
            };
            order.problems.push(invalid(snap.number, &detail));
            return order;
        }
    };
    if status == CentraStatus::Cancelled {
        order.release = Release::Cancelled;
        return order;
    }

    let Some(currency) = check_currency(snap, rules, &mut order) else {
        return order;
    };
    order.grand_total = snap
        .grand_total
        .as_ref()
        .and_then(|g| g.value)
        .and_then(|d| currency.to_minor(d.0).ok());

    match compute_lines(snap, currency, rules) {
        Ok(lines) => order.lines = lines,
        Err(problem) => {
            order.problems.push(problem);
            return order;
        }
    }
    order.totals = order.lines.iter().fold(Totals::default(), |t, l| Totals {
        gross: t.gross + l.gross,
        tax: t.tax + l.tax,
        net: t.net + l.net,
    });

    map_items(snap, rules, items, &mut order);
    check_tax_codes(rules, &mut order);

    if !order.problems.is_empty() {
        order.release = Release::Rejected;
    } else if snap.is_on_hold == Some(true) {
        order.release = Release::Held;
        order.hold_reason = Some("the order is on hold in Centra".to_owned());
    } else if status == CentraStatus::Pending && !released_while_pending(snap, rules) {
        order.release = Release::Held;
        order.hold_reason = Some(match rules.release {
            ReleasePolicy::OnConfirmation => "the order is not confirmed in Centra yet".to_owned(),
            ReleasePolicy::OnPaymentAuthorisation => "the payment is not authorised yet".to_owned(),
        });
    } else {
        order.release = Release::Ready;
    }
    order
}

fn released_while_pending(snap: &Snapshot, rules: &Rules) -> bool {
    rules.release == ReleasePolicy::OnPaymentAuthorisation
        && snap.payment_history.iter().any(|p| {
            p.status.as_deref() == Some("SUCCESS")
                && matches!(p.entry_type.as_deref(), Some("AUTH" | "AUTHORIZATION"))
        })
}

fn invalid(number: i64, detail: &str) -> Problem {
    Problem {
        kind: ExceptionKind::InvalidSnapshot,
        key: "snapshot".to_owned(),
        message: format!(
            "Order {number} could not be read from Centra: {detail}. Nothing was posted to \
             the ERP; engineering must look at the order data."
        ),
        reason: detail.to_owned(),
    }
}

fn inconsistent(number: i64, amount: &str, detail: &str) -> Problem {
    Problem {
        kind: ExceptionKind::SnapshotInconsistent,
        key: "figures".to_owned(),
        message: format!(
            "{amount} not booked in the ERP: Centra's figures for order {number} do not add \
             up ({detail}). Check the order in Centra; Ferry posts it as soon as its totals \
             are consistent."
        ),
        reason: detail.to_owned(),
    }
}

fn check_currency(snap: &Snapshot, rules: &Rules, order: &mut SalesOrder) -> Option<Currency> {
    let Some(code) = snap.currency_code() else {
        order
            .problems
            .push(invalid(snap.number, "it has no currency"));
        return None;
    };
    let amount = snap
        .grand_total
        .as_ref()
        .and_then(|g| g.value)
        .map(|d| format!("{} {code}", d.0))
        .unwrap_or_else(|| format!("an amount in {code}"));
    let currency = Currency::from_code(code);
    let accepted =
        rules.accepted_currencies.is_empty() || rules.accepted_currencies.iter().any(|c| c == code);
    match currency {
        Some(c) if accepted => Some(c),
        Some(_) => {
            order.problems.push(Problem {
                kind: ExceptionKind::UnmappedCurrency,
                key: format!("currency:{code}"),
                message: format!(
                    "{amount} not booked in the ERP: order {} is in {code}, which this brand \
                     does not post to the ERP. Add {code} to the brand's accepted currencies \
                     (and set it up in the ERP); the order is then posted automatically.",
                    snap.number
                ),
                reason: format!("currency {code} is not in accepted_currencies"),
            });
            None
        }
        None => {
            order.problems.push(Problem {
                kind: ExceptionKind::UnmappedCurrency,
                key: format!("currency:{code}"),
                message: format!(
                    "{amount} not booked in the ERP: order {} is in {code}, a currency Ferry \
                     does not know the decimals of. Ask engineering to add {code}; the order \
                     is then posted automatically.",
                    snap.number
                ),
                reason: format!("currency {code:?} is not in Ferry's ISO 4217 table"),
            });
            None
        }
    }
}

/// A Centra order line reduced to what the money rules need, in minor units.
struct ItemInput<'a> {
    line: &'a Line,
    value: i64,
    rate: Decimal,
    /// The components of a bundle (each posted once, as part of it); empty otherwise.
    components: Vec<Component<'a>>,
}

fn compute_lines(
    snap: &Snapshot,
    cur: Currency,
    _rules: &Rules,
) -> Result<Vec<OrderLine>, Problem> {
    let n = snap.number;
    // `what` names the value only when something is wrong: no formatting on the happy path.
    let minor = |v: Option<Decimal>, what: &dyn Fn() -> String| -> Result<i64, Problem> {
        let v = v.ok_or_else(|| invalid(n, &format!("{} is missing", what())))?;
        cur.to_minor(v)
            .map_err(|e| invalid(n, &format!("{}: {e}", what())))
    };
    let optional_minor = |m: &Option<Money>, what: &dyn Fn() -> String| -> Result<i64, Problem> {
        match Money::get(m) {
            None => Ok(0),
            some => minor(some, what),
        }
    };

    let grand_total = minor(
        snap.grand_total.as_ref().and_then(|g| g.value).map(|d| d.0),
        &|| "the grand total".to_owned(),
    )?;
    let amount = cur.format(grand_total);
    let totals = snap.totals.clone().unwrap_or_default();
    let shipping = optional_minor(&totals.shipping, &|| "the shipping charge".to_owned())?;
    let handling = optional_minor(&totals.handling, &|| "the handling charge".to_owned())?;
    let tax_added = optional_minor(&totals.tax_added, &|| "the added tax".to_owned())?;
    let tax_deducted = optional_minor(&totals.tax_deducted, &|| "the deducted tax".to_owned())?;
    let tax_included = optional_minor(&totals.tax_included, &|| "the included tax".to_owned())?;
    let mut discounts = Vec::with_capacity(snap.discounts_applied.len());
    for d in &snap.discounts_applied {
        discounts.push(optional_minor(&d.value, &|| "a voucher value".to_owned())?);
    }

    // Read every line; fully cancelled lines take part in the identity but are not posted.
    // A bundle and its item lines are one entry, counted once.
    let entries = bundles::group(&snap.lines).map_err(|e| invalid(n, &e))?;
    let mut all_values: i64 = 0;
    let mut items: Vec<ItemInput<'_>> = Vec::with_capacity(entries.len());
    for entry in &entries {
        let line = entry.line;
        let id = LineRef(line.id);
        let mut value = minor(Money::get(&line.line_value), &|| {
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
            let mut figures = Vec::with_capacity(entry.items.len());
            for item in &entry.items {
                let item_id = LineRef(item.id);
                figures.push(bundles::ItemFigures {
                    value: optional_minor(&item.line_value, &|| {
                        format!("item line {item_id}'s value")
                    })?,
                    list_value: optional_minor(&item.unit_original_price, &|| {
                        format!("item line {item_id}'s list price")
                    })? * item.quantity.unwrap_or(0),
                });
            }
            let bundle_rate = rate.unwrap_or(Decimal::ZERO);
            (value, components) = bundles::price(entry, value, bundle_rate, &figures).map_err(
                |problem| match problem {
                    BundleProblem::Shape(detail) => invalid(n, &detail),
                    BundleProblem::Figures(detail) => inconsistent(n, &amount, &detail),
                },
            )?;
        }
        all_values += value;
        if qty == 0 {
            if value != 0 {
                return Err(inconsistent(
                    n,
                    &amount,
                    &format!(
                        "line {id} is fully cancelled but still carries {}",
                        cur.format(value)
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

    let voucher_total: i64 = discounts.iter().sum();
    let expected = all_values + shipping + handling + voucher_total + tax_added - tax_deducted;
    if expected != grand_total {
        return Err(inconsistent(
            n,
            &amount,
            &format!(
                "the grand total {} is not lines {} + shipping {} + handling {} + vouchers {} + added tax {} − deducted tax {} = {}",
                cur.format(grand_total),
                cur.format(all_values),
                cur.format(shipping),
                cur.format(handling),
                cur.format(voucher_total),
                cur.format(tax_added),
                cur.format(tax_deducted),
                cur.format(expected)
            ),
        ));
    }

    // Vouchers: each one on its own, over the item lines by their line value.
    let weights: Vec<i64> = items.iter().map(|i| i.value).collect();
    let mut values = weights.clone();
    for d in &discounts {
        let shares = allocate(*d, &weights).ok_or_else(|| {
            inconsistent(
                n,
                &amount,
                &format!(
                    "a voucher of {} has no item lines to apply to",
                    cur.format(*d)
                ),
            )
        })?;
        values.iter_mut().zip(shares).for_each(|(v, s)| *v += s);
    }

    // Explode bundles: the bundle's value is split over its components (`bundles::price`).
    let mut lines: Vec<OrderLine> = Vec::with_capacity(items.len() + 2);
    for (item, value) in items.iter().zip(&values) {
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
        } else {
            let w: Vec<i64> = item.components.iter().map(|c| c.weight).collect();
            let shares = allocate(*value, &w).ok_or_else(|| {
                inconsistent(
                    n,
                    &amount,
                    "a bundle's value cannot be split over its components",
                )
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
    }

    // Charges are taxed at the highest rate among the posted item lines.
    let charge_rate = items.iter().map(|i| i.rate).max().unwrap_or(Decimal::ZERO);
    for (kind, value, text) in [
        (LineKind::Shipping, shipping, "Shipping"),
        (LineKind::Handling, handling, "Handling"),
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
    if let Some(l) = lines.iter().find(|l| l.gross < 0) {
        return Err(inconsistent(
            n,
            &amount,
            &format!(
                "after vouchers, {} would be posted at {}",
                l.sku.as_deref().unwrap_or("a charge"),
                cur.format(l.gross)
            ),
        ));
    }

    apply_tax(&mut lines, tax_included, tax_added, tax_deducted)
        .map_err(|detail| inconsistent(n, &amount, &detail))?;

    let gross: i64 = lines.iter().map(|l| l.gross).sum();
    let tax: i64 = lines.iter().map(|l| l.tax).sum();
    if gross != grand_total || tax != tax_included + tax_added {
        return Err(inconsistent(
            n,
            &amount,
            &format!(
                "the lines add up to {} with {} tax, not {} with {} tax",
                cur.format(gross),
                cur.format(tax),
                cur.format(grand_total),
                cur.format(tax_included + tax_added)
            ),
        ));
    }
    Ok(lines)
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

/// Sets tax, and net or gross, on every line so that the line taxes sum exactly to Centra's
/// tax figure. Lines carry their final value in `gross` on entry.
fn apply_tax(
    lines: &mut [OrderLine],
    tax_included: i64,
    tax_added: i64,
    tax_deducted: i64,
) -> Result<(), String> {
    if tax_deducted != 0 {
        // Export sale: the VAT Centra removed comes off every line in proportion.
        let weights: Vec<i64> = lines.iter().map(|l| l.gross).collect();
        let shares = allocate(tax_deducted, &weights)
            .ok_or("tax was deducted from an order with nothing to deduct it from")?;
        for (l, s) in lines.iter_mut().zip(shares) {
            l.gross -= s;
        }
        if tax_included == 0 && tax_added == 0 {
            for l in lines.iter_mut() {
                l.tax_rate = Decimal::ZERO;
                l.tax = 0;
                l.net = l.gross;
            }
            return Ok(());
        }
    }
    if tax_added != 0 {
        if tax_included != 0 {
            return Err("the order both includes and adds tax".to_owned());
        }
        // Tax-added market: values are net; the added tax is shared by net value.
        let weights: Vec<i64> = lines.iter().map(|l| l.gross).collect();
        let shares = allocate(tax_added, &weights)
            .ok_or("tax was added to an order with no value to add it to")?;
        for (l, s) in lines.iter_mut().zip(shares) {
            l.net = l.gross;
            l.tax = s;
            l.gross = l.net + s;
        }
        return Ok(());
    }
    // Tax-inclusive market: each line's exact VAT is gross × r / (100 + r); start from the
    // floor and hand out the difference to Centra's order-level figure by largest remainder.
    let mut remainders: Vec<(usize, i128, i128)> = Vec::with_capacity(lines.len());
    let mut floor_sum: i64 = 0;
    for (i, l) in lines.iter_mut().enumerate() {
        let (num, den) = rate_fraction(l.tax_rate);
        let exact = i128::from(l.gross) * num;
        let floor = exact.div_euclid(den);
        l.tax = i64::try_from(floor).map_err(|_| "tax out of range".to_owned())?;
        floor_sum += l.tax;
        remainders.push((i, exact.rem_euclid(den), den));
    }
    let mut left = tax_included - floor_sum;
    if left > 0 {
        if left > lines.len() as i64 {
            return Err(format!(
                "Centra's tax figure is {} minor units above what the lines' rates give",
                left
            ));
        }
        // Largest fractional part first; ties keep line order.
        remainders.sort_by(|a, b| cmp_fraction(b.1, b.2, a.1, a.2).then(a.0.cmp(&b.0)));
        for (i, _, _) in remainders.iter().take(left as usize) {
            lines[*i].tax += 1;
        }
        left = 0;
    } else if left < 0 {
        // Only lines whose exact tax is a whole number can go one unit under it.
        for (i, rem, _) in &remainders {
            if left == 0 {
                break;
            }
            if *rem == 0 && lines[*i].tax > 0 {
                lines[*i].tax -= 1;
                left += 1;
            }
        }
    }
    if left != 0 {
        return Err(format!(
            "Centra's tax figure is {} minor units below what the lines' rates give",
            -left
        ));
    }
    for l in lines.iter_mut() {
        l.net = l.gross - l.tax;
    }
    Ok(())
}

/// r / (100 + r) as an integer fraction, for a rate in percent.
fn rate_fraction(rate: Decimal) -> (i128, i128) {
    let scale = rate.scale();
    let mantissa = rate.mantissa();
    let hundred = 100_i128 * 10_i128.pow(scale);
    (mantissa, hundred + mantissa)
}

fn cmp_fraction(a_num: i128, a_den: i128, b_num: i128, b_den: i128) -> Ordering {
    (a_num * b_den).cmp(&(b_num * a_den))
}

fn map_items(snap: &Snapshot, rules: &Rules, items: &dyn ItemMap, order: &mut SalesOrder) {
    let amount = order.amount_text();
    let mut unmapped: Vec<String> = Vec::new();
    for line in &mut order.lines {
        match line.kind {
            LineKind::Shipping => line.erp_item = Some(rules.shipping_item.clone()),
            LineKind::Handling => line.erp_item = Some(rules.handling_item.clone()),
            LineKind::Item => {
                let sku = line.sku.as_deref().unwrap_or_default();
                line.erp_item = match items.erp_item(sku) {
                    Some(item) => Some(item.to_owned()),
                    None if rules.erp_item_equals_sku => Some(sku.to_owned()),
                    None => {
                        if !unmapped.iter().any(|s| s == sku) {
                            unmapped.push(sku.to_owned());
                        }
                        None
                    }
                };
            }
        }
    }
    for sku in unmapped {
        let what = order
            .lines
            .iter()
            .find(|l| l.sku.as_deref() == Some(sku.as_str()))
            .map(|l| l.description.clone())
            .unwrap_or_default();
        let what = if what.is_empty() || what == sku {
            String::new()
        } else {
            format!(" ({what})")
        };
        order.problems.push(Problem {
            kind: ExceptionKind::UnmappedSku,
            key: format!("sku:{sku}"),
            message: format!(
                "{amount} not booked in the ERP: order {} is waiting because Centra SKU {sku}{what} \
                 has no ERP item. Add the SKU to the item mapping (ferry mapping import); the \
                 order is then posted automatically.",
                snap.number
            ),
            reason: format!("SKU {sku:?} is not in the SKU map"),
        });
    }
}

fn check_tax_codes(rules: &Rules, order: &mut SalesOrder) {
    if rules.tax_codes.is_empty() {
        return;
    }
    let amount = order.amount_text();
    let mut missing: Vec<String> = Vec::new();
    for line in &order.lines {
        let rate = line.tax_rate.to_string();
        if !rules.tax_codes.contains_key(&rate) && !missing.contains(&rate) {
            missing.push(rate);
        }
    }
    for rate in missing {
        order.problems.push(Problem {
            kind: ExceptionKind::UnmappedTaxRate,
            key: format!("tax:{rate}"),
            message: format!(
                "{amount} not booked in the ERP: order {} has lines taxed at {rate}%, which has \
                 no ERP tax code. Add the tax code for {rate}% to the brand's configuration; the \
                 order is then posted automatically.",
                order.order_number
            ),
            reason: format!("tax rate {rate} is not in tax_codes"),
        });
    }
}

fn party(snap: &Snapshot) -> Party {
    let addr = |a: &Option<crate::snapshot::Address>| {
        a.as_ref().map(|a| PostalAddress {
            company_name: a.company_name.clone().unwrap_or_default(),
            first_name: a.first_name.clone().unwrap_or_default(),
            last_name: a.last_name.clone().unwrap_or_default(),
            address1: a.address1.clone().unwrap_or_default(),
            address2: a.address2.clone().unwrap_or_default(),
            city: a.city.clone().unwrap_or_default(),
            state_or_province: a.state_or_province.clone().unwrap_or_default(),
            zip_code: a.zip_code.clone().unwrap_or_default(),
            country_code: a
                .country
                .as_ref()
                .and_then(|c| c.code.clone())
                .unwrap_or_default(),
            email: a.email.clone().unwrap_or_default(),
            phone_number: a.phone_number.clone().unwrap_or_default(),
            vat_number: a.vat_number.clone().unwrap_or_default(),
        })
    };
    let billing = addr(&snap.billing_address);
    let shipping = addr(&snap.shipping_address);
    let customer = snap.customer.clone().unwrap_or_default();
    let pick = |c: Option<String>, f: fn(&PostalAddress) -> &String| {
        c.filter(|s| !s.is_empty())
            .or_else(|| billing.as_ref().map(|b| f(b).clone()))
            .unwrap_or_default()
    };
    Party {
        centra_customer_id: customer.id,
        email: pick(customer.email, |a| &a.email),
        first_name: pick(customer.first_name, |a| &a.first_name),
        last_name: pick(customer.last_name, |a| &a.last_name),
        vat_number: billing
            .as_ref()
            .map(|b| b.vat_number.clone())
            .unwrap_or_default(),
        billing,
        shipping,
    }
}
