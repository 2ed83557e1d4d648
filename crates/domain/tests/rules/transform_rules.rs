//! Every exception kind and release decision of the transform, on small hand-made snapshots.

use std::collections::HashMap;

use ferry_domain::rules::ReleasePolicy;
use ferry_domain::{ExceptionKind, Owner, Release, Rules, Snapshot, transform};
use serde_json::{Value, json};

/// A consistent SEK order: two lines at 25%, shipping 49.
fn order() -> Value {
    json!({
        "id": "abc", "number": 1001, "status": "CONFIRMED", "isOnHold": false,
        "grandTotal": {"value": 1847.95, "currency": {"code": "SEK"}},
        "totals": {"shipping": {"value": 49}, "handling": {"value": 0}, "taxAdded": {"value": 0},
                   "taxDeducted": {"value": 0}, "taxIncluded": {"value": 369.59}},
        "discountsApplied": [],
        "paymentHistory": [{"status": "SUCCESS", "entryType": "AUTH", "value": {"value": 1847.95}}],
        "lines": [
            {"__typename": "ProductOrderLine", "id": 1, "taxPercent": 25,
             "product": {"name": "Basic Jacket"}, "productSize": {"SKU": "JKT-BLK-M", "description": "M"},
             "quantity": 1, "cancelledQuantity": 0, "lineValue": {"value": 1299.95}},
            {"__typename": "ProductOrderLine", "id": 2, "taxPercent": 25,
             "productSize": {"SKU": "TEE-WHT-L"},
             "quantity": 2, "cancelledQuantity": 0, "lineValue": {"value": 499}}
        ]
    })
}

fn map() -> HashMap<String, String> {
    [("JKT-BLK-M", "000790"), ("TEE-WHT-L", "004840")]
        .into_iter()
        .map(|(a, b)| (a.to_owned(), b.to_owned()))
        .collect()
}

fn run(v: &Value, rules: &Rules, items: &HashMap<String, String>) -> ferry_domain::SalesOrder {
    let snapshot = Snapshot::parse(v.to_string().as_bytes()).expect("parses");
    transform(&snapshot, rules, items)
}

fn kinds(order: &ferry_domain::SalesOrder) -> Vec<ExceptionKind> {
    order.problems.iter().map(|p| p.kind).collect()
}

#[test]
fn a_consistent_confirmed_order_is_ready() {
    let o = run(&order(), &Rules::default(), &map());
    assert_eq!(o.release, Release::Ready);
    assert!(o.problems.is_empty());
    assert_eq!(o.totals.gross, 184795);
    assert_eq!(o.totals.tax, 36959);
}

#[test]
fn unmapped_sku_names_the_sku_the_product_and_the_money() {
    let mut items = map();
    items.remove("JKT-BLK-M");
    let o = run(&order(), &Rules::default(), &items);
    assert_eq!(o.release, Release::Rejected);
    assert_eq!(kinds(&o), vec![ExceptionKind::UnmappedSku]);
    let p = &o.problems[0];
    assert_eq!(p.owner(), Owner::Operations);
    assert!(p.message.contains("JKT-BLK-M"), "{}", p.message);
    assert!(p.message.contains("Basic Jacket"), "{}", p.message);
    assert!(p.message.contains("1,847.95 SEK"), "{}", p.message);
    assert!(p.message.contains("order 1001"), "{}", p.message);
    // The same order with "ERP item = Centra SKU" posts the SKU itself.
    let rules = Rules {
        erp_item_equals_sku: true,
        ..Rules::default()
    };
    let o = run(&order(), &rules, &items);
    assert_eq!(o.release, Release::Ready);
    assert_eq!(o.lines[0].erp_item.as_deref(), Some("JKT-BLK-M"));
}

#[test]
fn a_sku_missing_on_two_lines_is_one_exception() {
    let mut v = order();
    v["lines"][1]["productSize"]["SKU"] = json!("JKT-BLK-M");
    let o = run(&v, &Rules::default(), &HashMap::new());
    assert_eq!(kinds(&o), vec![ExceptionKind::UnmappedSku]);
}

#[test]
fn unknown_and_unaccepted_currencies_are_unmapped_currency() {
    let mut v = order();
    v["grandTotal"]["currency"]["code"] = json!("XTS");
    let o = run(&v, &Rules::default(), &map());
    assert_eq!(kinds(&o), vec![ExceptionKind::UnmappedCurrency]);
    assert_eq!(o.problems[0].owner(), Owner::Finance);
    assert!(o.problems[0].message.contains("XTS"));

    let rules = Rules {
        accepted_currencies: vec!["EUR".into()],
        ..Rules::default()
    };
    let o = run(&order(), &rules, &map());
    assert_eq!(kinds(&o), vec![ExceptionKind::UnmappedCurrency]);
    assert!(o.problems[0].message.contains("accepted currencies"));
}

