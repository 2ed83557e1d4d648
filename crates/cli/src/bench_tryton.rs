//! The Tryton part of `ferry bench writer` (`--tryton-orders`, `--tryton-returns`,
//! `--tryton-changes`): orders, then credit notes for returns, then changes after posting,
//! sent to a real Tryton started by `scripts/tryton.sh` through the connector, first one by
//! one (the same run's baseline), then in batches.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use ferry_erp::{
    ChangeOrders, ChangeOutcome, CreditNotes, CreditOutcome, ErpError, LineKind, OrderChange,
    PostCredit, PostOrder, PostOrders,
};
use ferry_erp_tryton::Tryton;
use secrecy::ExposeSecret as _;

use crate::bench_writer::WriterArgs;
use crate::stack::Stack;

/// The PostgreSQL server of a database URL (`postgres://u@h:p/db` → `postgresql://u@h:p/`),
/// for Tryton to create its own database on.
fn server_url(database_url: &str) -> String {
    let rest = database_url
        .split_once("://")
        .map_or(database_url, |(_, rest)| rest);
    let server = rest.split(['/', '?']).next().unwrap_or(rest);
    format!("postgresql://{server}/")
}

/// Throughput into Tryton, batched and one by one, and where the batched time went.
#[derive(Debug, Default)]
pub struct Rate {
    pub per_min: f64,
    pub baseline_per_min: f64,
    pub failed: usize,
    /// Seconds of each Tryton call per item, in the batched run.
    pub seconds_per_item_by_call: BTreeMap<String, f64>,
}

#[derive(Debug, Default)]
pub struct TrytonRun {
    pub orders: Rate,
    pub returns: Rate,
    pub changes: Rate,
}

/// Starts Tryton, posts `--tryton-orders` (and `--tryton-baseline` one by one before them),
/// then credits `--tryton-returns` of the batched orders' first item lines and changes
/// `--tryton-changes` of them (the last item line removed, or the order cancelled), and
/// stops it.
pub async fn tryton(
    dir: &std::path::Path,
    stack: &Stack,
    args: &WriterArgs,
) -> anyhow::Result<TrytonRun> {
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
    let connector = Arc::new(Tryton::new(ferry_erp_tryton::TrytonConfig {
        reference_prefix: format!("bench{}-", std::process::id()),
        batch: args.tryton_batch.max(1),
        ..ferry_erp_tryton::TrytonConfig::new(
            value("FERRY_TRYTON_URL"),
            value("FERRY_TRYTON_USER"),
            secrecy::SecretString::from(value("FERRY_TRYTON_PASSWORD")),
        )
    }));
    let run = measure(&connector, stack, args).await;
    let _ = tokio::process::Command::new(&script)
        .arg("stop")
        .arg(&tryton_dir)
        .output()
        .await;
    run
}

async fn measure(
    connector: &Arc<Tryton>,
    stack: &Stack,
    args: &WriterArgs,
) -> anyhow::Result<TrytonRun> {
    let mut orders = generated_orders(stack, args.tryton_orders + args.tryton_baseline).await?;
    let batched = orders.split_off(args.tryton_baseline.min(orders.len()));
    let credits: Vec<PostCredit> = batched
        .iter()
        .take(args.tryton_returns)
        .enumerate()
        .filter_map(|(i, order)| first_line_back(order, i as i64 + 1))
        .collect();
    let changes: Vec<OrderChange> = batched
        .iter()
        .rev()
        .take(args.tryton_changes)
        .map(changed)
        .collect();
    let batch = args.tryton_batch;
    eprintln!(
        "tryton: {} orders one by one (the baseline), then {} in batches of {batch}",
        orders.len(),
        batched.len(),
    );
    let orders = rate(
        connector,
        "orders",
        orders,
        batched,
        batch,
        |c, items| async move {
            if items.len() > 1 {
                c.create_sales_orders(&items).await
            } else {
                vec![c.create_sales_order(&items[0]).await]
            }
        },
    )
    .await?;
    let returns = if credits.is_empty() {
        Rate::default()
    } else {
        let mut one_by_one = credits;
        let batched = one_by_one.split_off(args.tryton_baseline.min(one_by_one.len() / 2));
        rate(
            connector,
            "returns",
            one_by_one,
            batched,
            batch,
            |c, items| async move {
                let results = if items.len() > 1 {
                    c.create_credit_notes(&items).await
                } else {
                    vec![c.create_credit_note(&items[0]).await]
                };
                results
                    .into_iter()
                    .map(|r| match r {
                        Ok(CreditOutcome::Credited(d)) => Ok(d),
                        Ok(CreditOutcome::Refused(why)) => Err(ErpError::Rejected(why)),
                        Err(e) => Err(e),
                    })
                    .collect()
            },
        )
        .await?
    };
    let changes = if changes.is_empty() {
        Rate::default()
    } else {
        let mut one_by_one = changes;
        let batched = one_by_one.split_off(args.tryton_baseline.min(one_by_one.len() / 2));
        rate(
            connector,
            "changes",
            one_by_one,
            batched,
            batch,
            |c, items| async move {
                let results = if items.len() > 1 {
                    c.change_sales_orders(&items).await
                } else {
                    vec![c.change_sales_order(&items[0]).await]
                };
                results
                    .into_iter()
                    .map(|r| match r {
                        Ok(ChangeOutcome::Applied(d)) => Ok(d),
                        Ok(ChangeOutcome::Refused(why)) => Err(ErpError::Rejected(why)),
                        Err(e) => Err(e),
                    })
                    .collect()
            },
        )
        .await?
    };
    Ok(TrytonRun {
        orders,
        returns,
        changes,
    })
}

