//! `ferry up`: the whole of Ferry on this machine, with sample orders flowing from the
//! Centra simulator through ingest, transform and the erp-writer into the ERP simulator.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use ferry_sim_centra::OrderMix;

use crate::stack::{LocalInfra, Stack, StackOptions, local_config};

#[derive(clap::Args, Debug)]
pub struct UpArgs {
    /// Sample orders created per second in the Centra simulator (0: none).
    #[arg(long, default_value_t = 2)]
    pub orders_per_sec: u32,
    /// Stop after this many seconds (default: run until Ctrl-C).
    #[arg(long)]
    pub duration: Option<u64>,
    /// Where nats-server and PostgreSQL keep their data (default: a fresh temp directory).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// A configuration file layered over the defaults (tenants in it are started too; a
    /// tenant's `centra.url` or HTTP `erp.url` of `http://simulator` points at the simulators).
    #[arg(long, env = "FERRY_CONFIG")]
    pub config: Option<PathBuf>,
    /// The demo tenant's ERP: the ERP simulator, or a real Tryton started by
    /// `scripts/tryton.sh` (installed on first use, about two minutes).
    #[arg(long, value_enum, default_value = "simulator")]
    pub erp: ErpChoice,
    /// Log lines from the services at this level and above (`RUST_LOG` for more detail).
    #[arg(long, default_value = "warn")]
    pub log: String,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErpChoice {
    Simulator,
    Tryton,
}

pub async fn run(args: UpArgs) -> anyhow::Result<()> {
    let fresh = args.data_dir.is_none();
    let dir = args
        .data_dir
        .clone()
        .unwrap_or_else(|| std::env::temp_dir().join(format!("ferry-up-{}", std::process::id())));
    println!(
        "ferry up: starting nats-server and PostgreSQL in {}",
        dir.display()
    );
    let mut infra = LocalInfra::start(dir.clone()).await?;
    let mut config = match &args.config {
        Some(path) => crate::config::load(Some(path))?,
        None => local_config(&infra)?,
    };
    config.nats.url = infra.nats_url.clone();
    config.database.url = secrecy::SecretString::from(infra.database_url.clone());
    // A newcomer sees the services come up and the status line; the services' own log
    // lines from warnings up (RUST_LOG, where set, says otherwise).
    // PostgreSQL's notices are left out: a ROLLBACK that finds its transaction already
    // ended by a cancelled commit at shutdown says so at WARNING, which asks nothing of
    // anyone.
    if std::env::var("RUST_LOG").is_err() {
        config.telemetry.log_filter = format!("{},sqlx::postgres::notice=error", args.log);
    }
    let tryton = match args.erp {
        ErpChoice::Simulator => None,
        ErpChoice::Tryton => Some(start_tryton().await?),
    };
    let mut options = StackOptions {
        // All three sources, as production runs them: webhooks (with Centra's real
        // unreliability), the Events queue, and the resync safety net.
        centra_events: true,
        resync_interval: std::time::Duration::from_secs(30),
        returns_recheck: std::time::Duration::from_secs(60),
        // A brand taking orders around the clock asks Centra for more than a fresh
        // instance's 20 requests per 10 s; ingest, fulfilment and inventory share it.
        centra_requests_per_10s: 200,
        ..StackOptions::default()
    };
    if let Some(t) = &tryton {
        options.erp = Some(ferry_config::ErpConfig::new(
            "tryton",
            serde_json::json!({
                "url": t.infra.url, "user": t.infra.user, "password": t.infra.password,
                "confirm": true, "carrier": "PostNord", "reference_prefix": "demo-",
            }),
        ));
        // Tryton's warehouse is `WH`; it feeds Centra's warehouse 1.
        options.inventory.warehouses = [("WH".to_owned(), 1)].into();
    }
    let stack = Stack::start(config, options)
        .await
        .context("starting Ferry")?;
    for service in crate::stack::SERVICES {
        println!("  {service:<22} ready");
    }
    let store = ferry_store::Store::connect(&stack.config.database).await?;
    // A token to try the operations API with: every tenant, every action.
    let (_, token) = crate::tokens::create(
        &store,
        "demo-admin",
        ferry_ops::access::Role::Admin,
        &["*".to_owned()],
    )
    .await?;
    print_map(&stack, &infra, tryton.as_ref(), &token);

    let shutdown = ferry_runtime::shutdown::on_signals();
    if let Some(seconds) = args.duration {
        let stop = shutdown.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(seconds)).await;
            stop.cancel();
        });
    }
    let mix = OrderMix {
        hold_pct: 3,
        pending_pct: 10,
        ..OrderMix::default()
    };
    // The ERP's opening stock: 200 of every catalogue size; the pusher sets Centra from it.
    let catalogue: Vec<String> = ferry_sim_centra::generate::sizes()
        .into_iter()
        .map(|s| s.sku)
        .collect();
    let opening: Vec<ferry_sim_erp::StockLevel> = catalogue
        .iter()
        .map(|sku| ferry_sim_erp::StockLevel {
            erp_item: sku.clone(),
            warehouse: ferry_sim_erp::SALES_WAREHOUSE.to_owned(),
            available: 200,
        })
        .collect();
    if tryton.is_none() {
        stack.erp.set_stock(&opening);
    }
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut seconds: u64 = 0;
    let mut shipped = std::collections::HashSet::new();
    let mut failed = None;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tick.tick() => {}
        }
        seconds += 1;
        if args.orders_per_sec > 0 {
            stack.centra.generate(args.orders_per_sec as usize, &mix);
        }
        if seconds.is_multiple_of(5) {
            // Shop staff confirm pending orders now and then; Ferry releases them.
            stack.centra.state.confirm_pending();
            // The warehouse ships what reached the ERP simulator; fulfilment tells Centra.
            // (In Tryton the warehouse ships from Tryton's own screens.)
            if tryton.is_none() {
                ship_new_orders(&stack, &mut shipped);
            }
        }
        if seconds.is_multiple_of(10) && tryton.is_none() {
            // The warehouse recounts three sizes (deliveries, corrections): new ERP levels.
            let at = (seconds / 10) as usize;
            let counted: Vec<String> = (0..3)
                .map(|i| catalogue[(at * 7 + i * 13) % catalogue.len()].clone())
                .collect();
            stack.erp.generate_stock_changes(
                &counted,
                counted.len(),
                ferry_sim_erp::SALES_WAREHOUSE,
                seconds,
            );
        }
        // Our servers are watched: one that died is started again where it was; if it
        // cannot be, the run stops saying why.
        match tokio::task::block_in_place(|| infra.revive()) {
            Ok(revived) => {
                for line in revived {
                    println!("ferry up: {line}");
                }
            }
            Err(e) => {
                println!("ferry up: {e:#}; stopping");
                failed = Some(e);
                break;
            }
        }
        if seconds.is_multiple_of(10) {
            print_status(&stack, &store).await;
        }
    }
    println!("ferry up: stopping");
    print_status(&stack, &store).await;
    store.pool().close().await;
    stack.shutdown().await;
    drop(tryton);
    infra.stop();
    if fresh {
        let _ = std::fs::remove_dir_all(&dir);
    }
    failed.map_or(Ok(()), Err)
}

