//! The inventory pusher against the simulators: ERP stock reaches Centra as sellable stock
//! (ERP available less open Centra orders less the buffer), an order is never sold twice
//! while it travels to the ERP, items selling out jump the queue without exceeding Centra's
//! quota, a crash loses no level and pushes nothing stale, drift is healed or reported.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use ferry::stack::{Stack, StackOptions};
use ferry_erp::StockLevel;
use ferry_sim_centra::OrderMix;
use ferry_sim_erp::{ShipRequest, StockLevel as SimLevel};
use ferry_testing::TestEnv;

const MAIN: &str = ferry_sim_erp::SALES_WAREHOUSE;

pub(crate) fn options(seed: u64) -> StackOptions {
    let mut options = StackOptions {
        tenant: "acme".into(),
        seed,
        centra_requests_per_10s: 1000,
        ..StackOptions::default()
    };
    options.inventory.drift_interval = Duration::from_millis(300);
    options
}

pub(crate) fn set_erp(stack: &Stack, levels: &[(&str, i64)]) {
    let levels: Vec<SimLevel> = levels
        .iter()
        .map(|(item, available)| SimLevel {
            erp_item: (*item).to_owned(),
            warehouse: MAIN.to_owned(),
            available: *available,
        })
        .collect();
    stack.erp.set_stock(&levels);
}

/// Centra's free-to-allocate stock of a SKU in warehouse 1.
fn centra_fta(stack: &Stack, sku: &str) -> i64 {
    stack.centra.state.ops(|o| {
        let size = o.size_by_sku(sku).expect("known SKU");
        o.stock_of(size, 1).free_to_allocate()
    })
}

