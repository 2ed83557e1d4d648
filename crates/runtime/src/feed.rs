//! The feed runner: every loop that reads a source or checks something on a clock — the
//! ERP's shipment and stock feeds, Centra's Events queue and resync, periodic checks — runs
//! here, beside the consumer runner. A service writes one [`Feed::pass`]; the runner brings
//! leadership per (tenant, feed) (one replica at a time, another takes over within the lease
//! TTL), the durable cursor (stored only after a pass returns, fenced by revision so a
//! replica that lost its lease cannot move it), backon's schedule after a failure, a span
//! per pass, metrics, the exception sink, and shutdown.
//!
//! | pass returns | runner does |
//! |---|---|
//! | `Ok` with items, `more` | stores the cursor, passes again at once |
//! | `Ok`, nothing new | stores the cursor, waits `every` |
//! | `Transient` | waits what it asked for, else backon's next delay |
//! | `Permanent` | records the exception (with its payload), then waits like a failure |

use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, kv};
use async_trait::async_trait;
use backon::{BackoffBuilder, ExponentialBuilder};
use bytes::Bytes;
use ferry_domain::NewException;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::ServiceBase;
use crate::config::FeedsConfig;
use crate::exceptions::ExceptionSink;
use crate::lease::{Leading, Lease, Leases, lease_key, open_bucket};
use crate::nats::{NatsError, Topology};

/// What one pass did.
#[derive(Debug, Clone, Default)]
pub struct Pass {
    /// Where the next pass starts (ignored by feeds without a cursor).
    pub cursor: String,
    /// Items handled (shipments published, events stored, …).
    pub items: u64,
    /// The source has more right now: pass again without waiting.
    pub more: bool,
    /// How far behind the source this pass found the feed, where the source says.
    pub lag: Option<Duration>,
    /// Items the pass went on without (a record that cannot be read): each becomes an
    /// exception, recorded before the cursor moves past it.
    pub exceptions: Vec<NewException>,
}

impl Pass {
    /// Nothing new; stay where `cursor` is.
    pub fn idle(cursor: impl Into<String>) -> Self {
        Pass {
            cursor: cursor.into(),
            ..Pass::default()
        }
    }
}

/// Why a pass failed.
#[derive(Debug)]
pub enum FeedError {
    /// Try again later: the source or a dependency is away or asked us to wait.
    Transient {
        reason: String,
        retry_after: Option<Duration>,
    },
    /// Retrying the same thing will fail again: a person must act (recorded, with payload).
    Permanent(Box<NewException>),
}

impl std::fmt::Display for FeedError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FeedError::Transient { reason, .. } => write!(f, "{reason} (transient)"),
            FeedError::Permanent(e) => write!(f, "{}: {}", e.kind.as_str(), e.reason),
        }
    }
}

impl std::error::Error for FeedError {}

impl FeedError {
    pub fn transient(reason: impl std::fmt::Display) -> Self {
        FeedError::Transient {
            reason: reason.to_string(),
            retry_after: None,
        }
    }
}

/// One loop's work, pass by pass.
#[async_trait]
pub trait Feed: Send + Sync + 'static {
    /// Called when this process starts leading (and for feeds without a leader, once),
    /// before the first pass: load what the feed keeps in memory. A failure is retried
    /// like a failed pass.
    async fn lead(&self) -> Result<(), FeedError> {
        Ok(())
    }

    /// One pass from `cursor` ("" the first time, and for feeds without one). Whatever the
    /// pass did must be durable before it returns: the runner stores its cursor next.
    async fn pass(&self, cursor: &str) -> Result<Pass, FeedError>;
}

/// Which feed, for whom, and how it is run.
#[derive(Debug, Clone)]
pub struct FeedSpec {
    pub service: &'static str,
    pub tenant: String,
    /// The feed's name (`erp-shipments`, `centra-events`, …): metrics, spans, lease, cursor.
    pub name: Cow<'static, str>,
    /// How long to wait after a pass that found nothing new.
    pub every: Duration,
    /// Only one replica runs it at a time.
    pub leader: bool,
    /// Keeps a durable cursor.
    pub cursor: bool,
    /// Passes are frequent and routine (a pusher's tick): their spans are debug-level.
    pub quiet: bool,
    /// First and longest wait after failures, where this feed needs its own (`feeds.*`
    /// otherwise).
    pub backoff: Option<(Duration, Duration)>,
}

impl FeedSpec {
    /// A feed with a cursor, led by one replica.
    pub fn source(
        service: &'static str,
        tenant: &str,
        name: impl Into<Cow<'static, str>>,
        every: Duration,
    ) -> Self {
        FeedSpec {
            service,
            tenant: tenant.to_owned(),
            name: name.into(),
            every,
            leader: true,
            cursor: true,
            quiet: false,
            backoff: None,
        }
    }

