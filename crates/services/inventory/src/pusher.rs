//! The pusher's state and its pass: what is known per (Centra warehouse, SKU) — the ERP's
//! latest level, what Centra was told — and the units Centra holds for orders, kept in
//! memory by the one replica that leads the tenant's pushing.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use ferry_centra::{CentraClient, CentraError};
use ferry_config::TenantConfig;
use ferry_runtime::{ExceptionSink, Feed, FeedError, Pass};
use ferry_store::Store;
use ferry_store::fulfilment::{MutationBudget, Priority};
use ferry_store::inventory::RecentPost;
use parking_lot::RwLock;
use tokio::sync::Mutex;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::time::Instant;

use crate::levels::{Key, Mapping, Observation};
use crate::plan::{self, Reserved, Target};

/// Why a pass stopped early; the feed runner retries with backoff.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StepError {
    #[error("Centra: {0}")]
    Centra(#[from] CentraError),
    #[error("the database: {0}")]
    Store(#[from] ferry_store::StoreError),
    #[error("recording an exception: {0}")]
    Sink(String),
}

impl From<StepError> for FeedError {
    fn from(e: StepError) -> Self {
        let retry_after = match &e {
            StepError::Centra(e) => e.retry_after(),
            _ => None,
        };
        FeedError::Transient {
            reason: e.to_string(),
            retry_after,
        }
    }
}

/// Why Centra will not take a SKU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Skip {
    /// Centra derives a bundle's stock from its components.
    Bundle,
    /// Centra does not know the SKU (retried on the next sweep).
    Unknown,
}

impl Skip {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Skip::Bundle => "bundle",
            Skip::Unknown => "unknown",
        }
    }
}

#[derive(Debug, Clone, Default)]
pub(crate) struct Entry {
    pub erp_available: i64,
    pub erp_version: i64,
    /// When the ERP's level was read, µs since the epoch.
    pub erp_read_at: i64,
    pub pushed_physical: Option<i64>,
    pub pushed_sellable: Option<i64>,
    pub skip: Option<Skip>,
    /// Send even if Centra should already have it (sweep, drift).
    pub force: bool,
}

/// Units Centra holds for orders Ferry knows, for one SKU.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Held {
    pub reserved: Reserved,
    /// Of `posted_unshipped`, orders posted recently.
    pub recent: Vec<RecentPost>,
}

impl Held {
    /// What counts against a level read at `read_at` (µs), seen at `now`: an order posted
    /// after the read may not show in it yet, so it counts as pending (Centra offers less
    /// for a moment, never more) — unless the read came after its posting began and
    /// `settle` has passed since it was posted with no newer level: the ERP's change
    /// would have brought a newer one by then, so this one shows the order.
    pub fn against(&self, read_at: i64, now: i64, settle: i64) -> Reserved {
        let unseen: i64 = self
            .recent
            .iter()
            .filter(|r| r.posted_at > read_at)
            .filter(|r| !(read_at >= r.started_at && now >= r.posted_at.saturating_add(settle)))
            .map(|r| r.units)
            .sum();
        Reserved {
            pending: self.reserved.pending + unseen,
            posted_unshipped: (self.reserved.posted_unshipped - unseen).max(0),
        }
    }

    /// Whether one of its orders settled (see [`Held::against`]) in `(after, until]`.
    fn settled_between(&self, after: i64, until: i64, settle: i64) -> bool {
        self.recent.iter().any(|r| {
            let at = r.posted_at.saturating_add(settle);
            after < at && at <= until
        })
    }
}

/// Units Centra holds for orders Ferry knows, per SKU.
#[derive(Default)]
pub(crate) struct Reservations {
    pub by_sku: HashMap<String, Held>,
    /// Units per SKU Centra recorded shipped, as last read (`None` before the first read).
    pub(crate) shipped: Option<HashMap<String, i64>>,
    read_at: Option<Instant>,
    /// The same moment by the wall clock, µs since the epoch.
    read_wall: i64,
}

