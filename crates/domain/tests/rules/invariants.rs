//! The contract's four invariants, for every consistent snapshot: generated orders over all
//! markets (tax-inclusive and tax-added, two- and zero-decimal currencies), several rates,
//! vouchers, bundles, cancellations and rounding traps, with Centra's own arithmetic (tax
//! rounded once at order level on exact voucher shares).

use std::collections::HashMap;

use ferry_domain::{ExceptionKind, LineKind, Release, Rules, Snapshot, transform};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use rust_decimal::prelude::*;

#[derive(Debug, Clone)]
struct Market {
    currency: &'static str,
    exponent: u32,
    tax_added: bool,
    rates: &'static [&'static str],
}

const MARKETS: &[Market] = &[
    Market {
        currency: "SEK",
        exponent: 2,
        tax_added: false,
        rates: &["25", "12", "6"],
    },
    Market {
        currency: "GBP",
        exponent: 2,
        tax_added: false,
        rates: &["20", "5", "0"],
    },
    Market {
        currency: "EUR",
        exponent: 2,
        tax_added: false,
        rates: &["19", "7"],
    },
    Market {
        currency: "EUR",
        exponent: 2,
        tax_added: false,
        rates: &["20", "5.5"],
    },
    Market {
        currency: "USD",
        exponent: 2,
        tax_added: true,
        rates: &["8.875", "4", "6.25"],
    },
    Market {
        currency: "JPY",
        exponent: 0,
        tax_added: false,
        rates: &["10", "8"],
    },
];

#[derive(Debug, Clone)]
struct GenLine {
    unit_minor: i64,
    quantity: i64,
    rate: usize,
    /// (component list price minor, quantity per bundle)
    bundle: Vec<(i64, i64)>,
}

#[derive(Debug, Clone)]
struct GenOrder {
    market: usize,
    lines: Vec<GenLine>,
    /// Vouchers as per-mille of the item value (each ≤ 300‰).
    vouchers: Vec<i64>,
    shipping_minor: i64,
    handling_minor: i64,
}

fn price() -> impl Strategy<Value = i64> {
    // Rounding traps next to ordinary prices: 99.99 at 20%, 33.33 × 3, 0.01, 249.50.
    prop_oneof![
        Just(9999_i64),
        Just(3333),
        Just(1),
        Just(24950),
        Just(129995),
        1_i64..300_000
    ]
}

fn line() -> impl Strategy<Value = GenLine> {
    (
        price(),
        prop_oneof![3 => 1_i64..4, 1 => Just(0)],
        0_usize..3,
        prop_oneof![4 => Just(vec![]), 1 => prop::collection::vec((price(), 1_i64..3), 2..4)],
    )
        .prop_map(|(unit_minor, quantity, rate, bundle)| GenLine {
            unit_minor,
            quantity,
            rate,
            bundle,
        })
}

fn order() -> impl Strategy<Value = GenOrder> {
    (
        0..MARKETS.len(),
        prop::collection::vec(line(), 1..6),
        prop::collection::vec(1_i64..300, 0..3),
        prop_oneof![Just(0_i64), Just(4900), Just(495), 1_i64..5000],
        prop_oneof![3 => Just(0_i64), 1 => 1_i64..1000],
    )
        .prop_map(
            |(market, lines, vouchers, shipping_minor, handling_minor)| GenOrder {
                market,
                lines,
                vouchers,
                shipping_minor,
                handling_minor,
            },
        )
}

fn dec(minor: i64, exp: u32) -> Decimal {
    Decimal::new(minor, exp)
}

/// The JSON number text of a decimal (placeholders are swapped for bare numbers).
fn num(d: Decimal) -> String {
    format!("__NUM__{}", d.normalize())
}

struct Built {
    json: String,
    grand_total: i64,
    tax_included: i64,
    tax_added: i64,
    /// Per posted Centra line: (line id, value before vouchers in minor units, is bundle).
    values: Vec<(i64, i64)>,
    voucher_total: i64,
    voucher_count: usize,
}

