//! A circuit breaker per tenant's ERP: after a run of failures that say "the ERP is not
//! there" it opens, the writer's consumer stops pulling (orders wait in the stream, their
//! delivery count untouched), and one prober asks the ERP's health with backoff and jitter
//! until it answers; then consumption resumes.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use backon::BackoffBuilder;
use ferry_erp::{ErpConnector, ErpError};
use ferry_runtime::consumer::Gate;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

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
    erp: Arc<dyn ErpConnector>,
    failures: AtomicU32,
    /// true while traffic may flow (the breaker is closed).
    open_for_traffic: watch::Sender<bool>,
    shutdown: CancellationToken,
}

impl Breaker {
    pub fn new(
        tenant: &str,
        config: BreakerConfig,
        erp: Arc<dyn ErpConnector>,
        shutdown: CancellationToken,
    ) -> Arc<Self> {
        Arc::new(Self {
            tenant: tenant.to_owned(),
            config,
            erp,
            failures: AtomicU32::new(0),
            open_for_traffic: watch::Sender::new(true),
            shutdown,
        })
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
        // Only the call that flips it starts the prober.
        let opened = self.open_for_traffic.send_if_modified(|flowing| {
            let was = *flowing;
            *flowing = false;
            was
        });
        if opened {
            tracing::warn!(tenant = %self.tenant, failures = n, "ERP unavailable: pausing posts and probing its health");
            metrics::gauge!("ferry_erp_breaker_open", "tenant" => self.tenant.clone()).set(1.0);
            let me = self.clone();
            tokio::spawn(async move { me.probe().await });
        }
    }

    async fn probe(self: Arc<Self>) {
        let delays = backon::ExponentialBuilder::default()
            .with_min_delay(self.config.probe_min)
            .with_max_delay(self.config.probe_max)
            .with_jitter()
            .without_max_times()
            .build();
        for delay in delays {
            tokio::select! {
                _ = self.shutdown.cancelled() => return,
                _ = tokio::time::sleep(delay) => {}
            }
            if self.erp.health().await.is_ok() {
                break;
            }
        }
        self.failures.store(0, Ordering::Relaxed);
        self.open_for_traffic.send_replace(true);
        metrics::gauge!("ferry_erp_breaker_open", "tenant" => self.tenant.clone()).set(0.0);
        tracing::info!(tenant = %self.tenant, "ERP answers again: posting resumes");
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
