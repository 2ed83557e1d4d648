//! `ferry bench fulfilment`: ERP shipments to Centra through the fulfilment-feedback service.
//!
//! 1. Throughput with Centra's mutation quotas raised: N posted orders shipped at once in
//!    the ERP simulator, the service started, timed until Centra has all N shipments. The
//!    baseline, measured first in the same run, is a bare client creating N shipments in the
//!    Centra simulator one after another (the service also sends one at a time per tenant).
//! 2. Lag at Centra's default quota (100 per 10 s, 1,000 per hour): M orders shipped in the
//!    ERP at a steady rate; per shipment, from the ERP's shipped time to Centra recording it.
//!
//! The last line is one JSON object.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde::Serialize;

use crate::stack::{LocalInfra, Stack, StackOptions, local_config};

#[derive(clap::Args, Debug)]
pub struct FulfilmentArgs {
    /// Shipments for the throughput run (quotas raised).
    #[arg(long, default_value_t = 2000)]
    pub shipments: usize,
    /// Shipments for the lag run at the default quota.
    #[arg(long, default_value_t = 200)]
    pub lag_shipments: usize,
    /// Shipments per second the warehouse completes in the lag run.
    #[arg(long, default_value_t = 5)]
    pub lag_rate: u32,
}

#[derive(Debug, Serialize)]
struct Result {
    shipments: usize,
    shipments_per_sec: f64,
    baseline_shipments_per_sec: f64,
    ratio: f64,
    duplicates: usize,
    lag_shipments: usize,
    lag_rate_per_sec: u32,
    lag_p50_ms: f64,
    lag_p99_ms: f64,
    centra_429s: usize,
}

fn mix() -> ferry_sim_centra::OrderMix {
    ferry_sim_centra::OrderMix {
        hold_pct: 0,
        pending_pct: 0,
        cancellation_pct: 0,
        ..Default::default()
    }
}

/// A stack for one run; each run has its own tenant, so the ledgers do not mix.
async fn start(infra: &LocalInfra, prefix: &str, mutations: (u32, u32)) -> anyhow::Result<Stack> {
    let mut config = local_config(infra)?;
    config.nats.prefix = prefix.to_owned();
    config.telemetry.log_filter = "warn".to_owned();
    let options = StackOptions {
        tenant: prefix.to_owned(),
        centra_requests_per_10s: 100_000,
        centra_mutations: mutations,
        ..StackOptions::default()
    };
    Stack::start(config, options)
        .await
        .context("starting the stack")
}

async fn wait_posted(stack: &Stack, n: usize) -> anyhow::Result<()> {
    let store = ferry_store::Store::connect(&stack.config.database).await?;
    let within = Duration::from_secs(120 + n as u64 / 50);
    crate::bench_writer::wait_for(&store, stack.tenant(), "posted", n, within).await
}

fn shipped_in_centra(stack: &Stack, orders: &[i64]) -> usize {
    stack.centra.state.ops(|o| {
        orders
            .iter()
            .map(|n| o.shipments_of(*n).iter().filter(|s| s.is_shipped).count())
            .sum()
    })
}

fn ship(stack: &Stack, n: i64) -> anyhow::Result<()> {
    stack
        .erp
        .ship(ferry_sim_erp::ShipRequest {
            external_ref: n.to_string(),
            lines: None,
            carrier: Some("PostNord".into()),
            tracking_number: Some(format!("PN{n}SE")),
        })
        .map(|_| ())
        .context("shipping in the ERP simulator")
}

