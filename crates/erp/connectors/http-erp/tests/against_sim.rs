//! The HTTP connector against the ERP simulator: idempotent posts, every fault classified as
//! the writer needs it, the shipment feed with its cursor, stock levels and customers, and
//! documents read back as the ERP recorded them.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failing test says what broke

use std::time::Duration;

use ferry_erp::{
    Customer, Customers, DocumentState, Erp, ErpError, LineKind, PostLine, PostOrder, PostOrders,
    ReadBack, ReadLineKind, ShipmentFeed, StockFeed,
};
use ferry_erp_http::HttpErp;
use ferry_sim_erp::{Change, ErpSim, Faults, ShipRequest, ShipmentLine, StockLevel};
use tokio_util::sync::CancellationToken;

async fn sim() -> (ErpSim, HttpErp, CancellationToken) {
    let shutdown = CancellationToken::new();
    let sim = ErpSim::start(([127, 0, 0, 1], 0).into(), shutdown.clone())
        .await
        .expect("starts");
    let erp = HttpErp::new(sim.url(), None, Duration::from_secs(5));
    (sim, erp, shutdown)
}

fn order(n: u32) -> PostOrder {
    let line = |item: &str, gross: i64| PostLine {
        kind: LineKind::Item,
        erp_item: item.into(),
        sku: Some(item.into()),
        centra_line_id: Some(1),
        quantity: 2,
        tax_rate: "25".into(),
        tax_code: None,
        gross_minor: gross,
        tax_minor: gross / 5,
        net_minor: gross - gross / 5,
        description: String::new(),
    };
    PostOrder {
        tenant: "t".into(),
        external_ref: n.to_string(),
        currency: "SEK".into(),
        order_date: String::new(),
        customer: Customer {
            email: format!("c{n}@example.com"),
            ..Customer::default()
        },
        delivery: None,
        lines: vec![line("A", 10000), line("B", 5000)],
        gross_minor: 15000,
        tax_minor: 3000,
        payment_term: None,
        carrier: None,
        sales_channel: None,
    }
}

