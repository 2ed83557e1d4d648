//! Starts one of Ferry's services in this process — the same way for `ferry run <service>`
//! (one per pod in production) and for the local stack (all of them in one process) — with
//! what every service process runs beside its own work: the dead-letter recorder.

use std::net::SocketAddr;

use ferry_runtime::ServiceBase;
use ferry_runtime::dead_letters::Recorder;
use ferry_store::Store;
use tokio::task::JoinHandle;

/// Every service, in the order the stack starts them.
pub const ALL: [&str; 5] = [
    ferry_ingest::SERVICE,
    ferry_transform::SERVICE,
    ferry_erp_writer::SERVICE,
    ferry_fulfilment::SERVICE,
    ferry_inventory::SERVICE,
];

/// A started service.
pub struct Running {
    /// Where ingest receives Centra's webhooks (ingest only).
    pub webhook_addr: Option<SocketAddr>,
    /// Ends when the service has stopped (after the base's shutdown).
    pub task: JoinHandle<anyhow::Result<()>>,
}

/// Starts `name`; returns once it listens (ingest) or has started its tasks.
pub async fn start(name: &str, base: ServiceBase, store: Store) -> anyhow::Result<Running> {
    let connectors = crate::connectors::build(&base.config)?;
    let sink = ferry_store::exception_sink(&store, &base);
    let recorder = Recorder::spawn(&base, sink);
    let connectors = || connectors.clone();
    let mut webhook_addr = None;
    let work: JoinHandle<anyhow::Result<()>> = match name {
        ferry_ingest::SERVICE => {
            let ingest = ferry_ingest::Ingest::start(base.clone(), store).await?;
            webhook_addr = Some(ingest.webhook_addr);
            tokio::spawn(async move { Ok(ingest.wait().await?) })
        }
        ferry_transform::SERVICE => {
            let base = base.clone();
            tokio::spawn(async move { Ok(ferry_transform::run(base, store).await?) })
        }
        ferry_erp_writer::SERVICE => {
            let (base, connectors) = (base.clone(), connectors());
            tokio::spawn(async move { Ok(ferry_erp_writer::run(base, store, connectors).await?) })
        }
        ferry_fulfilment::SERVICE => {
            let (base, connectors) = (base.clone(), connectors());
            tokio::spawn(async move { Ok(ferry_fulfilment::run(base, store, connectors).await?) })
        }
        ferry_inventory::SERVICE => {
            let (base, connectors) = (base.clone(), connectors());
            tokio::spawn(async move { Ok(ferry_inventory::run(base, store, connectors).await?) })
        }
        other => anyhow::bail!("unknown service {other}"),
    };
    let task = tokio::spawn(async move {
        let result = match work.await {
            Ok(result) => result,
            Err(e) => Err(anyhow::anyhow!("the service task failed: {e}")),
        };
        // The recorder stops with the service (same shutdown token).
        if let Ok(Err(e)) = recorder.await {
            tracing::warn!(error = %e, "the dead-letter recorder stopped with an error");
        }
        result
    });
    Ok(Running { webhook_addr, task })
}
