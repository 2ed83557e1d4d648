//! A circuit breaker per tenant's ERP: after a run of failures that say "the ERP is not
//! there" it opens, the writer's consumer stops pulling (orders wait in the stream, their
//! delivery count untouched), and its probe — a feed on the feed runner, so backoff with
//! jitter, spans and metrics are the runner's — asks the ERP's health until it answers;
//! then consumption resumes.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use ferry_erp::{Erp, ErpError};
use ferry_runtime::consumer::Gate;
use ferry_runtime::{Feed, FeedError, FeedSpec, Pass};
use tokio::sync::watch;

/// When to open and how to probe.
#[derive(Debug, Clone)]
pub struct BreakerConfig {
    /// Consecutive failed ERP calls that open the breaker.
    pub threshold: u32,
    pub probe_min: Duration,
    pub probe_max: Duration,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            threshold: 8,
            probe_min: Duration::from_millis(250),
            probe_max: Duration::from_secs(5),
        }
    }
}

pub struct Breaker {
    tenant: String,
    config: BreakerConfig,
    erp: Arc<dyn Erp>,
    failures: AtomicU32,
    /// true while traffic may flow (the breaker is closed).
    open_for_traffic: watch::Sender<bool>,
    /// The state to record for people (the console's sync health): the latest wins, one
    /// writer per breaker, so an older state can never land after a newer one.
    recorded: Option<watch::Sender<bool>>,
}

/// The probe's feed name.
pub const PROBE_FEED: &str = "erp-health-probe";

impl Breaker {
    pub fn new(
        tenant: &str,
        config: BreakerConfig,
        erp: Arc<dyn Erp>,
        store: Option<ferry_store::Store>,
    ) -> Arc<Self> {
        let recorded = store.map(|store| {
            let (tx, rx) = watch::channel(false);
            tokio::spawn(record_breaker(store, tenant.to_owned(), rx));
            tx
        });
        // Closed from the start, so the alert's series exists before the first outage.
        metrics::gauge!("ferry_erp_breaker_open", "tenant" => tenant.to_owned()).set(0.0);
        Arc::new(Self {
            tenant: tenant.to_owned(),
            config,
            erp,
            failures: AtomicU32::new(0),
            open_for_traffic: watch::Sender::new(true),
            recorded,
        })
    }

    /// Has the breaker's state recorded (in the background: what people see must never
    /// hold up posting).
    fn tell(&self, open: bool) {
        if let Some(recorded) = &self.recorded {
            recorded.send_replace(open);
        }
    }

    /// How the probe runs: in every replica (each has its own breaker), looking each
    /// `probe_min` whether the breaker is open, then asking the ERP with backoff up to
    /// `probe_max`.
    pub fn probe_spec(&self, service: &'static str) -> FeedSpec {
        FeedSpec::periodic(
            service,
            &self.tenant,
            PROBE_FEED,
            self.config.probe_min,
            false,
        )
        .backoff(self.config.probe_min, self.config.probe_max)
        .quiet()
    }

    /// Whether an ERP error says the ERP is away (rather than refusing one order).
    pub fn counts(error: &ErpError) -> bool {
        !matches!(error, ErpError::Rejected(_))
    }

    /// Counts one request by its results (one per order it carried): the ERP answered if
    /// any of them is an answer, even a refusal; a request failed only if none is.
    pub fn observe<'a, T: 'a>(
        self: &Arc<Self>,
        results: impl IntoIterator<Item = &'a Result<T, ErpError>>,
    ) {
        let answered = results
            .into_iter()
            .any(|r| !matches!(r, Err(e) if Self::counts(e)));
        if answered {
            self.success();
        } else {
            self.failure();
        }
    }

    pub fn success(&self) {
        self.failures.store(0, Ordering::Relaxed);
    }

    pub fn failure(self: &Arc<Self>) {
        let n = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
        if n < self.config.threshold {
            return;
        }
        let opened = self.open_for_traffic.send_if_modified(|flowing| {
            let was = *flowing;
            *flowing = false;
            was
        });
        if opened {
            tracing::warn!(tenant = %self.tenant, failures = n, "ERP unavailable: pausing posts and probing its health");
            metrics::gauge!("ferry_erp_breaker_open", "tenant" => self.tenant.clone()).set(1.0);
            self.tell(true);
        }
    }

    fn close(&self) {
        self.failures.store(0, Ordering::Relaxed);
        self.open_for_traffic.send_replace(true);
        metrics::gauge!("ferry_erp_breaker_open", "tenant" => self.tenant.clone()).set(0.0);
        self.tell(false);
        tracing::info!(tenant = %self.tenant, "ERP answers again: posting resumes");
    }
}

/// Writes the latest state told, as this replica, each time it is told (so an older state
/// never lands after a newer one); ends with the breaker. Nothing is written before it
/// first opens.
async fn record_breaker(
    store: ferry_store::Store,
    tenant: String,
    mut state: watch::Receiver<bool>,
) {
    let replica = uuid::Uuid::new_v4();
    while state.changed().await.is_ok() {
        let open = *state.borrow_and_update();
        if let Err(e) = store.record_breaker(&tenant, replica, open).await {
            tracing::debug!(error = %e, "the ERP breaker's state was not recorded");
        }
    }
}

/// The breaker's probe: nothing to do while traffic flows; while the breaker is open, one
/// health request per pass, failures retried with the runner's backoff.
#[async_trait]
impl Feed for Breaker {
    async fn pass(&self, _cursor: &str) -> Result<Pass, FeedError> {
        if self.is_open() {
            return Ok(Pass::default());
        }
        // Still open: said again on every probe (at most the probe's backoff apart), so a
        // replica that went away stops counting within a minute.
        self.tell(true);
        self.erp.health().await.map_err(FeedError::transient)?;
        self.close();
        Ok(Pass {
            items: 1,
            ..Pass::default()
        })
    }
}

#[async_trait]
impl Gate for Breaker {
    fn is_open(&self) -> bool {
        *self.open_for_traffic.borrow()
    }

    async fn wait_open(&self) {
        let mut rx = self.open_for_traffic.subscribe();
        let _ = rx.wait_for(|flowing| *flowing).await;
    }
}