/// Builds a snapshot as Centra computes it.
fn build(g: &GenOrder) -> Option<Built> {
    let m = &MARKETS[g.market];
    let exp = m.exponent;
    let scale = 10_i64.pow(2 - exp);
    let rate = |i: usize| Decimal::from_str(m.rates[i % m.rates.len()]).unwrap();
    let mut lines = Vec::new();
    let mut values = Vec::new();
    let mut items_total: i64 = 0;
    for (i, l) in g.lines.iter().enumerate() {
        let id = 100 + i as i64 * 3;
        let unit = (l.unit_minor / scale).max(1);
        let value = unit * l.quantity;
        items_total += value;
        let json = serde_json::json!({
            "__typename": if l.bundle.is_empty() { "ProductOrderLine" } else { "BundleOrderLine" },
            "id": id,
            "taxPercent": num(rate(l.rate)),
            "productSize": {"SKU": format!("SKU-{i}")},
            "unitOriginalPrice": {"value": num(dec(unit, exp))},
            "unitPrice": {"value": num(dec(unit, exp))},
            "quantity": l.quantity,
            "cancelledQuantity": if l.quantity == 0 { 1 } else { 0 },
            "lineValue": {"value": num(dec(value, exp))},
        });
        let mut items = Vec::new();
        for (c, (p, q)) in l.bundle.iter().enumerate() {
            // As Centra documents bundles: each component a line of its own after the bundle.
            items.push(serde_json::json!({
                "__typename": "BundleItemOrderLine",
                "id": 10_000 + id * 10 + c as i64,
                "taxPercent": num(rate(l.rate)),
                "productSize": {"SKU": format!("SKU-{i}-{c}")},
                "unitOriginalPrice": {"value": num(dec((p / scale).max(1), exp))},
                "unitPrice": {"value": num(dec(0, exp))},
                "quantity": q * l.quantity,
                "cancelledQuantity": if l.quantity == 0 { *q } else { 0 },
                "lineValue": {"value": num(dec(0, exp))},
            }));
        }
        if l.quantity > 0 {
            values.push((id, value));
        }
        lines.push(json);
        lines.extend(items);
    }
    if values.is_empty() {
        return None;
    }
    let vouchers: Vec<i64> = g
        .vouchers
        .iter()
        .map(|pm| -(items_total * pm / 1000))
        .filter(|v| *v < 0)
        .collect();
    let voucher_total: i64 = vouchers.iter().sum();
    let charges = (g.shipping_minor + g.handling_minor) / scale;
    let shipping = g.shipping_minor / scale;
    let handling = charges - shipping;
    // Centra: tax on exact voucher shares, rounded once at order level.
    let max_rate = g
        .lines
        .iter()
        .filter(|l| l.quantity > 0)
        .map(|l| rate(l.rate))
        .max()
        .unwrap_or_default();
    let hundred = Decimal::ONE_HUNDRED;
    let total_dec = dec(items_total, exp);
    let vouchers_dec = dec(voucher_total, exp);
    let mut exact = Decimal::ZERO;
    for l in g.lines.iter().filter(|l| l.quantity > 0) {
        let unit = (l.unit_minor / scale).max(1);
        let v = dec(unit * l.quantity, exp);
        let after = v + vouchers_dec * v / total_dec;
        let r = rate(l.rate);
        exact += if m.tax_added {
            after * r / hundred
        } else {
            after * r / (hundred + r)
        };
    }
    let charges_dec = dec(charges, exp);
    exact += if m.tax_added {
        charges_dec * max_rate / hundred
    } else {
        charges_dec * max_rate / (hundred + max_rate)
    };
    let tax = exact.round_dp_with_strategy(exp, RoundingStrategy::MidpointAwayFromZero);
    let tax_minor = (tax * Decimal::from(10_i64.pow(exp))).to_i64().unwrap();
    let (tax_included, tax_added) = if m.tax_added {
        (0, tax_minor)
    } else {
        (tax_minor, 0)
    };
    let grand_total = items_total + charges + voucher_total + tax_added;
    let snapshot = serde_json::json!({
        "id": "gen", "number": 1, "status": "CONFIRMED", "isOnHold": false,
        "grandTotal": {"value": num(dec(grand_total, exp)), "currency": {"code": m.currency}},
        "totals": {"shipping": {"value": num(dec(shipping, exp))}, "handling": {"value": num(dec(handling, exp))},
                   "taxAdded": {"value": num(dec(tax_added, exp))}, "taxDeducted": {"value": 0},
                   "taxIncluded": {"value": num(dec(tax_included, exp))}},
        "discountsApplied": vouchers.iter().map(|v| serde_json::json!({"value": {"value": num(dec(*v, exp))}})).collect::<Vec<_>>(),
        "lines": lines,
    });
    let text = serde_json::to_string(&snapshot).unwrap();
    let json = regex_lite_replace(&text);
    Some(Built {
        json,
        grand_total,
        tax_included,
        tax_added,
        values,
        voucher_total,
        voucher_count: vouchers.len(),
    })
}

