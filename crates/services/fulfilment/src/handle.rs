//! One recorded shipment, from the ERP's word to Centra's: claim it in the fulfilment
//! ledger, check it belongs to an order Ferry posted and has a tracking number, map its
//! items to Centra's lines, and send it (or finish the one an earlier attempt left).

use std::collections::BTreeMap;
use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::stream::LastRawMessageErrorKind;
use async_trait::async_trait;
use ferry_centra::{CentraClient, CentraError, NewShipment};
use ferry_config::TenantConfig;
use ferry_domain::{ExceptionKind, NewException};
use ferry_erp::{ErpError, ErpShipment};
use ferry_proto::erp::v1 as erp_pb;
use ferry_proto::order::v1 as pb;
use ferry_runtime::{Delivery, ExceptionSink, Handler, HandlerError, ServiceBase};
use ferry_store::Store;
use ferry_store::fulfilment::{MutationBudget, Priority, ShipmentSeen, ShipmentState};
use prost::Message;

use crate::SERVICE;
use crate::locks::OrderLocks;
use crate::map::{self, MapError, PostedLine};

/// Why a shipment could not be handled now; the message is delivered again.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PassError {
    #[error("the ERP: {0}")]
    Erp(#[from] ErpError),
    #[error("Centra: {0}")]
    Centra(#[from] CentraError),
    #[error("the database: {0}")]
    Store(#[from] ferry_store::StoreError),
    #[error("order {order} is not posted yet ({state}); waiting for it")]
    NotPostedYet { order: i64, state: String },
    #[error("{0}")]
    Other(String),
}

impl From<PassError> for HandlerError {
    fn from(e: PassError) -> Self {
        let retry_after = match &e {
            PassError::Erp(e) => e.retry_after(),
            PassError::Centra(e) => e.retry_after(),
            _ => None,
        };
        HandlerError::Transient {
            reason: e.to_string(),
            retry_after,
        }
    }
}

/// What became of one ERP shipment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Sent,
    AlreadyHandled,
    Merged,
    WaitingTracking,
    Failed,
}

/// A step either hands its result to the next or ends the shipment's handling.
type Step<T> = Result<ControlFlow<Outcome, T>, PassError>;

/// The next step's input, or the outcome to return.
macro_rules! proceed {
    ($step:expr) => {
        match $step? {
            ControlFlow::Continue(value) => value,
            ControlFlow::Break(outcome) => return Ok(outcome),
        }
    };
}

pub(crate) struct Feedback {
    pub(crate) tenant: TenantConfig,
    pub(crate) centra: CentraClient,
    pub(crate) store: Store,
    pub(crate) base: ServiceBase,
    pub(crate) sink: Arc<dyn ExceptionSink>,
    orders: OrderLocks,
}

#[async_trait]
impl Handler for Feedback {
    async fn handle(&self, delivery: &Delivery) -> Result<(), HandlerError> {
        let recorded = erp_pb::ShipmentRecorded::decode(delivery.payload.as_ref())
            .map_err(|e| delivery.poison("shipment", &e))?;
        let shipment = ferry_erp_sources::shipment_of(recorded);
        let _turn = self.orders.lock(order_number(&shipment)).await;
        let outcome = match self.handle_shipment(&shipment).await {
            Err(e @ PassError::NotPostedYet { .. }) => {
                // Spread over the grace, so the grace (not the delivery count) decides.
                let deliveries = (self.base.config.consumer.max_deliver - 2).max(1) as u32;
                let every = (self.tenant.fulfilment.unposted_grace / deliveries)
                    .clamp(Duration::from_secs(1), Duration::from_secs(60));
                return Err(HandlerError::Transient {
                    reason: e.to_string(),
                    retry_after: Some(every),
                });
            }
            other => other?,
        };
        metrics::counter!(
            "ferry_shipments_total",
            "tenant" => self.tenant.id.clone(),
            "outcome" => format!("{outcome:?}")
        )
        .increment(1);
        Ok(())
    }
}

/// The Centra order number a shipment names (0 when it names none Ferry can read).
fn order_number(s: &ErpShipment) -> i64 {
    s.external_ref.trim().parse::<i64>().unwrap_or(0)
}

impl Feedback {
    pub(crate) fn new(
        tenant: TenantConfig,
        centra: CentraClient,
        store: Store,
        base: &ServiceBase,
        sink: Arc<dyn ExceptionSink>,
    ) -> Self {
        Feedback {
            tenant,
            centra,
            store,
            base: base.clone(),
            sink,
            orders: OrderLocks::default(),
        }
    }

    pub(crate) async fn handle_shipment(&self, s: &ErpShipment) -> Result<Outcome, PassError> {
        let number = order_number(s);
        let mut items: BTreeMap<String, i64> = BTreeMap::new();
        for line in &s.lines {
            *items.entry(line.erp_item.clone()).or_insert(0) += line.quantity;
        }
        let previous = proceed!(self.claim(s, number, &items).await);
        let order_id = proceed!(self.posted_order(s, number).await);
        let tracking = proceed!(self.tracking(s).await);
        let lines = proceed!(self.centra_lines(s, number, &items).await);
        let policy = &self.tenant.fulfilment;
        let shipped_at = crate::time::centra_time(&s.shipped_at, chrono::Utc::now());
        let new = NewShipment {
            order_number: number,
            lines: &lines,
            shipped_at: &shipped_at,
            carrier: s.carrier.as_deref(),
            service: None,
            tracking_number: Some(tracking),
            send_email: policy.send_email,
            capture: policy.capture,
        };
        // A crash, a lost answer or a Centra that failed halfway may have left the shipment
        // there, perhaps not yet sent or captured: look first and finish what is missing.
        if previous == Some(ShipmentState::Sending)
            && let Some(existing) = self.existing_shipment(&order_id, &new).await?
        {
            return self.finish_existing(s, existing, &new).await;
        }
        self.send(s, &order_id, &new).await
    }

    /// Claims the shipment in the ledger; the state it was in before (`None`: new).
    async fn claim(
        &self,
        s: &ErpShipment,
        number: i64,
        items: &BTreeMap<String, i64>,
    ) -> Step<Option<ShipmentState>> {
        let tenant = self.tenant.id.as_str();
        if let Some(row) = self.store.shipment(tenant, &s.id).await?
            && row.state.is_settled()
        {
            return Ok(ControlFlow::Break(Outcome::AlreadyHandled));
        }
        let trace = ferry_runtime::telemetry::current_trace_id();
        let seen = ShipmentSeen {
            tenant,
            erp_shipment_id: &s.id,
            order_number: number,
            items,
            carrier: s.carrier.as_deref(),
            tracking_number: s.tracking_number.as_deref(),
            erp_shipped_at: &s.shipped_at,
            trace_id: Some(trace.as_str()).filter(|t| !t.is_empty()),
        };
        let previous = self.store.begin_shipment(&seen).await?;
        if previous.is_some_and(|p| p.is_settled()) {
            return Ok(ControlFlow::Break(Outcome::AlreadyHandled));
        }
        Ok(ControlFlow::Continue(previous))
    }

    /// The order's Centra id (the hash id Centra finds shipments by), if Ferry posted it.
    async fn posted_order(&self, s: &ErpShipment, number: i64) -> Step<String> {
        let ledger = self.store.ledger_row(&self.tenant.id, number).await?;
        match ledger {
            Some(row) if row.state == "posted" => Ok(ControlFlow::Continue(row.centra_order_id)),
            ledger => {
                // An order Ferry knows but has not recorded as posted may be in the ERP
                // already (and shipped by the warehouse): the ERP has the document a moment
                // before the ledger says posted — longer when the writer stopped between
                // the two. The shipment waits for it on the runner's backoff, for a while.
                if let Some(row) = ledger {
                    let waited = self
                        .store
                        .shipment(&self.tenant.id, &s.id)
                        .await?
                        .and_then(|r| (chrono::Utc::now() - r.first_seen_at).to_std().ok())
                        .unwrap_or_default();
                    if waited < self.tenant.fulfilment.unposted_grace {
                        return Err(PassError::NotPostedYet {
                            order: number,
                            state: row.state,
                        });
                    }
                }
                let message = format!(
                    "The warehouse shipped {} for order {}, but Ferry never sent that order to \
                     the ERP, so Centra has not been told and the customer has no shipping \
                     e-mail. Check the order number on the shipment in the ERP.",
                    s.id, s.external_ref
                );
                let reason = format!(
                    "shipment {} names order {:?}, not posted by Ferry",
                    s.id, s.external_ref
                );
                let outcome = self
                    .fail(
                        s,
                        number,
                        ExceptionKind::ShipmentForUnknownOrder,
                        message,
                        reason,
                    )
                    .await?;
                Ok(ControlFlow::Break(outcome))
            }
        }
    }

    /// The tracking number; without one the shipment waits (the ERP sends it again once it
    /// has one).
    async fn tracking<'s>(&self, s: &'s ErpShipment) -> Step<&'s str> {
        match s.tracking_number.as_deref().filter(|t| !t.is_empty()) {
            Some(tracking) => Ok(ControlFlow::Continue(tracking)),
            None => {
                self.store
                    .settle_shipment(
                        &self.tenant.id,
                        &s.id,
                        ShipmentState::WaitingTracking,
                        None,
                        false,
                        false,
                    )
                    .await?;
                Ok(ControlFlow::Break(Outcome::WaitingTracking))
            }
        }
    }

    /// The Centra lines and quantities this shipment completes.
    async fn centra_lines(
        &self,
        s: &ErpShipment,
        number: i64,
        items: &BTreeMap<String, i64>,
    ) -> Step<Vec<(i64, i64)>> {
        let Some(posted) = self.posted_lines(number).await? else {
            let outcome = self
                .fail(
                    s,
                    number,
                    ExceptionKind::ShipmentQuantityMismatch,
                    format!(
                        "Ferry no longer holds the sales order it posted for order {number} \
                         (older than the stream keeps), so it cannot tell which Centra lines \
                         shipment {} holds. Create the shipment in Centra by hand.",
                        s.id
                    ),
                    format!("no ready message for order {number} on the ORDERS stream"),
                )
                .await?;
            return Ok(ControlFlow::Break(outcome));
        };
        let earlier = self
            .store
            .shipped_items(&self.tenant.id, number, &s.id)
            .await?;
        match map::centra_lines(&posted, &earlier, items) {
            Ok(lines) if lines.is_empty() => {
                // Half a bundle: Centra hears about it when the rest ships.
                self.store
                    .settle_shipment(
                        &self.tenant.id,
                        &s.id,
                        ShipmentState::Merged,
                        None,
                        false,
                        false,
                    )
                    .await?;
                Ok(ControlFlow::Break(Outcome::Merged))
            }
            Ok(lines) => Ok(ControlFlow::Continue(lines)),
            Err(e) => {
                let what = match &e {
                    MapError::UnknownItem(item) => {
                        format!("item {item}, which is not on the order")
                    }
                    MapError::MoreThanOrdered {
                        item,
                        shipped,
                        ordered,
                    } => format!(
                        "{shipped} of item {item} in total, but the customer ordered {ordered}"
                    ),
                };
                let outcome = self
                    .fail(
                        s,
                        number,
                        ExceptionKind::ShipmentQuantityMismatch,
                        format!(
                            "The warehouse shipped {what} for order {number} (shipment {}). \
                             Centra was not told. Check the shipment in the ERP; correct it or \
                             tell Centra by hand.",
                            s.id
                        ),
                        e.to_string(),
                    )
                    .await?;
                Ok(ControlFlow::Break(outcome))
            }
        }
    }

    /// The lines Ferry posted for the order, from its ready message on the ORDERS stream;
    /// `None` when the stream no longer has it (a permanent condition, not a retry).
    async fn posted_lines(&self, number: i64) -> Result<Option<Vec<PostedLine>>, PassError> {
        let topology = &self.base.topology;
        let stream = self
            .base
            .js
            .get_stream(topology.stream_name(ferry_runtime::StreamKind::Orders))
            .await
            .map_err(|e| PassError::Other(e.to_string()))?;
        let message = match stream
            .get_last_raw_message_by_subject(&topology.ready_subject(&self.tenant.id, number))
            .await
        {
            Ok(m) => m,
            Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => return Ok(None),
            Err(e) => {
                return Err(PassError::Other(format!(
                    "order {number}'s sales order: {e}"
                )));
            }
        };
        let ready = pb::OrderReady::decode(message.payload.as_ref())
            .map_err(|e| PassError::Other(format!("order {number}'s sales order: {e}")))?;
        Ok(Some(
            ready
                .order
                .map(|o| o.lines)
                .unwrap_or_default()
                .into_iter()
                .filter(|l| l.kind == pb::LineKind::Item as i32)
                .filter_map(|l| {
                    Some(PostedLine {
                        centra_line_id: l.centra_line_id?,
                        erp_item: l.erp_item,
                        quantity: l.quantity,
                        bundle: l
                            .bundle_line_id
                            .map(|b| (b, l.bundle_quantity.unwrap_or(1))),
                    })
                })
                .collect(),
        ))
    }

    /// Records the exception, then the shipment as failed.
    pub(crate) async fn fail(
        &self,
        s: &ErpShipment,
        number: i64,
        kind: ExceptionKind,
        message: String,
        reason: String,
    ) -> Result<Outcome, PassError> {
        self.record(s, number, kind, message, reason).await?;
        self.store
            .settle_shipment(
                &self.tenant.id,
                &s.id,
                ShipmentState::Failed,
                None,
                false,
                false,
            )
            .await?;
        Ok(Outcome::Failed)
    }

    pub(crate) async fn record(
        &self,
        s: &ErpShipment,
        number: i64,
        kind: ExceptionKind,
        message: String,
        reason: String,
    ) -> Result<(), PassError> {
        let exception = NewException {
            tenant: self.tenant.id.clone(),
            kind,
            key: format!("shipment:{}", s.id),
            message,
            reason,
            order_number: (number != 0).then_some(number),
            amount_minor: None,
            currency: None,
            service: SERVICE.to_owned(),
            source_subject: Some(self.base.topology.shipment_subject(&self.tenant.id, &s.id)),
            payload: serde_json::to_vec(s).unwrap_or_default(),
        };
        self.sink
            .record(&exception)
            .await
            .map_err(|e| PassError::Other(e.to_string()))
    }

    /// Waits until the tenant's shared Centra budget grants one mutation at shipment
    /// priority (shipments go first: inventory may not dip into their reserve).
    pub(crate) async fn spend_budget(&self) -> Result<(), PassError> {
        loop {
            let wait = self
                .store
                .reserve_mutations(
                    &self.tenant.id,
                    &MutationBudget::for_tenant(&self.tenant),
                    Priority::Shipments,
                    1,
                )
                .await?;
            let Some(wait) = wait else { return Ok(()) };
            tokio::select! {
                _ = self.base.shutdown.cancelled() => {
                    return Err(PassError::Other("shutting down".into()));
                }
                _ = tokio::time::sleep(wait.min(Duration::from_secs(10))) => {}
            }
        }
    }
}
