//! The inventory-pusher service: reads the ERP's stock (its change feed, or all of it when
//! it has none), keeps only the latest level per (Centra warehouse, SKU), computes what
//! Centra may sell — ERP available less Centra orders not yet in the ERP less a safety
//! buffer — and sends only what changed, many sizes per `setStock`, items selling out
//! first, within the tenant's share of Centra's mutation budget. A drift check compares
//! Centra's free-to-allocate stock with what Ferry expects and heals or reports it.

pub mod plan;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use ferry_centra::{CentraClient, CentraError};
use ferry_domain::{ExceptionKind, NewException};
use ferry_erp::{ErpConnector, ErpError};
use ferry_proto::order::v1 as pb;
use ferry_runtime::coalesce::Coalescer;
use ferry_runtime::config::TenantConfig;
use ferry_runtime::consumer::{ConsumerSpec, Delivery, Handler, HandlerError, Runner};
use ferry_runtime::nats::StreamKind;
use ferry_runtime::{ExceptionSink, ServiceBase};
use ferry_store::Store;
use ferry_store::fulfilment::{MutationBudget, Priority};
use ferry_store::inventory::{ErpStock, OrderUnits, Pushed};
use prost::Message;
use tokio::time::Instant;

use crate::plan::{Reserved, Target, Urgency};

pub const SERVICE: &str = "inventory-pusher";
/// The stock feed's cursor name in `feed_cursor` (and the leadership lock's).
pub const FEED: &str = "erp-stock";

/// Builds the connector a tenant's configuration names (the erp-writer's factory fits).
pub type ConnectorFactory = Arc<dyn Fn(&TenantConfig) -> Arc<dyn ErpConnector> + Send + Sync>;

/// Changes read from the feed before they are stored and pushed.
const FEED_PAGE: usize = 10_000;
const PAGES_PER_ROUND: usize = 20;
/// Requests of the pusher's share of Centra's request quota that only sizes selling out
/// may use.
const RESERVED_REQUESTS: u32 = 2;
/// How often the loop looks for items selling out (and budget that came free).
const TICK: Duration = Duration::from_millis(50);