    /// A periodic check without a cursor; `leader`: one replica at a time.
    pub fn periodic(
        service: &'static str,
        tenant: &str,
        name: impl Into<Cow<'static, str>>,
        every: Duration,
        leader: bool,
    ) -> Self {
        FeedSpec {
            cursor: false,
            leader,
            ..FeedSpec::source(service, tenant, name, every)
        }
    }

    /// Its own backoff after failures, from `min` up to `max`.
    pub fn backoff(mut self, min: Duration, max: Duration) -> Self {
        self.backoff = Some((min, max));
        self
    }

    /// Spans of each pass at debug level (for loops that pass many times a second).
    pub fn quiet(mut self) -> Self {
        self.quiet = true;
        self
    }

    fn key(&self) -> String {
        lease_key(&format!("{}/{}", self.tenant, self.name))
    }
}

/// Durable cursors of every feed of a deployment (`<PREFIX>_CURSORS`).
#[derive(Clone)]
pub struct Cursors {
    kv: kv::Store,
}

impl Cursors {
    pub async fn open(
        js: &jetstream::Context,
        topology: &Topology,
        replicas: usize,
    ) -> Result<Self, NatsError> {
        let kv = open_bucket(
            js,
            kv::Config {
                bucket: topology.bucket_name("CURSORS"),
                description: "Ferry: how far each (tenant, feed) has read its source".into(),
                history: 1,
                storage: jetstream::stream::StorageType::File,
                num_replicas: replicas,
                ..Default::default()
            },
        )
        .await?;
        Ok(Cursors { kv })
    }

    /// The cursor of `tenant`'s `feed` ("" before the first pass) and its revision.
    pub async fn get(&self, tenant: &str, feed: &str) -> Result<(String, u64), NatsError> {
        let key = lease_key(&format!("{tenant}/{feed}"));
        self.read(&key).await
    }

    async fn read(&self, key: &str) -> Result<(String, u64), NatsError> {
        match self.kv.entry(key).await.map_err(kv_error)? {
            Some(e) if e.operation == kv::Operation::Put => {
                Ok((String::from_utf8_lossy(&e.value).into_owned(), e.revision))
            }
            Some(e) => Ok((String::new(), e.revision)),
            None => Ok((String::new(), 0)),
        }
    }

    /// Sets a cursor outright (administration: a resync from a chosen point).
    pub async fn set(&self, tenant: &str, feed: &str, cursor: &str) -> Result<(), NatsError> {
        let key = lease_key(&format!("{tenant}/{feed}"));
        self.kv
            .put(&key, Bytes::copy_from_slice(cursor.as_bytes()))
            .await
            .map(|_| ())
            .map_err(kv_error)
    }

    /// Moves the cursor from `revision` (0: never stored); fails if someone else moved it.
    async fn advance(&self, key: &str, cursor: &str, revision: u64) -> Result<u64, NatsError> {
        self.kv
            .update(key, Bytes::copy_from_slice(cursor.as_bytes()), revision)
            .await
            .map_err(kv_error)
    }
}

fn kv_error(e: impl std::fmt::Display) -> NatsError {
    NatsError::Kv {
        bucket: "cursors".into(),
        reason: e.to_string(),
    }
}

/// Runs feeds: shared by every feed of a service process.
#[derive(Clone)]
pub struct FeedRunner {
    pub leases: Leases,
    pub cursors: Cursors,
    pub sink: Arc<dyn ExceptionSink>,
    pub config: FeedsConfig,
}

/// A running feed.
pub struct FeedHandle {
    pub task: tokio::task::JoinHandle<()>,
    /// Whether this process leads the feed now.
    pub leading: Arc<Leading>,
}

/// The feed's metric handles, registered once.
struct Meters {
    ok: metrics::Counter,
    failed: metrics::Counter,
    items: metrics::Counter,
    lag: metrics::Gauge,
    leading: metrics::Gauge,
    seconds: metrics::Histogram,
}

impl Meters {
    fn new(spec: &FeedSpec) -> Self {
        let labels = [
            ("service", spec.service.to_owned()),
            ("tenant", spec.tenant.clone()),
            ("feed", spec.name.to_string()),
        ];
        let outcome = |o: &'static str| {
            let mut l = labels.to_vec();
            l.push(("outcome", o.to_owned()));
            metrics::counter!("ferry_feed_passes_total", &l)
        };
        Meters {
            ok: outcome("ok"),
            failed: outcome("error"),
            items: metrics::counter!("ferry_feed_items_total", &labels),
            lag: metrics::gauge!("ferry_feed_lag_seconds", &labels),
            leading: metrics::gauge!("ferry_feed_leading", &labels),
            seconds: metrics::histogram!("ferry_feed_pass_seconds", &labels),
        }
    }
}

