//! The consumer runner: pulls one durable consumer, hands each message to a [`Handler`],
//! and turns the handler's verdict into the right acknowledgement.
//!
//! | handler returns | runner does |
//! |---|---|
//! | `Ok` | ack (or double-ack on hops with irreversible effects) |
//! | `Transient` | NAK with exponential backoff and jitter (or the `retry_after` asked for) |
//! | `Transient`, deliveries exhausted | `delivery_exhausted` exception record, then TERM |
//! | `Permanent` | exception record with payload and reason, then TERM |
//!
//! A message is never TERMed before its exception record is durable: if the record cannot
//! be written, the message is NAKed and comes back. Slow handlers get progress acks, so a
//! long ERP call does not trigger a redelivery.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::HeaderMap;
use async_nats::jetstream::{self, AckKind};
use async_trait::async_trait;
use backon::{BackoffBuilder, ExponentialBuilder, Retryable as _};
use bytes::Bytes;
use ferry_domain::{ExceptionKind, NewException};
use futures::{FutureExt, StreamExt};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::config::ConsumerConfig;
use crate::exceptions::ExceptionSink;
use crate::nats::{NatsError, StreamKind, Topology, durable_consumer};
use crate::telemetry;

/// A message as a handler sees it.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The service consuming it (named in its exceptions).
    pub service: &'static str,
    pub tenant: String,
    pub subject: String,
    pub payload: Bytes,
    pub headers: Option<HeaderMap>,
    /// 1 on the first delivery.
    pub delivered: i64,
    pub stream_sequence: u64,
    /// Messages still waiting for this consumer after this one (its backlog, as the server
    /// saw it when it sent this message).
    pub pending: u64,
}

impl Delivery {
    /// A permanent failure for this message, with its payload attached.
    pub fn permanent(
        &self,
        kind: ExceptionKind,
        key: impl Into<String>,
        message: impl Into<String>,
        reason: impl Into<String>,
    ) -> HandlerError {
        HandlerError::Permanent(Box::new(NewException {
            tenant: self.tenant.clone(),
            kind,
            key: key.into(),
            message: message.into(),
            reason: reason.into(),
            order_number: None,
            amount_minor: None,
            currency: None,
            service: self.service.to_owned(),
            source_subject: Some(self.subject.clone()),
            payload: self.payload.to_vec(),
        }))
    }

    /// A message that cannot be decoded at all.
    pub fn poison(&self, what: &str, error: &dyn std::fmt::Display) -> HandlerError {
        let service = self.service;
        self.permanent(
            ExceptionKind::PoisonMessage,
            format!("seq:{}", self.stream_sequence),
            format!(
                "A {what} message could not be read by {service} and was set aside; nothing \
                 else is held up. Engineering must look at the stored payload."
            ),
            format!("undecodable {what} on {}: {error}", self.subject),
        )
    }
}

/// The handler's verdict on one message.
#[derive(Debug)]
pub enum HandlerError {
    /// Try again later: a timeout, a 5xx, a 429, the broker or the database away.
    Transient {
        reason: String,
        retry_after: Option<Duration>,
    },
    /// Retrying cannot help: record the exception and stop redelivering.
    Permanent(Box<NewException>),
}

impl HandlerError {
    pub fn transient(reason: impl std::fmt::Display) -> Self {
        HandlerError::Transient {
            reason: reason.to_string(),
            retry_after: None,
        }
    }
}

impl From<NatsError> for HandlerError {
    fn from(e: NatsError) -> Self {
        HandlerError::transient(e)
    }
}

#[async_trait]
pub trait Handler: Send + Sync + 'static {
    async fn handle(&self, delivery: &Delivery) -> Result<(), HandlerError>;
}

/// Lets a handler pause its own consumer, e.g. a circuit breaker while the ERP is down:
/// the runner stops pulling while the gate is shut, so messages wait in the stream instead
/// of burning deliveries.
#[async_trait]
pub trait Gate: Send + Sync + 'static {
    fn is_open(&self) -> bool;
    /// Resolves when the gate is open.
    async fn wait_open(&self);
}

