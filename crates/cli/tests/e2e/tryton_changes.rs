//! Changes after posting into real Tryton through its `sale_amendment` module (ADR 0035):
//! a line removed after posting amends the sale — the same sale, a new revision, what the
//! customer now pays as its total — and the same change again amends nothing; a
//! cancellation amends it to nothing; a shipped sale and a change that adds a line are
//! refused with Tryton's reason. Changes of many orders go in batches, each with its own
//! verdict.

use std::time::Duration;

use ferry_erp::{
    ChangeOrders, ChangeOutcome, DocumentState, LineKind, OrderChange, PostOrder, PostOrders,
    ReadBack,
};
use ferry_erp_tryton::Tryton;
use ferry_testing::rpc_proxy::{RpcFault, RpcProxy};
use serde_json::json;

use crate::tryton::{
    connector, connector_at, example, one_order, sale_by_reference, sale_state,
    sales_with_reference, ship_in_tryton, tryton_stack, unique_prefix,
};

/// The order without its first item line, as Centra holds it after the line's cancellation.
fn without_first_item(order: &PostOrder) -> PostOrder {
    let mut newer = order.clone();
    let at = newer
        .lines
        .iter()
        .position(|l| l.kind == LineKind::Item)
        .expect("an item line");
    let gone = newer.lines.remove(at);
    newer.gross_minor -= gone.gross_minor;
    newer.tax_minor -= gone.tax_minor;
    newer
}

fn change(id: &str, reference: &str, order: &PostOrder, cancel: bool) -> OrderChange {
    OrderChange {
        change_id: id.to_owned(),
        erp_reference: reference.to_owned(),
        order: order.clone(),
        cancel,
    }
}

async fn amendments(tryton: &Tryton, reference: &str) -> usize {
    tryton
        .rpc()
        .call(
            "model.sale.amendment.search_count",
            vec![json!([["sale.reference", "=", reference]])],
        )
        .await
        .expect("amendments")
        .as_u64()
        .unwrap_or(0) as usize
}

/// Where the sale ships to, and where its shipments not cancelled go.
async fn delivery_cities(tryton: &Tryton, reference: &str) -> Vec<String> {
    let rpc = tryton.rpc();
    let sale = &sale_by_reference(tryton, reference, &["shipment_address.city", "shipments"]).await;
    let mut cities = vec![
        sale["shipment_address."]["city"]
            .as_str()
            .unwrap_or("")
            .to_owned(),
    ];
    let shipments = rpc
        .call(
            "model.stock.shipment.out.read",
            vec![
                sale["shipments"].clone(),
                json!(["state", "delivery_address.city"]),
            ],
        )
        .await
        .expect("shipments");
    for s in shipments.as_array().into_iter().flatten() {
        if s["state"] != "cancelled" {
            cities.push(
                s["delivery_address."]["city"]
                    .as_str()
                    .unwrap_or("")
                    .to_owned(),
            );
        }
    }
    cities
}