fn print_map(
    stack: &Stack,
    infra: &LocalInfra,
    tryton: Option<&ferry_testing::PrivateTryton>,
    token: &str,
) {
    let tenant = stack.tenant();
    println!();
    println!("Ferry is running (tenant `{tenant}`). Where to look:");
    println!(
        "  ops (livez, readyz, metrics)  http://{}/metrics",
        stack.ops_addr
    );
    println!("  console                       {}", stack.console_url);
    println!("    sign in with the access key {token} (demo-admin)");
    println!("  webhook endpoint              {}", stack.webhook_url);
    println!("  operations API (gRPC)         {}", stack.api_url);
    println!(
        "    try: FERRY_API__URL={} FERRY_API__TOKEN={token} ferry exceptions list",
        stack.api_url
    );
    println!(
        "  Centra simulator (GraphQL)    {}  (token: sim-token)",
        stack.centra.graphql_url()
    );
    match tryton {
        Some(t) => println!(
            "  ERP: Tryton                   {}  (user {}, sales with reference demo-<order>)",
            t.infra.url, t.infra.user
        ),
        None => println!(
            "  ERP simulator                 {}/admin/stats",
            stack.erp.url()
        ),
    }
    println!(
        "  NATS                          {}  (prefix `{}`)",
        infra.nats_url, stack.config.nats.prefix
    );
    println!("  PostgreSQL                    {}", infra.database_url);
    println!(
        "  ledger                        psql {} -c 'select state, count(*) from order_ledger group by 1'",
        infra.database_url
    );
    println!("Press Ctrl-C to stop.");
    println!();
}