/// Which consumer to run, for whom.
#[derive(Debug, Clone)]
pub struct ConsumerSpec {
    pub service: &'static str,
    pub tenant: String,
    pub stream: StreamKind,
    pub durable: String,
    pub filter_subject: String,
    /// Wait for the server to confirm each ack: on hops whose effect must not repeat.
    pub double_ack: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum RunnerError {
    #[error(transparent)]
    Nats(#[from] NatsError),
    #[error("consumer {0}: pulling messages failed: {1}")]
    Pull(String, String),
}

/// Runs one consumer until `shutdown`, then stops pulling and lets in-flight messages finish
/// within `grace`. Built with [`Runner::builder`].
pub struct Runner {
    pub js: jetstream::Context,
    pub topology: Topology,
    pub spec: ConsumerSpec,
    pub config: ConsumerConfig,
    pub sink: Arc<dyn ExceptionSink>,
    pub grace: Duration,
    /// Pauses pulling while shut; `None` for consumers that never pause.
    pub gate: Option<Arc<dyn Gate>>,
}

/// Builds a [`Runner`] from what every consumer of a service shares.
pub struct RunnerBuilder {
    runner: Runner,
}

impl Runner {
    /// A consumer of `service` for `tenant` on `stream`, filtered to `filter_subject`; the
    /// durable name is `<service>-<tenant>` unless [`RunnerBuilder::durable`] says otherwise.
    pub fn builder(
        base: &crate::ServiceBase,
        sink: Arc<dyn ExceptionSink>,
        service: &'static str,
        tenant: &str,
        stream: StreamKind,
        filter_subject: String,
    ) -> RunnerBuilder {
        RunnerBuilder {
            runner: Runner {
                js: base.js.clone(),
                topology: base.topology.clone(),
                spec: ConsumerSpec {
                    service,
                    tenant: tenant.to_owned(),
                    stream,
                    durable: base.topology.consumer_name(service, tenant),
                    filter_subject,
                    double_ack: false,
                },
                config: base.config.consumer.clone(),
                sink,
                grace: base.config.ops.shutdown_grace,
                gate: None,
            },
        }
    }
}

impl RunnerBuilder {
    pub fn durable(mut self, name: String) -> Self {
        self.runner.spec.durable = name;
        self
    }

    /// Waits for the server to confirm each ack: for hops whose effect must not repeat.
    pub fn double_ack(mut self) -> Self {
        self.runner.spec.double_ack = true;
        self
    }

    /// Pauses pulling while the gate is shut.
    pub fn gate(mut self, gate: Arc<dyn Gate>) -> Self {
        self.runner.gate = Some(gate);
        self
    }

    /// Handles up to `n` messages at once (at least what the service's settings say).
    pub fn concurrency_at_least(mut self, n: usize) -> Self {
        self.runner.config.concurrency = self.runner.config.concurrency.max(n);
        self
    }

    pub fn config(mut self, config: ConsumerConfig) -> Self {
        self.runner.config = config;
        self
    }

    pub fn build(self) -> Runner {
        self.runner
    }
}

impl Runner {
    pub async fn run<H: Handler>(
        self,
        handler: Arc<H>,
        shutdown: CancellationToken,
    ) -> Result<(), RunnerError> {
        // A replica started while the broker restarts must wait for it, not exit: a
        // Deployment would restart it, but every restart is a crash someone looks at.
        let create = || {
            durable_consumer(
                &self.js,
                &self.topology,
                self.spec.stream,
                &self.spec.durable,
                &self.spec.filter_subject,
                &self.config,
            )
        };
        let retried = create
            .retry(
                ExponentialBuilder::default()
                    .with_max_delay(Duration::from_secs(5))
                    .with_jitter()
                    .without_max_times(),
            )
            .notify(|e, wait| {
                tracing::warn!(consumer = %self.spec.durable, error = %e, ?wait, "cannot create the consumer; retrying");
            });
        let consumer = tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            c = retried => c?,
        };
        let shared = Arc::new(Shared {
            meters: Meters::new(&self.spec),
            spec: self.spec.clone(),
            config: self.config.clone(),
            sink: self.sink.clone(),
        });
        let permits = Arc::new(Semaphore::new(self.config.concurrency));
        let tracker = TaskTracker::new();
        tracing::info!(consumer = %self.spec.durable, filter = %self.spec.filter_subject, "consumer started");

        'pulling: while !shutdown.is_cancelled() {
            if let Some(gate) = self.gate.as_ref().filter(|g| !g.is_open()) {
                tracing::info!(consumer = %self.spec.durable, "paused until the gate opens");
                tokio::select! {
                    _ = shutdown.cancelled() => break 'pulling,
                    _ = gate.wait_open() => {}
                }
                tracing::info!(consumer = %self.spec.durable, "resumed");
            }
            let mut messages = match consumer
                .stream()
                .max_messages_per_batch(self.config.batch)
                .heartbeat(Duration::from_secs(5))
                .expires(Duration::from_secs(30))
                .messages()
                .await
            {
                Ok(m) => m,
                Err(e) => {
                    tracing::warn!(consumer = %self.spec.durable, error = %e, "cannot pull; retrying");
                    tokio::select! {
                        _ = shutdown.cancelled() => break 'pulling,
                        _ = tokio::time::sleep(Duration::from_secs(1)) => continue 'pulling,
                    }
                }
            };
            loop {
                let permit = tokio::select! {
                    _ = shutdown.cancelled() => break 'pulling,
                    p = permits.clone().acquire_owned() => match p {
                        Ok(p) => p,
                        Err(_) => break 'pulling,
                    },
                };
                if self.gate.as_ref().is_some_and(|g| !g.is_open()) {
                    // Stop pulling. Messages already sent to us come back after ack_wait.
                    break;
                }
                let next = tokio::select! {
                    _ = shutdown.cancelled() => break 'pulling,
                    n = messages.next() => n,
                };
                match next {
                    Some(Ok(message)) => {
                        let shared = shared.clone();
                        let handler = handler.clone();
                        tracker.spawn(async move {
                            shared.process(handler.as_ref(), message).await;
                            drop(permit);
                        });
                    }
                    Some(Err(e)) => {
                        tracing::warn!(consumer = %self.spec.durable, error = %e, "pull error; re-subscribing");
                        break;
                    }
                    None => break,
                }
            }
        }
        tracker.close();
        if tokio::time::timeout(self.grace, tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!(consumer = %self.spec.durable, "in-flight messages did not finish within the grace period; they will be redelivered");
        }
        tracing::info!(consumer = %self.spec.durable, "consumer stopped");
        Ok(())
    }
}

