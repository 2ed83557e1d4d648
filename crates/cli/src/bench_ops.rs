//! `ferry bench ops`: the operations API with a brand's worth of history — a million
//! orders in the ledger (their shipments, verdicts and stock held) and 100,000 open
//! exceptions — answering people one call at a time over gRPC: a filtered page of 50
//! exceptions (first pages and the pages after), and an order's timeline. The baseline,
//! measured in the same run, is the same reads straight from the store (no gRPC, no token
//! check). The last line is one JSON object.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use ferry_ops::access::Role;
use ferry_proto::ops::v1 as pb;
use ferry_proto::ops::v1::order_service_client::OrderServiceClient;
use ferry_store::Store;
use ferry_store::ops::ExceptionQuery;
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::stack::{LocalInfra, local_config};

const TENANT: &str = "bench";
/// The filter of every List call: one team's open inbox.
const FILTER: &str = "owner = finance AND state = open";

#[derive(clap::Args, Debug)]
pub struct OpsArgs {
    /// Orders in the ledger.
    #[arg(long, default_value_t = 1_000_000)]
    pub orders: i64,
    /// Open exceptions.
    #[arg(long, default_value_t = 100_000)]
    pub exceptions: i64,
    /// Calls measured of each kind.
    #[arg(long, default_value_t = 2_000)]
    pub calls: usize,
    /// Exceptions retried in one bulk operation.
    #[arg(long, default_value_t = 10_000)]
    pub bulk: i64,
    /// Orders the ERP simulator refused, then bulk-retried into it (0: skip that part).
    #[arg(long, default_value_t = 10_000)]
    pub downstream: usize,
}

#[derive(Serialize)]
struct Outcome {
    orders: i64,
    exceptions: i64,
    list_p50_ms: f64,
    list_p99_ms: f64,
    timeline_p50_ms: f64,
    timeline_p99_ms: f64,
    /// One bulk retry of orders the ERP refused, with every service and the ERP
    /// simulator downstream: orders in the ERP per second, from the retry's start until
    /// the ERP holds every one.
    bulk_retry_per_sec: f64,
    /// The same operation's own duration (re-driving, before the writer's work ends).
    bulk_operation_seconds: f64,
    /// One bulk retry of `--bulk` exceptions into a stream of the bench's own (no
    /// service behind it): re-driven per second.
    bulk_redrive_per_sec: f64,
    baseline_list_p99_ms: f64,
    baseline_timeline_p99_ms: f64,
    /// Each console page's p99 (to the last byte over loopback), signed in as finance.
    console_p99_ms: std::collections::BTreeMap<String, f64>,
    /// The inbox with its stylesheet and script, as first loaded.
    console_first_load_bytes: usize,
    /// The reconciler's day-by-day count of two months (after each pass), in seconds.
    reconciliation_count_seconds: f64,
    setup_seconds: f64,
}