/// Ships every ERP sales order not shipped yet, with a tracking number, as a warehouse would.
fn ship_new_orders(stack: &Stack, shipped: &mut std::collections::HashSet<String>) {
    for order in stack.erp.orders() {
        if shipped.insert(order.external_ref.clone()) {
            let _ = stack.erp.ship(ferry_sim_erp::ShipRequest {
                tracking_number: Some(format!("PN{}SE", order.external_ref)),
                external_ref: order.external_ref,
                lines: None,
                carrier: Some("PostNord".into()),
            });
        }
    }
}

async fn print_status(stack: &Stack, store: &ferry_store::Store) {
    let tenant = stack.tenant();
    let (states, ledger_error) = match store.count_by_state(tenant).await {
        Ok(states) => (states, None),
        Err(e) => (Vec::new(), Some(e)),
    };
    let mut by_kind: std::collections::BTreeMap<String, usize> = std::collections::BTreeMap::new();
    for e in store.open_exceptions(tenant).await.unwrap_or_default() {
        *by_kind.entry(e.kind).or_insert(0) += 1;
    }
    let exceptions = if by_kind.is_empty() {
        "0".to_owned()
    } else {
        by_kind
            .iter()
            .map(|(k, n)| format!("{k} {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let posted = states
        .iter()
        .find(|(s, _)| s == "posted")
        .map_or(0, |(_, n)| *n);
    let states: Vec<String> = states.iter().map(|(s, n)| format!("{s} {n}")).collect();
    let (stock_calls, selling_out) = stack.centra.state.ops(|o| {
        let ours = o
            .stock_changes
            .iter()
            .filter(|c| c.description.starts_with("Ferry"));
        (
            ours.clone().count(),
            ours.filter(|c| c.description.contains("selling out"))
                .count(),
        )
    });
    println!(
        "orders in Centra {} | ledger: {} | posted to the ERP {} | shipping e-mails {} | stock pushes {} ({} selling out) | open exceptions {}",
        stack.centra.state.order_count(),
        if let Some(e) = ledger_error {
            format!("unreachable ({e})")
        } else if states.is_empty() {
            "empty".to_owned()
        } else {
            states.join(", ")
        },
        posted,
        stack.centra.state.ops(|o| o
            .emails
            .iter()
            .filter(|e| e.kind == ferry_sim_centra::ops::EmailKind::ShippingConfirmation)
            .count()),
        stock_calls,
        selling_out,
        exceptions
    );
}

/// Prepares (first time: installs) and starts the project's Tryton for the demo tenant.
async fn start_tryton() -> anyhow::Result<ferry_testing::PrivateTryton> {
    println!("ferry up: starting Tryton (the first time installs it, about two minutes)");
    let script = ferry_testing::infra::workspace_root().join("scripts/tryton.sh");
    let prepared = tokio::process::Command::new(&script)
        .arg("prepare")
        .status()
        .await
        .with_context(|| format!("running {}", script.display()))?;
    anyhow::ensure!(prepared.success(), "scripts/tryton.sh prepare failed");
    tokio::task::spawn_blocking(|| ferry_testing::PrivateTryton::start(false))
        .await?
        .map_err(|e| anyhow::anyhow!("starting Tryton: {e}"))
}
