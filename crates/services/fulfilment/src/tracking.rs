//! Shipments still without a tracking number after the grace period: customer service hears
//! of each (a periodic feed, one replica per tenant).

use std::sync::Arc;

use async_trait::async_trait;
use ferry_config::TenantConfig;
use ferry_domain::{ExceptionKind, NewException};
use ferry_runtime::{ExceptionSink, Feed, FeedError, Pass};
use ferry_store::Store;

use crate::SERVICE;

pub(crate) struct TrackingCheck {
    pub tenant: TenantConfig,
    pub store: Store,
    pub sink: Arc<dyn ExceptionSink>,
}

#[async_trait]
impl Feed for TrackingCheck {
    async fn pass(&self, _cursor: &str) -> Result<Pass, FeedError> {
        let grace = self.tenant.fulfilment.tracking_grace;
        let overdue = self
            .store
            .overdue_tracking(&self.tenant.id, grace)
            .await
            .map_err(FeedError::transient)?;
        for row in &overdue {
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
                    grace.as_secs() / 3600
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
                .map_err(FeedError::transient)?;
        }
        Ok(Pass {
            items: overdue.len() as u64,
            ..Pass::default()
        })
    }
}