#[derive(Debug, thiserror::Error)]
pub enum InventoryError {
    #[error("a tenant task failed: {0}")]
    Join(String),
    #[error(transparent)]
    Runner(#[from] ferry_runtime::consumer::RunnerError),
}

/// Why a step stopped early; the loop retries with backoff.
#[derive(Debug, thiserror::Error)]
enum StepError {
    #[error("the ERP: {0}")]
    Erp(#[from] ErpError),
    #[error("Centra: {0}")]
    Centra(#[from] CentraError),
    #[error("the database: {0}")]
    Store(#[from] ferry_store::StoreError),
    #[error("recording an exception: {0}")]
    Sink(String),
}

impl StepError {
    fn retry_after(&self) -> Option<Duration> {
        match self {
            StepError::Erp(e) => e.retry_after(),
            StepError::Centra(e) => e.retry_after(),
            _ => None,
        }
    }
}

/// Runs, per tenant with mapped warehouses, the pusher and the consumer that records which
/// units Centra orders hold, until the base's shutdown token is cancelled.
pub async fn run(
    base: ServiceBase,
    store: Store,
    connectors: ConnectorFactory,
) -> Result<(), InventoryError> {
    let sink = ferry_store::exception_sink(&store, &base);
    let mut pushers = tokio::task::JoinSet::new();
    let mut consumers = tokio::task::JoinSet::new();
    for tenant in &base.config.tenants {
        if tenant.inventory.warehouses.is_empty() {
            tracing::info!(tenant = %tenant.id, "no warehouses mapped in [inventory]; stock is not pushed");
            continue;
        }
        let runner = Runner {
            js: base.js.clone(),
            topology: base.topology.clone(),
            spec: ConsumerSpec {
                service: SERVICE,
                tenant: tenant.id.clone(),
                stream: StreamKind::Orders,
                durable: base.topology.consumer_name(SERVICE, &tenant.id),
                filter_subject: base.topology.ready_filter(&tenant.id),
                double_ack: false,
            },
            config: base.config.consumer.clone(),
            sink: sink.clone(),
            grace: base.config.ops.shutdown_grace,
            gate: None,
        };
        let tenant_id = tenant.id.clone();
        let batch_store = store.clone();
        // Group commit: every order in flight is recorded in one statement.
        let writes = Coalescer::spawn(256, 1, move |orders: Vec<OrderUnits>| {
            let store = batch_store.clone();
            let tenant = tenant_id.clone();
            async move {
                let n = orders.len();
                let result = store
                    .record_commitments(&tenant, &orders)
                    .await
                    .map_err(|e| e.to_string());
                vec![result; n]
            }
        });
        let handler = Arc::new(Commitments { writes });
        consumers.spawn(runner.run(handler, base.shutdown.clone()));
        let pusher = Pusher::new(
            tenant.clone(),
            connectors(tenant),
            store.clone(),
            &base,
            sink.clone(),
        );
        pushers.spawn(pusher.run());
    }
    if pushers.is_empty() {
        // Nothing to push for any tenant: stay up (readiness, metrics) until told to stop.
        base.shutdown.cancelled().await;
        return Ok(());
    }
    while let Some(done) = consumers.join_next().await {
        done.map_err(|e| InventoryError::Join(e.to_string()))??;
    }
    while let Some(done) = pushers.join_next().await {
        done.map_err(|e| InventoryError::Join(e.to_string()))?;
    }
    Ok(())
}

/// Records the item units of each ready sales order: Centra has them allocated, and until
/// the order is in the ERP the ERP's available stock still counts them.
struct Commitments {
    writes: Coalescer<OrderUnits, Result<(), String>>,
}

#[async_trait]
impl Handler for Commitments {
    async fn handle(&self, delivery: &Delivery) -> Result<(), HandlerError> {
        // Only the units are needed: the view skips the rest of the order undecoded.
        let ready = pb::OrderReadyUnits::decode(delivery.payload.as_ref())
            .map_err(|e| delivery.poison(SERVICE, "ready order", &e))?;
        let Some(order) = ready.order else {
            return Err(delivery.poison(SERVICE, "ready order", &"no order in the message"));
        };
        self.writes
            .call(order_units(order))
            .await
            .ok_or_else(|| HandlerError::transient("the commitment writer stopped"))?
            .map_err(HandlerError::transient)
    }
}

/// An order's item units per (ERP item, SKU); shipping and handling lines hold no stock.
fn order_units(order: pb::SalesOrderUnits) -> OrderUnits {
    let mut units: BTreeMap<(String, String), i64> = BTreeMap::new();
    for line in order.lines {
        if line.kind != pb::LineKind::Item as i32 || line.quantity <= 0 {
            continue;
        }
        let Some(sku) = line.sku else { continue };
        *units.entry((line.erp_item, sku)).or_insert(0) += line.quantity;
    }
    OrderUnits {
        order_number: order.order_number,
        lines: units
            .into_iter()
            .map(|((item, sku), q)| (item, sku, q))
            .collect(),
    }
}

type Key = (i64, String);

/// Why Centra will not take a SKU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Skip {
    /// Centra derives a bundle's stock from its components.
    Bundle,
    /// Centra does not know the SKU (retried on the next sweep).
    Unknown,
}

impl Skip {
    fn as_str(self) -> &'static str {
        match self {
            Skip::Bundle => "bundle",
            Skip::Unknown => "unknown",
        }
    }
}

#[derive(Debug, Clone, Default)]
struct Entry {
    erp_available: i64,
    erp_version: i64,
    pushed_physical: Option<i64>,
    pushed_sellable: Option<i64>,
    skip: Option<Skip>,
    /// Send even if Centra should already have it (sweep, drift).
    force: bool,
}

struct Pusher {
    tenant: TenantConfig,
    erp: Arc<dyn ErpConnector>,
    centra: CentraClient,
    store: Store,
    base: ServiceBase,
    sink: Arc<dyn ExceptionSink>,
    budget: MutationBudget,
    /// The Centra warehouse Centra allocates orders from (where reservations count).
    allocation_warehouse: i64,
    entries: HashMap<Key, Entry>,
    /// ERP item → Centra SKU, where a mapping says otherwise than "the same code".
    skus: HashMap<String, Option<String>>,
    reserved: HashMap<String, Reserved>,
    /// Units per SKU Centra recorded shipped, as last read (`None` before the first read).
    shipped: Option<HashMap<String, i64>>,
    /// Changed ERP levels not stored yet.
    unsaved: HashMap<Key, ErpStock>,
    feed: Option<bool>,
    drift: HashMap<Key, u32>,
    recheck: Vec<Key>,
    drift_cursor: usize,
    last_erp_read: Option<Instant>,
    last_ordinary: Instant,
    ordinary_round: bool,
    last_sweep: Instant,
    last_drift: Instant,
    /// Budget is not to be asked before this (it said wait).
    budget_wait: Option<(Priority, Instant)>,
    /// Something a target depends on changed since targets were last computed.
    dirty: bool,
    /// Sizes selling out could not all be sent (budget): compute again next tick.
    selling_out_waiting: bool,
    /// How far the ERP feed is read and stored (`None`: not read from the database yet).
    cursor: Option<String>,
}

impl Pusher {
    fn new(
        tenant: TenantConfig,
        erp: Arc<dyn ErpConnector>,
        store: Store,
        base: &ServiceBase,
        sink: Arc<dyn ExceptionSink>,
    ) -> Self {
        let allocation_warehouse = tenant
            .inventory
            .allocation_warehouse
            .or_else(|| tenant.inventory.warehouses.values().min().copied())
            .unwrap_or(1);
        let now = Instant::now();
        Self {
            centra: CentraClient::paced(
                tenant.centra.url.clone(),
                tenant.centra.token.clone(),
                tenant
                    .centra
                    .pacing_for(ferry_runtime::config::CentraCaller::InventoryPusher),
                tenant.centra.timeout,
            ),
            budget: MutationBudget::for_tenant(&tenant),
            allocation_warehouse,
            tenant,
            erp,
            store,
            base: base.clone(),
            sink,
            entries: HashMap::new(),
            skus: HashMap::new(),
            reserved: HashMap::new(),
            shipped: None,
            unsaved: HashMap::new(),
            feed: None,
            drift: HashMap::new(),
            recheck: Vec::new(),
            drift_cursor: 0,
            last_erp_read: None,
            last_ordinary: now,
            ordinary_round: true,
            last_sweep: now,
            last_drift: now,
            budget_wait: None,
            dirty: true,
            selling_out_waiting: false,
            cursor: None,
        }
    }

