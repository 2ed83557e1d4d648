//! Everything in one process: the simulators and every service, wired to one NATS and one
//! PostgreSQL. `ferry up`, `ferry bench` and the end-to-end tests start Ferry this way.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use ferry_config::{CentraConfig, Config, ErpConfig, TenantConfig};
use ferry_platform::Platform;
use ferry_runtime::Telemetry;
use ferry_runtime::service::Readiness;
use ferry_sim_centra::{CentraSim, SimConfig, WebhookConfig};
use ferry_sim_erp::ErpSim;
use ferry_testing::infra::{
    NatsOptions, NatsProcess, PostgresOptions, PostgresProcess, start_nats_with,
    start_postgres_with,
};
use secrecy::SecretString;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// The services `ferry up` runs.
pub use crate::services::ALL as SERVICES;

/// A nats-server and PostgreSQL started for this process (when none were configured).
pub struct LocalInfra {
    pub nats_url: String,
    pub database_url: String,
    pub dir: PathBuf,
    nats: Option<NatsProcess>,
    postgres: Option<PostgresProcess>,
}

impl LocalInfra {
    /// Starts whatever `config` does not point at already: a nats-server unless
    /// `FERRY_NATS__URL` is set, a PostgreSQL cluster unless `FERRY_DATABASE__URL` is set.
    pub async fn start(dir: PathBuf) -> anyhow::Result<LocalInfra> {
        Self::start_with(dir, false).await
    }

    /// [`LocalInfra::start`]; `durable` runs the servers as production does: JetStream
    /// with `sync_interval: always`, PostgreSQL with fsync and synchronous commit on
    /// (slower, and the honest figure for sizing).
    pub async fn start_with(dir: PathBuf, durable: bool) -> anyhow::Result<LocalInfra> {
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let nats_dir = dir.join("nats");
        let pg_dir = dir.join("pg");
        let (nats_url, nats) = match std::env::var("FERRY_NATS__URL") {
            Ok(url) => (url, None),
            Err(_) => {
                let process = tokio::task::spawn_blocking(move || {
                    start_nats_with(
                        &nats_dir,
                        NatsOptions {
                            sync_always: durable,
                            ..NatsOptions::default()
                        },
                    )
                })
                .await??;
                (process.url.clone(), Some(process))
            }
        };
        let (database_url, postgres) = match std::env::var("FERRY_DATABASE__URL") {
            Ok(url) => (url, None),
            Err(_) => {
                let process = tokio::task::spawn_blocking(move || {
                    start_postgres_with(
                        &pg_dir,
                        PostgresOptions {
                            durable,
                            ..PostgresOptions::default()
                        },
                    )
                })
                .await??;
                let url = process.database_url("postgres");
                (url, Some(process))
            }
        };
        Ok(LocalInfra {
            nats_url,
            database_url,
            dir,
            nats,
            postgres,
        })
    }

    /// Starts again, on the same port and data, a server of ours that has died (a crash,
    /// a kill); says what it did. An error means one could not be started again.
    pub fn revive(&mut self) -> anyhow::Result<Vec<String>> {
        let mut done = Vec::new();
        if let Some(nats) = &mut self.nats
            && let Some(how) = nats.exited()
        {
            nats.restart()
                .with_context(|| format!("nats-server exited ({how}) and did not start again"))?;
            done.push(format!(
                "nats-server exited ({how}); started again on the same port and store"
            ));
        }
        if let Some(pg) = &mut self.postgres
            && let Some(how) = pg.exited()
        {
            pg.restart()
                .with_context(|| format!("PostgreSQL exited ({how}) and did not start again"))?;
            done.push(format!(
                "PostgreSQL exited ({how}); started again on the same port and data"
            ));
        }
        Ok(done)
    }

    pub fn stop(&mut self) {
        if let Some(nats) = &mut self.nats {
            nats.stop();
        }
        if let Some(pg) = &self.postgres {
            pg.stop();
        }
    }
}

impl Drop for LocalInfra {
    fn drop(&mut self) {
        self.stop();
    }
}