/// A change of a posted order: its last item line removed when it has two or more, else
/// the whole order cancelled.
fn changed(order: &PostOrder) -> OrderChange {
    let mut newer = order.clone();
    let items: Vec<usize> = (0..newer.lines.len())
        .filter(|&i| newer.lines[i].kind == LineKind::Item)
        .collect();
    let cancel = items.len() < 2;
    if let Some(&last) = items.last().filter(|_| !cancel) {
        let gone = newer.lines.remove(last);
        newer.gross_minor -= gone.gross_minor;
        newer.tax_minor -= gone.tax_minor;
    }
    OrderChange {
        change_id: format!("bench-{}", order.external_ref),
        erp_reference: String::new(),
        order: newer,
        cancel,
    }
}

/// Centra's generated orders as the writer would post them.
async fn generated_orders(stack: &Stack, n: usize) -> anyhow::Result<Vec<PostOrder>> {
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
    Ok(orders)
}

/// The whole first item line of `order` coming back (a return of the order's first item).
pub fn first_line_back(order: &PostOrder, return_id: i64) -> Option<PostCredit> {
    let line = order
        .lines
        .iter()
        .find(|l| l.kind == LineKind::Item && l.gross_minor > 0)?
        .clone();
    Some(PostCredit {
        tenant: order.tenant.clone(),
        external_ref: format!("{}-R{return_id}", order.external_ref),
        order_ref: order.external_ref.clone(),
        order_erp_reference: String::new(),
        return_id,
        currency: order.currency.clone(),
        date: "2026-12-07".into(),
        gross_minor: line.gross_minor,
        tax_minor: line.tax_minor,
        lines: vec![line],
        restock: true,
    })
}

/// `one_by_one` sent one per call (the baseline), then `batched` `batch` per call; where
/// the batched run's time went, per Tryton method.
async fn rate<T, F, Fut>(
    connector: &Arc<Tryton>,
    what: &str,
    one_by_one: Vec<T>,
    batched: Vec<T>,
    batch: usize,
    send: F,
) -> anyhow::Result<Rate>
where
    T: Send + 'static,
    F: Fn(Arc<Tryton>, Vec<T>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Vec<Result<ferry_erp::ErpDocument, ErpError>>> + Send,
{
    let (baseline_per_min, baseline_failed) =
        in_calls(connector, one_by_one, 1, send.clone()).await?;
    eprintln!("tryton: {what} one by one {baseline_per_min:.1}/min");
    let before = connector.rpc().timings();
    let items = batched.len().max(1);
    let (per_min, failed) = in_calls(connector, batched, batch, send).await?;
    eprintln!("tryton: {what} in batches {per_min:.1}/min");
    let mut by_call = BTreeMap::new();
    for (method, (calls, spent)) in connector.rpc().timings() {
        let (calls_before, spent_before) = before.get(&method).copied().unwrap_or_default();
        let seconds = (spent - spent_before).as_secs_f64();
        if calls > calls_before && seconds >= 0.001 {
            eprintln!(
                "tryton:   {method}: {} calls, {:.3} s per item",
                calls - calls_before,
                seconds / items as f64
            );
            by_call.insert(
                method.trim_start_matches("model.").to_owned(),
                (seconds / items as f64 * 1000.0).round() / 1000.0,
            );
        }
    }
    Ok(Rate {
        per_min,
        baseline_per_min,
        failed: failed + baseline_failed,
        seconds_per_item_by_call: by_call,
    })
}

/// Sends `items`, `batch` per call, four calls in flight (the writer's default for a
/// batching ERP); items per minute and how many failed.
async fn in_calls<T, F, Fut>(
    connector: &Arc<Tryton>,
    items: Vec<T>,
    batch: usize,
    send: F,
) -> anyhow::Result<(f64, usize)>
where
    T: Send + 'static,
    F: Fn(Arc<Tryton>, Vec<T>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Vec<Result<ferry_erp::ErpDocument, ErpError>>> + Send,
{
    let n = items.len();
    let started = Instant::now();
    let queue = Arc::new(std::sync::Mutex::new(items));
    let failed = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..4 {
        let (queue, connector, failed, send) = (
            queue.clone(),
            connector.clone(),
            failed.clone(),
            send.clone(),
        );
        workers.spawn(async move {
            loop {
                let next: Vec<T> = match queue.lock() {
                    Ok(mut q) => {
                        let at = q.len().saturating_sub(batch.max(1));
                        q.split_off(at)
                    }
                    Err(_) => Vec::new(),
                };
                if next.is_empty() {
                    return;
                }
                for result in send(connector.clone(), next).await {
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
