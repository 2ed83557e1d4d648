//! `ferry bench pipeline --orders N`: end-to-end throughput and latency of the order spine
//! (signed webhook accepted → sales order posted in the ERP simulator), with a bare
//! JetStream 4-hop pipeline measured first, in the same run, on the same nats-server, as
//! the baseline. The last line printed is one JSON object.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use async_nats::jetstream::{self, consumer, stream};
use bytes::Bytes;
use futures::StreamExt;
use serde::Serialize;

use crate::stack::{LocalInfra, Stack, StackOptions, local_config};

#[derive(clap::Args, Debug)]
pub struct PipelineArgs {
    /// Orders to push through.
    #[arg(long, default_value_t = 10_000)]
    pub orders: usize,
    /// Offer orders at this rate (orders/s); default: all at once (saturation).
    #[arg(long)]
    pub rate: Option<u32>,
    /// Payload size of the baseline's messages (a snapshot is 4–6 KiB).
    #[arg(long, default_value_t = 4096)]
    pub baseline_payload: usize,
    /// Skip the baseline (for quick runs).
    #[arg(long)]
    pub no_baseline: bool,
    /// Production durability: JetStream `sync_interval: always`, PostgreSQL fsync and
    /// synchronous commit on (the baseline runs on the same servers).
    #[arg(long)]
    pub durable: bool,
}

