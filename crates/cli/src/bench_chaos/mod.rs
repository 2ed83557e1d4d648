//! `ferry bench chaos`: Ferry under real faults. Every service runs as its own OS process
//! (two replicas each, as the chart runs them) against a nats-server with
//! `sync_interval: always` and a PostgreSQL with fsync on, both simulators in this
//! process. Orders arrive with 30 % of webhooks lost and the rest duplicated and
//! reordered; meanwhile service processes are killed with SIGKILL and started again,
//! nats-server and PostgreSQL are killed and restarted, the ERP goes down for a long
//! outage, Centra throws 429 storms, the warehouse ships orders and stock changes. At the
//! end the run proves from Centra, the ERP and the ledger that nothing was lost or done
//! twice (ADR 0034).

mod fleet;
mod verdict;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use ferry_sim_centra::{CentraSim, OrderMix, SimConfig, WebhookConfig};
use ferry_sim_erp::{ErpSim, ShipRequest};
use ferry_testing::infra::{self, NatsOptions, PostgresOptions, owned};
use rand::{Rng, SeedableRng};
use tokio_util::sync::CancellationToken;

pub use verdict::Verdict;

const TENANT: &str = "chaos";

#[derive(clap::Args, Debug, Clone)]
pub struct ChaosArgs {
    /// Orders Centra takes during the run.
    #[arg(long, default_value_t = 2_000)]
    pub orders: usize,
    /// Orders created per second.
    #[arg(long, default_value_t = 50)]
    pub rate: usize,
    /// Milliseconds between two service kills (SIGKILL, then started again).
    #[arg(long, default_value_t = 2_000)]
    pub kill_every_ms: u64,
    /// Times nats-server is killed (SIGKILL) and started again, spread over the run.
    #[arg(long, default_value_t = 3)]
    pub broker_restarts: usize,
    /// Times PostgreSQL is killed (SIGKILL) and started again.
    #[arg(long, default_value_t = 1)]
    pub db_restarts: usize,
    /// Replicas of each service.
    #[arg(long, default_value_t = 2)]
    pub replicas: usize,
    /// Sizes whose ERP stock changes during the run.
    #[arg(long, default_value_t = 40)]
    pub skus: usize,
    /// How long, after the faults end, the run may take to converge.
    #[arg(long, default_value_t = 300)]
    pub settle_secs: u64,
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// The `ferry` binary the services run as (default: this one).
    #[arg(long)]
    pub exe: Option<PathBuf>,
}

/// The last line: what was done to Ferry and what it proved.
#[derive(Debug, serde::Serialize)]
pub struct ChaosReport {
    pub orders: usize,
    pub kills: usize,
    pub broker_restarts: usize,
    pub db_restarts: usize,
    /// What the sources say (lost, duplicates, shipments missing, stock diverged, …).
    #[serde(flatten)]
    pub verdict: Verdict,
    pub seconds: f64,
    /// Service processes that ended without being killed.
    pub crashes: usize,
    /// Services killed at least once.
    pub services_hit: usize,
    pub shipments: usize,
    pub erp_outage_secs: u64,
    pub centra_storms: usize,
    /// From the last order created to every check passing.
    pub converged_secs: f64,
}

impl ChaosReport {
    pub fn clean(&self) -> bool {
        self.verdict.clean() && self.crashes == 0
    }
}

/// What a run lets a test see of it (by default: warnings only, no traces, nothing kept).
#[derive(Debug, Clone)]
pub struct Observe {
    /// The services' log filter (their lines go to `<service>-<replica>.log`).
    pub log_filter: String,
    /// Where the services send their traces.
    pub otlp_endpoint: Option<String>,
    /// Where the services' log files are copied at the end.
    pub keep_logs: Option<PathBuf>,
}

impl Default for Observe {
    fn default() -> Self {
        Self {
            log_filter: "warn".to_owned(),
            otlp_endpoint: None,
            keep_logs: None,
        }
    }
}

/// What must never appear in a log line or a span: the run's secrets and the personal data
/// of every customer whose order went through.
#[derive(Debug, Default)]
pub struct Evidence {
    pub secrets: Vec<String>,
    pub personal: Vec<String>,
    /// Centra's order numbers (which logs and spans may carry).
    pub orders: Vec<i64>,
}

pub async fn chaos(args: ChaosArgs) -> anyhow::Result<()> {
    let report = run(&args).await?;
    println!("{}", serde_json::to_string(&report)?);
    anyhow::ensure!(report.clean(), "the chaos run found a fault: {report:?}");
    Ok(())
}

/// The world the services run in.
struct World {
    centra: CentraSim,
    erp: ErpSim,
    store: ferry_store::Store,
    orders: Vec<i64>,
    shipped: Vec<String>,
    stock: BTreeMap<String, i64>,
    skus: Vec<String>,
}

