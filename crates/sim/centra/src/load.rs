//! Loading a snapshot (the contract query's answer for one order) into the simulator as an
//! order, so tests and demos can replay a real order from a brand's Centra.
//!
//! The simulator derives an order's figures from its lines, as Centra does. A loaded order is
//! therefore accepted only when the simulator's arithmetic reproduces the snapshot's own
//! totals; otherwise the load is refused with both figures, because an order whose answer
//! differs from what was loaded would test the wrong thing. Market metadata (ids, pricelist,
//! shipping option, conversion rate) is the simulator's market for the snapshot's country.

use ferry_domain::snapshot::{self, Money, Snapshot};
use rust_decimal::Decimal;

use crate::generate;
use crate::model::*;

/// Why a snapshot cannot become a simulator order.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum LoadError {
    #[error("not an order snapshot: {0}")]
    NotASnapshot(String),
    #[error("the snapshot has no country code, so its market is unknown")]
    NoCountry,
    #[error("no simulator market for country {0}")]
    UnknownMarket(String),
    #[error("the snapshot's currency {found} is not the {country} market's {expected}")]
    WrongCurrency {
        country: String,
        expected: String,
        found: String,
    },
    #[error("line {index} lacks {field}")]
    IncompleteLine { index: usize, field: &'static str },
    #[error(
        "line {index} is a bundle item without a bundle line before it, or a bundle line \
         without item lines, or an item whose units are not a whole number per bundle"
    )]
    BundleShape { index: usize },
    #[error(
        "the simulator computes {field} = {computed} but the snapshot says {stated}; \
         only self-consistent snapshots can be loaded"
    )]
    Inconsistent {
        field: &'static str,
        computed: Decimal,
        stated: Decimal,
    },
}

/// Parses snapshot JSON (the order object or a whole answer with one order) into an order.
pub fn order_from_json(bytes: &[u8], markets: &[Market]) -> Result<Order, LoadError> {
    let snapshot = Snapshot::parse(bytes).map_err(|e| LoadError::NotASnapshot(e.to_string()))?;
    order_from_snapshot(&snapshot, markets)
}

/// Builds the simulator's order from a parsed snapshot and checks its totals.
pub fn order_from_snapshot(s: &Snapshot, markets: &[Market]) -> Result<Order, LoadError> {
    let country = s
        .country
        .as_ref()
        .and_then(|c| c.code.clone())
        .ok_or(LoadError::NoCountry)?;
    let market = markets
        .iter()
        .find(|m| m.country_code == country)
        .cloned()
        .ok_or_else(|| LoadError::UnknownMarket(country.clone()))?;
    if let Some(found) = s.currency_code()
        && found != market.currency
    {
        return Err(LoadError::WrongCurrency {
            country,
            expected: market.currency.to_owned(),
            found: found.to_owned(),
        });
    }
    let lines = lines(&s.lines)?;
    let totals = s.totals.clone().unwrap_or_default();
    let vouchers = s
        .discounts_applied
        .iter()
        .map(|d| {
            let info = d.discount.clone().unwrap_or_default();
            Voucher {
                name: info.name.unwrap_or_default(),
                code: info.code.unwrap_or_default(),
                kind: discount_kind(info.kind.as_deref()),
                value: Money::get(&d.value).unwrap_or_default(),
            }
        })
        .collect();
    let (payment_uri, payment_plugin) = payment(s.payment_method.as_ref());
    let order_date = s.order_date.clone().unwrap_or_default();
    let order = Order {
        id: s.id.clone().unwrap_or_else(|| format!("{:032x}", s.number)),
        number: s.number,
        status: status(s.status.as_deref()),
        is_on_hold: s.is_on_hold.unwrap_or(false),
        is_locked: false,
        order_date,
        shipping: Money::get(&totals.shipping).unwrap_or_default(),
        handling: Money::get(&totals.handling).unwrap_or_default(),
        vouchers,
        payment_uri,
        payment_plugin,
        payment_history: s
            .payment_history
            .iter()
            .map(|p| PaymentEntry {
                id: p
                    .id
                    .as_ref()
                    .and_then(serde_json::Value::as_i64)
                    .unwrap_or(0),
                created_at: p.created_at.clone().unwrap_or_default(),
                status: known(p.status.as_deref(), &["SUCCESS", "FAILED", "PENDING"]),
                entry_type: known(
                    p.entry_type.as_deref(),
                    &["AUTH", "CAPTURE", "REFUND", "CANCEL"],
                ),
                external_reference: p.external_reference.clone().unwrap_or_default(),
                value: p
                    .value
                    .as_ref()
                    .and_then(|v| v.value)
                    .map(|d| d.0)
                    .unwrap_or_default(),
            })
            .collect(),
        customer: customer(s.customer.as_ref()),
        shipping_address: address(s.shipping_address.as_ref()),
        billing_address: address(s.billing_address.as_ref()),
        market,
        lines,
        version: 1,
        updated_at: chrono::Utc::now(),
    };
    check(&order, s)?;
    Ok(order)
}

