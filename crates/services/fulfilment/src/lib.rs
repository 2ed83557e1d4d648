//! The fulfilment-feedback service: reads the ERP's shipment feed from a durable cursor,
//! maps each shipment back to Centra's order lines (bundles, partial and repeated
//! shipments) and creates it in Centra already shipped — carrier, tracking number, the
//! customer's e-mail and, per policy, the capture — exactly once, within the tenant's share
//! of Centra's mutation budget.

pub mod map;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::stream::LastRawMessageErrorKind;
use ferry_centra::{CentraClient, CentraError, CentraShipment, NewShipment};
use ferry_domain::{ExceptionKind, NewException};
use ferry_erp::{ErpConnector, ErpError, ErpShipment};
use ferry_proto::order::v1 as pb;
use ferry_runtime::ExceptionSink;
use ferry_runtime::ServiceBase;
use ferry_runtime::config::TenantConfig;
use ferry_store::Store;
use ferry_store::fulfilment::{MutationBudget, Priority, ShipmentSeen};
use prost::Message;

use crate::map::{MapError, PostedLine};

pub const SERVICE: &str = "fulfilment-feedback";
/// The feed cursor's name in `feed_cursor`.
pub const FEED: &str = "erp-shipments";

/// Builds the connector a tenant's configuration names (the erp-writer's factory fits).
pub type ConnectorFactory = Arc<dyn Fn(&TenantConfig) -> Arc<dyn ErpConnector> + Send + Sync>;

#[derive(Debug, thiserror::Error)]
pub enum FulfilmentError {
    #[error("a tenant loop failed: {0}")]
    Join(String),
}

