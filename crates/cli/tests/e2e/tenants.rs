//! Two brands on one Ferry, each with its own Centra and ERP, with the same order numbers:
//! a webhook signed with one brand's secret cannot post into the other's; each brand's
//! orders, shipments, stock and exceptions stay in its own flows.

use std::time::Duration;

use ferry::stack::Stack;
use ferry_sim_centra::{CentraSim, OrderMix, SimConfig, WebhookConfig};
use ferry_sim_erp::{ErpSim, ShipRequest};
use ferry_testing::TestEnv;
use secrecy::ExposeSecret;
use tokio_util::sync::CancellationToken;

const B: &str = "globex";

fn brand_b(centra: &str, erp: &str, secret: &str) -> ferry_config::TenantConfig {
    let text = format!(
        r#"
        [[tenants]]
        id = "{B}"
        [tenants.centra]
        url = "{centra}"
        token = "sim-token"
        webhook_secret = "{secret}"
        requests_per_10s = 500
        [tenants.erp]
        kind = "http"
        url = "{erp}"
        [tenants.rules]
        erp_item_equals_sku = true
        [tenants.fulfilment]
        poll_interval = "200ms"
        [tenants.inventory]
        warehouses = {{ "{warehouse}" = 1 }}
        push_interval = "1s"
        poll_interval = "100ms"
        "#,
        warehouse = ferry_sim_erp::SALES_WAREHOUSE,
    );
    ferry_config::Config::from_toml(&text)
        .expect("brand B")
        .tenants
        .remove(0)
}

/// A signed webhook naming order `number`, POSTed to `url`.
async fn webhook(url: &str, secret: &str, number: i64) -> u16 {
    let body = ferry_centra::webhook::encode_body(&ferry_centra::webhook::WebhookPayload {
        events: vec![ferry_centra::webhook::WebhookEvent {
            object_type: "order".into(),
            action: "insert".into(),
            date: String::new(),
            id: number,
        }],
    });
    let signed = ferry_centra::webhook::signature_header(
        secret.as_bytes(),
        chrono::Utc::now().timestamp(),
        body.as_bytes(),
    );
    reqwest::Client::new()
        .post(url)
        .header("content-type", "application/x-www-form-urlencoded")
        .header("x-centra-signature", signed)
        .body(body)
        .send()
        .await
        .expect("the webhook endpoint answers")
        .status()
        .as_u16()
}

fn refs(erp: &ErpSim) -> Vec<String> {
    let mut r: Vec<String> = erp.orders().into_iter().map(|o| o.external_ref).collect();
    r.sort();
    r
}

