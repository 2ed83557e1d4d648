//! `ferry bench inventory`: the inventory pusher at scale.
//!
//! 1. Ingest and coalesce: N ERP stock updates over S SKUs waiting in the ERP simulator's
//!    change feed; the pusher started, timed until every update is read and stored (the feed
//!    cursor is durable at the end) and until Centra holds every SKU's latest level. Centra
//!    calls are counted against `changed SKUs ÷ batch size`. The baseline, measured first in
//!    the same run, is a bare client reading the same feed and keeping the latest level per
//!    SKU in memory (no database, no Centra).
//! 2. Selling out under load, at Centra's default quota (100 per 10 s, 1,000 per hour): every
//!    SKU differs from Centra (a full sweep's worth, B updates of backlog) while catalogue
//!    sizes drop to zero one after another; per item, the time from the ERP change until
//!    Centra stops offering it. Centra's 429s are counted (the target is none).
//!
//! The last line is one JSON object.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use ferry_erp::StockFeed;
use serde::Serialize;

use crate::stack::{LocalInfra, Stack, StackOptions, local_config};

#[derive(clap::Args, Debug)]
pub struct InventoryArgs {
    /// ERP stock updates in the ingest run.
    #[arg(long, default_value_t = 1_000_000)]
    pub updates: usize,
    /// Distinct SKUs they touch.
    #[arg(long, default_value_t = 50_000)]
    pub skus: usize,
    /// Ordinary updates waiting while items sell out (the second run).
    #[arg(long, default_value_t = 100_000)]
    pub backlog: usize,
    /// Items that sell out during the second run.
    #[arg(long, default_value_t = 50)]
    pub zero_events: usize,
}

#[derive(Debug, Serialize)]
struct Result {
    updates: usize,
    skus: usize,
    ingest_secs: f64,
    ingest_updates_per_sec: f64,
    baseline_updates_per_sec: f64,
    ratio: f64,
    all_in_centra_secs: f64,
    changed_skus: usize,
    batch_size: usize,
    centra_calls: usize,
    min_centra_calls: usize,
    backlog_updates: usize,
    zero_events: usize,
    zero_p50_ms: f64,
    zero_p99_ms: f64,
    centra_429s: usize,
    /// The whole benchmark process: both simulators (the ERP's feed holds every update)
    /// and every service.
    process_rss_mib: f64,
}

async fn start(
    infra: &LocalInfra,
    prefix: &str,
    mutations: (u32, u32),
    skus: usize,
) -> anyhow::Result<(Stack, Vec<String>)> {
    let mut config = local_config(infra)?;
    config.nats.prefix = prefix.to_owned();
    config.telemetry.log_filter = "warn".to_owned();
    let mut options = StackOptions {
        tenant: prefix.to_owned(),
        centra_requests_per_10s: 100_000,
        centra_mutations: mutations,
        ..StackOptions::default()
    };
    options.inventory.drift_interval = Duration::ZERO;
    let mut stack = Stack::start(config, options)
        .await
        .context("starting the stack")?;
    // Only the pusher matters here; it starts again when its feed is ready.
    stack.kill_service("inventory-pusher").await;
    let generated = stack.centra.state.ops_mut(|o| {
        let end = o.add_synthetic_sizes(skus, 0);
        o.sizes[end - skus..end]
            .iter()
            .map(|s| s.sku.clone())
            .collect::<Vec<_>>()
    });
    Ok((stack, generated))
}

fn ferry_calls(stack: &Stack) -> usize {
    stack.centra.state.ops(|o| {
        o.stock_changes
            .iter()
            .filter(|c| c.description.starts_with("Ferry"))
            .count()
    })
}

fn physical(stack: &Stack, sku: &str) -> Option<i64> {
    stack
        .centra
        .state
        .ops(|o| o.size_by_sku(sku).map(|i| o.stock_of(i, 1).physical))
}

