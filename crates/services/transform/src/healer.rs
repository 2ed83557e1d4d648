//! Releases orders blocked by something configuration fixes. When a tenant's SKU mapping
//! changes (and once at start, after a configuration change), every order parked as
//! rejected on an unmapped SKU, currency or tax rate is sent through the transform again
//! from the snapshot it was judged on. The ledger lets the same snapshot move a waiting
//! order forward, and the ready message's id keeps it to one sales order.

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use ferry_proto::centra::v1 as pb;
use ferry_runtime::{Feed, FeedError, Outgoing, Pass, ServiceBase};
use ferry_store::Store;
use parking_lot::Mutex;
use prost::Message as _;

/// How often the mapping is checked for changes.
const INTERVAL: Duration = Duration::from_secs(3);
/// Orders released per pass (the rest follow in the next pass).
const BATCH: i64 = 2000;

type Version = (i64, Option<chrono::DateTime<chrono::Utc>>);

/// A periodic feed (one replica per tenant): releases blocked orders whenever the
/// tenant's mapping version differs from the one last released for.
pub struct Healer {
    pub base: ServiceBase,
    pub store: Store,
    pub tenant: String,
    /// The mapping version everything was released for (`None`: at start, check all).
    seen: Mutex<Option<Version>>,
}

/// The healer's feed name.
pub const FEED: &str = "mapping-healer";

impl Healer {
    pub fn new(base: ServiceBase, store: Store, tenant: String) -> Self {
        Healer {
            base,
            store,
            tenant,
            seen: Mutex::new(None),
        }
    }

    pub fn interval() -> Duration {
        INTERVAL
    }
}

#[async_trait]
impl Feed for Healer {
    async fn pass(&self, _cursor: &str) -> Result<Pass, FeedError> {
        let tenant = self.tenant.as_str();
        let version = self
            .store
            .mapping_version(tenant)
            .await
            .map_err(FeedError::transient)?;
        if self.seen.lock().as_ref() == Some(&version) {
            return Ok(Pass::default());
        }
        let released = release(&self.base, &self.store, tenant, &version)
            .await
            .map_err(FeedError::transient)?;
        if released > 0 {
            tracing::info!(
                tenant,
                released,
                "blocked orders sent through the transform again"
            );
        }
        // A full batch means more may wait: look again at once.
        let more = released >= BATCH as usize;
        if !more {
            *self.seen.lock() = Some(version);
        }
        Ok(Pass {
            items: released as u64,
            more,
            ..Pass::default()
        })
    }
}

async fn release(
    base: &ServiceBase,
    store: &Store,
    tenant: &str,
    version: &Version,
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
