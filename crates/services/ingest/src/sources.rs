//! The two pull sources beside webhooks. Centra does not guarantee webhook delivery or
//! order, so ingest also drains Centra's Events queue (confirming events only after the
//! notices are stored in JetStream) and runs a periodic resync of every order changed
//! since the last one (its checkpoint is stored only after the notices are). All three
//! sources produce the same `ChangeNotices`; the fetcher and the ledger make repeats
//! harmless.

use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use ferry_centra::{CentraClient, CentraError, CentraEvent};
use ferry_proto::centra::v1 as pb;
use ferry_runtime::{Outgoing, ServiceBase};
use ferry_store::Store;
use prost::Message as _;
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

/// The checkpoint name of the resync (per tenant).
pub const RESYNC_CHECKPOINT: &str = "centra-resync";

/// How long to wait after a failed call: what a 429 asked for, else a short backoff.
fn pause_after(error: &CentraError, attempt: u32) -> Duration {
    error.retry_after().unwrap_or_else(|| {
        let base = Duration::from_millis(500) * 2u32.saturating_pow(attempt.min(6));
        base + Duration::from_millis(rand::random_range(0..250))
    })
}

/// Sleeps unless shut down first; `false` when shut down.
async fn nap(shutdown: &CancellationToken, d: Duration) -> bool {
    tokio::select! {
        _ = shutdown.cancelled() => false,
        _ = tokio::time::sleep(d) => true,
    }
}

fn now_timestamp() -> prost_types::Timestamp {
    prost_types::Timestamp::from(std::time::SystemTime::now())
}

/// Notices for `numbers`, one message, with an id derived from `identity` so that the same
/// batch published twice (a crash before confirming) is dropped by JetStream.
fn notices(
    base: &ServiceBase,
    tenant: &str,
    source: pb::Source,
    items: &[(i64, String, String)],
    identity: &str,
) -> Outgoing {
    let accepted_at = now_timestamp();
    let message = pb::ChangeNotices {
        tenant: tenant.to_owned(),
        source: source as i32,
        notices: items
            .iter()
            .map(|(number, action, date)| pb::ChangeNotice {
                tenant: tenant.to_owned(),
                source: source as i32,
                object_type: "order".to_owned(),
                action: action.clone(),
                object_id: *number,
                event_date: date.clone(),
                accepted_at: Some(accepted_at),
            })
            .collect(),
        accepted_at: Some(accepted_at),
    };
    let digest = hex::encode(&Sha256::digest(identity.as_bytes())[..16]);
    let kind = match source {
        pb::Source::Events => "events",
        _ => "resync",
    };
    Outgoing {
        subject: base.topology.notices_subject(tenant),
        msg_id: format!("notices:{kind}:{digest}"),
        payload: Bytes::from(message.encode_to_vec()),
    }
}

fn action_of(event: &CentraEvent) -> String {
    match event.change_type.as_str() {
        "CREATED" => "insert",
        "DELETED" => "delete",
        _ => "update",
    }
    .to_owned()
}

/// Drains the tenant's Events queue until shutdown.
pub async fn run_events(
    base: ServiceBase,
    tenant: String,
    client: CentraClient,
    poll: Duration,
    shutdown: CancellationToken,
) {
    let mut attempt = 0u32;
    // Listening is idempotent; until it works there is nothing to poll.
    loop {
        match client.listen_for_order_events().await {
            Ok(()) => break,
            Err(e) => {
                tracing::warn!(tenant = %tenant, error = %e, "cannot listen to Centra's Events queue yet");
                metrics::counter!("ferry_centra_events_errors_total", "tenant" => tenant.clone())
                    .increment(1);
                if !e.is_transient() && !matches!(e, CentraError::GraphQl { .. }) {
                    // A refused token or a business error will not fix itself quickly.
                    attempt = attempt.max(5);
                }
                if !nap(&shutdown, pause_after(&e, attempt)).await {
                    return;
                }
                attempt += 1;
            }
        }
    }
    attempt = 0;
    while !shutdown.is_cancelled() {
        let events = match client.order_events(ferry_centra::client::MAX_PAGE).await {
            Ok(events) => events,
            Err(e) => {
                tracing::warn!(tenant = %tenant, error = %e, "polling Centra's Events queue failed");
                metrics::counter!("ferry_centra_events_errors_total", "tenant" => tenant.clone())
                    .increment(1);
                if !nap(&shutdown, pause_after(&e, attempt)).await {
                    return;
                }
                attempt += 1;
                continue;
            }
        };
        attempt = 0;
        if events.is_empty() {
            if !nap(&shutdown, poll).await {
                return;
            }
            continue;
        }
        let ids: Vec<i64> = events.iter().map(|e| e.id).collect();
        let orders: Vec<(i64, String, String)> = events
            .iter()
            .filter(|e| e.object_type == "Order")
            .map(|e| (e.object_reference, action_of(e), String::new()))
            .collect();
        if !orders.is_empty() {
            let identity = format!(
                "{tenant}:{}",
                ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",")
            );
            let message = notices(&base, &tenant, pb::Source::Events, &orders, &identity);
            if let Err(e) = base.publisher.publish(&message).await {
                // Not confirmed, so Centra hands the same events out again.
                tracing::warn!(tenant = %tenant, error = %e, "events not stored; they stay unconfirmed");
                if !nap(&shutdown, Duration::from_secs(1)).await {
                    return;
                }
                continue;
            }
        }
        metrics::counter!("ferry_centra_events_total", "tenant" => tenant.clone())
            .increment(ids.len() as u64);
        if let Err(e) = client.confirm_events(&ids).await {
            // Stored but not confirmed: they come back, and JetStream drops the repeat.
            tracing::warn!(tenant = %tenant, error = %e, "confirming events failed; they will come again");
            if !nap(&shutdown, pause_after(&e, 0)).await {
                return;
            }
        }
        if events.len() < ferry_centra::client::MAX_PAGE && !nap(&shutdown, poll).await {
            return;
        }
    }
}

