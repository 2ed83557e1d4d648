//! The two pull sources beside webhooks, run by the feed runner (one replica per tenant).
//! Centra does not guarantee webhook delivery or order, so ingest also drains Centra's
//! Events queue (confirming events only after the notices are stored in JetStream) and
//! runs a periodic resync of every order changed since the last one (its cursor is stored
//! only after the notices are). All three sources produce the same `ChangeNotices`; the
//! fetcher and the ledger make repeats harmless.

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use ferry_centra::{CentraClient, CentraError, CentraEvent};
use ferry_domain::{ExceptionKind, NewException};
use ferry_proto::centra::v1 as pb;
use ferry_runtime::{Feed, FeedError, Outgoing, Pass, ServiceBase};
use prost::Message as _;
use sha2::{Digest, Sha256};

fn now_timestamp() -> prost_types::Timestamp {
    prost_types::Timestamp::from(std::time::SystemTime::now())
}

/// One change a pull source saw: (Centra's webhook word for the object — "order",
/// "return" —, its number or id, the action, Centra's event date).
pub(crate) type Item = (&'static str, i64, String, String);

/// Notices for `items`, one message, with an id derived from `identity` so that the same
/// batch published twice (a crash before confirming) is dropped by JetStream.
pub(crate) fn notices(
    base: &ServiceBase,
    tenant: &str,
    source: pb::Source,
    items: &[Item],
    identity: &str,
) -> Outgoing {
    let accepted_at = now_timestamp();
    let message = pb::ChangeNotices {
        tenant: tenant.to_owned(),
        source: source as i32,
        notices: items
            .iter()
            .map(|(object_type, number, action, date)| pb::ChangeNotice {
                tenant: tenant.to_owned(),
                source: source as i32,
                object_type: (*object_type).to_owned(),
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

/// A Centra failure while reading a source: transient ones (timeouts, 5xx, 429 with its
/// wait, GraphQL errors Centra may not repeat) are retried by the feed runner; a refused
/// token or permission becomes a `feed_failed` exception for engineering.
fn feed_error(e: CentraError, tenant: &str, feed: &str) -> FeedError {
    metrics::counter!("ferry_centra_source_errors_total", "tenant" => tenant.to_owned(), "feed" => feed.to_owned())
        .increment(1);
    if e.is_transient() || matches!(e, CentraError::GraphQl { .. }) {
        return FeedError::Transient {
            retry_after: e.retry_after(),
            reason: e.to_string(),
        };
    }
    FeedError::Permanent(Box::new(NewException {
        tenant: tenant.to_owned(),
        kind: ExceptionKind::FeedFailed,
        key: format!("feed:{feed}"),
        message: format!(
            "Ferry cannot read Centra's {feed}: {e}. Orders still arrive by webhook, but \
             those whose webhook Centra loses are not picked up until this is fixed. Check \
             the integration token's permissions in Centra."
        ),
        reason: e.to_string(),
        order_number: None,
        amount_minor: None,
        currency: None,
        service: crate::SERVICE.to_owned(),
        source_subject: None,
        payload: Vec::new(),
    }))
}

/// Centra's Events queue: each page of order and return events becomes one notices message, and the
/// events are confirmed only once JetStream holds it (unconfirmed events come again; the
/// repeat has the same message id and is dropped).
pub struct EventsFeed {
    pub base: ServiceBase,
    pub tenant: String,
    pub client: CentraClient,
}

/// The Events feed's name.
pub const EVENTS_FEED: &str = "centra-events";

#[async_trait]
impl Feed for EventsFeed {
    /// Listening is idempotent; until it works there is nothing to poll.
    async fn lead(&self) -> Result<(), FeedError> {
        self.client
            .listen_for_order_events()
            .await
            .map_err(|e| feed_error(e, &self.tenant, EVENTS_FEED))
    }

    async fn pass(&self, _cursor: &str) -> Result<Pass, FeedError> {
        let tenant = self.tenant.as_str();
        let events = self
            .client
            .order_events(ferry_centra::client::MAX_PAGE)
            .await
            .map_err(|e| feed_error(e, tenant, EVENTS_FEED))?;
        if events.is_empty() {
            return Ok(Pass::default());
        }
        let ids: Vec<i64> = events.iter().map(|e| e.id).collect();
        let orders: Vec<Item> = events
            .iter()
            .filter_map(|e| {
                let kind = match e.object_type.as_str() {
                    "Order" => "order",
                    "Return" => "return",
                    "Customer" => "customer",
                    _ => return None,
                };
                Some((kind, e.object_reference, action_of(e), String::new()))
            })
            .collect();
        if !orders.is_empty() {
            let identity = format!(
                "{tenant}:{}",
                ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",")
            );
            let message = notices(&self.base, tenant, pb::Source::Events, &orders, &identity);
            // Not stored: not confirmed, so Centra hands the same events out again.
            self.base
                .publisher
                .publish(&message)
                .await
                .map_err(FeedError::transient)?;
        }
        metrics::counter!("ferry_centra_events_total", "tenant" => tenant.to_owned())
            .increment(ids.len() as u64);
        // Stored but not confirmed: they come back, and JetStream drops the repeat.
        self.client
            .confirm_events(&ids)
            .await
            .map_err(|e| feed_error(e, tenant, EVENTS_FEED))?;
        Ok(Pass {
            items: ids.len() as u64,
            more: events.len() >= ferry_centra::client::MAX_PAGE,
            ..Pass::default()
        })
    }
}

/// One resync pass: every order changed since `from`, as notices. Returns how many.
pub async fn resync_once(
    base: &ServiceBase,
    tenant: &str,
    client: &CentraClient,
    from: DateTime<Utc>,
    started: DateTime<Utc>,
) -> Result<usize, FeedError> {
    let numbers = client
        .orders_changed_since(from)
        .await
        .map_err(|e| feed_error(e, tenant, RESYNC_FEED))?;
    for (i, chunk) in numbers.chunks(ferry_centra::client::MAX_PAGE).enumerate() {
        let items: Vec<Item> = chunk
            .iter()
            .map(|n| ("order", *n, "update".to_owned(), String::new()))
            .collect();
        let identity = format!("{tenant}:{}:{i}", started.timestamp_millis());
        let message = notices(base, tenant, pb::Source::Resync, &items, &identity);
        base.publisher
            .publish(&message)
            .await
            .map_err(FeedError::transient)?;
    }
    Ok(numbers.len())
}

/// The resync feed's name; its cursor is when the last complete pass started (RFC 3339).
pub const RESYNC_FEED: &str = "centra-resync";

/// Every order changed since the last pass, each `interval`. The first pass of a new
/// tenant starts one overlap ago (history is not backfilled); every pass reaches back one
/// overlap before the last one started, for Centra's clock and slow writes.
pub struct ResyncFeed {
    pub base: ServiceBase,
    pub tenant: String,
    pub client: CentraClient,
    pub overlap: Duration,
}

#[async_trait]
impl Feed for ResyncFeed {
    async fn pass(&self, cursor: &str) -> Result<Pass, FeedError> {
        let started = Utc::now();
        let overlap = chrono::Duration::from_std(self.overlap).unwrap_or_default();
        let last = DateTime::parse_from_rfc3339(cursor)
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or(started);
        let n = resync_once(
            &self.base,
            &self.tenant,
            &self.client,
            last - overlap,
            started,
        )
        .await?;
        metrics::counter!("ferry_centra_resync_orders_total", "tenant" => self.tenant.clone())
            .increment(n as u64);
        Ok(Pass {
            cursor: started.to_rfc3339(),
            items: n as u64,
            ..Pass::default()
        })
    }
}

/// The pending-returns feed's name.
pub const RETURNS_RECHECK_FEED: &str = "centra-returns-recheck";

/// How long a return may stay pending before Ferry stops reading it again.
const PENDING_RETURNS_KEPT: Duration = Duration::from_secs(90 * 24 * 3600);

/// The returns' resync: every `every`, the returns ingest saw pending and has not read
/// since are announced again (as notices, to the returns consumer), so a completion whose
/// webhook and event were both lost is still read and credited. Centra documents no
/// listing of returns by time (`returns(where:)` takes ids, or a customer and store
/// type), so reading the pending ones again by id is what a resync can be.
pub struct PendingReturnsFeed {
    pub base: ServiceBase,
    pub tenant: String,
    pub store: ferry_store::Store,
    pub every: Duration,
}

#[async_trait]
impl Feed for PendingReturnsFeed {
    async fn pass(&self, _cursor: &str) -> Result<Pass, FeedError> {
        let tenant = self.tenant.as_str();
        let limit = ferry_centra::client::MAX_PAGE;
        let (due, expired) = self
            .store
            .pending_returns_due(tenant, self.every, PENDING_RETURNS_KEPT, limit as i64)
            .await
            .map_err(FeedError::transient)?;
        if expired > 0 {
            tracing::info!(
                tenant,
                expired,
                "returns pending in Centra for 90 days no longer read again"
            );
        }
        if due.is_empty() {
            return Ok(Pass::default());
        }
        let items: Vec<Item> = due
            .iter()
            .map(|id| ("return", *id, "update".to_owned(), String::new()))
            .collect();
        let identity = format!("{tenant}:returns:{}", Utc::now().timestamp_millis());
        let message = notices(&self.base, tenant, pb::Source::Resync, &items, &identity);
        self.base
            .publisher
            .publish(&message)
            .await
            .map_err(FeedError::transient)?;
        metrics::counter!("ferry_centra_returns_rechecked_total", "tenant" => tenant.to_owned())
            .increment(due.len() as u64);
        Ok(Pass {
            items: due.len() as u64,
            more: due.len() >= limit,
            ..Pass::default()
        })
    }
}
