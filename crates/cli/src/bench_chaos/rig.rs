//! What the chaos and soak runs share: the servers (nats-server with `sync_interval:
//! always`, PostgreSQL with fsync on), both simulators in this process, every service as
//! its own OS processes, and the warehouse that ships and recounts while the run goes on,
//! and the customers who send a third of what was shipped back.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use ferry_sim_centra::ops::ShippingRefund;
use ferry_sim_centra::{CentraSim, SimConfig, WebhookConfig};
use ferry_sim_erp::{ErpSim, ShipRequest};
use ferry_testing::infra::{self, NatsOptions, NatsProcess, PostgresOptions, PostgresProcess};
use rand::Rng;
use tokio_util::sync::CancellationToken;

use super::{Evidence, Observe, fleet, verdict};

/// The tenant the runs post for.
pub const TENANT: &str = "chaos";

/// How a rig is set up.
pub struct RigSpec<'a> {
    /// Names the run's private directory.
    pub name: &'static str,
    pub seed: u64,
    /// Sizes whose ERP stock changes during the run.
    pub skus: usize,
    pub replicas: usize,
    /// Centra's request quota per 10 s (the other buckets scale with it).
    pub centra_requests_per_10s: u32,
    /// Each JetStream stream's byte limit (GiB): what a run's orders need for the
    /// streams' 14 days (the CENTRA stream holds ~4.8 KB per order: about 1.4 snapshots
    /// of ~3.5 KB), six streams within the server's file store.
    pub stream_gib: u32,
    /// The `ferry` binary the services run as (default: this one).
    pub exe: Option<PathBuf>,
    pub observe: &'a Observe,
}

/// The world the services run in.
pub struct World {
    pub centra: CentraSim,
    pub erp: ErpSim,
    pub store: ferry_store::Store,
    pub orders: Vec<i64>,
    /// ERP references the warehouse shipped, in order.
    pub shipped: Vec<String>,
    shipped_set: HashSet<String>,
    /// ERP documents already looked at for shipping.
    erp_seen: usize,
    /// References the warehouse has still to ship.
    to_ship: VecDeque<String>,
    pub stock: BTreeMap<String, i64>,
    skus: Vec<String>,
    /// Returns completed in Centra: (order number, return id).
    pub returns: Vec<(i64, i64)>,
    /// Shipped orders to take a return from, once Centra shows them shipped.
    to_return: VecDeque<i64>,
}

impl World {
    /// Where the run stands, read from Centra, the ERP and the ledger.
    pub async fn judge(&self) -> verdict::Verdict {
        verdict::judge(self, TENANT).await
    }
}

/// Servers, simulators and services, running.
pub struct Rig {
    pub started: Instant,
    dir: PathBuf,
    pub nats: NatsProcess,
    pub pg: PostgresProcess,
    sims: CancellationToken,
    pub fleet: fleet::Fleet,
    pub world: World,
    /// Where Centra sends webhooks, and how it mistreats them.
    pub webhooks: WebhookConfig,
    /// The ERP as the run leaves it when it injects no fault: it ignores idempotency keys,
    /// so any double post would be a second document.
    pub naive: ferry_sim_erp::Faults,
    token: String,
    secret: String,
}

