//! The erp-writer on its own, against a real nats-server, PostgreSQL and the ERP simulator
//! (no ingest, no transform): the ledger row the transform would have written is recorded
//! through the store, the ready order published; the writer posts it once — even when the
//! message arrives again and the ERP would happily create a second document — commits the
//! ERP's reference and totals, and announces `order.posted`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failing test says what broke

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use ferry_platform::Platform;
use ferry_proto::order::v1 as pb;
use ferry_runtime::{Outgoing, Readiness, StreamKind};
use ferry_sim_erp::{ErpSim, Faults};
use ferry_store::{LedgerState, SnapshotRecord};
use ferry_testing::TestEnv;
use prost::Message;
use tokio_util::sync::CancellationToken;

const NUMBER: i64 = 52_001;
const HASH: &str = "snapshot-52001";

fn line(kind: pb::LineKind, item: &str, quantity: i64, gross: i64, tax: i64) -> pb::SalesOrderLine {
    pb::SalesOrderLine {
        kind: kind as i32,
        erp_item: item.to_owned(),
        sku: Some(item.to_owned()),
        quantity,
        tax_rate_percent: "25".to_owned(),
        gross_minor: gross,
        tax_minor: tax,
        net_minor: gross - tax,
        description: item.to_owned(),
        ..Default::default()
    }
}

/// Two jackets at 499.00 SEK and 49.00 SEK shipping, Swedish VAT included.
fn order() -> pb::SalesOrder {
    pb::SalesOrder {
        tenant: "acme".into(),
        order_number: NUMBER,
        centra_order_id: "c-52001".into(),
        currency: "SEK".into(),
        lines: vec![
            line(pb::LineKind::Item, "JACKET-M", 2, 99_800, 19_960),
            line(pb::LineKind::Shipping, "SHIPPING", 1, 4_900, 980),
        ],
        totals: Some(pb::Totals {
            gross_minor: 104_700,
            tax_minor: 20_940,
            net_minor: 83_760,
        }),
        market: "SE".into(),
        order_date: "2026-12-06".into(),
        snapshot_hash: HASH.into(),
        ..Default::default()
    }
}

async fn publish_ready(platform: &Platform, msg_id: &str) {
    let ready = pb::OrderReady {
        order: Some(order()),
    };
    platform
        .base
        .publisher
        .publish(&Outgoing {
            subject: platform.base.topology.ready_subject("acme", NUMBER),
            msg_id: msg_id.to_owned(),
            payload: Bytes::from(ready.encode_to_vec()),
        })
        .await
        .expect("published");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ready_order_is_posted_once_and_announced() {
    let env = TestEnv::new().await;
    let shutdown = CancellationToken::new();
    let erp = ErpSim::start(([127, 0, 0, 1], 0).into(), shutdown.clone())
        .await
        .expect("ERP simulator");
    // A naive ERP: a second create would be a second document.
    erp.set_faults(Faults {
        ignore_idempotency_key: true,
        ..Faults::default()
    });
    let mut config = env.config();
    config.tenants = ferry_config::Config::from_toml(&format!(
        r#"
        [[tenants]]
        id = "acme"
        [tenants.centra]
        url = "http://127.0.0.1:9/graphql"
        token = "t"
        webhook_secret = "s"
        [tenants.erp]
        kind = "http"
        url = "{}"
        "#,
        erp.url()
    ))
    .expect("tenant")
    .tenants;
    let registry = ferry_erp::Registry::new().with(ferry_erp_http::kind());
    let mut connectors = ferry_erp::Connectors::default();
    let context = ferry_erp::BuildContext {
        tenant: "acme".into(),
        timeout: Duration::from_secs(2),
    };
    let tenant = &config.tenants[0];
    connectors.insert(
        "acme",
        registry
            .build(&tenant.erp.kind, &tenant.erp.settings, &context)
            .expect("the http connector"),
    );
    let platform = Platform::open(
        ferry_erp_writer::SERVICE,
        Arc::new(config),
        shutdown.clone(),
        Readiness::default(),
    )
    .await
    .expect("platform");

    // What the transform records before it publishes a ready order.
    let store = platform.store.clone();
    store
        .record_snapshot(&SnapshotRecord {
            tenant: "acme".into(),
            order_number: NUMBER,
            centra_order_id: "c-52001".into(),
            snapshot_hash: HASH.into(),
            fetched_at: chrono::Utc::now(),
            first_accepted_at: None,
            order_fingerprint: "fingerprint-52001".into(),
            state: LedgerState::Ready,
            currency: "SEK".into(),
            gross_minor: Some(104_700),
            tax_minor: Some(20_940),
            trace_id: None,
            customer_email_key: None,
            body: Bytes::new(),
        })
        .await
        .expect("ledger row");
    let writer = tokio::spawn(ferry_erp_writer::run(platform.clone(), connectors));
    publish_ready(&platform, "ready-1").await;

    ferry_testing::wait_for_state(&store, "acme", "posted", 1, Duration::from_secs(10)).await;
    let row = store.ledger_row("acme", NUMBER).await.unwrap();
    let row = row.expect("the ledger row");
    assert_eq!(row.state, "posted");
    let documents = erp.orders();
    assert_eq!(documents.len(), 1);
    let document = &documents[0];
    assert_eq!(document.external_ref, NUMBER.to_string());
    assert_eq!(
        row.erp_reference.as_deref(),
        Some(document.reference.as_str())
    );
    assert_eq!(
        (document.gross_minor, document.tax_minor),
        (104_700, 20_940)
    );
    assert_eq!(row.erp_gross_minor, Some(104_700));

    let orders = platform
        .base
        .js
        .get_stream(platform.base.topology.stream_name(StreamKind::Orders))
        .await
        .unwrap();
    let posted = orders
        .get_last_raw_message_by_subject(&platform.base.topology.posted_subject("acme", NUMBER))
        .await
        .expect("order.posted");
    let posted = pb::OrderPosted::decode(posted.payload.as_ref()).unwrap();
    assert_eq!(posted.erp_reference, document.reference);
    assert_eq!(posted.erp_totals.map(|t| t.gross_minor), Some(104_700));

    // The same order again under another message id (a replay, say): nothing new in the ERP.
    publish_ready(&platform, "ready-2").await;
    let consumer_drained = async {
        for _ in 0..100 {
            let mut consumer: async_nats::jetstream::consumer::PullConsumer = orders
                .get_consumer(&platform.base.topology.consumer_name("erp-writer", "acme"))
                .await
                .expect("the writer's consumer");
            let info = consumer.info().await.expect("info");
            if info.num_pending == 0 && info.num_ack_pending == 0 {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        false
    };
    assert!(consumer_drained.await, "the second message was handled");
    assert_eq!(erp.orders().len(), 1, "{:?}", erp.duplicated_refs());
    assert!(store.open_exceptions("acme").await.unwrap().is_empty());

    shutdown.cancel();
    let _ = writer.await;
    env.cleanup().await;
}
