//! Turns order notices into full order snapshots. Notices are gathered into batches (up to
//! 200 distinct orders, or whatever arrived within `ingest.batch_wait`) and each batch is one
//! Centra query, because Centra allows only 20 requests per 10 s by default. A notice is
//! acknowledged only after its order's snapshot is stored in JetStream.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use bytes::Bytes;
use ferry_centra::{CentraClient, CentraError, RawSnapshot};
use ferry_domain::{ExceptionKind, content_hash};
use ferry_proto::centra::v1 as pb;
use ferry_runtime::consumer::{Delivery, Handler, HandlerError};
use ferry_runtime::{Outgoing, ServiceBase};
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

struct Request {
    /// The consume span of the notice: the snapshot is published in its trace.
    span: tracing::Span,
    number: i64,
    accepted_at: Option<prost_types::Timestamp>,
    delivery: Delivery,
    source: pb::Source,
    reply: oneshot::Sender<Result<(), HandlerError>>,
}

/// The notice handler: hands each order number to the tenant's batcher and waits.
pub struct NoticeHandler {
    requests: mpsc::Sender<Request>,
}

impl NoticeHandler {
    pub fn start(base: ServiceBase, tenant: String, client: CentraClient, shutdown: CancellationToken) -> Self {
        let (tx, rx) = mpsc::channel(base.config.consumer.concurrency.max(1));
        tokio::spawn(batcher(rx, base, tenant, Arc::new(client), shutdown));
        Self { requests: tx }
    }
}

#[async_trait]
impl Handler for NoticeHandler {
    async fn handle(&self, delivery: &Delivery) -> Result<(), HandlerError> {
        let notice = pb::ChangeNotice::decode(delivery.payload.as_ref())
            .map_err(|e| delivery.poison(SERVICE, "change notice", &e))?;
        if notice.object_type != "order" {
            return Ok(());
        }
        let (reply, answer) = oneshot::channel();
        self.requests
            .send(Request {
                span: tracing::Span::current(),
                number: notice.object_id,
                accepted_at: notice.accepted_at,
                delivery: delivery.clone(),
                source: pb::Source::try_from(notice.source).unwrap_or(pb::Source::Unspecified),
                reply,
            })
            .await
            .map_err(|_| HandlerError::transient("the fetcher is shutting down"))?;
        answer
            .await
            .unwrap_or_else(|_| Err(HandlerError::transient("the fetcher stopped")))
    }
}

async fn batcher(
    mut rx: mpsc::Receiver<Request>,
    base: ServiceBase,
    tenant: String,
    client: Arc<CentraClient>,
    shutdown: CancellationToken,
) {
    let max = base.config.ingest.snapshot_batch;
    let wait = base.config.ingest.batch_wait;
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
        let Ok(permit) = slots.clone().acquire_owned().await else { return };
        let (base, tenant, client) = (base.clone(), tenant.clone(), client.clone());
        tokio::spawn(async move {
            fetch_batch(&base, &tenant, &client, batch).await;
            drop(permit);
        });
    }
}

async fn fetch_batch(base: &ServiceBase, tenant: &str, client: &CentraClient, batch: BTreeMap<i64, Vec<Request>>) {
    let numbers: Vec<i64> = batch.keys().copied().collect();
    let started = std::time::Instant::now();
    let result = client.order_snapshots(&numbers).await;
    metrics::histogram!("ferry_centra_fetch_seconds", "tenant" => tenant.to_owned()).record(started.elapsed().as_secs_f64());
    match result {
        Err(e) => {
            log_centra_error(tenant, &e);
            let retry_after = e.retry_after();
            for request in batch.into_values().flatten() {
                let _ = request.reply.send(Err(HandlerError::Transient {
                    reason: e.to_string(),
                    retry_after,
                }));
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

async fn publish(base: &ServiceBase, tenant: &str, mut batch: BTreeMap<i64, Vec<Request>>, snapshots: Vec<RawSnapshot>) {
    let fetched_at = ferry_proto::timestamp(SystemTime::now());
    let mut outgoing = Vec::with_capacity(snapshots.len());
    let mut spans = Vec::with_capacity(snapshots.len());
    let mut found = Vec::with_capacity(snapshots.len());
    for snapshot in snapshots {
        let Some(requests) = batch.remove(&snapshot.number) else { continue };
        let first_accepted_at = requests
            .iter()
            .filter_map(|r| r.accepted_at)
            .min_by_key(|t| (t.seconds, t.nanos));
        let source = requests.first().map(|r| r.source).unwrap_or(pb::Source::Unspecified);
        spans.push(requests.first().map(|r| r.span.clone()).unwrap_or_else(tracing::Span::none));
        let hash = content_hash(&snapshot.json);
        let message = pb::OrderSnapshot {
            tenant: tenant.to_owned(),
            order_number: snapshot.number,
            content_hash: hash.clone(),
            snapshot_json: snapshot.json,
            fetched_at: Some(fetched_at),
            source: source as i32,
            first_accepted_at,
        };
        outgoing.push(Outgoing {
            subject: base.topology.snapshot_subject(tenant, snapshot.number),
            msg_id: format!("{tenant}:{}:{hash}", snapshot.number),
            payload: Bytes::from(message.encode_to_vec()),
        });
        found.push(requests);
    }
    let publishes = outgoing.iter().zip(spans).map(|(message, span)| {
        let publisher = base.publisher.clone();
        async move { publisher.publish(message).await.map(|_| ()) }.instrument(span)
    });
    let stored: Result<(), _> = futures::future::join_all(publishes).await.into_iter().collect();
    for request in found.into_iter().flatten() {
        let _ = request.reply.send(match &stored {
            Ok(()) => Ok(()),
            Err(e) => Err(HandlerError::transient(e)),
        });
    }
    // Whatever is left, Centra did not return.
    for (number, requests) in batch {
        for request in requests {
            let answer = if request.delivery.delivered < NOT_FOUND_ATTEMPTS {
                Err(HandlerError::Transient {
                    reason: format!("Centra does not return order {number} yet"),
                    retry_after: Some(Duration::from_secs(2)),
                })
            } else {
                let mut failure = request.delivery.permanent(
                    SERVICE,
                    ExceptionKind::OrderNotFound,
                    format!("order:{number}"),
                    format!(
                        "Centra announced order {number}, but Centra's API does not return it. \
                         Nothing was posted. Check that the API token may read this order's store \
                         and market; Ferry's resync picks it up once it is visible."
                    ),
                    format!("order {number} absent from the snapshot query answer"),
                );
                if let HandlerError::Permanent(exception) = &mut failure {
                    exception.order_number = Some(number);
                }
                Err(failure)
            };
            let _ = request.reply.send(answer);
        }
    }
}
