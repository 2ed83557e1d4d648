//! `ferry bench writer`: the erp-writer alone, draining a backlog of ready orders into the
//! ERP simulator (5 ms per call by default), against a baseline measured in the same run: a
//! bare HTTP client posting the same number of orders to the same simulator with the same
//! concurrency and latency. With `--tryton-orders` (and `--tryton-returns`), it also posts
//! orders (and credits returns) to a real Tryton started by `scripts/tryton.sh` and reports
//! them per minute (`bench_tryton`). The last line is one JSON object.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde::Serialize;

use crate::stack::{LocalInfra, Stack, StackOptions, local_config};

#[derive(clap::Args, Debug)]
pub struct WriterArgs {
    /// Orders in the backlog.
    #[arg(long, default_value_t = 10_000)]
    pub orders: usize,
    /// The ERP simulator's latency per call.
    #[arg(long, default_value_t = 5)]
    pub latency_ms: u64,
    /// Posts in flight per tenant (the writer's bound, and the baseline's concurrency).
    #[arg(long, default_value_t = 32)]
    pub in_flight: usize,
    /// Also post this many orders to a real Tryton (scripts/tryton.sh) in batches and report
    /// orders/min, beside a baseline of `--tryton-baseline` orders posted one by one.
    #[arg(long, default_value_t = 0)]
    pub tryton_orders: usize,
    /// Orders per Tryton call (the connector's `batch`).
    #[arg(long, default_value_t = ferry_erp_tryton::DEFAULT_BATCH)]
    pub tryton_batch: usize,
    /// Orders posted to Tryton one by one first, the same run's baseline.
    #[arg(long, default_value_t = 40)]
    pub tryton_baseline: usize,
    /// Tryton's database on the run's PostgreSQL, as brands run it (default: SQLite, the
    /// test harness's).
    #[arg(long)]
    pub tryton_postgres: bool,
    /// Tryton worker processes (gunicorn; needs `--tryton-postgres`): one trytond process
    /// uses one core, production runs several.
    #[arg(long, default_value_t = 1)]
    pub tryton_workers: usize,
    /// Also credit this many of the batched Tryton orders' first item lines as returns
    /// (at most `--tryton-orders`), a part one by one first as the baseline.
    #[arg(long, default_value_t = 0)]
    pub tryton_returns: usize,
    /// Also change this many of the batched Tryton orders after posting (the last item
    /// line removed, or the order cancelled), a part one by one first as the baseline.
    #[arg(long, default_value_t = 0)]
    pub tryton_changes: usize,
    /// Also measure the ERP simulator's own capacity: this many creates at zero latency,
    /// 64 in flight, then lookups; reports requests/s and the process's memory.
    #[arg(long, default_value_t = 0)]
    pub sim_capacity: usize,
}

#[derive(Debug, Serialize)]
struct Result {
    orders: usize,
    latency_ms: u64,
    in_flight: usize,
    orders_per_sec: f64,
    baseline_orders_per_sec: f64,
    ratio: f64,
    duplicates: usize,
    tryton_orders: usize,
    tryton_orders_per_min: f64,
    tryton_batch: usize,
    tryton_baseline_orders_per_min: f64,
    tryton_failed: usize,
    tryton_database: &'static str,
    tryton_workers: usize,
    tryton_seconds_per_order_by_call: std::collections::BTreeMap<String, f64>,
    tryton_returns: usize,
    tryton_returns_per_min: f64,
    tryton_baseline_returns_per_min: f64,
    tryton_returns_failed: usize,
    tryton_seconds_per_return_by_call: std::collections::BTreeMap<String, f64>,
    tryton_changes: usize,
    tryton_changes_per_min: f64,
    tryton_baseline_changes_per_min: f64,
    tryton_changes_failed: usize,
    tryton_seconds_per_change_by_call: std::collections::BTreeMap<String, f64>,
    sim_creates_per_sec: f64,
    sim_lookups_per_sec: f64,
    sim_orders_held: usize,
    rss_mib: f64,
}