/// How far back orders count as recently posted: longer than any level takes to reach the
/// pusher, short enough to keep the query small.
const RECENT: Duration = Duration::from_secs(15 * 60);

/// How often the commitments of finished orders are forgotten.
pub(crate) const PRUNE_EVERY: Duration = Duration::from_secs(60);

/// When ordinary work, sweeps and drift checks are due.
pub(crate) struct Rounds {
    pub last_ordinary: Instant,
    /// An ordinary round is under way (started, not everything sent yet).
    pub ordinary_round: bool,
    pub last_sweep: Instant,
    pub last_prune: Instant,
    /// Something a target depends on changed since targets were last computed.
    pub dirty: bool,
    /// Sizes selling out could not all be sent (budget): compute again next pass.
    pub selling_out_waiting: bool,
}

/// The drift check's progress.
pub(crate) struct Drift {
    /// Corrections per size that came back.
    pub seen: HashMap<Key, u32>,
    /// Sizes corrected last time, checked first next time.
    pub recheck: Vec<Key>,
    pub cursor: usize,
    pub last: Instant,
}

/// The tenant's share of Centra's mutation budget, and how long it said to wait.
pub(crate) struct Budget {
    pub budget: MutationBudget,
    pub wait: Option<(Priority, Instant)>,
}

pub(crate) struct Pusher {
    pub tenant: TenantConfig,
    pub centra: CentraClient,
    pub store: Store,
    pub sink: Arc<dyn ExceptionSink>,
    mapping: Arc<RwLock<Mapping>>,
    /// The Centra warehouse Centra allocates orders from (where reservations count).
    pub allocation_warehouse: i64,
    pub entries: HashMap<Key, Entry>,
    pub reserved: Reservations,
    pub budget: Budget,
    pub rounds: Rounds,
    pub drift: Drift,
    /// The stock consumer's backlog as the latest level said, and when it came.
    backlog: (u64, Option<Instant>),
}

