//! The transform of a 5-line order with a voucher: pure order-to-cash work per order
//! (snapshot already parsed), and parse + transform from the JSON text.
//! Run: `cargo bench -p ferry-domain --bench transform`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ferry_domain::{Release, Rules, Snapshot, transform};

fn five_lines_with_a_voucher() -> String {
    let example = include_str!("../../../tests/contracts/examples/02-gbp-voucher-shipping.json");
    // 02-gbp-voucher-shipping has four lines and a £25 voucher; add a fifth line
    // (and its value to the totals) to make five.
    let mut v: serde_json::Value = serde_json::from_str(example).unwrap();
    let mut fifth = v["lines"][3].clone();
    fifth["id"] = 6013.into();
    fifth["productSize"]["SKU"] = "BNE-BLK-OS".into();
    v["lines"].as_array_mut().unwrap().push(fifth);
    // 19.99 × 2 more at 20% VAT: grand total +39.98, VAT +6.66 (rounded once at order level).
    v["grandTotal"]["value"] = serde_json::json!(324.82);
    v["totals"]["taxIncluded"]["value"] = serde_json::json!(54.13);
    v.to_string()
}

fn bench(c: &mut Criterion) {
    let text = five_lines_with_a_voucher();
    let snapshot = Snapshot::parse(text.as_bytes()).unwrap();
    let rules = Rules::default();
    let items: HashMap<String, String> = [
        "JKT-OLV-M",
        "TEE-BLK-S",
        "SCF-GRY-OS",
        "BNE-NVY-OS",
        "BNE-BLK-OS",
    ]
    .iter()
    .map(|s| (s.to_string(), format!("ERP-{s}")))
    .collect();
    let order = transform(&snapshot, &rules, &items);
    assert_eq!(order.release, Release::Ready, "{:?}", order.problems);
    assert_eq!(order.lines.len(), 6);

    let mut group = c.benchmark_group("transform");
    group.throughput(Throughput::Elements(1));
    group.bench_function("5_lines_voucher", |b| {
        b.iter(|| transform(black_box(&snapshot), black_box(&rules), black_box(&items)))
    });
    group.bench_function("5_lines_voucher_parse_and_transform", |b| {
        b.iter(|| {
            let s = Snapshot::parse(black_box(text.as_bytes())).unwrap();
            transform(&s, &rules, &items)
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
