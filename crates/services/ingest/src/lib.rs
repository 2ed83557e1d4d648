//! The ingest service: Centra's change signals in (signed webhooks, the Events queue and a
//! periodic resync), full order snapshots out on JetStream.
//!
//! Webhooks are fast but Centra does not guarantee their delivery or order, so a webhook
//! only says "look at order N": ingest fetches the order's full snapshot in batches and
//! publishes it with its content hash as message id. Duplicates are dropped by JetStream
//! and, further downstream, by the ledger.

use std::net::SocketAddr;
use std::sync::Arc;

use ferry_centra::CentraClient;
use ferry_platform::Platform;
use ferry_runtime::consumer::Runner;
use ferry_runtime::{FeedSpec, StreamKind};
use secrecy::ExposeSecret;

pub mod customers;
pub mod fetcher;
pub mod returns;
pub mod sources;
pub mod webhook;

pub const SERVICE: &str = "ingest";

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("webhook endpoint: {0}")]
    Listen(#[from] std::io::Error),
    #[error(transparent)]
    Nats(#[from] ferry_runtime::nats::NatsError),
    #[error(transparent)]
    Runner(#[from] ferry_runtime::consumer::RunnerError),
    #[error("a task failed: {0}")]
    Join(String),
}

/// A started ingest service.
pub struct Ingest {
    /// Where Centra's webhooks are received.
    pub webhook_addr: SocketAddr,
    tasks: tokio::task::JoinSet<Result<(), ferry_runtime::consumer::RunnerError>>,
}

impl Ingest {
    /// Binds the webhook endpoint and starts the fetchers; returns once listening.
    pub async fn start(platform: &Platform) -> Result<Ingest, IngestError> {
        let Platform {
            base,
            config,
            sink,
            feeds,
            store,
            ..
        } = platform.clone();
        let webhook_addr = webhook::serve(base.clone(), config.clone()).await?;
        let mut tasks = tokio::task::JoinSet::new();
        for tenant in &config.tenants {
            let client = CentraClient::paced(
                tenant.centra.url.clone(),
                tenant.centra.token.expose_secret().to_owned().into(),
                tenant.centra.pacing_for(ferry_config::CentraCaller::Ingest),
                tenant.centra.timeout,
            )
            .for_tenant(&tenant.id);
            // One client per tenant: the fetcher and both pull sources share its pacing,
            // so together they stay within Centra's request quota.
            if tenant.centra.events {
                let events = sources::EventsFeed {
                    base: base.clone(),
                    tenant: tenant.id.clone(),
                    client: client.clone(),
                };
                feeds.spawn(
                    FeedSpec::periodic(
                        SERVICE,
                        &tenant.id,
                        sources::EVENTS_FEED,
                        tenant.centra.events_poll,
                        true,
                    ),
                    Arc::new(events),
                    base.shutdown.clone(),
                );
            }
            if !tenant.centra.resync_interval.is_zero() {
                let resync = sources::ResyncFeed {
                    base: base.clone(),
                    tenant: tenant.id.clone(),
                    client: client.clone(),
                    overlap: tenant.centra.resync_overlap,
                };
                feeds.spawn(
                    FeedSpec::source(
                        SERVICE,
                        &tenant.id,
                        sources::RESYNC_FEED,
                        tenant.centra.resync_interval,
                    ),
                    Arc::new(resync),
                    base.shutdown.clone(),
                );
            }
            // Returns and customers read the same notices through consumers of their own:
            // a slow return never holds up an order.
            let returns = Arc::new(returns::ReturnHandler {
                base: base.clone(),
                tenant: tenant.id.clone(),
                client: client.clone(),
                seen: returns::Seen::default(),
                store: store.clone(),
            });
            if !tenant.centra.returns_recheck.is_zero() {
                let recheck = sources::PendingReturnsFeed {
                    base: base.clone(),
                    tenant: tenant.id.clone(),
                    store: store.clone(),
                    every: tenant.centra.returns_recheck,
                };
                feeds.spawn(
                    FeedSpec::periodic(
                        SERVICE,
                        &tenant.id,
                        sources::RETURNS_RECHECK_FEED,
                        tenant.centra.returns_recheck,
                        true,
                    ),
                    Arc::new(recheck),
                    base.shutdown.clone(),
                );
            }
            let runner = notices_runner(&base, &sink, &tenant.id, "ingest-returns");
            tasks.spawn(runner.run(returns, base.shutdown.clone()));
            let customers = Arc::new(customers::CustomerHandler {
                base: base.clone(),
                tenant: tenant.id.clone(),
                client: client.clone(),
            });
            let runner = notices_runner(&base, &sink, &tenant.id, "ingest-customers");
            tasks.spawn(runner.run(customers, base.shutdown.clone()));
            let handler = Arc::new(fetcher::NoticeHandler::start(
                base.clone(),
                config.ingest.clone(),
                tenant.id.clone(),
                client,
                sink.clone(),
                base.shutdown.clone(),
            ));
            let runner = notices_runner(&base, &sink, &tenant.id, "ingest-fetch");
            tasks.spawn(runner.run(handler, base.shutdown.clone()));
        }
        Ok(Ingest {
            webhook_addr,
            tasks,
        })
    }

    /// Waits until every task has stopped (after shutdown).
    pub async fn wait(mut self) -> Result<(), IngestError> {
        while let Some(done) = self.tasks.join_next().await {
            done.map_err(|e| IngestError::Join(e.to_string()))??;
        }
        Ok(())
    }
}

/// A durable consumer `<name>-<tenant>` of the tenant's change notices.
fn notices_runner(
    base: &ferry_runtime::ServiceBase,
    sink: &Arc<dyn ferry_runtime::ExceptionSink>,
    tenant: &str,
    name: &str,
) -> Runner {
    Runner::builder(
        base,
        sink.clone(),
        SERVICE,
        tenant,
        StreamKind::Centra,
        base.topology.notices_subject(tenant),
    )
    .durable(base.topology.consumer_name(name, tenant))
    .config(base.config.consumer.clone())
    .build()
}

/// Runs ingest until the base's shutdown token is cancelled.
pub async fn run(platform: Platform) -> Result<(), IngestError> {
    Ingest::start(&platform).await?.wait().await
}
