//! The simulator answers the contract query with snapshots that satisfy the contract: the
//! grand total identity holds and the transform accepts every one of them.

use ferry_centra::CentraClient;
use ferry_domain::{Release, Rules, Snapshot, transform};
use ferry_sim_centra::{CentraSim, OrderMix, SimConfig};
use secrecy::SecretString;
use tokio_util::sync::CancellationToken;

#[tokio::test]
async fn snapshots_satisfy_the_contract() {
    let shutdown = CancellationToken::new();
    let sim = CentraSim::start(
        SimConfig {
            seed: 42,
            ..SimConfig::default()
        },
        shutdown.clone(),
    )
    .await
    .expect("simulator starts");
    let mix = OrderMix {
        hold_pct: 5,
        pending_pct: 5,
        ..OrderMix::default()
    };
    let numbers = sim.generate(400, &mix);
    let client = CentraClient::new(
        sim.graphql_url(),
        SecretString::from("sim-token"),
        1000,
        std::time::Duration::from_secs(10),
    );
    let snapshots = client
        .order_snapshots(&numbers)
        .await
        .expect("query answers");
    assert_eq!(snapshots.len(), numbers.len());
    let rules = Rules {
        erp_item_equals_sku: true,
        ..Rules::default()
    };
    let mut by_status = std::collections::BTreeMap::new();
    for raw in &snapshots {
        let snapshot = Snapshot::parse(&raw.json).expect("snapshot parses");
        let order = transform(&snapshot, &rules, &ferry_domain::NoItems);
        assert!(
            order.problems.is_empty(),
            "order {} rejected: {:?}\n{}",
            raw.number,
            order.problems,
            String::from_utf8_lossy(&raw.json)
        );
        assert_ne!(order.release, Release::Rejected);
        *by_status.entry(order.release.as_str()).or_insert(0) += 1;
    }
    assert!(
        by_status.get("ready").copied().unwrap_or(0) > 300,
        "{by_status:?}"
    );
    assert!(
        by_status.get("held").copied().unwrap_or(0) > 0,
        "{by_status:?}"
    );
    shutdown.cancel();
}

#[tokio::test]
async fn field_order_matches_the_contract_examples() {
    let shutdown = CancellationToken::new();
    let sim = CentraSim::start(SimConfig::default(), shutdown.clone())
        .await
        .expect("starts");
    let numbers = sim.generate(
        1,
        &OrderMix {
            markets: vec![1],
            ..OrderMix::default()
        },
    );
    let client = CentraClient::new(
        sim.graphql_url(),
        SecretString::from("sim-token"),
        100,
        std::time::Duration::from_secs(5),
    );
    let snapshot = client
        .order_snapshots(&numbers)
        .await
        .expect("answers")
        .remove(0);
    let value: serde_json::Value = serde_json::from_slice(&snapshot.json).expect("json");
    let keys: Vec<&str> = value
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    let example: serde_json::Value = serde_json::from_str(include_str!(
        "../../../../../tests/contracts/examples/01-sek-simple.json"
    ))
    .expect("example");
    let example_keys: Vec<&str> = example
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys, example_keys);
    shutdown.cancel();
}

#[tokio::test]
async fn refuses_requests_without_a_valid_token() {
    let shutdown = CancellationToken::new();
    let sim = CentraSim::start(SimConfig::default(), shutdown.clone())
        .await
        .expect("starts");
    let client = CentraClient::new(
        sim.graphql_url(),
        SecretString::from("wrong"),
        100,
        std::time::Duration::from_secs(5),
    );
    let err = client.order_snapshots(&[1]).await.expect_err("refused");
    assert!(
        matches!(err, ferry_centra::CentraError::Unauthorized { status: 403 }),
        "{err:?}"
    );
    assert!(!err.is_transient());
    shutdown.cancel();
}

/// The precompiled answer to the contract query is byte for byte the GraphQL engine's.
#[tokio::test]
async fn the_precompiled_contract_answer_equals_the_engines() {
    let shutdown = CancellationToken::new();
    let sim = CentraSim::start(
        SimConfig {
            seed: 99,
            ..SimConfig::default()
        },
        shutdown.clone(),
    )
    .await
    .expect("starts");
    let mix = OrderMix {
        hold_pct: 5,
        pending_pct: 5,
        cancellation_pct: 20,
        bundle_pct: 30,
        voucher_pct: 40,
        ..OrderMix::default()
    };
    let numbers = sim.generate(300, &mix);
    let http = reqwest::Client::new();
    let ask = |query: String| {
        let body = serde_json::json!({ "query": query, "variables": { "where": { "number": numbers }, "limit": 200, "page": 1 } });
        http.post(sim.graphql_url())
            .bearer_auth("sim-token")
            .json(&body)
            .send()
    };
    let fast = ask(ferry_centra::ORDER_SNAPSHOT_QUERY.to_owned())
        .await
        .expect("fast")
        .text()
        .await
        .expect("body");
    // A comment makes the text differ, so this one goes through the engine.
    let slow = ask(format!("# engine\n{}", ferry_centra::ORDER_SNAPSHOT_QUERY))
        .await
        .expect("slow")
        .text()
        .await
        .expect("body");
    assert!(fast.len() > 100_000, "200 orders answered");
    assert_eq!(
        sim.state
            .fast_answers
            .load(std::sync::atomic::Ordering::Relaxed),
        1,
        "one answer took the precompiled path"
    );
    assert_eq!(fast, slow);
    shutdown.cancel();
}