pub async fn ops(args: OpsArgs) -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("ferry-bench-ops-{}", std::process::id()));
    let infra = LocalInfra::start(dir.join("infra")).await?;
    let mut config = local_config(&infra)?;
    let downstream_config = config.clone();
    config.nats.prefix = "benchops".into();
    let store = Store::connect(&config.database).await?;
    store.migrate().await?;
    let started = Instant::now();
    load(&store, &args).await?;
    let setup_seconds = (started.elapsed().as_secs_f64() * 10.0).round() / 10.0;
    eprintln!("loaded in {setup_seconds} s");

    let shutdown = CancellationToken::new();
    let _stop = shutdown.clone().drop_guard();
    let platform = ferry_platform::Platform::open(
        ferry_ops::SERVICE,
        std::sync::Arc::new(config),
        shutdown.clone(),
        ferry_runtime::Readiness::default(),
    )
    .await?;
    let api = ferry_ops::Ops::start(&platform).await?;
    let url = format!("http://{}", api.addr);
    let (_, secret) =
        crate::tokens::create(&store, "bench@ops", Role::Finance, &[TENANT.into()]).await?;
    let mut exceptions = crate::exceptions::connect(&url, &secret).await?;
    let (channel, bearer) = crate::exceptions::channel(&url, &secret).await?;
    let mut orders = OrderServiceClient::with_interceptor(channel, bearer);

    // Warm both paths (connections, plans, caches) before measuring.
    let mut list = Vec::with_capacity(args.calls);
    let mut token = String::new();
    for i in 0..args.calls + 100 {
        let t = Instant::now();
        let page = exceptions
            .list_exceptions(pb::ListExceptionsRequest {
                parent: format!("tenants/{TENANT}"),
                page_size: 50,
                page_token: token.clone(),
                filter: FILTER.into(),
            })
            .await
            .context("list")?
            .into_inner();
        if i >= 100 {
            list.push(t.elapsed());
        }
        anyhow::ensure!(page.exceptions.len() == 50, "a full page");
        // Ten pages deep, then from the first again: inboxes are read from the top.
        token = if i % 10 == 9 {
            String::new()
        } else {
            page.next_page_token
        };
    }
    let mut timeline = Vec::with_capacity(args.calls);
    for i in 0..args.calls + 100 {
        let number = 1 + (i as i64 * 7_919) % args.orders;
        let t = Instant::now();
        let answer = orders
            .get_order_timeline(pb::GetOrderTimelineRequest {
                name: format!("tenants/{TENANT}/orders/{number}"),
            })
            .await
            .context("timeline")?
            .into_inner();
        if i >= 100 {
            timeline.push(t.elapsed());
        }
        anyhow::ensure!(answer.steps.len() >= 5, "a posted order's steps");
    }

    // The console's pages, with the same history behind them (the day-by-day figures
    // counted first, as the reconciler does after each pass: its cost is reported).
    let t = Instant::now();
    let (from, to) = ferry_reconciler::service::counted_days(chrono::Utc::now().date_naive());
    store
        .refresh_reconciliation_days(
            TENANT,
            from,
            to,
            &ferry_reconciler::service::completeness_causes(),
        )
        .await?;
    let reconciliation_count_seconds = (t.elapsed().as_secs_f64() * 100.0).round() / 100.0;
    let planted: (uuid::Uuid,) =
        sqlx::query_as("SELECT id FROM exceptions WHERE tenant = $1 AND owner = 'finance' LIMIT 1")
            .bind(TENANT)
            .fetch_one(store.pool())
            .await?;
    let some_order = args.orders / 2;
    let console = crate::bench_console::pages(
        &format!("http://{}/", api.console_addr),
        &secret,
        &[
            ("inbox", String::new()),
            ("inbox_overdue", "?overdue=true&text=needs".into()),
            ("exception", format!("exceptions/{TENANT}/{}", planted.0)),
            ("order", format!("orders/{TENANT}/{some_order}")),
            ("search", format!("orders?q={some_order}")),
            ("mappings", format!("mappings?tenant={TENANT}")),
            ("reconciliation", format!("reconciliation?tenant={TENANT}")),
            ("health", format!("health?tenant={TENANT}")),
        ],
        (args.calls / 10).max(20),
    )
    .await?;

    // A bulk retry of `--bulk` exceptions, each re-driven to a stream of the bench's own.
    let bulk_redrive_per_sec = bulk_retry(&store, &platform, &url, args.bulk).await?;
    let (bulk_retry_per_sec, bulk_operation_seconds) = if args.downstream > 0 {
        crate::bench_ops_downstream::retry_into_erp(&downstream_config, args.downstream).await?
    } else {
        (0.0, 0.0)
    };

    // The baseline: the same reads from the store, no gRPC, no token.
    let mut base_list = Vec::with_capacity(args.calls);
    for _ in 0..args.calls {
        let t = Instant::now();
        store
            .list_exceptions(&ExceptionQuery {
                tenants: Some(vec![TENANT.into()]),
                owner: Some("finance".into()),
                state: Some("open".into()),
                limit: 51,
                ..ExceptionQuery::default()
            })
            .await?;
        base_list.push(t.elapsed());
    }
    let mut base_timeline = Vec::with_capacity(args.calls);
    for i in 0..args.calls {
        let number = 1 + (i as i64 * 7_919) % args.orders;
        let t = Instant::now();
        store.order_timeline(TENANT, number).await?;
        base_timeline.push(t.elapsed());
    }

    let outcome = Outcome {
        orders: args.orders,
        exceptions: args.exceptions,
        list_p50_ms: ms(&mut list, 0.50),
        list_p99_ms: ms(&mut list, 0.99),
        timeline_p50_ms: ms(&mut timeline, 0.50),
        timeline_p99_ms: ms(&mut timeline, 0.99),
        bulk_retry_per_sec,
        bulk_operation_seconds,
        bulk_redrive_per_sec,
        baseline_list_p99_ms: ms(&mut base_list, 0.99),
        baseline_timeline_p99_ms: ms(&mut base_timeline, 0.99),
        console_p99_ms: console.p99_ms,
        console_first_load_bytes: console.first_load_bytes,
        reconciliation_count_seconds,
        setup_seconds,
    };
    shutdown.cancel();
    api.wait().await?;
    drop(infra);
    let _ = std::fs::remove_dir_all(&dir);
    println!("{}", serde_json::to_string(&outcome)?);
    Ok(())
}