impl Rig {
    pub async fn start(spec: RigSpec<'_>) -> anyhow::Result<Rig> {
        let started = Instant::now();
        let dir = std::env::temp_dir().join(format!("ferry-{}-{}", spec.name, std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let nats = tokio::task::block_in_place(|| {
            infra::start_nats_with(
                &dir.join("nats"),
                NatsOptions {
                    sync_always: true,
                    max_file_store_gb: Some(spec.stream_gib * 7),
                    ..NatsOptions::default()
                },
            )
        })?;
        let pg = tokio::task::block_in_place(|| {
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
            mutation_count_10s: 20 * u64::from(spec.centra_requests_per_10s),
            mutation_count_1h: 2_000 * u64::from(spec.centra_requests_per_10s),
            ..crate::stack::sim_quotas(spec.centra_requests_per_10s)
        };
        // Distinctive secrets, so a test can look for them in every log line and span.
        let token = format!("centra-token-{:032x}", rand::random::<u128>());
        let centra = CentraSim::start(
            SimConfig {
                seed: spec.seed,
                quotas,
                tokens: vec![ferry_sim_centra::ApiToken::all(&token, "ferry")],
                ..SimConfig::default()
            },
            sims.clone(),
        )
        .await?;
        let erp = ErpSim::start(([127, 0, 0, 1], 0).into(), sims.clone()).await?;
        let naive = ferry_sim_erp::Faults {
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
                stream_bytes: u64::from(spec.stream_gib) << 30,
            },
            spec.observe,
        );
        let mut config = crate::config::load(None)?;
        config.database.url = secrecy::SecretString::from(pg.url.clone());
        let store = ferry_store::Store::connect(&config.database).await?;
        store.migrate().await?;

        let exe = match &spec.exe {
            Some(exe) => exe.clone(),
            None => std::env::current_exe()?,
        };
        let fleet =
            fleet::Fleet::start(&exe, &dir, &shared, &crate::stack::SERVICES, spec.replicas)
                .await?;
        fleet.ready(Duration::from_secs(120)).await?;
        eprintln!(
            "{}: {} service processes ready in {:.1} s",
            spec.name,
            fleet.replicas.len(),
            started.elapsed().as_secs_f64()
        );

        let skus: Vec<String> = centra.state.ops_mut(|o| {
            let end = o.add_synthetic_sizes(spec.skus, 0);
            o.sizes[end - spec.skus..end]
                .iter()
                .map(|s| s.sku.clone())
                .collect()
        });
        let webhooks = WebhookConfig {
            url: fleet
                .webhook_url(TENANT, None)
                .context("an ingest replica")?,
            secret: secret.clone(),
            ..WebhookConfig::default()
        };
        Ok(Rig {
            started,
            dir,
            nats,
            pg,
            sims,
            fleet,
            world: World {
                centra,
                erp,
                store,
                orders: Vec::new(),
                shipped: Vec::new(),
                shipped_set: HashSet::new(),
                erp_seen: 0,
                to_ship: VecDeque::new(),
                stock: BTreeMap::new(),
                skus,
                returns: Vec::new(),
                to_return: VecDeque::new(),
            },
            webhooks,
            naive,
            token,
            secret,
        })
    }

    /// Tells Centra where and how to send webhooks now.
    pub fn send_webhooks(&mut self, webhooks: WebhookConfig) {
        self.webhooks = webhooks;
        self.world
            .centra
            .configure_webhooks(Some(self.webhooks.clone()));
    }

    /// Stops everything; returns what must not have leaked, and copies the services' logs
    /// where `observe` says.
    pub async fn finish(mut self, observe: &Observe) -> anyhow::Result<Evidence> {
        self.fleet.stop().await;
        self.world.store.pool().close().await;
        let evidence = Evidence {
            secrets: vec![self.token.clone(), self.secret.clone()],
            personal: personal_data(&self.world),
            orders: self.world.orders.clone(),
        };
        self.sims.cancel();
        self.nats.stop();
        self.pg.stop();
        if let Some(keep) = &observe.keep_logs {
            std::fs::create_dir_all(keep)?;
            for entry in std::fs::read_dir(&self.dir)?.flatten() {
                let path = entry.path();
                if path.extension().is_some_and(|e| e == "log") {
                    std::fs::copy(&path, keep.join(entry.file_name()))?;
                }
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
        Ok(evidence)
    }
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

/// The warehouse ships, up to `at_most` at a time and oldest first, the orders that
/// reached the ERP: each once, with a tracking number.
pub fn ship_new(world: &mut World, at_most: usize) {
    let (fresh, seen) = world.erp.external_refs_from(world.erp_seen);
    world.erp_seen = seen;
    world.to_ship.extend(fresh);
    let mut shipped = 0;
    while shipped < at_most
        && let Some(reference) = world.to_ship.pop_front()
    {
        if world.shipped_set.contains(&reference) {
            // A second document for the same order (the run counts it as a duplicate).
            continue;
        }
        let done = world.erp.ship(ShipRequest {
            tracking_number: Some(verdict::tracking(&reference)),
            external_ref: reference.clone(),
            lines: None,
            carrier: Some("PostNord".into()),
        });
        if done.is_some() {
            if world.shipped.len().is_multiple_of(RETURN_EVERY)
                && let Ok(number) = reference.parse::<i64>()
            {
                world.to_return.push_back(number);
            }
            world.shipped_set.insert(reference.clone());
            world.shipped.push(reference);
            shipped += 1;
        }
    }
}

/// One shipped order in this many comes back (fashion sees a third or more).
const RETURN_EVERY: usize = 3;

/// The customers of shipped orders send one unit back: the return is registered in
/// Centra and completed (received, refunded, back to stock) at once, up to `at_most` at a
/// time. An order whose shipment Centra does not show yet waits for a later call.
pub fn return_new(world: &mut World, at_most: usize) {
    let mut waiting = VecDeque::new();
    let mut made = 0;
    while made < at_most
        && let Some(number) = world.to_return.pop_front()
    {
        let shipped = world.centra.state.ops(|o| {
            o.shipments_of(number)
                .into_iter()
                .find(|s| s.is_shipped)
                .and_then(|s| Some((s.id, s.lines.first()?.id)))
        });
        let Some((shipment, line)) = shipped else {
            waiting.push_back(number);
            continue;
        };
        let returned = world.centra.state.transact(|w| {
            let id =
                w.ops
                    .create_return(shipment, &[(line, 1)], true, ShippingRefund::None, None)?;
            let order = w.order(number)?.clone();
            w.ops.complete_return(&order, id, false)?;
            Ok(id)
        });
        match returned {
            Ok(id) => {
                world.returns.push((number, id));
                made += 1;
            }
            // Centra refused (say, the order was cancelled meanwhile): no return to check.
            Err(e) => eprintln!("chaos: no return for order {number}: {}", e.message),
        }
    }
    world.to_return.extend(waiting);
}

/// The ERP counts `n` sizes again (all of them first): new levels Centra must converge to.
pub fn change_stock(world: &mut World, rng: &mut rand::rngs::StdRng, n: usize) {
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
    stream_bytes: u64,
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
stream_max_bytes = {stream_bytes}
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
        stream_bytes = s.stream_bytes,
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