/// One resync pass: every order changed since `from`, as notices. Returns how many.
pub async fn resync_once(
    base: &ServiceBase,
    tenant: &str,
    client: &CentraClient,
    from: DateTime<Utc>,
    started: DateTime<Utc>,
) -> Result<usize, ResyncError> {
    let numbers = client
        .orders_changed_since(from)
        .await
        .map_err(ResyncError::Centra)?;
    for (i, chunk) in numbers.chunks(ferry_centra::client::MAX_PAGE).enumerate() {
        let items: Vec<(i64, String, String)> = chunk
            .iter()
            .map(|n| (*n, "update".to_owned(), String::new()))
            .collect();
        let identity = format!("{tenant}:{}:{i}", started.timestamp_millis());
        let message = notices(base, tenant, pb::Source::Resync, &items, &identity);
        base.publisher
            .publish(&message)
            .await
            .map_err(|e| ResyncError::Publish(e.to_string()))?;
    }
    Ok(numbers.len())
}

#[derive(Debug, thiserror::Error)]
pub enum ResyncError {
    #[error(transparent)]
    Centra(CentraError),
    #[error("notices not stored: {0}")]
    Publish(String),
    #[error("checkpoint: {0}")]
    Store(String),
}

/// Resyncs every `interval` until shutdown. The first pass starts from the stored
/// checkpoint (or, for a new tenant, from one overlap ago: history is not backfilled).
pub async fn run_resync(
    base: ServiceBase,
    store: Store,
    tenant: String,
    client: CentraClient,
    interval: Duration,
    overlap: Duration,
    shutdown: CancellationToken,
) {
    let overlap = chrono::Duration::from_std(overlap).unwrap_or_default();
    let mut attempt = 0u32;
    loop {
        let started = Utc::now();
        let result = async {
            let checkpoint = store
                .checkpoint(&tenant, RESYNC_CHECKPOINT)
                .await
                .map_err(|e| ResyncError::Store(e.to_string()))?
                .and_then(|v| DateTime::parse_from_rfc3339(&v).ok())
                .map(|t| t.with_timezone(&Utc))
                .unwrap_or(started);
            let from = checkpoint - overlap;
            let n = resync_once(&base, &tenant, &client, from, started).await?;
            store
                .set_checkpoint(&tenant, RESYNC_CHECKPOINT, &started.to_rfc3339())
                .await
                .map_err(|e| ResyncError::Store(e.to_string()))?;
            Ok::<usize, ResyncError>(n)
        }
        .await;
        let wait = match result {
            Ok(n) => {
                attempt = 0;
                metrics::counter!("ferry_centra_resync_orders_total", "tenant" => tenant.clone())
                    .increment(n as u64);
                tracing::debug!(tenant = %tenant, orders = n, "resync pass done");
                interval
            }
            Err(e) => {
                tracing::warn!(tenant = %tenant, error = %e, "resync pass failed; retrying");
                metrics::counter!("ferry_centra_resync_errors_total", "tenant" => tenant.clone())
                    .increment(1);
                attempt += 1;
                match &e {
                    ResyncError::Centra(c) => pause_after(c, attempt),
                    _ => Duration::from_secs(1) * attempt.min(30),
                }
                .min(interval)
            }
        };
        if !nap(&shutdown, wait).await {
            return;
        }
    }
}
