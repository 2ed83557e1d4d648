//! The operations API: a tonic gRPC service through which people — with the CLI or the
//! console — work Ferry's exceptions and follow its orders, each call checked against the
//! caller's token (role and tenants) on the server. `grpc.health.v1` and server reflection
//! are served beside it.

pub mod access;
pub mod bulk;
pub mod console;
pub mod convert;
pub mod filter;
pub mod mappings;
pub mod notify;
pub mod orders;
pub mod replay;
pub mod server;
pub mod streams;
pub mod tokens;
pub mod upkeep;

use std::net::SocketAddr;

use std::sync::Arc;

use ferry_platform::Platform;
use ferry_proto::ops::v1::exception_service_server::ExceptionServiceServer;
use ferry_proto::ops::v1::mapping_service_server::MappingServiceServer;
use ferry_proto::ops::v1::operation_service_server::OperationServiceServer;
use ferry_proto::ops::v1::order_service_server::OrderServiceServer;
use ferry_runtime::FeedSpec;
use tokio::task::JoinHandle;

pub use server::OpsApi;

pub const SERVICE: &str = "ops";
/// The feed that settles retries and counts overdue exceptions, per tenant.
pub const UPKEEP_FEED: &str = "exceptions-upkeep";
const UPKEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(5);
/// How often the streams' usage is read.
const STREAMS_EVERY: std::time::Duration = std::time::Duration::from_secs(15);
/// gRPC connection upkeep: a ping every 20 s, answered within 10 s, and a connection
/// closed (gracefully, then after 30 s for good) once 30 minutes old.
const GRPC_KEEPALIVE: std::time::Duration = std::time::Duration::from_secs(20);
const GRPC_KEEPALIVE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
const GRPC_CONNECTION_AGE: std::time::Duration = std::time::Duration::from_secs(30 * 60);
const GRPC_CONNECTION_AGE_GRACE: std::time::Duration = std::time::Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    #[error("the operations API (or its console) cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("server reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    #[error("the operations API stopped: {0}")]
    Serve(#[from] tonic::transport::Error),
}

/// The API, listening.
pub struct Ops {
    pub addr: SocketAddr,
    /// Where the web console listens.
    pub console_addr: SocketAddr,
    task: JoinHandle<Result<(), OpsError>>,
    /// The notice consumers (one per tenant with notification channels).
    notices: tokio::task::JoinSet<()>,
}

impl Ops {
    /// Binds `[api] listen` and serves until the platform's shutdown.
    pub async fn start(platform: &Platform) -> Result<Ops, OpsError> {
        let want = platform.config.api.listen;
        let listener = tokio::net::TcpListener::bind(want)
            .await
            .map_err(|source| OpsError::Listen { addr: want, source })?;
        let addr = listener
            .local_addr()
            .map_err(|source| OpsError::Listen { addr: want, source })?;
        let (health, health_service) = tonic_health::server::health_reporter();
        health.set_serving::<ExceptionServiceServer<OpsApi>>().await;
        health.set_serving::<OrderServiceServer<OpsApi>>().await;
        health.set_serving::<MappingServiceServer<OpsApi>>().await;
        health.set_serving::<OperationServiceServer<OpsApi>>().await;
        let reflection = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(ferry_proto::FILE_DESCRIPTOR_SET)
            .build_v1()?;
        let ops = OpsApi::new(
            platform.store.clone(),
            platform.base.publisher.clone(),
            platform.base.topology.clone(),
            &platform.config.tenants,
        );
        let api = ExceptionServiceServer::new(ops.clone());
        let orders = OrderServiceServer::new(ops.clone());
        let mappings = MappingServiceServer::new(ops.clone());
        let operations = OperationServiceServer::new(ops.clone());
        // A re-driven message has gone through once the consumer runner would have given
        // up on it.
        let consumer = &platform.config.consumer;
        let quiet = consumer.ack_wait * u32::try_from(consumer.max_deliver.max(1)).unwrap_or(1);
        let mut notices = tokio::task::JoinSet::new();
        platform.feeds.spawn(
            FeedSpec::periodic(
                SERVICE,
                "_deployment",
                streams::STREAMS_FEED,
                STREAMS_EVERY,
                true,
            )
            .quiet(),
            Arc::new(streams::StreamUsage {
                js: platform.base.js.clone(),
                topology: platform.base.topology.clone(),
            }),
            platform.base.shutdown.clone(),
        );
        for tenant in &platform.config.tenants {
            let escalates = tenant
                .notifications
                .channels
                .iter()
                .any(|c| c.events.contains(&ferry_config::NoticeEvent::Overdue));
            platform.feeds.spawn(
                FeedSpec::periodic(SERVICE, &tenant.id, UPKEEP_FEED, UPKEEP_EVERY, true),
                Arc::new(upkeep::Upkeep::new(
                    &tenant.id,
                    ops.clone(),
                    quiet,
                    escalates,
                )),
                platform.base.shutdown.clone(),
            );
            notify::start(platform, tenant, &mut notices);
        }
        let console_addr = console::start(
            ops.clone(),
            &platform.config,
            platform.base.publisher.context().clone(),
            platform.base.topology.clone(),
            platform.base.shutdown.clone(),
        )
        .await
        .map_err(|source| OpsError::Listen {
            addr: platform.config.console.listen,
            source,
        })?;
        let shutdown = platform.base.shutdown.clone();
        tracing::info!(%addr, "operations API listening");
        let deadlines = ferry_runtime::http::Deadlines::default();
        let incoming = ferry_runtime::http::http2_incoming(
            "operations API",
            listener,
            deadlines.header_read,
            shutdown.clone(),
        );
        let task = tokio::spawn(async move {
            tonic::transport::Server::builder()
                // Past the handshake (which `http2_incoming` bounds): a call answers within
                // its deadline, a peer that stops answering pings is dropped, and no
                // connection, idle or busy, outlives its age (clients reconnect at once).
                .timeout(deadlines.request)
                .http2_keepalive_interval(Some(GRPC_KEEPALIVE))
                .http2_keepalive_timeout(Some(GRPC_KEEPALIVE_TIMEOUT))
                .max_connection_age(GRPC_CONNECTION_AGE)
                .max_connection_age_grace(GRPC_CONNECTION_AGE_GRACE)
                .add_service(health_service)
                .add_service(reflection)
                .add_service(api)
                .add_service(orders)
                .add_service(mappings)
                .add_service(operations)
                .serve_with_incoming_shutdown(incoming, shutdown.cancelled_owned())
                .await?;
            Ok(())
        });
        Ok(Ops {
            addr,
            console_addr,
            task,
            notices,
        })
    }

    /// Ends when the server has stopped.
    pub async fn wait(mut self) -> Result<(), OpsError> {
        while self.notices.join_next().await.is_some() {}
        match self.task.await {
            Ok(result) => result,
            Err(e) => {
                tracing::error!(error = %e, "the operations API task failed");
                Ok(())
            }
        }
    }
}