#[derive(Debug, Serialize)]
struct Result {
    orders: usize,
    orders_per_sec: f64,
    p50_ms: f64,
    p99_ms: f64,
    baseline_orders_per_sec: f64,
    ratio: f64,
    lost: usize,
    duplicates: usize,
    durable: bool,
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

pub async fn pipeline(args: PipelineArgs) -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("ferry-bench-{}", std::process::id()));
    let mut infra = LocalInfra::start_with(dir.clone(), args.durable).await?;
    let baseline = if args.no_baseline {
        0.0
    } else {
        eprintln!(
            "baseline: bare JetStream, 4 hops, {} messages of {} bytes",
            args.orders, args.baseline_payload
        );
        let b = baseline(&infra.nats_url, args.orders, args.baseline_payload).await?;
        eprintln!("baseline: {b:.0} orders/s");
        b
    };

    let mut config = local_config(&infra)?;
    config.nats.prefix = "bench".to_owned();
    config.telemetry.log_filter = "warn".to_owned();
    config.database.max_connections = 12;
    let options = StackOptions {
        centra_requests_per_10s: 100_000,
        webhook_faults: ferry_sim_centra::WebhookConfig {
            flush_ms: 5,
            ..Default::default()
        },
        ..StackOptions::default()
    };
    let stack = Stack::start(config, options)
        .await
        .context("starting the stack")?;
    stack.erp.set_faults(ferry_sim_erp::Faults {
        ignore_idempotency_key: true,
        ..Default::default()
    });
    let posted = collect_posted(&stack).await?;

    eprintln!(
        "pipeline: {} orders through webhook → ingest → transform → erp-writer → ERP",
        args.orders
    );
    let mix = ferry_sim_centra::OrderMix {
        hold_pct: 0,
        pending_pct: 0,
        ..Default::default()
    };
    let started = Instant::now();
    match args.rate {
        None => {
            stack.centra.generate(args.orders, &mix);
        }
        Some(rate) => {
            let mut sent = 0;
            let mut tick = tokio::time::interval(Duration::from_millis(10));
            while sent < args.orders {
                tick.tick().await;
                let due =
                    ((started.elapsed().as_secs_f64() * f64::from(rate)) as usize).min(args.orders);
                if due > sent {
                    stack.centra.generate(due - sent, &mix);
                    sent = due;
                }
            }
        }
    }
    let deadline = Instant::now() + Duration::from_secs(60 + (args.orders / 200) as u64);
    let mut last_report = Instant::now();
    loop {
        let count = posted.lock().map(|p| p.len()).unwrap_or(0);
        if count >= args.orders || Instant::now() > deadline {
            break;
        }
        if last_report.elapsed() > Duration::from_secs(1) {
            eprintln!(
                "  {:>5.1}s  webhook events {:>6}  notices {:>6}  snapshots {:>6}  ready {:>6}  posted {:>6}",
                started.elapsed().as_secs_f64(),
                stack.centra.webhook_stats().events_sent,
                processed(&stack, "ingest"),
                processed(&stack, "transform"),
                processed(&stack, "erp-writer"),
                count
            );
            last_report = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let posted: HashMap<i64, (i64, i64)> = posted.lock().map(|p| p.clone()).unwrap_or_default();
    let first_accepted = posted.values().map(|(a, _)| *a).min().unwrap_or(0);
    let last_posted = posted.values().map(|(_, p)| *p).max().unwrap_or(0);
    let span_ms = (last_posted - first_accepted).max(1) as f64;
    let mut latencies: Vec<i64> = posted.values().map(|(a, p)| p - a).collect();
    latencies.sort_unstable();
    let pct = |q: f64| -> f64 {
        if latencies.is_empty() {
            return 0.0;
        }
        let i = ((latencies.len() as f64 - 1.0) * q).round() as usize;
        latencies[i] as f64
    };
    let erp_documents = stack.erp.orders().len();
    let duplicates = erp_documents.saturating_sub(posted.len()) + stack.erp.duplicated_refs().len();
    let orders_per_sec = posted.len() as f64 * 1000.0 / span_ms;
    let result = Result {
        orders: args.orders,
        orders_per_sec: round1(orders_per_sec),
        p50_ms: round1(pct(0.50)),
        p99_ms: round1(pct(0.99)),
        baseline_orders_per_sec: round1(baseline),
        ratio: if baseline > 0.0 {
            (orders_per_sec / baseline * 100.0).round() / 100.0
        } else {
            0.0
        },
        lost: args.orders.saturating_sub(posted.len()),
        duplicates,
        durable: args.durable,
    };
    eprintln!(
        "pipeline: {} posted in {:.1}s = {:.0} orders/s; latency p50 {:.0} ms, p99 {:.0} ms; ERP documents {erp_documents}",
        posted.len(),
        span_ms / 1000.0,
        orders_per_sec,
        result.p50_ms,
        result.p99_ms
    );
    stack.shutdown().await;
    infra.stop();
    let _ = std::fs::remove_dir_all(&dir);
    println!("{}", serde_json::to_string(&result)?);
    Ok(())
}

/// Messages a service has handled successfully, from its metrics.
fn processed(stack: &Stack, service: &str) -> u64 {
    let text = stack.telemetry.render_metrics();
    text.lines()
        .filter(|l| {
            l.starts_with("ferry_messages_total{")
                && l.contains(&format!("service=\"{service}\""))
                && l.contains("outcome=\"ok\"")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

/// Watches `order.posted`: order number → (first accepted, posted) in epoch milliseconds.
async fn collect_posted(
    stack: &Stack,
) -> anyhow::Result<Arc<std::sync::Mutex<HashMap<i64, (i64, i64)>>>> {
    use prost::Message as _;
    let client = async_nats::connect(&stack.config.nats.url).await?;
    let js = jetstream::new(client);
    let topology = ferry_runtime::Topology::new(&stack.config.nats.prefix);
    let stream = js
        .get_stream(topology.stream_name(ferry_runtime::StreamKind::Orders))
        .await?;
    let consumer = stream
        .create_consumer(consumer::pull::OrderedConfig {
            filter_subject: topology.posted_filter(stack.tenant()),
            deliver_policy: consumer::DeliverPolicy::New,
            ..Default::default()
        })
        .await?;
    let mut messages = consumer.messages().await?;
    let seen = Arc::new(std::sync::Mutex::new(HashMap::new()));
    let sink = seen.clone();
    tokio::spawn(async move {
        while let Some(Ok(message)) = messages.next().await {
            if let Ok(posted) =
                ferry_proto::order::v1::OrderPosted::decode(message.payload.as_ref())
            {
                let accepted = ferry_proto::millis(posted.first_accepted_at.as_ref());
                let at = ferry_proto::millis(posted.posted_at.as_ref());
                if let Ok(mut seen) = sink.lock() {
                    seen.entry(posted.order_number).or_insert((accepted, at));
                }
            }
        }
    });
    Ok(seen)
}

/// A bare JetStream pipeline of the same shape as Ferry's order spine: a producer
/// publishes with `Nats-Msg-Id`, three workers each consume hop i and publish to hop i+1
/// (awaiting the publish ack before acking the input), and a sink consumes hop 3.
async fn baseline(url: &str, n: usize, payload: usize) -> anyhow::Result<f64> {
    let connect = || async { anyhow::Ok(jetstream::new(async_nats::connect(url).await?)) };
    let js = connect().await?;
    let _ = js.delete_stream("BASELINE").await;
    js.create_stream(stream::Config {
        name: "BASELINE".into(),
        subjects: vec!["baseline.>".into()],
        storage: stream::StorageType::File,
        duplicate_window: Duration::from_secs(120),
        ..Default::default()
    })
    .await?;
    let body = Bytes::from(vec![b'x'; payload]);
    let mut workers = Vec::new();
    for hop in 0..4 {
        let js = connect().await?;
        let stream = js.get_stream("BASELINE").await?;
        let consumer: consumer::PullConsumer = stream
            .create_consumer(consumer::pull::Config {
                durable_name: Some(format!("hop{hop}")),
                filter_subject: format!("baseline.hop{hop}"),
                ack_policy: consumer::AckPolicy::Explicit,
                max_ack_pending: 10_000,
                ..Default::default()
            })
            .await?;
        let body = body.clone();
        let task = tokio::spawn(async move {
            let mut messages = consumer
                .stream()
                .max_messages_per_batch(200)
                .messages()
                .await?;
            let js = &js;
            let body = &body;
            (&mut messages)
                .take(n)
                .for_each_concurrent(64, |m| async move {
                    let Ok(m) = m else { return };
                    if hop < 3 {
                        let id = m
                            .headers
                            .as_ref()
                            .and_then(|h| h.get("Nats-Msg-Id"))
                            .map(|v| v.to_string())
                            .unwrap_or_default();
                        let mut headers = async_nats::HeaderMap::new();
                        headers.insert("Nats-Msg-Id", format!("{id}-{}", hop + 1).as_str());
                        if let Ok(ack) = js
                            .publish_with_headers(
                                format!("baseline.hop{}", hop + 1),
                                headers,
                                body.clone(),
                            )
                            .await
                        {
                            let _ = ack.await;
                        }
                    }
                    let _ = m.ack().await;
                })
                .await;
            anyhow::Ok(())
        });
        workers.push(task);
    }
    let started = Instant::now();
    let producer = connect().await?;
    let mut pending = futures::stream::FuturesUnordered::new();
    for i in 0..n {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Nats-Msg-Id", format!("o{i}").as_str());
        pending.push(
            producer
                .publish_with_headers("baseline.hop0", headers, body.clone())
                .await?
                .into_future(),
        );
        if pending.len() >= 256 {
            let _ = pending.next().await;
        }
    }
    while pending.next().await.is_some() {}
    // The sink (hop 3) finishes once it has seen every message.
    if let Some(task) = workers.pop() {
        tokio::time::timeout(Duration::from_secs(120 + n as u64 / 100), task)
            .await
            .context("the baseline did not finish")???;
    }
    let elapsed = started.elapsed().as_secs_f64();
    for task in workers {
        task.abort();
    }
    let _ = js.delete_stream("BASELINE").await;
    Ok(n as f64 / elapsed)
}

#[derive(clap::Args, Debug)]
pub struct IdleArgs {
    /// Seconds each service idles before its memory is read.
    #[arg(long, default_value_t = 5)]
    pub idle_secs: u64,
}

#[derive(Debug, Serialize)]
struct IdleResult {
    service: &'static str,
    ready_ms: u128,
    idle_rss_mib: f64,
}

/// `ferry bench idle`: starts each service as its own process (`ferry run <service>`, as
/// Kubernetes runs it) against a local nats-server and PostgreSQL, and measures the time
/// from spawn to `/readyz` answering 200 and the resident memory after idling.
pub async fn idle(args: IdleArgs) -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("ferry-idle-{}", std::process::id()));
    let mut infra = LocalInfra::start(dir.clone()).await?;
    // The schema exists before the services start, as after a deployment's migration job.
    let mut config = local_config(&infra)?;
    config.nats.prefix = "idle".to_owned();
    ferry_store::Store::connect(&config.database)
        .await?
        .migrate()
        .await?;
    let exe = std::env::current_exe()?;
    let http = reqwest::Client::new();
    let mut results = Vec::new();
    for service in crate::stack::SERVICES {
        let ops = ferry_testing::infra::free_port()?;
        let webhook = ferry_testing::infra::free_port()?;
        let config_file = dir.join(format!("{service}.toml"));
        std::fs::write(
            &config_file,
            format!(
                "[nats]\nurl = \"{}\"\nprefix = \"idle\"\n[database]\nurl = \"{}\"\nmax_connections = 4\n\
                 [telemetry]\nlog_filter = \"warn\"\n[ops]\nlisten = \"127.0.0.1:{ops}\"\n[ingest]\nlisten = \"127.0.0.1:{webhook}\"\n\
                 [[tenants]]\nid = \"demo\"\n[tenants.centra]\nurl = \"http://127.0.0.1:9/graphql\"\ntoken = \"t\"\nwebhook_secret = \"s\"\n\
                 [tenants.erp]\nkind = \"http\"\nurl = \"http://127.0.0.1:9\"\n\
                 [tenants.inventory]\nwarehouses = {{ \"Main\" = 1 }}\n",
                infra.nats_url, infra.database_url
            ),
        )?;
        let started = Instant::now();
        let mut child = tokio::process::Command::new(&exe)
            .args(["run", service, "--config"])
            .arg(&config_file)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()?;
        let url = format!("http://127.0.0.1:{ops}/readyz");
        let ready_ms = loop {
            if let Ok(r) = http
                .get(&url)
                .timeout(Duration::from_millis(200))
                .send()
                .await
                && r.status().is_success()
            {
                break started.elapsed().as_millis();
            }
            if started.elapsed() > Duration::from_secs(30) {
                anyhow::bail!("{service} was not ready within 30 s");
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        tokio::time::sleep(Duration::from_secs(args.idle_secs)).await;
        let pid = child.id().context("the service exited")?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
        let rss_kib: f64 = status
            .lines()
            .find(|l| l.starts_with("VmRSS:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0);
        let _ = child.kill().await;
        let result = IdleResult {
            service,
            ready_ms,
            idle_rss_mib: round1(rss_kib / 1024.0),
        };
        eprintln!(
            "{service}: ready in {ready_ms} ms, {:.1} MiB RSS after {} s idle",
            result.idle_rss_mib, args.idle_secs
        );
        results.push(result);
    }
    infra.stop();
    let _ = std::fs::remove_dir_all(&dir);
    println!("{}", serde_json::to_string(&results)?);
    Ok(())
}