/// Why one pass over the feed stopped early; the cursor stays where it was.
#[derive(Debug, thiserror::Error)]
enum PassError {
    #[error("the ERP: {0}")]
    Erp(#[from] ErpError),
    #[error("Centra: {0}")]
    Centra(#[from] CentraError),
    #[error("the database: {0}")]
    Store(#[from] ferry_store::StoreError),
    #[error("{0}")]
    Other(String),
}

impl PassError {
    fn retry_after(&self) -> Option<Duration> {
        match self {
            PassError::Erp(e) => e.retry_after(),
            PassError::Centra(e) => e.retry_after(),
            _ => None,
        }
    }
}

/// Runs one feed loop per tenant until the base's shutdown token is cancelled.
pub async fn run(
    base: ServiceBase,
    store: Store,
    connectors: ConnectorFactory,
) -> Result<(), FulfilmentError> {
    let sink = ferry_store::exception_sink(&store, &base);
    let mut tasks = tokio::task::JoinSet::new();
    for tenant in &base.config.tenants {
        let feedback = Feedback {
            centra: CentraClient::paced(
                tenant.centra.url.clone(),
                tenant.centra.token.clone(),
                tenant
                    .centra
                    .pacing_for(ferry_runtime::config::CentraCaller::FulfilmentFeedback),
                tenant.centra.timeout,
            ),
            erp: connectors(tenant),
            tenant: tenant.clone(),
            store: store.clone(),
            base: base.clone(),
            sink: sink.clone(),
        };
        tasks.spawn(feedback.run());
    }
    while let Some(done) = tasks.join_next().await {
        done.map_err(|e| FulfilmentError::Join(e.to_string()))?;
    }
    Ok(())
}

struct Feedback {
    tenant: TenantConfig,
    erp: Arc<dyn ErpConnector>,
    centra: CentraClient,
    store: Store,
    base: ServiceBase,
    sink: Arc<dyn ExceptionSink>,
}

/// What became of one ERP shipment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Sent,
    AlreadyHandled,
    Merged,
    WaitingTracking,
    Failed,
}

impl Feedback {
    async fn run(self) {
        let shutdown = self.base.shutdown.clone();
        let policy = &self.tenant.fulfilment;
        let backoff = backon::ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(200))
            .with_max_delay(Duration::from_secs(30))
            .with_jitter()
            .without_max_times();
        let mut delays = backon::BackoffBuilder::build(backoff);
        let mut last_overdue_check = tokio::time::Instant::now();
        while !shutdown.is_cancelled() {
            let wait = match self.pass().await {
                Ok(0) => {
                    delays = backon::BackoffBuilder::build(backoff);
                    policy.poll_interval
                }
                Ok(_) => {
                    delays = backon::BackoffBuilder::build(backoff);
                    Duration::ZERO
                }
                Err(e) => {
                    tracing::warn!(
                        tenant = %self.tenant.id,
                        error = %e,
                        "shipment feed pass stopped; retrying"
                    );
                    e.retry_after()
                        .or_else(|| delays.next())
                        .unwrap_or(Duration::from_secs(30))
                }
            };
            // Often enough to notice within a tenth of the grace period, at most each minute.
            let check_every = (policy.tracking_grace / 10).min(Duration::from_secs(60));
            if last_overdue_check.elapsed() > check_every {
                last_overdue_check = tokio::time::Instant::now();
                if let Err(e) = self.overdue_tracking().await {
                    tracing::warn!(tenant = %self.tenant.id, error = %e, "tracking check failed");
                }
            }
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// Reads one page of the feed and handles it; the cursor moves only past shipments whose
    /// outcome is durable. Returns how many shipments the page had. Only one process reads a
    /// tenant's feed at a time (replicas wait their turn).
    async fn pass(&self) -> Result<usize, PassError> {
        let Some(lock) = self.store.try_feed_lock(&self.tenant.id, FEED).await? else {
            return Ok(0);
        };
        let result = self.pass_locked().await;
        lock.release().await;
        result
    }

    async fn pass_locked(&self) -> Result<usize, PassError> {
        let cursor = self.store.feed_cursor(&self.tenant.id, FEED).await?;
        let page = self.erp.shipments_since(&cursor, 100).await?;
        for shipment in &page.shipments {
            let outcome = self.handle(shipment).await?;
            metrics::counter!(
                "ferry_shipments_total",
                "tenant" => self.tenant.id.clone(),
                "outcome" => format!("{outcome:?}")
            )
            .increment(1);
        }
        if page.next_cursor != cursor {
            self.store
                .save_feed_cursor(&self.tenant.id, FEED, &page.next_cursor)
                .await?;
        }
        Ok(page.shipments.len())
    }

    async fn handle(&self, s: &ErpShipment) -> Result<Outcome, PassError> {
        let tenant = self.tenant.id.as_str();
        if let Some(row) = self.store.shipment(tenant, &s.id).await?
            && matches!(row.state.as_str(), "sent" | "merged" | "failed")
        {
            return Ok(Outcome::AlreadyHandled);
        }
        let mut items: BTreeMap<String, i64> = BTreeMap::new();
        for line in &s.lines {
            *items.entry(line.erp_item.clone()).or_insert(0) += line.quantity;
        }
        let number = s.external_ref.parse::<i64>().unwrap_or(0);
        let seen = ShipmentSeen {
            tenant,
            erp_shipment_id: &s.id,
            order_number: number,
            items: &items,
            carrier: s.carrier.as_deref(),
            tracking_number: s.tracking_number.as_deref(),
            erp_shipped_at: &s.shipped_at,
        };
        let previous = self.store.begin_shipment(&seen).await?;
        if matches!(previous.as_deref(), Some("sent" | "merged" | "failed")) {
            return Ok(Outcome::AlreadyHandled);
        }

        let ledger = self.store.ledger_row(tenant, number).await?;
        let posted_by_ferry = ledger.as_ref().is_some_and(|row| row.state == "posted");
        // Centra finds shipments by the order's hash id, which the ledger keeps.
        let order_id = ledger.map(|row| row.centra_order_id).unwrap_or_default();
        if !posted_by_ferry {
            let message = format!(
                "The warehouse shipped {} for order {}, but Ferry never sent that order to the \
                 ERP, so Centra has not been told and the customer has no shipping e-mail. Check \
                 the order number on the shipment in the ERP.",
                s.id, s.external_ref
            );
            let reason = format!(
                "shipment {} names order {:?}, not posted by Ferry",
                s.id, s.external_ref
            );
            return self
                .fail(
                    s,
                    number,
                    ExceptionKind::ShipmentForUnknownOrder,
                    message,
                    reason,
                )
                .await;
        }
        let Some(tracking) = s.tracking_number.as_deref().filter(|t| !t.is_empty()) else {
            // The ERP may add it later (the shipment then comes again on the feed).
            self.store
                .settle_shipment(tenant, &s.id, "waiting_tracking", None, false, false)
                .await?;
            return Ok(Outcome::WaitingTracking);
        };

        let Some(lines) = self.posted_lines(number).await? else {
            return self
                .fail(
                    s,
                    number,
                    ExceptionKind::ShipmentQuantityMismatch,
                    format!(
                        "Ferry no longer holds the sales order it posted for order {number} (older \
                         than the stream keeps), so it cannot tell which Centra lines shipment {} \
                         holds. Create the shipment in Centra by hand.",
                        s.id
                    ),
                    format!("no ready message for order {number} on the ORDERS stream"),
                )
                .await;
        };
        let earlier = self.store.shipped_items(tenant, number, &s.id).await?;
        let centra_lines = match map::centra_lines(&lines, &earlier, &items) {
            Ok(l) => l,
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
                return self
                    .fail(
                        s,
                        number,
                        ExceptionKind::ShipmentQuantityMismatch,
                        format!(
                            "The warehouse shipped {what} for order {number} (shipment {}). Centra \
                             was not told. Check the shipment in the ERP; correct it or tell Centra \
                             by hand.",
                            s.id
                        ),
                        e.to_string(),
                    )
                    .await;
            }
        };
        if centra_lines.is_empty() {
            // Half a bundle: Centra hears about it when the rest ships.
            self.store
                .settle_shipment(tenant, &s.id, "merged", None, false, false)
                .await?;
            return Ok(Outcome::Merged);
        }

        let policy = &self.tenant.fulfilment;
        let shipped_at = centra_time(&s.shipped_at, chrono::Utc::now());
        let new = NewShipment {
            order_number: number,
            lines: &centra_lines,
            shipped_at: &shipped_at,
            carrier: s.carrier.as_deref(),
            service: None,
            tracking_number: Some(tracking),
            send_email: policy.send_email,
            capture: policy.capture,
        };
        // A crash, a lost answer or a Centra that failed halfway may have left the shipment
        // there, perhaps not yet sent or captured: look first and finish what is missing.
        if previous.as_deref() == Some("sending")
            && let Some(existing) = self.existing_shipment(&order_id, &new).await?
        {
            return self.finish_existing(s, existing, &new).await;
        }

        self.spend_budget().await?;
        match self.centra.create_shipment(&new).await {
            Ok(created) => {
                self.store
                    .settle_shipment(
                        tenant,
                        &s.id,
                        "sent",
                        Some(created.id),
                        policy.send_email,
                        created.is_captured,
                    )
                    .await?;
                Ok(Outcome::Sent)
            }
            Err(CentraError::UserErrors(errors)) if policy.capture => {
                // The capture may be what failed, perhaps after Centra created the shipment:
                // finish that one if it exists, else create it without the capture. Either
                // way the customer is told, and finance captures.
                let reason = join(&errors);
                let shipment = match self.existing_shipment(&order_id, &new).await? {
                    Some(existing) => self.complete_if_needed(existing, &new).await?,
                    None => {
                        self.spend_budget().await?;
                        refusal(
                            self.centra
                                .create_shipment(&NewShipment {
                                    capture: false,
                                    ..new
                                })
                                .await,
                        )?
                    }
                };
                match shipment {
                    Ok(shipment) => {
                        self.sent_without_capture(s, number, &shipment, &reason)
                            .await
                    }
                    Err(errors) => self.refused(s, number, &errors).await,
                }
            }
            Err(CentraError::UserErrors(errors)) => self.refused(s, number, &errors).await,
            Err(e) => Err(e.into()),
        }
    }

    /// The shipment Ferry may already have made for `new` in Centra (order `order_id`, the
    /// hash id): same tracking number and the same lines.
    async fn existing_shipment(
        &self,
        order_id: &str,
        new: &NewShipment<'_>,
    ) -> Result<Option<CentraShipment>, PassError> {
        Ok(self
            .centra
            .order_shipments(order_id)
            .await?
            .into_iter()
            .find(|c| {
                c.tracking_number.as_deref() == new.tracking_number
                    && same_lines(&c.lines, new.lines)
            }))
    }

    /// Finishes a shipment found in Centra: sent if it is not (with the customer's e-mail
    /// per policy), captured if the policy captures and it is not, then recorded as sent.
    async fn finish_existing(
        &self,
        s: &ErpShipment,
        existing: CentraShipment,
        new: &NewShipment<'_>,
    ) -> Result<Outcome, PassError> {
        let number = new.order_number;
        let shipment = match self.complete_if_needed(existing, new).await? {
            Ok(shipment) => shipment,
            Err(errors) => return self.refused(s, number, &errors).await,
        };
        if !new.capture || shipment.is_captured {
            self.store
                .settle_shipment(
                    &self.tenant.id,
                    &s.id,
                    "sent",
                    Some(shipment.id),
                    new.send_email,
                    shipment.is_captured,
                )
                .await?;
            return Ok(Outcome::Sent);
        }
        self.spend_budget().await?;
        match self.centra.capture_shipment(shipment.id).await {
            Ok(captured) => {
                self.store
                    .settle_shipment(
                        &self.tenant.id,
                        &s.id,
                        "sent",
                        Some(captured.id),
                        new.send_email,
                        captured.is_captured,
                    )
                    .await?;
                Ok(Outcome::Sent)
            }
            Err(CentraError::UserErrors(errors)) => {
                self.sent_without_capture(s, number, &shipment, &join(&errors))
                    .await
            }
            Err(e) => Err(e.into()),
        }
    }

    /// `shipment` itself when Centra has sent it, else the shipment completed now; the
    /// inner error is Centra refusing the completion.
    async fn complete_if_needed(
        &self,
        shipment: CentraShipment,
        new: &NewShipment<'_>,
    ) -> Result<Result<CentraShipment, Vec<ferry_centra::UserMessage>>, PassError> {
        if shipment.is_shipped {
            return Ok(Ok(shipment));
        }
        self.spend_budget().await?;
        refusal(self.centra.complete_shipment(shipment.id, new).await)
    }

    /// The shipment is sent but its payment was not captured: recorded as sent, and a
    /// `capture_failed` exception for finance.
    async fn sent_without_capture(
        &self,
        s: &ErpShipment,
        number: i64,
        shipment: &CentraShipment,
        reason: &str,
    ) -> Result<Outcome, PassError> {
        self.store
            .settle_shipment(
                &self.tenant.id,
                &s.id,
                "sent",
                Some(shipment.id),
                self.tenant.fulfilment.send_email,
                false,
            )
            .await?;
        let message = format!(
            "Order {number} has shipped (shipment {} in Centra) but the payment could not be \
             captured: {reason}. Capture it by hand in Centra or with the payment provider.",
            shipment.number
        );
        self.record(
            s,
            number,
            ExceptionKind::CaptureFailed,
            message,
            reason.to_owned(),
        )
        .await?;
        Ok(Outcome::Sent)
    }

    async fn refused(
        &self,
        s: &ErpShipment,
        number: i64,
        errors: &[ferry_centra::UserMessage],
    ) -> Result<Outcome, PassError> {
        let reason = join(errors);
        self.fail(
            s,
            number,
            ExceptionKind::ShipmentRefused,
            format!(
                "Centra refused the shipment of order {number} (ERP shipment {}): {reason}. The \
                 customer has not been told it shipped. Create the shipment in Centra by hand.",
                s.id
            ),
            reason.clone(),
        )
        .await
    }

    async fn fail(
        &self,
        s: &ErpShipment,
        number: i64,
        kind: ExceptionKind,
        message: String,
        reason: String,
    ) -> Result<Outcome, PassError> {
        self.record(s, number, kind, message, reason).await?;
        self.store
            .settle_shipment(&self.tenant.id, &s.id, "failed", None, false, false)
            .await?;
        Ok(Outcome::Failed)
    }

    async fn record(
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
            source_subject: None,
            payload: serde_json::to_vec(s).unwrap_or_default(),
        };
        self.sink
            .record(&exception)
            .await
            .map_err(|e| PassError::Other(e.to_string()))
    }

    /// Waits until the tenant's shared Centra budget grants one mutation at shipment
    /// priority (shipments go first: inventory may not dip into their reserve).
    async fn spend_budget(&self) -> Result<(), PassError> {
        loop {
            match self
                .store
                .reserve_mutations(
                    &self.tenant.id,
                    &MutationBudget::for_tenant(&self.tenant),
                    Priority::Shipments,
                    1,
                )
                .await?
            {
                None => return Ok(()),
                Some(wait) => {
                    tokio::select! {
                        _ = self.base.shutdown.cancelled() => {
                            return Err(PassError::Other("shutting down".into()));
                        }
                        _ = tokio::time::sleep(wait) => {}
                    }
                }
            }
        }
    }

    /// The lines Ferry posted for the order, from its ready message on the ORDERS stream;
    /// `None` when the stream no longer has it (a permanent condition, not a retry).
    async fn posted_lines(&self, number: i64) -> Result<Option<Vec<PostedLine>>, PassError> {
        let stream = self
            .base
            .js
            .get_stream(
                self.base
                    .topology
                    .stream_name(ferry_runtime::StreamKind::Orders),
            )
            .await
            .map_err(|e| PassError::Other(e.to_string()))?;
        let message = match stream
            .get_last_raw_message_by_subject(
                &self.base.topology.ready_subject(&self.tenant.id, number),
            )
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

    /// Shipments still without a tracking number after the grace period: customer service.
    async fn overdue_tracking(&self) -> Result<(), PassError> {
        for row in self
            .store
            .overdue_tracking(&self.tenant.id, self.tenant.fulfilment.tracking_grace)
            .await?
        {
            let exception = NewException {
                tenant: self.tenant.id.clone(),
                kind: ExceptionKind::TrackingMissing,
                key: format!("tracking:{}", row.erp_shipment_id),
                message: format!(
                    "Order {} left the warehouse (shipment {}) more than {} hours ago without a \
                     tracking number, so the customer has had no shipping e-mail. Ask the \
                     warehouse for the tracking number and add it in the ERP.",
                    row.order_number,
                    row.erp_shipment_id,
                    self.tenant.fulfilment.tracking_grace.as_secs() / 3600
                ),
                reason: "shipment without shipping reference past the grace period".into(),
                order_number: Some(row.order_number),
                amount_minor: None,
                currency: None,
                service: SERVICE.to_owned(),
                source_subject: None,
                payload: Vec::new(),
            };
            self.sink
                .record(&exception)
                .await
                .map_err(|e| PassError::Other(e.to_string()))?;
        }
        Ok(())
    }
}

/// Splits Centra's refusal (`userErrors`, the inner error) from failures to retry.
fn refusal<T>(
    result: Result<T, CentraError>,
) -> Result<Result<T, Vec<ferry_centra::UserMessage>>, PassError> {
    match result {
        Ok(value) => Ok(Ok(value)),
        Err(CentraError::UserErrors(errors)) => Ok(Err(errors)),
        Err(e) => Err(e.into()),
    }
}

/// Centra's `userErrors` as one line.
fn join(errors: &[ferry_centra::UserMessage]) -> String {
    errors
        .iter()
        .map(|e| e.message.as_str())
        .collect::<Vec<_>>()
        .join("; ")
}

fn same_lines(a: &[(i64, i64)], b: &[(i64, i64)]) -> bool {
    let mut a = a.to_vec();
    let mut b = b.to_vec();
    a.sort_unstable();
    b.sort_unstable();
    a == b
}

/// The ERP's shipped time as Centra reads it: "YYYY-MM-DD HH:MM:SS" in UTC. A bare date
/// (Tryton's `effective_date`) gets noon, so the day is right in every time zone the brand
/// sells in — but never later than `now`: Centra refuses a shipment dated in the future,
/// and before noon UTC today's noon is still to come.
fn centra_time(erp: &str, now: chrono::DateTime<chrono::Utc>) -> String {
    const FORMAT: &str = "%Y-%m-%d %H:%M:%S";
    if let Ok(day) = chrono::NaiveDate::parse_from_str(erp, "%Y-%m-%d") {
        let noon = day.and_time(chrono::NaiveTime::MIN) + chrono::Duration::hours(12);
        return noon.and_utc().min(now).format(FORMAT).to_string();
    }
    match chrono::DateTime::parse_from_rfc3339(erp) {
        // An ERP clock ahead of Centra's is refused the same way.
        Ok(t) => t
            .with_timezone(&chrono::Utc)
            .min(now)
            .format(FORMAT)
            .to_string(),
        Err(_) => erp.chars().take(19).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};
    use proptest::prelude::*;

    #[test]
    fn a_bare_date_is_noon_unless_noon_is_still_to_come() {
        let morning = Utc.with_ymd_and_hms(2026, 11, 28, 1, 41, 7).unwrap();
        assert_eq!(centra_time("2026-11-27", morning), "2026-11-27 12:00:00");
        // Found by CI running after midnight: Centra refused "today 12:00" at 01:41.
        assert_eq!(centra_time("2026-11-28", morning), "2026-11-28 01:41:07");
        let evening = Utc.with_ymd_and_hms(2026, 11, 28, 19, 0, 0).unwrap();
        assert_eq!(centra_time("2026-11-28", evening), "2026-11-28 12:00:00");
        // A warehouse a time zone ahead already says tomorrow.
        assert_eq!(centra_time("2026-11-29", evening), "2026-11-28 19:00:00");
    }

    #[test]
    fn times_are_utc_and_never_ahead_of_now() {
        let now = Utc.with_ymd_and_hms(2026, 11, 28, 10, 0, 0).unwrap();
        assert_eq!(
            centra_time("2026-11-28T09:30:00+01:00", now),
            "2026-11-28 08:30:00"
        );
        assert_eq!(
            centra_time("2026-11-28T10:05:00Z", now),
            "2026-11-28 10:00:00"
        );
    }

    proptest! {
        /// Whatever the ERP says and whenever Ferry runs, Centra is never told a shipment
        /// left in the future, and a date keeps its day.
        #[test]
        fn never_in_the_future(days in 0i64..2_000, secs in 0i64..86_400, offset in -2i64..=2) {
            let now = Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap()
                + chrono::Duration::days(days) + chrono::Duration::seconds(secs);
            let day = (now + chrono::Duration::days(offset)).format("%Y-%m-%d").to_string();
            let sent = centra_time(&day, now);
            let parsed = chrono::NaiveDateTime::parse_from_str(&sent, "%Y-%m-%d %H:%M:%S").unwrap().and_utc();
            prop_assert!(parsed <= now);
            if offset <= 0 {
                prop_assert_eq!(parsed.format("%Y-%m-%d").to_string(), day);
            }
        }
    }
}
