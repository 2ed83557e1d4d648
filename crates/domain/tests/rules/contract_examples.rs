//! The contract's public examples (tests/contracts/examples) must reproduce byte for byte.

use std::collections::HashMap;
use std::path::PathBuf;

use ferry_domain::rules::parse_mapping_csv;
use ferry_domain::{Rules, Snapshot, Summary, transform};

fn examples_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/contracts/examples")
}

fn run_example(name: &str) {
    let dir = examples_dir();
    let read = |suffix: &str| {
        std::fs::read(dir.join(format!("{name}{suffix}")))
            .unwrap_or_else(|e| panic!("reading {name}{suffix}: {e}"))
    };
    let snapshot = Snapshot::parse(&read(".json")).expect("example snapshot parses");
    let csv = String::from_utf8(read(".map.csv")).expect("utf-8 csv");
    let map: HashMap<String, String> = parse_mapping_csv(&csv)
        .expect("example csv parses")
        .into_iter()
        .collect();
    let order = transform(&snapshot, &Rules::default(), &map);
    let got = Summary::of(&order).to_pretty_json();
    let want = String::from_utf8(read(".summary.json")).expect("utf-8 summary");
    assert_eq!(got, want, "{name}: summary differs");
}

#[test]
fn example_01_sek_simple() {
    run_example("01-sek-simple");
}

#[test]
fn example_02_gbp_voucher_shipping() {
    run_example("02-gbp-voucher-shipping");
}

#[test]
fn example_03_usd_tax_added() {
    run_example("03-usd-tax-added");
}

/// A bundle as Centra documents it (the bundle line, then its components as lines of
/// their own) with a voucher: each component posted once, shares by largest remainder.
#[test]
fn example_04_sek_bundle_voucher() {
    run_example("04-sek-bundle-voucher");
}

/// The GBP contract example, transformed with no rules.
fn gbp_example() -> ferry_domain::SalesOrder {
    let dir = examples_dir();
    let snapshot =
        Snapshot::parse(&std::fs::read(dir.join("02-gbp-voucher-shipping.json")).unwrap()).unwrap();
    transform(
        &snapshot,
        &Rules::default(),
        &HashMap::<String, String>::new(),
    )
}

/// Fingerprints are stored in the ledger and compared with later versions of an order, so
/// their bytes are part of the data format: pinned for a contract example, and equal to
/// hashing each line's text as a separate update (how they were first computed).
#[test]
fn the_order_fingerprint_never_changes() {
    use sha2::{Digest, Sha256};
    let order = gbp_example();
    let mut h = Sha256::new();
    h.update(order.currency.as_bytes());
    for l in &order.lines {
        h.update(
            format!(
                "|{:?}:{:?}:{:?}:{:?}:{}:{}:{}:{}",
                l.kind, l.centra_line_id, l.sku, l.erp_item, l.quantity, l.tax_rate, l.gross, l.tax
            )
            .as_bytes(),
        );
    }
    assert_eq!(order.fingerprint(), hex::encode(&h.finalize()[..16]));
    assert_eq!(order.fingerprint(), "b86e58fae291211c2fe054c6a376538f");
}

/// A delivery address counts only when it is elsewhere than the billing address: an order
/// shipping to its buyer keeps its pinned fingerprint whatever case or spacing Centra
/// sends, and sending it to someone else is a change the ERP must get (ADR 0039).
#[test]
fn a_delivery_elsewhere_changes_the_fingerprint_and_only_that() {
    let order = gbp_example();
    let pinned = "b86e58fae291211c2fe054c6a376538f";
    assert!(
        order.party.shipping.is_some(),
        "the example ships to its buyer"
    );
    assert_eq!(order.party.delivery_elsewhere(), None);
    let mut shouted = order.clone();
    if let Some(s) = shouted.party.shipping.as_mut() {
        s.city = format!("  {} ", s.city.to_uppercase());
    }
    assert_eq!(shouted.party.delivery_elsewhere(), None);
    assert_eq!(shouted.fingerprint(), pinned);

    let mut gift = order.clone();
    if let Some(s) = gift.party.shipping.as_mut() {
        s.first_name = "Bo".into();
    }
    assert!(gift.party.delivery_elsewhere().is_some());
    assert_ne!(gift.fingerprint(), pinned);
    let mut moved = gift.clone();
    if let Some(s) = moved.party.shipping.as_mut() {
        s.city = "Lund".into();
    }
    assert_ne!(
        moved.fingerprint(),
        gift.fingerprint(),
        "a new place, a new change"
    );
}
