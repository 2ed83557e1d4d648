//! `ferry bench centra`: the Centra simulator at scale. Loads a million orders and a hundred
//! thousand sizes, then measures the contract query for 200 orders (latency) and small
//! GraphQL queries from many connections (throughput), with plain HTTP round trips to the
//! same server as the baseline, measured in the same run. The last line is one JSON object.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ferry_sim_centra::{CentraSim, OrderMix, Quotas, SimConfig};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

#[derive(clap::Args, Debug)]
pub struct CentraArgs {
    /// Orders the simulator holds.
    #[arg(long, default_value_t = 1_000_000)]
    pub orders: usize,
    /// Extra catalogue sizes (on top of the demo catalogue).
    #[arg(long, default_value_t = 100_000)]
    pub sizes: usize,
    /// Seconds each throughput phase runs.
    #[arg(long, default_value_t = 5)]
    pub secs: u64,
    /// Concurrent connections in the throughput phases.
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
}

#[derive(Serialize)]
struct CentraResult {
    orders: usize,
    sizes: usize,
    load_secs: f64,
    rss_mib: f64,
    snapshot_200_p50_ms: f64,
    snapshot_200_p99_ms: f64,
    graphql_requests_per_sec: f64,
    baseline_http_requests_per_sec: f64,
    ratio: f64,
}

pub fn rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kib| kib.parse::<f64>().ok())
        })
        .map_or(0.0, |kib| (kib / 1024.0 * 10.0).round() / 10.0)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    (sorted[i] * 100.0).round() / 100.0
}

/// Requests per second from `concurrency` loops sending `request` for `secs`.
async fn throughput<F, Fut>(concurrency: usize, secs: u64, request: F) -> f64
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let request = Arc::new(request);
    let done = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let until = Instant::now() + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    for worker in 0..concurrency as u64 {
        let (request, done, failed) = (request.clone(), done.clone(), failed.clone());
        tasks.push(tokio::spawn(async move {
            let mut i = worker;
            while Instant::now() < until {
                if request(i).await {
                    done.fetch_add(1, Ordering::Relaxed);
                } else {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
                i += concurrency as u64;
            }
        }));
    }
    let start = Instant::now();
    for t in tasks {
        let _ = t.await;
    }
    let failed = failed.load(Ordering::Relaxed);
    if failed > 0 {
        eprintln!("{failed} requests failed");
    }
    done.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64()
}

pub async fn centra(args: CentraArgs) -> anyhow::Result<()> {
    let shutdown = CancellationToken::new();
    let _guard = shutdown.clone().drop_guard();
    let sim = CentraSim::start(
        SimConfig {
            quotas: Quotas::unlimited(),
            ..SimConfig::default()
        },
        shutdown,
    )
    .await?;
    let started = Instant::now();
    let mix = OrderMix::default();
    let mut left = args.orders;
    while left > 0 {
        let n = left.min(100_000);
        sim.generate(n, &mix);
        left -= n;
    }
    sim.state
        .ops_mut(|o| o.add_synthetic_sizes(args.sizes, 100));
    let load_secs = (started.elapsed().as_secs_f64() * 10.0).round() / 10.0;
    let rss = rss_mib();
    let sizes = sim.state.ops(|o| o.sizes.len());
    eprintln!(
        "loaded {} orders and {sizes} sizes in {load_secs} s, RSS {rss} MiB",
        sim.state.order_count()
    );

    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency)
        .build()?;
    let first = 1000i64;
    let count = args.orders as i64;

    // Latency of the contract query for 200 orders spread over the whole book.
    let client = ferry_centra::CentraClient::new(
        sim.graphql_url(),
        secrecy::SecretString::from("sim-token"),
        1_000_000,
        Duration::from_secs(10),
    );
    let mut samples = Vec::new();
    for round in 0..200i64 {
        let numbers: Vec<i64> = (0..200i64)
            .map(|k| first + (round * 7919 + k * 4999) % count.max(1))
            .collect();
        let t = Instant::now();
        let snaps = client.order_snapshots(&numbers).await?;
        samples.push(t.elapsed().as_secs_f64() * 1000.0);
        anyhow::ensure!(!snaps.is_empty(), "no snapshots returned");
    }
    samples.sort_by(f64::total_cmp);

    // Baseline: plain HTTP round trips to the same server (no GraphQL).
    let url = format!("{}/admin/faults", sim.url());
    let h = http.clone();
    let baseline = throughput(args.concurrency, args.secs, move |_| {
        let (h, url) = (h.clone(), url.clone());
        async move {
            h.get(&url)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
        }
    })
    .await;

    // GraphQL through the engine: one order by number.
    let url = sim.graphql_url();
    let h = http.clone();
    let graphql = throughput(args.concurrency, args.secs, move |i| {
        let (h, url) = (h.clone(), url.clone());
        let number = first + (i as i64 * 7919) % count.max(1);
        async move {
            h.post(&url)
                .bearer_auth("sim-token")
                .json(&serde_json::json!({
                    "query": "query($n: Int!) { orders(where: {number: [$n]}) { number status isOnHold } }",
                    "variables": { "n": number }
                }))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
        }
    })
    .await;

    let result = CentraResult {
        orders: args.orders,
        sizes,
        load_secs,
        rss_mib: rss,
        snapshot_200_p50_ms: percentile(&samples, 0.5),
        snapshot_200_p99_ms: percentile(&samples, 0.99),
        graphql_requests_per_sec: graphql.round(),
        baseline_http_requests_per_sec: baseline.round(),
        ratio: ((graphql / baseline.max(1.0)) * 100.0).round() / 100.0,
    };
    println!("{}", serde_json::to_string(&result)?);
    Ok(())
}