pub async fn run(args: &ChaosArgs) -> anyhow::Result<ChaosReport> {
    run_observed(args, &Observe::default())
        .await
        .map(|(report, _)| report)
}

/// [`run`], observed as `observe` says; also returns what must not have leaked.
pub async fn run_observed(
    args: &ChaosArgs,
    observe: &Observe,
) -> anyhow::Result<(ChaosReport, Evidence)> {
    let started = Instant::now();
    let dir = std::env::temp_dir().join(format!("ferry-chaos-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let mut nats = tokio::task::block_in_place(|| {
        infra::start_nats_with(
            &dir.join("nats"),
            NatsOptions {
                sync_always: true,
                ..NatsOptions::default()
            },
        )
    })?;
    let mut pg = tokio::task::block_in_place(|| {
        infra::start_postgres_with(
            &dir.join("pg"),
            PostgresOptions {
                durable: true,
                ..PostgresOptions::default()
            },
        )
    })?;
    let sims = CancellationToken::new();
    let quotas = ferry_sim_centra::Quotas {
        mutation_count_10s: 100_000,
        mutation_count_1h: 10_000_000,
        ..crate::stack::sim_quotas(5_000)
    };
    // Distinctive secrets, so a test can look for them in every log line and span.
    let token = format!("centra-token-{:032x}", rand::random::<u128>());
    let centra = CentraSim::start(
        SimConfig {
            seed: args.seed,
            quotas,
            tokens: vec![ferry_sim_centra::ApiToken::all(&token, "ferry")],
            ..SimConfig::default()
        },
        sims.clone(),
    )
    .await?;
    let erp = ErpSim::start(([127, 0, 0, 1], 0).into(), sims.clone()).await?;
    let naive = ferry_sim_erp::Faults {
        // Any double post would be a second document.
        ignore_idempotency_key: true,
        ..Default::default()
    };
    erp.set_faults(naive.clone());
    let secret = format!("whsec-{:032x}", rand::random::<u128>());
    let shared = shared_config(
        &Shared {
            nats: &nats.url,
            database: &pg.url,
            centra: &centra,
            erp: &erp,
            token: &token,
            secret: &secret,
            quotas: &quotas,
        },
        observe,
    );
    let mut config = crate::config::load(None)?;
    config.database.url = secrecy::SecretString::from(pg.url.clone());
    let store = ferry_store::Store::connect(&config.database).await?;
    store.migrate().await?;

    let exe = match &args.exe {
        Some(exe) => exe.clone(),
        None => std::env::current_exe()?,
    };
    let mut fleet =
        fleet::Fleet::start(&exe, &dir, &shared, &crate::stack::SERVICES, args.replicas).await?;
    fleet.ready(Duration::from_secs(120)).await?;
    eprintln!(
        "chaos: {} service processes ready in {:.1} s",
        fleet.replicas.len(),
        started.elapsed().as_secs_f64()
    );

    let skus: Vec<String> = centra.state.ops_mut(|o| {
        let end = o.add_synthetic_sizes(args.skus, 0);
        o.sizes[end - args.skus..end]
            .iter()
            .map(|s| s.sku.clone())
            .collect()
    });
    let mut world = World {
        centra,
        erp,
        store,
        orders: Vec::new(),
        shipped: Vec::new(),
        stock: BTreeMap::new(),
        skus,
    };
    let mut rng = rand::rngs::StdRng::seed_from_u64(args.seed);
    change_stock(&mut world, &mut rng, usize::MAX);
    let mut webhooks = WebhookConfig {
        url: fleet
            .webhook_url(TENANT, None)
            .context("an ingest replica")?,
        secret: secret.clone(),
        drop_per_mille: 300,
        duplicate_per_mille: 1000,
        reorder_per_mille: 300,
        ..WebhookConfig::default()
    };
    world.centra.configure_webhooks(Some(webhooks.clone()));

    // The faults, spread over the time the orders take (at least long enough for the
    // kills asked for).
    let phase = Duration::from_secs_f64((args.orders as f64 / args.rate.max(1) as f64).max(20.0));
    let at = |share: f64| phase.mul_f64(share);
    let mut broker_at: Vec<Duration> = (1..=args.broker_restarts)
        .map(|i| at(i as f64 / (args.broker_restarts + 1) as f64))
        .collect();
    let mut db_at: Vec<Duration> = (1..=args.db_restarts)
        .map(|i| at(i as f64 / (args.db_restarts + 1) as f64 + 0.07))
        .collect();
    let outage = at(0.2).min(Duration::from_secs(120));
    let mut outage_at = Some(at(0.3));
    let mut storms_at = vec![at(0.15), at(0.55), at(0.85)];
    let mut report = ChaosReport {
        orders: args.orders,
        kills: 0,
        broker_restarts: 0,
        db_restarts: 0,
        verdict: Verdict::default(),
        seconds: 0.0,
        crashes: 0,
        services_hit: 0,
        shipments: 0,
        erp_outage_secs: outage.as_secs(),
        centra_storms: 0,
        converged_secs: 0.0,
    };
    let mut hit = std::collections::BTreeSet::new();
    // Kills go round the services, a random replica of each, so every service is hit.
    let mut next_kill = Duration::from_millis(args.kill_every_ms);
    let mix = OrderMix {
        hold_pct: 0,
        pending_pct: 0,
        ..OrderMix::default()
    };
    let begun = Instant::now();
    let mut last_second = 0;
    while begun.elapsed() < phase || world.orders.len() < args.orders {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = begun.elapsed();
        let due = ((now.as_secs_f64() * args.rate as f64) as usize).min(args.orders);
        if due > world.orders.len() {
            let made = world.centra.generate(due - world.orders.len(), &mix);
            world.orders.extend(made);
        }
        if now.as_secs() > last_second {
            last_second = now.as_secs();
            ship_new(&mut world);
            change_stock(&mut world, &mut rng, 3);
        }
        if now >= next_kill && now < phase {
            next_kill += Duration::from_millis(args.kill_every_ms);
            let services = crate::stack::SERVICES;
            let service = services[report.kills % services.len()];
            let candidates: Vec<usize> = (0..fleet.replicas.len())
                .filter(|&i| fleet.replicas[i].service == service)
                .collect();
            let victim = candidates[rng.random_range(0..candidates.len())];
            fleet.kill_and_restart(victim).await?;
            report.kills += 1;
            hit.insert(service);
            if service == ferry_ingest::SERVICE {
                // As a Service routes around a pod that went: webhooks go to the other.
                if let Some(url) = fleet.webhook_url(TENANT, Some(victim)) {
                    webhooks.url = url;
                    world.centra.configure_webhooks(Some(webhooks.clone()));
                }
            }
        }
        if broker_at.first().is_some_and(|t| now >= *t) {
            broker_at.remove(0);
            owned::kill_hard(nats.pid);
            tokio::task::block_in_place(|| nats.restart())?;
            report.broker_restarts += 1;
            eprintln!("chaos: nats-server killed and started again at {now:?}");
        }
        if db_at.first().is_some_and(|t| now >= *t) {
            db_at.remove(0);
            if let Some(pid) = pg.pid() {
                owned::kill_hard(pid);
            }
            tokio::task::block_in_place(|| {
                let deadline = Instant::now() + Duration::from_secs(10);
                while pg.exited().is_none() && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(20));
                }
                pg.restart()
            })?;
            report.db_restarts += 1;
            eprintln!("chaos: PostgreSQL killed and started again at {now:?}");
        }
        if outage_at.is_some_and(|t| now >= t) {
            outage_at = None;
            world.erp.set_faults(ferry_sim_erp::Faults {
                down_for_ms: outage.as_millis() as u64,
                ..naive.clone()
            });
            eprintln!("chaos: the ERP is down for {outage:?} from {now:?}");
        }
        if storms_at.first().is_some_and(|t| now >= *t) {
            storms_at.remove(0);
            world.centra.set_faults(ferry_sim_centra::Faults {
                storm_ms: 2_000,
                ..Default::default()
            });
            report.centra_storms += 1;
        }
        report.crashes += fleet.restart_crashed()?;
    }
    let last_order = Instant::now();
    eprintln!(
        "chaos: {} orders in {:.0} s, {} kills; converging",
        world.orders.len(),
        begun.elapsed().as_secs_f64(),
        report.kills
    );

    // Faults over: everything must arrive, once.
    let deadline = Instant::now() + Duration::from_secs(args.settle_secs);
    let verdict = loop {
        ship_new(&mut world);
        report.crashes += fleet.restart_crashed()?;
        let v = verdict::judge(
            &world.centra,
            &world.erp,
            &world.store,
            TENANT,
            &world.orders,
            &world.shipped,
            &world.stock,
        )
        .await;
        if v.clean() || Instant::now() > deadline {
            break v;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    };
    report.converged_secs = round1(last_order.elapsed().as_secs_f64());
    report.verdict = verdict;
    report.services_hit = hit.len();
    report.shipments = world.shipped.len();
    report.seconds = round1(started.elapsed().as_secs_f64());

    fleet.stop().await;
    world.store.pool().close().await;
    let evidence = Evidence {
        secrets: vec![token, secret],
        personal: personal_data(&world),
        orders: world.orders.clone(),
    };
    sims.cancel();
    nats.stop();
    pg.stop();
    if let Some(keep) = &observe.keep_logs {
        std::fs::create_dir_all(keep)?;
        for entry in std::fs::read_dir(&dir)?.flatten() {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "log") {
                std::fs::copy(&path, keep.join(entry.file_name()))?;
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok((report, evidence))
}

/// Every customer's e-mail, full name, street addresses and phone numbers.
fn personal_data(world: &World) -> Vec<String> {
    let mut found = std::collections::BTreeSet::new();
    for number in &world.orders {
        if let Some(order) = world.centra.state.order(*number) {
            found.insert(order.customer.email.clone());
            found.insert(format!(
                "{} {}",
                order.customer.first_name, order.customer.last_name
            ));
            for address in [&order.shipping_address, &order.billing_address] {
                found.insert(address.address1.clone());
                found.insert(address.phone_number.clone());
                found.insert(address.email.clone());
            }
        }
    }
    found.into_iter().filter(|s| s.len() >= 6).collect()
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// The warehouse ships every order that reached the ERP, once, with a tracking number.
fn ship_new(world: &mut World) {
    let known: std::collections::HashSet<&String> = world.shipped.iter().collect();
    let fresh: Vec<String> = world
        .erp
        .orders()
        .into_iter()
        .map(|o| o.external_ref)
        .filter(|r| !known.contains(r))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    for reference in fresh {
        let shipped = world.erp.ship(ShipRequest {
            tracking_number: Some(verdict::tracking(&reference)),
            external_ref: reference.clone(),
            lines: None,
            carrier: Some("PostNord".into()),
        });
        if shipped.is_some() {
            world.shipped.push(reference);
        }
    }
}

/// The ERP counts `n` sizes again (all of them first): new levels Centra must converge to.
fn change_stock(world: &mut World, rng: &mut rand::rngs::StdRng, n: usize) {
    let count = n.min(world.skus.len());
    let levels: Vec<ferry_sim_erp::StockLevel> = (0..count)
        .map(|i| {
            let sku = if n >= world.skus.len() {
                world.skus[i].clone()
            } else {
                world.skus[rng.random_range(0..world.skus.len())].clone()
            };
            let available = rng.random_range(0..200);
            world.stock.insert(sku.clone(), available);
            ferry_sim_erp::StockLevel {
                erp_item: sku,
                warehouse: ferry_sim_erp::SALES_WAREHOUSE.to_owned(),
                available,
            }
        })
        .collect();
    world.erp.set_stock(&levels);
}

/// What the replicas' configuration is made of.
struct Shared<'a> {
    nats: &'a str,
    database: &'a str,
    centra: &'a CentraSim,
    erp: &'a ErpSim,
    token: &'a str,
    secret: &'a str,
    quotas: &'a ferry_sim_centra::Quotas,
}

/// The configuration every replica shares (each adds its own listen ports).
fn shared_config(s: &Shared<'_>, observe: &Observe) -> String {
    let otlp = observe
        .otlp_endpoint
        .as_ref()
        .map(|e| format!("otlp_endpoint = \"{e}\"\n"))
        .unwrap_or_default();
    let quotas = s.quotas;
    format!(
        r#"
[nats]
url = "{nats}"
prefix = "chaos"
[database]
url = "{database}"
max_connections = 6
[telemetry]
log_filter = "{filter}"
log_to_stderr = true
{otlp}
[reconciler]
grace = "20s"
recheck = "3s"
interval = "1s"
batch = 1000
erp_reads_in_flight = 32

[[tenants]]
id = "{TENANT}"
display_name = "Chaos Brand"
[tenants.centra]
url = "{centra}"
token = "{token}"
webhook_secret = "{secret}"
share_percent = 100
requests_per_10s = {r10}
requests_per_hour = {r1h}
complexity_per_10s = {c10}
complexity_per_hour = {c1h}
mutations_per_10s = {m10}
mutations_per_hour = {m1h}
events = true
events_poll = "2s"
resync_interval = "15s"
resync_overlap = "30s"
[tenants.erp]
kind = "http"
url = "{erp}"
[tenants.rules]
erp_item_equals_sku = true
[tenants.fulfilment]
poll_interval = "500ms"
[tenants.inventory]
warehouses = {{ "{warehouse}" = 1 }}
push_interval = "1s"
poll_interval = "500ms"
"#,
        nats = s.nats,
        database = s.database,
        filter = observe.log_filter,
        token = s.token,
        secret = s.secret,
        centra = s.centra.graphql_url(),
        erp = s.erp.url(),
        r10 = quotas.request_count_10s,
        r1h = quotas.request_count_1h,
        c10 = quotas.complexity_10s,
        c1h = quotas.complexity_1h,
        m10 = quotas.mutation_count_10s,
        m1h = quotas.mutation_count_1h,
        warehouse = ferry_sim_erp::SALES_WAREHOUSE,
    )
}
