//! `ferry bench chaos`: Ferry under real faults. Every service runs as its own OS process
//! (two replicas each, as the chart runs them) against a nats-server with
//! `sync_interval: always` and a PostgreSQL with fsync on, both simulators in this
//! process. Orders arrive with 30 % of webhooks lost and the rest duplicated and
//! reordered; meanwhile service processes are killed with SIGKILL and started again,
//! nats-server and PostgreSQL are killed and restarted, the ERP goes down for a long
//! outage, Centra throws 429 storms, the warehouse ships orders and stock changes, and a
//! third of what is shipped comes back (returns completed in Centra). At the
//! end the run proves from Centra, the ERP and the ledger that nothing was lost or done
//! twice (ADR 0034).

mod fleet;
mod rig;
pub mod soak;
mod verdict;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use ferry_sim_centra::{OrderMix, WebhookConfig};
use ferry_testing::infra::owned;
use rand::{Rng, SeedableRng};

use rig::{Rig, RigSpec, TENANT, change_stock, return_new, ship_new};
pub use verdict::Verdict;

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
    /// Returns completed in Centra during the run (each must become one credit note).
    pub returns: usize,
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
    let mut rig = Rig::start(RigSpec {
        name: "chaos",
        seed: args.seed,
        skus: args.skus,
        replicas: args.replicas,
        centra_requests_per_10s: 5_000,
        // 100,000 orders need ~0.5 GB of the CENTRA stream.
        stream_gib: 1,
        exe: args.exe.clone(),
        observe,
    })
    .await?;
    let mut rng = rand::rngs::StdRng::seed_from_u64(args.seed);
    change_stock(&mut rig.world, &mut rng, usize::MAX);
    let mut webhooks = WebhookConfig {
        drop_per_mille: 300,
        duplicate_per_mille: 1000,
        reorder_per_mille: 300,
        ..rig.webhooks.clone()
    };
    rig.send_webhooks(webhooks.clone());

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
        returns: 0,
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
    while begun.elapsed() < phase || rig.world.orders.len() < args.orders {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = begun.elapsed();
        let due = ((now.as_secs_f64() * args.rate as f64) as usize).min(args.orders);
        if due > rig.world.orders.len() {
            let made = rig
                .world
                .centra
                .generate(due - rig.world.orders.len(), &mix);
            rig.world.orders.extend(made);
        }
        if now.as_secs() > last_second {
            last_second = now.as_secs();
            ship_new(&mut rig.world, usize::MAX);
            return_new(&mut rig.world, usize::MAX);
            change_stock(&mut rig.world, &mut rng, 3);
        }
        if now >= next_kill && now < phase {
            next_kill += Duration::from_millis(args.kill_every_ms);
            let services = crate::stack::SERVICES;
            let service = services[report.kills % services.len()];
            let candidates: Vec<usize> = (0..rig.fleet.replicas.len())
                .filter(|&i| rig.fleet.replicas[i].service == service)
                .collect();
            let victim = candidates[rng.random_range(0..candidates.len())];
            rig.fleet.kill_and_restart(victim).await?;
            report.kills += 1;
            hit.insert(service);
            if service == ferry_ingest::SERVICE {
                // As a Service routes around a pod that went: webhooks go to the other.
                if let Some(url) = rig.fleet.webhook_url(TENANT, Some(victim)) {
                    webhooks.url = url;
                    rig.send_webhooks(webhooks.clone());
                }
            }
        }
        if broker_at.first().is_some_and(|t| now >= *t) {
            broker_at.remove(0);
            owned::kill_hard(rig.nats.pid);
            tokio::task::block_in_place(|| rig.nats.restart())?;
            report.broker_restarts += 1;
            eprintln!("chaos: nats-server killed and started again at {now:?}");
        }
        if db_at.first().is_some_and(|t| now >= *t) {
            db_at.remove(0);
            if let Some(pid) = rig.pg.pid() {
                owned::kill_hard(pid);
            }
            tokio::task::block_in_place(|| {
                let deadline = Instant::now() + Duration::from_secs(10);
                while rig.pg.exited().is_none() && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(20));
                }
                rig.pg.restart()
            })?;
            report.db_restarts += 1;
            eprintln!("chaos: PostgreSQL killed and started again at {now:?}");
        }
        if outage_at.is_some_and(|t| now >= t) {
            outage_at = None;
            rig.world.erp.set_faults(ferry_sim_erp::Faults {
                down_for_ms: outage.as_millis() as u64,
                ..rig.naive.clone()
            });
            eprintln!("chaos: the ERP is down for {outage:?} from {now:?}");
        }
        if storms_at.first().is_some_and(|t| now >= *t) {
            storms_at.remove(0);
            rig.world.centra.set_faults(ferry_sim_centra::Faults {
                storm_ms: 2_000,
                ..Default::default()
            });
            report.centra_storms += 1;
        }
        report.crashes += rig.fleet.restart_crashed()?;
    }
    let last_order = Instant::now();
    eprintln!(
        "chaos: {} orders in {:.0} s, {} kills; converging",
        rig.world.orders.len(),
        begun.elapsed().as_secs_f64(),
        report.kills
    );

    // Faults over: everything must arrive, once.
    let deadline = Instant::now() + Duration::from_secs(args.settle_secs);
    let mut next_progress = Instant::now() + Duration::from_secs(30);
    let verdict = loop {
        ship_new(&mut rig.world, usize::MAX);
        return_new(&mut rig.world, usize::MAX);
        report.crashes += rig.fleet.restart_crashed()?;
        let v = rig.world.judge().await;
        if v.clean() || Instant::now() > deadline {
            break v;
        }
        if Instant::now() >= next_progress {
            next_progress += Duration::from_secs(30);
            eprintln!(
                "chaos: {:>5.0} s after the last order: {v:?}",
                last_order.elapsed().as_secs_f64()
            );
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    };
    report.converged_secs = round1(last_order.elapsed().as_secs_f64());
    report.verdict = verdict;
    report.services_hit = hit.len();
    report.shipments = rig.world.shipped.len();
    report.returns = rig.world.returns.len();
    report.seconds = round1(rig.started.elapsed().as_secs_f64());

    let evidence = rig.finish(observe).await?;
    Ok((report, evidence))
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}
