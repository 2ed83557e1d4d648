//! Turns change notices into full order snapshots. The orders of many notices are gathered
//! into batches (up to 200 distinct orders, or whatever arrived within `ingest.batch_wait`)
//! and each batch is one Centra query, because Centra allows only 20 requests per 10 s by
//! default. A notices message is acknowledged only after every order it named is stored
//! in JetStream (or recorded as an exception).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use bytes::Bytes;
use ferry_centra::{CentraClient, CentraError, RawSnapshot};
use ferry_config::IngestConfig;
use ferry_domain::{ExceptionKind, NewException, content_hash};
use ferry_proto::centra::v1 as pb;
use ferry_runtime::consumer::{Delivery, Handler, HandlerError};
use ferry_runtime::{ExceptionSink, Outgoing, ServiceBase};
use prost::Message as _;
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::SERVICE;

/// Deliveries of a notice for an order Centra does not return before it becomes an
/// `order_not_found` exception (Centra may briefly lag behind its own webhooks).
const NOT_FOUND_ATTEMPTS: i64 = 4;
/// Batches fetched at once per tenant (the rate limiter paces them).
pub const FETCHES_IN_FLIGHT: usize = 4;

/// What became of one order of a notice.
#[derive(Debug)]
enum Fetched {
    Stored,
    NotFound,
    Failed {
        reason: String,
        retry_after: Option<Duration>,
    },
}

struct Request {
    number: i64,
    accepted_at: Option<prost_types::Timestamp>,
    source: pb::Source,
    /// The span of the notices that named the order: the order's own trace links to it.
    cause: tracing::Span,
    reply: oneshot::Sender<Fetched>,
}

/// The notices handler: hands each named order to the tenant's batcher and waits.
pub struct NoticeHandler {
    tenant: String,
    requests: mpsc::Sender<Request>,
    sink: Arc<dyn ExceptionSink>,
}

impl NoticeHandler {
    pub fn start(
        base: ServiceBase,
        ingest: IngestConfig,
        tenant: String,
        client: CentraClient,
        sink: Arc<dyn ExceptionSink>,
        shutdown: CancellationToken,
    ) -> Self {
        let (tx, rx) = mpsc::channel(ingest.snapshot_batch * FETCHES_IN_FLIGHT * 2);
        tokio::spawn(batcher(
            rx,
            base,
            ingest,
            tenant.clone(),
            Arc::new(client),
            shutdown,
        ));
        Self {
            tenant,
            requests: tx,
            sink,
        }
    }
}

#[async_trait]
impl Handler for NoticeHandler {
    async fn handle(&self, delivery: &Delivery) -> Result<(), HandlerError> {
        let notices = pb::ChangeNotices::decode(delivery.payload.as_ref())
            .map_err(|e| delivery.poison("change notices", &e))?;
        let source = pb::Source::try_from(notices.source).unwrap_or(pb::Source::Unspecified);
        let mut numbers: Vec<(i64, Option<prost_types::Timestamp>)> = notices
            .notices
            .iter()
            .filter(|n| n.object_type == "order")
            .map(|n| (n.object_id, n.accepted_at.or(notices.accepted_at)))
            .collect();
        numbers.sort_by_key(|(n, _)| *n);
        numbers.dedup_by_key(|(n, _)| *n);
        let mut answers = Vec::with_capacity(numbers.len());
        for (number, accepted_at) in numbers {
            let (reply, answer) = oneshot::channel();
            self.requests
                .send(Request {
                    number,
                    accepted_at,
                    source,
                    cause: tracing::Span::current(),
                    reply,
                })
                .await
                .map_err(|_| HandlerError::transient("the fetcher is shutting down"))?;
            answers.push((number, answer));
        }
        let mut missing = Vec::new();
        let mut failure: Option<(String, Option<Duration>)> = None;
        for (number, answer) in answers {
            match answer.await.unwrap_or(Fetched::Failed {
                reason: "the fetcher stopped".into(),
                retry_after: None,
            }) {
                Fetched::Stored => {}
                Fetched::NotFound => missing.push(number),
                Fetched::Failed {
                    reason,
                    retry_after,
                } => failure = Some((reason, retry_after)),
            }
        }
        // Retrying the whole message is safe: orders already stored are deduplicated.
        if let Some((reason, retry_after)) = failure {
            return Err(HandlerError::Transient {
                reason,
                retry_after,
            });
        }
        if !missing.is_empty() {
            if delivery.delivered < NOT_FOUND_ATTEMPTS {
                return Err(HandlerError::Transient {
                    reason: format!("Centra does not return orders {missing:?} yet"),
                    retry_after: Some(Duration::from_secs(2)),
                });
            }
            for number in missing {
                let exception = NewException {
                    tenant: self.tenant.clone(),
                    kind: ExceptionKind::OrderNotFound,
                    key: format!("order:{number}"),
                    message: format!(
                        "Centra announced order {number}, but Centra's API does not return it. \
                         Nothing was posted. Check that the API token may read this order's store \
                         and market; Ferry's resync picks it up once it is visible."
                    ),
                    reason: format!("order {number} absent from the snapshot query answer"),
                    order_number: Some(number),
                    amount_minor: None,
                    currency: None,
                    service: SERVICE.to_owned(),
                    source_subject: Some(delivery.subject.clone()),
                    payload: delivery.payload.to_vec(),
                };
                self.sink
                    .record(&exception)
                    .await
                    .map_err(HandlerError::transient)?;
            }
        }
        Ok(())
    }
}

