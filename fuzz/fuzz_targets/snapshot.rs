//! Any bytes as an order snapshot: parsing and the transform never panic, and whatever is
//! ready satisfies invariants 1 and 2 (what was paid, Centra's tax figure) and net = gross − tax.
#![no_main]

use std::collections::HashMap;

use ferry_domain::{Release, Rules, Snapshot, transform};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(snapshot) = Snapshot::parse(data) else { return };
    let rules = Rules { erp_item_equals_sku: true, ..Rules::default() };
    let order = transform(&snapshot, &rules, &HashMap::<String, String>::new());
    if order.release == Release::Ready {
        let gross: i64 = order.lines.iter().map(|l| l.gross).sum();
        assert_eq!(Some(gross), order.grand_total);
        for l in &order.lines {
            assert_eq!(l.net, l.gross - l.tax);
        }
    }
    let _ = ferry_domain::Summary::of(&order).to_pretty_json();
});