    /// Waits to be the tenant's only pusher, then pushes until shutdown; on errors backs off
    /// and starts again from what is stored.
    async fn run(mut self) {
        let shutdown = self.base.shutdown.clone();
        let backoff = backon::ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(200))
            .with_max_delay(Duration::from_secs(30))
            .with_jitter()
            .without_max_times();
        let mut delays = backon::BackoffBuilder::build(backoff);
        while !shutdown.is_cancelled() {
            let wait = match self.store.try_feed_lock(&self.tenant.id, FEED).await {
                Ok(Some(lock)) => {
                    let result = self.lead().await;
                    lock.release().await;
                    match result {
                        Ok(()) => break,
                        Err(e) => {
                            tracing::warn!(tenant = %self.tenant.id, error = %e, "inventory pusher step failed; retrying");
                            e.retry_after()
                                .or_else(|| delays.next())
                                .unwrap_or(Duration::from_secs(30))
                        }
                    }
                }
                // Another replica pushes this tenant's stock.
                Ok(None) => Duration::from_secs(1),
                Err(e) => {
                    tracing::warn!(tenant = %self.tenant.id, error = %e, "inventory pusher cannot reach the database");
                    delays.next().unwrap_or(Duration::from_secs(30))
                }
            };
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// Loads what is stored and runs the push loop; returns on shutdown.
    async fn lead(&mut self) -> Result<(), StepError> {
        self.load().await?;
        let shutdown = self.base.shutdown.clone();
        while !shutdown.is_cancelled() {
            let more = self.read_erp().await?;
            // While the feed still has a backlog only items selling out go: ordinary sizes
            // wait for their latest level, so each is sent once (coalescing).
            self.push(!more).await?;
            self.check_drift().await?;
            if self.last_sweep.elapsed() >= self.tenant.inventory.sweep_interval {
                self.sweep().await?;
            }
            if !more {
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(TICK) => {}
                }
            }
        }
        Ok(())
    }

    async fn load(&mut self) -> Result<(), StepError> {
        let tenant = self.tenant.id.clone();
        self.entries = self
            .store
            .stock_rows(&tenant)
            .await?
            .into_iter()
            .map(|r| {
                let skip = match r.skip.as_deref() {
                    Some("bundle") => Some(Skip::Bundle),
                    Some(_) => Some(Skip::Unknown),
                    None => None,
                };
                let entry = Entry {
                    erp_available: r.erp_available,
                    erp_version: r.erp_version,
                    pushed_physical: r.pushed_physical,
                    pushed_sellable: r.pushed_sellable,
                    skip,
                    force: false,
                };
                ((r.warehouse, r.sku), entry)
            })
            .collect();
        self.load_skus().await?;
        self.unsaved.clear();
        self.shipped = None;
        self.last_erp_read = None;
        self.ordinary_round = true;
        self.cursor = None;
        self.dirty = true;
        tracing::info!(%tenant, sizes = self.entries.len(), "inventory pusher leading");
        Ok(())
    }

