//! The erp-writer service: posts every ready sales order to the tenant's ERP exactly once,
//! and proves it in the ledger.
//!
//! Exactly once, step by step: the ledger claims the order (`posting`); if an earlier
//! attempt may have reached the ERP (`posting` abandoned, or `possibly_created` after a
//! timeout), the ERP is asked first; only then is the order created, with the Centra order
//! number as idempotency key; the ERP's reference is committed (`posted`) before the message
//! is acknowledged, and `order.posted` is published with the ERP's totals. A document the
//! ERP holds half-done (a quotation never confirmed) is finished, never counted as posted;
//! one found cancelled is an exception for finance.
//!
//! Where the ERP has a batch call, creates of concurrent messages share requests (group
//! commit, as the ledger writes do); each order still gets its own verdict, ledger row and
//! acknowledgement.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use ferry_config::TenantConfig;
use ferry_domain::{ExceptionKind, NewException};
use ferry_erp::{Connectors, DocumentState, ErpDocument, ErpError, PostOrders};
use ferry_platform::Platform;
use ferry_proto::order::v1 as pb;
use ferry_runtime::coalesce::Coalescer;
use ferry_runtime::consumer::{Delivery, Handler, HandlerError, Runner};
use ferry_runtime::{ExceptionSink, Outgoing, ServiceBase, StreamKind};
use ferry_store::{BeginPosting, LedgerState, PostedRecord, PostingClaim, Store};
use prost::Message as _;
use tokio::sync::Semaphore;

mod batches;
pub mod breaker;
pub mod changes;
pub mod convert;
pub mod customers;
pub mod returns;

pub const SERVICE: &str = "erp-writer";

