//! Against real Tryton (`scripts/tryton.sh`): the public examples and generated orders are
//! posted with what the customer paid as Tryton's total, tax matching or balanced by an
//! explicit rounding line; posting again, redelivery and a writer restart give one sale per
//! order.

use std::time::Duration;

use ferry::stack::{Stack, StackOptions};
use ferry_centra::CentraClient;
use ferry_config::{ErpConfig, TenantConfig};
use ferry_domain::{Release, Rules, Snapshot, transform};
use ferry_erp::{Erp, PostOrder, PostOrders, ShipmentFeed, StockFeed};
use ferry_erp_tryton::{Tryton, TrytonConfig};
use ferry_proto::centra::v1 as centra_pb;
use ferry_sim_centra::{CentraSim, OrderMix, SimConfig};
use ferry_testing::TestEnv;
use ferry_testing::rpc_proxy::{RpcFault, RpcProxy};
use secrecy::SecretString;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

pub(crate) fn unique_prefix() -> String {
    format!(
        "t{}-",
        uuid::Uuid::new_v4()
            .simple()
            .to_string()
            .get(..8)
            .unwrap_or("x")
    )
}

/// The tenant's `[erp]` table for the run's Tryton.
pub(crate) fn tryton_erp(t: &ferry_testing::TrytonInfra, url: String, prefix: String) -> ErpConfig {
    ErpConfig::new(
        "tryton",
        serde_json::json!({
            "url": url,
            "user": t.user,
            "password": t.password,
            "confirm": true,
            "carrier": "PostNord",
            "reference_prefix": prefix,
        }),
    )
}

pub(crate) fn connector(prefix: &str) -> Tryton {
    let t = ferry_testing::tryton().expect("Tryton runs (scripts/tryton.sh)");
    connector_at(&t.url, prefix)
}

/// The test Tryton's connector reaching it at `url` (through a fault proxy, say).
pub(crate) fn connector_at(url: &str, prefix: &str) -> Tryton {
    let t = ferry_testing::tryton().expect("Tryton runs (scripts/tryton.sh)");
    Tryton::new(TrytonConfig {
        reference_prefix: prefix.to_owned(),
        ..TrytonConfig::new(url, t.user, SecretString::from(t.password))
    })
}

pub(crate) fn tenant(rules: Rules) -> TenantConfig {
    let text = r#"
        id = "acme"
        [centra]
        url = "http://127.0.0.1:1/graphql"
        token = "t"
        webhook_secret = "s"
        [erp]
        kind = "http"
        url = "http://127.0.0.1:1"
    "#;
    let mut tenant: TenantConfig = toml::from_str(text).expect("tenant");
    tenant.rules = rules;
    tenant
}

/// Snapshot JSON → what the writer posts, through the real transform and conversions.
pub(crate) fn post_order(
    tenant: &TenantConfig,
    json: &[u8],
    items: &dyn ferry_domain::ItemMap,
) -> PostOrder {
    let snapshot = Snapshot::parse(json).expect("snapshot");
    let order = transform(&snapshot, &tenant.rules, items);
    assert_eq!(order.release, Release::Ready, "{:?}", order.problems);
    let source = centra_pb::OrderSnapshot {
        tenant: tenant.id.clone(),
        order_number: order.order_number,
        snapshot_json: json.to_vec().into(),
        ..Default::default()
    };
    let pb = ferry_transform::convert::sales_order(tenant, &order, &source);
    ferry_erp_writer::convert::post_order(tenant, &pb)
}

/// A contract example (`tests/contracts/examples/<name>`) as the writer would post it, with
/// its SKU map and the tenant's tax codes for 25, 20 and 8.875 %.
pub(crate) fn example(name: &str) -> PostOrder {
    let dir = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/contracts/examples"
    );
    let json = std::fs::read(format!("{dir}/{name}.json")).expect("example");
    let csv = std::fs::read_to_string(format!("{dir}/{name}.map.csv")).expect("map");
    let items: std::collections::HashMap<String, String> =
        ferry_domain::rules::parse_mapping_csv(&csv)
            .expect("csv")
            .into_iter()
            .collect();
    let mut rules = Rules::default();
    for rate in ["25", "20", "8.875"] {
        rules.tax_codes.insert(rate.into(), format!("VAT{rate}"));
    }
    post_order(&tenant(rules), &json, &items)
}

pub(crate) async fn sales_with_reference(tryton: &Tryton, reference: &str) -> usize {
    tryton
        .rpc()
        .call(
            "model.sale.sale.search_count",
            vec![json!([["reference", "=", reference]])],
        )
        .await
        .expect("count")
        .as_u64()
        .unwrap_or(0) as usize
}

#[derive(Default, Debug)]
struct Tally {
    orders: usize,
    tax_exact: usize,
    rounding_lines: usize,
}