/// Loads `n` exceptions with stored work, retries them in one operation as engineering,
/// and answers how many were re-driven per second.
async fn bulk_retry(
    store: &Store,
    platform: &ferry_platform::Platform,
    url: &str,
    n: i64,
) -> anyhow::Result<f64> {
    let prefix = &platform.config.nats.prefix;
    platform
        .base
        .js
        .create_stream(async_nats::jetstream::stream::Config {
            name: format!("{}_BENCHRETRY", prefix.to_uppercase()),
            subjects: vec![format!("{prefix}.{TENANT}.benchretry.>")],
            ..Default::default()
        })
        .await
        .context("the bench's stream")?;
    sqlx::query(
        "INSERT INTO exceptions (id, tenant, kind, owner, severity, dedupe_key, message, reason,
                                 service, source_subject, payload, sla_due)
         SELECT gen_random_uuid(), $1, 'delivery_exhausted', 'engineering', 'critical',
                'bulk:' || n, 'message ' || n || ' gave up', 'planted by the benchmark', 'bench',
                $2 || n, convert_to('payload ' || n, 'UTF8'), now() + interval '1 hour'
         FROM generate_series(1, $3::bigint) AS n",
    )
    .bind(TENANT)
    .bind(format!("{prefix}.{TENANT}.benchretry."))
    .bind(n)
    .execute(store.pool())
    .await
    .context("exceptions to retry")?;
    let (_, secret) =
        crate::tokens::create(store, "bench@eng", Role::Engineering, &[TENANT.into()]).await?;
    let mut client = crate::exceptions::connect(url, &secret).await?;
    let (channel, bearer) = crate::exceptions::channel(url, &secret).await?;
    let mut operations =
        ferry_proto::ops::v1::operation_service_client::OperationServiceClient::with_interceptor(
            channel, bearer,
        );
    let t = Instant::now();
    let op = client
        .bulk_act_on_exceptions(pb::BulkActRequest {
            parent: format!("tenants/{TENANT}"),
            filter: "kind = delivery_exhausted AND state = open".into(),
            action: "retry".into(),
            note: String::new(),
            request_id: "bench".into(),
        })
        .await
        .context("bulk retry")?
        .into_inner();
    let done = loop {
        let now = operations
            .get_operation(pb::GetOperationRequest {
                name: op.name.clone(),
            })
            .await
            .context("operation")?
            .into_inner();
        if now.state != "running" {
            break now;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let seconds = t.elapsed().as_secs_f64();
    anyhow::ensure!(
        done.succeeded == n && done.failed == 0,
        "every exception re-driven: {done:?}"
    );
    eprintln!("bulk retry: {n} in {seconds:.2} s");
    Ok((n as f64 / seconds).round())
}

/// The `q` quantile in milliseconds, to a tenth.
fn ms(samples: &mut [Duration], q: f64) -> f64 {
    samples.sort_unstable();
    let Some(last) = samples.len().checked_sub(1) else {
        return 0.0;
    };
    let i = ((last as f64) * q).round() as usize;
    (samples[i].as_secs_f64() * 10_000.0).round() / 10.0
}

/// A brand's history in a few statements: every order posted, one in ten shipped with a
/// tracking number, every one checked by the reconciler, stock held for the last 10,000,
/// and the exceptions spread over the teams, kinds and due times (one in ten overdue),
/// each with two audit rows.
async fn load(store: &Store, args: &OpsArgs) -> anyhow::Result<()> {
    let pool = store.pool();
    let statements = [
        "INSERT INTO order_ledger (tenant, order_number, state, snapshot_hash, snapshot_fetched_at,
                                   order_fingerprint, currency, gross_minor, tax_minor, erp_reference,
                                   erp_gross_minor, erp_tax_minor, first_accepted_at, received_at,
                                   transformed_at, posting_started_at, posted_at)
         SELECT $1, n, 'posted', md5(n::text), now() - interval '2 days', md5(n::text), 'SEK',
                10000 + n % 90000, 2000, 'SO-' || n, 10000 + n % 90000, 2000,
                now() - interval '2 days', now() - interval '2 days', now() - interval '2 days',
                now() - interval '2 days', now() - interval '2 days' + interval '2 seconds'
         FROM generate_series(1, $2::bigint) AS n",
        "INSERT INTO shipment_ledger (tenant, erp_shipment_id, order_number, state, items, carrier,
                                      tracking_number, erp_shipped_at, centra_shipment_id,
                                      centra_completed_at, email_sent, captured, first_seen_at)
         SELECT $1, 'SH-' || n, n, 'sent', '{\"ITEM\": 1}', 'PostNord', 'PN' || n,
                to_char(now() - interval '1 day', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), n,
                now() - interval '1 day', true, true, now() - interval '1 day'
         FROM generate_series(1, $2::bigint, 10) AS n",
        "INSERT INTO reconciliation (tenant, order_number, verdict, checked_at, order_date)
         SELECT $1, n, 'reconciled', now() - interval '1 day', current_date - 2
         FROM generate_series(1, $2::bigint) AS n",
        "INSERT INTO order_commitments (tenant, order_number, erp_items, skus, quantities)
         SELECT $1, n, '{ITEM}', '{SKU}', '{1}'
         FROM generate_series(greatest($2::bigint - 9999, 1), $2::bigint) AS n",
    ];
    for sql in statements {
        sqlx::query(sql)
            .bind(TENANT)
            .bind(args.orders)
            .execute(pool)
            .await
            .with_context(|| sql.lines().next().unwrap_or_default().to_owned())?;
    }
    let kinds = [
        ("erp_totals_mismatch", "finance"),
        ("unmapped_sku", "operations"),
        ("shipment_refused", "customer_service"),
        ("erp_rejected", "engineering"),
    ];
    for (i, (kind, owner)) in kinds.iter().enumerate() {
        sqlx::query(
            "INSERT INTO exceptions (id, tenant, kind, owner, severity, dedupe_key, message,
                                     reason, order_number, amount_minor, currency, service,
                                     payload, sla_due, first_seen, last_seen)
             SELECT gen_random_uuid(), $1, $2, $3, 'error', 'order:' || n || ':' || $2,
                    'Order ' || n || ' needs ' || $3, 'planted by the benchmark',
                    n, 10000 + n % 90000, 'SEK', 'bench', '\\x', now() + (n % 100 - 10) * interval '1 hour',
                    now() - interval '1 hour', now() - interval '1 hour'
             FROM generate_series($4::bigint, $5::bigint, 4) AS g(k),
                  LATERAL (SELECT 1 + (k * 7919) % $6::bigint AS n) o",
        )
        .bind(TENANT)
        .bind(kind)
        .bind(owner)
        .bind(i as i64)
        .bind(args.exceptions - 1)
        .bind(args.orders)
        .execute(pool)
        .await
        .context("exceptions")?;
    }
    sqlx::query(
        "INSERT INTO exception_audit (exception_id, tenant, actor, action, note)
         SELECT id, tenant, 'anna@brand', a.action, 'planted'
         FROM exceptions, (VALUES ('assign'), ('comment')) AS a(action)
         WHERE tenant = $1",
    )
    .bind(TENANT)
    .execute(pool)
    .await
    .context("audit")?;
    sqlx::query("ANALYZE").execute(pool).await?;
    Ok(())
}