impl FeedRunner {
    /// The feed runner of a service process: opens (creating if needed) the deployment's
    /// lease and cursor buckets.
    pub async fn open(base: &ServiceBase, sink: Arc<dyn ExceptionSink>) -> Result<Self, NatsError> {
        let config = base.config.feeds.clone();
        let replicas = base.config.nats.replicas;
        Ok(FeedRunner {
            leases: Leases::open(
                &base.js,
                &base.topology,
                config.lease_ttl,
                replicas,
                base.name,
            )
            .await?,
            cursors: Cursors::open(&base.js, &base.topology, replicas).await?,
            sink,
            config,
        })
    }

    /// Runs `feed` on its own task until `shutdown`; the handle says whether this process
    /// leads it (a gate for consumers that must run where the feed runs).
    pub fn spawn(
        &self,
        spec: FeedSpec,
        feed: Arc<dyn Feed>,
        shutdown: CancellationToken,
    ) -> FeedHandle {
        let runner = self.clone();
        let leading = Leading::new();
        let flag = leading.clone();
        let task = tokio::spawn(async move { runner.run(spec, feed, flag, shutdown).await });
        FeedHandle { task, leading }
    }

    /// Runs `feed` until `shutdown`, telling `leading` whether it leads.
    pub async fn run(
        &self,
        spec: FeedSpec,
        feed: Arc<dyn Feed>,
        leading: Arc<Leading>,
        shutdown: CancellationToken,
    ) {
        let meters = Meters::new(&spec);
        let key = spec.key();
        while !shutdown.is_cancelled() {
            // Leadership first; a feed without a leader runs in every replica.
            let lease: Option<Lease> = if spec.leader {
                match self.leases.acquire(&key, &shutdown).await {
                    Some(lease) => Some(lease),
                    None => return,
                }
            } else {
                None
            };
            let lost = lease
                .as_ref()
                .map_or_else(CancellationToken::new, Lease::lost);
            meters.leading.set(1.0);
            tracing::info!(service = spec.service, tenant = %spec.tenant, feed = %spec.name, "feed leading");
            if self.begin(&spec, feed.as_ref(), &lost, &shutdown).await {
                leading.set(true);
                self.lead(&spec, &key, feed.as_ref(), &meters, &lost, &shutdown)
                    .await;
                leading.set(false);
            }
            meters.leading.set(0.0);
            drop(lease);
        }
    }

    /// Calls the feed's [`Feed::lead`] until it succeeds; `false` on shutdown or a lost lease.
    async fn begin(
        &self,
        spec: &FeedSpec,
        feed: &dyn Feed,
        lost: &CancellationToken,
        shutdown: &CancellationToken,
    ) -> bool {
        let mut delays = self.schedule(spec).build();
        loop {
            let outcome = tokio::select! {
                _ = shutdown.cancelled() => return false,
                _ = lost.cancelled() => return false,
                r = feed.lead() => r,
            };
            let wait = match outcome {
                Ok(()) => return true,
                Err(FeedError::Transient {
                    reason,
                    retry_after,
                }) => {
                    tracing::warn!(feed = %spec.name, tenant = %spec.tenant, reason = %reason, "feed cannot start; retrying");
                    retry_after.or_else(|| delays.next())
                }
                Err(FeedError::Permanent(exception)) => {
                    tracing::warn!(feed = %spec.name, tenant = %spec.tenant, reason = %exception.reason, "feed cannot start");
                    if let Err(e) = self.sink.record(&exception).await {
                        tracing::error!(feed = %spec.name, error = %e, "cannot record the feed's exception; trying again");
                    }
                    delays.next()
                }
            };
            if !nap(shutdown, lost, wait.unwrap_or(self.config.backoff_max)).await {
                return false;
            }
        }
    }

    async fn record_all(&self, exceptions: &[NewException]) -> Result<(), crate::SinkError> {
        for exception in exceptions {
            self.sink.record(exception).await?;
        }
        Ok(())
    }

    fn schedule(&self, spec: &FeedSpec) -> ExponentialBuilder {
        let (min, max) = spec
            .backoff
            .unwrap_or((self.config.backoff_min, self.config.backoff_max));
        ExponentialBuilder::new()
            .with_min_delay(min)
            .with_max_delay(max)
            .with_jitter()
            .without_max_times()
    }

