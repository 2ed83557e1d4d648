//! Starting the real infrastructure on a developer machine: a pinned `nats-server` with
//! JetStream and a throw-away PostgreSQL cluster, each on a free loopback port with a
//! private data directory. Used by the test harness and by `ferry up`.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum InfraError {
    #[error(
        "nats-server not found: run `scripts/setup.sh` (installs nats-server {NATS_VERSION} into .tools/) or set FERRY_NATS_SERVER"
    )]
    NatsMissing,
    #[error(
        "PostgreSQL binaries (initdb, pg_ctl) not found: run `scripts/setup.sh` or set FERRY_PG_BIN"
    )]
    PostgresMissing,
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error("{what} failed: {detail}")]
    Command { what: String, detail: String },
    #[error("{0} did not come up in time")]
    Timeout(String),
}

/// The nats-server version the project pins (see ADR 0002).
pub const NATS_VERSION: &str = "2.15.1";

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> InfraError {
    let what = what.into();
    move |source| InfraError::Io { what, source }
}

/// The workspace root (where `.tools/` lives).
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap_or_else(|_| PathBuf::from("."))
}

/// A free TCP port on 127.0.0.1 (bound, then released for the caller).
pub fn free_port() -> Result<u16, InfraError> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(io("finding a free port"))?;
    Ok(listener
        .local_addr()
        .map_err(io("finding a free port"))?
        .port())
}

fn wait_for_port(port: u16, what: &str, timeout: Duration) -> Result<(), InfraError> {
    let deadline = Instant::now() + timeout;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    while Instant::now() < deadline {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    Err(InfraError::Timeout(what.to_owned()))
}

/// Whether something answers on a loopback port.
pub fn port_open(port: u16) -> bool {
    TcpStream::connect_timeout(
        &SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_millis(200),
    )
    .is_ok()
}

fn executable(p: &Path) -> bool {
    p.is_file()
}

/// Finds nats-server: `$FERRY_NATS_SERVER`, then `.tools/venv/bin/nats-server`, then PATH.
pub fn find_nats_server() -> Result<PathBuf, InfraError> {
    if let Some(p) = std::env::var_os("FERRY_NATS_SERVER").map(PathBuf::from) {
        return if executable(&p) {
            Ok(p)
        } else {
            Err(InfraError::NatsMissing)
        };
    }
    let local = workspace_root().join(".tools/venv/bin/nats-server");
    if executable(&local) {
        return Ok(local);
    }
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join("nats-server"))
        .find(|p| executable(p) && !p.starts_with("/usr/sbin"))
        .ok_or(InfraError::NatsMissing)
}

/// Finds PostgreSQL's server binaries: `$FERRY_PG_BIN`, then Debian's
/// `/usr/lib/postgresql/<newest>/bin`.
pub fn find_pg_bin() -> Result<PathBuf, InfraError> {
    if let Some(p) = std::env::var_os("FERRY_PG_BIN").map(PathBuf::from) {
        return if p.join("pg_ctl").is_file() {
            Ok(p)
        } else {
            Err(InfraError::PostgresMissing)
        };
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .filter_map(|e| {
            let v: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("pg_ctl").is_file().then_some((v, bin))
        })
        .collect();
    versions.sort();
    versions
        .pop()
        .map(|(_, p)| p)
        .ok_or(InfraError::PostgresMissing)
}

/// Whether this process runs as root (read from /proc, so no unsafe FFI is needed).
pub(crate) fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

mod nats;
pub mod owned;
mod postgres;

pub use nats::{NatsOptions, NatsProcess, start_nats, start_nats_with};
pub use postgres::{
    PostgresOptions, PostgresProcess, start_postgres, start_postgres_on, start_postgres_with,
};
