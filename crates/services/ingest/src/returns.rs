//! Returns: the notices naming Centra returns (webhook type `return`, Events `Return`
//! CREATED/COMPLETED) become return snapshots — the return as Centra holds it with its
//! order's contract snapshot, read together so the transform prices the returned lines as
//! the order charged them (ADR 0037). A return still pending is not money yet: it is left
//! until Centra completes it, which Centra announces again — and it is kept in
//! `pending_returns`, read again by id (`sources::PendingReturnsFeed`) in case that
//! announcement is lost. A notices message is acknowledged only once every completed
//! return it named is stored in JetStream.

use std::collections::{BTreeMap, BTreeSet, HashSet, VecDeque};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use bytes::Bytes;
use ferry_centra::{CentraClient, CentraError, CentraReturn, RawSnapshot};
use ferry_domain::{ExceptionKind, content_hash};
use ferry_proto::centra::v1 as pb;
use ferry_runtime::consumer::{Delivery, Handler, HandlerError};
use ferry_runtime::{Outgoing, ServiceBase};
use prost::Message as _;

/// Deliveries before a return (or its order) Centra does not return is given up on: a
/// return deleted in Centra before completion is simply gone; an order missing behind a
/// completed return is an exception.
const NOT_FOUND_ATTEMPTS: i64 = 4;

pub struct ReturnHandler {
    pub base: ServiceBase,
    pub tenant: String,
    pub client: CentraClient,
    pub seen: Seen,
    /// Where the returns seen pending are kept, to be read again (`sources::PendingReturnsFeed`).
    pub store: ferry_store::Store,
}

/// How many stored returns [`Seen`] remembers.
const SEEN: usize = 100_000;

/// Completed returns this process already stored, by id and content: Centra announces a
/// return several times (created and completed, by webhook and by the Events queue), and
/// a repeat of one already stored need not be read again with its order. Bounded, and a
/// restart forgets it: a repeat then costs a read and is dropped by JetStream.
#[derive(Default)]
pub struct Seen(std::sync::Mutex<Remembered>);

/// A return's id and a hash of its content.
type SeenKey = (i64, u64);

/// The keys, and the order they came in (the oldest is forgotten first).
type Remembered = (HashSet<SeenKey>, VecDeque<SeenKey>);

impl Seen {
    fn key(r: &CentraReturn) -> SeenKey {
        use std::hash::{Hash as _, Hasher as _};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (&r.status, r.returned_to_stock, &r.shipping_refund).hash(&mut h);
        for l in &r.lines {
            (l.id, l.order_line_id, l.quantity).hash(&mut h);
        }
        (r.id, h.finish())
    }

    fn contains(&self, r: &CentraReturn) -> bool {
        self.0
            .lock()
            .map(|g| g.0.contains(&Self::key(r)))
            .unwrap_or(false)
    }

    fn insert(&self, r: &CentraReturn) {
        if let Ok(mut g) = self.0.lock() {
            let key = Self::key(r);
            if g.0.insert(key) {
                g.1.push_back(key);
                if g.1.len() > SEEN
                    && let Some(old) = g.1.pop_front()
                {
                    g.0.remove(&old);
                }
            }
        }
    }
}

fn centra_failure(e: CentraError) -> HandlerError {
    HandlerError::Transient {
        retry_after: e.retry_after(),
        reason: e.to_string(),
    }
}