async fn count(store: &ferry_store::Store, tenant: &str, state: &str) -> i64 {
    store
        .count_by_state(tenant)
        .await
        .unwrap_or_default()
        .into_iter()
        .find(|(s, _)| s == state)
        .map(|(_, n)| n)
        .unwrap_or(0)
}

pub(crate) async fn wait_for(
    store: &ferry_store::Store,
    tenant: &str,
    state: &str,
    want: usize,
    within: Duration,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + within;
    while count(store, tenant, state).await < want as i64 {
        anyhow::ensure!(
            Instant::now() < deadline,
            "only {} of {want} orders reached {state}",
            count(store, tenant, state).await
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

/// A bare client posting `n` minimal sales orders with `concurrency` in flight.
async fn post_rate(url: &str, n: usize, concurrency: usize) -> anyhow::Result<f64> {
    let erp = Arc::new(ferry_erp_http::HttpErp::new(
        url,
        None,
        Duration::from_secs(10),
    ));
    let order = |i: usize| ferry_erp::PostOrder {
        tenant: "baseline".into(),
        external_ref: format!("baseline-{i}"),
        currency: "SEK".into(),
        order_date: String::new(),
        customer: ferry_erp::Customer::default(),
        delivery: None,
        lines: vec![ferry_erp::PostLine {
            kind: ferry_erp::LineKind::Item,
            erp_item: "X".into(),
            sku: None,
            centra_line_id: None,
            quantity: 1,
            tax_rate: "25".into(),
            tax_code: None,
            gross_minor: 12500,
            tax_minor: 2500,
            net_minor: 10000,
            description: String::new(),
        }],
        gross_minor: 12500,
        tax_minor: 2500,
        payment_term: None,
        carrier: None,
        sales_channel: None,
    };
    let started = Instant::now();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let (erp, next) = (erp.clone(), next.clone());
        workers.spawn(async move {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= n {
                    return Ok::<_, anyhow::Error>(());
                }
                ferry_erp::PostOrders::create_sales_order(erp.as_ref(), &order(i)).await?;
            }
        });
    }
    while let Some(done) = workers.join_next().await {
        done??;
    }
    Ok(n as f64 / started.elapsed().as_secs_f64())
}

/// Lookups by external reference, `concurrency` in flight.
async fn lookup_rate(url: &str, n: usize, concurrency: usize) -> anyhow::Result<f64> {
    let erp = Arc::new(ferry_erp_http::HttpErp::new(
        url,
        None,
        Duration::from_secs(10),
    ));
    let started = Instant::now();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let (erp, next) = (erp.clone(), next.clone());
        workers.spawn(async move {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= n {
                    return Ok::<_, anyhow::Error>(());
                }
                ferry_erp::PostOrders::find_sales_order(erp.as_ref(), &format!("baseline-{i}"))
                    .await?;
            }
        });
    }
    while let Some(done) = workers.join_next().await {
        done??;
    }
    Ok(n as f64 / started.elapsed().as_secs_f64())
}

