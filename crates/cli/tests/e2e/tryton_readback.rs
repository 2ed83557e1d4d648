//! Reading sales back from a real Tryton 8.2 as it holds them: what Ferry posted comes back
//! line by line with what the customer paid; what a person then does in Tryton over its
//! own JSON-RPC (a line deleted, a price changed, a sale cancelled, a sale entered by hand)
//! is what the next read shows.

use ferry_erp::{DocumentState, PostOrders, ReadBack, ReadLineKind};
use ferry_erp_tryton::{Tryton, TrytonConfig};
use secrecy::SecretString;
use serde_json::{Value, json};

use super::tryton::{example, unique_prefix};

/// Sales left as drafts for review (`confirm = false`): lines a person may still edit.
fn drafts(prefix: &str) -> Tryton {
    let t = ferry_testing::tryton().expect("Tryton runs (scripts/tryton.sh)");
    Tryton::new(TrytonConfig {
        reference_prefix: prefix.to_owned(),
        confirm: false,
        ..TrytonConfig::new(t.url, t.user, SecretString::from(t.password))
    })
}

async fn call(tryton: &Tryton, method: &str, args: Vec<Value>) -> Value {
    tryton
        .rpc()
        .call(method, args)
        .await
        .unwrap_or_else(|e| panic!("{method}: {e}"))
}

async fn sale_lines(tryton: &Tryton, prefix: &str, external_ref: &str) -> Vec<i64> {
    call(
        tryton,
        "model.sale.line.search",
        vec![
            json!([
                ["sale.reference", "=", format!("{prefix}{external_ref}")],
                ["type", "=", "line"]
            ]),
            json!(0),
            Value::Null,
            json!([["id", "ASC"]]),
        ],
    )
    .await
    .as_array()
    .into_iter()
    .flatten()
    .filter_map(Value::as_i64)
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tryton_sales_read_back_as_tryton_holds_them() {
    let prefix = unique_prefix();
    let tryton = drafts(&prefix);
    let mut posted = Vec::new();
    for name in [
        "01-sek-simple",
        "02-gbp-voucher-shipping",
        "03-usd-tax-added",
    ] {
        let order = example(name);
        tryton.create_sales_order(&order).await.expect("posted");
        posted.push(order);
    }

    // As posted: every line, what the customer paid, Tryton's own state.
    for order in &posted {
        let read = tryton
            .read_sales_orders(&order.external_ref)
            .await
            .expect("read back");
        assert_eq!(read.len(), 1, "order {}", order.external_ref);
        let doc = &read[0];
        assert_eq!(doc.external_ref, order.external_ref);
        assert_eq!(doc.currency, order.currency);
        assert_eq!(doc.gross_minor, order.gross_minor, "what the customer paid");
        assert_eq!(
            (doc.state, doc.erp_state.as_str()),
            (DocumentState::Complete, "draft")
        );
        let lines: Vec<_> = doc
            .lines
            .iter()
            .filter(|l| l.kind != ReadLineKind::Rounding)
            .collect();
        assert_eq!(lines.len(), order.lines.len(), "{doc:#?}");
        for (read, sent) in lines.iter().zip(&order.lines) {
            assert_eq!(read.erp_item, sent.erp_item);
            assert_eq!(read.kind, sent.kind.into());
            assert_eq!(read.quantity, sent.quantity.max(1));
            assert_eq!(read.net_minor, sent.net_minor, "{read:?} vs {sent:?}");
            // Tryton keeps tax per document; per line it is derived, within a minor unit.
            assert!(
                (read.tax_minor - sent.tax_minor).abs() <= 1,
                "{read:?} vs {sent:?}"
            );
            assert!(read.unit_price.is_some());
        }
        let rounding: i64 = doc
            .lines
            .iter()
            .filter(|l| l.kind == ReadLineKind::Rounding)
            .map(|l| l.gross_minor)
            .sum();
        assert_eq!(
            doc.lines.iter().map(|l| l.net_minor).sum::<i64>() + doc.tax_minor,
            doc.gross_minor,
            "Tryton's total is its lines and its tax (rounding {rounding})"
        );
    }

    // Behind Ferry's back: a line deleted, a price changed, a sale cancelled.
    let (first, second, third) = (&posted[0], &posted[1], &posted[2]);
    let lines = sale_lines(&tryton, &prefix, &first.external_ref).await;
    call(
        &tryton,
        "model.sale.line.delete",
        vec![json!([lines[lines.len() - 1]])],
    )
    .await;
    let lines = sale_lines(&tryton, &prefix, &second.external_ref).await;
    call(
        &tryton,
        "model.sale.line.write",
        vec![
            json!([lines[0]]),
            json!({"unit_price": {"__class__": "Decimal", "decimal": "1.0000"}}),
        ],
    )
    .await;
    let sale = call(
        &tryton,
        "model.sale.sale.search",
        vec![json!([[
            "reference",
            "=",
            format!("{prefix}{}", third.external_ref)
        ]])],
    )
    .await;
    call(&tryton, "model.sale.sale.cancel", vec![sale]).await;

    let after = |r: &str| {
        let r = r.to_owned();
        let tryton = &tryton;
        async move { tryton.read_sales_orders(&r).await.expect("read")[0].clone() }
    };
    let fewer = after(&first.external_ref).await;
    assert_eq!(
        fewer
            .lines
            .iter()
            .filter(|l| l.kind != ReadLineKind::Rounding)
            .count(),
        first.lines.len() - 1
    );
    assert!(fewer.gross_minor < first.gross_minor);
    let cheaper = after(&second.external_ref).await;
    assert_eq!(
        cheaper.lines[0].unit_price,
        Some(rust_decimal::Decimal::ONE)
    );
    assert_eq!(
        cheaper.lines[0].net_minor,
        100 * second.lines[0].quantity.max(1)
    );
    assert_ne!(cheaper.gross_minor, second.gross_minor);
    let cancelled = after(&third.external_ref).await;
    assert_eq!(
        (cancelled.state, cancelled.erp_state.as_str()),
        (DocumentState::Cancelled, "cancelled")
    );

    // Every sale in Tryton, page by page: each of ours exactly once.
    let mut references = Vec::new();
    for order in &posted {
        let read = tryton
            .read_sales_orders(&order.external_ref)
            .await
            .expect("read");
        references.push(read[0].reference.clone());
    }
    let mut cursor = String::new();
    let mut listed = Vec::new();
    loop {
        let page = tryton.sales_orders_since(&cursor, 50).await.expect("page");
        if page.documents.is_empty() {
            assert_eq!(page.next_cursor, cursor, "an empty page keeps the cursor");
            break;
        }
        listed.extend(page.documents.into_iter().map(|d| d.reference));
        cursor = page.next_cursor;
    }
    for reference in &references {
        assert_eq!(
            listed.iter().filter(|r| *r == reference).count(),
            1,
            "{reference}"
        );
    }
}