fn check(order: &Order, s: &Snapshot) -> Result<(), LoadError> {
    let f = order.figures();
    let totals = s.totals.clone().unwrap_or_default();
    let stated = [
        (
            "grandTotal",
            f.grand_total,
            s.grand_total.as_ref().and_then(|g| g.value).map(|d| d.0),
        ),
        (
            "grandTotalExTax",
            f.grand_total_ex_tax,
            Money::get(&s.grand_total_ex_tax),
        ),
        (
            "totals.taxIncluded",
            f.tax_included,
            Money::get(&totals.tax_included),
        ),
        (
            "totals.taxAdded",
            f.tax_added,
            Money::get(&totals.tax_added),
        ),
    ];
    for (field, computed, stated) in stated {
        if let Some(stated) = stated
            && stated != computed
        {
            return Err(LoadError::Inconsistent {
                field,
                computed,
                stated,
            });
        }
    }
    Ok(())
}

/// The snapshot's lines, each bundle item line folded into the bundle line before it (as
/// `ferry_domain` reads them).
fn lines(snapshot_lines: &[snapshot::Line]) -> Result<Vec<OrderLine>, LoadError> {
    let mut lines: Vec<OrderLine> = Vec::with_capacity(snapshot_lines.len());
    let mut open_bundle: Option<usize> = None;
    for (index, l) in snapshot_lines.iter().enumerate() {
        if !l.is_bundle_item() {
            if let Some(at) = open_bundle.take()
                && lines.last().is_some_and(|b| b.bundle_items.is_empty())
            {
                return Err(LoadError::BundleShape { index: at });
            }
            lines.push(line(index, l)?);
            open_bundle = l.is_bundle().then_some(index);
            continue;
        }
        let bundle = lines
            .last_mut()
            .filter(|_| open_bundle.is_some())
            .ok_or(LoadError::BundleShape { index })?;
        let item = line(index, l)?;
        let bundles = bundle.quantity + bundle.cancelled_quantity;
        let units = item.quantity + item.cancelled_quantity;
        if bundles <= 0 || units % bundles != 0 {
            return Err(LoadError::BundleShape { index });
        }
        bundle.bundle_items.push(BundleItem {
            id: item.id,
            name: item.product_name,
            sku: item.sku,
            ean: item.ean,
            quantity: units / bundles,
            unit_original_price: item.unit_original_price,
        });
    }
    if let Some(at) = open_bundle
        && lines.last().is_some_and(|b| b.bundle_items.is_empty())
    {
        return Err(LoadError::BundleShape { index: at });
    }
    Ok(lines)
}

fn line(index: usize, l: &snapshot::Line) -> Result<OrderLine, LoadError> {
    let missing = |field| LoadError::IncompleteLine { index, field };
    let size = l.product_size.clone().unwrap_or_default();
    let product = l.product.clone().unwrap_or_default();
    let variant = l.product_variant.clone().unwrap_or_default();
    let unit_price = Money::get(&l.unit_price).ok_or(missing("unitPrice"))?;
    Ok(OrderLine {
        id: l.id.ok_or(missing("id"))?,
        product_id: product
            .id
            .as_ref()
            .and_then(serde_json::Value::as_i64)
            .unwrap_or(0),
        product_name: product.name.unwrap_or_default(),
        variant_id: variant
            .id
            .as_ref()
            .and_then(serde_json::Value::as_i64)
            .unwrap_or(0),
        variant_name: variant.name.unwrap_or_default(),
        variant_number: variant.variant_number.unwrap_or_default(),
        sku: size.sku.ok_or(missing("productSize.SKU"))?,
        ean: size.ean.unwrap_or_default(),
        size_number: size.size_number.unwrap_or_default(),
        size_description: size.description.unwrap_or_default(),
        preorder: size.preorder.unwrap_or(false),
        tax_percent: l.tax_percent.ok_or(missing("taxPercent"))?.0,
        unit_original_price: Money::get(&l.unit_original_price).unwrap_or(unit_price),
        unit_price,
        discount_percent: l.discount_percent.map(|d| d.0).unwrap_or_default(),
        quantity: l.quantity.ok_or(missing("quantity"))?,
        cancelled_quantity: l.cancelled_quantity.unwrap_or(0),
        bundle_items: Vec::new(),
    })
}