async fn batcher(
    mut rx: mpsc::Receiver<Request>,
    base: ServiceBase,
    ingest: IngestConfig,
    tenant: String,
    client: Arc<CentraClient>,
    shutdown: CancellationToken,
) {
    let max = ingest.snapshot_batch;
    let wait = ingest.batch_wait;
    let slots = Arc::new(Semaphore::new(FETCHES_IN_FLIGHT));
    loop {
        let first = tokio::select! {
            _ = shutdown.cancelled() => return,
            r = rx.recv() => match r { Some(r) => r, None => return },
        };
        let mut batch: BTreeMap<i64, Vec<Request>> = BTreeMap::new();
        batch.entry(first.number).or_default().push(first);
        let deadline = tokio::time::Instant::now() + wait;
        while batch.len() < max {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(r)) => batch.entry(r.number).or_default().push(r),
                _ => break,
            }
        }
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        let (base, tenant, client) = (base.clone(), tenant.clone(), client.clone());
        tokio::spawn(async move {
            fetch_batch(&base, &tenant, &client, batch).await;
            drop(permit);
        });
    }
}

async fn fetch_batch(
    base: &ServiceBase,
    tenant: &str,
    client: &CentraClient,
    batch: BTreeMap<i64, Vec<Request>>,
) {
    let numbers: Vec<i64> = batch.keys().copied().collect();
    let started = std::time::Instant::now();
    let result = client.order_snapshots(&numbers).await;
    metrics::histogram!("ferry_centra_fetch_seconds", "tenant" => tenant.to_owned())
        .record(started.elapsed().as_secs_f64());
    match result {
        Err(e) => {
            log_centra_error(tenant, &e);
            let retry_after = e.retry_after();
            for request in batch.into_values().flatten() {
                let _ = request.reply.send(Fetched::Failed {
                    reason: e.to_string(),
                    retry_after,
                });
            }
        }
        Ok(snapshots) => publish(base, tenant, batch, snapshots).await,
    }
}

fn log_centra_error(tenant: &str, e: &CentraError) {
    if e.is_transient() {
        tracing::warn!(tenant, error = %e, "Centra fetch failed; will retry");
    } else {
        tracing::error!(tenant, error = %e, "Centra refused the fetch; check the token and its permissions");
    }
}

async fn publish(
    base: &ServiceBase,
    tenant: &str,
    mut batch: BTreeMap<i64, Vec<Request>>,
    snapshots: Vec<RawSnapshot>,
) {
    let fetched_at = ferry_proto::timestamp(SystemTime::now());
    let mut publishes = Vec::with_capacity(snapshots.len());
    for snapshot in snapshots {
        let Some(requests) = batch.remove(&snapshot.number) else {
            continue;
        };
        let first_accepted_at = requests
            .iter()
            .filter_map(|r| r.accepted_at)
            .min_by_key(|t| (t.seconds, t.nanos));
        let source = requests
            .first()
            .map(|r| r.source)
            .unwrap_or(pb::Source::Unspecified);
        let hash = content_hash(&snapshot.json);
        // Each order is its own trace from here on, linked to the notices that named it.
        let span = tracing::info_span!(
            parent: None,
            "centra.order",
            otel.kind = "producer",
            ferry.tenant = %tenant,
            centra.order = snapshot.number,
        );
        for r in &requests {
            ferry_runtime::telemetry::add_link(&span, &r.cause);
        }
        let message = Outgoing {
            subject: base.topology.snapshot_subject(tenant, snapshot.number),
            msg_id: format!("{tenant}:{}:{hash}", snapshot.number),
            payload: Bytes::from(
                pb::OrderSnapshot {
                    tenant: tenant.to_owned(),
                    order_number: snapshot.number,
                    content_hash: hash,
                    snapshot_json: snapshot.json.into(),
                    fetched_at: Some(fetched_at),
                    source: source as i32,
                    first_accepted_at,
                }
                .encode_to_vec(),
            ),
        };
        let publisher = base.publisher.clone();
        publishes.push(
            async move {
                let stored = publisher.publish(&message).await;
                let answer = match stored {
                    Ok(_) => Fetched::Stored,
                    Err(e) => Fetched::Failed {
                        reason: e.to_string(),
                        retry_after: None,
                    },
                };
                for request in requests {
                    let _ = request.reply.send(match &answer {
                        Fetched::Stored => Fetched::Stored,
                        Fetched::NotFound => Fetched::NotFound,
                        Fetched::Failed {
                            reason,
                            retry_after,
                        } => Fetched::Failed {
                            reason: reason.clone(),
                            retry_after: *retry_after,
                        },
                    });
                }
            }
            .instrument(span),
        );
    }
    // Whatever is left, Centra did not return.
    for request in batch.into_values().flatten() {
        let _ = request.reply.send(Fetched::NotFound);
    }
    futures::future::join_all(publishes).await;
}
