//! The order-to-cash transform: one Centra order snapshot → the ERP-bound sales order, with
//! exact money, vouchers and bundles allocated by largest remainder, tax per line, and the
//! exceptions that block it. The contract is `contracts/order-snapshot.md`.
//!
//! The four invariants, exact to the minor unit, for every snapshot that is not rejected:
//! 1. Σ lines.gross == grandTotal;
//! 2. Σ lines.tax == taxIncluded + taxAdded;
//! 3. voucher and bundle shares are within one unit of their exact proportions;
//! 4. each line's tax is within one unit of its exact share.

use rust_decimal::Decimal;
use serde::Serialize;

use crate::exception::{ExceptionKind, Owner};
use crate::money::Currency;
use crate::rules::{ItemMap, ReleasePolicy, Rules};
use crate::snapshot::Snapshot;

mod lines;
mod tax;

use lines::compute_lines;

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

/// Whether two addresses name the same recipient at the same place, whatever the case and
/// the spaces around each part: `[first name, last name, company, address1, address2, city,
/// zip code, state or province, country code]`.
pub fn same_address(a: [&str; 9], b: [&str; 9]) -> bool {
    a.iter()
        .zip(b.iter())
        .all(|(x, y)| x.trim().to_lowercase() == y.trim().to_lowercase())
}

impl Party {
    /// Where the goods go when not to the billing address (a gift, a work address): the
    /// shipping address, unless it is empty or the billing address itself.
    pub fn delivery_elsewhere(&self) -> Option<&PostalAddress> {
        let shipping = self.shipping.as_ref()?;
        if shipping.address1.trim().is_empty() && shipping.city.trim().is_empty() {
            return None;
        }
        let billing = self.billing.clone().unwrap_or_default();
        (!same_address(shipping.parts(), billing.parts())).then_some(shipping)
    }
}

impl PostalAddress {
    /// The parts [`same_address`] compares.
    pub fn parts(&self) -> [&str; 9] {
        [
            &self.first_name,
            &self.last_name,
            &self.company_name,
            &self.address1,
            &self.address2,
            &self.city,
            &self.zip_code,
            &self.state_or_province,
            &self.country_code,
        ]
    }
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
    /// A hash of what the ERP would hold (currency, lines and their money, and where the
    /// goods go when elsewhere than the billing address), so that a newer snapshot that
    /// changes none of it (a status change) is recognised as such.
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
        // Where the goods go, only when not to the billing address: an order shipping to
        // its buyer hashes as it always did, and a corrected delivery address is a change
        // the ERP must get (ADR 0039).
        if let Some(delivery) = self.party.delivery_elsewhere() {
            text.push_str("|deliver:");
            let parts = delivery.parts().map(|p| p.trim().to_lowercase());
            text.push_str(&parts.join("\u{1f}"));
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

pub(crate) fn invalid(number: i64, detail: &str) -> Problem {
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

pub(crate) fn inconsistent(number: i64, amount: &str, detail: &str) -> Problem {
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
