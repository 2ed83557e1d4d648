//! Fulfilment feedback against the simulators: ERP shipments reach Centra as completed
//! shipments with the tracking number and the customer's e-mail — whole orders, partial
//! shipments then the rest, bundles — exactly once, even when the service crashed between
//! Centra's answer and its ledger write, and never beyond Centra's mutation quota.

use std::time::Duration;

use ferry::stack::{Stack, StackOptions};
use ferry_sim_centra::OrderMix;
use ferry_sim_centra::ops::EmailKind;
use ferry_sim_erp::{ShipRequest, ShipmentLine};
use ferry_store::fulfilment::ShipmentState;
use ferry_testing::TestEnv;

async fn posted(store: &ferry_store::Store, want: i64) {
    let n =
        ferry_testing::wait_for_state(store, "acme", "posted", want, Duration::from_secs(60)).await;
    assert!(n >= want, "only {n} of {want} orders were posted");
}

/// Waits until Centra has `want` completed shipments for the order.
async fn centra_shipments(
    stack: &Stack,
    order: i64,
    want: usize,
) -> Vec<ferry_sim_centra::ops::Shipment> {
    for _ in 0..300 {
        let shipments: Vec<_> = stack
            .centra
            .state
            .ops(|o| o.shipments_of(order).into_iter().cloned().collect());
        if shipments.iter().filter(|s| s.is_shipped).count() >= want {
            return shipments;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stack
        .centra
        .state
        .ops(|o| o.shipments_of(order).into_iter().cloned().collect())
}

fn shipped_emails(stack: &Stack, order: i64) -> Vec<ferry_sim_centra::ops::Email> {
    stack.centra.state.ops(|o| {
        o.emails
            .iter()
            .filter(|e| e.order_number == order && e.kind == EmailKind::ShippingConfirmation)
            .cloned()
            .collect()
    })
}

/// Delivers every shipment on the ERP stream to fulfilment-feedback again, as a consumer
/// that lost its acknowledgements would: its durable consumer is deleted and the service
/// creates it anew from the start of the stream.
async fn redeliver_shipments(stack: &Stack) {
    let js = stack.jetstream().await.unwrap();
    let topology = ferry_runtime::Topology::new(&stack.config.nats.prefix);
    let stream = js
        .get_stream(topology.stream_name(ferry_runtime::StreamKind::Erp))
        .await
        .unwrap();
    stream
        .delete_consumer(&topology.consumer_name(ferry_fulfilment::SERVICE, "acme"))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn erp_shipments_reach_centra_once_with_tracking_and_email() {
    let env = TestEnv::new().await;
    let options = StackOptions {
        tenant: "acme".into(),
        seed: 21,
        centra_requests_per_10s: 1000,
        ..StackOptions::default()
    };
    let mut stack = Stack::start(env.config(), options).await.expect("stack");
    let store = env.store().await;
    let mix = OrderMix {
        hold_pct: 0,
        pending_pct: 0,
        cancellation_pct: 0,
        markets: vec![1],
        ..OrderMix::default()
    };
    let plain = stack.centra.generate(
        2,
        &OrderMix {
            bundle_pct: 0,
            ..mix.clone()
        },
    );
    let bundled = stack.centra.generate(
        1,
        &OrderMix {
            bundle_pct: 100,
            ..mix.clone()
        },
    );
    posted(&store, 3).await;

    // 1. A whole order, shipped at once.
    let whole = plain[0];
    stack
        .erp
        .ship(ShipRequest {
            external_ref: whole.to_string(),
            lines: None,
            carrier: Some("PostNord".into()),
            tracking_number: Some("PN-WHOLE".into()),
        })
        .expect("shipped in the ERP");
    let shipments = centra_shipments(&stack, whole, 1).await;
    assert_eq!(shipments.len(), 1, "one Centra shipment");
    assert!(shipments[0].is_shipped);
    assert_eq!(shipments[0].tracking_number.as_deref(), Some("PN-WHOLE"));
    assert_eq!(shipments[0].carrier.as_deref(), Some("PostNord"));
    let order = stack.centra.state.order(whole).unwrap();
    assert_eq!(
        format!("{:?}", order.status),
        "Shipped",
        "the last shipment completes the order"
    );
    assert_eq!(
        shipped_emails(&stack, whole).len(),
        1,
        "the customer got one e-mail"
    );

    // 2. A partial shipment, then the rest.
    let split = plain[1];
    let erp_order = stack.erp.order(&split.to_string()).unwrap();
    let items: Vec<_> = erp_order
        .lines
        .iter()
        .filter(|l| l.kind == "item")
        .cloned()
        .collect();
    let (first, rest): (Vec<_>, Vec<_>) = items.iter().enumerate().partition(|(i, _)| *i == 0);
    let to_lines = |v: Vec<(usize, &ferry_sim_erp::Line)>| -> Vec<ShipmentLine> {
        v.into_iter()
            .map(|(_, l)| ShipmentLine {
                erp_item: l.erp_item.clone(),
                quantity: l.quantity,
            })
            .collect()
    };
    let rest = to_lines(rest);
    stack
        .erp
        .ship(ShipRequest {
            external_ref: split.to_string(),
            lines: Some(to_lines(first)),
            carrier: Some("PostNord".into()),
            tracking_number: Some("PN-PART-1".into()),
        })
        .unwrap();
    let after_first = centra_shipments(&stack, split, 1).await;
    assert_eq!(after_first.len(), 1);
    if !rest.is_empty() {
        assert_ne!(
            format!("{:?}", stack.centra.state.order(split).unwrap().status),
            "Shipped",
            "not shipped until the rest has gone"
        );
        stack
            .erp
            .ship(ShipRequest {
                external_ref: split.to_string(),
                lines: Some(rest),
                carrier: Some("PostNord".into()),
                tracking_number: Some("PN-PART-2".into()),
            })
            .unwrap();
        let both = centra_shipments(&stack, split, 2).await;
        assert_eq!(both.len(), 2);
    }
    assert_eq!(
        format!("{:?}", stack.centra.state.order(split).unwrap().status),
        "Shipped"
    );

    // 3. A bundle: the ERP ships components; Centra gets the bundle line.
    let b = bundled[0];
    stack
        .erp
        .ship(ShipRequest {
            external_ref: b.to_string(),
            lines: None,
            carrier: None,
            tracking_number: Some("PN-BUNDLE".into()),
        })
        .unwrap();
    let bundle_shipments = centra_shipments(&stack, b, 1).await;
    assert_eq!(bundle_shipments.len(), 1);
    let centra_order = stack.centra.state.order(b).unwrap();
    for line in &centra_order.lines {
        let shipped: i64 = bundle_shipments[0]
            .lines
            .iter()
            .filter(|l| l.order_line_id == line.id)
            .map(|l| l.quantity)
            .sum();
        assert_eq!(shipped, line.quantity, "line {} shipped whole", line.id);
    }

    // 4. A crash between Centra's answer and the ledger write: the ledger still says
    //    "sending", the ERP's feed is read again from the start and every shipment is
    //    delivered again. Nothing is created twice.
    sqlx::query("UPDATE shipment_ledger SET state = 'sending' WHERE tenant = 'acme'")
        .execute(store.pool())
        .await
        .unwrap();
    stack.kill_service("fulfilment-feedback").await;
    stack
        .cursors()
        .await
        .unwrap()
        .set("acme", ferry_fulfilment::FEED, "")
        .await
        .unwrap();
    redeliver_shipments(&stack).await;
    stack
        .start_service(
            "fulfilment-feedback",
            &ferry_runtime::service::Readiness::default(),
        )
        .await
        .unwrap();
    for _ in 0..100 {
        let sending: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM shipment_ledger WHERE tenant = 'acme' AND state = 'sending'",
        )
        .fetch_one(store.pool())
        .await
        .unwrap();
        if sending == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        centra_shipments(&stack, whole, 1).await.len(),
        1,
        "no duplicate"
    );
    assert_eq!(shipped_emails(&stack, whole).len(), 1, "no second e-mail");
    assert_eq!(centra_shipments(&stack, b, 1).await.len(), 1);

    // Centra never had to refuse a call for the budget.
    let refused = stack
        .centra
        .state
        .request_log()
        .iter()
        .filter(|r| r.status == 429)
        .count();
    assert_eq!(refused, 0);
    let open = store.open_exceptions("acme").await.unwrap();
    assert!(open.is_empty(), "{open:?}");
    stack.shutdown().await;
    env.cleanup().await;
}

/// A shipment for an order Ferry never posted, and one shipping more than was ordered,
/// become operations exceptions; Centra is not told.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_orders_and_overshipments_become_exceptions() {
    let env = TestEnv::new().await;
    let options = StackOptions {
        tenant: "acme".into(),
        seed: 22,
        centra_requests_per_10s: 1000,
        ..StackOptions::default()
    };
    let stack = Stack::start(env.config(), options).await.expect("stack");
    let store = env.store().await;
    let numbers = stack.centra.generate(
        1,
        &OrderMix {
            hold_pct: 0,
            pending_pct: 0,
            bundle_pct: 0,
            markets: vec![1],
            ..OrderMix::default()
        },
    );
    posted(&store, 1).await;
    let n = numbers[0];
    let item = stack.erp.order(&n.to_string()).unwrap().lines[0]
        .erp_item
        .clone();
    stack
        .erp
        .ship(ShipRequest {
            external_ref: n.to_string(),
            lines: Some(vec![ShipmentLine {
                erp_item: item,
                quantity: 999,
            }]),
            carrier: None,
            tracking_number: Some("PN-TOO-MANY".into()),
        })
        .unwrap();
    let mut kinds = Vec::new();
    for _ in 0..100 {
        kinds = store
            .open_exceptions("acme")
            .await
            .unwrap()
            .into_iter()
            .map(|e| (e.kind, e.owner))
            .collect();
        if !kinds.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        kinds,
        vec![(
            "shipment_quantity_mismatch".to_owned(),
            "operations".to_owned()
        )]
    );
    assert!(
        stack.centra.state.ops(|o| o.shipments_of(n).is_empty()),
        "Centra not told"
    );

    // Centra refuses the shipment of an order put on hold after it reached the ERP:
    // customer service hears, with Centra's words.
    let held = stack.centra.generate(
        1,
        &OrderMix {
            hold_pct: 0,
            pending_pct: 0,
            bundle_pct: 0,
            markets: vec![1],
            ..OrderMix::default()
        },
    )[0];
    posted(&store, 2).await;
    stack
        .centra
        .state
        .update(held, |o| {
            o.is_on_hold = true;
            Ok::<(), ()>(())
        })
        .expect("order")
        .expect("held");
    stack
        .erp
        .ship(ShipRequest {
            external_ref: held.to_string(),
            lines: None,
            carrier: None,
            tracking_number: Some("PN-HELD".into()),
        })
        .unwrap();
    let mut refused = Vec::new();
    for _ in 0..100 {
        refused = store
            .open_exceptions("acme")
            .await
            .unwrap()
            .into_iter()
            .filter(|e| e.kind == "shipment_refused")
            .collect();
        if !refused.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(refused.len(), 1, "Centra's refusal is an exception");
    assert_eq!(refused[0].owner, "customer_service");
    assert!(stack.centra.state.ops(|o| o.shipments_of(held).is_empty()));

    // An order typed into the ERP by hand, never posted by Ferry, then shipped.
    let http = reqwest::Client::new();
    let created = http
        .post(format!("{}/api/sales-orders", stack.erp.url()))
        .json(&serde_json::json!({
            "external_ref": "777777", "currency": "SEK",
            "lines": [{"kind": "item", "erp_item": "X", "quantity": 1, "tax_rate": "25",
                       "gross_minor": 125, "tax_minor": 25, "net_minor": 100}]
        }))
        .send()
        .await
        .unwrap();
    assert!(created.status().is_success());
    stack
        .erp
        .ship(ShipRequest {
            external_ref: "777777".into(),
            lines: None,
            carrier: None,
            tracking_number: Some("PN-HAND".into()),
        })
        .unwrap();
    for _ in 0..100 {
        if store
            .open_exceptions("acme")
            .await
            .unwrap()
            .iter()
            .any(|e| e.kind == "shipment_for_unknown_order")
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let unknown: Vec<_> = store
        .open_exceptions("acme")
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.kind == "shipment_for_unknown_order")
        .collect();
    assert_eq!(unknown.len(), 1);
    assert_eq!(unknown[0].owner, "operations");

    // The posted sales order is gone from the stream (past its retention): that shipment
    // becomes an exception and the feed keeps flowing for the next one.
    let more = stack.centra.generate(
        2,
        &OrderMix {
            hold_pct: 0,
            pending_pct: 0,
            bundle_pct: 0,
            markets: vec![1],
            ..OrderMix::default()
        },
    );
    posted(&store, 4).await;
    let js = async_nats::jetstream::new(env.nats().await);
    let topology = ferry_runtime::Topology::new(&env.prefix);
    js.get_stream(topology.stream_name(ferry_runtime::StreamKind::Orders))
        .await
        .unwrap()
        .purge()
        .filter(topology.ready_subject("acme", more[0]))
        .await
        .unwrap();
    for n in &more {
        stack
            .erp
            .ship(ShipRequest {
                external_ref: n.to_string(),
                lines: None,
                carrier: None,
                tracking_number: Some(format!("PN{n}")),
            })
            .unwrap();
    }
    assert_eq!(
        centra_shipments(&stack, more[1], 1).await.len(),
        1,
        "the feed is not blocked"
    );
    assert!(
        stack
            .centra
            .state
            .ops(|o| o.shipments_of(more[0]).is_empty())
    );
    let unmappable = |e: &ferry_store::ExceptionRow| {
        e.message.contains("no longer holds") && e.order_number == Some(more[0])
    };
    let open =
        ferry_testing::wait_for_exception(&store, "acme", unmappable, Duration::from_secs(10))
            .await;
    assert!(
        open.iter().any(unmappable),
        "the unmappable shipment is an exception"
    );
    stack.shutdown().await;
    env.cleanup().await;
}

/// A shipment without a tracking number is held back (no e-mail without one); past the
/// grace period customer service hears; when the ERP adds the number it goes to Centra. A
/// 429 storm in Centra delays shipments but loses and doubles none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tracking_is_awaited_and_429_storms_are_ridden_out() {
    let env = TestEnv::new().await;
    let options = StackOptions {
        tenant: "acme".into(),
        seed: 23,
        centra_requests_per_10s: 1000,
        fulfilment: ferry_config::FulfilmentConfig {
            poll_interval: Duration::from_millis(200),
            tracking_grace: Duration::from_secs(2),
            ..Default::default()
        },
        ..StackOptions::default()
    };
    let stack = Stack::start(env.config(), options).await.expect("stack");
    let store = env.store().await;
    let numbers = stack.centra.generate(
        6,
        &OrderMix {
            hold_pct: 0,
            pending_pct: 0,
            bundle_pct: 0,
            cancellation_pct: 0,
            markets: vec![1],
            ..OrderMix::default()
        },
    );
    posted(&store, 6).await;

    // No tracking number: nothing reaches Centra, and after the grace period customer
    // service has an exception.
    let untracked = numbers[0];
    stack
        .erp
        .ship(ShipRequest {
            external_ref: untracked.to_string(),
            lines: None,
            carrier: None,
            tracking_number: None,
        })
        .unwrap();
    let mut owner = None;
    for _ in 0..100 {
        owner = store
            .open_exceptions("acme")
            .await
            .unwrap()
            .into_iter()
            .find(|e| e.kind == "tracking_missing")
            .map(|e| e.owner);
        if owner.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(owner.as_deref(), Some("customer_service"));
    assert!(
        stack
            .centra
            .state
            .ops(|o| o.shipments_of(untracked).is_empty()),
        "no e-mail without tracking"
    );

    // A 429 storm while five orders ship: all five arrive once when it passes.
    stack.centra.set_faults(ferry_sim_centra::Faults {
        storm_ms: 2_000,
        ..Default::default()
    });
    for n in &numbers[1..] {
        stack
            .erp
            .ship(ShipRequest {
                external_ref: n.to_string(),
                lines: None,
                carrier: None,
                tracking_number: Some(format!("PN{n}")),
            })
            .unwrap();
    }
    for n in &numbers[1..] {
        assert_eq!(
            centra_shipments(&stack, *n, 1)
                .await
                .iter()
                .filter(|s| s.is_shipped)
                .count(),
            1,
            "order {n}"
        );
    }
    let storm_429s = stack
        .centra
        .state
        .request_log()
        .iter()
        .filter(|r| r.status == 429)
        .count();
    assert!(storm_429s > 0, "the storm was felt");
    assert!(
        storm_429s < 40,
        "and waited out, not hammered: {storm_429s} refused calls"
    );
    for n in &numbers[1..] {
        assert_eq!(shipped_emails(&stack, *n).len(), 1, "order {n}: one e-mail");
    }
    stack.shutdown().await;
    env.cleanup().await;
}

/// With capture per shipment: a capture the payment provider declines still records the
/// shipment (the customer is told) and finance gets the capture to do by hand; a capture
/// that works is recorded on the shipment.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declined_capture_still_ships_and_finance_hears() {
    let env = TestEnv::new().await;
    let options = StackOptions {
        tenant: "acme".into(),
        seed: 24,
        centra_requests_per_10s: 1000,
        fulfilment: ferry_config::FulfilmentConfig {
            poll_interval: Duration::from_millis(200),
            capture: true,
            ..Default::default()
        },
        ..StackOptions::default()
    };
    let stack = Stack::start(env.config(), options).await.expect("stack");
    let store = env.store().await;
    let numbers = stack.centra.generate(
        2,
        &OrderMix {
            hold_pct: 0,
            pending_pct: 0,
            markets: vec![1],
            ..OrderMix::default()
        },
    );
    posted(&store, 2).await;
    let ship = |n: i64| {
        stack
            .erp
            .ship(ShipRequest {
                external_ref: n.to_string(),
                lines: None,
                carrier: None,
                tracking_number: Some(format!("PN{n}")),
            })
            .unwrap();
    };

    stack.centra.set_faults(ferry_sim_centra::Faults {
        decline_captures: true,
        ..Default::default()
    });
    ship(numbers[0]);
    let declined = centra_shipments(&stack, numbers[0], 1).await;
    assert_eq!(declined.len(), 1);
    assert!(declined[0].is_shipped && !declined[0].is_captured);
    assert_eq!(shipped_emails(&stack, numbers[0]).len(), 1);
    let mut finance = Vec::new();
    for _ in 0..50 {
        finance = store
            .open_exceptions("acme")
            .await
            .unwrap()
            .into_iter()
            .filter(|e| e.kind == "capture_failed")
            .map(|e| e.owner)
            .collect();
        if !finance.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(finance, vec!["finance".to_owned()]);

    stack.centra.set_faults(ferry_sim_centra::Faults::default());
    ship(numbers[1]);
    let captured = centra_shipments(&stack, numbers[1], 1).await;
    assert!(captured[0].is_captured, "captured with the shipment");
    stack.shutdown().await;
    env.cleanup().await;
}

/// Issue 22 for shipments: Centra stops halfway through creating a shipment (created but not
/// sent; sent but not captured; everything done but the answer lost). The retry finishes
/// what is missing — e-mail once, capture once — and never creates a second shipment.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shipment_centra_left_half_done_is_finished_not_repeated() {
    use ferry_sim_centra::ShipmentStep;
    let env = TestEnv::new().await;
    let options = StackOptions {
        tenant: "acme".into(),
        seed: 26,
        centra_requests_per_10s: 1000,
        fulfilment: ferry_config::FulfilmentConfig {
            poll_interval: Duration::from_millis(200),
            capture: true,
            ..Default::default()
        },
        ..StackOptions::default()
    };
    let stack = Stack::start(env.config(), options).await.expect("stack");
    let store = env.store().await;
    let numbers = stack.centra.generate(
        3,
        &OrderMix {
            hold_pct: 0,
            pending_pct: 0,
            bundle_pct: 0,
            cancellation_pct: 0,
            markets: vec![1],
            ..OrderMix::default()
        },
    );
    posted(&store, 3).await;
    for (n, step) in numbers.iter().zip([
        ShipmentStep::Created,
        ShipmentStep::Completed,
        ShipmentStep::Captured,
    ]) {
        stack.centra.set_faults(ferry_sim_centra::Faults {
            interrupt_shipment_after: Some(step),
            interrupt_shipments: 1,
            ..Default::default()
        });
        let erp_shipment = stack
            .erp
            .ship(ShipRequest {
                external_ref: n.to_string(),
                lines: None,
                carrier: Some("PostNord".into()),
                tracking_number: Some(format!("PN{n}")),
            })
            .expect("shipped in the ERP");
        let mut row = None;
        for _ in 0..300 {
            row = store.shipment("acme", &erp_shipment.id).await.unwrap();
            if row.as_ref().is_some_and(|r| r.state == ShipmentState::Sent) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let row = row.expect("recorded");
        assert_eq!(row.state, ShipmentState::Sent, "{step:?}");
        let faults = stack.centra.state.faults.read().clone();
        assert_eq!(faults.interrupt_shipments, 0, "{step:?}: the fault struck");
        let shipments: Vec<_> = stack
            .centra
            .state
            .ops(|o| o.shipments_of(*n).into_iter().cloned().collect());
        assert_eq!(shipments.len(), 1, "{step:?}: one Centra shipment");
        assert!(shipments[0].is_shipped, "{step:?}: sent");
        assert!(shipments[0].is_captured, "{step:?}: captured");
        assert_eq!(
            shipments[0].tracking_number.as_deref(),
            Some(format!("PN{n}").as_str())
        );
        assert_eq!(shipped_emails(&stack, *n).len(), 1, "{step:?}: one e-mail");
        assert!(
            row.captured && row.email_sent,
            "{step:?}: the ledger agrees"
        );
        assert_eq!(row.centra_shipment_id, Some(shipments[0].id));
    }
    assert!(store.open_exceptions("acme").await.unwrap().is_empty());
    stack.shutdown().await;
    env.cleanup().await;
}

/// Two replicas of the service share one tenant's feed: every shipment reaches Centra once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_share_the_feed_without_doubles() {
    let env = TestEnv::new().await;
    let options = StackOptions {
        tenant: "acme".into(),
        seed: 25,
        centra_requests_per_10s: 1000,
        fulfilment: ferry_config::FulfilmentConfig {
            poll_interval: Duration::from_millis(20),
            ..Default::default()
        },
        ..StackOptions::default()
    };
    let stack = Stack::start(env.config(), options).await.expect("stack");
    let store = env.store().await;
    // The second replica, as a second Kubernetes pod would run it.
    let shutdown = tokio_util::sync::CancellationToken::new();
    let platform = ferry_platform::Platform::open(
        ferry_fulfilment::SERVICE,
        stack.config.clone(),
        shutdown.clone(),
        ferry_runtime::service::Readiness::default(),
    )
    .await
    .expect("second replica");
    let replica = tokio::spawn(ferry_fulfilment::run(
        platform,
        ferry::connectors::build(&stack.config).expect("connectors"),
    ));
    let numbers = stack.centra.generate(
        30,
        &OrderMix {
            hold_pct: 0,
            pending_pct: 0,
            bundle_pct: 0,
            markets: vec![1],
            ..OrderMix::default()
        },
    );
    posted(&store, 30).await;
    for n in &numbers {
        stack
            .erp
            .ship(ShipRequest {
                external_ref: n.to_string(),
                lines: None,
                carrier: None,
                tracking_number: Some(format!("PN{n}")),
            })
            .unwrap();
    }
    for n in &numbers {
        centra_shipments(&stack, *n, 1).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    for n in &numbers {
        let count = stack.centra.state.ops(|o| o.shipments_of(*n).len());
        assert_eq!(count, 1, "order {n}: one Centra shipment");
        assert_eq!(shipped_emails(&stack, *n).len(), 1, "order {n}: one e-mail");
    }
    let open = store.open_exceptions("acme").await.unwrap();
    assert!(open.is_empty(), "{open:?}");
    shutdown.cancel();
    let _ = replica.await;
    stack.shutdown().await;
    env.cleanup().await;
}

/// A new connector (a 3PL, a BI sink) is a new consumer of `erp.shipment`: added here with
/// nothing but the NATS client, it sees every shipment the ERP recorded, while Centra gets
/// each once as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_consumer_of_erp_shipments_sees_every_shipment() {
    use async_nats::jetstream::consumer::{self, pull};
    use futures::StreamExt;
    use prost::Message;

    let env = TestEnv::new().await;
    let options = StackOptions {
        tenant: "acme".into(),
        seed: 26,
        centra_requests_per_10s: 1000,
        ..StackOptions::default()
    };
    let stack = Stack::start(env.config(), options).await.expect("stack");
    let store = env.store().await;
    let numbers = stack.centra.generate(
        12,
        &OrderMix {
            hold_pct: 0,
            pending_pct: 0,
            bundle_pct: 0,
            markets: vec![1],
            ..OrderMix::default()
        },
    );
    posted(&store, 12).await;
    for n in &numbers {
        stack
            .erp
            .ship(ShipRequest {
                external_ref: n.to_string(),
                lines: None,
                carrier: Some("PostNord".into()),
                tracking_number: Some(format!("PN{n}")),
            })
            .unwrap();
    }
    for n in &numbers {
        assert_eq!(centra_shipments(&stack, *n, 1).await.len(), 1);
    }

    let js = stack.jetstream().await.unwrap();
    let topology = ferry_runtime::Topology::new(&stack.config.nats.prefix);
    let stream = js
        .get_stream(topology.stream_name(ferry_runtime::StreamKind::Erp))
        .await
        .unwrap();
    let sink = stream
        .create_consumer(pull::Config {
            durable_name: Some("bi-sink-acme".into()),
            filter_subject: topology.shipments_filter("acme"),
            ack_policy: consumer::AckPolicy::Explicit,
            ..Default::default()
        })
        .await
        .unwrap();
    let mut messages = sink
        .fetch()
        .max_messages(100)
        .expires(Duration::from_secs(2))
        .messages()
        .await
        .unwrap();
    let mut seen = std::collections::BTreeMap::new();
    while let Some(message) = messages.next().await {
        let message = message.unwrap();
        let shipment =
            ferry_proto::erp::v1::ShipmentRecorded::decode(message.payload.as_ref()).unwrap();
        assert_eq!(shipment.tenant, "acme");
        seen.insert(shipment.erp_shipment_id.clone(), shipment);
        message.ack().await.unwrap();
    }
    let recorded = stack.erp.shipments();
    assert_eq!(seen.len(), recorded.len(), "every shipment, once");
    for s in &recorded {
        let got = &seen[&s.id];
        assert_eq!(got.external_ref, s.external_ref);
        assert_eq!(got.tracking_number, s.tracking_number);
        assert_eq!(got.carrier.as_deref(), Some("PostNord"));
        assert_eq!(got.connector, "http");
    }
    stack.shutdown().await;
    env.cleanup().await;
}

/// The warehouse can ship an order the moment the ERP has it, before Ferry's ledger says
/// posted (found by the chaos run: a writer killed between the ERP's answer and the
/// ledger). The shipment waits for the order instead of failing, and reaches Centra once
/// the order is recorded as posted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shipment_waits_for_an_order_still_being_posted() {
    let env = TestEnv::new().await;
    let mut options = StackOptions {
        tenant: "acme".into(),
        seed: 27,
        centra_requests_per_10s: 1000,
        ..StackOptions::default()
    };
    // Retried each second (the grace spread over the test harness's deliveries).
    options.fulfilment.unposted_grace = Duration::from_secs(8);
    let stack = Stack::start(env.config(), options).await.expect("stack");
    let store = env.store().await;
    let n = stack.centra.generate(
        1,
        &OrderMix {
            hold_pct: 0,
            pending_pct: 0,
            ..OrderMix::default()
        },
    )[0];
    posted(&store, 1).await;
    // As the ledger stands when the writer stopped between the ERP's answer and its record.
    sqlx::query("UPDATE order_ledger SET state = 'posting' WHERE tenant = 'acme'")
        .execute(store.pool())
        .await
        .expect("the ledger set back");
    stack
        .erp
        .ship(ShipRequest {
            external_ref: n.to_string(),
            lines: None,
            carrier: Some("PostNord".into()),
            tracking_number: Some("PN-EARLY".into()),
        })
        .expect("shipped in the ERP");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        stack.centra.state.ops(|o| o.shipments_of(n).is_empty()),
        "nothing told to Centra before the order is posted"
    );
    let open = store.open_exceptions("acme").await.expect("exceptions");
    assert!(open.is_empty(), "no exception while it waits: {open:#?}");
    sqlx::query("UPDATE order_ledger SET state = 'posted' WHERE tenant = 'acme'")
        .execute(store.pool())
        .await
        .expect("posted");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while stack.centra.state.ops(|o| o.shipments_of(n).is_empty()) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the shipment reached Centra"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let tracking = stack.centra.state.ops(|o| {
        o.shipments_of(n)
            .iter()
            .filter_map(|s| s.tracking_number.clone())
            .collect::<Vec<_>>()
    });
    assert_eq!(tracking, vec!["PN-EARLY"]);
    stack.shutdown().await;
    env.cleanup().await;
}
