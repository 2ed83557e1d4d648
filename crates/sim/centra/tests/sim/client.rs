//! Ferry's Centra client against the simulator: every operation it sends is valid against
//! the simulator's schema, it honours 429 `Retry-After` in all three forms, paginates, and
//! drives the Events queue.

use std::time::Duration;

use ferry_centra::{CentraClient, CentraError};
use ferry_sim_centra::{CentraSim, OrderMix, Plan, Quotas, RetryAfterFormat, SimConfig};
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
            "orderId": "no-such-order", "orderIds": ["no-such-order"], "s0": "X", "s1": "Y",
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
            ..Quotas::plan(Plan::Fresh)
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
    let (sim, _guard) = sim(Quotas::plan(Plan::Fresh)).await;
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

/// Issue 23: `ferry centra check` against the simulator with Ferry's own token passes — the
/// live schema read by introspection accepts every operation, no read permission is missing,
/// the quotas are reported and a recent order transforms.
#[tokio::test]
async fn the_going_live_check_passes_against_the_simulator() {
    use ferry_centra::check::live;
    let shutdown = CancellationToken::new();
    let sim = CentraSim::start(
        SimConfig {
            quotas: Quotas::unlimited(),
            tokens: vec![ferry_sim_centra::ApiToken::ferry("ferry-token")],
            ..SimConfig::default()
        },
        shutdown.clone(),
    )
    .await
    .expect("simulator starts");
    let _guard = shutdown.drop_guard();
    sim.generate(
        3,
        &OrderMix {
            hold_pct: 0,
            pending_pct: 0,
            ..OrderMix::default()
        },
    );
    let c = CentraClient::new(
        sim.graphql_url(),
        SecretString::from("ferry-token"),
        1000,
        Duration::from_secs(5),
    );
    let options = live::Options {
        rules: ferry_domain::Rules {
            erp_item_equals_sku: true,
            ..ferry_domain::Rules::default()
        },
        ..live::Options::default()
    };
    let report = live::check(&c, &options).await;
    assert!(report.passed(), "{report:#?}");
    assert!(report.differences.is_empty());
    assert!(
        matches!(report.schema_types, Some(Ok(n)) if n > 50),
        "{:?}",
        report.schema_types
    );
    let quotas = report.quotas.clone().unwrap().unwrap();
    assert_eq!(quotas.len(), 6, "every bucket");
    let order = report.order.clone().expect("a recent order");
    assert_eq!(
        order.status.as_deref(),
        Some("ready"),
        "{:?}",
        order.summary
    );
}

/// Against a Centra whose schema differs (a renamed field) and a token without a
/// permission, the check names each difference and each missing permission, and fails.
#[tokio::test]
async fn the_going_live_check_names_a_renamed_field_and_a_missing_permission() {
    use ferry_centra::check::live;
    let mut limited = ferry_sim_centra::ApiToken::ferry("limited");
    if let Some(p) = limited.permissions.as_mut() {
        p.retain(|p| p != "Order.shippingAddress:read");
    }
    let shutdown = CancellationToken::new();
    let sim = CentraSim::start(
        SimConfig {
            quotas: Quotas::unlimited(),
            tokens: vec![limited],
            ..SimConfig::default()
        },
        shutdown.clone(),
    )
    .await
    .expect("simulator starts");
    let _guard = shutdown.drop_guard();
    sim.set_faults(ferry_sim_centra::Faults {
        rename_in_schema: Some(ferry_sim_centra::SchemaRename {
            type_name: "ProductSize".into(),
            field: "SKU".into(),
            to: "sku".into(),
        }),
        ..Default::default()
    });
    sim.generate(1, &OrderMix::default());
    let c = CentraClient::new(
        sim.graphql_url(),
        SecretString::from("limited"),
        1000,
        Duration::from_secs(5),
    );
    let report = live::check(&c, &live::Options::default()).await;
    assert!(!report.passed());
    let named: Vec<String> = report.differences.iter().map(ToString::to_string).collect();
    assert!(
        named
            .iter()
            .any(|d| d.contains("order-snapshot") && d.contains("`SKU`")),
        "{named:#?}"
    );
    assert!(
        named.iter().any(|d| d.contains("stock-levels")),
        "{named:#?}"
    );
    assert_eq!(
        report.missing_permissions,
        vec![live::MissingPermission {
            permission: "Order.shippingAddress:read".into(),
            operation: "order-snapshot",
        }]
    );
}

/// The simulator enforces a plan's documented quotas; Growth unless told otherwise.
#[tokio::test]
async fn quotas_are_a_plans_growth_by_default() {
    let quota = |buckets: &[ferry_centra::client::RateLimitBucket], kind: &str, window: &str| {
        buckets
            .iter()
            .find(|b| b.kind == kind && b.interval_seconds == window)
            .map(|b| b.quota)
    };
    let (growth_sim, _g1) = sim(Quotas::default()).await;
    let growth = client(&growth_sim, 60).rate_limits().await.unwrap();
    assert_eq!(quota(&growth, "REQUEST_COUNT", "TEN_SECONDS"), Some(60));
    assert_eq!(quota(&growth, "REQUEST_COUNT", "ONE_HOUR"), Some(5_000));
    assert_eq!(quota(&growth, "MUTATION_COUNT", "TEN_SECONDS"), Some(20));
    assert_eq!(quota(&growth, "MUTATION_COUNT", "ONE_HOUR"), Some(1_800));
    let (enterprise_sim, _g2) = sim(Quotas::plan(Plan::Enterprise)).await;
    let enterprise = client(&enterprise_sim, 1_500).rate_limits().await.unwrap();
    assert_eq!(
        quota(&enterprise, "REQUEST_COUNT", "TEN_SECONDS"),
        Some(1_500)
    );
    assert_eq!(
        quota(&enterprise, "MUTATION_COUNT", "TEN_SECONDS"),
        Some(500)
    );
    assert_eq!(
        quota(&enterprise, "MUTATION_COUNT", "ONE_HOUR"),
        Some(25_000)
    );
}