async fn post_and_check(tryton: &Tryton, order: &PostOrder, tally: &mut Tally) {
    let doc = tryton
        .create_sales_order(order)
        .await
        .unwrap_or_else(|e| panic!("order {}: {e}", order.external_ref));
    assert_eq!(
        doc.gross_minor, order.gross_minor,
        "order {} ({}): Tryton's total must be what the customer paid",
        order.external_ref, order.currency
    );
    if doc.tax_minor == order.tax_minor {
        tally.tax_exact += 1;
    } else {
        assert_ne!(
            doc.rounding_minor, 0,
            "order {}: tax {} vs {} without a rounding line",
            order.external_ref, doc.tax_minor, order.tax_minor
        );
        // The rounding line carries exactly the tax Tryton computed differently.
        assert_eq!(doc.rounding_minor, order.tax_minor - doc.tax_minor);
    }
    if doc.rounding_minor != 0 {
        tally.rounding_lines += 1;
    }
    tally.orders += 1;
    // Posting again finds the same sale.
    let again = tryton.create_sales_order(order).await.expect("again");
    assert_eq!(again.reference, doc.reference);
    let found = tryton
        .find_sales_order(&order.external_ref)
        .await
        .expect("find")
        .expect("found");
    assert_eq!(found, doc);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn public_examples_and_generated_orders_reach_tryton_with_what_the_customer_paid() {
    let prefix = unique_prefix();
    let tryton = connector(&prefix);
    tryton.health().await.expect("Tryton answers");
    let mut tally = Tally::default();

    // The public examples, with their SKU maps and the tenant's tax codes.
    for name in [
        "01-sek-simple",
        "02-gbp-voucher-shipping",
        "03-usd-tax-added",
        "04-sek-bundle-voucher",
    ] {
        let order = example(name);
        post_and_check(&tryton, &order, &mut tally).await;
        assert_eq!(
            sales_with_reference(&tryton, &format!("{prefix}{}", order.external_ref)).await,
            1
        );
    }

    // 30 generated orders over every market, with vouchers, bundles, handling and
    // cancellations; taxes found by rate (no tax codes).
    let tenant_rates = tenant(Rules {
        erp_item_equals_sku: true,
        ..Rules::default()
    });
    let shutdown = CancellationToken::new();
    let sim = CentraSim::start(
        SimConfig {
            seed: 5,
            ..SimConfig::default()
        },
        shutdown.clone(),
    )
    .await
    .expect("simulator");
    let numbers = sim.generate(
        30,
        &OrderMix {
            hold_pct: 0,
            pending_pct: 0,
            voucher_pct: 50,
            bundle_pct: 30,
            cancellation_pct: 20,
            handling_pct: 30,
            ..OrderMix::default()
        },
    );
    let client = CentraClient::new(
        sim.graphql_url(),
        SecretString::from("sim-token"),
        1000,
        Duration::from_secs(10),
    );
    let mut currencies = std::collections::BTreeSet::new();
    for raw in client.order_snapshots(&numbers).await.expect("snapshots") {
        let order = post_order(&tenant_rates, &raw.json, &ferry_domain::NoItems);
        currencies.insert(order.currency.clone());
        post_and_check(&tryton, &order, &mut tally).await;
    }
    assert!(currencies.len() >= 4, "several markets: {currencies:?}");
    assert_eq!(tally.orders, 34);
    eprintln!("TRYTON POSTING: {tally:?}");
    shutdown.cancel();
}

/// The writer against Tryton: every message redelivered, the writer killed and restarted
/// mid-run, and still one sale per order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redelivery_and_a_writer_restart_leave_one_tryton_sale_per_order() {
    let env = TestEnv::new().await;
    let t = ferry_testing::tryton().expect("Tryton");
    let prefix = unique_prefix();
    let mut config = env.config();
    config.erp_writer.request_timeout = Duration::from_secs(20);
    let options = StackOptions {
        tenant: "acme".into(),
        seed: 11,
        centra_requests_per_10s: 1000,
        erp: Some(tryton_erp(&t, t.url.clone(), prefix.clone())),
        ..StackOptions::default()
    };
    let mut stack = Stack::start(config, options).await.expect("stack");
    let store = env.store().await;
    let numbers = stack.centra.generate(
        12,
        &OrderMix {
            hold_pct: 0,
            pending_pct: 0,
            markets: vec![1, 2, 3],
            ..OrderMix::default()
        },
    );
    // Let a few post, then kill the writer while others are in flight.
    wait_for_posted(&store, 3, Duration::from_secs(120)).await;
    stack.kill_service("erp-writer").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    stack
        .start_service("erp-writer", &ferry_runtime::service::Readiness::default())
        .await
        .expect("restarts");
    let posted = wait_for_posted(&store, 12, Duration::from_secs(240)).await;
    assert_eq!(posted, 12);

    // Redeliver every ready order: the writer must find each sale, never create another.
    let js = async_nats::jetstream::new(env.nats().await);
    let topology = ferry_runtime::Topology::new(&env.prefix);
    let stream = js
        .get_stream(topology.stream_name(ferry_runtime::StreamKind::Orders))
        .await
        .expect("stream");
    let info = stream.get_info().await.expect("info");
    let mut replayed = 0;
    for seq in info.state.first_sequence..=info.state.last_sequence {
        if let Ok(msg) = stream.get_raw_message(seq).await
            && msg.subject.contains(".ready.")
        {
            js.publish(msg.subject.to_string(), msg.payload.clone())
                .await
                .expect("publish")
                .await
                .expect("ack");
            replayed += 1;
        }
    }
    assert!(replayed >= 12, "replayed {replayed}");
    tokio::time::sleep(Duration::from_secs(5)).await;

    let tryton = connector(&prefix);
    for n in &numbers {
        assert_eq!(
            sales_with_reference(&tryton, &format!("{prefix}{n}")).await,
            1,
            "order {n} must be one Tryton sale"
        );
    }
    let open = store.open_exceptions("acme").await.expect("exceptions");
    assert!(
        open.iter().all(|e| e.kind != "erp_totals_mismatch"),
        "Tryton's totals match: {open:?}"
    );
    stack.shutdown().await;
    env.cleanup().await;
}