pub async fn writer(args: WriterArgs) -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("ferry-bench-writer-{}", std::process::id()));
    let mut infra = LocalInfra::start(dir.clone()).await?;
    let mut config = local_config(&infra)?;
    config.nats.prefix = "benchw".to_owned();
    config.telemetry.log_filter = "warn".to_owned();
    config.erp_writer.max_in_flight_per_tenant = args.in_flight;
    let options = StackOptions {
        centra_requests_per_10s: 100_000,
        ..StackOptions::default()
    };
    let mut stack = Stack::start(config, options)
        .await
        .context("starting the stack")?;
    let tenant = stack.tenant().to_owned();
    let store = ferry_store::Store::connect(&stack.config.database).await?;
    stack.erp.set_faults(ferry_sim_erp::Faults {
        latency_ms: args.latency_ms,
        ignore_idempotency_key: true,
        ..Default::default()
    });

    eprintln!(
        "baseline: bare HTTP client, {} orders, {} in flight, {} ms ERP latency",
        args.orders, args.in_flight, args.latency_ms
    );
    let baseline = post_rate(&stack.erp.url(), args.orders, args.in_flight).await?;
    eprintln!("baseline: {baseline:.0} orders/s");
    let baseline_documents = stack.erp.orders().len();

    // The backlog: orders transformed and ready while the writer is stopped.
    stack.kill_service("erp-writer").await;
    let mix = ferry_sim_centra::OrderMix {
        hold_pct: 0,
        pending_pct: 0,
        ..Default::default()
    };
    stack.centra.generate(args.orders, &mix);
    wait_for(
        &store,
        &tenant,
        "ready",
        args.orders,
        Duration::from_secs(120 + args.orders as u64 / 100),
    )
    .await?;
    eprintln!("writer: draining {} ready orders", args.orders);
    let started = Instant::now();
    stack
        .start_service("erp-writer", &ferry_runtime::service::Readiness::default())
        .await?;
    wait_for(
        &store,
        &tenant,
        "posted",
        args.orders,
        Duration::from_secs(60 + args.orders as u64 / 50),
    )
    .await?;
    let orders_per_sec = args.orders as f64 / started.elapsed().as_secs_f64();
    let documents = stack.erp.orders().len() - baseline_documents;
    eprintln!("writer: {orders_per_sec:.0} orders/s; ERP documents {documents}");

    let tryton = if args.tryton_orders > 0 {
        crate::bench_tryton::tryton(&dir, &stack, &args).await?
    } else {
        crate::bench_tryton::TrytonRun::default()
    };
    let (creates, lookups) = if args.sim_capacity > 0 {
        stack.erp.set_faults(ferry_sim_erp::Faults {
            ignore_idempotency_key: true,
            ..Default::default()
        });
        let creates = post_rate(&stack.erp.url(), args.sim_capacity, 64).await?;
        let lookups = lookup_rate(&stack.erp.url(), args.sim_capacity.min(200_000), 64).await?;
        eprintln!(
            "ERP simulator: {creates:.0} creates/s, {lookups:.0} lookups/s, holding {} orders",
            stack.erp.stats().orders
        );
        (creates, lookups)
    } else {
        (0.0, 0.0)
    };
    let result = Result {
        orders: args.orders,
        latency_ms: args.latency_ms,
        in_flight: args.in_flight,
        orders_per_sec: (orders_per_sec * 10.0).round() / 10.0,
        baseline_orders_per_sec: (baseline * 10.0).round() / 10.0,
        ratio: (orders_per_sec / baseline * 100.0).round() / 100.0,
        duplicates: documents.saturating_sub(args.orders),
        tryton_orders: args.tryton_orders,
        tryton_orders_per_min: tenth(tryton.orders.per_min),
        tryton_batch: args.tryton_batch,
        tryton_baseline_orders_per_min: tenth(tryton.orders.baseline_per_min),
        tryton_failed: tryton.orders.failed,
        tryton_workers: args.tryton_workers.max(1),
        tryton_seconds_per_order_by_call: tryton.orders.seconds_per_item_by_call.clone(),
        tryton_returns: args.tryton_returns.min(args.tryton_orders),
        tryton_returns_per_min: tenth(tryton.returns.per_min),
        tryton_baseline_returns_per_min: tenth(tryton.returns.baseline_per_min),
        tryton_returns_failed: tryton.returns.failed,
        tryton_seconds_per_return_by_call: tryton.returns.seconds_per_item_by_call.clone(),
        tryton_changes: args.tryton_changes.min(args.tryton_orders),
        tryton_changes_per_min: tenth(tryton.changes.per_min),
        tryton_baseline_changes_per_min: tenth(tryton.changes.baseline_per_min),
        tryton_changes_failed: tryton.changes.failed,
        tryton_seconds_per_change_by_call: tryton.changes.seconds_per_item_by_call.clone(),
        tryton_database: if args.tryton_postgres {
            "postgresql"
        } else {
            "sqlite"
        },
        sim_creates_per_sec: creates.round(),
        sim_lookups_per_sec: lookups.round(),
        sim_orders_held: stack.erp.stats().orders,
        rss_mib: crate::bench_centra::rss_mib(),
    };
    stack.shutdown().await;
    infra.stop();
    let _ = std::fs::remove_dir_all(&dir);
    println!("{}", serde_json::to_string(&result)?);
    Ok(())
}

fn tenth(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}