/// How the simulators behave.
#[derive(Debug, Clone)]
pub struct StackOptions {
    pub tenant: String,
    pub seed: u64,
    /// Centra's request quota per 10 s as the client paces itself (20 on a real instance).
    pub centra_requests_per_10s: u32,
    pub webhook_faults: WebhookConfig,
    /// Poll the simulator's Events queue as well as receiving webhooks.
    pub centra_events: bool,
    /// The periodic resync's interval (`0s`: off).
    pub resync_interval: Duration,
    /// How often pending returns are read again (`0s`: never, the default in tests).
    pub returns_recheck: Duration,
    /// The demo tenant's order-to-cash rules (by default ERP item = Centra SKU, so the
    /// simulator's catalogue needs no mapping).
    pub rules: ferry_domain::Rules,
    /// The ERP the demo tenant posts to; the embedded ERP simulator when `None`.
    pub erp: Option<ErpConfig>,
    /// Centra's mutation quotas (per 10 s, per hour), in the simulator and the tenant's
    /// budget alike: Centra's defaults (100, 1,000) unless a benchmark raises them.
    pub centra_mutations: (u32, u32),
    /// How the demo tenant tells Centra about shipments (the stack polls every 200 ms).
    pub fulfilment: ferry_config::FulfilmentConfig,
    /// How the demo tenant's stock reaches Centra: the ERP simulator's `Main` warehouse
    /// feeds Centra's warehouse 1; ordinary changes go each second.
    pub inventory: ferry_config::InventoryConfig,
    /// What the reconciler holds the demo tenant to.
    pub targets: ferry_config::TargetsConfig,
    /// Who hears about the demo tenant's exceptions (nobody by default).
    pub notifications: ferry_config::NotificationsConfig,
}

impl Default for StackOptions {
    fn default() -> Self {
        Self {
            tenant: "demo".to_owned(),
            seed: 1,
            centra_requests_per_10s: 20,
            webhook_faults: WebhookConfig::default(),
            centra_events: false,
            resync_interval: Duration::ZERO,
            returns_recheck: Duration::ZERO,
            rules: ferry_domain::Rules {
                erp_item_equals_sku: true,
                ..ferry_domain::Rules::default()
            },
            erp: None,
            centra_mutations: (100, 1000),
            fulfilment: ferry_config::FulfilmentConfig {
                poll_interval: Duration::from_millis(200),
                ..Default::default()
            },
            inventory: ferry_config::InventoryConfig {
                warehouses: [(ferry_sim_erp::SALES_WAREHOUSE.to_owned(), 1)].into(),
                push_interval: Duration::from_secs(1),
                poll_interval: Duration::from_millis(100),
                sweep_interval: Duration::from_secs(600),
                drift_interval: Duration::from_secs(5),
                ..Default::default()
            },
            targets: ferry_config::TargetsConfig::default(),
            notifications: ferry_config::NotificationsConfig::default(),
        }
    }
}

/// The simulator's quotas for a client paced to `per_10s` requests: a fresh instance's
/// (Centra's first documented figures, which the tests and benchmarks were measured at),
/// with the request and complexity buckets raised in proportion when the demo or a
/// benchmark raises the request quota (as a brand can ask Centra to).
/// Quotas for the Centra simulator scaled to `per_10s` requests per 10 s.
pub fn sim_quotas(per_10s: u32) -> ferry_sim_centra::Quotas {
    let defaults = ferry_sim_centra::Quotas::plan(ferry_sim_centra::Plan::Fresh);
    let scale = (u64::from(per_10s) / defaults.request_count_10s).max(1);
    ferry_sim_centra::Quotas {
        request_count_10s: defaults.request_count_10s * scale,
        request_count_1h: defaults.request_count_1h * scale,
        complexity_10s: defaults.complexity_10s * scale,
        complexity_1h: defaults.complexity_1h * scale,
        ..defaults
    }
}

/// A running local Ferry.
pub struct Stack {
    pub config: Arc<Config>,
    pub centra: CentraSim,
    pub erp: ErpSim,
    pub webhook_url: String,
    /// The operations API (gRPC), `http://127.0.0.1:<port>`.
    pub api_url: String,
    /// The web console's address (`http://127.0.0.1:PORT/`).
    pub console_url: String,
    pub ops_addr: std::net::SocketAddr,
    pub telemetry: Telemetry,
    /// The tenant wired to the simulators (others may come from the configuration).
    demo_tenant: String,
    sims: CancellationToken,
    services: HashMap<&'static str, RunningService>,
}

struct RunningService {
    shutdown: CancellationToken,
    task: JoinHandle<anyhow::Result<()>>,
    /// Its NATS connection, closed once it has stopped (before the servers go).
    client: async_nats::Client,
}

