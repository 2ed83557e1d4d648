//! The transform service: Centra order snapshots in; ERP-ready sales orders, held orders
//! and exceptions out. It records every decision in the ledger before acknowledging, so a
//! redelivered snapshot changes nothing and a stale one never overwrites a newer one.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use ferry_config::TenantConfig;
use ferry_domain::{
    ExceptionKind, NewException, Problem, Release, SalesOrder, Snapshot, transform,
};
use ferry_platform::Platform;
use ferry_proto::centra::v1 as centra_pb;
use ferry_proto::order::v1 as order_pb;
use ferry_runtime::coalesce::Coalescer;
use ferry_runtime::consumer::{Delivery, Handler, HandlerError, Runner};
use ferry_runtime::{ExceptionSink, FeedSpec, Outgoing, ServiceBase, StreamKind};
use ferry_store::SkuCache;
use ferry_store::{LedgerState, SnapshotOutcome, SnapshotRecord, Store};
use prost::Message as _;

pub mod amend;
pub mod convert;
pub mod healer;
pub mod returns;

pub const SERVICE: &str = "transform";

/// The exception kinds the transform raises (and resolves when their cause is gone).
pub const TRANSFORM_KINDS: [&str; 5] = [
    "unmapped_sku",
    "unmapped_currency",
    "unmapped_tax_rate",
    "snapshot_inconsistent",
    "invalid_snapshot",
];

