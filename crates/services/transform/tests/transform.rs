//! The transform service on its own, against a real nats-server and PostgreSQL (no other
//! service, no simulator): a snapshot on `centra.order.v1` becomes an `OrderReady` with the
//! contract's money and a `ready` ledger row; an unreadable one becomes an exception and
//! the next still flows.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failing test says what broke

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use ferry_platform::Platform;
use ferry_proto::centra::v1 as centra_pb;
use ferry_proto::order::v1 as order_pb;
use ferry_runtime::{Outgoing, Readiness, StreamKind};
use ferry_testing::TestEnv;
use prost::Message;
use tokio_util::sync::CancellationToken;

const TENANT: &str = r#"
    [[tenants]]
    id = "acme"
    [tenants.centra]
    url = "http://127.0.0.1:9/graphql"
    token = "t"
    webhook_secret = "s"
    [tenants.erp]
    kind = "http"
    url = "http://127.0.0.1:9"
    [tenants.rules]
    erp_item_equals_sku = true
"#;

fn example() -> Vec<u8> {
    std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../tests/contracts/examples/01-sek-simple.json"
    ))
    .expect("contract example 01")
}

async fn publish(platform: &Platform, number: i64, json: &[u8]) {
    let snapshot = centra_pb::OrderSnapshot {
        tenant: "acme".into(),
        order_number: number,
        snapshot_json: Bytes::copy_from_slice(json),
        content_hash: format!("hash-{number}-{}", json.len()),
        fetched_at: Some(ferry_proto::timestamp(std::time::SystemTime::now())),
        source: centra_pb::Source::Webhook as i32,
        first_accepted_at: None,
    };
    platform
        .base
        .publisher
        .publish(&Outgoing {
            subject: platform.base.topology.snapshot_subject("acme", number),
            msg_id: snapshot.content_hash.clone(),
            payload: Bytes::from(snapshot.encode_to_vec()),
        })
        .await
        .expect("published");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_becomes_a_ready_order_and_a_broken_one_an_exception() {
    let env = TestEnv::new().await;
    let mut config = env.config();
    config.tenants = ferry_config::Config::from_toml(TENANT)
        .expect("tenant")
        .tenants;
    let shutdown = CancellationToken::new();
    let platform = Platform::open(
        ferry_transform::SERVICE,
        Arc::new(config),
        shutdown.clone(),
        Readiness::default(),
    )
    .await
    .expect("platform");
    let service = tokio::spawn(ferry_transform::run(platform.clone()));

    publish(&platform, 1, b"{ not a snapshot").await;
    let json = example();
    let number: i64 = serde_json::from_slice::<serde_json::Value>(&json).unwrap()["number"]
        .as_i64()
        .unwrap();
    publish(&platform, number, &json).await;

    let store = &platform.store;
    ferry_testing::wait_for_state(store, "acme", "ready", 1, Duration::from_secs(10)).await;
    let row = store.ledger_row("acme", number).await.unwrap();
    let row = row.expect("a ledger row");
    assert_eq!(row.state, "ready");
    assert_eq!(row.gross_minor, Some(184_795), "what the customer paid");

    let stream = platform
        .base
        .js
        .get_stream(platform.base.topology.stream_name(StreamKind::Orders))
        .await
        .unwrap();
    let ready = stream
        .get_last_raw_message_by_subject(&platform.base.topology.ready_subject("acme", number))
        .await
        .expect("the ready order");
    let order = order_pb::OrderReady::decode(ready.payload.as_ref())
        .unwrap()
        .order
        .unwrap();
    let gross: i64 = order.lines.iter().map(|l| l.gross_minor).sum();
    assert_eq!(gross, 184_795);
    assert!(
        order
            .lines
            .iter()
            .all(|l| l.net_minor == l.gross_minor - l.tax_minor)
    );

    let open = ferry_testing::wait_for_exception(
        store,
        "acme",
        |e| e.kind == "invalid_snapshot",
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(open.len(), 1, "{open:?}");
    assert_eq!(open[0].kind, "invalid_snapshot");

    shutdown.cancel();
    let _ = service.await;
    env.cleanup().await;
}