fn numbers(n: &[i64]) -> Vec<String> {
    let mut r: Vec<String> = n.iter().map(i64::to_string).collect();
    r.sort();
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_brands_on_one_ferry_never_see_each_others_flows() {
    let env = TestEnv::new().await;
    let stop = CancellationToken::new();
    // Brand B's own Centra (numbering its orders as brand A's does) and ERP.
    let centra_b = CentraSim::start(
        SimConfig {
            seed: 72,
            ..SimConfig::default()
        },
        stop.clone(),
    )
    .await
    .expect("B's Centra");
    let erp_b = ErpSim::start(([127, 0, 0, 1], 0).into(), stop.clone())
        .await
        .expect("B's ERP");
    let secret_b = format!("whsec-b-{:032x}", rand::random::<u128>());
    let mut config = env.config();
    config.reconciler.grace = Duration::ZERO;
    config.reconciler.interval = Duration::from_millis(100);
    config.reconciler.recheck = Duration::from_millis(200);
    config
        .tenants
        .push(brand_b(&centra_b.graphql_url(), &erp_b.url(), &secret_b));
    let mut options = crate::inventory::options(71);
    options.fulfilment.poll_interval = Duration::from_millis(200);
    let stack = Stack::start(config, options).await.expect("stack starts");
    assert_eq!(stack.tenant(), "acme");
    let store = env.store().await;
    let secret_a = stack
        .config
        .tenant("acme")
        .expect("brand A")
        .centra
        .webhook_secret
        .expose_secret()
        .to_owned();
    let url_a = stack.webhook_url.clone();
    let url_b = url_a.replace("/acme", &format!("/{B}"));
    centra_b.configure_webhooks(Some(WebhookConfig {
        url: url_b.clone(),
        secret: secret_b.clone(),
        ..WebhookConfig::default()
    }));

    // A webhook signed with one brand's secret is refused by the other's endpoint.
    assert_eq!(webhook(&url_b, &secret_a, 1000).await, 401);
    assert_eq!(webhook(&url_a, &secret_b, 1000).await, 401);

    let mix = OrderMix {
        hold_pct: 0,
        pending_pct: 0,
        ..OrderMix::default()
    };
    let orders_a = stack.centra.generate(3, &mix);
    let orders_b = centra_b.generate(2, &mix);
    assert_eq!(
        orders_a[..2],
        orders_b[..],
        "the same order numbers in both brands"
    );
    let posted_a =
        ferry_testing::wait_for_state(&store, "acme", "posted", 3, Duration::from_secs(60)).await;
    let posted_b =
        ferry_testing::wait_for_state(&store, B, "posted", 2, Duration::from_secs(60)).await;
    assert_eq!((posted_a, posted_b), (3, 2));
    assert_eq!(
        refs(&stack.erp),
        numbers(&orders_a),
        "A's ERP has A's orders"
    );
    assert_eq!(refs(&erp_b), numbers(&orders_b), "B's ERP has B's orders");
    // Each ERP document is its own brand's order, not the other's of the same number: its
    // total is what that brand's customer paid.
    let paid = |order: &ferry_sim_centra::model::Order| {
        let scale = rust_decimal::Decimal::from(10_i64.pow(order.market.exponent));
        let minor = order.figures().grand_total * scale;
        (
            order.market.currency.to_string(),
            minor.normalize().to_string(),
        )
    };
    for n in &orders_b {
        for (erp, centra, brand) in [(&stack.erp, &stack.centra, "A"), (&erp_b, &centra_b, "B")] {
            let document = erp.order(&n.to_string()).expect("a document");
            let order = centra.state.order(*n).expect("the order");
            assert_eq!(
                (document.currency.clone(), document.gross_minor.to_string()),
                paid(&order),
                "brand {brand}'s order {n}"
            );
        }
    }
    assert_ne!(
        stack.centra.state.order(orders_b[0]).map(|o| paid(&o)),
        centra_b.state.order(orders_b[0]).map(|o| paid(&o)),
        "the brands' orders of one number differ (else this proves nothing)"
    );

    // Shipments: each brand's warehouse ships one order; each reaches its own Centra.
    let ship = |erp: &ErpSim, n: i64, tracking: &str| {
        erp.ship(ShipRequest {
            external_ref: n.to_string(),
            lines: None,
            carrier: Some("PostNord".into()),
            tracking_number: Some(tracking.to_owned()),
        })
        .expect("shipped");
    };
    ship(&stack.erp, orders_a[2], "A-TRACK");
    ship(&erp_b, orders_b[0], "B-TRACK");
    let tracking_of = |centra: &CentraSim, n: i64| {
        centra.state.ops(|o| {
            o.shipments_of(n)
                .iter()
                .filter_map(|s| s.tracking_number.clone())
                .collect::<Vec<_>>()
        })
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while tracking_of(&stack.centra, orders_a[2]).is_empty()
        || tracking_of(&centra_b, orders_b[0]).is_empty()
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "shipments reach Centra"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(tracking_of(&stack.centra, orders_a[2]), vec!["A-TRACK"]);
    assert_eq!(tracking_of(&centra_b, orders_b[0]), vec!["B-TRACK"]);
    assert!(
        tracking_of(&centra_b, orders_a[2]).is_empty(),
        "A's shipment in B"
    );
    assert!(
        tracking_of(&stack.centra, orders_b[0]).is_empty(),
        "B's shipment in A"
    );

    // Stock: A's ERP counts a size again (one no order holds); only A's Centra hears of it.
    let sku = crate::inventory::synthetic_skus(&stack, 1).remove(0);
    crate::inventory::set_erp(&stack, &[(sku.as_str(), 321)]);
    // B's Centra does not know the size at all: A's stock must not make it appear there.
    let physical = |centra: &CentraSim| {
        centra
            .state
            .ops(|o| o.size_by_sku(&sku).map(|size| o.stock_of(size, 1).physical))
    };
    let b_before = physical(&centra_b);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while physical(&stack.centra) != Some(321) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "A's stock reaches A's Centra"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert_eq!(
        physical(&centra_b),
        b_before,
        "A's stock reached B's Centra"
    );
    let ferry_in_b = centra_b.state.ops(|o| {
        o.stock_changes
            .iter()
            .filter(|c| c.description.starts_with("Ferry"))
            .count()
    });
    assert_eq!(
        ferry_in_b, 0,
        "Ferry changed B's stock though B's ERP has none"
    );

    // An exception of A's (an order whose webhook was lost, missing past its grace) is
    // A's alone.
    stack.centra.configure_webhooks(None);
    let lost = stack.centra.generate(1, &mix)[0];
    let found = ferry_testing::wait_for_exception(
        &store,
        "acme",
        |e| e.kind == "order_missing_in_erp" && e.order_number == Some(lost),
        Duration::from_secs(30),
    )
    .await;
    assert!(!found.is_empty());
    let b_open = store.open_exceptions(B).await.expect("B's exceptions");
    assert!(b_open.is_empty(), "B sees exceptions: {b_open:#?}");
    assert!(!orders_b.contains(&lost));
    assert_eq!(
        refs(&erp_b),
        numbers(&orders_b),
        "B's ERP still has B's orders only"
    );
    assert!(
        store.ledger_row(B, lost).await.expect("ledger").is_none(),
        "A's order in B's ledger"
    );

    stack.shutdown().await;
    stop.cancel();
    env.cleanup().await;
}
