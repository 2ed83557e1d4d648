//! What a Ferry service process starts with, in one value: the runtime's base (NATS, the
//! streams, readiness, shutdown), the whole configuration, the store (migrated, its
//! planner statistics kept current), the exception sink (the store, then an event), the
//! feed runner, and the dead-letter recorder running. The runtime knows nothing of the
//! store and the store nothing of the runtime; this crate joins them.

use std::sync::Arc;

use async_trait::async_trait;
use ferry_config::Config;
use ferry_domain::NewException;
use ferry_runtime::exceptions::{ExceptionStore, RecordAndAnnounce, SinkError};
use ferry_runtime::ops::ReadinessCheck;
use ferry_runtime::{
    ExceptionSink, Feed, FeedError, FeedRunner, FeedSpec, Pass, Readiness, ServiceBase,
};
use ferry_store::{Store, StoreError};
use tokio_util::sync::CancellationToken;

#[derive(Debug, thiserror::Error)]
pub enum PlatformError {
    #[error(transparent)]
    Nats(#[from] ferry_runtime::nats::NatsError),
    #[error("the database: {0}")]
    Store(#[from] StoreError),
}

/// A service process's foundation.
#[derive(Clone)]
pub struct Platform {
    pub base: ServiceBase,
    pub config: Arc<Config>,
    pub store: Store,
    pub sink: Arc<dyn ExceptionSink>,
    pub feeds: FeedRunner,
}

impl Platform {
    /// Connects to NATS (provisioning the streams) and the database (migrating it), and
    /// starts what every service process runs beside its own work.
    pub async fn open(
        name: &'static str,
        config: Arc<Config>,
        shutdown: CancellationToken,
        readiness: Readiness,
    ) -> Result<Platform, PlatformError> {
        let base =
            ServiceBase::connect(name, Arc::new(config.runtime()), shutdown, readiness).await?;
        Platform::on(base, config).await
    }

    /// [`Platform::open`] on a base already connected.
    pub async fn on(base: ServiceBase, config: Arc<Config>) -> Result<Platform, PlatformError> {
        let store = Store::connect(&config.database).await?;
        if config.database.migrate_on_start {
            store.migrate().await?;
        }
        base.readiness.add(Arc::new(DatabaseReady(store.clone())));
        let sink = exception_sink(&store, &base);
        let feeds = FeedRunner::open(&base, sink.clone()).await?;
        let interval = config.database.analyze_interval;
        if !interval.is_zero() {
            // Every process keeps the statistics (one at a time analyses; ADR 0019).
            let spec = FeedSpec::periodic(
                base.name,
                "_deployment",
                "planner-statistics",
                interval,
                false,
            )
            .quiet();
            feeds.spawn(
                spec,
                Arc::new(Statistics(store.clone())),
                base.shutdown.clone(),
            );
        }
        let tenants = config.tenants.iter().map(|t| t.id.clone()).collect();
        ferry_runtime::dead_letters::Recorder::spawn(&base, sink.clone(), tenants);
        Ok(Platform {
            base,
            config,
            store,
            sink,
            feeds,
        })
    }
}

/// The exception sink of a process: the exceptions inbox in PostgreSQL, then an event on
/// the EXCEPTIONS stream.
pub fn exception_sink(store: &Store, base: &ServiceBase) -> Arc<dyn ExceptionSink> {
    Arc::new(RecordAndAnnounce {
        store: Arc::new(StoreExceptions(store.clone())),
        publisher: base.publisher.clone(),
        topology: base.topology.clone(),
    })
}

/// The exceptions inbox in PostgreSQL.
struct StoreExceptions(Store);

#[async_trait]
impl ExceptionStore for StoreExceptions {
    async fn upsert(&self, exception: &NewException) -> Result<(String, i64), SinkError> {
        let trace = ferry_runtime::telemetry::current_trace_id();
        self.0
            .upsert_traced_exception(exception, Some(trace.as_str()).filter(|t| !t.is_empty()))
            .await
            .map_err(|e| SinkError(e.to_string()))
    }
}

/// The database is ready when it answers a query.
pub struct DatabaseReady(pub Store);

#[async_trait]
impl ReadinessCheck for DatabaseReady {
    fn name(&self) -> &'static str {
        "database"
    }

    async fn check(&self) -> Result<(), String> {
        self.0.ping().await.map_err(|e| e.to_string())
    }
}

/// Keeps PostgreSQL's planner statistics of the keyed tables current (ADR 0019): stale
/// statistics cost speed, never correctness, so a failed pass is only retried.
struct Statistics(Store);

#[async_trait]
impl Feed for Statistics {
    async fn pass(&self, _cursor: &str) -> Result<Pass, FeedError> {
        let tables = self
            .0
            .refresh_statistics()
            .await
            .map_err(FeedError::transient)?;
        if !tables.is_empty() {
            tracing::debug!(?tables, "planner statistics refreshed");
        }
        Ok(Pass {
            items: tables.len() as u64,
            ..Pass::default()
        })
    }
}