    /// ERP item → SKU from the tenant's SKU mappings; an item no mapping names keeps its
    /// code, one named by several SKUs is not pushed (their stock would be sold twice).
    async fn load_skus(&mut self) -> Result<(), StepError> {
        let mut by_item: HashMap<String, Vec<String>> = HashMap::new();
        for (sku, item) in self.store.sku_map(&self.tenant.id).await? {
            by_item.entry(item).or_default().push(sku);
        }
        self.skus = by_item
            .into_iter()
            .map(|(item, skus)| {
                let one = (skus.len() == 1).then(|| skus[0].clone());
                if one.is_none() {
                    tracing::warn!(tenant = %self.tenant.id, item = %item, "several SKUs map to one ERP item; its stock is not pushed");
                }
                (item, one)
            })
            .collect();
        Ok(())
    }

    fn key_for(&self, warehouse: &str, item: &str) -> Option<Key> {
        let centra = *self.tenant.inventory.warehouses.get(warehouse)?;
        let sku = match self.skus.get(item) {
            Some(Some(sku)) => sku.clone(),
            Some(None) => return None,
            None => item.to_owned(),
        };
        Some((centra, sku))
    }

    /// Takes one ERP observation if it is newer than what is known.
    fn observe(&mut self, warehouse: &str, item: &str, available: i64, version: i64) {
        let Some(key) = self.key_for(warehouse, item) else {
            return;
        };
        let entry = self.entries.entry(key.clone()).or_default();
        if entry.erp_version >= version {
            return;
        }
        entry.erp_available = available;
        entry.erp_version = version;
        self.dirty = true;
        self.unsaved.insert(
            key.clone(),
            ErpStock {
                warehouse: key.0,
                sku: key.1,
                available,
                version,
            },
        );
    }

    /// Reads the ERP: pages of its change feed until it is drained (or a round's worth),
    /// or — without a feed — all its stock each poll interval. Stores what changed together
    /// with the feed position. Returns whether more is waiting.
    async fn read_erp(&mut self) -> Result<bool, StepError> {
        let poll = self.tenant.inventory.poll_interval;
        if self.last_erp_read.is_some_and(|at| at.elapsed() < poll) {
            return Ok(false);
        }
        // The ledgers first, then the ERP: the writer creates the ERP order before it marks
        // the order posted, so an order read as posted is already out of the ERP's available
        // stock (never counted twice); one read as pending whose ERP order landed meanwhile
        // is subtracted twice until the next read (Centra offers less, never more).
        self.refresh_reserved().await?;
        let tenant = self.tenant.id.clone();
        let mut more = false;
        let mut cursor = None;
        if self.feed != Some(false) {
            let mut at = match &self.cursor {
                Some(at) => at.clone(),
                None => self.store.feed_cursor(&tenant, FEED).await?,
            };
            for _ in 0..PAGES_PER_ROUND {
                let Some(page) = self.erp.stock_changes_since(&at, FEED_PAGE).await? else {
                    self.feed = Some(false);
                    break;
                };
                self.feed = Some(true);
                let full = page.changes.len() >= FEED_PAGE;
                metrics::counter!("ferry_stock_erp_changes_total", "tenant" => tenant.clone())
                    .increment(page.changes.len() as u64);
                for c in &page.changes {
                    self.observe(&c.warehouse, &c.erp_item, c.available, c.seq);
                }
                let moved = page.next_cursor != at;
                at = page.next_cursor;
                if moved {
                    cursor = Some(at.clone());
                }
                more = full;
                if !full {
                    break;
                }
            }
        }
        if self.feed == Some(false) {
            let levels = self.erp.stock_levels(&[]).await?;
            let version = now_micros();
            for l in &levels {
                self.observe(&l.warehouse, &l.erp_item, l.available, version);
            }
        }
        if !self.unsaved.is_empty() || cursor.is_some() {
            let levels: Vec<ErpStock> = self.unsaved.drain().map(|(_, v)| v).collect();
            self.store
                .save_erp_stock(&tenant, FEED, cursor.as_deref(), &levels)
                .await?;
            if cursor.is_some() {
                self.cursor = cursor;
            }
        }
        if !more {
            self.last_erp_read = Some(Instant::now());
        }
        Ok(more)
    }