    /// Passes while the lease holds: returns on shutdown or when the lease is lost.
    async fn lead(
        &self,
        spec: &FeedSpec,
        key: &str,
        feed: &dyn Feed,
        meters: &Meters,
        lost: &CancellationToken,
        shutdown: &CancellationToken,
    ) {
        let backoff_max = spec.backoff.map_or(self.config.backoff_max, |(_, max)| max);
        let schedule = self.schedule(spec);
        let mut delays = schedule.build();
        // The cursor and its revision, read once per leadership and then kept in step.
        let mut position: Option<(String, u64)> = None;
        loop {
            if shutdown.is_cancelled() || lost.is_cancelled() {
                return;
            }
            if spec.cursor && position.is_none() {
                match self.cursors.read(key).await {
                    Ok(p) => position = Some(p),
                    Err(e) => {
                        tracing::warn!(feed = %spec.name, tenant = %spec.tenant, error = %e, "cannot read the feed's cursor");
                        if !nap(shutdown, lost, delays.next().unwrap_or(backoff_max)).await {
                            return;
                        }
                        continue;
                    }
                }
            }
            let cursor = position.as_ref().map_or("", |(c, _)| c.as_str());
            let span = if spec.quiet {
                tracing::debug_span!(
                    "feed pass",
                    otel.name = %format!("{} pass", spec.name),
                    ferry.service = spec.service,
                    ferry.tenant = %spec.tenant,
                    ferry.feed = %spec.name,
                    ferry.items = tracing::field::Empty,
                )
            } else {
                tracing::info_span!(
                    "feed pass",
                    otel.name = %format!("{} pass", spec.name),
                    ferry.service = spec.service,
                    ferry.tenant = %spec.tenant,
                    ferry.feed = %spec.name,
                    ferry.items = tracing::field::Empty,
                )
            };
            let started = Instant::now();
            let outcome = tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = lost.cancelled() => return,
                r = feed.pass(cursor).instrument(span.clone()) => r,
            };
            meters.seconds.record(started.elapsed().as_secs_f64());
            let wait = match outcome {
                Ok(pass) => {
                    span.record("ferry.items", pass.items);
                    if let Err(e) = self.record_all(&pass.exceptions).await {
                        // Not recorded: the cursor stays, and the pass comes again.
                        tracing::warn!(feed = %spec.name, tenant = %spec.tenant, error = %e, "cannot record what the pass went on without; passing again");
                        meters.failed.increment(1);
                        if !nap(shutdown, lost, delays.next().unwrap_or(backoff_max)).await {
                            return;
                        }
                        continue;
                    }
                    if spec.cursor && pass.cursor != cursor {
                        let revision = position.as_ref().map_or(0, |(_, r)| *r);
                        match self.cursors.advance(key, &pass.cursor, revision).await {
                            Ok(next) => position = Some((pass.cursor.clone(), next)),
                            Err(e) => {
                                // Someone else moved it (we lost the lead) or the bucket is
                                // away: read it again; the work done is idempotent.
                                tracing::warn!(feed = %spec.name, tenant = %spec.tenant, error = %e, "cursor not stored");
                                meters.failed.increment(1);
                                position = None;
                                if !nap(shutdown, lost, delays.next().unwrap_or(backoff_max)).await
                                {
                                    return;
                                }
                                continue;
                            }
                        }
                    }
                    meters.ok.increment(1);
                    meters.items.increment(pass.items);
                    meters.lag.set(pass.lag.map_or(0.0, |l| l.as_secs_f64()));
                    delays = schedule.build();
                    if pass.more {
                        Duration::ZERO
                    } else {
                        spec.every
                    }
                }
                Err(FeedError::Transient {
                    reason,
                    retry_after,
                }) => {
                    meters.failed.increment(1);
                    let wait = retry_after.or_else(|| delays.next()).unwrap_or(backoff_max);
                    tracing::warn!(feed = %spec.name, tenant = %spec.tenant, reason = %reason, retry_in = ?wait, "feed pass failed; retrying");
                    wait
                }
                Err(FeedError::Permanent(exception)) => {
                    meters.failed.increment(1);
                    tracing::warn!(feed = %spec.name, tenant = %spec.tenant, kind = %exception.kind, reason = %exception.reason, "feed pass failed for good");
                    if let Err(e) = self.sink.record(&exception).await {
                        tracing::error!(feed = %spec.name, error = %e, "cannot record the feed's exception; trying again");
                    }
                    delays.next().unwrap_or(backoff_max)
                }
            };
            // The pass's span ends with the pass: exported now, not after the nap (a
            // reconciler's pass would show up an interval late, and the last one never).
            drop(span);
            if !wait.is_zero() && !nap(shutdown, lost, wait).await {
                return;
            }
        }
    }
}

/// Sleeps `wait` unless shut down or the lease is lost first; `false` then.
async fn nap(shutdown: &CancellationToken, lost: &CancellationToken, wait: Duration) -> bool {
    tokio::select! {
        _ = shutdown.cancelled() => false,
        _ = lost.cancelled() => false,
        _ = tokio::time::sleep(wait) => true,
    }
}
