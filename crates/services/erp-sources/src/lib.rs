//! Sources that read what an ERP reports — shipments that left, stock levels — and publish
//! it on the ERP stream (`<prefix>.<tenant>.erp.>`), each run by the feed runner: one
//! replica per tenant reads, the cursor moves only after JetStream acknowledged every
//! message of the pass, and `Nats-Msg-Id` drops what a repeated pass publishes again.
//! Consumers (fulfilment-feedback, the inventory pusher, any later connector) read the
//! stream, never the ERP.

pub mod shipments;
pub mod stock;

use std::time::{Duration, SystemTime};

use ferry_domain::{ExceptionKind, NewException};
use ferry_erp::{ErpError, ErpShipment, ErpShipmentLine, Unreadable};
use ferry_proto::erp::v1 as pb;
use ferry_runtime::FeedError;

pub use shipments::ShipmentSource;
pub use stock::StockSource;

/// An ERP failure while reading a feed: transient ones are retried by the runner; the rest
/// (credentials, configuration) become a `feed_failed` exception for engineering.
pub fn feed_error(e: ErpError, tenant: &str, service: &str, feed: &str) -> FeedError {
    if e.is_transient() {
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
            "Ferry cannot read the ERP's {feed} feed: {e}. Nothing new arrives from it until \
             the brand's [erp] settings are fixed; nothing is lost, reading resumes where it \
             stopped."
        ),
        reason: e.to_string(),
        order_number: None,
        amount_minor: None,
        currency: None,
        service: service.to_owned(),
        source_subject: None,
        payload: Vec::new(),
    }))
}

/// A record the ERP supplied that could not be read: an exception for operations, with
/// what it held.
pub fn unreadable(tenant: &str, service: &str, what: &str, u: Unreadable) -> NewException {
    NewException {
        tenant: tenant.to_owned(),
        kind: ExceptionKind::ErpRecordUnreadable,
        key: format!("unreadable:{}", u.name),
        message: format!(
            "A {what} from the ERP cannot be read ({}: {}). Ferry went on without it, so \
             Centra has not heard of it. Have it corrected and sent again.",
            u.name, u.reason
        ),
        reason: u.reason,
        order_number: None,
        amount_minor: None,
        currency: None,
        service: service.to_owned(),
        source_subject: None,
        payload: u.content,
    }
}

/// The message a shipment source publishes.
pub fn shipment_message(
    tenant: &str,
    connector: &str,
    s: &ErpShipment,
    read_at: SystemTime,
) -> pb::ShipmentRecorded {
    pb::ShipmentRecorded {
        tenant: tenant.to_owned(),
        erp_shipment_id: s.id.clone(),
        external_ref: s.external_ref.clone(),
        shipped_at: s.shipped_at.clone(),
        carrier: s.carrier.clone(),
        tracking_number: s.tracking_number.clone(),
        lines: s
            .lines
            .iter()
            .map(|l| pb::ShipmentLine {
                erp_item: l.erp_item.clone(),
                quantity: l.quantity,
            })
            .collect(),
        connector: connector.to_owned(),
        read_at: Some(ferry_proto::timestamp(read_at)),
    }
}

/// A published shipment as the connector-neutral [`ErpShipment`] consumers work with.
pub fn shipment_of(m: pb::ShipmentRecorded) -> ErpShipment {
    ErpShipment {
        id: m.erp_shipment_id,
        external_ref: m.external_ref,
        shipped_at: m.shipped_at,
        carrier: m.carrier,
        tracking_number: m.tracking_number,
        lines: m
            .lines
            .into_iter()
            .map(|l| ErpShipmentLine {
                erp_item: l.erp_item,
                quantity: l.quantity,
            })
            .collect(),
    }
}

/// How long ago `shipped_at` (RFC 3339) was; `None` for a bare date or an unreadable time.
fn age(shipped_at: &str, now: chrono::DateTime<chrono::Utc>) -> Option<Duration> {
    let at = chrono::DateTime::parse_from_rfc3339(shipped_at).ok()?;
    (now - at.with_timezone(&chrono::Utc)).to_std().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn shipment() -> impl Strategy<Value = ErpShipment> {
        (
            ".{0,10}",
            "[0-9]{0,6}",
            proptest::option::of(".{0,8}"),
            proptest::option::of(".{0,8}"),
            proptest::collection::vec((".{0,6}", -5i64..50), 0..5),
        )
            .prop_map(|(id, r, carrier, tracking, lines)| ErpShipment {
                id,
                external_ref: r,
                shipped_at: "2026-12-06".into(),
                carrier,
                tracking_number: tracking,
                lines: lines
                    .into_iter()
                    .map(|(erp_item, quantity)| ErpShipmentLine { erp_item, quantity })
                    .collect(),
            })
    }

    proptest! {
        /// What a consumer reads back is what the source read from the ERP.
        #[test]
        fn a_shipment_survives_the_stream(s in shipment()) {
            let m = shipment_message("acme", "http", &s, SystemTime::UNIX_EPOCH);
            prop_assert_eq!(shipment_of(m), s);
        }
    }

    #[test]
    fn configuration_errors_go_to_engineering_and_outages_are_retried() {
        match feed_error(
            ErpError::Misconfigured("401".into()),
            "acme",
            "svc",
            "shipment",
        ) {
            FeedError::Permanent(e) => {
                assert_eq!(e.kind, ExceptionKind::FeedFailed);
                assert_eq!(e.tenant, "acme");
            }
            other => panic!("expected an exception, got {other:?}"),
        }
        let outage = ErpError::Unavailable {
            reason: "503".into(),
            retry_after: Some(Duration::from_secs(7)),
        };
        match feed_error(outage, "acme", "svc", "shipment") {
            FeedError::Transient { retry_after, .. } => {
                assert_eq!(retry_after, Some(Duration::from_secs(7)));
            }
            other => panic!("expected a retry, got {other:?}"),
        }
    }

    #[test]
    fn age_reads_rfc3339_only() {
        let now = chrono::DateTime::parse_from_rfc3339("2026-12-06T10:00:00Z")
            .map(|t| t.with_timezone(&chrono::Utc))
            .unwrap_or_default();
        assert_eq!(
            age("2026-12-06T09:59:00Z", now),
            Some(Duration::from_secs(60))
        );
        assert_eq!(age("2026-12-06", now), None);
    }
}