/// What became of a message (the `outcome` label of `ferry_messages_total`).
enum Outcome {
    Ok,
    Retry,
    Exception,
}

struct Shared {
    spec: ConsumerSpec,
    config: ConsumerConfig,
    sink: Arc<dyn ExceptionSink>,
    meters: Meters,
}

/// The consumer's metric handles, registered once: looking them up by name and labels for
/// every message cost more than the counting.
struct Meters {
    ok: metrics::Counter,
    retry: metrics::Counter,
    exception: metrics::Counter,
    seconds: metrics::Histogram,
    /// Messages waiting for this consumer after the last one it took (its backlog, as
    /// the server said): what the backlog alert and autoscaling watch.
    pending: metrics::Gauge,
}

impl Meters {
    fn new(spec: &ConsumerSpec) -> Self {
        let service = spec.service;
        let outcome = |outcome: &'static str| metrics::counter!("ferry_messages_total", "service" => service, "tenant" => spec.tenant.clone(), "outcome" => outcome);
        Self {
            ok: outcome("ok"),
            retry: outcome("retry"),
            exception: outcome("exception"),
            seconds: metrics::histogram!("ferry_message_seconds", "service" => service),
            pending: metrics::gauge!(
                "ferry_consumer_pending",
                "service" => service,
                "tenant" => spec.tenant.clone(),
                "consumer" => spec.durable.clone()
            ),
        }
    }
}

impl Shared {
    async fn process<H: Handler>(&self, handler: &H, mut message: jetstream::Message) {
        let started = Instant::now();
        let (delivered, stream_sequence, pending) = message
            .info()
            .map(|i| (i.delivered, i.stream_sequence, i.pending))
            .unwrap_or((1, 0, 0));
        let delivery = Delivery {
            service: self.spec.service,
            tenant: self.spec.tenant.clone(),
            subject: message.subject.to_string(),
            payload: message.payload.clone(),
            // Acknowledging needs only the reply subject: the headers move, not copy.
            headers: message.message.headers.take(),
            delivered,
            stream_sequence,
            pending,
        };
        // OpenTelemetry's messaging conventions: `process {destination}` named after the
        // consumer's filter (low cardinality), the subject itself as an attribute. Field
        // values are only computed for a span something records.
        let span = tracing::info_span!(
            "process",
            otel.kind = "consumer",
            otel.name = %format!("process {}", self.spec.filter_subject),
            messaging.system = "nats",
            messaging.operation.type = "process",
            messaging.operation.name = "process",
            messaging.destination.name = %delivery.subject,
            messaging.destination.template = %self.spec.filter_subject,
            messaging.consumer.group.name = %self.spec.durable,
            messaging.message.id = tracing::field::Empty,
            ferry.service = self.spec.service,
            ferry.tenant = %self.spec.tenant,
            ferry.delivered = delivered,
        );
        if !span.is_disabled()
            && let Some(id) = delivery
                .headers
                .as_ref()
                .and_then(|h| h.get(crate::nats::MSG_ID))
        {
            span.record("messaging.message.id", id.as_str());
        }
        telemetry::set_parent_from(&span, delivery.headers.as_ref());

        // Progress acks from the same task (no task or timer per message until one is due):
        // a slow handler keeps its message; a fast one never sees the timer fire.
        let interval = (self.config.ack_wait / 3).max(Duration::from_millis(100));
        let handled =
            AssertUnwindSafe(handler.handle(&delivery).instrument(span.clone())).catch_unwind();
        tokio::pin!(handled);
        let progress = tokio::time::sleep(interval);
        tokio::pin!(progress);
        let result = loop {
            tokio::select! {
                biased;
                r = &mut handled => {
                    break r.unwrap_or_else(|_| Err(HandlerError::transient("the handler panicked")));
                }
                _ = &mut progress => {
                    let _ = message.ack_with(AckKind::Progress).await;
                    progress.as_mut().reset(tokio::time::Instant::now() + interval);
                }
            }
        };

        let outcome = self
            .settle(&message, &delivery, result)
            .instrument(span)
            .await;
        match outcome {
            Outcome::Ok => &self.meters.ok,
            Outcome::Retry => &self.meters.retry,
            Outcome::Exception => &self.meters.exception,
        }
        .increment(1);
        self.meters.seconds.record(started.elapsed().as_secs_f64());
        self.meters.pending.set(pending as f64);
    }

