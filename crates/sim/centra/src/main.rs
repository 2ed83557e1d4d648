//! `ferry-sim-centra`: the Centra simulator on its own, for demos and for pointing a
//! Ferry deployment at something Centra-shaped. Prints its URLs, runs until Ctrl-C.

use std::net::SocketAddr;

use anyhow::Context as _;
use clap::Parser;
use ferry_sim_centra::{CentraSim, OrderMix, Plan, Quotas, SimConfig, WebhookConfig};
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(version, about = "A Centra Integration API simulator")]
struct Args {
    /// Where to listen (port 0: a free port).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Seed of the order generator.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Orders to generate at start.
    #[arg(long, default_value_t = 100)]
    orders: usize,
    /// Send webhooks here (Centra's Webhook plugin URL).
    #[arg(long)]
    webhook_url: Option<String>,
    /// The webhook secret (unsigned webhooks without it).
    #[arg(long, env = "FERRY_SIM_WEBHOOK_SECRET", default_value = "")]
    webhook_secret: String,
    /// Lift every rate limit (benchmarks).
    #[arg(long)]
    unlimited: bool,
    /// The Centra plan whose documented quotas the simulator enforces.
    #[arg(long, value_enum, default_value = "growth")]
    plan: PlanArg,
    /// A markets file (the format of `crates/sim/centra/markets.toml`) instead of the
    /// embedded markets.
    #[arg(long)]
    markets: Option<std::path::PathBuf>,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum PlanArg {
    Fresh,
    Growth,
    Enterprise,
}

impl From<PlanArg> for Plan {
    fn from(p: PlanArg) -> Plan {
        match p {
            PlanArg::Fresh => Plan::Fresh,
            PlanArg::Growth => Plan::Growth,
            PlanArg::Enterprise => Plan::Enterprise,
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let shutdown = CancellationToken::new();
    let markets = match &args.markets {
        Some(path) => Some(
            ferry_sim_centra::generate::parse_markets(
                &std::fs::read_to_string(path)
                    .with_context(|| format!("reading {}", path.display()))?,
            )
            .with_context(|| format!("{}", path.display()))?,
        ),
        None => None,
    };
    let sim = CentraSim::start(
        SimConfig {
            listen: args.listen,
            seed: args.seed,
            quotas: if args.unlimited {
                Quotas::unlimited()
            } else {
                Quotas::plan(args.plan.into())
            },
            markets,
            ..SimConfig::default()
        },
        shutdown.clone(),
    )
    .await
    .context("starting the simulator")?;
    if let Some(url) = args.webhook_url {
        sim.configure_webhooks(Some(WebhookConfig {
            url,
            secret: args.webhook_secret,
            ..WebhookConfig::default()
        }));
    }
    sim.generate(args.orders, &OrderMix::default());
    println!("Centra simulator");
    println!("  GraphQL  {}   (token: sim-token)", sim.graphql_url());
    println!("  admin    {}/admin/…   (see docs/centra.md)", sim.url());
    println!("  orders   {}", sim.state.order_count());
    tokio::signal::ctrl_c()
        .await
        .context("waiting for Ctrl-C")?;
    shutdown.cancel();
    Ok(())
}