#[derive(Debug, thiserror::Error)]
pub enum WriterError {
    #[error(transparent)]
    Runner(#[from] ferry_runtime::consumer::RunnerError),
    #[error(transparent)]
    Nats(#[from] ferry_runtime::nats::NatsError),
    #[error("a consumer task failed: {0}")]
    Join(String),
    #[error("tenant {tenant}: its ERP connector ({kind}) cannot post sales orders")]
    CannotPost { tenant: String, kind: String },
    #[error("tenant {0} has no ERP connector")]
    NoConnector(String),
}

/// Runs one consumer per tenant until the base's shutdown token is cancelled.
pub async fn run(platform: Platform, connectors: Connectors) -> Result<(), WriterError> {
    let Platform {
        base,
        config,
        store,
        sink,
        feeds,
    } = platform;
    let lease = config.erp_writer.request_timeout * 3;
    let mut tasks = tokio::task::JoinSet::new();
    for tenant in &config.tenants {
        let connector = connectors
            .get(&tenant.id)
            .ok_or_else(|| WriterError::NoConnector(tenant.id.clone()))?;
        let erp = connector
            .orders
            .clone()
            .ok_or_else(|| WriterError::CannotPost {
                tenant: tenant.id.clone(),
                kind: connector.kind.to_owned(),
            })?;
        let breaker = breaker::Breaker::new(
            &tenant.id,
            breaker::BreakerConfig::default(),
            connector.erp.clone(),
            Some(store.clone()),
        );
        feeds.spawn(
            breaker.probe_spec(SERVICE),
            breaker.clone(),
            base.shutdown.clone(),
        );
        let in_flight = Arc::new(Semaphore::new(config.erp_writer.max_in_flight_per_tenant));
        let handler = Arc::new(WriterHandler {
            tenant: tenant.clone(),
            creates: batches::creates(&config.erp_writer, &erp, &in_flight, &breaker),
            erp,
            breaker: breaker.clone(),
            ledger: Ledger::spawn(store.clone(), lease),
            store: store.clone(),
            base: base.clone(),
            sink: sink.clone(),
            in_flight: in_flight.clone(),
            lease,
            posted_total: metrics::counter!("ferry_orders_posted_total", "tenant" => tenant.id.clone()),
        });
        let mut consumer = base.config.consumer.clone();
        // Waiting on the in-flight bound must not look like a stuck message.
        consumer.concurrency = consumer
            .concurrency
            .max(config.erp_writer.max_in_flight_per_tenant);
        let runner = Runner::builder(
            &base,
            sink.clone(),
            SERVICE,
            &tenant.id,
            StreamKind::Orders,
            base.topology.ready_filter(&tenant.id),
        )
        .config(consumer)
        // The ERP post must not repeat because an ack was lost.
        .double_ack()
        .gate(breaker)
        .build();
        tasks.spawn(runner.run(handler, base.shutdown.clone()));
        let changes = Arc::new(changes::ChangeHandler {
            tenant: tenant.clone(),
            batches: connector
                .changes
                .as_ref()
                .and_then(|erp| batches::changes(&config.erp_writer, erp, &in_flight)),
            erp: connector.changes.clone(),
            store: store.clone(),
            sink: sink.clone(),
            in_flight: in_flight.clone(),
        });
        tasks.spawn(
            changes::runner(&base, sink.clone(), &tenant.id).run(changes, base.shutdown.clone()),
        );
        let returns = Arc::new(returns::ReturnHandler {
            tenant: tenant.clone(),
            batches: connector
                .credits
                .as_ref()
                .and_then(|erp| batches::credits(&config.erp_writer, erp, &in_flight)),
            erp: connector.credits.clone(),
            in_flight: in_flight.clone(),
            store: store.clone(),
            sink: sink.clone(),
            topology: base.topology.clone(),
        });
        tasks.spawn(
            returns::runner(&base, sink.clone(), &tenant.id).run(returns, base.shutdown.clone()),
        );
        let customers = Arc::new(customers::CustomerHandler {
            tenant: tenant.clone(),
            erp: connector.customers.clone(),
            sink: sink.clone(),
            in_flight: in_flight.clone(),
        });
        tasks.spawn(
            customers::runner(&base, sink.clone(), &tenant.id)
                .run(customers, base.shutdown.clone()),
        );
    }
    while let Some(done) = tasks.join_next().await {
        done.map_err(|e| WriterError::Join(e.to_string()))??;
    }
    Ok(())
}

/// The ledger writes of the hot path, many per statement (group commit), per tenant.
#[derive(Clone)]
struct Ledger {
    claims: Coalescer<PostingClaim, Result<BeginPosting, String>>,
    posted: Coalescer<PostedRecord, Result<bool, String>>,
}

impl Ledger {
    fn spawn(store: Store, lease: Duration) -> Self {
        let claim_store = store.clone();
        let claims = Coalescer::spawn(256, 1, move |claims: Vec<PostingClaim>| {
            let store = claim_store.clone();
            async move { every(claims.len(), store.begin_postings(&claims, lease).await) }
        });
        let posted = Coalescer::spawn(256, 1, move |records: Vec<PostedRecord>| {
            let store = store.clone();
            async move { every(records.len(), store.mark_posted_many(&records).await) }
        });
        Self { claims, posted }
    }
}

/// One result per item: the batch's results, or its error for each.
fn every<T>(n: usize, result: Result<Vec<T>, ferry_store::StoreError>) -> Vec<Result<T, String>> {
    match result {
        Ok(values) => values.into_iter().map(Ok).collect(),
        Err(e) => {
            let reason = e.to_string();
            (0..n).map(|_| Err(reason.clone())).collect()
        }
    }
}

struct WriterHandler {
    tenant: TenantConfig,
    erp: Arc<dyn PostOrders>,
    /// Batched creates; `None` posts each order with its own request.
    creates: Option<batches::Creates>,
    /// Pauses this tenant's consumer while its ERP is away.
    breaker: Arc<breaker::Breaker>,
    ledger: Ledger,
    store: Store,
    base: ServiceBase,
    sink: Arc<dyn ExceptionSink>,
    /// Requests in flight to this tenant's ERP.
    in_flight: Arc<Semaphore>,
    /// How long a claim on an order is honoured before another attempt may take over.
    lease: Duration,
    /// `ferry_orders_posted_total` for this tenant.
    posted_total: metrics::Counter,
}

fn transient(e: impl std::fmt::Display) -> HandlerError {
    HandlerError::transient(e)
}

#[async_trait]
impl Handler for WriterHandler {
    async fn handle(&self, delivery: &Delivery) -> Result<(), HandlerError> {
        let ready = pb::OrderReady::decode(delivery.payload.as_ref())
            .map_err(|e| delivery.poison("ready order", &e))?;
        let Some(order) = ready.order else {
            return Err(delivery.poison("ready order", &"no order in the message"));
        };
        let number = order.order_number;
        let claim = self
            .ledger
            .claims
            .call(PostingClaim {
                tenant: self.tenant.id.clone(),
                order_number: number,
                snapshot_hash: order.snapshot_hash.clone(),
            })
            .await
            .ok_or_else(|| transient("the ledger writer stopped"))?
            .map_err(transient)?;
        let previous = match claim {
            BeginPosting::Proceed { previous, .. } => previous,
            BeginPosting::AlreadyPosted { erp_reference } => {
                // Posted before; make sure the announcement went out (it is deduplicated).
                let row = self
                    .store
                    .ledger_row(&self.tenant.id, number)
                    .await
                    .map_err(transient)?;
                let document = ErpDocument {
                    reference: erp_reference,
                    external_ref: number.to_string(),
                    currency: order.currency.clone(),
                    gross_minor: row
                        .as_ref()
                        .and_then(|r| r.erp_gross_minor)
                        .unwrap_or_default(),
                    tax_minor: row
                        .as_ref()
                        .and_then(|r| r.erp_tax_minor)
                        .unwrap_or_default(),
                    line_count: order.lines.len(),
                    rounding_minor: row
                        .as_ref()
                        .and_then(|r| r.erp_rounding_minor)
                        .unwrap_or_default(),
                    state: DocumentState::Complete,
                    erp_state: String::new(),
                };
                return self.announce(&order, &document, true).await;
            }
            BeginPosting::Busy => {
                return Err(HandlerError::Transient {
                    reason: format!("order {number} is being posted by another attempt"),
                    retry_after: Some(self.lease / 2),
                });
            }
            BeginPosting::Superseded(state) => {
                tracing::debug!(order = number, %state, "ready message superseded; nothing to post");
                return Ok(());
            }
            BeginPosting::Missing => {
                return Err(transient(format!(
                    "order {number} is not in the ledger yet"
                )));
            }
        };
        let external_ref = number.to_string();
        if matches!(
            previous,
            LedgerState::Posting | LedgerState::PossiblyCreated
        ) {
            // An earlier attempt may have created it: settle that before creating anything.
            let found = {
                let _slot = self.in_flight.acquire().await.map_err(transient)?;
                self.erp.find_sales_order(&external_ref).await
            };
            self.breaker.observe([&found]);
            match found {
                Ok(Some(document)) if document.state == DocumentState::Unfinished => {
                    // Half-done (a quotation never confirmed): the create below finishes it.
                    tracing::info!(
                        order = number,
                        erp_reference = %document.reference,
                        erp_state = %document.erp_state,
                        "finishing an ERP document an earlier attempt left unfinished"
                    );
                }
                Ok(Some(document)) => {
                    return self.settle(&order, document, true, delivery).await;
                }
                Ok(None) => {}
                Err(e) => return self.erp_failure(number, e, delivery, &order).await,
            }
        }
        let post = convert::post_order(&self.tenant, &order);
        // The in-flight bound covers the ERP call only, not our own bookkeeping after it.
        // A batch tells the breaker itself; a post alone tells it here.
        let created = batches::send(
            self.creates.as_ref(),
            &self.in_flight,
            post,
            |post| async move {
                let created = self.erp.create_sales_order(&post).await;
                self.breaker.observe([&created]);
                created
            },
        )
        .await?;
        match created {
            Ok(document) => self.settle(&order, document, false, delivery).await,
            Err(e) => self.erp_failure(number, e, delivery, &order).await,
        }
    }
}

impl WriterHandler {
    /// Records what the ERP holds: posted only when the document is complete. An unfinished
    /// one is retried (the next attempt looks it up and finishes it), a cancelled one is
    /// finance's to decide.
    async fn settle(
        &self,
        order: &pb::SalesOrder,
        document: ErpDocument,
        found_existing: bool,
        delivery: &Delivery,
    ) -> Result<(), HandlerError> {
        let number = order.order_number;
        match document.state {
            DocumentState::Complete => self.posted(order, document, found_existing, delivery).await,
            DocumentState::Unfinished => {
                self.store
                    .mark_possibly_created(&self.tenant.id, number)
                    .await
                    .map_err(transient)?;
                Err(transient(format!(
                    "ERP document {} of order {number} is still {}; the next attempt finishes it",
                    document.reference,
                    if document.erp_state.is_empty() {
                        "unfinished"
                    } else {
                        &document.erp_state
                    }
                )))
            }
            DocumentState::Cancelled => self.cancelled_in_erp(order, &document, delivery).await,
        }
    }

    async fn cancelled_in_erp(
        &self,
        order: &pb::SalesOrder,
        document: &ErpDocument,
        delivery: &Delivery,
    ) -> Result<(), HandlerError> {
        let number = order.order_number;
        self.store
            .mark_rejected(&self.tenant.id, number)
            .await
            .map_err(transient)?;
        let totals = order.totals.unwrap_or_default();
        Err(HandlerError::Permanent(Box::new(NewException {
            tenant: self.tenant.id.clone(),
            kind: ExceptionKind::ErpDocumentCancelled,
            key: format!("order:{number}:erp"),
            message: format!(
                "Order {number} reached the ERP as sales order {}, but that sales order is \
                 cancelled there, so the order is not in the books. If the cancellation was a \
                 mistake, set the sales order back to draft in the ERP and replay the order; if \
                 the order really is cancelled, cancel it in Centra too.",
                document.reference
            ),
            reason: format!(
                "ERP document {} for order {number} is cancelled ({})",
                document.reference, document.erp_state
            ),
            order_number: Some(number),
            amount_minor: Some(totals.gross_minor),
            currency: Some(order.currency.clone()),
            service: SERVICE.to_owned(),
            source_subject: Some(delivery.subject.clone()),
            payload: delivery.payload.to_vec(),
        })))
    }

    async fn posted(
        &self,
        order: &pb::SalesOrder,
        document: ErpDocument,
        found_existing: bool,
        delivery: &Delivery,
    ) -> Result<(), HandlerError> {
        let number = order.order_number;
        self.ledger
            .posted
            .call(PostedRecord {
                tenant: self.tenant.id.clone(),
                order_number: number,
                erp_reference: document.reference.clone(),
                erp_gross_minor: Some(document.gross_minor),
                erp_tax_minor: Some(document.tax_minor),
                erp_rounding_minor: Some(document.rounding_minor),
            })
            .await
            .ok_or_else(|| transient("the ledger writer stopped"))?
            .map_err(transient)?;
        let totals = order.totals.unwrap_or_default();
        // A tax difference the connector balanced with an explicit rounding line is the
        // posting policy at work (recorded in the ledger above), not a drift.
        let explained = document.gross_minor == totals.gross_minor && document.rounding_minor != 0;
        if document.gross_minor != totals.gross_minor
            || (document.tax_minor != totals.tax_minor && !explained)
        {
            let currency = ferry_domain::Currency::from_code(&order.currency);
            let show = |m: i64| {
                currency
                    .map(|c| c.format(m))
                    .unwrap_or_else(|| format!("{m} {}", order.currency))
            };
            let exception = NewException {
                tenant: self.tenant.id.clone(),
                kind: ExceptionKind::ErpTotalsMismatch,
                key: format!("order:{number}:totals"),
                message: format!(
                    "Order {number} is in the ERP as {} with {} tax, but the customer paid {} with {} \
                     tax. Correct sales order {} in the ERP so the books match what was charged.",
                    show(document.gross_minor),
                    show(document.tax_minor),
                    show(totals.gross_minor),
                    show(totals.tax_minor),
                    document.reference
                ),
                reason: format!(
                    "ERP gross {} tax {} vs order gross {} tax {}",
                    document.gross_minor, document.tax_minor, totals.gross_minor, totals.tax_minor
                ),
                order_number: Some(number),
                amount_minor: Some(totals.gross_minor - document.gross_minor),
                currency: Some(order.currency.clone()),
                service: SERVICE.to_owned(),
                source_subject: Some(delivery.subject.clone()),
                payload: delivery.payload.to_vec(),
            };
            self.sink.record(&exception).await.map_err(transient)?;
        }
        self.announce(order, &document, found_existing).await
    }

    async fn announce(
        &self,
        order: &pb::SalesOrder,
        document: &ErpDocument,
        found_existing: bool,
    ) -> Result<(), HandlerError> {
        let posted = pb::OrderPosted {
            tenant: self.tenant.id.clone(),
            order_number: order.order_number,
            erp_reference: document.reference.clone(),
            currency: order.currency.clone(),
            erp_totals: Some(pb::Totals {
                gross_minor: document.gross_minor,
                tax_minor: document.tax_minor,
                net_minor: document.gross_minor - document.tax_minor,
            }),
            posted_at: Some(ferry_proto::timestamp(std::time::SystemTime::now())),
            first_accepted_at: order.first_accepted_at,
            found_existing,
        };
        self.base
            .publisher
            .publish(&Outgoing {
                subject: self
                    .base
                    .topology
                    .posted_subject(&self.tenant.id, order.order_number),
                msg_id: format!("{}:{}:posted", self.tenant.id, order.order_number),
                payload: Bytes::from(posted.encode_to_vec()),
            })
            .await?;
        self.posted_total.increment(1);
        Ok(())
    }

    async fn erp_failure(
        &self,
        number: i64,
        error: ErpError,
        delivery: &Delivery,
        order: &pb::SalesOrder,
    ) -> Result<(), HandlerError> {
        let tenant = &self.tenant.id;
        if error.possibly_applied() {
            self.store
                .mark_possibly_created(tenant, number)
                .await
                .map_err(transient)?;
            return Err(transient(error));
        }
        if error.is_transient() {
            self.store
                .release_posting(tenant, number)
                .await
                .map_err(transient)?;
            return Err(HandlerError::Transient {
                reason: error.to_string(),
                retry_after: error.retry_after(),
            });
        }
        if let ErpError::Misconfigured(_) = error {
            // Credentials or set-up: nothing is wrong with the order; keep it until fixed.
            self.store
                .release_posting(tenant, number)
                .await
                .map_err(transient)?;
            tracing::error!(order = number, error = %error, "ERP connector misconfigured");
            return Err(HandlerError::Transient {
                reason: error.to_string(),
                retry_after: Some(Duration::from_secs(30)),
            });
        }
        self.store
            .mark_rejected(tenant, number)
            .await
            .map_err(transient)?;
        let totals = order.totals.unwrap_or_default();
        Err(HandlerError::Permanent(Box::new(NewException {
            tenant: tenant.clone(),
            kind: ExceptionKind::ErpRejected,
            key: format!("order:{number}:erp"),
            message: format!(
                "The ERP refused sales order {number}, so it is not booked. The ERP said: {error}. \
                 Fix the cause in the ERP or the mapping, then replay the order."
            ),
            reason: error.to_string(),
            order_number: Some(number),
            amount_minor: Some(totals.gross_minor),
            currency: Some(order.currency.clone()),
            service: SERVICE.to_owned(),
            source_subject: Some(delivery.subject.clone()),
            payload: delivery.payload.to_vec(),
        })))
    }
}