#[test]
fn a_rate_without_a_tax_code_is_unmapped_tax_rate() {
    let mut rules = Rules::default();
    rules.tax_codes.insert("12".into(), "VAT12".into());
    let o = run(&order(), &rules, &map());
    assert_eq!(kinds(&o), vec![ExceptionKind::UnmappedTaxRate]);
    assert!(o.problems[0].message.contains("25%"));
    rules.tax_codes.insert("25".into(), "VAT25".into());
    assert_eq!(run(&order(), &rules, &map()).release, Release::Ready);
}

#[test]
fn totals_that_do_not_add_up_are_snapshot_inconsistent() {
    let mut v = order();
    v["grandTotal"]["value"] = json!(1847.96);
    let o = run(&v, &Rules::default(), &map());
    assert_eq!(kinds(&o), vec![ExceptionKind::SnapshotInconsistent]);
    assert_eq!(o.problems[0].owner(), Owner::Finance);

    // A VAT figure that cannot be split over the lines within a cent each.
    let mut v = order();
    v["totals"]["taxIncluded"]["value"] = json!(380.00);
    v["grandTotal"]["value"] = json!(1847.95);
    let o = run(&v, &Rules::default(), &map());
    assert_eq!(kinds(&o), vec![ExceptionKind::SnapshotInconsistent]);

    // A fully cancelled line that still carries value.
    let mut v = order();
    v["lines"][1]["quantity"] = json!(0);
    let o = run(&v, &Rules::default(), &map());
    assert_eq!(kinds(&o), vec![ExceptionKind::SnapshotInconsistent]);
}

#[test]
fn readable_but_incomplete_snapshots_are_invalid() {
    for (path, value) in [
        ("/grandTotal/currency", Value::Null),
        ("/status", json!("SOMETHING")),
        ("/lines/0/taxPercent", Value::Null),
        ("/lines/0/productSize", Value::Null),
        ("/lines/0/quantity", json!(-1)),
    ] {
        let mut v = order();
        *v.pointer_mut(path).expect(path) = value;
        let o = run(&v, &Rules::default(), &map());
        assert_eq!(kinds(&o), vec![ExceptionKind::InvalidSnapshot], "{path}");
        assert_eq!(o.release, Release::Rejected);
        assert_eq!(o.problems[0].owner(), Owner::Engineering);
    }
    // Money with more decimals than the currency has.
    let mut v = order();
    v["lines"][1]["lineValue"]["value"] = json!(499.001);
    let o = run(&v, &Rules::default(), &map());
    assert_eq!(kinds(&o), vec![ExceptionKind::InvalidSnapshot]);
}

#[test]
fn holds_pending_and_cancellations() {
    let mut v = order();
    v["isOnHold"] = json!(true);
    assert_eq!(run(&v, &Rules::default(), &map()).release, Release::Held);

    let mut v = order();
    v["status"] = json!("PENDING");
    assert_eq!(run(&v, &Rules::default(), &map()).release, Release::Held);
    let paid = Rules {
        release: ReleasePolicy::OnPaymentAuthorisation,
        ..Rules::default()
    };
    assert_eq!(
        run(&v, &paid, &map()).release,
        Release::Ready,
        "authorised payment releases a PENDING order"
    );
    v["paymentHistory"] = json!([]);
    assert_eq!(run(&v, &paid, &map()).release, Release::Held);

    let mut v = order();
    v["status"] = json!("CANCELLED");
    let o = run(&v, &Rules::default(), &HashMap::new());
    assert_eq!(o.release, Release::Cancelled);
    assert!(o.problems.is_empty(), "nothing to post, nothing to fix");

    // A blocking problem wins over a hold: fix the mapping before the hold is lifted.
    let mut v = order();
    v["isOnHold"] = json!(true);
    assert_eq!(
        run(&v, &Rules::default(), &HashMap::new()).release,
        Release::Rejected
    );
}

#[test]
fn shipped_and_processing_orders_are_still_postable() {
    for status in ["PROCESSING", "SHIPPED", "ARCHIVED"] {
        let mut v = order();
        v["status"] = json!(status);
        assert_eq!(
            run(&v, &Rules::default(), &map()).release,
            Release::Ready,
            "{status}"
        );
    }
}

