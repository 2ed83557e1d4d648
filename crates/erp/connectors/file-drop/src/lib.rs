//! ERP connector for the small ERPs and 3PLs that exchange files instead of offering an
//! API. One directory per brand:
//!
//! ```text
//! <directory>/orders/<order number>.json          written by Ferry, one per sales order
//! <directory>/orders/processed/<…>.json           moved there by the ERP once imported
//! <directory>/orders/rejected/<…>.json            moved there by the ERP if it refused it
//! <directory>/shipments/<name>.json               dropped by the warehouse, one per parcel
//! <directory>/stock/<name>.csv                    dropped by the ERP: its whole stock
//! ```
//!
//! Files are written under a temporary name and renamed (Ferry does, and expects the other
//! side to): a file with its final name is complete. Shipment files are read in the order of
//! their names (name them by time, e.g. `20261206T101500-SH1234.json`); the newest stock
//! file by name is the stock. The formats are in `docs/connectors.md`.

mod orders;
mod shipments;
mod stock;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use ferry_erp::{BuildContext, Connector, Erp, ErpError, Kind, Settings};

/// `[erp] kind = "file-drop"`.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileDropSettings {
    /// The brand's exchange directory (created with its sub-directories if missing).
    pub directory: PathBuf,
}

/// The connector kind, for the binary's registry.
pub fn kind() -> Kind {
    Kind {
        name: "file-drop",
        build,
    }
}

fn build(settings: &Settings, _: &BuildContext) -> Result<Connector, String> {
    let s: FileDropSettings = ferry_erp::registry::settings(settings)?;
    let drop = Arc::new(FileDrop::new(s.directory));
    // The exchange has no customer register: parties are the ERP's business when it imports.
    Ok(Connector::new("file-drop", drop.clone())
        .orders(drop.clone())
        .shipments(drop.clone())
        .stock(drop))
}

/// A brand's exchange directory.
pub struct FileDrop {
    root: PathBuf,
}

impl FileDrop {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        FileDrop { root: root.into() }
    }

    pub fn orders_dir(&self) -> PathBuf {
        self.root.join("orders")
    }

    pub fn shipments_dir(&self) -> PathBuf {
        self.root.join("shipments")
    }

    pub fn stock_dir(&self) -> PathBuf {
        self.root.join("stock")
    }

    async fn ensure_dirs(&self) -> Result<(), ErpError> {
        for dir in [
            self.orders_dir(),
            self.orders_dir().join("processed"),
            self.orders_dir().join("rejected"),
            self.shipments_dir(),
            self.stock_dir(),
        ] {
            tokio::fs::create_dir_all(&dir)
                .await
                .map_err(|e| io_error(&dir, &e))?;
        }
        Ok(())
    }
}

#[async_trait]
impl Erp for FileDrop {
    fn name(&self) -> &'static str {
        "file-drop"
    }

    /// The directory is there (or can be made) and takes a file.
    async fn health(&self) -> Result<(), ErpError> {
        self.ensure_dirs().await?;
        let probe = self.root.join(".ferry-health");
        tokio::fs::write(&probe, b"ok")
            .await
            .map_err(|e| io_error(&probe, &e))?;
        let _ = tokio::fs::remove_file(&probe).await;
        Ok(())
    }
}

/// A file system failure: a missing mount or a full disk passes (retried); permissions are
/// a set-up problem.
fn io_error(path: &Path, e: &std::io::Error) -> ErpError {
    let said = format!("{}: {e}", path.display());
    match e.kind() {
        std::io::ErrorKind::PermissionDenied => ErpError::Misconfigured(said),
        _ => ErpError::Unavailable {
            reason: said,
            retry_after: None,
        },
    }
}

/// The names of the files in `dir` ending in `extension`, sorted; hidden and temporary
/// files (starting with `.`) are not yet complete and are left alone.
async fn files(dir: &Path, extension: &str) -> Result<Vec<String>, ErpError> {
    let mut entries = match tokio::fs::read_dir(dir).await {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_error(dir, &e)),
    };
    let mut names = Vec::new();
    while let Some(entry) = entries.next_entry().await.map_err(|e| io_error(dir, &e))? {
        let is_file = entry
            .file_type()
            .await
            .map(|t| t.is_file())
            .unwrap_or(false);
        let name = entry.file_name().to_string_lossy().into_owned();
        if is_file && !name.starts_with('.') && name.ends_with(extension) {
            names.push(name);
        }
    }
    names.sort();
    Ok(names)
}

/// Writes `bytes` to `path` so that a reader sees the whole file or none: a temporary name
/// beside it, flushed to disk, then renamed, and the directory flushed.
async fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), ErpError> {
    use tokio::io::AsyncWriteExt;
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temporary = dir.join(format!(".{name}.tmp"));
    let mut file = tokio::fs::File::create(&temporary)
        .await
        .map_err(|e| io_error(&temporary, &e))?;
    file.write_all(bytes)
        .await
        .map_err(|e| io_error(&temporary, &e))?;
    file.sync_all()
        .await
        .map_err(|e| io_error(&temporary, &e))?;
    tokio::fs::rename(&temporary, path)
        .await
        .map_err(|e| io_error(path, &e))?;
    if let Ok(d) = tokio::fs::File::open(dir).await {
        let _ = d.sync_all().await;
    }
    Ok(())
}