/// Waits until every SKU shows the wanted free-to-allocate stock in Centra.
pub(crate) async fn wait_fta(stack: &Stack, want: &BTreeMap<String, i64>, within: Duration) {
    let start = Instant::now();
    loop {
        let seen: BTreeMap<String, i64> = want
            .keys()
            .map(|s| (s.clone(), centra_fta(stack, s)))
            .collect();
        if &seen == want {
            return;
        }
        assert!(
            start.elapsed() < within,
            "Centra shows {seen:?}, expected {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Stock changes Ferry made in Centra, as (description, SKU, delta).
fn ferry_changes(stack: &Stack) -> Vec<(String, String, i64)> {
    stack.centra.state.ops(|o| {
        o.stock_changes
            .iter()
            .filter(|c| c.description.starts_with("Ferry"))
            .flat_map(|c| {
                c.lines
                    .iter()
                    .map(|(sku, delta)| (c.description.clone(), sku.clone(), *delta))
            })
            .collect()
    })
}

/// Adds `n` synthetic sizes to Centra's catalogue and returns their SKUs.
pub(crate) fn synthetic_skus(stack: &Stack, n: usize) -> Vec<String> {
    stack.centra.state.ops_mut(|o| {
        let end = o.add_synthetic_sizes(n, 0);
        o.sizes[end - n..end]
            .iter()
            .map(|s| s.sku.clone())
            .collect()
    })
}

/// `setStock` calls Ferry made, whether or not they changed anything.
fn ferry_calls(stack: &Stack) -> usize {
    stack.centra.state.ops(|o| {
        o.stock_changes
            .iter()
            .filter(|c| c.description.starts_with("Ferry"))
            .count()
    })
}

pub(crate) fn catalogue_skus(stack: &Stack, n: usize) -> Vec<String> {
    stack.centra.state.ops(|o| {
        o.sizes
            .iter()
            .filter(|s| s.components.is_empty())
            .take(n)
            .map(|s| s.sku.clone())
            .collect()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn erp_stock_reaches_centra_and_an_open_order_is_not_sold_twice() {
    let env = TestEnv::new().await;
    let mut options = options(31);
    let skus: Vec<String> = ferry_sim_centra::generate::sizes()
        .into_iter()
        .map(|s| s.sku)
        .collect();
    let buffered = skus[0].clone();
    options.inventory.buffer.skus.insert(buffered.clone(), 1);
    let mut stack = Stack::start(env.config(), options).await.expect("stack");
    let store = env.store().await;

    // 1. Stock set in the ERP reaches Centra: every catalogue size at 10.
    let levels: Vec<(&str, i64)> = skus.iter().map(|s| (s.as_str(), 10)).collect();
    set_erp(&stack, &levels);
    let mut want: BTreeMap<String, i64> = skus.iter().map(|s| (s.clone(), 10)).collect();
    want.insert(buffered.clone(), 9);
    wait_fta(&stack, &want, Duration::from_secs(15)).await;
    let calls = ferry_calls(&stack);
    assert!(
        calls <= skus.len().div_ceil(200) + 1,
        "{} sizes in {calls} setStock calls",
        skus.len()
    );

    // 2. An order accepted in Centra while the erp-writer is stopped: it waits, ready,
    // not yet in the ERP.
    stack.kill_service("erp-writer").await;
    let mix = OrderMix {
        hold_pct: 0,
        pending_pct: 0,
        cancellation_pct: 0,
        bundle_pct: 0,
        markets: vec![1],
        ..OrderMix::default()
    };
    let order = stack.centra.generate(1, &mix)[0];
    let ordered: BTreeMap<String, i64> = stack.centra.state.ops(|o| {
        let mut units = BTreeMap::new();
        for a in o.allocations_of(order) {
            *units.entry(o.sizes[a.size].sku.clone()).or_insert(0) += a.allocated + a.demand;
        }
        units
    });
    assert!(!ordered.is_empty());
    for sku in ordered.keys() {
        assert!(
            want.contains_key(sku),
            "the order uses catalogue size {sku}"
        );
    }
    // Wait until Ferry knows the order's units.
    let start = Instant::now();
    loop {
        let known: BTreeMap<String, i64> = store
            .commitments("acme", std::time::Duration::from_secs(900))
            .await
            .unwrap()
            .into_iter()
            .map(|c| (c.sku, c.pending))
            .collect();
        if known == ordered {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "commitments {known:?} != {ordered:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A delivery of 2 more units per size arrives in the ERP. Centra must offer 12 less
    // what the open order holds (less the buffer) — not 12.
    let bumped: Vec<(&str, i64)> = ordered.keys().map(|s| (s.as_str(), 12)).collect();
    set_erp(&stack, &bumped);
    for (sku, q) in &ordered {
        let b = i64::from(*sku == buffered);
        want.insert(sku.clone(), 12 - q - b);
    }
    wait_fta(&stack, &want, Duration::from_secs(15)).await;

    // 3. The writer comes back; the order is posted and the ERP's available stock drops
    // by its units. Centra still offers the same — nothing is pushed.
    let before = ferry_changes(&stack).len();
    let readiness = ferry_runtime::service::Readiness::default();
    stack.start_service("erp-writer", &readiness).await.unwrap();
    let n =
        ferry_testing::wait_for_state(&store, "acme", "posted", 1, Duration::from_secs(60)).await;
    assert_eq!(n, 1, "the order was posted");
    let sales_order = stack.erp.order(&order.to_string()).unwrap();
    let erp_now: BTreeMap<String, i64> = stack
        .erp
        .stock_changes()
        .into_iter()
        .filter(|c| ordered.contains_key(&c.erp_item))
        .map(|c| (c.erp_item, c.available))
        .collect();
    for (sku, q) in &ordered {
        assert_eq!(
            erp_now[sku],
            12 - q,
            "the ERP reserved the order's units of {sku}"
        );
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    wait_fta(&stack, &want, Duration::from_secs(1)).await;

    // 4. The warehouse ships it; fulfilment records the shipment in Centra. Centra's
    // shelf and its allocation drop together; still nothing to push — not even the same
    // figure again.
    let calls_before_shipping = ferry_calls(&stack);
    stack
        .erp
        .ship(ShipRequest {
            external_ref: sales_order.external_ref.clone(),
            lines: None,
            carrier: Some("PostNord".into()),
            tracking_number: Some("PN-1".into()),
        })
        .unwrap();
    let start = Instant::now();
    while stack.centra.state.ops(|o| o.shipments_of(order).is_empty()) {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "shipment reached Centra"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    wait_fta(&stack, &want, Duration::from_secs(1)).await;
    assert_eq!(
        ferry_changes(&stack).len(),
        before,
        "posting and shipping the order changed nothing in Centra's stock"
    );
    assert_eq!(
        ferry_calls(&stack),
        calls_before_shipping,
        "no setStock call after the shipment"
    );

    // 5. Down to the buffer: the size goes at once, as selling out.
    set_erp(&stack, &[(buffered.as_str(), 1)]);
    want.insert(buffered.clone(), 0);
    wait_fta(&stack, &want, Duration::from_secs(5)).await;
    assert!(
        ferry_changes(&stack)
            .iter()
            .any(|(d, sku, _)| sku == &buffered && d.contains("selling out"))
    );
    stack.shutdown().await;
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn selling_out_jumps_a_backlog_within_the_quota() {
    let env = TestEnv::new().await;
    let mut options = options(32);
    // Centra's request quota of a fresh instance (20 per 10 s, the pusher's share 4), a
    // small mutation quota (20 per 10 s, 200 per hour), 5 sizes per call.
    options.centra_requests_per_10s = 20;
    options.centra_mutations = (20, 200);
    options.inventory.batch_size = 5;
    let stack = Stack::start(env.config(), options).await.expect("stack");
    let synthetic = 300;
    let generated = synthetic_skus(&stack, synthetic);
    // A backlog: 300 sizes changed = 60 calls, several minutes of ordinary budget.
    stack
        .erp
        .generate_stock_changes(&generated, synthetic * 3, MAIN, 7);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let backlog_before: usize = ferry_changes(&stack)
        .iter()
        .filter(|(d, _, _)| d.contains("update"))
        .count();
    assert!(
        backlog_before < synthetic,
        "the backlog is still waiting ({backlog_before} sent)"
    );
    // Three catalogue sizes sell out at the same moment (one call), then two more one
    // after another.
    let hot = catalogue_skus(&stack, 5);
    let mut latencies = Vec::new();
    let together: Vec<(&str, i64)> = hot[..3].iter().map(|s| (s.as_str(), 0)).collect();
    set_erp(&stack, &together);
    let start = Instant::now();
    while hot[..3].iter().any(|s| centra_fta(&stack, s) != 0) {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "still offered in Centra"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    latencies.push(start.elapsed());
    for sku in &hot[3..] {
        set_erp(&stack, &[(sku.as_str(), 0)]);
        let start = Instant::now();
        while centra_fta(&stack, sku) != 0 {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "{sku} still offered in Centra"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        latencies.push(start.elapsed());
    }
    assert!(
        latencies.iter().all(|l| *l < Duration::from_secs(2)),
        "selling out took {latencies:?}"
    );
    let refused = stack
        .centra
        .state
        .request_log()
        .iter()
        .filter(|r| r.status == 429)
        .count();
    assert_eq!(refused, 0, "Centra never had to refuse a request");
    stack.shutdown().await;
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_loses_no_level_and_pushes_nothing_stale() {
    let env = TestEnv::new().await;
    let mut options = options(33);
    options.centra_mutations = (10_000, 100_000);
    options.inventory.batch_size = 50;
    let mut stack = Stack::start(env.config(), options).await.expect("stack");
    let generated = synthetic_skus(&stack, 2_000);
    for round in 0..4u64 {
        stack
            .erp
            .generate_stock_changes(&generated, 20_000, MAIN, 100 + round);
        tokio::time::sleep(Duration::from_millis(150 + 100 * round)).await;
        stack.kill_service("inventory-pusher").await;
        let readiness = ferry_runtime::service::Readiness::default();
        stack
            .start_service("inventory-pusher", &readiness)
            .await
            .unwrap();
    }
    let mut latest: BTreeMap<String, i64> = BTreeMap::new();
    for c in stack.erp.stock_changes() {
        latest.insert(c.erp_item, c.available);
    }
    wait_fta(&stack, &latest, Duration::from_secs(60)).await;
    let store = env.store().await;
    let stored: BTreeMap<String, i64> = store
        .stock_rows("acme")
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.sku, r.erp_available))
        .collect();
    assert_eq!(stored, latest, "the stored levels are the ERP's latest");
    stack.shutdown().await;
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drift_is_healed_and_persistent_drift_is_reported() {
    let env = TestEnv::new().await;
    let stack = Stack::start(env.config(), options(34))
        .await
        .expect("stack");
    let store = env.store().await;
    let skus = catalogue_skus(&stack, 2);
    let bundle = stack.centra.state.ops(|o| {
        o.sizes
            .iter()
            .find(|s| !s.components.is_empty())
            .map(|s| s.sku.clone())
            .unwrap()
    });
    set_erp(
        &stack,
        &[
            (skus[0].as_str(), 20),
            (skus[1].as_str(), 30),
            (bundle.as_str(), 5),
            ("NO-SUCH-SKU", 4),
        ],
    );
    let want: BTreeMap<String, i64> = [(skus[0].clone(), 20), (skus[1].clone(), 30)].into();
    wait_fta(&stack, &want, Duration::from_secs(10)).await;

    // Someone changes the stock in Centra by hand, once: Ferry puts it back.
    let set = |sku: &str, physical: i64| {
        stack.centra.state.ops_mut(|o| {
            let size = o.size_by_sku(sku).unwrap();
            o.set_stock(1, "by hand", false, &[(size, physical)]);
        })
    };
    set(&skus[0], 500);
    wait_fta(&stack, &want, Duration::from_secs(10)).await;

    // Something keeps changing the other one: an operations exception.
    let start = Instant::now();
    let kinds = loop {
        set(&skus[1], 999);
        let open = store.open_exceptions("acme").await.unwrap();
        let kinds: Vec<(String, String)> = open
            .iter()
            .map(|e| (e.kind.clone(), e.owner.clone()))
            .collect();
        if kinds.iter().any(|(k, _)| k == "stock_drift") {
            break kinds;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "no drift exception: {kinds:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(kinds.contains(&("stock_drift".to_owned(), "operations".to_owned())));
    // The unknown SKU is refused and reported; the bundle is skipped without one.
    assert!(kinds.iter().any(|(k, _)| k == "stock_refused"), "{kinds:?}");
    let open = store.open_exceptions("acme").await.unwrap();
    assert!(open.iter().all(|e| !e.message.contains(&bundle)));
    let refused = open.iter().find(|e| e.kind == "stock_refused").unwrap();
    assert!(
        refused.message.contains("NO-SUCH-SKU"),
        "{}",
        refused.message
    );
    let rows = store.stock_rows("acme").await.unwrap();
    let skip_of = |sku: &str| {
        rows.iter()
            .find(|r| r.sku == sku)
            .and_then(|r| r.skip.clone())
    };
    assert_eq!(skip_of(&bundle).as_deref(), Some("bundle"));
    assert_eq!(skip_of("NO-SUCH-SKU").as_deref(), Some("unknown"));
    stack.shutdown().await;
    env.cleanup().await;
}

/// The ERP connector's view: the simulator's feed and its snapshot agree.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_erp_feed_and_snapshot_agree() {
    use ferry_erp::StockFeed;
    let sims = tokio_util::sync::CancellationToken::new();
    let erp = ferry_sim_erp::ErpSim::start(
        std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        sims.clone(),
    )
    .await
    .unwrap();
    let items: Vec<String> = (1..=50).map(|i| format!("ITEM-{i}")).collect();
    erp.generate_stock_changes(&items, 1_000, MAIN, 3);
    let client = ferry_erp_http::HttpErp::new(erp.url(), None, Duration::from_secs(5));
    let mut cursor = String::new();
    let mut latest: BTreeMap<String, (i64, i64)> = BTreeMap::new();
    loop {
        let page = client
            .stock_changes_since(&cursor, 300)
            .await
            .unwrap()
            .unwrap();
        if page.changes.is_empty() {
            break;
        }
        for c in page.changes {
            let seen = latest.entry(c.erp_item).or_insert((0, 0));
            assert!(c.seq > seen.0, "sequence numbers grow");
            *seen = (c.seq, c.available);
        }
        cursor = page.next_cursor;
    }
    let snapshot: BTreeMap<String, i64> = client
        .stock_levels(&[])
        .await
        .unwrap()
        .into_iter()
        .map(|l: StockLevel| (l.erp_item, l.available))
        .collect();
    let from_feed: BTreeMap<String, i64> = latest.into_iter().map(|(k, v)| (k, v.1)).collect();
    assert_eq!(snapshot, from_feed);
    sims.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sweep_puts_back_what_the_drift_check_lets_pass() {
    let env = TestEnv::new().await;
    let mut options = options(35);
    options.inventory.drift_interval = Duration::ZERO;
    options.inventory.sweep_interval = Duration::from_secs(2);
    let stack = Stack::start(env.config(), options).await.expect("stack");
    let sku = catalogue_skus(&stack, 1).remove(0);
    set_erp(&stack, &[(sku.as_str(), 25)]);
    let want: BTreeMap<String, i64> = [(sku.clone(), 25)].into();
    wait_fta(&stack, &want, Duration::from_secs(10)).await;
    // Lowered by hand in Centra: less than expected, which the drift check accepts (it looks
    // like orders on their way); the next sweep sends the ERP's level again.
    stack.centra.state.ops_mut(|o| {
        let size = o.size_by_sku(&sku).unwrap();
        o.set_stock(1, "by hand", false, &[(size, 3)]);
    });
    assert_eq!(centra_fta(&stack, &sku), 3);
    wait_fta(&stack, &want, Duration::from_secs(10)).await;
    stack.shutdown().await;
    env.cleanup().await;
}
