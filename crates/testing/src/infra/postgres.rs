use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{InfraError, find_pg_bin, free_port, io, owned, running_as_root};

/// A private PostgreSQL cluster on loopback.
#[derive(Debug, Clone)]
pub struct PostgresProcess {
    pub url: String,
    pub port: u16,
    pub data_dir: PathBuf,
    pub bin: PathBuf,
    /// The postmaster, where this process owns it (it dies with this process).
    child: Option<Arc<Mutex<Child>>>,
    dir: PathBuf,
    options: PostgresOptions,
}

/// How a PostgreSQL cluster is started.
#[derive(Debug, Clone, Copy, Default)]
pub struct PostgresOptions {
    /// Outlives this process (the shared test infrastructure, started by `pg_ctl`);
    /// otherwise the postmaster is this process's child and dies with it.
    pub detach: bool,
    /// A fixed port (a restart keeps its clients' URLs), or a free one.
    pub port: Option<u16>,
    /// Production durability: fsync, synchronous commit and full page writes on. Off by
    /// default (test data, throw-away clusters).
    pub durable: bool,
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
    start_postgres_with(
        dir,
        PostgresOptions {
            detach,
            ..PostgresOptions::default()
        },
    )
}

/// [`start_postgres`] on a given port (a restart keeps its clients' URLs), or a free one.
pub fn start_postgres_on(
    dir: &Path,
    detach: bool,
    port: Option<u16>,
) -> Result<PostgresProcess, InfraError> {
    start_postgres_with(
        dir,
        PostgresOptions {
            detach,
            port,
            ..PostgresOptions::default()
        },
    )
}

/// Starts PostgreSQL as `options` say.
pub fn start_postgres_with(
    dir: &Path,
    options: PostgresOptions,
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
    // A restart after a crash may find the old postmaster's backends still attached to its
    // shared memory for a moment ("pre-existing shared memory block is still in use"):
    // on a fixed port, keep trying for a while.
    let attempts = if options.port.is_some() { 60 } else { 5 };
    for attempt in 0..attempts {
        if attempt > 0 && options.port.is_some() {
            std::thread::sleep(Duration::from_millis(250));
        }
        let port = match options.port {
            Some(port) => port,
            None => free_port()?,
        };
        let settings = settings(port, dir, options.durable);
        let started = if options.detach {
            start_detached(&bin, &data_dir, dir, &settings)
        } else {
            start_owned(&bin, &data_dir, dir, &settings, port)
        };
        match started {
            Ok(child) => {
                return Ok(PostgresProcess {
                    url: format!("postgres://postgres@127.0.0.1:{port}/postgres"),
                    port,
                    data_dir,
                    bin,
                    child: child.map(|c| Arc::new(Mutex::new(c))),
                    dir: dir.to_owned(),
                    options,
                });
            }
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| InfraError::Timeout("postgres".into())))
}

/// The server's settings, as `-c` options.
fn settings(port: u16, dir: &Path, durable: bool) -> Vec<String> {
    let mut settings = vec![
        "listen_addresses=127.0.0.1".to_owned(),
        format!("port={port}"),
        format!("unix_socket_directories={}", dir.display()),
        "max_connections=400".to_owned(),
        "shared_buffers=256MB".to_owned(),
        "shared_preload_libraries=pg_stat_statements".to_owned(),
    ];
    if !durable {
        settings.extend(
            [
                "fsync=off",
                "synchronous_commit=off",
                "full_page_writes=off",
            ]
            .map(str::to_owned),
        );
    }
    settings
}

/// `pg_ctl start` in its own process group: the cluster outlives this process.
fn start_detached(
    bin: &Path,
    data_dir: &Path,
    dir: &Path,
    settings: &[String],
) -> Result<Option<Child>, InfraError> {
    use std::os::unix::process::CommandExt;
    let mut pg_ctl = pg_command(bin, "pg_ctl");
    pg_ctl
        .arg("-D")
        .arg(data_dir)
        .arg("-l")
        .arg(dir.join("postgres.log"))
        .args(["-w", "-t", "60", "-o"])
        .arg(
            settings
                .iter()
                .map(|s| format!("-c {s}"))
                .collect::<Vec<_>>()
                .join(" "),
        )
        .arg("start")
        .process_group(0);
    run(pg_ctl, "pg_ctl start").map(|()| None)
}

/// The postmaster as this process's child (it dies with us), ready once `pg_isready`
/// says so (after a crash it first replays its WAL).
fn start_owned(
    bin: &Path,
    data_dir: &Path,
    dir: &Path,
    settings: &[String],
    port: u16,
) -> Result<Option<Child>, InfraError> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("postgres.log"))
        .map_err(io("opening postgres.log"))?;
    let mut command = owned::command(&bin.join("postgres"), true);
    command.arg("-D").arg(data_dir);
    for s in settings {
        command.arg("-c").arg(s);
    }
    command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log);
    let mut child = owned::spawn(command).map_err(io("starting postgres"))?;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(InfraError::Command {
                what: "postgres".into(),
                detail: format!(
                    "exited at start ({status}); see {}/postgres.log",
                    dir.display()
                ),
            });
        }
        let ready = Command::new(bin.join("pg_isready"))
            .args(["-q", "-h", "127.0.0.1", "-p", &port.to_string()])
            .status()
            .is_ok_and(|s| s.success());
        if ready {
            return Ok(Some(child));
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(InfraError::Timeout("postgres".into()));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

impl PostgresProcess {
    /// The URL of another database in the same cluster.
    pub fn database_url(&self, name: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }

    /// A fast shutdown (open transactions rolled back, then a checkpoint).
    pub fn stop(&self) {
        let mut pg_ctl = pg_command(&self.bin, "pg_ctl");
        pg_ctl
            .arg("-D")
            .arg(&self.data_dir)
            .args(["-m", "fast", "-w", "stop"]);
        let _ = run(pg_ctl, "pg_ctl stop");
        if let Some(child) = &self.child {
            let _ = child.lock().unwrap_or_else(|e| e.into_inner()).wait();
        }
    }

    /// The postmaster's process id, where this process owns it.
    pub fn pid(&self) -> Option<u32> {
        self.child
            .as_ref()
            .map(|c| c.lock().unwrap_or_else(|e| e.into_inner()).id())
    }

    /// How it ended, if it has (only for one this process owns).
    pub fn exited(&self) -> Option<String> {
        let child = self.child.as_ref()?;
        match child.lock().unwrap_or_else(|e| e.into_inner()).try_wait() {
            Ok(Some(status)) => Some(status.to_string()),
            Ok(None) => None,
            Err(e) => Some(e.to_string()),
        }
    }

    /// Starts it again on the same port and data (after a stop, a crash or a kill).
    pub fn restart(&mut self) -> Result<(), InfraError> {
        if self.exited().is_none() {
            self.stop();
        }
        let again = start_postgres_with(
            &self.dir,
            PostgresOptions {
                port: Some(self.port),
                ..self.options
            },
        )?;
        *self = again;
        Ok(())
    }
}
