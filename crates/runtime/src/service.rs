//! What a service process starts with: configuration, telemetry, a NATS connection with the
//! streams provisioned, the ops endpoint, and the stop signal. `boot` is the whole start-up
//! of a service binary; `ServiceBase::connect` is the part `ferry up` and tests reuse.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use async_nats::jetstream;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, ConfigError};
use crate::nats::{self, NatsError, Publisher, Topology};
use crate::ops::{self, NatsReady, ReadinessCheck};
use crate::telemetry::{self, Telemetry, TelemetryError};

#[derive(Debug, thiserror::Error)]
pub enum BootError {
    #[error(transparent)]
    Config(#[from] ConfigError),
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
    pub config: Arc<Config>,
    pub client: async_nats::Client,
    pub js: jetstream::Context,
    pub topology: Topology,
    pub publisher: Publisher,
    pub shutdown: CancellationToken,
    pub readiness: Readiness,
}

impl ServiceBase {
    /// Connects to NATS and provisions the streams (idempotent).
    pub async fn connect(
        name: &'static str,
        config: Arc<Config>,
        shutdown: CancellationToken,
        readiness: Readiness,
    ) -> Result<ServiceBase, NatsError> {
        let client = nats::connect(&config.nats, &format!("ferry-{name}")).await?;
        let js = nats::jetstream(client.clone());
        let topology = Topology::new(&config.nats.prefix);
        nats::provision_streams(&js, &topology, &config.nats).await?;
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

/// The start-up of a service binary: configuration from `$FERRY_CONFIG` (a TOML file, if
/// set) and `FERRY_*` variables, telemetry, stop signals, NATS, and the ops endpoint.
pub async fn boot(name: &'static str) -> Result<Booted, BootError> {
    let path = std::env::var_os("FERRY_CONFIG").map(PathBuf::from);
    let config = Arc::new(Config::load(path.as_deref())?);
    boot_with(name, config, crate::shutdown::on_signals()).await
}

/// [`boot`] with a given configuration and stop token.
pub async fn boot_with(
    name: &'static str,
    config: Arc<Config>,
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
    tracing::info!(service = name, ops = %ops_addr, tenants = config.tenants.len(), "started");
    Ok(Booted {
        base,
        telemetry,
        ops_addr,
    })
}
