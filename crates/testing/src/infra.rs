//! Starting the real infrastructure on a developer machine: a pinned `nats-server` with
//! JetStream and a throw-away PostgreSQL cluster, each on a free loopback port with a
//! private data directory. Used by the test harness and by `ferry up`.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
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

/// A nats-server with JetStream on loopback.
#[derive(Debug)]
pub struct NatsProcess {
    pub url: String,
    pub port: u16,
    pub monitor_port: u16,
    pub store_dir: PathBuf,
    pub child: Option<Child>,
    pub pid: u32,
}

/// Starts nats-server with JetStream storing in `dir`. `detach` lets it outlive this
/// process (the shared test infrastructure); otherwise [`NatsProcess::stop`] ends it.
pub fn start_nats(dir: &Path, detach: bool) -> Result<NatsProcess, InfraError> {
    let binary = find_nats_server()?;
    std::fs::create_dir_all(dir).map_err(io(format!("creating {}", dir.display())))?;
    let store_dir = dir.join("jetstream");
    let mut last = None;
    for _ in 0..5 {
        let port = free_port()?;
        let monitor_port = free_port()?;
        let config = dir.join("nats.conf");
        std::fs::write(
            &config,
            format!(
                "listen: \"127.0.0.1:{port}\"\nhttp: \"127.0.0.1:{monitor_port}\"\nmax_payload: 8MB\n\
                 jetstream {{\n  store_dir: \"{}\"\n  max_file_store: 20GB\n  max_memory_store: 1GB\n}}\n",
                store_dir.display()
            ),
        )
        .map_err(io("writing nats.conf"))?;
        let log = std::fs::File::create(dir.join("nats.log")).map_err(io("creating nats.log"))?;
        let mut command = Command::new(&binary);
        command
            .arg("-c")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        if detach {
            use std::os::unix::process::CommandExt;
            command.process_group(0);
        }
        let mut child = command
            .spawn()
            .map_err(io(format!("starting {}", binary.display())))?;
        match wait_for_port(port, "nats-server", Duration::from_secs(10)) {
            Ok(()) => {
                let pid = child.id();
                return Ok(NatsProcess {
                    url: format!("nats://127.0.0.1:{port}"),
                    port,
                    monitor_port,
                    store_dir,
                    child: (!detach).then_some(child),
                    pid,
                });
            }
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                last = Some(e);
            }
        }
    }
    Err(last.unwrap_or_else(|| InfraError::Timeout("nats-server".into())))
}

impl NatsProcess {
    pub fn stop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A private PostgreSQL cluster on loopback.
#[derive(Debug, Clone)]
pub struct PostgresProcess {
    pub url: String,
    pub port: u16,
    pub data_dir: PathBuf,
    pub bin: PathBuf,
}

/// Whether this process runs as root (read from /proc, so no unsafe FFI is needed).
fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

/// Runs a PostgreSQL tool, as the `postgres` user when we are root (PostgreSQL refuses root).
fn pg_command(bin: &Path, tool: &str) -> Command {
    if running_as_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(bin.join(tool));
        c
    } else {
        Command::new(bin.join(tool))
    }
}

fn run(mut command: Command, what: &str) -> Result<(), InfraError> {
    let output = command.output().map_err(io(what))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(InfraError::Command {
            what: what.to_owned(),
            detail: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        })
    }
}

/// Initialises (if needed) and starts a throw-away cluster in `dir/data` with durability
/// off (test data only) and trust auth on loopback. `detach` keeps it running after this
/// process exits.
pub fn start_postgres(dir: &Path, detach: bool) -> Result<PostgresProcess, InfraError> {
    start_postgres_on(dir, detach, None)
}

/// [`start_postgres`] on a given port (a restart keeps its clients' URLs), or a free one.
pub fn start_postgres_on(
    dir: &Path,
    detach: bool,
    port: Option<u16>,
) -> Result<PostgresProcess, InfraError> {
    let bin = find_pg_bin()?;
    std::fs::create_dir_all(dir).map_err(io(format!("creating {}", dir.display())))?;
    let data_dir = dir.join("data");
    if running_as_root() {
        run(
            {
                let mut c = Command::new("chown");
                c.arg("postgres:postgres").arg(dir);
                c
            },
            "chown the PostgreSQL directory",
        )?;
    }
    if !data_dir.join("PG_VERSION").is_file() {
        let mut initdb = pg_command(&bin, "initdb");
        initdb.arg("-D").arg(&data_dir).args([
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--locale=C.UTF-8",
            "--no-sync",
        ]);
        run(initdb, "initdb")?;
    }
    let mut last = None;
    for _ in 0..5 {
        let port = match port {
            Some(port) => port,
            None => free_port()?,
        };
        let mut pg_ctl = pg_command(&bin, "pg_ctl");
        pg_ctl
            .arg("-D")
            .arg(&data_dir)
            .arg("-l")
            .arg(dir.join("postgres.log"))
            .args(["-w", "-t", "60", "-o"])
            .arg(format!(
                "-c listen_addresses=127.0.0.1 -p {port} -k {} -c fsync=off -c synchronous_commit=off \
                 -c full_page_writes=off -c max_connections=400 -c shared_buffers=256MB -c shared_preload_libraries=pg_stat_statements",
                dir.display()
            ))
            .arg("start");
        if detach {
            use std::os::unix::process::CommandExt;
            pg_ctl.process_group(0);
        }
        match run(pg_ctl, "pg_ctl start") {
            Ok(()) => {
                return Ok(PostgresProcess {
                    url: format!("postgres://postgres@127.0.0.1:{port}/postgres"),
                    port,
                    data_dir,
                    bin,
                });
            }
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| InfraError::Timeout("postgres".into())))
}

impl PostgresProcess {
    /// The URL of another database in the same cluster.
    pub fn database_url(&self, name: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }

    pub fn stop(&self) {
        let mut pg_ctl = pg_command(&self.bin, "pg_ctl");
        pg_ctl
            .arg("-D")
            .arg(&self.data_dir)
            .args(["-m", "fast", "-w", "stop"]);
        let _ = run(pg_ctl, "pg_ctl stop");
    }
}
