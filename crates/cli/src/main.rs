//! `ferry`: run everything locally (`up`), run one service (`run`, how Kubernetes runs
//! them), check what Ferry would post for an order (`transform`), reconcile a brand and
//! report a month (`reconcile`), and measure (`bench`).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand, ValueEnum};

// Many small allocations across threads (messages, JSON, protobuf): mimalloc handles them
// with far less contention than glibc's malloc (see docs/performance.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "ferry", version, about = "Keeps Centra and the ERP in step.")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run everything locally: a nats-server and PostgreSQL (unless FERRY_NATS__URL /
    /// FERRY_DATABASE__URL point elsewhere), the Centra and ERP simulators, every service,
    /// and sample orders flowing through them.
    #[cfg(feature = "dev")]
    Up(ferry::up::UpArgs),
    /// Run one service as its own process (one per pod in production).
    Run {
        service: Service,
        /// TOML configuration file (else $FERRY_CONFIG, then FERRY_* variables).
        #[arg(long, env = "FERRY_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Show what Ferry would post to the ERP for one Centra order snapshot.
    Transform(ferry::transform_cmd::TransformArgs),
    /// Talk to a brand's Centra.
    Centra {
        #[command(subcommand)]
        command: CentraCommand,
    },
    /// Check a brand's orders against Centra and the ERP now, or report a month.
    Reconcile {
        #[command(subcommand)]
        command: ferry::reconcile::ReconcileCommand,
    },
    /// Work the exceptions inbox through the operations API.
    Exceptions {
        #[command(subcommand)]
        command: ferry::exceptions::ExceptionsCommand,
    },
    /// Where is this order? Its journey through Ferry (the operations API).
    Order {
        #[command(subcommand)]
        command: ferry::orders::OrderCommand,
    },
    /// Run an order through today's mapping and rules: `--dry-run` shows the difference
    /// from what was posted; without it the order goes on (posted, or an amendment —
    /// never a second sales order).
    Replay(ferry::orders::ReplayArgs),
    /// The operations API's tokens (straight in the database: for administrators).
    Tokens {
        #[command(subcommand)]
        command: ferry::tokens::TokensCommand,
    },
    /// Manage a tenant's Centra SKU → ERP item mapping.
    Mapping {
        #[command(subcommand)]
        command: ferry::mapping::MappingCommand,
    },
    /// Benchmarks.
    #[cfg(feature = "dev")]
    Bench {
        #[command(subcommand)]
        bench: Bench,
    },
    /// Print a shell completion script: `ferry completions bash > /etc/bash_completion.d/ferry`.
    Completions { shell: clap_complete::Shell },
    /// Apply the database migrations and provision the JetStream streams, then exit (the
    /// chart runs it as a hook before the services start or are upgraded).
    Migrate {
        #[arg(long, env = "FERRY_CONFIG")]
        config: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum CentraCommand {
    /// Read-only first contact with a real Centra: schema (every operation Ferry sends
    /// validated against the instance's own), permissions the token lacks, quotas, and one
    /// recent order transformed as a dry run. Exits 1 when Ferry is not ready for it.
    Check(ferry::centra_check::CheckArgs),
}

#[cfg(feature = "dev")]
#[derive(Subcommand)]
enum Bench {
    /// End-to-end orders/s and latency (webhook accepted → ERP posted), against a bare
    /// JetStream 4-hop baseline measured in the same run.
    Pipeline(ferry::bench::PipelineArgs),
    /// Each service as its own process: time to ready and idle memory.
    Idle(ferry::bench::IdleArgs),
    /// Real faults: every service a process (two replicas), SIGKILLs, broker and database
    /// restarts, an ERP outage, 429 storms; proves nothing lost or doubled.
    Chaos(ferry::bench_chaos::ChaosArgs),
    /// An hour at a steady rate: every service's memory, descriptors and database
    /// connections flat once warmed up.
    Soak(ferry::bench_chaos::soak::SoakArgs),
    /// The Centra simulator at scale: a million orders, snapshot latency, requests/s.
    Centra(ferry::bench_centra::CentraArgs),
    /// The erp-writer draining a backlog into the ERP simulator, against a bare HTTP client
    /// baseline; optionally orders/min into a real Tryton.
    Writer(ferry::bench_writer::WriterArgs),
    /// ERP shipments to Centra: shipments/s with quotas raised against a bare-client
    /// baseline, and the ERP-shipped → Centra lag at the default quota.
    Fulfilment(ferry::bench_fulfilment::FulfilmentArgs),
    /// ERP stock to Centra: a million updates ingested and coalesced against a bare feed
    /// read, Centra calls per changed SKU, selling-out latency under a backlog.
    Inventory(ferry::bench_inventory::InventoryArgs),
    /// A full reconciliation sweep of a million orders with planted variances of every
    /// cause, against reading the three sources alone.
    Reconcile(ferry::bench_reconcile::ReconcileArgs),
    /// The operations API with a million orders and 100,000 open exceptions: a filtered
    /// page and an order's timeline, against the same reads from the store.
    Ops(ferry::bench_ops::OpsArgs),
    /// Completed Centra returns to ERP credit notes end to end, against a bare HTTP client
    /// making the same credit notes in the ERP simulator.
    Returns(ferry::bench_returns::ReturnsArgs),
}

#[derive(Clone, Copy, ValueEnum)]
enum Service {
    Ingest,
    Transform,
    #[value(name = "erp-writer")]
    ErpWriter,
    #[value(name = "fulfilment-feedback")]
    FulfilmentFeedback,
    #[value(name = "inventory-pusher")]
    InventoryPusher,
    Reconciler,
    /// The operations API (gRPC).
    Ops,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Completions are written from the command's own definition: no runtime needed.
    if let Command::Completions { shell } = &cli.command {
        use clap::CommandFactory as _;
        use std::io::Write as _;
        // Into memory first (clap_complete panics when its writer fails, e.g. a closed pipe).
        let mut script = Vec::new();
        clap_complete::generate(*shell, &mut Cli::command(), "ferry", &mut script);
        return match std::io::stdout().write_all(&script) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("ferry: writing the completion script: {e}");
                ExitCode::FAILURE
            }
        };
    }
    // `transform` is a pure function of its inputs: no runtime, no telemetry.
    if let Command::Transform(args) = &cli.command {
        return ferry::transform_cmd::run(args);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("ferry: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(dispatch(cli.command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ferry: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn dispatch(command: Command) -> anyhow::Result<()> {
    match command {
        #[cfg(feature = "dev")]
        Command::Up(args) => ferry::up::run(args).await,
        Command::Mapping { command } => ferry::mapping::run(command).await,
        Command::Exceptions { command } => ferry::exceptions::run(command).await,
        Command::Tokens { command } => ferry::tokens::run(command).await,
        Command::Order { command } => ferry::orders::run(command).await,
        Command::Replay(args) => ferry::orders::replay(args).await,
        Command::Reconcile { command } => ferry::reconcile::run(command).await,
        Command::Centra {
            command: CentraCommand::Check(args),
        } => ferry::centra_check::run(args).await,
        Command::Run { service, config } => run_service(service, config).await,
        #[cfg(feature = "dev")]
        Command::Bench {
            bench: Bench::Pipeline(args),
        } => ferry::bench::pipeline(args).await,
        #[cfg(feature = "dev")]
        Command::Bench {
            bench: Bench::Idle(args),
        } => ferry::bench::idle(args).await,
        #[cfg(feature = "dev")]
        Command::Bench {
            bench: Bench::Chaos(args),
        } => ferry::bench_chaos::chaos(args).await,
        #[cfg(feature = "dev")]
        Command::Bench {
            bench: Bench::Soak(args),
        } => ferry::bench_chaos::soak::soak(args).await,
        #[cfg(feature = "dev")]
        Command::Bench {
            bench: Bench::Centra(args),
        } => ferry::bench_centra::centra(args).await,
        #[cfg(feature = "dev")]
        Command::Bench {
            bench: Bench::Writer(args),
        } => ferry::bench_writer::writer(args).await,
        #[cfg(feature = "dev")]
        Command::Bench {
            bench: Bench::Fulfilment(args),
        } => ferry::bench_fulfilment::fulfilment(args).await,
        #[cfg(feature = "dev")]
        Command::Bench {
            bench: Bench::Inventory(args),
        } => ferry::bench_inventory::inventory(args).await,
        #[cfg(feature = "dev")]
        Command::Bench {
            bench: Bench::Reconcile(args),
        } => ferry::bench_reconcile::reconcile(args).await,
        #[cfg(feature = "dev")]
        Command::Bench {
            bench: Bench::Ops(args),
        } => ferry::bench_ops::ops(args).await,
        #[cfg(feature = "dev")]
        Command::Bench {
            bench: Bench::Returns(args),
        } => ferry::bench_returns::returns(args).await,
        Command::Migrate { config } => {
            let config = ferry::config::load(config.as_deref())?;
            let store = ferry_store::Store::connect(&config.database).await?;
            store.migrate().await?;
            println!("migrations applied");
            let client = ferry_runtime::nats::connect(&config.nats, "ferry-migrate").await?;
            let js = ferry_runtime::nats::jetstream(client);
            let topology = ferry_runtime::nats::Topology::new(&config.nats.prefix);
            ferry_runtime::nats::provision_streams(&js, &topology, &config.nats).await?;
            println!("streams provisioned (prefix {})", config.nats.prefix);
            Ok(())
        }
        Command::Transform(_) | Command::Completions { .. } => Ok(()),
    }
}

async fn run_service(service: Service, config: Option<PathBuf>) -> anyhow::Result<()> {
    let config = Arc::new(ferry::config::load(config.as_deref())?);
    let name = match service {
        Service::Ingest => ferry_ingest::SERVICE,
        Service::Transform => ferry_transform::SERVICE,
        Service::ErpWriter => ferry_erp_writer::SERVICE,
        Service::FulfilmentFeedback => ferry_fulfilment::SERVICE,
        Service::InventoryPusher => ferry_inventory::SERVICE,
        Service::Reconciler => ferry_reconciler::SERVICE,
        Service::Ops => ferry_ops::SERVICE,
    };
    let booted = ferry_runtime::service::boot_with(
        name,
        Arc::new(config.runtime()),
        ferry_runtime::shutdown::on_signals(),
    )
    .await
    .with_context(|| format!("starting {name}"))?;
    let platform = ferry_platform::Platform::on(booted.base.clone(), config)
        .await
        .context("opening the database")?;
    let running = ferry::services::start(name, platform).await?;
    println!("{name} ready; ops endpoint http://{}", booted.ops_addr);
    let result = running
        .task
        .await
        .unwrap_or_else(|e| Err(anyhow::anyhow!("{name} failed: {e}")));
    // Give the exporters a moment to flush what the last messages produced.
    tokio::time::sleep(Duration::from_millis(50)).await;
    booted.finish();
    result
}