    async fn refresh_reserved(&mut self) -> Result<(), StepError> {
        if self.entries.is_empty() && self.feed.is_some() {
            // No stock to push yet: reservations change nothing.
            return Ok(());
        }
        let commitments = self.store.commitments(&self.tenant.id).await?;
        let shipped: HashMap<String, i64> = commitments
            .iter()
            .map(|c| (c.sku.clone(), c.shipped))
            .collect();
        // A shipment Centra recorded lowered its physical stock by its units: what Centra
        // holds is what Ferry sent less them, so the (equally lower) target is not sent again.
        if let Some(before) = &self.shipped {
            for (sku, now) in &shipped {
                let gone = now - before.get(sku).copied().unwrap_or(0);
                if gone > 0
                    && let Some(entry) = self
                        .entries
                        .get_mut(&(self.allocation_warehouse, sku.clone()))
                    && let Some(physical) = entry.pushed_physical.as_mut()
                {
                    *physical -= gone;
                    self.dirty = true;
                }
            }
        }
        self.shipped = Some(shipped);
        let reserved: HashMap<String, Reserved> = commitments
            .into_iter()
            .map(|c| {
                (
                    c.sku,
                    Reserved {
                        pending: c.pending,
                        posted_unshipped: c.posted_unshipped,
                    },
                )
            })
            .collect();
        if reserved != self.reserved {
            self.reserved = reserved;
            self.dirty = true;
        }
        Ok(())
    }

    fn target_of(&self, key: &Key, entry: &Entry) -> Target {
        let reserved = if key.0 == self.allocation_warehouse {
            self.reserved.get(&key.1).copied().unwrap_or_default()
        } else {
            Reserved::default()
        };
        let buffer = self.tenant.inventory.buffer.for_sku(key.0, &key.1);
        plan::target(entry.erp_available, reserved, buffer)
    }

    /// Sends what Centra lacks: items selling out at once, the rest on the push interval
    /// (when `ordinary` allows).
    async fn push(&mut self, ordinary: bool) -> Result<(), StepError> {
        // Ordinary work that must wait (budget, request slots) does not make the loop
        // recompute every size each tick.
        let ordinary_blocked = matches!(self.budget_wait,
                Some((Priority::Ordinary, until)) if Instant::now() < until)
            || self.centra.limiter().remaining() <= RESERVED_REQUESTS;
        let ordinary_due = ordinary
            && !ordinary_blocked
            && (self.ordinary_round
                || self.last_ordinary.elapsed() >= self.tenant.inventory.push_interval);
        if !ordinary_due && !self.dirty && !self.selling_out_waiting {
            return Ok(());
        }
        self.dirty = false;
        let mut urgent: BTreeMap<i64, Vec<(String, Target)>> = BTreeMap::new();
        let mut regular: BTreeMap<i64, Vec<(String, Target)>> = BTreeMap::new();
        for (key, entry) in &self.entries {
            if entry.skip.is_some() {
                continue;
            }
            let target = self.target_of(key, entry);
            match plan::urgency(
                target,
                entry.pushed_physical,
                entry.pushed_sellable,
                entry.force,
            ) {
                Urgency::Done => {}
                Urgency::SellingOut => urgent
                    .entry(key.0)
                    .or_default()
                    .push((key.1.clone(), target)),
                Urgency::Ordinary if ordinary_due => {
                    regular
                        .entry(key.0)
                        .or_default()
                        .push((key.1.clone(), target));
                }
                Urgency::Ordinary => {}
            }
        }
        metrics::gauge!("ferry_stock_selling_out_waiting", "tenant" => self.tenant.id.clone())
            .set(urgent.values().map(Vec::len).sum::<usize>() as f64);
        self.selling_out_waiting = !self.send_all(urgent, Priority::ZeroStock).await?;
        if self.selling_out_waiting {
            return Ok(());
        }
        if ordinary_due {
            let waiting: usize = regular.values().map(Vec::len).sum();
            if waiting == 0 {
                self.ordinary_round = false;
                self.last_ordinary = Instant::now();
            } else {
                self.ordinary_round = true;
                if self.send_all(regular, Priority::Ordinary).await? {
                    self.ordinary_round = false;
                    self.last_ordinary = Instant::now();
                }
            }
        }
        Ok(())
    }

    /// Sends batches while the budget allows; returns whether everything went.
    async fn send_all(
        &mut self,
        mut by_warehouse: BTreeMap<i64, Vec<(String, Target)>>,
        priority: Priority,
    ) -> Result<bool, StepError> {
        let batch_size = self.tenant.inventory.batch_size;
        for (warehouse, sizes) in &mut by_warehouse {
            // Deterministic batches: the lowest stock first within a priority.
            sizes.sort_by(|a, b| a.1.sellable.cmp(&b.1.sellable).then_with(|| a.0.cmp(&b.0)));
            for batch in sizes.chunks(batch_size) {
                // Ordinary work leaves two request slots of this client's share free, so
                // sizes selling out do not wait behind it for Centra's request quota.
                if priority == Priority::Ordinary
                    && self.centra.limiter().remaining() <= RESERVED_REQUESTS
                {
                    return Ok(false);
                }
                if !self.take_budget(priority).await? {
                    return Ok(false);
                }
                self.send(*warehouse, batch, priority).await?;
            }
        }
        Ok(true)
    }