    async fn settle(
        &self,
        message: &jetstream::Message,
        delivery: &Delivery,
        result: Result<(), HandlerError>,
    ) -> Outcome {
        match result {
            Ok(()) => {
                let acked = if self.spec.double_ack {
                    message.double_ack().await
                } else {
                    message.ack().await
                };
                if let Err(e) = acked {
                    // The effect is durable and idempotent; a redelivery will be a no-op.
                    tracing::warn!(error = %e, "ack failed; the message will be redelivered");
                }
                Outcome::Ok
            }
            Err(HandlerError::Transient {
                reason,
                retry_after,
            }) => {
                if delivery.delivered >= self.config.max_deliver {
                    let exception = NewException {
                        tenant: delivery.tenant.clone(),
                        kind: ExceptionKind::DeliveryExhausted,
                        key: format!("seq:{}", delivery.stream_sequence),
                        message: format!(
                            "A message kept failing in {} and was set aside after {} attempts. \
                             Nothing was lost: the payload is stored with this exception. \
                             Engineering must fix the cause and replay it.",
                            self.spec.service, delivery.delivered
                        ),
                        reason: format!("last error: {reason}"),
                        order_number: None,
                        amount_minor: None,
                        currency: None,
                        service: self.spec.service.to_owned(),
                        source_subject: Some(delivery.subject.clone()),
                        payload: delivery.payload.to_vec(),
                    };
                    // Said in the log too: an exception record alone is easy to miss when
                    // reading why a message stopped coming back.
                    tracing::warn!(reason = %reason, delivered = delivery.delivered, "deliveries exhausted; set aside as an exception");
                    return self.terminate(message, &exception).await;
                }
                let delay = retry_after.unwrap_or_else(|| self.backoff(delivery.delivered));
                tracing::warn!(reason = %reason, retry_in = ?delay, delivered = delivery.delivered, "transient failure; will retry");
                let _ = message.ack_with(AckKind::Nak(Some(delay))).await;
                Outcome::Retry
            }
            Err(HandlerError::Permanent(exception)) => {
                tracing::warn!(kind = %exception.kind, reason = %exception.reason, "permanent failure");
                self.terminate(message, &exception).await
            }
        }
    }

    async fn terminate(&self, message: &jetstream::Message, exception: &NewException) -> Outcome {
        match self.sink.record(exception).await {
            Ok(()) => {
                if let Err(e) = message.double_ack_with(AckKind::Term).await {
                    tracing::warn!(error = %e, "TERM failed; the message will come back and be recorded again");
                }
                Outcome::Exception
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot record the exception; keeping the message");
                let _ = message.ack_with(AckKind::Nak(Some(self.backoff(2)))).await;
                Outcome::Retry
            }
        }
    }

    /// Exponential backoff with jitter for the n-th delivery (backon's schedule).
    fn backoff(&self, delivered: i64) -> Duration {
        let attempt = usize::try_from(delivered.max(1) - 1).unwrap_or(0);
        ExponentialBuilder::new()
            .with_min_delay(self.config.backoff_base)
            .with_max_delay(self.config.backoff_max)
            .with_jitter()
            .without_max_times()
            .build()
            .nth(attempt)
            .unwrap_or(self.config.backoff_max)
            .min(self.config.backoff_max * 2)
    }
}
