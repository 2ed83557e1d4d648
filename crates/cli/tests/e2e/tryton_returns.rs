//! Returns into real Tryton (ADR 0037): a partial return of a bundle bought with a voucher
//! becomes one return sale — Tryton's return shipment and credit note — whose total is
//! exactly the refunded amount, its tax as charged (Tryton's own tax, with the rounding
//! line carrying any cent it computes differently); the same credit again makes nothing.
//! Through the whole pipeline, returns completed together are credited together (the
//! writer batches them as it batches orders), once each, also when redelivered.

use ferry_domain::credit::{Charge, units_share};
use ferry_erp::{
    CreditNotes, CreditOutcome, LineKind, PostCredit, PostLine, PostOrders, ReadBack, StockFeed,
};
use serde_json::{Value, json};

use std::time::Duration;

use ferry::stack::{Stack, StackOptions};
use ferry_sim_centra::ops::ShippingRefund;
use ferry_testing::TestEnv;
use futures::StreamExt;

use crate::tryton::{
    connector, example, one_order, sale_by_reference, sales_with_reference, ship_in_tryton,
    tryton_erp, unique_prefix, wait_for_posted,
};
use crate::until;

fn credited(outcome: CreditOutcome) -> ferry_erp::ErpDocument {
    match outcome {
        CreditOutcome::Credited(document) => document,
        CreditOutcome::Refused(reason) => panic!("refused: {reason}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partial_return_of_a_bundle_with_a_voucher_is_one_exact_tryton_credit_note() {
    let prefix = unique_prefix();
    let tryton = connector(&prefix);
    // Order 48204: a tee, and two bundles of a tee and two pairs of socks, with a voucher.
    let order = example("04-sek-bundle-voucher");
    let posted = tryton.create_sales_order(&order).await.expect("posted");

    // One of the two bundles comes back, and Centra refunds the shipping.
    let components: Vec<&PostLine> = order
        .lines
        .iter()
        .filter(|l| matches!(l.centra_line_id, Some(6203 | 6204)))
        .collect();
    let charged: Vec<Charge> = components
        .iter()
        .map(|l| Charge {
            quantity: l.quantity,
            gross: l.gross_minor,
            tax: l.tax_minor,
        })
        .collect();
    let shares = units_share(&charged, 2, 0, 1).expect("one of two bundles");
    // Half of each component, rounded half away from zero: worked out by hand.
    assert_eq!(
        shares
            .iter()
            .map(|s| (s.quantity, s.gross))
            .collect::<Vec<_>>(),
        [(1, 34_114), (2, 21_647)]
    );
    let mut lines: Vec<PostLine> = components
        .iter()
        .zip(&shares)
        .map(|(l, s)| PostLine {
            quantity: s.quantity,
            gross_minor: s.gross,
            tax_minor: s.tax,
            net_minor: s.net(),
            ..(*l).clone()
        })
        .collect();
    lines.extend(
        order
            .lines
            .iter()
            .filter(|l| l.kind == LineKind::Shipping)
            .cloned(),
    );
    let credit = PostCredit {
        tenant: order.tenant.clone(),
        external_ref: format!("{}-R7", order.external_ref),
        order_ref: order.external_ref.clone(),
        order_erp_reference: posted.reference.clone(),
        return_id: 7,
        currency: order.currency.clone(),
        date: "2026-12-07".into(),
        gross_minor: lines.iter().map(|l| l.gross_minor).sum(),
        tax_minor: lines.iter().map(|l| l.tax_minor).sum(),
        lines,
        restock: true,
    };
    assert_eq!(credit.gross_minor, 34_114 + 21_647 + 4_900);

    let items: Vec<String> = components.iter().map(|l| l.erp_item.clone()).collect();
    let before = tryton.stock_levels(&items).await.expect("stock before");
    let document = credited(
        tryton
            .create_credit_note(&credit)
            .await
            .expect("Tryton answers"),
    );
    let after = tryton.stock_levels(&items).await.expect("stock after");
    assert_eq!(
        after, before,
        "goods on their way back are not for sale until the warehouse receives them"
    );
    assert_eq!(
        document.gross_minor, -credit.gross_minor,
        "exactly what is refunded"
    );
    assert_eq!(
        document.tax_minor + document.rounding_minor,
        -credit.tax_minor,
        "the tax as charged, Tryton's rounding on its own line"
    );
    assert_ne!(
        document.reference, posted.reference,
        "a document of its own"
    );

    // Tryton made the return shipment and the credit note, for the same customer.
    let reference = format!("{prefix}{}", credit.external_ref);
    let rpc = tryton.rpc();
    let sale = rpc
        .call(
            "model.sale.sale.search_read",
            vec![
                json!([["reference", "=", reference]]),
                json!(0),
                json!(1),
                Value::Null,
                json!(["state", "party", "invoices", "shipment_returns"]),
            ],
        )
        .await
        .expect("the return sale");
    let sale = &sale[0];
    assert_eq!(sale["state"], "processing");
    assert_eq!(
        sale["shipment_returns"].as_array().map(Vec::len),
        Some(1),
        "a return shipment for the warehouse: {sale}"
    );
    // The warehouse receives the parcel: now the goods are back in stock, and the stock
    // feed says so (the inventory pusher takes it to Centra from there).
    let shipment = sale["shipment_returns"][0]
        .as_i64()
        .expect("a return shipment");
    for step in ["receive", "do"] {
        rpc.call(
            &format!("model.stock.shipment.out.return.{step}"),
            vec![json!([shipment])],
        )
        .await
        .unwrap_or_else(|e| panic!("{step}: {e}"));
    }
    let received = tryton.stock_levels(&items).await.expect("stock received");
    let back: Vec<i64> = received
        .iter()
        .zip(&before)
        .map(|(r, b)| r.available - b.available)
        .collect();
    assert_eq!(
        back,
        [1, 2],
        "one tee and two pairs of socks back on the shelf"
    );
    let invoices: Vec<i64> = sale["invoices"]
        .as_array()
        .expect("invoices")
        .iter()
        .filter_map(Value::as_i64)
        .collect();
    assert_eq!(invoices.len(), 1, "one credit note: {sale}");
    let invoice = rpc
        .call(
            "model.account.invoice.read",
            vec![json!(invoices), json!(["total_amount", "party"])],
        )
        .await
        .expect("the credit note");
    let total: rust_decimal::Decimal = invoice[0]["total_amount"]["decimal"]
        .as_str()
        .or(invoice[0]["total_amount"].as_str())
        .expect("a total")
        .parse()
        .expect("a decimal");
    assert_eq!(total, rust_decimal::Decimal::new(-credit.gross_minor, 2));
    let original = rpc
        .call(
            "model.sale.sale.search_read",
            vec![
                json!([["reference", "=", format!("{prefix}{}", order.external_ref)]]),
                json!(0),
                json!(1),
                Value::Null,
                json!(["party"]),
            ],
        )
        .await
        .expect("the sale");
    assert_eq!(
        invoice[0]["party"], original[0]["party"],
        "the same customer"
    );

    // The same credit again (a retry, a replay): the same document, nothing new.
    let again = credited(tryton.create_credit_note(&credit).await.expect("again"));
    assert_eq!(again.reference, document.reference);
    assert_eq!(sales_with_reference(&tryton, &reference).await, 1);

    // The reconciler's walk of every sale does not take the return sale for a sales order
    // no Centra order explains.
    let mut cursor = String::new();
    loop {
        let page = tryton.headers_since(&cursor, 500).await.expect("walk");
        assert!(
            page.documents
                .iter()
                .all(|d| d.reference != document.reference),
            "the return sale is no sales order"
        );
        if page.next_cursor == cursor || page.documents.is_empty() {
            break;
        }
        cursor = page.next_cursor;
    }

    // A return of an order Tryton never had is refused, in words.
    let orphan = PostCredit {
        external_ref: "999999-R1".into(),
        order_ref: "999999".into(),
        ..credit.clone()
    };
    match tryton.create_credit_note(&orphan).await.expect("answers") {
        CreditOutcome::Refused(reason) => assert!(reason.contains("999999"), "{reason}"),
        CreditOutcome::Credited(d) => panic!("credited an unknown order: {d:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn returns_completed_together_are_credited_in_tryton_once_each() {
    const ORDERS: usize = 6;
    let env = TestEnv::new().await;
    let t = ferry_testing::tryton().expect("Tryton");
    let prefix = unique_prefix();
    let mut config = env.config();
    config.erp_writer.request_timeout = Duration::from_secs(20);
    let options = StackOptions {
        tenant: "acme".into(),
        seed: 37,
        centra_requests_per_10s: 1000,
        centra_events: true,
        erp: Some(tryton_erp(&t, t.url.clone(), prefix.clone())),
        ..StackOptions::default()
    };
    let stack = Stack::start(config, options).await.expect("stack");
    let store = env.store().await;
    let numbers = stack.centra.generate(ORDERS, &one_order());
    assert_eq!(
        wait_for_posted(&store, ORDERS as i64, Duration::from_secs(180)).await,
        ORDERS as i64
    );
    let tryton = connector(&prefix);
    let mut shipped = Vec::new();
    for (i, &n) in numbers.iter().enumerate() {
        ship_in_tryton(&tryton, &format!("{prefix}{n}"), &format!("PN-RET-{i}")).await;
        let line = until("the shipment in Centra", || {
            stack.centra.state.ops(|o| {
                o.shipments_of(n)
                    .into_iter()
                    .find(|s| s.is_shipped)
                    .and_then(|s| Some((s.id, s.lines.first()?.id)))
            })
        })
        .await;
        shipped.push((n, line));
    }

    let client = env.nats().await;
    let mut ready = client
        .subscribe(format!("{}.acme.order.return.v1.*", env.prefix))
        .await
        .unwrap();
    client.flush().await.unwrap();
    // One unit of each order comes back, all completed at once.
    let returns: Vec<(i64, i64)> = stack
        .centra
        .state
        .transact(|w| {
            let mut made = Vec::new();
            for &(n, (shipment, line)) in &shipped {
                let id = w.ops.create_return(
                    shipment,
                    &[(line, 1)],
                    true,
                    ShippingRefund::None,
                    None,
                )?;
                let order = w.order(n)?.clone();
                w.ops.complete_return(&order, id, true)?;
                made.push((n, id));
            }
            Ok(made)
        })
        .expect("returns completed");

    let credited = |id: i64| {
        let store = store.clone();
        async move {
            for _ in 0..1200 {
                if let Some(c) = store
                    .return_credit("acme", id)
                    .await
                    .unwrap()
                    .filter(|c| c.erp_reference.is_some())
                {
                    return c;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            panic!("return {id} never credited");
        }
    };
    for &(n, id) in &returns {
        let credit = credited(id).await;
        let reference = format!("{prefix}{n}-R{id}");
        assert_eq!(sales_with_reference(&tryton, &reference).await, 1);
        let sale = sale_by_reference(&tryton, &reference, &["total_amount", "state"]).await;
        let total: rust_decimal::Decimal = sale["total_amount"]["decimal"]
            .as_str()
            .or(sale["total_amount"].as_str())
            .expect("a total")
            .parse()
            .expect("a decimal");
        assert_eq!(
            total,
            rust_decimal::Decimal::new(-credit.priced.gross_minor, 2),
            "return {id} of order {n}: exactly what is refunded"
        );
        assert_eq!(sale["state"], "processing", "{sale}");
    }

    // Every return again (a redelivery, a replay): nothing more in Tryton.
    let js = ferry_runtime::nats::jetstream(client.clone());
    for _ in &returns {
        let message = tokio::time::timeout(Duration::from_secs(5), ready.next())
            .await
            .expect("order.return published")
            .unwrap();
        js.publish(message.subject.clone(), message.payload.clone())
            .await
            .unwrap()
            .await
            .unwrap();
    }
    tokio::time::sleep(Duration::from_secs(5)).await;
    for &(n, id) in &returns {
        let reference = format!("{prefix}{n}-R{id}");
        assert_eq!(
            sales_with_reference(&tryton, &reference).await,
            1,
            "return {id}: one return sale after the redelivery"
        );
    }
    let open = store.open_exceptions("acme").await.expect("exceptions");
    assert!(open.is_empty(), "{open:?}");
    stack.shutdown().await;
    env.cleanup().await;
}
