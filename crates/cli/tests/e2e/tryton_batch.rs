//! Many orders per Tryton call (issue 21, part 4): each order keeps its own verdict — an
//! order Tryton cannot take fails alone, a sale an earlier attempt left is finished, not
//! doubled — the totals are what the customers paid, and a batched step Tryton refuses is
//! finished sale by sale, until one goes unanswered. Credit notes for returns come in
//! batches the same way.

use ferry_erp::{CreditNotes, CreditOutcome, DocumentState, PostCredit, PostOrder, PostOrders};
use ferry_testing::rpc_proxy::{RpcFault, RpcProxy};

use crate::tryton::{connector_at, example, sales_with_reference, unique_prefix};

const EXAMPLES: [&str; 4] = [
    "01-sek-simple",
    "02-gbp-voucher-shipping",
    "03-usd-tax-added",
    "04-sek-bundle-voucher",
];

/// The examples under fresh order numbers (a prefix per test keeps references apart too).
fn orders() -> Vec<PostOrder> {
    EXAMPLES.iter().map(|name| example(name)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_posts_each_order_once_with_its_own_verdict() {
    let t = ferry_testing::tryton().expect("Tryton");
    let prefix = unique_prefix();
    let tryton = connector_at(&t.url, &prefix);
    let mut batch = orders();
    // One order Tryton cannot take: an item it does not have.
    let mut unknown = batch[0].clone();
    unknown.external_ref = "990001".into();
    unknown.lines[0].erp_item = "NO-SUCH-ITEM".into();
    batch.push(unknown);
    // One an earlier attempt already posted.
    let earlier = tryton.create_sales_order(&batch[1]).await.expect("posted");
    // One twice in the same batch (a redelivery).
    batch.push(batch[2].clone());

    let results = tryton.create_sales_orders(&batch).await;
    assert_eq!(results.len(), batch.len());
    for (order, result) in batch.iter().zip(&results) {
        let reference = format!("{prefix}{}", order.external_ref);
        if order.external_ref == "990001" {
            let e = result.as_ref().expect_err("an unknown item fails");
            assert!(e.to_string().contains("NO-SUCH-ITEM"), "{e}");
            assert_eq!(sales_with_reference(&tryton, &reference).await, 0);
            continue;
        }
        let document = result.as_ref().expect("posted");
        assert_eq!(document.state, DocumentState::Complete, "{document:?}");
        assert_eq!(document.erp_state, "processing");
        assert_eq!(
            document.gross_minor, order.gross_minor,
            "order {}: Tryton's total is what the customer paid",
            order.external_ref
        );
        assert_eq!(sales_with_reference(&tryton, &reference).await, 1);
    }
    let again = results[1].as_ref().expect("posted");
    assert_eq!(
        again.reference, earlier.reference,
        "the earlier sale, finished"
    );

    // The whole batch again (a redelivery): the same sales, none new.
    let repeated = tryton.create_sales_orders(&batch).await;
    for (first, second) in results.iter().zip(&repeated) {
        if let (Ok(a), Ok(b)) = (first, second) {
            assert_eq!(a.reference, b.reference);
        }
    }
    assert_eq!(
        results[2].as_ref().map(|d| d.reference.clone()).ok(),
        results[results.len() - 1]
            .as_ref()
            .map(|d| d.reference.clone())
            .ok(),
        "the copy is the same sale"
    );
    for order in &batch[..EXAMPLES.len()] {
        let reference = format!("{prefix}{}", order.external_ref);
        assert_eq!(sales_with_reference(&tryton, &reference).await, 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batched_confirm_tryton_refuses_is_finished_sale_by_sale() {
    let t = ferry_testing::tryton().expect("Tryton");
    let proxy = RpcProxy::start(&t.url).await.expect("proxy");
    proxy.fail_next("model.sale.sale.confirm", 1, RpcFault::Refuse);
    let prefix = unique_prefix();
    let tryton = connector_at(&proxy.url(&t.url), &prefix);
    let batch = orders();
    let results = tryton.create_sales_orders(&batch).await;
    assert_eq!(proxy.faults_left(), 0, "the batched confirm was refused");
    for (order, result) in batch.iter().zip(&results) {
        let document = result.as_ref().expect("posted after all");
        assert_eq!(document.state, DocumentState::Complete);
        assert_eq!(document.gross_minor, order.gross_minor);
        let reference = format!("{prefix}{}", order.external_ref);
        assert_eq!(sales_with_reference(&tryton, &reference).await, 1);
    }
    assert!(
        proxy.calls("model.sale.sale.confirm") > 1,
        "confirmed one by one after the refusal"
    );
}

/// The batched confirm is refused, and the first sale then confirmed alone goes unanswered
/// (Tryton hanging): the rest are not tried one by one, each waiting out its own timeout —
/// every order gets an uncertain answer, and the retry finishes each sale, none doubled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn once_a_sale_goes_unanswered_the_rest_of_the_batch_is_left_to_its_retry() {
    let t = ferry_testing::tryton().expect("Tryton");
    let proxy = RpcProxy::start(&t.url).await.expect("proxy");
    // The batched confirm, then the first confirm alone.
    proxy.fail_next("model.sale.sale.confirm", 1, RpcFault::Refuse);
    proxy.fail_next("model.sale.sale.confirm", 1, RpcFault::LoseAnswer);
    let prefix = unique_prefix();
    let tryton = connector_at(&proxy.url(&t.url), &prefix);
    let batch = orders();
    let results = tryton.create_sales_orders(&batch).await;
    assert_eq!(proxy.faults_left(), 0);
    assert_eq!(
        proxy.calls("model.sale.sale.confirm"),
        2,
        "the batch, then one alone — no more"
    );
    for result in &results {
        let error = result.as_ref().expect_err("no answer this time");
        assert!(error.possibly_applied(), "uncertain, so looked up: {error}");
    }

    let again = tryton.create_sales_orders(&batch).await;
    for (order, result) in batch.iter().zip(&again) {
        let document = result.as_ref().expect("finished by the retry");
        assert_eq!(document.state, DocumentState::Complete);
        assert_eq!(document.gross_minor, order.gross_minor);
        let reference = format!("{prefix}{}", order.external_ref);
        assert_eq!(sales_with_reference(&tryton, &reference).await, 1);
    }
}

/// The whole first item line of `order` coming back, as return `return_id`.
fn first_line_back(order: &PostOrder, return_id: i64) -> PostCredit {
    ferry::bench_tryton::first_line_back(order, return_id).expect("an item line")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_of_credits_gives_each_return_its_own_verdict() {
    let t = ferry_testing::tryton().expect("Tryton");
    let proxy = RpcProxy::start(&t.url).await.expect("proxy");
    let prefix = unique_prefix();
    let tryton = connector_at(&proxy.url(&t.url), &prefix);
    let orders = orders();
    for result in tryton.create_sales_orders(&orders).await {
        result.expect("posted");
    }
    let mut credits: Vec<PostCredit> = orders
        .iter()
        .enumerate()
        .map(|(i, o)| first_line_back(o, 10 + i as i64))
        .collect();
    // One an earlier attempt already made.
    let earlier = match tryton
        .create_credit_note(&credits[1])
        .await
        .expect("answers")
    {
        CreditOutcome::Credited(document) => document,
        CreditOutcome::Refused(why) => panic!("refused: {why}"),
    };
    // One of an order Tryton never had.
    credits.push(first_line_back(
        &PostOrder {
            external_ref: "990002".into(),
            ..orders[0].clone()
        },
        1,
    ));
    // One twice (a redelivery).
    credits.push(credits[2].clone());
    // Tryton refuses the batch's confirm once: the return sales are finished one by one.
    proxy.fail_next("model.sale.sale.confirm", 1, RpcFault::Refuse);

    let results = tryton.create_credit_notes(&credits).await;
    assert_eq!(results.len(), credits.len());
    assert_eq!(proxy.faults_left(), 0, "the batched confirm was refused");
    for (credit, result) in credits.iter().zip(&results) {
        let reference = format!("{prefix}{}", credit.external_ref);
        match result.as_ref().expect("Tryton answers") {
            CreditOutcome::Refused(why) => {
                assert_eq!(credit.order_ref, "990002", "refused: {why}");
                assert!(why.contains("990002"), "{why}");
                assert_eq!(sales_with_reference(&tryton, &reference).await, 0);
            }
            CreditOutcome::Credited(document) => {
                assert_ne!(credit.order_ref, "990002", "credited an unknown order");
                assert_eq!(document.state, DocumentState::Complete, "{document:?}");
                assert_eq!(
                    document.gross_minor, -credit.gross_minor,
                    "return {}: exactly what is refunded",
                    credit.return_id
                );
                assert_eq!(sales_with_reference(&tryton, &reference).await, 1);
            }
        }
    }
    let again = match &results[1] {
        Ok(CreditOutcome::Credited(document)) => document,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        again.reference, earlier.reference,
        "the earlier credit, kept"
    );

    // The whole batch again (a redelivery): the same return sales, none new.
    let repeated = tryton.create_credit_notes(&credits).await;
    for (first, second) in results.iter().zip(&repeated) {
        match (first, second) {
            (Ok(CreditOutcome::Credited(a)), Ok(CreditOutcome::Credited(b))) => {
                assert_eq!(a.reference, b.reference)
            }
            (Ok(CreditOutcome::Refused(_)), Ok(CreditOutcome::Refused(_))) => {}
            other => panic!("a different verdict the second time: {other:?}"),
        }
    }
}