#[async_trait]
impl Handler for ReturnHandler {
    async fn handle(&self, delivery: &Delivery) -> Result<(), HandlerError> {
        let notices = pb::ChangeNotices::decode(delivery.payload.as_ref())
            .map_err(|e| delivery.poison("change notices", &e))?;
        let source = pb::Source::try_from(notices.source).unwrap_or(pb::Source::Unspecified);
        let ids: BTreeSet<i64> = notices
            .notices
            .iter()
            .filter(|n| n.object_type == "return")
            .map(|n| n.object_id)
            .collect();
        if ids.is_empty() {
            return Ok(());
        }
        let ids: Vec<i64> = ids.into_iter().collect();
        let returns = self.client.returns(&ids).await.map_err(centra_failure)?;
        let tenant = self.tenant.as_str();
        if returns.len() < ids.len() {
            if delivery.delivered < NOT_FOUND_ATTEMPTS {
                return Err(HandlerError::Transient {
                    reason: "Centra does not return every announced return yet".into(),
                    retry_after: Some(Duration::from_secs(2)),
                });
            }
            let found: HashSet<i64> = returns.iter().map(|r| r.id).collect();
            let deleted: Vec<i64> = ids
                .iter()
                .copied()
                .filter(|id| !found.contains(id))
                .collect();
            self.store
                .forget_pending_returns(&self.tenant, &deleted)
                .await
                .map_err(HandlerError::transient)?;
            let gone = ids.len() - returns.len();
            tracing::info!(
                tenant,
                gone,
                "returns deleted in Centra before Ferry read them"
            );
            metrics::counter!("ferry_centra_returns_total", "tenant" => tenant.to_owned(), "outcome" => "deleted")
                .increment(gone as u64);
        }
        let (completed, pending): (Vec<CentraReturn>, Vec<CentraReturn>) = returns
            .into_iter()
            .filter(|r| !self.seen.contains(r))
            .partition(CentraReturn::is_completed);
        metrics::counter!("ferry_centra_returns_total", "tenant" => tenant.to_owned(), "outcome" => "pending")
            .increment(pending.len() as u64);
        // Read again later by id, in case Centra's word of their completion never arrives.
        let pending: Vec<(i64, i64)> = pending.iter().map(|r| (r.id, r.order_number)).collect();
        self.store
            .note_pending_returns(tenant, &pending)
            .await
            .map_err(HandlerError::transient)?;
        if completed.is_empty() {
            return Ok(());
        }
        // Not acknowledged until stored below: a failure from here reads them again.
        let ids: Vec<i64> = completed.iter().map(|r| r.id).collect();
        self.store
            .forget_pending_returns(tenant, &ids)
            .await
            .map_err(HandlerError::transient)?;
        let numbers: BTreeSet<i64> = completed.iter().map(|r| r.order_number).collect();
        let numbers: Vec<i64> = numbers.into_iter().collect();
        let orders: BTreeMap<i64, RawSnapshot> = self
            .client
            .order_snapshots(&numbers)
            .await
            .map_err(centra_failure)?
            .into_iter()
            .map(|s| (s.number, s))
            .collect();
        let fetched_at = ferry_proto::timestamp(SystemTime::now());
        for r in &completed {
            let Some(order) = orders.get(&r.order_number) else {
                if delivery.delivered < NOT_FOUND_ATTEMPTS {
                    return Err(HandlerError::Transient {
                        reason: format!("Centra does not return order {} yet", r.order_number),
                        retry_after: Some(Duration::from_secs(2)),
                    });
                }
                return Err(not_credited_without_order(delivery, r));
            };
            let message = snapshot(r, order, tenant, source, fetched_at);
            let outgoing = Outgoing {
                subject: self.base.topology.return_snapshot_subject(tenant, r.id),
                msg_id: format!("{tenant}:return:{}:{}", r.id, message.content_hash),
                payload: Bytes::from(message.encode_to_vec()),
            };
            self.base.publisher.publish(&outgoing).await?;
            self.seen.insert(r);
        }
        metrics::counter!("ferry_centra_returns_total", "tenant" => tenant.to_owned(), "outcome" => "completed")
            .increment(completed.len() as u64);
        Ok(())
    }
}

/// The return snapshot; its hash covers everything the credit depends on, so the same
/// return read twice is one message and a return that changed is a new one.
fn snapshot(
    r: &CentraReturn,
    order: &RawSnapshot,
    tenant: &str,
    source: pb::Source,
    fetched_at: prost_types::Timestamp,
) -> pb::ReturnSnapshot {
    let order_hash = content_hash(&order.json);
    let lines: Vec<pb::ReturnSnapshotLine> = r
        .lines
        .iter()
        .map(|l| pb::ReturnSnapshotLine {
            id: l.id,
            order_line_id: l.order_line_id,
            quantity: l.quantity,
        })
        .collect();
    let identity = format!(
        "{}|{}|{}|{}|{}|{:?}",
        r.id,
        r.status,
        r.returned_to_stock,
        r.shipping_refund,
        order_hash,
        r.lines
            .iter()
            .map(|l| (l.id, l.order_line_id, l.quantity))
            .collect::<Vec<_>>()
    );
    pb::ReturnSnapshot {
        tenant: tenant.to_owned(),
        return_id: r.id,
        order_number: r.order_number,
        status: r.status.clone(),
        lines,
        shipping_refund: r.shipping_refund.clone(),
        order_snapshot_json: order.json.to_vec(),
        created_at: r.created_at.clone(),
        fetched_at: Some(fetched_at),
        source: source as i32,
        content_hash: content_hash(identity.as_bytes()),
        returned_to_stock: r.returned_to_stock,
    }
}

fn not_credited_without_order(delivery: &Delivery, r: &CentraReturn) -> HandlerError {
    let mut error = delivery.permanent(
        ExceptionKind::ReturnNotCredited,
        format!("return:{}", r.id),
        format!(
            "Centra completed return {} of order {}, but Centra's API does not return the \
             order, so Ferry cannot price the return and no credit note was made. Check \
             that the API token may read this order's store and market, or credit the \
             return by hand.",
            r.id, r.order_number
        ),
        format!(
            "order {} absent from the snapshot query answer",
            r.order_number
        ),
    );
    if let HandlerError::Permanent(e) = &mut error {
        e.order_number = Some(r.order_number);
    }
    error
}
