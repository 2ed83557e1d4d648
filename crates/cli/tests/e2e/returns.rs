//! Returns (ADR 0037): a completed Centra return becomes one credit note in the ERP, each
//! returned unit at what the customer paid for it (vouchers and the bundle's price as the
//! order was posted), the shipping refund against the shipping line; two returns of a line
//! add up to exactly what it charged; a redelivery credits nothing more; a return that
//! gives back more than is left, or whose order never reached the ERP, is finance's — and
//! one the ERP refused is credited once by the console's Retry. A completion whose
//! webhook was lost is found by reading the pending return again.

use std::time::Duration;

use ferry::stack::{Stack, StackOptions};
use ferry_proto::Message as _;
use ferry_sim_centra::OrderMix;
use ferry_sim_centra::ops::ShippingRefund;
use ferry_testing::TestEnv;
use futures::StreamExt;

use crate::until;

/// `value × k / of`, rounded half away from zero: the test's own arithmetic.
fn part(value: i64, k: i64, of: i64) -> i64 {
    let n = value * k;
    (2 * n + of) / (2 * of)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_returned_bundle_with_a_voucher_is_credited_exactly_once() {
    let env = TestEnv::new().await;
    let options = StackOptions {
        tenant: "acme".into(),
        centra_requests_per_10s: 1000,
        centra_events: true,
        ..StackOptions::default()
    };
    let stack = Stack::start(env.config(), options).await.expect("stack");
    let store = env.store().await;
    let mix = OrderMix {
        hold_pct: 0,
        pending_pct: 0,
        bundle_pct: 100,
        cancellation_pct: 0,
        voucher_pct: 100,
        markets: vec![1],
        bundles_per_line: 3,
        ..OrderMix::default()
    };
    // An order with a voucher, shipping and a line of three bundles.
    let (number, bundle) = loop {
        let n = stack.centra.generate(1, &mix)[0];
        let order = stack.centra.state.order(n).unwrap();
        if order.vouchers.is_empty() || order.shipping.is_zero() {
            continue;
        }
        let line = order
            .lines
            .iter()
            .find(|l| l.is_bundle())
            .expect("a bundle");
        break (n, line.clone());
    };
    let posted = until("the order posted", || {
        stack
            .erp
            .orders()
            .into_iter()
            .find(|o| o.external_ref == number.to_string())
    })
    .await;
    stack
        .erp
        .ship(ferry_sim_erp::ShipRequest {
            external_ref: number.to_string(),
            tracking_number: Some("PN1SE".into()),
            lines: None,
            carrier: None,
        })
        .expect("shipped");
    let (shipment, shipment_line) = until("the shipment in Centra", || {
        stack.centra.state.ops(|o| {
            o.shipments_of(number)
                .into_iter()
                .filter(|s| s.is_shipped)
                .find_map(|s| {
                    s.lines
                        .iter()
                        .find(|l| l.order_line_id == bundle.id)
                        .map(|l| (s.id, l.id))
                })
        })
    })
    .await;

    let client = env.nats().await;
    let topology = ferry_runtime::Topology::new(&env.prefix);
    let mut ready = client
        .subscribe(format!("{}.acme.order.return.v1.*", env.prefix))
        .await
        .unwrap();
    client.flush().await.unwrap();

    // The customer sends one bundle back; Centra refunds the shipping too.
    let return_and_complete = |units: i64, refund: ShippingRefund| {
        stack
            .centra
            .state
            .transact(|w| {
                let refund = match refund {
                    ShippingRefund::FromShipment { .. } => ShippingRefund::FromShipment {
                        order_shipping: w.order(number)?.shipping,
                    },
                    other => other,
                };
                let id =
                    w.ops
                        .create_return(shipment, &[(shipment_line, units)], true, refund, None)?;
                let order = w.order(number)?.clone();
                w.ops.complete_return(&order, id, true)?;
                Ok(id)
            })
            .expect("return completed")
    };
    let first = return_and_complete(
        1,
        ShippingRefund::FromShipment {
            order_shipping: rust_decimal::Decimal::ZERO,
        },
    );
    let notes = until("the credit note", || {
        Some(stack.erp.credit_notes()).filter(|n| !n.is_empty())
    })
    .await;
    assert_eq!(notes.len(), 1);
    let note = &notes[0];
    assert_eq!(note.external_ref, format!("{number}-R{first}"));
    assert_eq!(note.order_erp_reference, posted.reference);
    assert!(note.restock);

    // Expected from the ERP's own sales order: each component of the bundle a half (one
    // bundle of `bundle.quantity`), the shipping line whole.
    let components: Vec<i64> = bundle.bundle_items.iter().map(|i| i.id).collect();
    let mut gross = 0;
    let mut tax = 0;
    for line in posted
        .lines
        .iter()
        .filter(|l| l.centra_line_id.is_some_and(|id| components.contains(&id)))
    {
        let credited = note
            .lines
            .iter()
            .find(|c| c.centra_line_id == line.centra_line_id)
            .expect("each component credited");
        assert_eq!(
            (credited.gross_minor, credited.tax_minor),
            (
                part(line.gross_minor, 1, bundle.quantity),
                part(line.tax_minor, 1, bundle.quantity)
            ),
            "component {:?}",
            line.centra_line_id
        );
        assert_eq!(
            credited.net_minor,
            credited.gross_minor - credited.tax_minor
        );
        gross += credited.gross_minor;
        tax += credited.tax_minor;
    }
    let shipping = posted
        .lines
        .iter()
        .find(|l| l.kind == "shipping")
        .expect("a shipping line");
    let refunded = note
        .lines
        .iter()
        .find(|l| l.kind == "shipping")
        .expect("the shipping refunded");
    assert_eq!(
        (refunded.gross_minor, refunded.tax_minor),
        (shipping.gross_minor, shipping.tax_minor)
    );
    gross += refunded.gross_minor;
    tax += refunded.tax_minor;
    assert_eq!((note.gross_minor, note.tax_minor), (gross, tax));
    let mut credit = None;
    for _ in 0..200 {
        credit = store
            .return_credit("acme", first)
            .await
            .unwrap()
            .filter(|c| c.erp_reference.is_some());
        if credit.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let credit = credit.expect("the return recorded credited");
    assert_eq!(credit.priced.gross_minor, gross);

    // The same return again (a redelivery, a replay): nothing more.
    let message = tokio::time::timeout(Duration::from_secs(5), ready.next())
        .await
        .expect("order.return published")
        .unwrap();
    let js = ferry_runtime::nats::jetstream(client.clone());
    js.publish(
        topology.return_ready_subject("acme", first),
        message.payload.clone(),
    )
    .await
    .unwrap()
    .await
    .unwrap();

    // The other bundles come back one at a time: with the first, exactly what the line
    // charged (thirds do not add up to the whole unless each return knows the earlier).
    let mut ids = vec![first];
    for n in 2..=bundle.quantity {
        ids.push(return_and_complete(1, ShippingRefund::None));
        until("the next credit note", || {
            Some(stack.erp.credit_notes()).filter(|c| c.len() as i64 >= n)
        })
        .await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let notes = stack.erp.credit_notes();
    assert_eq!(
        notes.len() as i64,
        bundle.quantity,
        "one credit note per return"
    );
    for (note, id) in notes.iter().zip(&ids) {
        assert_eq!(note.external_ref, format!("{number}-R{id}"));
    }
    for line in posted
        .lines
        .iter()
        .filter(|l| l.centra_line_id.is_some_and(|id| components.contains(&id)))
    {
        let both: (i64, i64) = notes
            .iter()
            .flat_map(|n| &n.lines)
            .filter(|c| c.centra_line_id == line.centra_line_id)
            .fold((0, 0), |(g, t), c| (g + c.gross_minor, t + c.tax_minor));
        assert_eq!(
            both,
            (line.gross_minor, line.tax_minor),
            "all of it, exactly"
        );
    }
    assert!(store.open_exceptions("acme").await.unwrap().is_empty());

    // The month-end report shows the refunds and what they leave of the revenue.
    let month = chrono::Utc::now().format("%Y-%m").to_string();
    let period = ferry_reconciler::report::Period::month(&month).unwrap();
    let report = ferry_reconciler::report::month_report(&store, "acme", period)
        .await
        .unwrap();
    let figures = report
        .currencies
        .iter()
        .find(|c| c.currency == notes[0].currency)
        .expect("the order's currency");
    let refunds = figures.refunds.as_ref().expect("refunds credited");
    assert_eq!(refunds.returns as i64, bundle.quantity);
    assert_eq!(
        (refunds.gross, refunds.tax),
        notes
            .iter()
            .fold((0, 0), |(g, t), n| (g + n.gross_minor, t + n.tax_minor))
    );

    // A return of units already returned (a crafted repeat under a new id): finance's,
    // and nothing credited; and a return of an order that never reached the ERP.
    let decoded = ferry_proto::order::v1::ReturnReady::decode(message.payload.as_ref()).unwrap();
    let repeat = ferry_proto::order::v1::ReturnReady {
        return_id: 9_000_001,
        shipping_refund_minor: 0,
        ..decoded.clone()
    };
    let orphan = ferry_proto::order::v1::ReturnReady {
        return_id: 9_000_002,
        order_number: 99_999_999,
        ..repeat.clone()
    };
    for crafted in [repeat, orphan] {
        js.publish(
            topology.return_ready_subject("acme", crafted.return_id),
            crafted.encode_to_vec().into(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    }
    let mut exceptions = Vec::new();
    for _ in 0..200 {
        exceptions = store.open_exceptions("acme").await.unwrap();
        if exceptions.len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let exceeds = exceptions
        .iter()
        .find(|e| e.kind == "refund_exceeds_paid")
        .expect("refund beyond what was paid");
    assert_eq!(exceeds.owner, "finance");
    assert_eq!(exceeds.order_number, Some(number));
    let orphan = exceptions
        .iter()
        .find(|e| e.kind == "return_not_credited")
        .expect("a return of an order never posted");
    assert!(
        orphan.message.contains("never reached the ERP"),
        "{}",
        orphan.message
    );
    assert_eq!(
        stack.erp.credit_notes().len() as i64,
        bundle.quantity,
        "nothing more credited"
    );
    stack.shutdown().await;
    env.cleanup().await;
}

/// Under the ERP's faults — failures, 429s, answers lost after the credit note was booked —
/// every return is credited exactly once, with the money first priced, by an ERP that
/// ignores idempotency keys (a lost answer is looked for before the credit goes again).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn returns_under_erp_faults_are_credited_once_each() {
    let env = TestEnv::new().await;
    let options = StackOptions {
        tenant: "acme".into(),
        centra_requests_per_10s: 1000,
        centra_events: true,
        ..StackOptions::default()
    };
    // Retries after a second or two, not minutes: the test waits for every one. With
    // four calls in ten failing, the test's usual six deliveries would run out for one
    // return in eight runs (30 × 0.4⁶); twenty never do (30 × 0.4²⁰ ≈ 3·10⁻⁷).
    let mut config = env.config();
    config.consumer.backoff_max = Duration::from_secs(2);
    config.consumer.max_deliver = 20;
    let stack = Stack::start(config, options).await.expect("stack");
    let store = env.store().await;
    let mix = OrderMix {
        hold_pct: 0,
        pending_pct: 0,
        cancellation_pct: 0,
        markets: vec![1],
        ..OrderMix::default()
    };
    let orders = stack.centra.generate(30, &mix);
    until("the orders posted", || {
        Some(()).filter(|_| stack.erp.orders().len() == orders.len())
    })
    .await;
    // Shipped in Centra (the returns need a completed shipment).
    let mut shipped = Vec::new();
    for n in &orders {
        let s = stack
            .centra
            .state
            .transact(|w| {
                w.with_order(*n, |order, ops| {
                    let lines: Vec<(i64, i64)> =
                        order.lines.iter().map(|l| (l.id, l.quantity)).collect();
                    let id = ops.create_shipment(order, &lines, true, true, None, None)?;
                    ops.complete_shipment(order, id, chrono::Utc::now(), None, false, None)?;
                    let line = ops.shipments[&id].lines[0].id;
                    Ok((id, line))
                })
            })
            .expect("shipped");
        shipped.push((*n, s));
    }
    // A naive ERP (a credit sent twice is two notes): once each must come from Ferry.
    stack.erp.set_faults(ferry_sim_erp::Faults {
        error_per_mille: 100,
        throttle_per_mille: 50,
        timeout_after_commit_per_mille: 250,
        ignore_idempotency_key: true,
        ..ferry_sim_erp::Faults::default()
    });
    let lookups = stack.erp.stats().lookups;
    for (n, (shipment, line)) in &shipped {
        stack
            .centra
            .state
            .transact(|w| {
                let id = w.ops.create_return(
                    *shipment,
                    &[(*line, 1)],
                    true,
                    ShippingRefund::None,
                    None,
                )?;
                let order = w.order(*n)?.clone();
                w.ops.complete_return(&order, id, false)?;
                Ok(id)
            })
            .expect("return");
    }
    // Every credit booked and recorded: with a third of the calls failing, a return may
    // take several retries — a generous deadline, not a fixed wait.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let mut recorded = 0;
        for (n, _) in &shipped {
            let credits = store.returns_of_order("acme", *n).await.unwrap();
            recorded += credits.iter().filter(|c| c.erp_reference.is_some()).count();
        }
        if recorded == orders.len() {
            break;
        }
        if tokio::time::Instant::now() >= deadline {
            let open = store.open_exceptions("acme").await.unwrap();
            panic!(
                "{recorded} of {} returns credited; open exceptions: {open:#?}",
                orders.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let notes = stack.erp.credit_notes();
    let distinct: std::collections::HashSet<&str> =
        notes.iter().map(|n| n.external_ref.as_str()).collect();
    assert_eq!(notes.len(), orders.len(), "one credit note per return");
    assert_eq!(distinct.len(), orders.len());
    assert!(
        stack.erp.stats().lookups > lookups,
        "some answers were lost after booking and the credit was looked for, not sent again"
    );
    for (n, _) in &shipped {
        let credits = store.returns_of_order("acme", *n).await.unwrap();
        assert_eq!(credits.len(), 1);
        let note = notes
            .iter()
            .find(|c| c.order_external_ref == n.to_string())
            .expect("its credit note");
        assert_eq!(
            (
                credits[0].priced.gross_minor,
                credits[0].erp_reference.as_deref()
            ),
            (note.gross_minor, Some(note.reference.as_str())),
            "the money priced is the money credited"
        );
    }
    assert!(store.open_exceptions("acme").await.unwrap().is_empty());
    stack.shutdown().await;
    env.cleanup().await;
}

/// A credit the ERP refused (its period closed) is finance's exception with the priced
/// return; once the cause is fixed, the console's Retry credits it once and settles the
/// exception — the same retry twice is still one credit note.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_credit_is_credited_once_by_the_consoles_retry() {
    use ferry_ops::access::Role;
    use ferry_proto::ops::v1 as pb;

    let env = TestEnv::new().await;
    let options = StackOptions {
        tenant: "acme".into(),
        centra_requests_per_10s: 1000,
        centra_events: true,
        ..StackOptions::default()
    };
    let stack = Stack::start(env.config(), options).await.expect("stack");
    let store = env.store().await;
    let mix = OrderMix {
        hold_pct: 0,
        pending_pct: 0,
        cancellation_pct: 0,
        markets: vec![1],
        ..OrderMix::default()
    };
    let number = stack.centra.generate(1, &mix)[0];
    until("the order posted", || {
        Some(()).filter(|_| stack.erp.orders().len() == 1)
    })
    .await;
    stack.erp.set_faults(ferry_sim_erp::Faults {
        refuse_credits: Some("the accounting period 2026-11 is closed".into()),
        ..ferry_sim_erp::Faults::default()
    });
    let return_id = stack
        .centra
        .state
        .transact(|w| {
            w.with_order(number, |order, ops| {
                let line = (order.lines[0].id, 1);
                let shipment = ops.create_shipment(order, &[line], true, true, None, None)?;
                ops.complete_shipment(order, shipment, chrono::Utc::now(), None, false, None)?;
                let shipment_line = ops.shipments[&shipment].lines[0].id;
                let id = ops.create_return(
                    shipment,
                    &[(shipment_line, 1)],
                    true,
                    ShippingRefund::None,
                    None,
                )?;
                ops.complete_return(order, id, false)?;
                Ok(id)
            })
        })
        .expect("returned");
    let is_refused = |e: &ferry_store::ExceptionRow| {
        e.kind == "return_not_credited" && e.order_number == Some(number)
    };
    let open =
        ferry_testing::wait_for_exception(&store, "acme", is_refused, Duration::from_secs(60))
            .await;
    let refused = open.iter().find(|e| is_refused(e)).expect("refused");
    assert!(
        refused.message.contains("period 2026-11 is closed"),
        "{refused:?}"
    );
    assert!(
        refused.message.contains("press Retry"),
        "{}",
        refused.message
    );
    assert!(stack.erp.credit_notes().is_empty());

    // Finance reopens the period, then presses Retry (twice, one request).
    stack.erp.set_faults(ferry_sim_erp::Faults::default());
    let (_, secret) =
        ferry::tokens::create(&store, "finance@brand", Role::Finance, &["acme".into()])
            .await
            .expect("token");
    let mut c = ferry::exceptions::connect(&stack.api_url, &secret)
        .await
        .expect("client");
    let name = format!("tenants/acme/exceptions/{}", refused.id);
    for _ in 0..2 {
        c.retry_exception(pb::RetryExceptionRequest {
            name: name.clone(),
            request_id: format!("retry-return-{return_id}"),
        })
        .await
        .expect("retried");
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let resolved = loop {
        let e = c
            .get_exception(pb::GetExceptionRequest { name: name.clone() })
            .await
            .expect("get")
            .into_inner();
        if e.state == "resolved" {
            break e;
        }
        assert!(tokio::time::Instant::now() < deadline, "settled: {e:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        resolved.state_reason.starts_with("credited in the ERP as"),
        "{resolved:?}"
    );
    let notes = stack.erp.credit_notes();
    assert_eq!(notes.len(), 1, "one credit note: {notes:?}");
    assert_eq!(notes[0].external_ref, format!("{number}-R{return_id}"));
    stack.shutdown().await;
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_completion_whose_webhook_was_lost_is_read_again_and_credited() {
    let env = TestEnv::new().await;
    let options = StackOptions {
        tenant: "acme".into(),
        centra_requests_per_10s: 1000,
        // Webhooks only (no Events queue): a lost one is lost for good.
        centra_events: false,
        returns_recheck: Duration::from_secs(1),
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
    until("the order posted", || {
        stack
            .erp
            .orders()
            .into_iter()
            .find(|o| o.external_ref == number.to_string())
    })
    .await;
    stack
        .erp
        .ship(ferry_sim_erp::ShipRequest {
            external_ref: number.to_string(),
            tracking_number: Some("PN2SE".into()),
            lines: None,
            carrier: None,
        })
        .expect("shipped");
    let (shipment, line) = until("the shipment in Centra", || {
        stack.centra.state.ops(|o| {
            o.shipments_of(number)
                .into_iter()
                .find(|s| s.is_shipped)
                .and_then(|s| Some((s.id, s.lines.first()?.id)))
        })
    })
    .await;

    // The customer registers a return: Centra announces it, Ferry sees it pending.
    let id = stack
        .centra
        .state
        .transact(|w| {
            w.ops
                .create_return(shipment, &[(line, 1)], true, ShippingRefund::None, None)
        })
        .expect("return created");
    let long = Duration::from_secs(3600);
    let mut noted = false;
    for _ in 0..200 {
        let (pending, _) = store
            .pending_returns_due("acme", Duration::ZERO, long, 100)
            .await
            .unwrap();
        if pending.contains(&id) {
            noted = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(noted, "the pending return is kept to be read again");

    // The warehouse receives it and Centra completes it — and that webhook is lost.
    let webhooks = stack.centra.state.webhooks.config().expect("webhooks on");
    stack
        .centra
        .configure_webhooks(Some(ferry_sim_centra::WebhookConfig {
            drop_per_mille: 1000,
            ..webhooks.clone()
        }));
    let dropped_before = stack.centra.webhook_stats().events_dropped;
    stack
        .centra
        .state
        .transact(|w| {
            let order = w.order(number)?.clone();
            w.ops.complete_return(&order, id, true)
        })
        .expect("return completed");
    until("the completion's webhook dropped", || {
        (stack.centra.webhook_stats().events_dropped > dropped_before).then_some(())
    })
    .await;
    stack.centra.configure_webhooks(Some(webhooks));

    // Read again by id, the return is found completed and credited, once.
    let notes = until("the credit note", || {
        Some(stack.erp.credit_notes()).filter(|n| !n.is_empty())
    })
    .await;
    assert_eq!(notes.len(), 1);
    assert_eq!(notes[0].external_ref, format!("{number}-R{id}"));
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(stack.erp.credit_notes().len(), 1, "credited once");
    let (pending, _) = store
        .pending_returns_due("acme", Duration::ZERO, long, 100)
        .await
        .unwrap();
    assert!(!pending.contains(&id), "no longer pending");
    assert!(store.open_exceptions("acme").await.unwrap().is_empty());
    stack.shutdown().await;
    env.cleanup().await;
}