impl Stack {
    /// Starts the simulators, adds a tenant wired to them, and starts every service.
    pub async fn start(mut config: Config, options: StackOptions) -> anyhow::Result<Stack> {
        let sims = CancellationToken::new();
        let quotas = ferry_sim_centra::Quotas {
            mutation_count_10s: u64::from(options.centra_mutations.0),
            mutation_count_1h: u64::from(options.centra_mutations.1),
            ..sim_quotas(options.centra_requests_per_10s)
        };
        let centra = CentraSim::start(
            SimConfig {
                seed: options.seed,
                quotas,
                ..SimConfig::default()
            },
            sims.clone(),
        )
        .await
        .context("starting the Centra simulator")?;
        let erp = ErpSim::start(
            std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
            sims.clone(),
        )
        .await
        .context("starting the ERP simulator")?;
        // Random: one derived from the process id could be guessed by anyone on the machine.
        let webhook_secret = format!(
            "whsec-{}",
            rand::random::<[u8; 16]>()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        );
        point_at_simulators(&mut config, &centra.graphql_url(), &erp.url());
        if config.tenant(&options.tenant).is_none() {
            config.tenants.push(TenantConfig {
                id: options.tenant.clone(),
                display_name: "Demo brand".to_owned(),
                centra: CentraConfig {
                    url: centra.graphql_url(),
                    token: SecretString::from("sim-token"),
                    webhook_secret: SecretString::from(webhook_secret.clone()),
                    // Ferry's pacing is the simulator's quotas, every bucket.
                    plan: ferry_domain::quota::Plan::Fresh,
                    share_percent: 100,
                    requests_per_10s: Some(quotas.request_count_10s),
                    requests_per_hour: Some(quotas.request_count_1h),
                    complexity_per_10s: Some(quotas.complexity_10s),
                    complexity_per_hour: Some(quotas.complexity_1h),
                    timeout: Duration::from_secs(20),
                    events: options.centra_events,
                    events_poll: Duration::from_secs(2),
                    resync_interval: options.resync_interval,
                    resync_overlap: Duration::from_secs(30),
                    returns_recheck: options.returns_recheck,
                    mutations_per_10s: Some(quotas.mutation_count_10s),
                    mutations_per_hour: Some(quotas.mutation_count_1h),
                },
                erp: options.erp.clone().unwrap_or_else(|| {
                    ErpConfig::new("http", serde_json::json!({ "url": erp.url() }))
                }),
                rules: options.rules.clone(),
                fulfilment: options.fulfilment.clone(),
                inventory: options.inventory.clone(),
                targets: options.targets.clone(),
                notifications: options.notifications.clone(),
            });
        }
        config.validate()?;
        let config = Arc::new(config);
        let telemetry = ferry_runtime::telemetry::init(&config.telemetry, "ferry")?;
        let readiness = Readiness::default();
        let ops_addr = ferry_runtime::ops::serve(
            config.ops.listen,
            telemetry.clone(),
            readiness.clone(),
            sims.clone(),
        )
        .await
        .context("starting the ops endpoint")?;
        let mut stack = Stack {
            config,
            centra,
            erp,
            webhook_url: String::new(),
            api_url: String::new(),
            console_url: String::new(),
            ops_addr,
            telemetry,
            demo_tenant: options.tenant.clone(),
            sims,
            services: HashMap::new(),
        };
        for service in SERVICES {
            stack.start_service(service, &readiness).await?;
        }
        stack.centra.configure_webhooks(Some(WebhookConfig {
            url: stack.webhook_url.clone(),
            secret: webhook_secret,
            ..options.webhook_faults
        }));
        Ok(stack)
    }

    /// Starts one service in this process (again, after [`Stack::kill_service`]).
    pub async fn start_service(
        &mut self,
        name: &'static str,
        readiness: &Readiness,
    ) -> anyhow::Result<()> {
        let shutdown = CancellationToken::new();
        let platform = Platform::open(
            name,
            self.config.clone(),
            shutdown.clone(),
            readiness.clone(),
        )
        .await?;
        let client = platform.base.client.clone();
        let running = crate::services::start(name, platform).await?;
        if let Some(addr) = running.webhook_addr
            && self.webhook_url.is_empty()
        {
            self.webhook_url = format!("http://{addr}/webhooks/centra/{}", self.demo_tenant);
        }
        if let Some(addr) = running.api_addr {
            self.api_url = format!("http://{addr}");
        }
        if let Some(addr) = running.console_addr {
            self.console_url = format!("http://{addr}/");
        }
        let task = running.task;
        self.services.insert(
            name,
            RunningService {
                shutdown,
                task,
                client,
            },
        );
        Ok(())
    }