    /// One mutation from the shared budget; items selling out wait up to a second for it.
    async fn take_budget(&mut self, priority: Priority) -> Result<bool, StepError> {
        if let Some((p, until)) = self.budget_wait
            && p == priority
            && Instant::now() < until
        {
            return Ok(false);
        }
        loop {
            match self
                .store
                .reserve_mutations(&self.tenant.id, &self.budget, priority, 1)
                .await?
            {
                None => {
                    self.budget_wait = None;
                    return Ok(true);
                }
                Some(wait) if priority == Priority::ZeroStock && wait <= Duration::from_secs(1) => {
                    tokio::time::sleep(wait).await;
                }
                Some(wait) => {
                    self.budget_wait = Some((priority, Instant::now() + wait));
                    return Ok(false);
                }
            }
        }
    }

    async fn send(
        &mut self,
        warehouse: i64,
        batch: &[(String, Target)],
        priority: Priority,
    ) -> Result<(), StepError> {
        let levels: Vec<(&str, i64)> = batch
            .iter()
            .map(|(sku, t)| (sku.as_str(), t.physical))
            .collect();
        let description = match priority {
            Priority::ZeroStock => "Ferry: selling out",
            _ => "Ferry: stock update",
        };
        let tenant = self.tenant.id.clone();
        let warnings = match self.centra.set_stock(warehouse, description, &levels).await {
            Ok(w) => w,
            Err(CentraError::UserErrors(errors)) => {
                // The whole batch was refused (e.g. an unknown warehouse): tell operations
                // and hold these sizes back until the next sweep rather than loop.
                let reason = errors
                    .iter()
                    .map(|e| e.message.as_str())
                    .collect::<Vec<_>>()
                    .join("; ");
                self.raise(
                    ExceptionKind::StockRefused,
                    format!("warehouse:{warehouse}"),
                    format!(
                        "Centra refused a stock update for warehouse {warehouse} ({} sizes): \
                         {reason}. Centra's stock for them is not being kept up to date. Check \
                         the warehouse mapping in the tenant's [inventory] settings.",
                        batch.len()
                    ),
                    format!("setStock userErrors: {reason}"),
                )
                .await?;
                for (sku, _) in batch {
                    if let Some(e) = self.entries.get_mut(&(warehouse, sku.clone())) {
                        e.skip = Some(Skip::Unknown);
                    }
                }
                return Ok(());
            }
            Err(e) => return Err(e.into()),
        };
        let mut skipped: HashMap<usize, Skip> = HashMap::new();
        for w in &warnings {
            let Some(index) = w.path.get(2).and_then(|i| i.parse::<usize>().ok()) else {
                continue;
            };
            let skip = if w.message.contains("bundle") {
                Skip::Bundle
            } else {
                Skip::Unknown
            };
            skipped.insert(index, skip);
        }
        let mut pushed = Vec::with_capacity(batch.len());
        let mut unknown = Vec::new();
        for (i, (sku, target)) in batch.iter().enumerate() {
            let key = (warehouse, sku.clone());
            if let Some(skip) = skipped.get(&i) {
                self.store
                    .mark_stock_skip(&tenant, warehouse, sku, Some(skip.as_str()))
                    .await?;
                if let Some(e) = self.entries.get_mut(&key) {
                    e.skip = Some(*skip);
                }
                if *skip == Skip::Unknown {
                    unknown.push(sku.as_str());
                }
                continue;
            }
            pushed.push(Pushed {
                warehouse,
                sku: sku.clone(),
                physical: target.physical,
                sellable: target.sellable,
            });
        }
        if !unknown.is_empty() {
            // ERPs stock items a brand does not sell online: one exception per warehouse
            // (its count grows), not one per item.
            let examples: Vec<&str> = unknown.iter().take(10).copied().collect();
            self.raise_with_payload(
                ExceptionKind::StockRefused,
                format!("unknown-skus:{warehouse}"),
                format!(
                    "Centra does not know {} item(s) the ERP stocks for warehouse {warehouse} \
                     (for example {}), so their stock is not in Centra. If they should sell \
                     online, create the sizes in Centra or map the ERP items to the right SKUs \
                     (ferry mapping); if not, close this. Ferry tries them again on each sweep.",
                    unknown.len(),
                    examples.join(", ")
                ),
                format!("setStock skipped {} unknown sizes", unknown.len()),
                unknown.join("\n").into_bytes(),
            )
            .await?;
        }
        self.store.mark_pushed(&tenant, &pushed).await?;
        for p in &pushed {
            if let Some(e) = self.entries.get_mut(&(p.warehouse, p.sku.clone())) {
                e.pushed_physical = Some(p.physical);
                e.pushed_sellable = Some(p.sellable);
                e.force = false;
            }
        }
        let label = match priority {
            Priority::ZeroStock => "selling_out",
            Priority::Shipments => "shipments",
            Priority::Ordinary => "ordinary",
        };
        metrics::counter!("ferry_stock_pushes_total", "tenant" => tenant.clone(), "priority" => label)
            .increment(1);
        metrics::counter!("ferry_stock_sizes_pushed_total", "tenant" => tenant, "priority" => label)
            .increment(pushed.len() as u64);
        Ok(())
    }