#[tokio::test]
async fn posts_are_idempotent_and_faults_are_classified() {
    let (sim, erp, shutdown) = sim().await;
    let first = erp.create_sales_order(&order(1)).await.expect("created");
    let again = erp.create_sales_order(&order(1)).await.expect("replayed");
    assert_eq!(first, again);
    assert_eq!(sim.stats().orders, 1);
    // A gift: the goods go to the recipient, the invoice to the customer.
    let gift = PostOrder {
        external_ref: "gift".into(),
        delivery: Some(ferry_erp::Address {
            first_name: "Bo".into(),
            address1: "Storgatan 1".into(),
            city: "Malmö".into(),
            country_code: "SE".into(),
            ..ferry_erp::Address::default()
        }),
        ..order(9)
    };
    erp.create_sales_order(&gift).await.expect("created");
    let stored = sim
        .orders()
        .into_iter()
        .find(|o| o.external_ref == "gift")
        .expect("stored");
    assert_eq!(stored.delivery.expect("delivery")["city"], "Malmö");
    assert_eq!(stored.customer["email"], "c9@example.com");
    assert_eq!(sim.stats().orders, 2);
    assert_eq!(erp.find_sales_order("1").await.expect("found"), Some(first));
    assert_eq!(erp.find_sales_order("2").await.expect("lookup"), None);

    sim.set_faults(Faults {
        throttle_per_mille: 1000,
        ..Faults::default()
    });
    let e = erp.create_sales_order(&order(2)).await.expect_err("429");
    assert!(e.is_transient() && !e.possibly_applied());
    assert_eq!(e.retry_after(), Some(Duration::from_secs(1)));

    sim.set_faults(Faults {
        error_per_mille: 1000,
        ..Faults::default()
    });
    assert!(matches!(
        erp.create_sales_order(&order(2)).await,
        Err(ErpError::Unavailable { .. })
    ));

    sim.set_faults(Faults {
        timeout_after_commit_per_mille: 1000,
        ..Faults::default()
    });
    let e = erp
        .create_sales_order(&order(3))
        .await
        .expect_err("lost answer");
    assert!(e.possibly_applied(), "{e:?}");
    sim.set_faults(Faults::default());
    assert!(
        erp.find_sales_order("3").await.expect("lookup").is_some(),
        "it was committed"
    );

    sim.set_faults(Faults {
        down_for_ms: 300,
        ..Faults::default()
    });
    assert!(erp.health().await.is_err());
    assert!(
        erp.create_sales_order(&order(4))
            .await
            .unwrap_err()
            .is_transient()
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    erp.health().await.expect("the outage window ended");

    // A line lost on import: the answer describes what the ERP kept, so the writer sees it.
    sim.set_faults(Faults {
        drop_line_per_mille: 1000,
        ..Faults::default()
    });
    let answered = erp.create_sales_order(&order(5)).await.expect("created");
    assert_eq!((answered.line_count, answered.gross_minor), (1, 10000));
    let stored = sim.order("5").expect("stored");
    assert_eq!((stored.line_count, stored.gross_minor), (1, 10000));
    assert_eq!(sim.stats().dropped_lines, 1);

    let mut bad = order(6);
    bad.lines[0].net_minor += 1;
    sim.set_faults(Faults::default());
    assert!(matches!(
        erp.create_sales_order(&bad).await,
        Err(ErpError::Rejected(_))
    ));
    shutdown.cancel();
}

#[tokio::test]
async fn shipment_feed_stock_and_customers() {
    let (sim, erp, shutdown) = sim().await;
    for n in 1..=3 {
        erp.create_sales_order(&order(n)).await.expect("created");
    }
    // Order 1 ships in two parts, order 2 whole; order 3 not yet.
    sim.ship(ShipRequest {
        external_ref: "1".into(),
        lines: Some(vec![ShipmentLine {
            erp_item: "A".into(),
            quantity: 2,
        }]),
        carrier: Some("PostNord".into()),
        tracking_number: Some("PN1".into()),
    })
    .expect("shipped");
    sim.ship(ShipRequest {
        external_ref: "2".into(),
        lines: None,
        carrier: None,
        tracking_number: Some("PN2".into()),
    })
    .expect("shipped");
    assert!(
        sim.ship(ShipRequest {
            external_ref: "nope".into(),
            lines: None,
            carrier: None,
            tracking_number: None
        })
        .is_none()
    );

    let page = erp.shipments_since("", 1).await.expect("feed");
    assert_eq!(page.shipments.len(), 1);
    assert_eq!(page.shipments[0].tracking_number.as_deref(), Some("PN1"));
    let page2 = erp
        .shipments_since(&page.next_cursor, 10)
        .await
        .expect("feed");
    assert_eq!(page2.shipments.len(), 1);
    assert_eq!(page2.shipments[0].external_ref, "2");
    assert_eq!(page2.shipments[0].lines.len(), 2, "whole order: both items");
    let empty = erp
        .shipments_since(&page2.next_cursor, 10)
        .await
        .expect("feed");
    assert!(empty.shipments.is_empty());
    assert_eq!(
        empty.next_cursor, page2.next_cursor,
        "nothing new: the cursor stays"
    );
    sim.ship(ShipRequest {
        external_ref: "1".into(),
        lines: Some(vec![ShipmentLine {
            erp_item: "B".into(),
            quantity: 2,
        }]),
        carrier: None,
        tracking_number: Some("PN3".into()),
    })
    .expect("the rest");
    let rest = erp
        .shipments_since(&empty.next_cursor, 10)
        .await
        .expect("feed");
    assert_eq!(rest.shipments.len(), 1);
    assert_eq!(rest.shipments[0].lines[0].erp_item, "B");

    sim.set_stock(&[
        StockLevel {
            erp_item: "A".into(),
            warehouse: "Main".into(),
            available: 7,
        },
        StockLevel {
            erp_item: "B".into(),
            warehouse: "Main".into(),
            available: 0,
        },
        StockLevel {
            erp_item: "A".into(),
            warehouse: "Retail".into(),
            available: 3,
        },
    ]);
    let a = erp.stock_levels(&["A".into()]).await.expect("stock");
    assert_eq!(a.len(), 2);
    assert_eq!(a.iter().map(|l| l.available).sum::<i64>(), 10);
    assert_eq!(erp.stock_levels(&[]).await.expect("all").len(), 3);

    let c1 = erp
        .match_or_create_customer(&order(1).customer, "1")
        .await
        .expect("customer");
    let c1_again = erp
        .match_or_create_customer(&order(1).customer, "9")
        .await
        .expect("customer");
    let c2 = erp
        .match_or_create_customer(&order(2).customer, "2")
        .await
        .expect("customer");
    assert_eq!(c1, c1_again, "matched by e-mail");
    assert_ne!(c1, c2);
    shutdown.cancel();
}

/// An order whose lines do not balance: the ERP refuses it (422).
fn unbalanced(n: u32) -> PostOrder {
    let mut bad = order(n);
    bad.lines[0].net_minor += 1;
    bad
}

#[tokio::test]
async fn a_batch_gives_each_order_its_own_verdict() {
    let (sim, erp, shutdown) = sim().await;
    let batch = vec![order(1), order(2), unbalanced(3), order(4), order(5)];
    let results = erp.create_sales_orders(&batch).await;
    assert_eq!(results.len(), 5);
    for (i, result) in results.iter().enumerate() {
        if i == 2 {
            assert!(
                matches!(result, Err(ErpError::Rejected(r)) if r.contains("does not balance")),
                "{result:?}"
            );
        } else {
            let document = result.as_ref().expect("created");
            assert_eq!(document.external_ref, batch[i].external_ref);
            assert_eq!(document.gross_minor, 15000);
            assert_eq!(document.line_count, 2);
        }
    }
    let stats = sim.stats();
    assert_eq!(
        (stats.orders, stats.create_requests, stats.batch_requests),
        (4, 1, 1)
    );

    // The same batch again: the ERP recognises every order by its external reference.
    let again = erp.create_sales_orders(&batch).await;
    assert_eq!(again[0], results[0]);
    assert_eq!(again[4], results[4]);
    assert!(matches!(again[2], Err(ErpError::Rejected(_))));
    assert_eq!(sim.stats().orders, 4);
    assert_eq!(sim.stats().idempotent_replays, 4);
    shutdown.cancel();
}

#[tokio::test]
async fn a_failed_batch_request_is_every_orders_failure() {
    let (sim, erp, shutdown) = sim().await;
    let batch = vec![order(1), order(2), order(3)];

    sim.set_faults(Faults {
        throttle_per_mille: 1000,
        ..Faults::default()
    });
    for result in erp.create_sales_orders(&batch).await {
        let e = result.expect_err("429");
        assert!(e.is_transient() && !e.possibly_applied());
        assert_eq!(e.retry_after(), Some(Duration::from_secs(1)));
    }
    assert_eq!(sim.stats().orders, 0);

    // Saved, then the answer is lost: every order is uncertain and settled by lookup.
    sim.set_faults(Faults {
        timeout_after_commit_per_mille: 1000,
        ..Faults::default()
    });
    for result in erp.create_sales_orders(&batch).await {
        assert!(result.expect_err("504").possibly_applied());
    }
    assert_eq!(sim.stats().orders, 3);
    sim.set_faults(Faults::default());
    assert!(erp.find_sales_order("2").await.expect("lookup").is_some());
    shutdown.cancel();
}

#[tokio::test]
async fn batches_keep_to_the_limit_and_an_erp_without_the_call_gets_single_posts() {
    let shutdown = CancellationToken::new();
    let sim = ErpSim::start(([127, 0, 0, 1], 0).into(), shutdown.clone())
        .await
        .expect("starts");
    let erp = HttpErp::new(sim.url(), None, Duration::from_secs(5)).with_batch_limit(2);
    assert_eq!(erp.batch_limit(), 2);
    let results = erp
        .create_sales_orders(&(1..=5).map(order).collect::<Vec<_>>())
        .await;
    assert!(results.iter().all(Result::is_ok));
    let stats = sim.stats();
    assert_eq!((stats.orders, stats.batch_requests), (5, 3));

    // An ERP that does not know the batch call refuses it as a whole: each order is then
    // posted on its own, and none is refused for it.
    sim.set_faults(Faults {
        no_batch_call: true,
        ..Faults::default()
    });
    let results = erp.create_sales_orders(&[order(6), unbalanced(7)]).await;
    assert!(results[0].is_ok(), "{:?}", results[0]);
    assert!(matches!(results[1], Err(ErpError::Rejected(_))));
    let stats = sim.stats();
    assert_eq!(
        (stats.orders, stats.batch_requests, stats.create_requests),
        (6, 4, 3 + 1 + 2)
    );
    shutdown.cancel();
}

/// Documents say where they stand: `unfinished` while an ERP books them through a queue,
/// `complete` once booked, `cancelled` once someone cancelled them in the ERP — in the
/// create answer, on replay and on lookup alike.
#[tokio::test]
async fn documents_carry_their_state() {
    use ferry_erp::DocumentState;
    let (sim, erp, shutdown) = sim().await;
    sim.set_faults(Faults {
        booking_ms: 300,
        ..Faults::default()
    });
    let created = erp.create_sales_order(&order(1)).await.expect("accepted");
    assert_eq!(created.state, DocumentState::Unfinished);
    let found = erp
        .find_sales_order("1")
        .await
        .expect("lookup")
        .expect("found");
    assert_eq!(found.state, DocumentState::Unfinished);
    tokio::time::sleep(Duration::from_millis(350)).await;
    let replayed = erp.create_sales_order(&order(1)).await.expect("replayed");
    assert_eq!(replayed.state, DocumentState::Complete);
    assert_eq!(replayed.reference, created.reference);

    assert!(sim.cancel("1"));
    let found = erp
        .find_sales_order("1")
        .await
        .expect("lookup")
        .expect("found");
    assert_eq!(found.state, DocumentState::Cancelled);
    let replayed = erp.create_sales_order(&order(1)).await.expect("replayed");
    assert_eq!(replayed.state, DocumentState::Cancelled);
    assert_eq!(sim.stats().orders, 1);
    assert!(!sim.cancel("no-such-order"));
    shutdown.cancel();
}

#[tokio::test]
async fn documents_are_read_back_as_recorded_whatever_happened_to_them() {
    let (sim, erp, shutdown) = sim().await;
    for n in 1..=8 {
        erp.create_sales_order(&order(n)).await.expect("created");
    }
    let clean = erp.read_sales_orders("1").await.expect("read");
    assert_eq!(clean.len(), 1);
    let doc = &clean[0];
    assert_eq!(
        (doc.currency.as_str(), doc.gross_minor, doc.tax_minor),
        ("SEK", 15000, 3000)
    );
    assert_eq!(doc.state, DocumentState::Complete);
    assert_eq!(doc.lines.len(), 2);
    assert_eq!(doc.lines[0].kind, ReadLineKind::Item);
    assert_eq!(
        (
            doc.lines[0].erp_item.as_str(),
            doc.lines[0].quantity,
            doc.lines[0].gross_minor
        ),
        ("A", 2, 10000)
    );
    assert_eq!(doc.lines[0].tax_rate, "25");

    // Behind Ferry's back, one change per order.
    let changes = [
        ("2", Change::DropLine),
        ("3", Change::ChangePrice),
        ("4", Change::TaxRounding),
        ("5", Change::WrongCurrency),
        ("6", Change::Duplicate),
        ("7", Change::Delete),
        ("8", Change::Cancel),
    ];
    for (external_ref, change) in changes {
        assert!(sim.change(external_ref, change), "{change:?}");
    }
    let read = |r: &'static str| erp.read_sales_orders(r);
    assert_eq!(read("2").await.unwrap()[0].lines.len(), 1);
    assert_eq!(read("2").await.unwrap()[0].gross_minor, 10000);
    let dearer = &read("3").await.unwrap()[0];
    // One currency unit (100 minor) more per piece on 2 pieces, 25 % tax on it.
    assert_eq!(
        (
            dearer.lines[0].net_minor,
            dearer.lines[0].tax_minor,
            dearer.gross_minor
        ),
        (8000 + 200, 2000 + 50, 15000 + 250)
    );
    let rounded = &read("4").await.unwrap()[0];
    assert_eq!((rounded.gross_minor, rounded.tax_minor), (15000, 3001));
    assert_eq!(read("5").await.unwrap()[0].currency, "EUR");
    let twice = read("6").await.unwrap();
    assert_eq!(twice.len(), 2);
    assert_ne!(twice[0].reference, twice[1].reference);
    assert!(read("7").await.unwrap().is_empty(), "deleted");
    assert!(erp.find_sales_order("7").await.unwrap().is_none());
    assert_eq!(read("8").await.unwrap()[0].state, DocumentState::Cancelled);
    assert!(read("unknown").await.unwrap().is_empty());

    // Many at once, in the order asked, across requests of at most 500 references: the
    // same documents as one by one.
    let mut refs: Vec<String> = (1..=8).map(|n| n.to_string()).collect();
    refs.extend((1000..2100).map(|n| n.to_string()));
    refs.push("6".into());
    let reads_before = sim.stats().reads;
    let many = erp.read_many(&refs, 1).await.expect("read many");
    assert_eq!(
        sim.stats().reads - reads_before,
        3,
        "1,109 references in 3 requests"
    );
    assert_eq!(many.len(), refs.len());
    for (r, documents) in refs.iter().zip(&many).filter(|(r, _)| r.len() == 1) {
        assert_eq!(documents, &erp.read_sales_orders(r).await.unwrap(), "{r}");
    }
    assert_eq!(many[5].len(), 2, "the duplicate");
    assert!(many[6].is_empty(), "the deleted one");
    assert!(many[8..many.len() - 1].iter().all(Vec::is_empty));
    assert_eq!(many.last().map(Vec::len), Some(2));

    // A document entered by hand, and the whole book page by page.
    let by_hand = sim.enter_by_hand(ferry_sim_erp::NewSalesOrder::counter_sale("A", 5000));
    let mut cursor = String::new();
    let mut listed = Vec::new();
    loop {
        let page = erp.sales_orders_since(&cursor, 3).await.expect("page");
        if page.next_cursor == cursor {
            break;
        }
        listed.extend(page.documents);
        cursor = page.next_cursor;
    }
    // 8 posted + 1 duplicate + 1 by hand, less the deleted one.
    assert_eq!(listed.len(), 9, "{listed:#?}");
    let hand = listed.last().unwrap();
    assert_eq!(
        (hand.reference.as_str(), hand.external_ref.as_str()),
        (by_hand.as_str(), "")
    );
    assert_eq!(sim.stats().altered, 7);
    assert!(sim.stats().reads > 0);

    // The same changes made on import: the create answers what was recorded.
    sim.set_faults(Faults {
        change_price_per_mille: 1000,
        duplicate_per_mille: 1000,
        ..Faults::default()
    });
    let answered = erp.create_sales_order(&order(9)).await.expect("created");
    assert_eq!(
        answered.gross_minor,
        15000 + 250,
        "recorded dearer, and says so"
    );
    let recorded = erp.read_sales_orders("9").await.expect("read");
    assert_eq!(recorded.len(), 2, "recorded twice");
    assert!(
        recorded
            .iter()
            .all(|d| d.gross_minor == answered.gross_minor)
    );
    shutdown.cancel();
}

/// A posted order changed (a line removed, the rest kept), the same change again, a
/// cancellation; a shipped order and an ERP that cannot change documents refuse.
#[tokio::test]
async fn a_posted_order_is_changed_once_and_a_shipped_one_is_refused() {
    use ferry_erp::{ChangeOrders, ChangeOutcome, OrderChange};
    let (sim, erp, shutdown) = sim().await;
    let posted = erp.create_sales_order(&order(7)).await.expect("posted");
    let mut newer = order(7);
    newer.lines.truncate(1);
    newer.gross_minor = 10000;
    newer.tax_minor = 2000;
    let change = OrderChange {
        change_id: "hash-2".into(),
        erp_reference: posted.reference.clone(),
        order: newer,
        cancel: false,
    };
    let ChangeOutcome::Applied(doc) = erp.change_sales_order(&change).await.expect("answers")
    else {
        panic!("refused");
    };
    assert_eq!(
        (
            doc.reference.as_str(),
            doc.gross_minor,
            doc.tax_minor,
            doc.line_count
        ),
        (posted.reference.as_str(), 10000, 2000, 1)
    );
    // Again: the same document, changed once, no second one.
    let again = erp.change_sales_order(&change).await.expect("answers");
    assert_eq!(again, ChangeOutcome::Applied(doc));
    assert_eq!((sim.stats().changes, sim.orders().len()), (1, 1));
    let read = erp.read_sales_orders("7").await.expect("read");
    assert_eq!(read[0].lines.len(), 1);

    let cancel = OrderChange {
        change_id: "hash-3".into(),
        cancel: true,
        ..change.clone()
    };
    let ChangeOutcome::Applied(cancelled) = erp.change_sales_order(&cancel).await.unwrap() else {
        panic!("refused");
    };
    assert_eq!(cancelled.state, DocumentState::Cancelled);

    // Shipped: refused, with the ERP's reason.
    let shipped = erp.create_sales_order(&order(8)).await.expect("posted");
    sim.ship(ShipRequest {
        external_ref: "8".into(),
        tracking_number: None,
        lines: None,
        carrier: None,
    })
    .expect("shipped");
    let refused = erp
        .change_sales_order(&OrderChange {
            change_id: "hash-8".into(),
            erp_reference: shipped.reference.clone(),
            order: order(8),
            cancel: true,
        })
        .await
        .expect("answers");
    assert!(
        matches!(&refused, ChangeOutcome::Refused(why) if why.contains("shipped")),
        "{refused:?}"
    );
    sim.set_faults(Faults {
        refuse_changes: Some("invoiced: issue a credit note".into()),
        ..Faults::default()
    });
    let posted = erp.create_sales_order(&order(9)).await.expect("posted");
    let refused = erp
        .change_sales_order(&OrderChange {
            change_id: "hash-9".into(),
            erp_reference: posted.reference,
            order: order(9),
            cancel: false,
        })
        .await
        .expect("answers");
    assert_eq!(
        refused,
        ChangeOutcome::Refused("invoiced: issue a credit note".into())
    );
    // Outages are errors to retry, not refusals.
    sim.set_faults(Faults {
        down: true,
        ..Faults::default()
    });
    let down = erp.change_sales_order(&change).await;
    assert!(down.is_err_and(|e| e.is_transient()));
    shutdown.cancel();
}