fn status(text: Option<&str>) -> OrderStatus {
    match text {
        Some("PENDING") => OrderStatus::Pending,
        Some("PROCESSING") => OrderStatus::Processing,
        Some("SHIPPED") => OrderStatus::Shipped,
        Some("ARCHIVED") => OrderStatus::Archived,
        Some("CANCELLED") => OrderStatus::Cancelled,
        _ => OrderStatus::Confirmed,
    }
}

/// The simulator keeps enumerated texts as `'static`; unknown values become the first.
fn known(text: Option<&str>, values: &[&'static str]) -> &'static str {
    values
        .iter()
        .copied()
        .find(|v| Some(*v) == text)
        .unwrap_or(values[0])
}

fn discount_kind(text: Option<&str>) -> &'static str {
    known(text, &["CODE", "AUTOMATIC", "URL", "CREDIT"])
}

fn payment(method: Option<&snapshot::PaymentMethod>) -> (&'static str, &'static str) {
    let uri = method.and_then(|m| m.uri.as_deref());
    generate::PAYMENTS
        .iter()
        .copied()
        .find(|(u, _)| Some(*u) == uri)
        .unwrap_or(generate::PAYMENTS[0])
}

fn customer(c: Option<&snapshot::Customer>) -> Customer {
    let c = c.cloned().unwrap_or_default();
    Customer {
        id: c.id.unwrap_or(0),
        email: c.email.unwrap_or_default(),
        first_name: c.first_name.unwrap_or_default(),
        last_name: c.last_name.unwrap_or_default(),
    }
}

fn address(a: Option<&snapshot::Address>) -> Address {
    let a = a.cloned().unwrap_or_default();
    let country = a.country.unwrap_or_default();
    Address {
        company_name: a.company_name,
        first_name: a.first_name.unwrap_or_default(),
        last_name: a.last_name.unwrap_or_default(),
        address1: a.address1.unwrap_or_default(),
        address2: a.address2,
        city: a.city.unwrap_or_default(),
        state_or_province: a.state_or_province,
        zip_code: a.zip_code.unwrap_or_default(),
        country_name: country.name.unwrap_or_default(),
        country_code: country.code.unwrap_or_default(),
        email: a.email.unwrap_or_default(),
        phone_number: a.phone_number.unwrap_or_default(),
        vat_number: a.vat_number,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example(name: &str) -> Vec<u8> {
        let path = format!(
            "{}/../../../tests/contracts/examples/{name}.json",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    #[test]
    fn the_public_examples_load_with_their_own_totals() {
        for name in [
            "01-sek-simple",
            "02-gbp-voucher-shipping",
            "03-usd-tax-added",
            "04-sek-bundle-voucher",
        ] {
            let order = order_from_json(&example(name), &generate::markets())
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(!order.lines.is_empty(), "{name}");
        }
    }

    #[test]
    fn a_snapshot_whose_totals_do_not_add_up_is_refused_with_both_figures() {
        let text = String::from_utf8(example("02-gbp-voucher-shipping")).unwrap_or_default();
        let tampered = text.replacen("\"value\": 284.84", "\"value\": 284.85", 1);
        assert_eq!(
            order_from_json(tampered.as_bytes(), &generate::markets()),
            Err(LoadError::Inconsistent {
                field: "grandTotal",
                computed: Decimal::new(28484, 2),
                stated: Decimal::new(28485, 2),
            })
        );
    }

    #[test]
    fn a_foreign_currency_or_country_is_refused() {
        let text = String::from_utf8(example("02-gbp-voucher-shipping")).unwrap_or_default();
        let eur = text.replace("\"code\": \"GBP\"", "\"code\": \"EUR\"");
        assert!(matches!(
            order_from_json(eur.as_bytes(), &generate::markets()),
            Err(LoadError::WrongCurrency { .. })
        ));
        let nowhere = text.replace("\"code\": \"GB\"", "\"code\": \"XX\"");
        assert_eq!(
            order_from_json(nowhere.as_bytes(), &generate::markets()),
            Err(LoadError::UnknownMarket("XX".into()))
        );
        assert!(matches!(
            order_from_json(b"{\"lines\": []}", &generate::markets()),
            Err(LoadError::NotASnapshot(_))
        ));
    }
}
