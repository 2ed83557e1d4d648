//! Ferry's Centra client against the simulator: every operation it sends is valid against
//! the simulator's schema, it honours 429 `Retry-After` in all three forms, paginates, and
//! drives the Events queue.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failing test says what broke

use std::time::Duration;

use ferry_centra::{CentraClient, CentraError};
use ferry_sim_centra::{CentraSim, OrderMix, Quotas, RetryAfterFormat, SimConfig};
use secrecy::SecretString;
use tokio_util::sync::CancellationToken;

async fn sim(quotas: Quotas) -> (CentraSim, tokio_util::sync::DropGuard) {
    let shutdown = CancellationToken::new();
    let sim = CentraSim::start(
        SimConfig {
            quotas,
            ..SimConfig::default()
        },
        shutdown.clone(),
    )
    .await
    .expect("simulator starts");
    (sim, shutdown.drop_guard())
}

fn client(sim: &CentraSim, per_10s: u32) -> CentraClient {
    CentraClient::new(
        sim.graphql_url(),
        SecretString::from("sim-token"),
        per_10s,
        Duration::from_secs(5),
    )
}

#[tokio::test]
async fn every_client_operation_is_valid_against_the_schema() {
    let (sim, _guard) = sim(Quotas::unlimited()).await;
    let c = client(&sim, 1000);
    for (name, query) in ferry_centra::client::ops::all() {
        let input = if name == "set-stock" {
            serde_json::json!({ "warehouse": { "id": 1 }, "description": "test",
                                "stockQuantityType": "PHYSICAL",
                                "productSizes": [{ "productSize": { "SKU": "X" }, "quantity": 1 }] })
        } else if name == "complete-shipment" {
            serde_json::json!({ "shippedAt": "2026-01-01 12:00:00",
                                "shipmentInfo": { "trackingNumber": "T" }, "sendEmail": true })
        } else {
            serde_json::json!({ "order": { "number": 1 }, "lines": [{ "orderLine": { "id": 1 }, "quantity": 1 }],
                                "shippedAt": "2026-01-01 12:00:00", "shipmentInfo": { "trackingNumber": "T" },
                                "sendEmail": true, "capture": false })
        };
        let variables = serde_json::json!({
            "where": { "number": [1] }, "limit": 10, "page": 1,
            "from": "2020-01-01T00:00:00Z", "ids": [1], "orderNumber": 1,
            "skus": ["X"], "warehouse": 1, "input": input, "id": 1,
            "orderId": "no-such-order", "s0": "X", "s1": "Y",
        });
        // Variables the operation does not declare are ignored by GraphQL.
        let result = c.execute(&query, variables).await;
        assert!(result.is_ok(), "{name}: {result:?}");
    }
}

#[tokio::test]
async fn honours_retry_after_in_every_form() {
    for format in [
        RetryAfterFormat::Timestamp,
        RetryAfterFormat::Seconds,
        RetryAfterFormat::HttpDate,
    ] {
        let (sim, _guard) = sim(Quotas {
            request_count_10s: 2,
            retry_after: format,
            ..Quotas::default()
        })
        .await;
        // The client believes it may send 100 per 10 s; the instance allows 2.
        let c = client(&sim, 100);
        c.rate_limits().await.unwrap();
        c.rate_limits().await.unwrap();
        let err = c.rate_limits().await.unwrap_err();
        let CentraError::RateLimited { retry_after } = err else {
            panic!("{format:?}: expected a 429, got {err:?}");
        };
        assert!(
            retry_after >= Duration::from_secs(1) && retry_after <= Duration::from_secs(8),
            "{format:?}: {retry_after:?}"
        );
        assert!(err_is_transient(retry_after));
        // Everyone using this client now waits: nothing is sent until the time given.
        assert_eq!(c.limiter().remaining(), 0);
        let start = tokio::time::Instant::now();
        let answer = c.rate_limits().await;
        assert!(start.elapsed() >= retry_after.saturating_sub(Duration::from_millis(50)));
        assert!(answer.is_ok(), "{format:?}: after waiting {answer:?}");
    }
}

fn err_is_transient(retry_after: Duration) -> bool {
    CentraError::RateLimited { retry_after }.is_transient()
}

#[tokio::test]
async fn reports_the_remaining_budget() {
    let (sim, _guard) = sim(Quotas::default()).await;
    let c = client(&sim, 20);
    let buckets = c.rate_limits().await.unwrap();
    assert_eq!(buckets.len(), 6);
    let requests = buckets
        .iter()
        .find(|b| b.kind == "REQUEST_COUNT" && b.interval_seconds == "TEN_SECONDS")
        .unwrap();
    assert_eq!(requests.quota, 20);
    assert_eq!(requests.used_quota + requests.remaining_quota, 20);
    assert!(requests.used_quota >= 1);
}

#[tokio::test]
async fn paginates_changed_orders_and_drives_the_events_queue() {
    let (sim, _guard) = sim(Quotas::unlimited()).await;
    let c = client(&sim, 1000);
    c.listen_for_order_events().await.unwrap();
    let since = chrono::Utc::now() - chrono::Duration::seconds(1);
    let numbers = sim.generate(450, &OrderMix::default());
    let changed = c.orders_changed_since(since).await.unwrap();
    assert_eq!(changed, numbers, "three pages of 200, 200, 50");
    let later = chrono::Utc::now() + chrono::Duration::seconds(5);
    assert!(c.orders_changed_since(later).await.unwrap().is_empty());

    let first = c.order_events(200).await.unwrap();
    assert_eq!(first.len(), 200);
    assert_eq!(first[0].object_reference, numbers[0]);
    assert_eq!(first[0].object_type, "Order");
    assert_eq!(first[0].change_type, "CREATED");
    // Unconfirmed: the same page again.
    assert_eq!(c.order_events(200).await.unwrap(), first);
    let ids: Vec<i64> = first.iter().map(|e| e.id).collect();
    assert!(c.confirm_events(&ids).await.unwrap().is_empty());
    let second = c.order_events(200).await.unwrap();
    assert_eq!(second[0].object_reference, numbers[200]);
    // Confirming twice is a warning, not an error.
    assert_eq!(c.confirm_events(&ids[..1]).await.unwrap().len(), 1);
}