async fn applied(tryton: &Tryton, c: &OrderChange) -> ferry_erp::ErpDocument {
    match tryton.change_sales_order(c).await.expect("Tryton answers") {
        ChangeOutcome::Applied(document) => document,
        ChangeOutcome::Refused(reason) => panic!("refused: {reason}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_line_removed_then_the_order_cancelled_amends_the_one_tryton_sale() {
    let prefix = unique_prefix();
    let tryton = connector(&prefix);
    let order = example("04-sek-bundle-voucher");
    let posted = tryton.create_sales_order(&order).await.expect("posted");
    let reference = format!("{prefix}{}", order.external_ref);
    assert_eq!(sale_state(&tryton, &reference).await.0, "processing");

    // A line cancelled in Centra after posting.
    let newer = without_first_item(&order);
    assert!(newer.gross_minor < order.gross_minor);
    let first = change("c1", &posted.reference, &newer, false);
    let document = applied(&tryton, &first).await;
    assert_eq!(document.reference, posted.reference, "the same sale");
    assert_eq!(
        document.gross_minor, newer.gross_minor,
        "Tryton's total is what the customer now pays"
    );
    assert_eq!(document.state, DocumentState::Complete);
    assert_eq!(sales_with_reference(&tryton, &reference).await, 1);
    let amended = amendments(&tryton, &reference).await;
    assert!(amended >= 1, "an amendment in Tryton's history");
    let read = tryton
        .read_sales_orders(&order.external_ref)
        .await
        .expect("read back");
    assert_eq!(read.len(), 1);
    assert_eq!(read[0].gross_minor, newer.gross_minor);
    let items = |lines: &[ferry_erp::ReadLine]| {
        lines
            .iter()
            .filter(|l| l.kind == ferry_erp::ReadLineKind::Item)
            .count()
    };
    assert_eq!(
        items(&read[0].lines),
        newer
            .lines
            .iter()
            .filter(|l| l.kind == LineKind::Item)
            .count(),
        "the removed line is gone from what the reconciler reads"
    );

    // The same change again (a redelivery): nothing amended.
    let again = applied(&tryton, &first).await;
    assert_eq!(again, document);
    assert_eq!(amendments(&tryton, &reference).await, amended);

    // The customer makes it a gift (a corrected delivery address): the sale and its
    // waiting shipment go to the friend, the invoice still to the customer; again, nothing.
    let gift = PostOrder {
        delivery: Some(ferry_erp::Address {
            first_name: "Bo".into(),
            last_name: "Lind".into(),
            address1: "Lilla torg 3".into(),
            city: "Lund".into(),
            zip_code: "222 21".into(),
            country_code: order.customer.country_code.clone(),
            ..ferry_erp::Address::default()
        }),
        ..newer.clone()
    };
    let moved = change("c1-address", &posted.reference, &gift, false);
    let document = applied(&tryton, &moved).await;
    assert_eq!(
        document.gross_minor, newer.gross_minor,
        "the money unchanged"
    );
    assert_eq!(amendments(&tryton, &reference).await, amended + 1);
    assert_eq!(delivery_cities(&tryton, &reference).await, ["Lund", "Lund"]);
    applied(&tryton, &moved).await;
    assert_eq!(amendments(&tryton, &reference).await, amended + 1);
    // And back to the customer's own address.
    applied(
        &tryton,
        &change("c1-home", &posted.reference, &newer, false),
    )
    .await;
    let home = order.customer.city.as_str();
    assert_eq!(delivery_cities(&tryton, &reference).await, [home, home]);
    let amended = amendments(&tryton, &reference).await;

    // A change that adds a line Tryton's sale does not have: refused, nothing amended.
    let mut grown = order.clone();
    let mut extra = grown.lines[0].clone();
    extra.erp_item = "007310".into();
    extra.description = "Socks added later".into();
    grown.lines.push(extra);
    match tryton
        .change_sales_order(&change("c2", &posted.reference, &grown, false))
        .await
        .expect("answers")
    {
        ChangeOutcome::Refused(reason) => assert!(reason.contains("add"), "{reason}"),
        ChangeOutcome::Applied(d) => panic!("a line cannot be added: {d:?}"),
    }
    assert_eq!(amendments(&tryton, &reference).await, amended);

    // The whole order cancelled before shipping: the sale holds nothing and reads as
    // cancelled; its shipment is gone.
    let cancelled = applied(&tryton, &change("c3", &posted.reference, &newer, true)).await;
    assert_eq!(cancelled.state, DocumentState::Cancelled);
    assert_eq!(cancelled.gross_minor, 0);
    let read = tryton
        .read_sales_orders(&order.external_ref)
        .await
        .expect("read back");
    assert_eq!(read[0].state, DocumentState::Cancelled);
    assert_eq!(read[0].erp_state, "amended to nothing");
    assert_eq!(
        sale_state(&tryton, &reference).await.1,
        0,
        "no shipment left"
    );
    assert_eq!(sales_with_reference(&tryton, &reference).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_to_a_shipped_tryton_sale_is_refused_with_tryton_s_reason() {
    let prefix = unique_prefix();
    let tryton = connector(&prefix);
    let order = example("02-gbp-voucher-shipping");
    let posted = tryton.create_sales_order(&order).await.expect("posted");
    let reference = format!("{prefix}{}", order.external_ref);
    ship_in_tryton(&tryton, &reference, "PN-CHANGE-1").await;

    let newer = without_first_item(&order);
    match tryton
        .change_sales_order(&change("c1", &posted.reference, &newer, false))
        .await
        .expect("answers")
    {
        ChangeOutcome::Refused(reason) => {
            assert!(reason.contains("shipment"), "{reason}");
            assert!(reason.contains("done"), "{reason}");
        }
        ChangeOutcome::Applied(d) => panic!("a shipped sale cannot change: {d:?}"),
    }
    assert_eq!(amendments(&tryton, &reference).await, 0);
    let found = tryton
        .find_sales_order(&order.external_ref)
        .await
        .expect("lookup")
        .expect("sale");
    assert_eq!(found.gross_minor, order.gross_minor, "left as it was");
}

/// Through the whole stack: a unit cancelled in Centra after the order reached Tryton
/// amends the one sale (the erp-writer's change consumer, ADR 0035), and the ledger
/// records the change applied.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_unit_cancelled_in_centra_amends_the_tryton_sale_through_the_stack() {
    let env = ferry_testing::TestEnv::new().await;
    let t = ferry_testing::tryton().expect("Tryton");
    let prefix = unique_prefix();
    let stack = tryton_stack(&env, t.url.clone(), &prefix, 31).await;
    let store = env.store().await;
    // An order with a line of two units or more, so one can be cancelled.
    let (number, line_id) = loop {
        let n = stack.centra.generate(1, &one_order())[0];
        let order = stack.centra.state.order(n).expect("order");
        if let Some(l) = order.lines.iter().find(|l| l.quantity >= 2) {
            break (n, l.id);
        }
    };
    let posted = store.clone();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    let before = loop {
        let row = posted.ledger_row("acme", number).await.expect("ledger");
        if let Some(row) = row.filter(|r| r.state == "posted") {
            break row;
        }
        assert!(tokio::time::Instant::now() < deadline, "never posted");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let reference = format!("{prefix}{number}");
    let tryton = connector(&prefix);

    stack
        .centra
        .state
        .update::<()>(number, |o| {
            let l = o.lines.iter_mut().find(|l| l.id == line_id).expect("line");
            l.quantity -= 1;
            l.cancelled_quantity += 1;
            Ok(())
        })
        .expect("order")
        .expect("updated");

    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    let document = loop {
        let found = tryton
            .find_sales_order(&number.to_string())
            .await
            .expect("lookup")
            .expect("sale");
        if found.gross_minor < before.gross_minor.expect("the gross posted") {
            break found;
        }
        assert!(tokio::time::Instant::now() < deadline, "never amended");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(
        Some(document.reference.as_str()),
        before.erp_reference.as_deref()
    );
    assert_eq!(
        sales_with_reference(&tryton, &reference).await,
        1,
        "no second sale"
    );
    assert!(amendments(&tryton, &reference).await >= 1);
    // The writer records the change once Tryton has answered.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let recorded = store
            .amendments_of("acme", number)
            .await
            .expect("amendments");
        if recorded.iter().any(|a| {
            a.outcome.as_str() == "applied" && a.erp_gross_minor == Some(document.gross_minor)
        }) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not recorded: {recorded:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(store.open_exceptions("acme").await.expect("x").is_empty());
    stack.shutdown().await;
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_of_many_orders_amend_their_tryton_sales_in_batches() {
    let t = ferry_testing::tryton().expect("Tryton");
    let proxy = RpcProxy::start(&t.url).await.expect("proxy");
    let prefix = unique_prefix();
    let tryton = connector_at(&proxy.url(&t.url), &prefix);
    let orders: Vec<PostOrder> = [
        "04-sek-bundle-voucher",
        "02-gbp-voucher-shipping",
        "03-usd-tax-added",
        "01-sek-simple",
    ]
    .iter()
    .map(|name| example(name))
    .collect();
    let posted: Vec<ferry_erp::ErpDocument> = tryton
        .create_sales_orders(&orders)
        .await
        .into_iter()
        .map(|r| r.expect("posted"))
        .collect();
    let reference = |o: &PostOrder| format!("{prefix}{}", o.external_ref);
    // The warehouse has sent the last order already.
    ship_in_tryton(&tryton, &reference(&orders[3]), "PN-BATCH-1").await;

    let removed = without_first_item(&orders[0]);
    let changes = [
        change("b1", &posted[0].reference, &removed, false),
        change("b2", &posted[1].reference, &orders[1], true),
        change(
            "b3",
            &posted[2].reference,
            &without_first_item(&orders[2]),
            false,
        ),
        change(
            "b4",
            &posted[3].reference,
            &without_first_item(&orders[3]),
            false,
        ),
        // An order Tryton never had.
        change(
            "b5",
            "",
            &PostOrder {
                external_ref: "990003".into(),
                ..orders[0].clone()
            },
            false,
        ),
        // The first order's next change: cancelled after all.
        change("b6", &posted[0].reference, &orders[0], true),
    ];
    // Three sales amended together: one validate for all, one more to balance them.
    let mut results = tryton.change_sales_orders(&changes[..3]).await;
    let validates = proxy.calls("model.sale.amendment.validate_amendment");
    assert!(
        (1..=2).contains(&validates),
        "amended in one validate, balanced in one more: {validates} calls"
    );
    // Tryton refuses the next batch's validate once: its changes are applied one by one.
    proxy.fail_next(
        "model.sale.amendment.validate_amendment",
        1,
        RpcFault::Refuse,
    );
    results.extend(tryton.change_sales_orders(&changes[3..]).await);
    assert_eq!(proxy.faults_left(), 0, "the batched validate was refused");
    let verdicts: Vec<&ChangeOutcome> = results
        .iter()
        .map(|r| r.as_ref().expect("Tryton answers"))
        .collect();
    let document = |i: usize| match verdicts[i] {
        ChangeOutcome::Applied(d) => d.clone(),
        ChangeOutcome::Refused(why) => panic!("change {i} refused: {why}"),
    };
    assert_eq!(
        document(0).gross_minor,
        removed.gross_minor,
        "a line removed"
    );
    assert_eq!(document(1).gross_minor, 0, "cancelled: a sale of nothing");
    assert_eq!(
        document(2).gross_minor,
        changes[2].order.gross_minor,
        "a line removed"
    );
    match verdicts[3] {
        ChangeOutcome::Refused(why) => assert!(why.contains("shipment"), "{why}"),
        ChangeOutcome::Applied(d) => panic!("a shipped sale cannot change: {d:?}"),
    }
    match verdicts[4] {
        ChangeOutcome::Refused(why) => assert!(why.contains("990003"), "{why}"),
        ChangeOutcome::Applied(d) => panic!("changed an unknown order: {d:?}"),
    }
    assert_eq!(document(5).gross_minor, 0, "then cancelled");
    for (order, document) in orders.iter().zip(&posted) {
        assert_eq!(sales_with_reference(&tryton, &reference(order)).await, 1);
        let found = tryton
            .find_sales_order(&order.external_ref)
            .await
            .expect("lookup")
            .expect("sale");
        assert_eq!(found.reference, document.reference, "the same sale");
    }
    let drafts = tryton
        .rpc()
        .call(
            "model.sale.amendment.search_count",
            vec![json!([
                ["sale.reference", "like", format!("{prefix}%")],
                ["state", "=", "draft"]
            ])],
        )
        .await
        .expect("amendments");
    assert_eq!(drafts, json!(0), "no amendment left unvalidated");

    // The same changes again but the first order's last (a redelivery): no new amendment
    // anywhere.
    let before: Vec<usize> = {
        let mut counts = Vec::new();
        for order in &orders {
            counts.push(amendments(&tryton, &reference(order)).await);
        }
        counts
    };
    let again = tryton.change_sales_orders(&changes[1..5]).await;
    for (first, second) in results[1..5].iter().zip(&again) {
        match (first, second) {
            (Ok(ChangeOutcome::Applied(a)), Ok(ChangeOutcome::Applied(b))) => {
                assert_eq!((&a.reference, a.gross_minor), (&b.reference, b.gross_minor))
            }
            (Ok(ChangeOutcome::Refused(_)), Ok(ChangeOutcome::Refused(_))) => {}
            other => panic!("a different verdict the second time: {other:?}"),
        }
    }
    for (order, count) in orders.iter().zip(before) {
        assert_eq!(
            amendments(&tryton, &reference(order)).await,
            count,
            "order {}: the repeat amends nothing",
            order.external_ref
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sales_with_and_without_decimals_are_cancelled_in_one_batch() {
    let t = ferry_testing::tryton().expect("Tryton");
    let proxy = RpcProxy::start(&t.url).await.expect("proxy");
    let prefix = unique_prefix();
    let tryton = connector_at(&proxy.url(&t.url), &prefix);
    let gbp = example("02-gbp-voucher-shipping");
    // The same order in yen: a currency without decimals.
    let simple = example("01-sek-simple");
    let jpy = PostOrder {
        external_ref: format!("{}9", simple.external_ref),
        currency: "JPY".into(),
        ..simple
    };
    let orders = [gbp, jpy];
    let posted: Vec<ferry_erp::ErpDocument> = tryton
        .create_sales_orders(&orders)
        .await
        .into_iter()
        .map(|r| r.expect("posted"))
        .collect();
    // Both cancelled: two sales totalling nothing, one in pence and one in yen. Tryton
    // writes equal totals of different sales together, and 0 equals 0.00: in one validate
    // the yen sale would be written "0.00" and the call refused.
    let changes: Vec<OrderChange> = orders
        .iter()
        .zip(&posted)
        .map(|(o, p)| change("x", &p.reference, o, true))
        .collect();
    let results = tryton.change_sales_orders(&changes).await;
    for (order, result) in orders.iter().zip(&results) {
        match result.as_ref().expect("Tryton answers") {
            ChangeOutcome::Applied(d) => assert_eq!(d.gross_minor, 0, "{}", order.currency),
            ChangeOutcome::Refused(why) => panic!("{}: {why}", order.currency),
        }
    }
    assert_eq!(
        proxy.calls("model.sale.amendment.delete"),
        0,
        "no batched validate was refused"
    );
    assert_eq!(
        proxy.calls("model.sale.amendment.validate_amendment"),
        2,
        "one validate per number of decimals"
    );
}