impl Pusher {
    pub(crate) fn new(
        tenant: TenantConfig,
        store: Store,
        sink: Arc<dyn ExceptionSink>,
        mapping: Arc<RwLock<Mapping>>,
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
                    .pacing_for(ferry_config::CentraCaller::InventoryPusher),
                tenant.centra.timeout,
            )
            .for_tenant(&tenant.id),
            budget: Budget {
                budget: MutationBudget::for_tenant(&tenant),
                wait: None,
            },
            allocation_warehouse,
            tenant,
            store,
            sink,
            mapping,
            entries: HashMap::new(),
            reserved: Reservations::default(),
            rounds: Rounds {
                last_ordinary: now,
                ordinary_round: true,
                last_sweep: now,
                // Due at once: a leader that has just taken over (after a crash) may not live
                // the minute.
                last_prune: now.checked_sub(PRUNE_EVERY).unwrap_or(now),
                dirty: true,
                selling_out_waiting: false,
            },
            drift: Drift {
                seen: HashMap::new(),
                recheck: Vec::new(),
                cursor: 0,
                last: now,
            },
            backlog: (0, None),
        }
    }

    /// Loads what is stored: every level and what Centra was told, and the SKU mappings.
    pub(crate) async fn load(&mut self) -> Result<(), StepError> {
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
                    erp_read_at: r.erp_read_at,
                    pushed_physical: r.pushed_physical,
                    pushed_sellable: r.pushed_sellable,
                    skip,
                    force: false,
                };
                ((r.warehouse, r.sku), entry)
            })
            .collect();
        self.load_skus().await?;
        self.reserved = Reservations::default();
        self.rounds.ordinary_round = true;
        self.rounds.dirty = true;
        self.backlog = (0, None);
        tracing::info!(%tenant, sizes = self.entries.len(), "inventory pusher leading");
        Ok(())
    }

    /// ERP item → SKU from the tenant's SKU mappings; an item no mapping names keeps its
    /// code, one named by several SKUs is not pushed (their stock would be sold twice).
    pub(crate) async fn load_skus(&mut self) -> Result<(), StepError> {
        let pairs = self.store.sku_map(&self.tenant.id).await?;
        for item in self.mapping.write().set_skus(pairs.into_iter().collect()) {
            tracing::warn!(tenant = %self.tenant.id, item = %item, "several SKUs map to one ERP item; its stock is not pushed");
        }
        Ok(())
    }

    /// Takes one stored ERP level if it is newer than what is known.
    fn observe(&mut self, o: Observation) {
        self.backlog = (o.pending, Some(Instant::now()));
        let entry = self.entries.entry(o.key).or_default();
        if entry.erp_version >= o.version {
            return;
        }
        entry.erp_available = o.available;
        entry.erp_version = o.version;
        entry.erp_read_at = o.read_at;
        self.rounds.dirty = true;
    }

    /// Levels are still arriving: ordinary sizes wait for their latest level, so each is
    /// sent once (coalescing); items selling out go at once regardless.
    fn levels_arriving(&self) -> bool {
        match self.backlog {
            (pending, Some(at)) => pending > 0 && at.elapsed() < Duration::from_secs(1),
            _ => false,
        }
    }

    /// Reads the units Centra holds for orders: every poll interval, and at once when a
    /// level read after the last reading arrived (it may show an order posted since).
    async fn refresh_reserved(&mut self, newest_level: i64) -> Result<(), StepError> {
        let poll = self.tenant.inventory.poll_interval;
        let fresh = self.reserved.read_at.is_some_and(|at| at.elapsed() < poll)
            && newest_level <= self.reserved.read_wall;
        if self.entries.is_empty() || fresh {
            return Ok(());
        }
        let (before, now) = (self.reserved.read_wall, now_micros());
        let settle = self.settle_micros();
        if self
            .reserved
            .by_sku
            .values()
            .any(|h| h.settled_between(before, now, settle))
        {
            self.rounds.dirty = true;
        }
        self.reserved.read_at = Some(Instant::now());
        self.reserved.read_wall = now;
        let commitments = self.store.commitments(&self.tenant.id, RECENT).await?;
        let shipped: HashMap<String, i64> = commitments
            .iter()
            .map(|c| (c.sku.clone(), c.shipped))
            .collect();
        // A shipment Centra recorded lowered its physical stock by its units: what Centra
        // holds is what Ferry sent less them, so the (equally lower) target is not sent again.
        if let Some(before) = &self.reserved.shipped {
            for (sku, now) in &shipped {
                let gone = now - before.get(sku).copied().unwrap_or(0);
                if gone > 0
                    && let Some(entry) = self
                        .entries
                        .get_mut(&(self.allocation_warehouse, sku.clone()))
                    && let Some(physical) = entry.pushed_physical.as_mut()
                {
                    *physical -= gone;
                    self.rounds.dirty = true;
                }
            }
        }
        self.reserved.shipped = Some(shipped);
        let by_sku: HashMap<String, Held> = commitments
            .into_iter()
            .map(|c| {
                (
                    c.sku,
                    Held {
                        reserved: Reserved {
                            pending: c.pending,
                            posted_unshipped: c.posted_unshipped,
                        },
                        recent: c.recent,
                    },
                )
            })
            .collect();
        if by_sku != self.reserved.by_sku {
            self.reserved.by_sku = by_sku;
            self.rounds.dirty = true;
        }
        Ok(())
    }

    /// How long after posting an order a level read since its posting began is taken to
    /// show it: two ERP polls and a second (the change would have brought a newer level).
    fn settle_micros(&self) -> i64 {
        let poll = self.tenant.inventory.poll_interval * 2 + Duration::from_secs(1);
        i64::try_from(poll.as_micros()).unwrap_or(i64::MAX)
    }

    pub(crate) fn target_of(&self, key: &Key, entry: &Entry) -> Target {
        let reserved = if key.0 == self.allocation_warehouse {
            self.reserved
                .by_sku
                .get(&key.1)
                .map(|held| held.against(entry.erp_read_at, now_micros(), self.settle_micros()))
                .unwrap_or_default()
        } else {
            Reserved::default()
        };
        let buffer = self.tenant.inventory.buffer.for_sku(key.0, &key.1);
        plan::target(entry.erp_available, reserved, buffer)
    }

    /// One pass: take the levels that arrived, push what Centra lacks, check drift, sweep.
    async fn pass(
        &mut self,
        arrivals: &mut UnboundedReceiver<Observation>,
    ) -> Result<(), StepError> {
        let mut newest_level = 0;
        while let Ok(o) = arrivals.try_recv() {
            newest_level = newest_level.max(o.read_at);
            self.observe(o);
        }
        self.refresh_reserved(newest_level).await?;
        let ordinary = !self.levels_arriving();
        self.push(ordinary).await?;
        self.check_drift().await?;
        if self.rounds.last_sweep.elapsed() >= self.tenant.inventory.sweep_interval {
            self.sweep().await?;
        } else if self.rounds.last_prune.elapsed() >= PRUNE_EVERY {
            self.prune().await?;
        }
        Ok(())
    }
}