#[derive(Debug, thiserror::Error)]
pub enum TransformError {
    #[error(transparent)]
    Runner(#[from] ferry_runtime::consumer::RunnerError),
    #[error(transparent)]
    Nats(#[from] ferry_runtime::nats::NatsError),
    #[error("a consumer task failed: {0}")]
    Join(String),
}

/// Runs one consumer per tenant until the base's shutdown token is cancelled.
pub async fn run(platform: Platform) -> Result<(), TransformError> {
    let Platform {
        base,
        config,
        store,
        sink,
        feeds,
    } = platform;
    let mut tasks = tokio::task::JoinSet::new();
    for tenant in &config.tenants {
        let handler = Arc::new(TransformHandler {
            tenant: tenant.clone(),
            recorder: recorder(store.clone()),
            store: store.clone(),
            base: base.clone(),
            sink: sink.clone(),
            items: SkuCache::new(SKU_CACHE_TTL),
        });
        let runner = Runner::builder(
            &base,
            sink.clone(),
            SERVICE,
            &tenant.id,
            StreamKind::Centra,
            base.topology.snapshots_filter(&tenant.id),
        )
        .build();
        tasks.spawn(runner.run(handler, base.shutdown.clone()));
        let returns = Arc::new(returns::ReturnHandler {
            tenant: tenant.clone(),
            store: store.clone(),
            base: base.clone(),
            items: SkuCache::new(SKU_CACHE_TTL),
        });
        tasks.spawn(
            returns::runner(&base, sink.clone(), &tenant.id).run(returns, base.shutdown.clone()),
        );
        feeds.spawn(
            FeedSpec::periodic(
                SERVICE,
                &tenant.id,
                healer::FEED,
                healer::Healer::interval(),
                true,
            ),
            Arc::new(healer::Healer::new(
                base.clone(),
                store.clone(),
                tenant.id.clone(),
            )),
            base.shutdown.clone(),
        );
    }
    while let Some(done) = tasks.join_next().await {
        done.map_err(|e| TransformError::Join(e.to_string()))??;
    }
    Ok(())
}

/// Snapshot records written many per statement (group commit), one writer per tenant.
type Recorder = Coalescer<SnapshotRecord, Result<SnapshotOutcome, String>>;

fn recorder(store: Store) -> Recorder {
    Coalescer::spawn(256, 1, move |records: Vec<SnapshotRecord>| {
        let store = store.clone();
        async move {
            match store.record_snapshots(&records).await {
                Ok(outcomes) => outcomes.into_iter().map(Ok).collect(),
                Err(e) => {
                    let reason = e.to_string();
                    records.iter().map(|_| Err(reason.clone())).collect()
                }
            }
        }
    })
}

/// How stale the SKU map may be: a mapping imported is used within this.
const SKU_CACHE_TTL: Duration = Duration::from_secs(2);

struct TransformHandler {
    tenant: TenantConfig,
    recorder: Recorder,
    store: Store,
    base: ServiceBase,
    sink: Arc<dyn ExceptionSink>,
    items: SkuCache,
}

fn store_error(e: ferry_store::StoreError) -> HandlerError {
    HandlerError::transient(e)
}

fn time_of(ts: Option<&prost_types::Timestamp>) -> Option<DateTime<Utc>> {
    ts.and_then(|t| DateTime::from_timestamp(t.seconds, u32::try_from(t.nanos).unwrap_or(0)))
}

#[async_trait]
impl Handler for TransformHandler {
    async fn handle(&self, delivery: &Delivery) -> Result<(), HandlerError> {
        let message = centra_pb::OrderSnapshot::decode(delivery.payload.clone())
            .map_err(|e| delivery.poison("order snapshot", &e))?;
        let snapshot = match Snapshot::parse(&message.snapshot_json) {
            Ok(s) => s,
            Err(e) => {
                return Err(HandlerError::Permanent(Box::new(NewException {
                    tenant: self.tenant.id.clone(),
                    kind: ExceptionKind::InvalidSnapshot,
                    key: format!("order:{}:snapshot", message.order_number),
                    message: format!(
                        "Order {} could not be read from Centra: its data is not an order snapshot. \
                         Nothing was posted to the ERP; engineering must look at the order data.",
                        message.order_number
                    ),
                    reason: e.to_string(),
                    order_number: Some(message.order_number),
                    amount_minor: None,
                    currency: None,
                    service: SERVICE.to_owned(),
                    source_subject: Some(delivery.subject.clone()),
                    payload: message.snapshot_json.to_vec(),
                })));
            }
        };
        // A replay exists because something changed: judge it with the mapping of this moment.
        let replay = message.source == centra_pb::Source::Replay as i32;
        let items = self
            .items
            .get(&self.store, &self.tenant.id, replay)
            .await
            .map_err(store_error)?;
        let order = transform(&snapshot, &self.tenant.rules, items.as_ref());
        tracing::debug!(
            order = order.order_number,
            release = order.release.as_str(),
            "transformed"
        );

        let fetched_at = time_of(message.fetched_at.as_ref()).unwrap_or_else(Utc::now);
        let fingerprint = order.fingerprint();
        let outcome = self
            .recorder
            .call(SnapshotRecord {
                tenant: self.tenant.id.clone(),
                order_number: order.order_number,
                centra_order_id: order.centra_order_id.clone(),
                snapshot_hash: message.content_hash.clone(),
                fetched_at,
                first_accepted_at: time_of(message.first_accepted_at.as_ref()),
                order_fingerprint: fingerprint.clone(),
                state: ledger_state(order.release),
                currency: order.currency.clone(),
                gross_minor: order.grand_total,
                tax_minor: (order.release != Release::Rejected).then_some(order.totals.tax),
                trace_id: Some(ferry_runtime::telemetry::current_trace_id())
                    .filter(|t| !t.is_empty()),
                customer_email_key: ferry_domain::lookup::email_key(
                    &self.tenant.id,
                    &order.party.email,
                ),
                body: message.snapshot_json.clone(),
            })
            .await
            .ok_or_else(|| HandlerError::transient("the ledger writer stopped"))?
            .map_err(HandlerError::transient)?;

        match outcome {
            // Replayed by a person (`ferry replay`) after the order reached the ERP: the
            // same Centra data may now make a different order (a mapping changed), which
            // is an amendment like any change after posting.
            SnapshotOutcome::AlreadyApplied(state) if replay && state.reached_erp() => {
                let posted = self
                    .store
                    .ledger_row(&self.tenant.id, order.order_number)
                    .await
                    .map_err(store_error)?
                    .map(|r| r.order_fingerprint)
                    .unwrap_or_default();
                if posted != fingerprint && order.release != Release::Held {
                    self.amendment(&order, state, &message).await?;
                }
            }
            SnapshotOutcome::Applied
            | SnapshotOutcome::Changed(_)
            | SnapshotOutcome::AlreadyApplied(_) => {
                self.record_problems(&order, delivery, &message.snapshot_json)
                    .await?;
                if let SnapshotOutcome::Changed(LedgerState::Rejected | LedgerState::Held) = outcome
                {
                    self.resolve_fixed(&order).await?;
                }
                let still_ready = matches!(
                    outcome,
                    SnapshotOutcome::Applied
                        | SnapshotOutcome::Changed(_)
                        | SnapshotOutcome::AlreadyApplied(LedgerState::Ready)
                );
                if order.release == Release::Ready && still_ready {
                    self.publish_ready(&order, &message).await?;
                }
            }
            SnapshotOutcome::Stale => {
                tracing::debug!(order = order.order_number, "stale snapshot ignored");
            }
            SnapshotOutcome::Raced => {
                return Err(HandlerError::Transient {
                    reason: format!("order {} was written concurrently", order.order_number),
                    retry_after: Some(Duration::from_millis(50)),
                });
            }
            SnapshotOutcome::AfterPosting(state, posted) => {
                if posted != fingerprint && order.release != Release::Held {
                    self.amendment(&order, state, &message).await?;
                }
            }
        }
        Ok(())
    }
}

fn ledger_state(release: Release) -> LedgerState {
    match release {
        Release::Ready => LedgerState::Ready,
        Release::Held => LedgerState::Held,
        Release::Cancelled => LedgerState::Cancelled,
        Release::Rejected => LedgerState::Rejected,
    }
}

impl TransformHandler {
    fn exception(
        &self,
        order: &SalesOrder,
        problem: &Problem,
        delivery: &Delivery,
        payload: &[u8],
    ) -> NewException {
        NewException {
            tenant: self.tenant.id.clone(),
            kind: problem.kind,
            key: format!("order:{}:{}", order.order_number, problem.key),
            message: problem.message.clone(),
            reason: problem.reason.clone(),
            order_number: Some(order.order_number),
            amount_minor: order.grand_total,
            currency: Some(order.currency.clone()).filter(|c| !c.is_empty()),
            service: SERVICE.to_owned(),
            source_subject: Some(delivery.subject.clone()),
            payload: payload.to_vec(),
        }
    }

    /// A re-evaluated order's exceptions whose cause is gone are resolved.
    async fn resolve_fixed(&self, order: &SalesOrder) -> Result<(), HandlerError> {
        let keep: Vec<String> = order
            .problems
            .iter()
            .map(|p| format!("order:{}:{}", order.order_number, p.key))
            .collect();
        let resolved = self
            .store
            .resolve_order_exceptions(
                &self.tenant.id,
                order.order_number,
                &TRANSFORM_KINDS,
                &keep,
                "fixed: the order was evaluated again and the cause is gone",
            )
            .await
            .map_err(store_error)?;
        if resolved > 0 {
            tracing::info!(
                order = order.order_number,
                resolved,
                release = order.release.as_str(),
                "blocked order re-evaluated"
            );
        }
        Ok(())
    }

    /// Blocking problems become exception records (deduplicated per order and cause).
    async fn record_problems(
        &self,
        order: &SalesOrder,
        delivery: &Delivery,
        payload: &[u8],
    ) -> Result<(), HandlerError> {
        for problem in &order.problems {
            let exception = self.exception(order, problem, delivery, payload);
            self.sink
                .record(&exception)
                .await
                .map_err(HandlerError::transient)?;
        }
        Ok(())
    }

    async fn publish_ready(
        &self,
        order: &SalesOrder,
        message: &centra_pb::OrderSnapshot,
    ) -> Result<(), HandlerError> {
        let ready = order_pb::OrderReady {
            order: Some(convert::sales_order(&self.tenant, order, message)),
        };
        self.base
            .publisher
            .publish(&Outgoing {
                subject: self
                    .base
                    .topology
                    .ready_subject(&self.tenant.id, order.order_number),
                msg_id: format!(
                    "{}:{}:{}:ready",
                    self.tenant.id, order.order_number, message.content_hash
                ),
                payload: Bytes::from(ready.encode_to_vec()),
            })
            .await?;
        Ok(())
    }

    /// A changed order that is already in the ERP: the difference and the whole newer
    /// order as `order.amended`, which the erp-writer applies (ADR 0035).
    async fn amendment(
        &self,
        order: &SalesOrder,
        state: LedgerState,
        message: &centra_pb::OrderSnapshot,
    ) -> Result<(), HandlerError> {
        let row = self
            .store
            .ledger_row(&self.tenant.id, order.order_number)
            .await
            .map_err(store_error)?;
        let (erp_reference, posted_hash, totals) = row
            .map(|r| {
                (
                    r.erp_reference.unwrap_or_default(),
                    r.snapshot_hash,
                    (r.gross_minor, r.tax_minor),
                )
            })
            .unwrap_or_default();
        let earlier = amend::earlier_snapshot(
            &self.base,
            &self.tenant.id,
            order.order_number,
            &posted_hash,
        )
        .await;
        let items = self
            .items
            .get(&self.store, &self.tenant.id, false)
            .await
            .map_err(store_error)?;
        let posted_order = amend::posted_order(
            &self.base.js,
            &self.base.topology,
            &self.tenant.id,
            order.order_number,
        )
        .await;
        let posted = amend::Posted {
            erp_reference: &erp_reference,
            order: posted_order.as_ref(),
            snapshot: earlier.as_deref(),
            gross_minor: totals.0,
            tax_minor: totals.1,
        };
        let amended = order_pb::OrderAmended {
            order: Some(convert::sales_order(&self.tenant, order, message)),
            ..amend::amendment(
                &self.tenant.id,
                &posted,
                &self.tenant.rules,
                items.as_ref(),
                order,
                &message.content_hash,
            )
        };
        self.base
            .publisher
            .publish(&Outgoing {
                subject: self
                    .base
                    .topology
                    .amended_subject(&self.tenant.id, order.order_number),
                msg_id: format!(
                    "{}:{}:{}:amended",
                    self.tenant.id, order.order_number, message.content_hash
                ),
                payload: Bytes::from(amended.encode_to_vec()),
            })
            .await?;

        // The erp-writer applies it, or tells finance why it could not (ADR 0035).
        tracing::info!(
            tenant = %self.tenant.id,
            order = order.order_number,
            state = ?state,
            "order changed after it reached the ERP: amendment published"
        );
        Ok(())
    }
}
