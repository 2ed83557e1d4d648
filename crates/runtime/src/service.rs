//! What a service process starts with: the runtime's settings, telemetry, a NATS connection
//! with the streams provisioned, the ops endpoint, and the stop signal. `boot_with` is the
//! start-up of a service process; `ServiceBase::connect` is the part `ferry up` and tests
//! reuse.

use std::sync::{Arc, RwLock};

use async_nats::jetstream;
use tokio_util::sync::CancellationToken;

use crate::config::RuntimeConfig;
use crate::nats::{self, NatsError, Publisher, Topology};
use crate::ops::{self, NatsReady, ReadinessCheck};
use crate::telemetry::{self, Telemetry, TelemetryError};

#[derive(Debug, thiserror::Error)]
pub enum BootError {
    #[error(transparent)]
    Telemetry(#[from] TelemetryError),
    #[error(transparent)]
    Nats(#[from] NatsError),
    #[error("ops endpoint on {addr}: {source}")]
    Ops {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
}

/// Readiness checks, extendable after start-up (the database joins once connected).
#[derive(Clone, Default)]
pub struct Readiness(Arc<RwLock<Vec<Arc<dyn ReadinessCheck>>>>);

impl Readiness {
    pub fn add(&self, check: Arc<dyn ReadinessCheck>) {
        if let Ok(mut checks) = self.0.write() {
            checks.push(check);
        }
    }

    pub fn checks(&self) -> Vec<Arc<dyn ReadinessCheck>> {
        self.0.read().map(|c| c.clone()).unwrap_or_default()
    }
}

/// The shared starting point of every service.
#[derive(Clone)]
pub struct ServiceBase {
    pub name: &'static str,
    /// The runtime's sections of the configuration.
    pub config: Arc<RuntimeConfig>,
    pub client: async_nats::Client,
    pub js: jetstream::Context,
    pub topology: Topology,
    pub publisher: Publisher,
    pub shutdown: CancellationToken,
    pub readiness: Readiness,
}

impl ServiceBase {
    /// Connects to NATS and provisions the streams (idempotent), or checks they are there
    /// where a job provisions them.
    pub async fn connect(
        name: &'static str,
        config: Arc<RuntimeConfig>,
        shutdown: CancellationToken,
        readiness: Readiness,
    ) -> Result<ServiceBase, NatsError> {
        let client = nats::connect(&config.nats, &format!("ferry-{name}")).await?;
        let js = nats::jetstream(client.clone());
        let topology = Topology::new(&config.nats.prefix);
        if config.nats.provision_on_start {
            nats::provision_streams(&js, &topology, &config.nats).await?;
        } else {
            nats::check_streams(&js, &topology).await?;
        }
        readiness.add(Arc::new(NatsReady(js.clone())));
        Ok(ServiceBase {
            name,
            publisher: Publisher::new(js.clone()),
            config,
            client,
            js,
            topology,
            shutdown,
            readiness,
        })
    }
}

/// A booted service process.
pub struct Booted {
    pub base: ServiceBase,
    pub telemetry: Telemetry,
    pub ops_addr: std::net::SocketAddr,
}

impl Booted {
    /// Flushes telemetry; call after the service returned.
    pub fn finish(self) {
        tracing::info!(service = self.base.name, "stopped");
        self.telemetry.shutdown();
    }
}

/// The start-up of a service process: telemetry, NATS with the streams provisioned, and
/// the ops endpoint; `shutdown` stops it (the binary ties it to the process's signals).
pub async fn boot_with(
    name: &'static str,
    config: Arc<RuntimeConfig>,
    shutdown: CancellationToken,
) -> Result<Booted, BootError> {
    let telemetry = telemetry::init(&config.telemetry, &format!("ferry-{name}"))?;
    let readiness = Readiness::default();
    let base =
        ServiceBase::connect(name, config.clone(), shutdown.clone(), readiness.clone()).await?;
    let ops_addr = ops::serve(config.ops.listen, telemetry.clone(), readiness, shutdown)
        .await
        .map_err(|source| BootError::Ops {
            addr: config.ops.listen,
            source,
        })?;
    tracing::info!(service = name, ops = %ops_addr, "started");
    Ok(Booted {
        base,
        telemetry,
        ops_addr,
    })
}