/// Replaces `"__NUM__123.45"` with `123.45`.
fn regex_lite_replace(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("\"__NUM__") {
        out.push_str(&rest[..i]);
        let tail = &rest[i + 8..];
        let end = tail.find('"').unwrap();
        out.push_str(&tail[..end]);
        rest = &tail[end + 1..];
    }
    out.push_str(rest);
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]

    #[test]
    fn the_four_invariants_hold(g in order()) {
        let Some(b) = build(&g) else { return Ok(()) };
        let snapshot = Snapshot::parse(b.json.as_bytes()).expect("generated snapshot parses");
        let rules = Rules { erp_item_equals_sku: true, ..Rules::default() };
        let o = transform(&snapshot, &rules, &HashMap::<String, String>::new());
        let market = &MARKETS[g.market];
        let single_rate = g.lines.iter().filter(|l| l.quantity > 0).map(|l| l.rate % market.rates.len()).collect::<std::collections::BTreeSet<_>>().len() == 1;
        if o.release != Release::Ready {
            // Only mixed rates can round Centra's single order-level figure outside what the
            // lines allow; then the order is inconsistent, never silently mis-posted.
            prop_assert!(!single_rate, "single-rate order not ready: {:?}\n{}", o.problems, b.json);
            prop_assert_eq!(o.problems.iter().map(|p| p.kind).collect::<Vec<_>>(), vec![ExceptionKind::SnapshotInconsistent]);
            return Ok(());
        }
        // 1. What the customer paid.
        prop_assert_eq!(o.lines.iter().map(|l| l.gross).sum::<i64>(), b.grand_total);
        // 2. Centra's tax figure.
        prop_assert_eq!(o.lines.iter().map(|l| l.tax).sum::<i64>(), b.tax_included + b.tax_added);
        for l in &o.lines {
            prop_assert_eq!(l.net, l.gross - l.tax);
        }
        // 3. Vouchers: each Centra line's share within one unit per voucher of its exact share.
        let items_value: i64 = b.values.iter().map(|(_, v)| *v).sum();
        for (id, value) in &b.values {
            // A bundle's share is what its components carry together.
            let posted: i64 = o.lines.iter().filter(|l| l.centra_line_id == Some(*id) || l.bundle_line_id == Some(*id)).map(|l| if market.tax_added { l.net } else { l.gross }).sum();
            let share = value - posted;
            let exact = -(b.voucher_total as f64) * (*value as f64) / (items_value as f64);
            prop_assert!((share as f64 - exact).abs() <= b.voucher_count as f64 + 1e-9, "line {} share {} exact {}", id, share, exact);
        }
        //    Bundles: each component within one unit of its exact share of the bundle.
        for (i, l) in g.lines.iter().enumerate().filter(|(_, l)| !l.bundle.is_empty() && l.quantity > 0) {
            let id = 100 + i as i64 * 3;
            let parts: Vec<i64> = o.lines.iter().filter(|p| p.bundle_line_id == Some(id)).map(|p| if market.tax_added { p.net } else { p.gross }).collect();
            let whole: i64 = parts.iter().sum();
            let scale = 10_i64.pow(2 - market.exponent);
            let weights: Vec<i64> = l.bundle.iter().map(|(p, q)| (p / scale).max(1) * q).collect();
            let w: i64 = weights.iter().sum();
            for (part, weight) in parts.iter().zip(&weights) {
                let exact = whole as f64 * *weight as f64 / w as f64;
                prop_assert!((*part as f64 - exact).abs() < 1.0 + 1e-9, "component {} exact {}", part, exact);
            }
        }
        // 4. Each line's tax within one unit of its exact share.
        let net_total: i64 = o.lines.iter().map(|l| l.net).sum();
        for l in &o.lines {
            let exact = if market.tax_added {
                b.tax_added as f64 * l.net as f64 / net_total.max(1) as f64
            } else {
                let r = l.tax_rate.to_f64().unwrap();
                l.gross as f64 * r / (100.0 + r)
            };
            prop_assert!((l.tax as f64 - exact).abs() <= 1.0 + 1e-9, "{:?} tax {} exact {}", l.kind, l.tax, exact);
        }
        // Charges are their own lines, never mixed into items.
        let charges: i64 = o.lines.iter().filter(|l| l.kind != LineKind::Item).map(|l| l.gross).sum();
        prop_assert!(charges >= 0);
    }
}

#[test]
fn mixed_rate_inconsistency_is_rare() {
    // With Centra rounding once at order level, a mixed-rate order can in principle carry a
    // VAT figure no per-line split matches; it must stay a rare edge, not the norm.
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let (mut total, mut rejected) = (0, 0);
    for _ in 0..5000 {
        let g = order().new_tree(&mut runner).unwrap().current();
        let Some(b) = build(&g) else { continue };
        let snapshot = Snapshot::parse(b.json.as_bytes()).unwrap();
        let o = transform(
            &snapshot,
            &Rules {
                erp_item_equals_sku: true,
                ..Rules::default()
            },
            &HashMap::<String, String>::new(),
        );
        total += 1;
        if o.release != Release::Ready {
            rejected += 1;
        }
    }
    assert!(
        rejected * 100 < total,
        "{rejected} of {total} generated orders rejected"
    );
}
