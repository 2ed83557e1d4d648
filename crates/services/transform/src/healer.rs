//! Releases orders blocked by something configuration fixes. When a tenant's SKU mapping
//! changes (and once at start, after a configuration change), every order parked as
//! rejected on an unmapped SKU, currency or tax rate is sent through the transform again
//! from the snapshot it was judged on. The ledger lets the same snapshot move a waiting
//! order forward, and the ready message's id keeps it to one sales order.

use std::time::Duration;

use bytes::Bytes;
use ferry_proto::centra::v1 as pb;
use ferry_runtime::{Outgoing, ServiceBase};
use ferry_store::Store;
use prost::Message as _;

/// How often the mapping is checked for changes.
const INTERVAL: Duration = Duration::from_secs(3);
/// Orders released per pass (the rest follow in the next pass).
const BATCH: i64 = 2000;

pub async fn run(base: ServiceBase, store: Store, tenant: String) {
    let mut seen: Option<(i64, Option<chrono::DateTime<chrono::Utc>>)> = None;
    loop {
        match store.mapping_version(&tenant).await {
            Ok(version) if seen.as_ref() != Some(&version) => {
                match release(&base, &store, &tenant, &version).await {
                    Ok(released) => {
                        if released > 0 {
                            tracing::info!(
                                tenant,
                                released,
                                "blocked orders sent through the transform again"
                            );
                        }
                        // A full batch means more may wait: look again next pass.
                        if released < BATCH as usize {
                            seen = Some(version);
                        }
                    }
                    Err(e) => {
                        tracing::warn!(tenant, error = %e, "releasing blocked orders failed; will retry")
                    }
                }
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(tenant, error = %e, "cannot read the mapping version; will retry")
            }
        }
        tokio::select! {
            _ = base.shutdown.cancelled() => return,
            _ = tokio::time::sleep(INTERVAL) => {}
        }
    }
}

async fn release(
    base: &ServiceBase,
    store: &Store,
    tenant: &str,
    version: &(i64, Option<chrono::DateTime<chrono::Utc>>),
) -> Result<usize, String> {
    let blocked = store
        .blocked_orders(tenant, BATCH)
        .await
        .map_err(|e| e.to_string())?;
    let stamp = format!(
        "{}-{}",
        version.0,
        version.1.map(|t| t.timestamp_micros()).unwrap_or(0)
    );
    let messages: Vec<Outgoing> = blocked
        .iter()
        .map(|order| {
            let message = pb::OrderSnapshot {
                tenant: tenant.to_owned(),
                order_number: order.order_number,
                snapshot_json: order.body.clone().into(),
                content_hash: order.snapshot_hash.clone(),
                fetched_at: Some(ferry_proto::timestamp(order.snapshot_fetched_at.into())),
                source: pb::Source::Replay as i32,
                first_accepted_at: order
                    .first_accepted_at
                    .map(|t| ferry_proto::timestamp(t.into())),
            };
            Outgoing {
                subject: base.topology.snapshot_subject(tenant, order.order_number),
                // One replay per order per mapping version, whichever replica sends it.
                msg_id: format!(
                    "{tenant}:{}:{}:replay:{stamp}",
                    order.order_number, order.snapshot_hash
                ),
                payload: Bytes::from(message.encode_to_vec()),
            }
        })
        .collect();
    base.publisher
        .publish_all(&messages)
        .await
        .map_err(|e| e.to_string())?;
    Ok(messages.len())
}