pub(crate) async fn wait_for_posted(
    store: &ferry_store::Store,
    want: i64,
    within: Duration,
) -> i64 {
    ferry_testing::wait_for_state(store, "acme", "posted", want, within).await
}

/// A confirmed sale lowers Tryton's sellable stock by what it ordered; shipping it through
/// Tryton's own workflow with a tracking number puts it on the shipment feed, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stock_and_shipments_come_back_from_tryton() {
    let prefix = unique_prefix();
    let tryton = connector(&prefix);
    let tenant = tenant(Rules {
        erp_item_equals_sku: true,
        ..Rules::default()
    });
    let shutdown = CancellationToken::new();
    let sim = CentraSim::start(
        SimConfig {
            seed: 77,
            ..SimConfig::default()
        },
        shutdown.clone(),
    )
    .await
    .expect("simulator");
    let numbers = sim.generate(
        1,
        &OrderMix {
            hold_pct: 0,
            pending_pct: 0,
            bundle_pct: 0,
            cancellation_pct: 0,
            markets: vec![1],
            ..OrderMix::default()
        },
    );
    let client = CentraClient::new(
        sim.graphql_url(),
        SecretString::from("sim-token"),
        1000,
        Duration::from_secs(10),
    );
    let raw = client
        .order_snapshots(&numbers)
        .await
        .expect("snapshot")
        .remove(0);
    let order = post_order(&tenant, &raw.json, &ferry_domain::NoItems);
    let items: Vec<(String, i64)> = order
        .lines
        .iter()
        .filter(|l| l.kind == ferry_erp::LineKind::Item)
        .map(|l| (l.erp_item.clone(), l.quantity))
        .collect();
    let codes: Vec<String> = items.iter().map(|(c, _)| c.clone()).collect();
    let available = |levels: Vec<ferry_erp::StockLevel>, code: &str| -> i64 {
        levels
            .iter()
            .filter(|l| l.erp_item == code)
            .map(|l| l.available)
            .sum()
    };
    let before = tryton.stock_levels(&codes).await.expect("stock");
    assert!(!before.is_empty(), "stock for {codes:?}");

    // The feed's position before this test's shipment.
    let mut cursor = String::new();
    loop {
        let page = tryton.shipments_since(&cursor, 200).await.expect("feed");
        if page.shipments.is_empty() {
            break;
        }
        cursor = page.next_cursor;
    }

    let doc = tryton.create_sales_order(&order).await.expect("posted");
    let after = tryton.stock_levels(&codes).await.expect("stock");
    for (code, quantity) in &items {
        assert_eq!(
            available(after.clone(), code),
            available(before.clone(), code) - quantity,
            "{code}: a confirmed sale is no longer sellable"
        );
    }

    // The warehouse ships it in Tryton: assign, pick, pack, tracking number, ship, done.
    let tracking = format!("PN{}SE", order.external_ref);
    ship_in_tryton(
        &tryton,
        &format!("{prefix}{}", order.external_ref),
        &tracking,
    )
    .await;

    let page = tryton.shipments_since(&cursor, 200).await.expect("feed");
    let ours: Vec<_> = page
        .shipments
        .iter()
        .filter(|s| s.external_ref == order.external_ref)
        .collect();
    assert_eq!(ours.len(), 1, "{page:?}");
    assert_eq!(ours[0].tracking_number.as_deref(), Some(tracking.as_str()));
    assert!(
        ours[0]
            .carrier
            .as_deref()
            .unwrap_or("")
            .contains("PostNord")
    );
    let mut shipped: Vec<(String, i64)> = ours[0]
        .lines
        .iter()
        .map(|l| (l.erp_item.clone(), l.quantity))
        .collect();
    shipped.sort();
    let mut ordered = items.clone();
    ordered.sort();
    assert_eq!(shipped, ordered);
    let again = tryton
        .shipments_since(&page.next_cursor, 200)
        .await
        .expect("feed");
    assert!(
        again
            .shipments
            .iter()
            .all(|s| s.external_ref != order.external_ref),
        "the cursor moves past a shipment"
    );
    assert!(!doc.reference.is_empty());
    shutdown.cancel();
}

/// The Tryton ids of a sale's shipments.
async fn sale_shipments(tryton: &Tryton, reference: &str) -> Vec<i64> {
    let rpc = tryton.rpc();
    let sale_ids = rpc
        .call(
            "model.sale.sale.search",
            vec![
                json!([["reference", "=", reference]]),
                json!(0),
                json!(1),
                json!(null),
            ],
        )
        .await
        .expect("sale");
    let sale = rpc
        .call("model.sale.sale.read", vec![sale_ids, json!(["shipments"])])
        .await
        .expect("read");
    sale[0]["shipments"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_i64())
        .collect()
}

