//! `ferry bench writer`: the erp-writer alone, draining a backlog of ready orders into the
//! ERP simulator (5 ms per call by default), against a baseline measured in the same run: a
//! bare HTTP client posting the same number of orders to the same simulator with the same
//! concurrency and latency. With `--tryton`, it also posts orders to a real Tryton started
//! by `scripts/tryton.sh` and reports orders per minute. The last line is one JSON object.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use secrecy::ExposeSecret as _;
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
        tryton(&dir, &stack, &args).await?
    } else {
        TrytonRun::default()
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
        tryton_orders_per_min: (tryton.per_min * 10.0).round() / 10.0,
        tryton_batch: args.tryton_batch,
        tryton_baseline_orders_per_min: (tryton.baseline_per_min * 10.0).round() / 10.0,
        tryton_failed: tryton.failed,
        tryton_workers: args.tryton_workers.max(1),
        tryton_seconds_per_order_by_call: tryton.seconds_per_order_by_call.clone(),
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

/// Posts `n` generated orders to a real Tryton through the connector (create, quote,
/// confirm, read back), four at a time, and returns orders per minute.
/// The PostgreSQL server of a database URL (`postgres://u@h:p/db` → `postgresql://u@h:p/`),
/// for Tryton to create its own database on.
fn server_url(database_url: &str) -> String {
    let rest = database_url
        .split_once("://")
        .map_or(database_url, |(_, rest)| rest);
    let server = rest.split(['/', '?']).next().unwrap_or(rest);
    format!("postgresql://{server}/")
}

#[derive(Debug, Default)]
struct TrytonRun {
    per_min: f64,
    baseline_per_min: f64,
    failed: usize,
    seconds_per_order_by_call: std::collections::BTreeMap<String, f64>,
}

async fn tryton(
    dir: &std::path::Path,
    stack: &Stack,
    args: &WriterArgs,
) -> anyhow::Result<TrytonRun> {
    let n = args.tryton_orders + args.tryton_baseline;
    let script = ferry_testing::infra::workspace_root().join("scripts/tryton.sh");
    let tryton_dir = dir.join("tryton");
    let mut start = tokio::process::Command::new(&script);
    start.arg("start").arg(&tryton_dir);
    if args.tryton_postgres {
        start.env(
            "FERRY_TRYTON_POSTGRES",
            server_url(stack.config.database.url.expose_secret()),
        );
    }
    if args.tryton_workers > 1 {
        start.env("FERRY_TRYTON_WORKERS", args.tryton_workers.to_string());
    }
    let out = start.output().await.context("starting Tryton")?;
    anyhow::ensure!(
        out.status.success(),
        "scripts/tryton.sh start: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let value = |k: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(k)?.strip_prefix('='))
            .unwrap_or_default()
            .to_owned()
    };
    let connector = Arc::new(ferry_erp_tryton::Tryton::new(
        ferry_erp_tryton::TrytonConfig {
            reference_prefix: format!("bench{}-", std::process::id()),
            batch: args.tryton_batch.max(1),
            ..ferry_erp_tryton::TrytonConfig::new(
                value("FERRY_TRYTON_URL"),
                value("FERRY_TRYTON_USER"),
                secrecy::SecretString::from(value("FERRY_TRYTON_PASSWORD")),
            )
        },
    ));
    let numbers = stack.centra.generate(
        n,
        &ferry_sim_centra::OrderMix {
            hold_pct: 0,
            pending_pct: 0,
            ..Default::default()
        },
    );
    let client = ferry_centra::CentraClient::new(
        stack.centra.graphql_url(),
        secrecy::SecretString::from("sim-token"),
        1000,
        Duration::from_secs(10),
    );
    let tenant = &stack.config.tenants[0];
    let mut orders = Vec::new();
    for raw in client.order_snapshots(&numbers).await? {
        let snapshot = ferry_domain::Snapshot::parse(&raw.json)?;
        let order = ferry_domain::transform(&snapshot, &tenant.rules, &ferry_domain::NoItems);
        let source = ferry_proto::centra::v1::OrderSnapshot {
            tenant: tenant.id.clone(),
            order_number: order.order_number,
            snapshot_json: raw.json.to_vec().into(),
            ..Default::default()
        };
        let pb = ferry_transform::convert::sales_order(tenant, &order, &source);
        orders.push(ferry_erp_writer::convert::post_order(tenant, &pb));
    }
    let batched = orders.split_off(args.tryton_baseline.min(orders.len()));
    eprintln!(
        "tryton: {} orders one by one (the baseline), then {} in batches of {}",
        orders.len(),
        batched.len(),
        args.tryton_batch
    );
    let (baseline_per_min, baseline_failed) = post_to_tryton(&connector, orders, 1).await?;
    eprintln!("tryton: one by one {baseline_per_min:.1} orders/min");
    let before = connector.rpc().timings();
    let batched_orders = batched.len().max(1);
    let (per_min, failed) = post_to_tryton(&connector, batched, args.tryton_batch).await?;
    eprintln!("tryton: in batches {per_min:.1} orders/min");
    // Where the batched run's time went, per Tryton method (seconds per order).
    let mut by_call = std::collections::BTreeMap::new();
    for (method, (calls, spent)) in connector.rpc().timings() {
        let (calls_before, spent_before) = before.get(&method).copied().unwrap_or_default();
        let seconds = (spent - spent_before).as_secs_f64();
        if calls > calls_before && seconds >= 0.001 {
            eprintln!(
                "tryton:   {method}: {} calls, {:.3} s per order",
                calls - calls_before,
                seconds / batched_orders as f64
            );
            by_call.insert(
                method.trim_start_matches("model.").to_owned(),
                (seconds / batched_orders as f64 * 1000.0).round() / 1000.0,
            );
        }
    }
    let _ = tokio::process::Command::new(&script)
        .arg("stop")
        .arg(&tryton_dir)
        .output()
        .await;
    Ok(TrytonRun {
        per_min,
        baseline_per_min,
        failed: failed + baseline_failed,
        seconds_per_order_by_call: by_call,
    })
}

/// Posts `orders` to Tryton, `batch` per call, four calls in flight (the writer's default
/// for a batching ERP); orders per minute and how many failed.
async fn post_to_tryton(
    connector: &Arc<ferry_erp_tryton::Tryton>,
    orders: Vec<ferry_erp::PostOrder>,
    batch: usize,
) -> anyhow::Result<(f64, usize)> {
    let n = orders.len();
    let started = Instant::now();
    let queue = Arc::new(std::sync::Mutex::new(orders));
    let failed = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..4 {
        let (queue, connector, failed) = (queue.clone(), connector.clone(), failed.clone());
        workers.spawn(async move {
            loop {
                let next: Vec<ferry_erp::PostOrder> = match queue.lock() {
                    Ok(mut q) => {
                        let at = q.len().saturating_sub(batch.max(1));
                        q.split_off(at)
                    }
                    Err(_) => Vec::new(),
                };
                if next.is_empty() {
                    return;
                }
                let results = if batch > 1 {
                    ferry_erp::PostOrders::create_sales_orders(connector.as_ref(), &next).await
                } else {
                    vec![
                        ferry_erp::PostOrders::create_sales_order(connector.as_ref(), &next[0])
                            .await,
                    ]
                };
                for result in results {
                    if let Err(e) = result {
                        eprintln!("tryton: {e}");
                        failed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                }
            }
        });
    }
    while let Some(done) = workers.join_next().await {
        done?;
    }
    let per_min = n as f64 * 60.0 / started.elapsed().as_secs_f64().max(0.001);
    Ok((per_min, failed.load(std::sync::atomic::Ordering::Relaxed)))
}

#[cfg(test)]
mod tests {
    #[test]
    fn tryton_gets_the_server_of_the_database_url() {
        assert_eq!(
            super::server_url("postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"),
            "postgresql://postgres@127.0.0.1:5432/"
        );
        assert_eq!(
            super::server_url("postgresql://u:p@db:6543"),
            "postgresql://u:p@db:6543/"
        );
    }
}
