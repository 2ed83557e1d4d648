//! The fulfilment-feedback service: consumes the shipments the ERP recorded
//! (`<prefix>.<tenant>.erp.shipment.v1.*`, published by the shipment source this process
//! also runs), maps each back to Centra's order lines (bundles, partial and repeated
//! shipments) and creates it in Centra already shipped — carrier, tracking number, the
//! customer's e-mail and, per policy, the capture — exactly once, within the tenant's share
//! of Centra's mutation budget.

mod finish;
mod handle;
mod locks;
pub mod map;
mod time;
mod tracking;

use std::sync::Arc;

use ferry_centra::CentraClient;
use ferry_config::TenantConfig;
use ferry_erp::Connectors;
use ferry_erp_sources::ShipmentSource;
use ferry_platform::Platform;
use ferry_runtime::config::ConsumerConfig;
use ferry_runtime::nats::StreamKind;
use ferry_runtime::{FeedSpec, Runner};

use crate::handle::Feedback;
use crate::tracking::TrackingCheck;

pub const SERVICE: &str = "fulfilment-feedback";
/// The shipment feed's name (its lease and cursor).
pub const FEED: &str = ferry_erp_sources::shipments::FEED;
/// Shipments handled at once per tenant (each waits on Centra's quota; shipments of one
/// order wait for each other).
const CONCURRENCY: usize = 16;

#[derive(Debug, thiserror::Error)]
pub enum FulfilmentError {
    #[error("a tenant task failed: {0}")]
    Join(String),
    #[error(transparent)]
    Runner(#[from] ferry_runtime::consumer::RunnerError),
    #[error(transparent)]
    Nats(#[from] ferry_runtime::nats::NatsError),
}

/// Runs, per tenant, the ERP's shipment source, the consumer that tells Centra, and the
/// check for shipments still without tracking, until the base's shutdown token is cancelled.
pub async fn run(platform: Platform, connectors: Connectors) -> Result<(), FulfilmentError> {
    let Platform {
        base,
        config,
        store,
        sink,
        feeds,
    } = platform;
    let mut tasks = tokio::task::JoinSet::new();
    for tenant in &config.tenants {
        let policy = &tenant.fulfilment;
        let Some(feed) = connectors.get(&tenant.id).and_then(|c| c.shipments.clone()) else {
            tracing::warn!(tenant = %tenant.id, "the tenant's ERP connector has no shipment feed; Centra hears of no shipments");
            continue;
        };
        let source = ShipmentSource {
            tenant: tenant.id.clone(),
            service: SERVICE,
            erp: feed,
            publisher: base.publisher.clone(),
            topology: base.topology.clone(),
        };
        let feed = feeds.spawn(
            FeedSpec::source(SERVICE, &tenant.id, FEED, policy.poll_interval),
            Arc::new(source),
            base.shutdown.clone(),
        );
        // Shipments are handled where the feed is read: one replica per tenant calls
        // Centra, so two shipments of one order never race (Centra's quota, not CPU, is
        // what limits this service).
        let runner = Runner::builder(
            &base,
            sink.clone(),
            SERVICE,
            &tenant.id,
            StreamKind::Erp,
            base.topology.shipments_filter(&tenant.id),
        )
        .config(ConsumerConfig {
            concurrency: CONCURRENCY,
            ..base.config.consumer.clone()
        })
        .gate(feed.leading)
        .build();
        let feedback = Feedback::new(
            tenant.clone(),
            centra(tenant),
            store.clone(),
            &base,
            sink.clone(),
        );
        tasks.spawn(runner.run(Arc::new(feedback), base.shutdown.clone()));
        // Often enough to notice within a tenth of the grace period, at most each minute.
        let check_every = (policy.tracking_grace / 10).min(std::time::Duration::from_secs(60));
        feeds.spawn(
            FeedSpec::periodic(SERVICE, &tenant.id, "tracking-check", check_every, true),
            Arc::new(TrackingCheck {
                tenant: tenant.clone(),
                store: store.clone(),
                sink: sink.clone(),
            }),
            base.shutdown.clone(),
        );
    }
    while let Some(done) = tasks.join_next().await {
        done.map_err(|e| FulfilmentError::Join(e.to_string()))??;
    }
    Ok(())
}

fn centra(tenant: &TenantConfig) -> CentraClient {
    CentraClient::paced(
        tenant.centra.url.clone(),
        tenant.centra.token.clone(),
        tenant
            .centra
            .pacing_for(ferry_config::CentraCaller::FulfilmentFeedback),
        tenant.centra.timeout,
    )
    .for_tenant(&tenant.id)
}