pub async fn fulfilment(args: FulfilmentArgs) -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("ferry-bench-fulfilment-{}", std::process::id()));
    let mut infra = LocalInfra::start(dir.clone()).await?;

    // 1. Throughput, quotas raised.
    let raised = (1_000_000, 100_000_000);
    let mut stack = start(&infra, "benchf", raised).await?;
    let orders = stack.centra.generate(args.shipments, &mix());
    wait_posted(&stack, args.shipments).await?;

    let client = ferry_centra::CentraClient::new(
        stack.centra.graphql_url(),
        secrecy::SecretString::from("sim-token"),
        1_000_000,
        Duration::from_secs(10),
    );
    // Baseline: the same orders' shipments created directly, one after another, on a
    // second simulator-owned order set (extra orders, so the real run's are untouched).
    let extra = stack.centra.generate(args.shipments, &mix());
    let line_sets: Vec<(i64, Vec<(i64, i64)>)> = extra
        .iter()
        .filter_map(|n| {
            let o = stack.centra.state.order(*n)?;
            Some((*n, o.lines.iter().map(|l| (l.id, l.quantity)).collect()))
        })
        .collect();
    eprintln!(
        "baseline: {} createShipment calls, one at a time",
        line_sets.len()
    );
    let started = Instant::now();
    for (n, lines) in &line_sets {
        client
            .create_shipment(&ferry_centra::NewShipment {
                order_number: *n,
                lines,
                shipped_at: "2026-11-27 12:00:00",
                carrier: Some("PostNord"),
                service: None,
                tracking_number: Some("PN"),
                send_email: true,
                capture: false,
            })
            .await?;
    }
    let baseline = line_sets.len() as f64 / started.elapsed().as_secs_f64();
    eprintln!("baseline: {baseline:.0} shipments/s");

    stack.kill_service("fulfilment-feedback").await;
    for n in &orders {
        ship(&stack, *n)?;
    }
    eprintln!("fulfilment: {} ERP shipments waiting", orders.len());
    let started = Instant::now();
    stack
        .start_service(
            "fulfilment-feedback",
            &ferry_runtime::service::Readiness::default(),
        )
        .await?;
    let deadline = Instant::now() + Duration::from_secs(600);
    while shipped_in_centra(&stack, &orders) < orders.len() {
        anyhow::ensure!(
            Instant::now() < deadline,
            "shipments did not all reach Centra"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let per_sec = orders.len() as f64 / started.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let duplicates = shipped_in_centra(&stack, &orders) - orders.len();
    eprintln!("fulfilment: {per_sec:.0} shipments/s, {duplicates} duplicates");
    stack.shutdown().await;

    // 2. Lag at Centra's default quota.
    let stack = start(&infra, "benchl", (100, 1000)).await?;
    let orders = stack.centra.generate(args.lag_shipments, &mix());
    wait_posted(&stack, args.lag_shipments).await?;
    eprintln!(
        "lag: {} shipments at {}/s against Centra's default quota",
        orders.len(),
        args.lag_rate
    );
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(args.lag_rate)));
    for n in &orders {
        tick.tick().await;
        ship(&stack, *n)?;
    }
    let deadline = Instant::now() + Duration::from_secs(600);
    while shipped_in_centra(&stack, &orders) < orders.len() {
        anyhow::ensure!(Instant::now() < deadline, "lag run did not finish");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let erp_times: std::collections::HashMap<String, String> = stack
        .erp
        .shipments()
        .into_iter()
        .map(|s| (s.external_ref, s.shipped_at))
        .collect();
    let mut lags: Vec<f64> = stack.centra.state.ops(|o| {
        orders
            .iter()
            .filter_map(|n| {
                let centra = o.shipments_of(*n).first().map(|s| s.created_at)?;
                let erp =
                    chrono::DateTime::parse_from_rfc3339(erp_times.get(&n.to_string())?).ok()?;
                Some((centra - erp.with_timezone(&chrono::Utc)).num_microseconds()? as f64 / 1000.0)
            })
            .collect()
    });
    lags.sort_by(f64::total_cmp);
    let pct = |q: f64| {
        lags.get(((lags.len().max(1) - 1) as f64 * q).round() as usize)
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
        shipments: args.shipments,
        shipments_per_sec: (per_sec * 10.0).round() / 10.0,
        baseline_shipments_per_sec: (baseline * 10.0).round() / 10.0,
        ratio: (per_sec / baseline * 100.0).round() / 100.0,
        duplicates,
        lag_shipments: lags.len(),
        lag_rate_per_sec: args.lag_rate,
        lag_p50_ms: pct(0.5).round(),
        lag_p99_ms: pct(0.99).round(),
        centra_429s: refused,
    };
    stack.shutdown().await;
    infra.stop();
    let _ = std::fs::remove_dir_all(&dir);
    println!("{}", serde_json::to_string(&result)?);
    Ok(())
}
