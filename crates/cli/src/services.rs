//! Starts one of Ferry's services in this process on its platform (NATS, the store, the
//! exception sink, the feed runner, the dead-letter recorder) — the same way for
//! `ferry run <service>` (one per pod in production) and for the local stack (all of them
//! in one process).

use std::net::SocketAddr;

use ferry_platform::Platform;
use tokio::task::JoinHandle;

/// Every service, in the order the stack starts them.
pub const ALL: [&str; 7] = [
    ferry_ingest::SERVICE,
    ferry_transform::SERVICE,
    ferry_erp_writer::SERVICE,
    ferry_fulfilment::SERVICE,
    ferry_inventory::SERVICE,
    ferry_reconciler::SERVICE,
    ferry_ops::SERVICE,
];

/// A started service.
pub struct Running {
    /// Where ingest receives Centra's webhooks (ingest only).
    pub webhook_addr: Option<SocketAddr>,
    /// Where the operations API listens (ops only).
    pub api_addr: Option<SocketAddr>,
    /// Where the web console listens (ops only).
    pub console_addr: Option<SocketAddr>,
    /// Ends when the service has stopped (after the base's shutdown).
    pub task: JoinHandle<anyhow::Result<()>>,
}

/// Starts `name`; returns once it listens (ingest) or has started its tasks.
pub async fn start(name: &str, platform: Platform) -> anyhow::Result<Running> {
    let connectors = crate::connectors::build(&platform.config)?;
    let mut webhook_addr = None;
    let mut api_addr = None;
    let mut console_addr = None;
    let task: JoinHandle<anyhow::Result<()>> = match name {
        ferry_ingest::SERVICE => {
            let ingest = ferry_ingest::Ingest::start(&platform).await?;
            webhook_addr = Some(ingest.webhook_addr);
            tokio::spawn(async move { Ok(ingest.wait().await?) })
        }
        ferry_transform::SERVICE => {
            tokio::spawn(async move { Ok(ferry_transform::run(platform).await?) })
        }
        ferry_erp_writer::SERVICE => {
            tokio::spawn(async move { Ok(ferry_erp_writer::run(platform, connectors).await?) })
        }
        ferry_fulfilment::SERVICE => {
            tokio::spawn(async move { Ok(ferry_fulfilment::run(platform, connectors).await?) })
        }
        ferry_inventory::SERVICE => {
            tokio::spawn(async move { Ok(ferry_inventory::run(platform, connectors).await?) })
        }
        ferry_reconciler::SERVICE => {
            tokio::spawn(async move { Ok(ferry_reconciler::run(platform, connectors).await?) })
        }
        ferry_ops::SERVICE => {
            let ops = ferry_ops::Ops::start(&platform).await?;
            api_addr = Some(ops.addr);
            console_addr = Some(ops.console_addr);
            tokio::spawn(async move { Ok(ops.wait().await?) })
        }
        other => anyhow::bail!("unknown service {other}"),
    };
    Ok(Running {
        webhook_addr,
        api_addr,
        console_addr,
        task,
    })
}