    /// Stops a service abruptly, as a crash would: in-flight work is dropped mid-way.
    pub async fn kill_service(&mut self, name: &str) {
        if let Some(service) = self.services.remove(name) {
            service.task.abort();
            let _ = service.task.await;
            service.shutdown.cancel();
        }
    }

    /// Stops every service gracefully, then the simulators.
    pub async fn shutdown(mut self) {
        for service in self.services.values() {
            service.shutdown.cancel();
        }
        let mut clients = Vec::new();
        for (name, service) in self.services.drain() {
            match tokio::time::timeout(Duration::from_secs(30), service.task).await {
                Ok(Ok(Ok(()))) => {}
                Ok(Ok(Err(e))) => tracing::error!(service = name, error = %e, "service failed"),
                Ok(Err(e)) => tracing::error!(service = name, error = %e, "service panicked"),
                Err(_) => tracing::error!(service = name, "service did not stop in time"),
            }
            // Stopped: close its connection now, not when the server goes away under it.
            let _ = service.client.drain().await;
            clients.push(service.client);
        }
        // A drain completes in the background: wait (briefly) until every one has.
        let closed = async {
            while clients
                .iter()
                .any(|c| c.connection_state() == async_nats::connection::State::Connected)
            {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs(2), closed).await;
        self.sims.cancel();
    }

    pub fn tenant(&self) -> &str {
        &self.demo_tenant
    }

    /// A JetStream context on the stack's broker (for tests and benchmarks that look in).
    pub async fn jetstream(&self) -> anyhow::Result<async_nats::jetstream::Context> {
        let client = ferry_runtime::nats::connect(&self.config.nats, "ferry-stack-probe").await?;
        Ok(ferry_runtime::nats::jetstream(client))
    }

    /// The feed cursors of the stack's deployment.
    pub async fn cursors(&self) -> anyhow::Result<ferry_runtime::feed::Cursors> {
        let topology = ferry_runtime::Topology::new(&self.config.nats.prefix);
        Ok(ferry_runtime::feed::Cursors::open(
            &self.jetstream().await?,
            &topology,
            self.config.nats.replicas,
        )
        .await?)
    }

    /// Messages a durable consumer has not acknowledged yet: waiting plus in flight (0 when
    /// the consumer does not exist yet).
    pub async fn consumer_backlog(
        &self,
        stream: ferry_runtime::StreamKind,
        durable: &str,
    ) -> anyhow::Result<u64> {
        let topology = ferry_runtime::Topology::new(&self.config.nats.prefix);
        let js = self.jetstream().await?;
        let mut stream = js.get_stream(topology.stream_name(stream)).await?;
        let Ok(mut consumer) = stream
            .get_consumer::<async_nats::jetstream::consumer::pull::Config>(durable)
            .await
        else {
            return Ok(0);
        };
        let _ = &mut stream;
        let info = consumer.info().await?;
        Ok(info.num_pending + info.num_ack_pending as u64)
    }
}

/// A configured tenant whose `centra.url`, or HTTP `erp.url`, is `http://simulator` is pointed
/// at this stack's simulators (their ports are only known now). The Centra simulator takes
/// the token `sim-token`.
fn point_at_simulators(config: &mut Config, centra_url: &str, erp_url: &str) {
    const SIMULATOR: &str = "http://simulator";
    for tenant in &mut config.tenants {
        if tenant.centra.url == SIMULATOR {
            tenant.centra.url = centra_url.to_owned();
        }
        if tenant.erp.kind == "http"
            && tenant.erp.settings.get("url").and_then(|u| u.as_str()) == Some(SIMULATOR)
        {
            tenant.erp.settings.insert("url".to_owned(), erp_url.into());
        }
    }
}

/// A configuration for a local stack on `infra`, with a private prefix and free ports.
pub fn local_config(infra: &LocalInfra) -> anyhow::Result<Config> {
    let mut config = crate::config::load(None)?;
    config.nats.url = infra.nats_url.clone();
    config.database.url = SecretString::from(infra.database_url.clone());
    config.ops.listen = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    config.ingest.listen = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    config.api.listen = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    config.console.listen = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    Ok(config)
}
