//! The inventory-pusher service: consumes the ERP's stock levels
//! (`<prefix>.<tenant>.erp.stock.v1.>`, published by the stock source this process also
//! runs; the stream keeps only the latest level per (warehouse, item)), computes what
//! Centra may sell — ERP available less Centra orders not yet in the ERP less a safety
//! buffer — and sends only what changed, many sizes per `setStock`, items selling out
//! first, within the tenant's share of Centra's mutation budget. A drift check compares
//! Centra's free-to-allocate stock with what Ferry expects and heals or reports it.
//!
//! Per tenant: the stock source (a feed), the pusher (a feed ticking every 50 ms, one
//! replica at a time), the stock consumer (gated by the pusher's leadership: it stores each
//! level, then hands it to the pusher of its own process) and the consumer of ready orders
//! that records which units Centra holds allocated.

mod commitments;
mod drift;
mod levels;
pub mod plan;
mod push;
mod pusher;

use std::sync::Arc;
use std::time::Duration;

use ferry_erp::Connectors;
use ferry_erp_sources::StockSource;
use ferry_platform::Platform;
use ferry_runtime::config::ConsumerConfig;
use ferry_runtime::nats::StreamKind;
use ferry_runtime::{FeedSpec, Runner};

use crate::commitments::Commitments;
use crate::levels::{Levels, Mapping};
use crate::pusher::{Pusher, PusherFeed};

pub const SERVICE: &str = "inventory-pusher";
/// The stock source's feed name (its lease and cursor).
pub const FEED: &str = ferry_erp_sources::stock::FEED;
/// The pusher's feed name (its lease: where the stock consumer runs).
pub const PUSH_FEED: &str = "stock-push";

/// Requests of the pusher's share of Centra's request quota that only sizes selling out
/// may use.
const RESERVED_REQUESTS: u32 = 2;
/// How often the pusher looks for items selling out (and budget that came free).
const TICK: Duration = Duration::from_millis(50);
/// Stock levels handled at once (each is one row of a group-committed statement).
const LEVELS_IN_FLIGHT: usize = 1024;

#[derive(Debug, thiserror::Error)]
pub enum InventoryError {
    #[error("a tenant task failed: {0}")]
    Join(String),
    #[error(transparent)]
    Runner(#[from] ferry_runtime::consumer::RunnerError),
    #[error(transparent)]
    Nats(#[from] ferry_runtime::nats::NatsError),
}

/// Runs, per tenant with mapped warehouses, the stock source, the pusher and its two
/// consumers, until the base's shutdown token is cancelled.
pub async fn run(platform: Platform, connectors: Connectors) -> Result<(), InventoryError> {
    let Platform {
        base,
        config,
        store,
        sink,
        feeds,
    } = platform;
    let mut consumers = tokio::task::JoinSet::new();
    for tenant in &config.tenants {
        if tenant.inventory.warehouses.is_empty() {
            tracing::info!(tenant = %tenant.id, "no warehouses mapped in [inventory]; stock is not pushed");
            continue;
        }
        let Some(stock) = connectors.get(&tenant.id).and_then(|c| c.stock.clone()) else {
            tracing::warn!(tenant = %tenant.id, "the tenant's ERP connector has no stock; stock is not pushed");
            continue;
        };
        let source = StockSource::new(
            tenant.id.clone(),
            SERVICE,
            stock,
            base.publisher.clone(),
            base.topology.clone(),
        );
        feeds.spawn(
            FeedSpec::source(SERVICE, &tenant.id, FEED, tenant.inventory.poll_interval),
            Arc::new(source),
            base.shutdown.clone(),
        );

        let mapping = Mapping::shared(tenant);
        let (observations, arrivals) = tokio::sync::mpsc::unbounded_channel();
        let pusher = Pusher::new(tenant.clone(), store.clone(), sink.clone(), mapping.clone());
        let pushing = feeds.spawn(
            FeedSpec::periodic(SERVICE, &tenant.id, PUSH_FEED, TICK, true).quiet(),
            Arc::new(PusherFeed::new(pusher, arrivals)),
            base.shutdown.clone(),
        );
        let levels = Levels::new(&tenant.id, store.clone(), mapping, observations);
        let stock = Runner::builder(
            &base,
            sink.clone(),
            SERVICE,
            &tenant.id,
            StreamKind::Erp,
            base.topology.stock_filter(&tenant.id),
        )
        .durable(base.topology.consumer_name("inventory-stock", &tenant.id))
        .config(ConsumerConfig {
            concurrency: LEVELS_IN_FLIGHT,
            batch: LEVELS_IN_FLIGHT,
            max_ack_pending: 4 * LEVELS_IN_FLIGHT as i64,
            ..base.config.consumer.clone()
        })
        .gate(pushing.leading)
        .build();
        consumers.spawn(stock.run(Arc::new(levels), base.shutdown.clone()));

        let orders = Runner::builder(
            &base,
            sink.clone(),
            SERVICE,
            &tenant.id,
            StreamKind::Orders,
            base.topology.ready_filter(&tenant.id),
        )
        .build();
        consumers.spawn(orders.run(
            Arc::new(Commitments::new(&tenant.id, store.clone())),
            base.shutdown.clone(),
        ));
    }
    if consumers.is_empty() {
        // Nothing to push for any tenant: stay up (readiness, metrics) until told to stop.
        base.shutdown.cancelled().await;
        return Ok(());
    }
    while let Some(done) = consumers.join_next().await {
        done.map_err(|e| InventoryError::Join(e.to_string()))??;
    }
    Ok(())
}