pub async fn inventory(args: InventoryArgs) -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("ferry-bench-inventory-{}", std::process::id()));
    let mut infra = LocalInfra::start(dir.clone()).await?;
    let readiness = ferry_runtime::service::Readiness::default();

    // 1. Ingest and coalesce, quotas raised (the calls are counted, not paced).
    let (mut stack, skus) = start(&infra, "benchi", (1_000_000, 100_000_000), args.skus).await?;
    let warehouse = ferry_sim_erp::SALES_WAREHOUSE;
    stack
        .erp
        .generate_stock_changes(&skus, args.updates, warehouse, 42);
    let mut latest: HashMap<String, i64> = HashMap::new();
    for c in stack.erp.stock_changes() {
        latest.insert(c.erp_item, c.available);
    }
    eprintln!(
        "ingest: {} updates over {} SKUs waiting in the ERP feed",
        args.updates,
        latest.len()
    );

    let client = ferry_erp_http::HttpErp::new(stack.erp.url(), None, Duration::from_secs(30));
    let started = Instant::now();
    let mut cursor = String::new();
    let mut bare: HashMap<String, i64> = HashMap::new();
    loop {
        let page = client
            .stock_changes_since(&cursor, 10_000)
            .await?
            .context("the simulator has a feed")?;
        if page.changes.is_empty() {
            break;
        }
        for c in page.changes {
            bare.insert(c.erp_item, c.available);
        }
        cursor = page.next_cursor;
    }
    let baseline = args.updates as f64 / started.elapsed().as_secs_f64();
    anyhow::ensure!(bare == latest, "the baseline read the feed whole");
    eprintln!("baseline: {baseline:.0} updates/s (bare feed read, latest per SKU in memory)");

    let store = ferry_store::Store::connect(&stack.config.database).await?;
    let tenant = stack.tenant().to_owned();
    let end = args.updates.to_string();
    let started = Instant::now();
    stack.start_service("inventory-pusher", &readiness).await?;
    let deadline = Instant::now() + Duration::from_secs(600);
    let cursors = stack.cursors().await?;
    let stock_consumer = format!("inventory-stock-{tenant}");
    // Read from the ERP and published (the cursor is stored after the publish), then every
    // level consumed and stored.
    while cursors.get(&tenant, ferry_inventory::FEED).await?.0 != end
        || stack
            .consumer_backlog(ferry_runtime::StreamKind::Erp, &stock_consumer)
            .await?
            > 0
    {
        anyhow::ensure!(
            Instant::now() < deadline,
            "the pusher did not read the feed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let ingest = started.elapsed().as_secs_f64();
    eprintln!(
        "pusher: {} updates read, coalesced and stored in {ingest:.2} s",
        args.updates
    );
    let mut sample: Vec<(&String, &i64)> = latest.iter().collect();
    sample.sort();
    loop {
        let missing = sample
            .iter()
            .filter(|(sku, v)| physical(&stack, sku) != Some(**v))
            .count();
        if missing == 0 {
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "{missing} SKUs never reached Centra"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let all_in = started.elapsed().as_secs_f64();
    let calls = ferry_calls(&stack);
    let batch = stack.config.tenants[0].inventory.batch_size;
    let rss = crate::bench_centra::rss_mib();
    eprintln!("pusher: every SKU in Centra after {all_in:.2} s, {calls} setStock calls");
    let stored = store.stock_rows(&tenant).await?;
    anyhow::ensure!(
        stored.len() == latest.len()
            && stored
                .iter()
                .all(|r| latest.get(&r.sku) == Some(&r.erp_available)),
        "the stored levels are the ERP's latest"
    );
    stack.shutdown().await;

    // 2. Selling out during a full sweep's worth of ordinary work, at the default quota.
    let (mut stack, skus) = start(&infra, "benchz", (100, 1000), args.skus).await?;
    let hot: Vec<String> = ferry_sim_centra::generate::sizes()
        .into_iter()
        .map(|s| s.sku)
        .collect();
    let levels: Vec<ferry_sim_erp::StockLevel> = hot
        .iter()
        .map(|sku| ferry_sim_erp::StockLevel {
            erp_item: sku.clone(),
            warehouse: warehouse.to_owned(),
            available: 50,
        })
        .collect();
    stack.erp.set_stock(&levels);
    stack.start_service("inventory-pusher", &readiness).await?;
    let deadline = Instant::now() + Duration::from_secs(120);
    while hot.iter().any(|s| physical(&stack, s) != Some(50)) {
        anyhow::ensure!(Instant::now() < deadline, "the catalogue reached Centra");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stack
        .erp
        .generate_stock_changes(&skus, args.backlog, warehouse, 43);
    // Let the pusher take the backlog in.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let sent_before = ferry_calls(&stack);
    let mut latencies = Vec::with_capacity(args.zero_events);
    for sku in hot.iter().cycle().take(args.zero_events.min(hot.len())) {
        stack.erp.set_stock(&[ferry_sim_erp::StockLevel {
            erp_item: sku.clone(),
            warehouse: warehouse.to_owned(),
            available: 0,
        }]);
        let t = Instant::now();
        while physical(&stack, sku) != Some(0) {
            anyhow::ensure!(
                t.elapsed() < Duration::from_secs(60),
                "{sku} never sold out in Centra"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        latencies.push(t.elapsed().as_secs_f64() * 1000.0);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let backlog_left = stack.centra.state.ops(|o| {
        skus.iter()
            .filter(|s| {
                o.size_by_sku(s)
                    .is_some_and(|i| o.stock_of(i, 1).physical == 0)
            })
            .count()
    });
    eprintln!(
        "selling out: {} items while {} of {} backlog SKUs still waited ({} ordinary calls made meanwhile)",
        latencies.len(),
        backlog_left,
        skus.len(),
        ferry_calls(&stack) - sent_before
    );
    latencies.sort_by(f64::total_cmp);
    let pct = |q: f64| {
        latencies
            .get(((latencies.len().max(1) - 1) as f64 * q).round() as usize)
            .copied()
            .unwrap_or(0.0)
    };
    let refused = stack
        .centra
        .state
        .request_log()
        .iter()
        .filter(|r| r.status == 429)
        .count();
    let result = Result {
        updates: args.updates,
        skus: args.skus,
        ingest_secs: (ingest * 100.0).round() / 100.0,
        ingest_updates_per_sec: (args.updates as f64 / ingest).round(),
        baseline_updates_per_sec: baseline.round(),
        ratio: ((args.updates as f64 / ingest) / baseline * 100.0).round() / 100.0,
        all_in_centra_secs: (all_in * 100.0).round() / 100.0,
        changed_skus: latest.len(),
        batch_size: batch,
        centra_calls: calls,
        min_centra_calls: latest.len().div_ceil(batch),
        backlog_updates: args.backlog,
        zero_events: latencies.len(),
        zero_p50_ms: pct(0.5).round(),
        zero_p99_ms: pct(0.99).round(),
        centra_429s: refused,
        process_rss_mib: rss,
    };
    stack.shutdown().await;
    infra.stop();
    let _ = std::fs::remove_dir_all(&dir);
    println!("{}", serde_json::to_string(&result)?);
    Ok(())
}