/// The admin API loads a snapshot as an order; the contract query then answers it with the
/// same figures, lines and people, and a snapshot that does not add up is refused.
#[tokio::test]
async fn a_loaded_snapshot_answers_as_it_was_loaded() {
    let shutdown = CancellationToken::new();
    let sim = CentraSim::start(SimConfig::default(), shutdown.clone())
        .await
        .expect("starts");
    let http = reqwest::Client::new();
    let client = CentraClient::new(
        sim.graphql_url(),
        SecretString::from("sim-token"),
        100,
        std::time::Duration::from_secs(5),
    );
    for text in [
        include_str!("../../../../../tests/contracts/examples/01-sek-simple.json"),
        include_str!("../../../../../tests/contracts/examples/02-gbp-voucher-shipping.json"),
        include_str!("../../../../../tests/contracts/examples/03-usd-tax-added.json"),
    ] {
        let example: serde_json::Value = serde_json::from_str(text).expect("example");
        let number = example["number"].as_i64().expect("number");
        let loaded = http
            .post(format!("{}/admin/snapshots", sim.url()))
            .body(text)
            .send()
            .await
            .expect("load");
        assert_eq!(loaded.status(), 201, "{}", loaded.text().await.unwrap());
        let again = http
            .post(format!("{}/admin/snapshots", sim.url()))
            .body(text)
            .send()
            .await
            .expect("load again");
        assert_eq!(again.status(), 409, "a number is loaded once");

        let answer = client
            .order_snapshots(&[number])
            .await
            .expect("answers")
            .remove(0);
        let got: serde_json::Value = serde_json::from_slice(&answer.json).expect("json");
        for pointer in [
            "/grandTotal",
            "/grandTotalExTax",
            "/totals",
            "/discountsApplied",
            "/shippingAddress",
            "/billingAddress",
            "/customer",
            "/country",
            "/market",
            "/pricelist",
            "/paymentHistory",
        ] {
            assert_eq!(
                got.pointer(pointer),
                example.pointer(pointer),
                "order {number}, {pointer}"
            );
        }
        assert_eq!(got["lines"], example["lines"], "order {number} lines");
    }
    let tampered = include_str!("../../../../../tests/contracts/examples/01-sek-simple.json")
        .replace("\"number\": ", "\"number\": 1")
        .replace("\"taxPercent\": 25", "\"taxPercent\": 12");
    let refused = http
        .post(format!("{}/admin/snapshots", sim.url()))
        .body(tampered)
        .send()
        .await
        .expect("refused");
    assert_eq!(refused.status(), 422);
    assert!(
        refused.text().await.unwrap().contains("the snapshot says"),
        "the refusal names both figures"
    );
    shutdown.cancel();
}

/// Orders from any configured market — Finland, the Netherlands and Norway among them —
/// are generated, answered in the contract's shape, and loaded back into another instance
/// from their snapshots.
#[tokio::test]
async fn orders_from_the_nordics_and_the_eu_are_generated_and_loaded() {
    let shutdown = CancellationToken::new();
    let source = CentraSim::start(SimConfig::default(), shutdown.clone())
        .await
        .expect("starts");
    let markets = [(9, "FI", "EUR"), (11, "NL", "EUR"), (7, "NO", "NOK")];
    let numbers = source.generate(
        12,
        &OrderMix {
            markets: markets.iter().map(|(id, _, _)| *id).collect(),
            ..OrderMix::default()
        },
    );
    let client = CentraClient::new(
        source.graphql_url(),
        SecretString::from("sim-token"),
        100,
        std::time::Duration::from_secs(5),
    );
    let snapshots = client.order_snapshots(&numbers).await.expect("answers");
    assert_eq!(snapshots.len(), 12);
    let target = CentraSim::start(SimConfig::default(), shutdown.clone())
        .await
        .expect("starts");
    let http = reqwest::Client::new();
    let mut seen = std::collections::BTreeSet::new();
    for snapshot in &snapshots {
        let value: serde_json::Value = serde_json::from_slice(&snapshot.json).expect("json");
        let country = value["country"]["code"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let currency = value["currency"]["code"]
            .as_str()
            .or_else(|| value["grandTotal"]["currency"]["code"].as_str())
            .unwrap_or_default()
            .to_owned();
        assert!(
            markets
                .iter()
                .any(|(_, c, cur)| *c == country && (currency.is_empty() || *cur == currency)),
            "{country} {currency}"
        );
        seen.insert(country);
        let answer = http
            .post(format!("{}/admin/snapshots", target.url()))
            .body(snapshot.json.to_vec())
            .send()
            .await
            .expect("answers");
        assert!(
            answer.status().is_success(),
            "{}",
            answer.text().await.unwrap_or_default()
        );
    }
    assert!(seen.len() >= 2, "orders from several markets: {seen:?}");
    shutdown.cancel();
}
