//! The shipment source: pages of the ERP's shipment feed, each shipment published as a
//! `ShipmentRecorded` on `<prefix>.<tenant>.erp.shipment.v1.<id>`.

use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::Bytes;
use ferry_erp::{ErpShipment, ShipmentFeed};
use ferry_runtime::{Feed, FeedError, Outgoing, Pass, Publisher, Topology};
use prost::Message;
use sha2::{Digest, Sha256};
use tracing::Instrument as _;

/// The feed's name: its lease, cursor, metrics and spans.
pub const FEED: &str = "erp-shipments";
/// Shipments read per pass.
pub const PAGE: usize = 100;

pub struct ShipmentSource {
    pub tenant: String,
    pub service: &'static str,
    pub erp: Arc<dyn ShipmentFeed>,
    pub publisher: Publisher,
    pub topology: Topology,
}

#[async_trait]
impl Feed for ShipmentSource {
    async fn pass(&self, cursor: &str) -> Result<Pass, FeedError> {
        let page = self
            .erp
            .shipments_since(cursor, PAGE)
            .await
            .map_err(|e| crate::feed_error(e, &self.tenant, self.service, "shipment"))?;
        let read_at = SystemTime::now();
        // Each shipment is its own trace from here to Centra, linked to the pass that read
        // it. The cursor moves only once JetStream holds every shipment of the page.
        let pass = tracing::Span::current();
        let publishes = page.shipments.iter().map(|s| {
            let span = tracing::info_span!(
                parent: None,
                "erp.shipment",
                otel.kind = "producer",
                ferry.tenant = %self.tenant,
                erp.shipment = %s.id,
            );
            ferry_runtime::telemetry::add_link(&span, &pass);
            let message = self.message(s, read_at);
            let publisher = self.publisher.clone();
            async move { publisher.publish(&message).await }.instrument(span)
        });
        for published in futures::future::join_all(publishes).await {
            published.map_err(FeedError::transient)?;
        }
        let now = chrono::Utc::now();
        let unreadable = page.unreadable.len();
        Ok(Pass {
            items: page.shipments.len() as u64,
            more: page.shipments.len() + unreadable >= PAGE,
            lag: page
                .shipments
                .iter()
                .filter_map(|s| crate::age(&s.shipped_at, now))
                .max(),
            exceptions: page
                .unreadable
                .into_iter()
                .map(|u| crate::unreadable(&self.tenant, self.service, "shipment", u))
                .collect(),
            cursor: page.next_cursor,
        })
    }
}

impl ShipmentSource {
    fn message(&self, s: &ErpShipment, read_at: SystemTime) -> Outgoing {
        let message = crate::shipment_message(&self.tenant, self.erp.name(), s, read_at);
        Outgoing {
            subject: self.topology.shipment_subject(&self.tenant, &s.id),
            msg_id: msg_id(&self.tenant, s),
            payload: Bytes::from(message.encode_to_vec()),
        }
    }
}

/// The same shipment read again is the same message (dropped in the duplicate window); a
/// changed one (a tracking number added) is a new message.
pub fn msg_id(tenant: &str, s: &ErpShipment) -> String {
    let content = serde_json::to_vec(s).unwrap_or_default();
    let digest = Sha256::digest(&content);
    format!("{tenant}:shipment:{}:{}", s.id, &hex::encode(digest)[..16])
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_erp::ErpShipmentLine;

    #[test]
    fn a_changed_shipment_is_a_new_message() {
        let mut s = ErpShipment {
            id: "SH-1".into(),
            external_ref: "48170".into(),
            shipped_at: "2026-12-06".into(),
            carrier: Some("DHL".into()),
            tracking_number: None,
            lines: vec![ErpShipmentLine {
                erp_item: "JKT".into(),
                quantity: 1,
            }],
        };
        let before = msg_id("acme", &s);
        assert_eq!(before, msg_id("acme", &s.clone()));
        s.tracking_number = Some("00340434".into());
        assert_ne!(before, msg_id("acme", &s));
        assert!(before.starts_with("acme:shipment:SH-1:"));
    }
}