#[test]
fn charges_post_to_the_configured_items() {
    let rules = Rules {
        shipping_item: "FRAKT".into(),
        ..Rules::default()
    };
    let o = run(&order(), &rules, &map());
    let shipping = o
        .lines
        .iter()
        .find(|l| l.kind == ferry_domain::LineKind::Shipping)
        .unwrap();
    assert_eq!(shipping.erp_item.as_deref(), Some("FRAKT"));
    assert_eq!((shipping.gross, shipping.tax), (4900, 980));
}

#[test]
fn a_bundle_becomes_its_components_priced_by_list_price() {
    // As Centra documents it: the bundle line, then its components as lines of their own.
    let mut v = order();
    v["lines"] = json!([
        {"__typename": "BundleOrderLine", "id": 9, "taxPercent": 25, "productSize": {"SKU": "BND-TRIO-M"},
         "quantity": 2, "cancelledQuantity": 0, "lineValue": {"value": 1198}},
        {"__typename": "BundleItemOrderLine", "id": 10, "taxPercent": 25, "productSize": {"SKU": "A"},
         "quantity": 2, "cancelledQuantity": 0, "unitOriginalPrice": {"value": 249.5}, "lineValue": {"value": 0}},
        {"__typename": "BundleItemOrderLine", "id": 11, "taxPercent": 25, "productSize": {"SKU": "B"},
         "quantity": 4, "cancelledQuantity": 0, "unitOriginalPrice": {"value": 249.5}, "lineValue": {"value": 0}}
    ]);
    v["totals"]["shipping"]["value"] = json!(0);
    v["grandTotal"]["value"] = json!(1198);
    v["totals"]["taxIncluded"]["value"] = json!(239.60);
    let o = run(
        &v,
        &Rules {
            erp_item_equals_sku: true,
            ..Rules::default()
        },
        &HashMap::new(),
    );
    assert_eq!(o.release, Release::Ready, "{:?}", o.problems);
    let lines: Vec<(&str, i64, i64)> = o
        .lines
        .iter()
        .map(|l| (l.sku.as_deref().unwrap(), l.quantity, l.gross))
        .collect();
    // 1198.00 split 1 : 2 → 399.33 and 798.67 (largest remainder), quantities × 2 bundles.
    assert_eq!(lines, vec![("A", 2, 39933), ("B", 4, 79867)]);
    assert!(o.lines.iter().all(|l| l.bundle_line_id == Some(9)));
    // Each component is posted once, as its own Centra item line, never twice.
    let ids: Vec<Option<i64>> = o.lines.iter().map(|l| l.centra_line_id).collect();
    assert_eq!(ids, vec![Some(10), Some(11)]);
    assert!(
        !o.lines
            .iter()
            .any(|l| l.sku.as_deref() == Some("BND-TRIO-M")),
        "the bundle's own SKU is never posted"
    );
}

#[test]
fn a_bundle_ferry_cannot_interpret_is_held_never_posted_wrong() {
    let rules = Rules {
        erp_item_equals_sku: true,
        ..Rules::default()
    };
    let mut v = order();
    v["totals"]["shipping"]["value"] = json!(0);
    v["grandTotal"]["value"] = json!(1198);
    v["totals"]["taxIncluded"]["value"] = json!(239.60);
    let bundle = json!({"__typename": "BundleOrderLine", "id": 9, "taxPercent": 25,
        "productSize": {"SKU": "BND"}, "quantity": 2, "cancelledQuantity": 0, "lineValue": {"value": 1198}});
    let item = |id: i64, quantity: i64| {
        json!({"__typename": "BundleItemOrderLine", "id": id,
        "taxPercent": 25, "productSize": {"SKU": "A"}, "quantity": quantity, "cancelledQuantity": 0,
        "lineValue": {"value": 0}})
    };
    for (lines, why) in [
        (
            json!([item(10, 2), bundle.clone()]),
            "no bundle line comes before it",
        ),
        (json!([bundle.clone()]), "has no item lines after it"),
        (
            json!([bundle.clone(), item(10, 3)]),
            "3 units for 2 bundles",
        ),
    ] {
        v["lines"] = lines;
        let o = run(&v, &rules, &HashMap::new());
        assert_eq!(o.release, Release::Rejected, "{why}");
        assert_eq!(kinds(&o), vec![ExceptionKind::InvalidSnapshot], "{why}");
        assert!(
            o.problems[0].reason.contains(why),
            "{}",
            o.problems[0].reason
        );
        assert!(o.lines.is_empty(), "nothing is posted");
    }
}