/// Completes one customer shipment as a warehouse would: assign, pick, pack, the tracking
/// number as shipping reference, ship, done.
async fn complete_tryton_shipment(tryton: &Tryton, shipment: i64, tracking: &str) {
    let rpc = tryton.rpc();
    for step in ["assign_try", "pick", "pack"] {
        rpc.call(
            &format!("model.stock.shipment.out.{step}"),
            vec![json!([shipment])],
        )
        .await
        .unwrap_or_else(|e| panic!("{step}: {e}"));
    }
    rpc.call(
        "model.stock.shipment.out.write",
        vec![json!([shipment]), json!({"shipping_reference": tracking})],
    )
    .await
    .expect("tracking");
    for step in ["ship", "do"] {
        rpc.call(
            &format!("model.stock.shipment.out.{step}"),
            vec![json!([shipment])],
        )
        .await
        .unwrap_or_else(|e| panic!("{step}: {e}"));
    }
}

/// Ships a sale whole through Tryton's own workflow.
pub(crate) async fn ship_in_tryton(tryton: &Tryton, reference: &str, tracking: &str) {
    let shipment = sale_shipments(tryton, reference).await[0];
    complete_tryton_shipment(tryton, shipment, tracking).await;
}

/// Splits a sale's shipment in two, as a warehouse does when part of an order is not ready:
/// the last line moves to a second shipment. Returns (first, second).
async fn split_tryton_shipment(tryton: &Tryton, reference: &str) -> (i64, i64) {
    let rpc = tryton.rpc();
    let first = sale_shipments(tryton, reference).await[0];
    let fields = [
        "customer",
        "delivery_address",
        "warehouse",
        "warehouse_output",
        "warehouse_storage",
        "company",
        "carrier",
        "outgoing_moves",
    ];
    let read = rpc
        .call(
            "model.stock.shipment.out.read",
            vec![json!([first]), json!(fields)],
        )
        .await
        .expect("read");
    let moves = read[0]["outgoing_moves"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(moves.len() >= 2, "an order of two lines or more");
    let last = moves.last().cloned().unwrap_or_default();
    rpc.call("model.stock.shipment.out.draft", vec![json!([first])])
        .await
        .expect("draft");
    let mut values = serde_json::Map::new();
    for f in &fields[..7] {
        values.insert((*f).to_owned(), read[0][*f].clone());
    }
    let created = rpc
        .call("model.stock.shipment.out.create", vec![json!([values])])
        .await
        .expect("second shipment");
    let second = created[0].as_i64().expect("id");
    rpc.call(
        "model.stock.shipment.out.write",
        vec![
            json!([first]),
            json!({"outgoing_moves": [["remove", [last]]]}),
            json!([second]),
            json!({"outgoing_moves": [["add", [last]]]}),
        ],
    )
    .await
    .expect("move the last line");
    rpc.call(
        "model.stock.shipment.out.wait",
        vec![json!([first, second])],
    )
    .await
    .expect("wait");
    (first, second)
}

/// Orders posted to Tryton by the writer, shipped in Tryton by the warehouse, reach the
/// Centra simulator as completed shipments with the tracking number, the customer's e-mail
/// and the order shipped — a plain order and a bundle.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shipping_in_tryton_completes_the_order_in_centra() {
    let env = TestEnv::new().await;
    let t = ferry_testing::tryton().expect("Tryton");
    let prefix = unique_prefix();
    let mut config = env.config();
    config.erp_writer.request_timeout = Duration::from_secs(20);
    let options = StackOptions {
        tenant: "acme".into(),
        seed: 31,
        centra_requests_per_10s: 1000,
        erp: Some(tryton_erp(&t, t.url.clone(), prefix.clone())),
        ..StackOptions::default()
    };
    let stack = Stack::start(config, options).await.expect("stack");
    let store = env.store().await;
    let mix = OrderMix {
        hold_pct: 0,
        pending_pct: 0,
        cancellation_pct: 0,
        markets: vec![1],
        ..OrderMix::default()
    };
    let plain = stack.centra.generate(
        1,
        &OrderMix {
            bundle_pct: 0,
            ..mix.clone()
        },
    )[0];
    let bundle = stack.centra.generate(
        1,
        &OrderMix {
            bundle_pct: 100,
            ..mix
        },
    )[0];
    assert_eq!(
        wait_for_posted(&store, 2, Duration::from_secs(120)).await,
        2
    );
    let tryton = connector(&prefix);
    for (n, tracking) in [(plain, "PN-TRY-1"), (bundle, "PN-TRY-2")] {
        ship_in_tryton(&tryton, &format!("{prefix}{n}"), tracking).await;
        let mut done = false;
        for _ in 0..300 {
            let shipped = stack.centra.state.ops(|o| {
                o.shipments_of(n)
                    .iter()
                    .any(|s| s.is_shipped && s.tracking_number.as_deref() == Some(tracking))
            });
            if shipped {
                done = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(done, "order {n}: Centra shows the shipment with {tracking}");
        let order = stack.centra.state.order(n).expect("order");
        assert_eq!(format!("{:?}", order.status), "Shipped", "order {n}");
        let shipped: i64 = stack.centra.state.ops(|o| {
            o.shipments_of(n)
                .iter()
                .flat_map(|s| s.lines.iter())
                .map(|l| l.quantity)
                .sum()
        });
        let ordered: i64 = order.lines.iter().map(|l| l.quantity).sum();
        assert_eq!(
            shipped, ordered,
            "order {n}: every line shipped, bundles as bundles"
        );
        let emails = stack.centra.state.ops(|o| {
            o.emails
                .iter()
                .filter(|e| {
                    e.order_number == n
                        && e.kind == ferry_sim_centra::ops::EmailKind::ShippingConfirmation
                })
                .count()
        });
        assert_eq!(emails, 1, "order {n}: one shipping e-mail");
    }
    let open = store.open_exceptions("acme").await.expect("exceptions");
    assert!(open.is_empty(), "{open:?}");
    stack.shutdown().await;
    env.cleanup().await;
}

/// A warehouse that ships part of an order, then the rest, in Tryton: Centra gets two
/// shipments with their own tracking numbers, and the order is shipped only after the second.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partial_shipment_in_tryton_then_the_rest() {
    let env = TestEnv::new().await;
    let t = ferry_testing::tryton().expect("Tryton");
    let prefix = unique_prefix();
    let mut config = env.config();
    config.erp_writer.request_timeout = Duration::from_secs(20);
    let options = StackOptions {
        tenant: "acme".into(),
        seed: 41,
        centra_requests_per_10s: 1000,
        erp: Some(tryton_erp(&t, t.url.clone(), prefix.clone())),
        ..StackOptions::default()
    };
    let stack = Stack::start(config, options).await.expect("stack");
    let store = env.store().await;
    // An order of at least two lines.
    let mut n = 0;
    for _ in 0..20 {
        let candidate = stack.centra.generate(
            1,
            &OrderMix {
                hold_pct: 0,
                pending_pct: 0,
                bundle_pct: 0,
                cancellation_pct: 0,
                markets: vec![1],
                ..OrderMix::default()
            },
        )[0];
        if stack
            .centra
            .state
            .order(candidate)
            .expect("order")
            .lines
            .len()
            >= 2
        {
            n = candidate;
            break;
        }
    }
    assert_ne!(n, 0, "a two-line order");
    let generated = stack.centra.state.order_count() as i64;
    assert_eq!(
        wait_for_posted(&store, generated, Duration::from_secs(180)).await,
        generated
    );
    let tryton = connector(&prefix);
    let reference = format!("{prefix}{n}");
    let (first, second) = split_tryton_shipment(&tryton, &reference).await;
    let shipped = |tracking: &'static str| {
        let stack = &stack;
        async move {
            for _ in 0..300 {
                let found = stack.centra.state.ops(|o| {
                    o.shipments_of(n)
                        .iter()
                        .any(|s| s.is_shipped && s.tracking_number.as_deref() == Some(tracking))
                });
                if found {
                    return true;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            false
        }
    };
    complete_tryton_shipment(&tryton, first, "PN-PART-A").await;
    assert!(shipped("PN-PART-A").await, "the first part reached Centra");
    assert_ne!(
        format!("{:?}", stack.centra.state.order(n).expect("order").status),
        "Shipped",
        "not shipped while part of it is still in the warehouse"
    );
    complete_tryton_shipment(&tryton, second, "PN-PART-B").await;
    assert!(shipped("PN-PART-B").await, "the rest reached Centra");
    let order = stack.centra.state.order(n).expect("order");
    assert_eq!(format!("{:?}", order.status), "Shipped");
    let shipments = stack.centra.state.ops(|o| o.shipments_of(n).len());
    assert_eq!(shipments, 2);
    let shipped_units: i64 = stack.centra.state.ops(|o| {
        o.shipments_of(n)
            .iter()
            .flat_map(|s| s.lines.iter())
            .map(|l| l.quantity)
            .sum()
    });
    assert_eq!(
        shipped_units,
        order.lines.iter().map(|l| l.quantity).sum::<i64>()
    );
    let open = store.open_exceptions("acme").await.expect("exceptions");
    assert!(open.is_empty(), "{open:?}");
    stack.shutdown().await;
    env.cleanup().await;
}

/// The order snapshot as Centra serves it.
async fn snapshot_json(stack: &Stack, number: i64) -> Vec<u8> {
    let client = CentraClient::new(
        stack.centra.graphql_url(),
        SecretString::from("sim-token"),
        1000,
        Duration::from_secs(10),
    );
    client
        .order_snapshots(&[number])
        .await
        .expect("snapshot")
        .remove(0)
        .json
}

/// Tryton's forecast (sellable) quantity of items in its warehouse `WH`.
async fn tryton_forecast(
    tryton: &Tryton,
    items: &[String],
) -> std::collections::BTreeMap<String, i64> {
    tryton
        .stock_levels(items)
        .await
        .expect("stock")
        .into_iter()
        .filter(|l| l.warehouse == "WH")
        .map(|l| (l.erp_item, l.available))
        .collect()
}

/// Receives `units` of an item into warehouse `WH` from a supplier, as a goods receipt.
async fn receive_in_tryton(tryton: &Tryton, code: &str, units: i64) {
    let rpc = tryton.rpc();
    let product = rpc
        .call(
            "model.product.product.search_read",
            vec![
                json!([["code", "=", code]]),
                json!(0),
                json!(1),
                json!(null),
                json!(["default_uom"]),
            ],
        )
        .await
        .expect("product");
    let supplier = rpc
        .call(
            "model.stock.location.search",
            vec![
                json!([["type", "=", "supplier"]]),
                json!(0),
                json!(1),
                json!(null),
            ],
        )
        .await
        .expect("supplier location");
    let warehouse = rpc
        .call(
            "model.stock.location.search_read",
            vec![
                json!([["type", "=", "warehouse"], ["code", "=", "WH"]]),
                json!(0),
                json!(1),
                json!(null),
                json!(["storage_location"]),
            ],
        )
        .await
        .expect("warehouse");
    let company = rpc
        .call(
            "model.company.company.search_read",
            vec![
                json!([]),
                json!(0),
                json!(1),
                json!(null),
                json!(["currency"]),
            ],
        )
        .await
        .expect("company");
    let moves = rpc
        .call(
            "model.stock.move.create",
            vec![json!([{
                "product": product[0]["id"],
                "unit": product[0]["default_uom"],
                "quantity": units as f64,
                "from_location": supplier[0],
                "to_location": warehouse[0]["storage_location"],
                "company": company[0]["id"],
                "currency": company[0]["currency"],
                "unit_price": {"__class__": "Decimal", "decimal": "10"},
            }])],
        )
        .await
        .expect("move");
    rpc.call("model.stock.move.do", vec![moves])
        .await
        .expect("move done");
}

/// Waits until Centra offers exactly `want` of each SKU in warehouse 1.
async fn wait_centra_fta(
    stack: &Stack,
    want: &std::collections::BTreeMap<String, i64>,
    within: Duration,
) {
    let start = std::time::Instant::now();
    loop {
        let seen: std::collections::BTreeMap<String, i64> = stack.centra.state.ops(|o| {
            want.keys()
                .map(|sku| {
                    let size = o.size_by_sku(sku).expect("known SKU");
                    (sku.clone(), o.stock_of(size, 1).free_to_allocate())
                })
                .collect()
        });
        if &seen == want {
            return;
        }
        assert!(
            start.elapsed() < within,
            "Centra offers {seen:?}, expected {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Stock in Tryton reaches Centra: a goods receipt raises it, a sale confirmed in Tryton
/// lowers it by its units, and an order taken in Centra but not yet in Tryton is counted
/// once — before it is posted, after, and after it ships.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tryton_stock_reaches_centra_and_open_orders_are_counted_once() {
    let env = TestEnv::new().await;
    let t = ferry_testing::tryton().expect("Tryton");
    let prefix = unique_prefix();
    let mut config = env.config();
    config.erp_writer.request_timeout = Duration::from_secs(20);
    let mut options = StackOptions {
        tenant: "acme".into(),
        seed: 41,
        centra_requests_per_10s: 1000,
        erp: Some(tryton_erp(&t, t.url.clone(), prefix.clone())),
        ..StackOptions::default()
    };
    options.inventory.warehouses = [("WH".to_owned(), 1)].into();
    options.inventory.poll_interval = Duration::from_millis(300);
    let mut stack = Stack::start(config, options).await.expect("stack");
    let store = env.store().await;
    let tryton = connector(&prefix);

    // An order taken in Centra while the writer is stopped: in Centra, not in Tryton.
    stack.kill_service("erp-writer").await;
    let order = stack.centra.generate(
        1,
        &OrderMix {
            hold_pct: 0,
            pending_pct: 0,
            cancellation_pct: 0,
            bundle_pct: 0,
            markets: vec![1],
            ..OrderMix::default()
        },
    )[0];
    let ordered: std::collections::BTreeMap<String, i64> = stack.centra.state.ops(|o| {
        let mut units = std::collections::BTreeMap::new();
        for a in o.allocations_of(order) {
            *units.entry(o.sizes[a.size].sku.clone()).or_insert(0) += a.allocated + a.demand;
        }
        units
    });
    let skus: Vec<String> = ordered.keys().cloned().collect();
    let start = std::time::Instant::now();
    while store
        .commitments("acme", std::time::Duration::from_secs(900))
        .await
        .unwrap()
        .is_empty()
    {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "Ferry knows the open order"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // 1. Centra offers Tryton's forecast less the open order. The forecast is read again
    // while waiting: the Tryton the tests share may still be processing an earlier test's
    // sales of the same items, and Centra must follow Tryton as it is now.
    let expected = |forecast: &std::collections::BTreeMap<String, i64>, pending: bool| {
        skus.iter()
            .map(|s| {
                let open = if pending { ordered[s] } else { 0 };
                (s.clone(), (forecast[s] - open).max(0))
            })
            .collect::<std::collections::BTreeMap<_, _>>()
    };
    let follows_tryton = || async {
        let start = std::time::Instant::now();
        loop {
            let forecast = tryton_forecast(&tryton, &skus).await;
            let want = expected(&forecast, true);
            let seen: std::collections::BTreeMap<String, i64> = stack.centra.state.ops(|o| {
                skus.iter()
                    .map(|sku| {
                        let size = o.size_by_sku(sku).expect("known SKU");
                        (sku.clone(), o.stock_of(size, 1).free_to_allocate())
                    })
                    .collect()
            });
            if seen == want {
                return forecast;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "Centra offers {seen:?}, Tryton's forecast less the open order is {want:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    follows_tryton().await;

    // 2. A goods receipt in Tryton reaches Centra.
    receive_in_tryton(&tryton, &skus[0], 7).await;
    let forecast = follows_tryton().await;

    // 3. A sale confirmed in Tryton itself (a phone order) lowers Centra's stock by its units.
    let phone = PostOrder {
        external_ref: format!("PHONE-{}", uuid::Uuid::new_v4().simple()),
        ..post_order(
            &tenant(Rules {
                erp_item_equals_sku: true,
                ..Rules::default()
            }),
            &snapshot_json(&stack, order).await,
            &ferry_domain::NoItems,
        )
    };
    tryton.create_sales_order(&phone).await.expect("phone sale");
    let after_phone = tryton_forecast(&tryton, &skus).await;
    for s in &skus {
        assert_eq!(
            after_phone[s],
            forecast[s] - ordered[s],
            "{s}: Tryton promised the phone sale"
        );
    }
    let offered = expected(&after_phone, true);
    wait_centra_fta(&stack, &offered, Duration::from_secs(30)).await;

    // 4. The writer posts the Centra order: Tryton's forecast drops by its units, Centra's
    // offer does not move (counted once, not twice).
    let readiness = ferry_runtime::service::Readiness::default();
    stack.start_service("erp-writer", &readiness).await.unwrap();
    assert_eq!(
        wait_for_posted(&store, 1, Duration::from_secs(120)).await,
        1
    );
    let after_post = tryton_forecast(&tryton, &skus).await;
    for s in &skus {
        assert_eq!(
            after_post[s],
            after_phone[s] - ordered[s],
            "{s}: Tryton promised the order"
        );
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    wait_centra_fta(&stack, &offered, Duration::from_secs(5)).await;
    assert_eq!(expected(&after_post, false), offered);

    // 5. Tryton ships it; fulfilment records it in Centra; still the same offer.
    ship_in_tryton(&tryton, &format!("{prefix}{order}"), "PN-STOCK-1").await;
    let start = std::time::Instant::now();
    while !stack
        .centra
        .state
        .ops(|o| o.shipments_of(order).iter().any(|s| s.is_shipped))
    {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the shipment reached Centra"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    wait_centra_fta(&stack, &offered, Duration::from_secs(5)).await;
    // Tryton stocks items the brand does not sell in Centra: skipped and reported once.
    let open = store.open_exceptions("acme").await.expect("exceptions");
    assert!(
        open.iter()
            .all(|e| e.kind == "stock_refused" && e.dedupe_key == "unknown-skus:1"),
        "{open:?}"
    );
    stack.shutdown().await;
    env.cleanup().await;
}

/// The (oldest) sale under `reference`, read with `fields`.
pub(crate) async fn sale_by_reference(tryton: &Tryton, reference: &str, fields: &[&str]) -> Value {
    tryton
        .rpc()
        .call(
            "model.sale.sale.search_read",
            vec![
                json!([["reference", "=", reference]]),
                json!(0),
                json!(1),
                json!([["id", "ASC"]]),
                json!(fields),
            ],
        )
        .await
        .expect("sale")[0]
        .clone()
}

/// Tryton's state (`draft`, `quotation`, `confirmed`, `processing`, …) of the sale Ferry
/// posted under `reference`, and how many shipments it has.
pub(crate) async fn sale_state(tryton: &Tryton, reference: &str) -> (String, usize) {
    let row = &sale_by_reference(tryton, reference, &["state", "shipments"]).await;
    (
        row["state"].as_str().unwrap_or_default().to_owned(),
        row["shipments"].as_array().map_or(0, Vec::len),
    )
}

/// A stack for tenant `acme` whose erp-writer reaches Tryton at `url` (e.g. through a proxy).
pub(crate) async fn tryton_stack(env: &TestEnv, url: String, prefix: &str, seed: u64) -> Stack {
    let t = ferry_testing::tryton().expect("Tryton");
    let mut config = env.config();
    config.erp_writer.request_timeout = Duration::from_secs(20);
    let options = StackOptions {
        tenant: "acme".into(),
        seed,
        centra_requests_per_10s: 1000,
        erp: Some(tryton_erp(&t, url, prefix.to_owned())),
        ..StackOptions::default()
    };
    Stack::start(config, options).await.expect("stack")
}

pub(crate) fn one_order() -> OrderMix {
    OrderMix {
        hold_pct: 0,
        pending_pct: 0,
        markets: vec![1],
        ..OrderMix::default()
    }
}

/// Issue 22: the confirm of a sale fails after its quote succeeded (refused before it reached
/// Tryton). The retry must confirm and process the quotation — not take it for posted — and
/// the ledger must agree with Tryton.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sale_left_a_quotation_is_confirmed_on_retry_and_the_ledger_agrees() {
    let env = TestEnv::new().await;
    let t = ferry_testing::tryton().expect("Tryton");
    let proxy = RpcProxy::start(&t.url).await.expect("proxy");
    proxy.fail_next("model.sale.sale.confirm", 1, RpcFault::Refuse);
    let prefix = unique_prefix();
    let stack = tryton_stack(&env, proxy.url(&t.url), &prefix, 21).await;
    let store = env.store().await;
    let numbers = stack.centra.generate(1, &one_order());
    assert_eq!(
        wait_for_posted(&store, 1, Duration::from_secs(120)).await,
        1
    );
    assert_eq!(proxy.faults_left(), 0, "the confirm was refused once");

    let tryton = connector(&prefix);
    let reference = format!("{prefix}{}", numbers[0]);
    let (state, shipments) = sale_state(&tryton, &reference).await;
    assert_eq!(state, "processing", "posted means confirmed and processed");
    assert_eq!(shipments, 1, "the warehouse has the shipment");
    assert_eq!(sales_with_reference(&tryton, &reference).await, 1);
    let row = store
        .ledger_row("acme", numbers[0])
        .await
        .expect("ledger")
        .expect("row");
    let found = tryton
        .find_sales_order(&numbers[0].to_string())
        .await
        .expect("lookup")
        .expect("sale");
    assert_eq!(row.erp_reference.as_deref(), Some(found.reference.as_str()));
    assert_eq!(found.state, ferry_erp::DocumentState::Complete);
    assert!(store.open_exceptions("acme").await.expect("x").is_empty());
    stack.shutdown().await;
    env.cleanup().await;
}

/// The confirm reaches Tryton but its answer is lost: the retry finds the sale confirmed and
/// processed, records it, and never confirms it again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_confirm_answer_is_settled_by_lookup_not_a_second_confirm() {
    let env = TestEnv::new().await;
    let t = ferry_testing::tryton().expect("Tryton");
    let proxy = RpcProxy::start(&t.url).await.expect("proxy");
    proxy.fail_next("model.sale.sale.confirm", 1, RpcFault::LoseAnswer);
    let prefix = unique_prefix();
    let stack = tryton_stack(&env, proxy.url(&t.url), &prefix, 22).await;
    let store = env.store().await;
    let numbers = stack.centra.generate(1, &one_order());
    assert_eq!(
        wait_for_posted(&store, 1, Duration::from_secs(120)).await,
        1
    );
    assert_eq!(proxy.faults_left(), 0);
    assert_eq!(proxy.calls("model.sale.sale.confirm"), 1, "confirmed once");
    let tryton = connector(&prefix);
    let reference = format!("{prefix}{}", numbers[0]);
    assert_eq!(sale_state(&tryton, &reference).await.0, "processing");
    assert_eq!(sales_with_reference(&tryton, &reference).await, 1);
    assert!(store.open_exceptions("acme").await.expect("x").is_empty());
    stack.shutdown().await;
    env.cleanup().await;
}

/// A Tryton that hands processing to a queue worker which is not running (as when a brand's
/// worker is down): the confirm succeeds, the sale stays `confirmed`, no shipment exists.
/// Ferry processes it before calling it posted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_confirmed_sale_tryton_never_processed_is_processed_before_it_counts_as_posted() {
    let own = tokio::task::spawn_blocking(|| ferry_testing::PrivateTryton::start(true))
        .await
        .expect("join")
        .expect("a Tryton of this test's own");
    let prefix = unique_prefix();
    let tryton = Tryton::new(TrytonConfig {
        reference_prefix: prefix.clone(),
        ..TrytonConfig::new(
            own.infra.url.clone(),
            own.infra.user.clone(),
            SecretString::from(own.infra.password.clone()),
        )
    });
    let order = example("01-sek-simple");

    let document = tryton.create_sales_order(&order).await.expect("posted");
    let reference = format!("{prefix}{}", order.external_ref);
    let (state, shipments) = sale_state(&tryton, &reference).await;
    assert_eq!(state, "processing");
    assert_eq!(shipments, 1, "the warehouse has the shipment");
    assert_eq!(document.state, ferry_erp::DocumentState::Complete);
    assert_eq!(document.erp_state, "processing");
    assert_eq!(document.gross_minor, order.gross_minor);
}

/// A sale left a quotation is cancelled in Tryton before Ferry's retry: an exception for
/// finance with the money at stake, the ledger not `posted`, the sale left alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sale_cancelled_in_tryton_is_an_exception_for_finance_never_posted() {
    let env = TestEnv::new().await;
    let t = ferry_testing::tryton().expect("Tryton");
    let proxy = RpcProxy::start(&t.url).await.expect("proxy");
    // Every confirm is refused until the test has cancelled the quotation.
    proxy.fail_next("model.sale.sale.confirm", 10_000, RpcFault::Refuse);
    let prefix = unique_prefix();
    let stack = tryton_stack(&env, proxy.url(&t.url), &prefix, 23).await;
    let store = env.store().await;
    let numbers = stack.centra.generate(1, &one_order());
    let tryton = connector(&prefix);
    let reference = format!("{prefix}{}", numbers[0]);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while proxy.calls("model.sale.sale.confirm") == 0 {
        assert!(tokio::time::Instant::now() < deadline, "no confirm tried");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let id = tryton
        .rpc()
        .call(
            "model.sale.sale.search",
            vec![
                json!([["reference", "=", reference]]),
                json!(0),
                json!(1),
                json!(null),
            ],
        )
        .await
        .expect("search")[0]
        .clone();
    tryton
        .rpc()
        .call("model.sale.sale.cancel", vec![json!([id])])
        .await
        .expect("cancelled by someone in the ERP");
    let exception = loop {
        let open = store.open_exceptions("acme").await.expect("x");
        if let Some(e) = open
            .into_iter()
            .find(|e| e.kind == "erp_document_cancelled")
        {
            break e;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no exception raised"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(exception.owner, "finance");
    assert_eq!(exception.order_number, Some(numbers[0]));
    assert!(exception.amount_minor.unwrap_or(0) > 0, "money at stake");
    let row = store
        .ledger_row("acme", numbers[0])
        .await
        .expect("l")
        .expect("row");
    assert_eq!(row.state, "rejected");
    assert_eq!(sale_state(&tryton, &reference).await.0, "cancelled");
    assert_eq!(sales_with_reference(&tryton, &reference).await, 1);
    stack.shutdown().await;
    env.cleanup().await;
}