    /// Every size is sent again (ordinary priority); SKUs Centra did not know are tried
    /// again; commitments of finished orders are forgotten.
    async fn sweep(&mut self) -> Result<(), StepError> {
        self.last_sweep = Instant::now();
        self.load_skus().await?;
        for entry in self.entries.values_mut() {
            if entry.skip == Some(Skip::Unknown) {
                entry.skip = None;
            }
            entry.force = true;
        }
        self.ordinary_round = true;
        self.dirty = true;
        let pruned = self.store.prune_commitments(&self.tenant.id).await?;
        tracing::info!(tenant = %self.tenant.id, sizes = self.entries.len(), pruned, "stock sweep");
        Ok(())
    }

    /// Compares one page of Centra's free-to-allocate stock with what Ferry expects. Centra
    /// offering more than expected is corrected (sent again) and checked again next time;
    /// one that survives `drift_checks` corrections is an operations exception.
    async fn check_drift(&mut self) -> Result<(), StepError> {
        let every = self.tenant.inventory.drift_interval;
        if every.is_zero()
            || self.last_drift.elapsed() < every
            || self.centra.limiter().remaining() <= RESERVED_REQUESTS
        {
            return Ok(());
        }
        self.last_drift = Instant::now();
        let mut page: Vec<Key> = std::mem::take(&mut self.recheck);
        let chosen: HashSet<Key> = page.iter().cloned().collect();
        let mut sorted: Vec<&Key> = self
            .entries
            .iter()
            .filter(|(_, e)| e.pushed_physical.is_some() && e.skip.is_none())
            .map(|(k, _)| k)
            .collect();
        sorted.sort();
        let n = sorted.len();
        let start = if n == 0 { 0 } else { self.drift_cursor % n };
        for i in 0..n {
            if page.len() >= ferry_centra::client::MAX_PAGE {
                break;
            }
            let key = sorted[(start + i) % n];
            self.drift_cursor = (start + i + 1) % n;
            if !chosen.contains(key) {
                page.push(key.clone());
            }
        }
        let mut by_warehouse: BTreeMap<i64, Vec<String>> = BTreeMap::new();
        for (w, sku) in page {
            by_warehouse.entry(w).or_default().push(sku);
        }
        for (warehouse, skus) in by_warehouse {
            let refs: Vec<&str> = skus.iter().map(String::as_str).collect();
            let seen = self.centra.stock_levels(warehouse, &refs).await?;
            for s in seen {
                let key = (warehouse, s.sku.clone());
                let Some(entry) = self.entries.get(&key).cloned() else {
                    continue;
                };
                let (Some(physical), Some(sellable)) =
                    (entry.pushed_physical, entry.pushed_sellable)
                else {
                    continue;
                };
                let reserved = if warehouse == self.allocation_warehouse {
                    self.reserved.get(&s.sku).map(Reserved::total).unwrap_or(0)
                } else {
                    0
                };
                let expected = physical - reserved;
                if s.free_to_allocate <= expected {
                    // Less than expected is what orders on their way to Ferry (or held by
                    // it) look like: Centra has allocated units Ferry does not know yet.
                    // Only offering more than Ferry computed risks overselling.
                    if s.free_to_allocate < expected && sellable > 0 {
                        metrics::counter!("ferry_stock_shortfall_total", "tenant" => self.tenant.id.clone())
                            .increment(1);
                    }
                    self.drift.remove(&key);
                    continue;
                }
                let seen_times = {
                    let n = self.drift.entry(key.clone()).or_insert(0);
                    *n += 1;
                    *n
                };
                metrics::counter!("ferry_stock_drift_total", "tenant" => self.tenant.id.clone())
                    .increment(1);
                tracing::info!(tenant = %self.tenant.id, warehouse, sku = %s.sku, expected, centra = s.free_to_allocate, "stock drift; sending again");
                if let Some(e) = self.entries.get_mut(&key) {
                    e.force = true;
                }
                self.dirty = true;
                self.recheck.push(key.clone());
                if seen_times >= self.tenant.inventory.drift_checks.max(1) {
                    self.raise(
                        ExceptionKind::StockDrift,
                        format!("sku:{warehouse}:{}", s.sku),
                        format!(
                            "Centra offers {} of {} in warehouse {warehouse} but should offer {expected} \
                             (ERP stock less open orders and buffer), and it has come back {seen_times} \
                             times after Ferry corrected it. Something else is changing this stock in \
                             Centra (a person, another integration, a warehouse threshold). Find it and \
                             stop it; until then customers may be offered stock that is not there.",
                            s.free_to_allocate, s.sku
                        ),
                        format!(
                            "freeToAllocate {} != expected {expected} (pushed physical {physical}, reserved {reserved})",
                            s.free_to_allocate
                        ),
                    )
                    .await?;
                }
            }
        }
        Ok(())
    }

