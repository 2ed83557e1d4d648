//! An order changed after it reached the ERP: the amendment (the difference and the whole
//! newer order) is applied to the ERP document once (ADR 0035) — never a second sales
//! order, never twice on a redelivery — and a change the ERP refuses (the order shipped)
//! is finance's exception. A delivery address corrected in Centra reaches the document too.
//! Changes of one order reach the ERP one after another, never an older after a newer.

use std::time::Duration;

use ferry::stack::{Stack, StackOptions};
use ferry_proto::Message as _;
use ferry_sim_centra::OrderMix;
use ferry_testing::TestEnv;
use futures::StreamExt;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_line_cancelled_after_posting_changes_the_erp_document_once() {
    let env = TestEnv::new().await;
    let options = StackOptions {
        tenant: "acme".into(),
        centra_requests_per_10s: 1000,
        ..StackOptions::default()
    };
    let stack = Stack::start(env.config(), options).await.expect("stack");
    let store = env.store().await;
    let mix = OrderMix {
        hold_pct: 0,
        pending_pct: 0,
        bundle_pct: 0,
        cancellation_pct: 0,
        voucher_pct: 0,
        markets: vec![1],
        ..OrderMix::default()
    };
    // An order with at least two units, so one can be cancelled.
    let number = loop {
        let n = stack.centra.generate(1, &mix)[0];
        let order = stack.centra.state.order(n).unwrap();
        if order.lines.iter().map(|l| l.quantity).sum::<i64>() >= 2 {
            break n;
        }
    };
    for _ in 0..200 {
        let row = store.ledger_row("acme", number).await.unwrap();
        if row.is_some_and(|r| r.state == "posted") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let before = store
        .ledger_row("acme", number)
        .await
        .unwrap()
        .expect("row");
    assert_eq!(before.state, "posted");

    let client = env.nats().await;
    let topology = ferry_runtime::Topology::new(&env.prefix);
    let mut amended = client
        .subscribe(topology.amended_subject("acme", number))
        .await
        .unwrap();
    client.flush().await.unwrap();

    // Customer service cancels one unit of the first line in Centra.
    let (line_id, unit) = {
        let o = stack.centra.state.order(number).unwrap();
        let l = o.lines.iter().find(|l| l.quantity > 0).unwrap();
        (l.id, l.unit_price)
    };
    stack
        .centra
        .state
        .update::<()>(number, |o| {
            let l = o.lines.iter_mut().find(|l| l.id == line_id).unwrap();
            l.quantity -= 1;
            l.cancelled_quantity += 1;
            Ok(())
        })
        .unwrap()
        .unwrap();

    let message = tokio::time::timeout(Duration::from_secs(20), amended.next())
        .await
        .expect("an amendment")
        .unwrap();
    let event = ferry_proto::order::v1::OrderAmended::decode(message.payload.as_ref()).unwrap();
    assert!(event.lines_known);
    assert!(!event.cancelled);
    assert_eq!(event.erp_reference, before.erp_reference.clone().unwrap());
    let unit_minor = (unit * rust_decimal::Decimal::from(100))
        .to_string()
        .parse::<f64>()
        .unwrap() as i64;
    let previous = event.previous_totals.unwrap();
    let now = event.totals.unwrap();
    assert_eq!(
        previous.gross_minor - now.gross_minor,
        unit_minor,
        "one unit less"
    );
    let change = event
        .changes
        .iter()
        .find(|c| c.centra_line_id == Some(line_id))
        .expect("the cancelled line changed");
    assert_eq!(change.quantity, change.previous_quantity - 1);

    // The ERP document now holds the newer order: one unit less, the same document.
    let reference = before.erp_reference.clone().unwrap();
    let mut document = None;
    for _ in 0..200 {
        document = stack
            .erp
            .orders()
            .into_iter()
            .find(|o| o.reference == reference && o.gross_minor == now.gross_minor);
        if document.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let document = document.expect("the change applied to the ERP document");
    assert_eq!(document.tax_minor, now.tax_minor);
    assert_eq!(stack.erp.orders().len(), 1, "never a second sales order");
    let applied = store
        .amendment("acme", number, &event.snapshot_hash)
        .await
        .unwrap()
        .expect("recorded");
    assert_eq!(
        (applied.outcome.as_str(), applied.erp_gross_minor),
        ("applied", Some(now.gross_minor))
    );
    let timeline = store
        .order_timeline("acme", number)
        .await
        .unwrap()
        .expect("timeline");
    assert!(
        timeline.steps.iter().any(|s| s.step == "changed_in_erp"),
        "{:?}",
        timeline.steps
    );

    // The same event again (a redelivery, a replay past the duplicate window): nothing.
    let js = ferry_runtime::nats::jetstream(client.clone());
    js.publish(
        topology.amended_subject("acme", number),
        message.payload.clone(),
    )
    .await
    .unwrap()
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(stack.erp.stats().changes, 1, "applied once");
    assert!(store.open_exceptions("acme").await.unwrap().is_empty());

    // Before it ships, the customer has it sent to a friend: the ERP document ships
    // there (ADR 0039), still one document, the money unchanged.
    stack
        .centra
        .state
        .update::<()>(number, |o| {
            o.shipping_address.first_name = "Bo".into();
            o.shipping_address.address1 = "Lilla torg 3".into();
            o.shipping_address.city = "Lund".into();
            Ok(())
        })
        .unwrap()
        .unwrap();
    let moved = crate::until("the delivery address in the ERP", || {
        stack.erp.orders().into_iter().find(|o| {
            o.reference == reference && o.delivery.as_ref().is_some_and(|d| d["city"] == "Lund")
        })
    })
    .await;
    assert_eq!(moved.delivery.expect("delivery")["first_name"], "Bo");
    assert_eq!(moved.gross_minor, now.gross_minor);
    assert_eq!(stack.erp.orders().len(), 1, "never a second sales order");
    assert_eq!(stack.erp.stats().changes, 2);

    // The warehouse ships it; then the customer cancels in Centra: the ERP refuses, and
    // finance is told with the money at stake.
    stack
        .erp
        .ship(ferry_sim_erp::ShipRequest {
            external_ref: number.to_string(),
            tracking_number: Some("PN1SE".into()),
            lines: None,
            carrier: None,
        })
        .expect("shipped");
    stack
        .centra
        .state
        .update::<()>(number, |o| {
            for l in &mut o.lines {
                l.cancelled_quantity += l.quantity;
                l.quantity = 0;
            }
            Ok(())
        })
        .unwrap()
        .unwrap();
    let mut exceptions = Vec::new();
    for _ in 0..400 {
        exceptions = store.open_exceptions("acme").await.unwrap();
        if exceptions.iter().any(|e| e.kind == "amendment_not_applied") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let refused = exceptions
        .iter()
        .find(|e| e.kind == "amendment_not_applied")
        .expect("finance is told");
    assert_eq!(refused.owner, "finance");
    assert!(refused.message.contains("shipped"), "{}", refused.message);
    assert_eq!(stack.erp.orders().len(), 1, "never a second sales order");
    assert_eq!(
        stack.erp.stats().changes,
        2,
        "the refused change changed nothing"
    );
    stack.shutdown().await;
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_older_change_never_lands_after_a_newer_one() {
    let env = TestEnv::new().await;
    let options = StackOptions {
        tenant: "acme".into(),
        centra_requests_per_10s: 1000,
        ..StackOptions::default()
    };
    let stack = Stack::start(env.config(), options).await.expect("stack");
    let store = env.store().await;
    let number = stack.centra.generate(
        1,
        &OrderMix {
            hold_pct: 0,
            pending_pct: 0,
            cancellation_pct: 0,
            markets: vec![1],
            ..OrderMix::default()
        },
    )[0];
    let client = env.nats().await;
    let topology = ferry_runtime::Topology::new(&env.prefix);
    let mut amended = client
        .subscribe(topology.amended_subject("acme", number))
        .await
        .unwrap();
    client.flush().await.unwrap();
    assert_eq!(
        ferry_testing::wait_for_state(&store, "acme", "posted", 1, Duration::from_secs(60)).await,
        1
    );
    // A real change first, to have a change message of this order to vary.
    stack
        .centra
        .state
        .update::<()>(number, |o| {
            o.shipping_address.city = "Uppsala".into();
            Ok(())
        })
        .unwrap()
        .unwrap();
    let message = tokio::time::timeout(Duration::from_secs(20), amended.next())
        .await
        .expect("an amendment")
        .unwrap();
    let base = ferry_proto::order::v1::OrderAmended::decode(message.payload.as_ref()).unwrap();
    let fetched = base
        .order
        .as_ref()
        .and_then(|o| o.snapshot_fetched_at)
        .expect("fetched at");
    let variant = |hash: &str, seconds_later: i64, city: &str| {
        let mut change = base.clone();
        change.snapshot_hash = hash.to_owned();
        let order = change.order.as_mut().expect("order");
        order.snapshot_fetched_at = Some(prost_types::Timestamp {
            seconds: fetched.seconds + seconds_later,
            nanos: fetched.nanos,
        });
        let customer = order.customer.as_mut().expect("customer");
        customer
            .shipping_address
            .get_or_insert_with(Default::default)
            .city = city.to_owned();
        change.encode_to_vec()
    };
    // Slow answers, so that the two changes of each round would be in flight together.
    stack.erp.set_faults(ferry_sim_erp::Faults {
        latency_ms: 100,
        jitter_ms: 300,
        ..ferry_sim_erp::Faults::default()
    });
    let js = ferry_runtime::nats::jetstream(client.clone());
    for round in 1..=3i64 {
        let (older, newer) = (format!("older-{round}"), format!("newer-{round}"));
        let newer_city = format!("Lund {round}");
        // The newer arrives first, the older right behind it (a redelivery after a
        // timeout, say).
        for (hash, later, city) in [
            (&newer, 2 * round + 1, newer_city.as_str()),
            (&older, 2 * round, "Malmö"),
        ] {
            js.publish(
                topology.amended_subject("acme", number),
                variant(hash, later, city).into(),
            )
            .await
            .unwrap()
            .await
            .unwrap();
        }
        for hash in [&older, &newer] {
            let mut recorded = None;
            for _ in 0..400 {
                recorded = store.amendment("acme", number, hash).await.unwrap();
                if recorded.is_some() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            assert!(recorded.is_some(), "round {round}: change {hash} recorded");
        }
        let last = store
            .last_applied_amendment("acme", number)
            .await
            .unwrap()
            .expect("applied");
        assert_eq!(last.snapshot_hash, newer, "round {round}");
        let document = stack
            .erp
            .orders()
            .into_iter()
            .find(|o| o.external_ref == number.to_string())
            .expect("the document");
        assert_eq!(
            document.delivery.as_ref().map(|d| d["city"].clone()),
            Some(serde_json::json!(newer_city)),
            "round {round}: the ERP holds the newer change"
        );
    }
    assert_eq!(stack.erp.orders().len(), 1, "never a second sales order");
    stack.shutdown().await;
    env.cleanup().await;
}