fn now_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// The pusher as a feed: one replica per tenant leads, loading what is stored when it
/// starts to; levels reach it from the stock consumer of its own process.
pub(crate) struct PusherFeed {
    pusher: Mutex<Pusher>,
    arrivals: Mutex<UnboundedReceiver<Observation>>,
}

impl PusherFeed {
    pub(crate) fn new(pusher: Pusher, arrivals: UnboundedReceiver<Observation>) -> Self {
        PusherFeed {
            pusher: Mutex::new(pusher),
            arrivals: Mutex::new(arrivals),
        }
    }
}

#[async_trait]
impl Feed for PusherFeed {
    async fn lead(&self) -> Result<(), FeedError> {
        Ok(self.pusher.lock().await.load().await?)
    }

    async fn pass(&self, _cursor: &str) -> Result<Pass, FeedError> {
        let mut pusher = self.pusher.lock().await;
        let mut arrivals = self.arrivals.lock().await;
        pusher.pass(&mut arrivals).await?;
        Ok(Pass::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn post(posted_at: i64, started_at: i64, units: i64) -> RecentPost {
        RecentPost {
            posted_at,
            started_at,
            units,
        }
    }

    #[test]
    fn an_order_posted_after_the_level_was_read_still_counts_as_pending() {
        let held = Held {
            reserved: Reserved {
                pending: 1,
                posted_unshipped: 5,
            },
            recent: vec![post(1_000, 900, 2), post(3_000, 2_900, 3)],
        };
        let soon = |read| held.against(read, 3_100, 10_000);
        // Read before both: both still count pending.
        assert_eq!(
            soon(500),
            Reserved {
                pending: 6,
                posted_unshipped: 0
            }
        );
        // Read between: the later one does.
        assert_eq!(
            soon(2_000),
            Reserved {
                pending: 4,
                posted_unshipped: 2
            }
        );
        // Read after both: as the ledger says.
        assert_eq!(soon(5_000), held.reserved);
        // The total Centra holds never changes.
        for at in [0, 2_000, 9_000] {
            assert_eq!(soon(at).total(), held.reserved.total());
        }
    }

    #[test]
    fn a_level_read_while_the_order_was_being_posted_shows_it_once_settled() {
        let held = Held {
            reserved: Reserved {
                pending: 0,
                posted_unshipped: 3,
            },
            recent: vec![post(3_000, 2_000, 3)],
        };
        // Read at 2,500: after the posting began, before the ledger said posted.
        let unsettled = held.against(2_500, 3_500, 1_000);
        assert_eq!(unsettled.pending, 3, "less for a moment");
        assert_eq!(
            held.against(2_500, 4_000, 1_000),
            held.reserved,
            "then settled"
        );
        // Read before the posting began: the ERP cannot have had it, however long ago.
        assert_eq!(held.against(1_500, 99_000, 1_000).pending, 3);
        assert!(held.settled_between(3_900, 4_000, 1_000));
        assert!(!held.settled_between(4_000, 9_000, 1_000));
    }
}