    async fn raise(
        &self,
        kind: ExceptionKind,
        key: String,
        message: String,
        reason: String,
    ) -> Result<(), StepError> {
        self.raise_with_payload(kind, key, message, reason, Vec::new())
            .await
    }

    async fn raise_with_payload(
        &self,
        kind: ExceptionKind,
        key: String,
        message: String,
        reason: String,
        payload: Vec<u8>,
    ) -> Result<(), StepError> {
        let exception = NewException {
            tenant: self.tenant.id.clone(),
            kind,
            key,
            message,
            reason,
            order_number: None,
            amount_minor: None,
            currency: None,
            service: SERVICE.to_owned(),
            source_subject: None,
            payload,
        };
        self.sink
            .record(&exception)
            .await
            .map_err(|e| StepError::Sink(e.to_string()))
    }
}

fn now_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::expect_used)] // a failing test says what broke

    use super::*;

    fn line(
        kind: pb::LineKind,
        sku: Option<&str>,
        item: &str,
        quantity: i64,
    ) -> pb::SalesOrderLine {
        pb::SalesOrderLine {
            kind: kind as i32,
            centra_line_id: Some(7),
            sku: sku.map(str::to_owned),
            erp_item: item.to_owned(),
            quantity,
            tax_rate_percent: "25".to_owned(),
            gross_minor: 12_500,
            tax_minor: 2_500,
            net_minor: 10_000,
            bundle_line_id: None,
            description: "Jacket".to_owned(),
            bundle_quantity: None,
        }
    }

    /// The units view reads a whole published `OrderReady` (same field numbers) and yields
    /// what decoding the full order would: item lines only, summed per (item, SKU).
    #[test]
    fn the_units_view_reads_a_full_ready_order() {
        let full = pb::OrderReady {
            order: Some(pb::SalesOrder {
                tenant: "acme".to_owned(),
                order_number: 4711,
                centra_order_id: "c-4711".to_owned(),
                currency: "SEK".to_owned(),
                lines: vec![
                    line(pb::LineKind::Item, Some("JKT-M"), "JKT", 2),
                    line(pb::LineKind::Item, Some("JKT-M"), "JKT", 1),
                    line(pb::LineKind::Item, Some("TEE-S"), "TEE", 3),
                    line(pb::LineKind::Item, Some("GONE"), "GONE", 0),
                    line(pb::LineKind::Shipping, None, "SHIP", 1),
                ],
                customer: Some(pb::Customer {
                    email: "someone@example.com".to_owned(),
                    ..Default::default()
                }),
                market: "SE".to_owned(),
                snapshot_hash: "h".to_owned(),
                ..Default::default()
            }),
        }
        .encode_to_vec();
        let view = pb::OrderReadyUnits::decode(full.as_slice()).expect("decodes");
        let units = order_units(view.order.expect("an order"));
        assert_eq!(units.order_number, 4711);
        assert_eq!(
            units.lines,
            vec![
                ("JKT".to_owned(), "JKT-M".to_owned(), 3),
                ("TEE".to_owned(), "TEE-S".to_owned(), 3),
            ]
        );
    }
}
