//! One order is one trace: the W3C trace context travels in NATS headers from the webhook
//! through ingest, transform and the erp-writer, and reaches a real OTLP receiver; the
//! order's timeline names that trace. A shipment is one trace from the ERP's feed to
//! Centra; a stock change one from the ERP's feed to the pusher's store, and each push to
//! Centra one more; the reconciler's passes are traced with their tenant.

use std::time::Duration;

use ferry::stack::{Stack, StackOptions};
use ferry_sim_centra::{OrderMix, WebhookConfig};
use ferry_testing::TestEnv;

use crate::otlp::Receiver;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_trace_per_order_from_webhook_to_erp_and_one_per_shipment_to_centra() {
    let (receiver, addr) = Receiver::start().await;

    let env = TestEnv::new().await;
    let mut config = env.config();
    config.telemetry.otlp_endpoint = Some(format!("http://{addr}"));
    let options = StackOptions {
        tenant: "acme".into(),
        centra_requests_per_10s: 1000,
        webhook_faults: WebhookConfig::default(),
        ..StackOptions::default()
    };
    let stack = Stack::start(config, options).await.expect("stack");
    let store = env.store().await;
    let numbers = stack.centra.generate(
        1,
        &OrderMix {
            hold_pct: 0,
            pending_pct: 0,
            ..OrderMix::default()
        },
    );
    for _ in 0..200 {
        let row = store.ledger_row("acme", numbers[0]).await.expect("ledger");
        if row.is_some_and(|r| r.state == "posted") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The warehouse ships it: the shipment travels from the ERP's feed to Centra.
    stack
        .erp
        .ship(ferry_sim_erp::ShipRequest {
            external_ref: numbers[0].to_string(),
            lines: None,
            carrier: Some("PostNord".into()),
            tracking_number: Some("PN-TRACE-1".into()),
        })
        .expect("shipped in the ERP");
    for _ in 0..300 {
        let shipped = store
            .shipments_of_orders("acme", &[numbers[0]])
            .await
            .expect("shipments");
        if shipped.iter().any(|s| s.centra_completed_at.is_some()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Stock: the ERP's stock feed reads a change, publishes it and the pusher's consumer
    // stores it — one trace — and the push to Centra is a trace of its own.
    let sku = crate::inventory::catalogue_skus(&stack, 1).remove(0);
    let physical = || {
        stack.centra.state.ops(|o| {
            let size = o.size_by_sku(&sku).expect("a catalogue SKU");
            o.stock_of(size, 1).physical
        })
    };
    crate::inventory::set_erp(&stack, &[(sku.as_str(), 1_234)]);
    for _ in 0..300 {
        if physical() == 1_234 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(physical(), 1_234, "the stock reached Centra");
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    let timeline = store
        .order_timeline("acme", numbers[0])
        .await
        .expect("timeline")
        .expect("the order");
    stack.telemetry.shutdown();

    let spans = receiver.spans.lock().map(|s| s.clone()).unwrap_or_default();
    let (order_trace, _, links) = spans
        .iter()
        .find(|(_, name, _)| name == "centra.order")
        .cloned()
        .expect("an order span was exported");
    let names_in = |trace: &str| -> Vec<String> {
        spans
            .iter()
            .filter(|(t, _, _)| t == trace)
            .map(|(_, n, _)| n.clone())
            .collect()
    };
    let in_trace = names_in(&order_trace);
    // Named by OpenTelemetry's messaging conventions: `{operation} {destination}`.
    let topology = ferry_runtime::nats::Topology::new(&env.prefix);
    let transform = format!("process {}", topology.snapshots_filter("acme"));
    let writer = format!("process {}", topology.ready_filter("acme"));
    let published = format!("publish {}", topology.ready_filter("acme"));
    for name in ["centra.order", &transform, &published, &writer] {
        assert!(
            in_trace.iter().any(|n| n == name),
            "{name} missing from the order's trace {order_trace}: {in_trace:?}"
        );
    }
    // Each carries the messaging attributes an SRE's tools group and search by.
    let attributes = receiver
        .attributes
        .lock()
        .map(|a| a.clone())
        .unwrap_or_default();
    let of = |span: &str, key: &str| {
        attributes
            .get(span)
            .and_then(|a| a.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone()))
            .unwrap_or_default()
    };
    for (span, operation) in [(&writer, "process"), (&published, "send")] {
        assert_eq!(of(span, "messaging.system"), "nats", "{span}");
        assert_eq!(of(span, "messaging.operation.type"), operation, "{span}");
        assert_eq!(
            of(span, "messaging.destination.name"),
            topology.ready_subject("acme", numbers[0]),
            "{span}"
        );
        assert!(
            !of(span, "messaging.message.id").is_empty(),
            "{span}: a message id"
        );
    }
    assert_eq!(
        of(&writer, "messaging.consumer.group.name"),
        "erp-writer-acme"
    );
    // The order's timeline names that trace on its steps, for people to follow.
    for step in ["seen", "transformed", "posted"] {
        let s = timeline
            .steps
            .iter()
            .find(|s| s.step == step)
            .unwrap_or_else(|| panic!("no {step} step: {:?}", timeline.steps));
        assert_eq!(s.trace_id, order_trace, "the {step} step's trace");
    }
    // The shipment is a trace of its own: read from the ERP's feed, published, handled by
    // fulfilment — and its timeline steps name it.
    let (shipment_trace, _, _) = spans
        .iter()
        .find(|(_, name, _)| name == "erp.shipment")
        .cloned()
        .expect("a shipment span was exported");
    assert_ne!(shipment_trace, order_trace);
    let in_shipment = names_in(&shipment_trace);
    for name in [
        format!("publish {}", topology.shipments_filter("acme")),
        format!("process {}", topology.shipments_filter("acme")),
    ] {
        assert!(
            in_shipment.contains(&name),
            "{name} missing from the shipment's trace: {in_shipment:?}"
        );
    }
    let step = timeline
        .steps
        .iter()
        .find(|s| s.step == "shipment_in_centra")
        .expect("the shipment reached Centra");
    assert_eq!(step.trace_id, shipment_trace, "the shipment step's trace");
    // The stock change: read, published and stored in one trace; pushed in another.
    let stock_published = format!("publish {}", topology.stock_filter("acme"));
    let stock_trace = spans
        .iter()
        .find(|(_, name, _)| *name == stock_published)
        .map(|(t, _, _)| t.clone())
        .expect("a stock level was published");
    let in_stock = names_in(&stock_trace);
    for name in [
        "erp-stock pass".to_owned(),
        format!("process {}", topology.stock_filter("acme")),
    ] {
        assert!(
            in_stock.contains(&name),
            "{name} missing from the stock change's trace: {in_stock:?}"
        );
    }
    assert_eq!(of("setStock centra", "ferry.tenant"), "acme");
    // The reconciler's passes are traced too, each with the tenant it checked.
    assert_eq!(of("reconcile-orders pass", "ferry.tenant"), "acme");
    // The order's trace links back to the webhook that announced it.
    let webhook_trace = links.first().expect("the order span links to its cause");
    let cause = names_in(webhook_trace);
    let ingest = format!("process {}", topology.notices_subject("acme"));
    for name in ["centra.webhook", &ingest] {
        assert!(
            cause.iter().any(|n| n == name),
            "{name} missing from the webhook's trace: {cause:?}"
        );
    }
    stack.shutdown().await;
    env.cleanup().await;
}
