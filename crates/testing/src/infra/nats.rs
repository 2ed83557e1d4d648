use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{InfraError, find_nats_server, free_port, io, owned, wait_for_port};

/// A nats-server with JetStream on loopback.
#[derive(Debug)]
pub struct NatsProcess {
    pub url: String,
    pub port: u16,
    pub monitor_port: u16,
    pub store_dir: PathBuf,
    pub child: Option<Child>,
    pub pid: u32,
    dir: PathBuf,
    options: NatsOptions,
}

/// How a nats-server is started.
#[derive(Debug, Clone, Copy, Default)]
pub struct NatsOptions {
    /// Outlives this process (the shared test infrastructure); otherwise it dies with it.
    pub detach: bool,
    /// `(client, monitoring)` ports: a restart keeps its clients' URL. Free ones if unset.
    pub ports: Option<(u16, u16)>,
    /// JetStream's `sync_interval: always`: every acknowledged write is on disk (as
    /// production runs it; Jepsen lost acknowledged writes with the default interval).
    pub sync_always: bool,
    /// JetStream's file store limit in GB (20 when unset): the sum of the streams' byte
    /// limits must fit in it.
    pub max_file_store_gb: Option<u32>,
}

/// Starts nats-server with JetStream storing in `dir`. `detach` lets it outlive this
/// process (the shared test infrastructure); otherwise it dies with this process, or
/// with [`NatsProcess::stop`].
pub fn start_nats(dir: &Path, detach: bool) -> Result<NatsProcess, InfraError> {
    start_nats_with(
        dir,
        NatsOptions {
            detach,
            ..NatsOptions::default()
        },
    )
}

/// Starts nats-server as `options` say.
pub fn start_nats_with(dir: &Path, options: NatsOptions) -> Result<NatsProcess, InfraError> {
    let binary = find_nats_server()?;
    std::fs::create_dir_all(dir).map_err(io(format!("creating {}", dir.display())))?;
    let store_dir = dir.join("jetstream");
    let mut last = None;
    for _ in 0..5 {
        let (port, monitor_port) = match options.ports {
            Some(ports) => ports,
            None => (free_port()?, free_port()?),
        };
        let config = dir.join("nats.conf");
        let sync = if options.sync_always {
            "  sync_interval: always\n"
        } else {
            ""
        };
        let store_gb = options.max_file_store_gb.unwrap_or(20);
        std::fs::write(
            &config,
            format!(
                "listen: \"127.0.0.1:{port}\"\nhttp: \"127.0.0.1:{monitor_port}\"\nmax_payload: 8MB\n\
                 jetstream {{\n  store_dir: \"{}\"\n  max_file_store: {store_gb}GB\n  max_memory_store: 1GB\n{sync}}}\n",
                store_dir.display()
            ),
        )
        .map_err(io("writing nats.conf"))?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("nats.log"))
            .map_err(io("opening nats.log"))?;
        let mut command = if options.detach {
            use std::os::unix::process::CommandExt;
            let mut c = Command::new(&binary);
            c.process_group(0);
            c
        } else {
            owned::command(&binary, false)
        };
        command
            .arg("-c")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        let mut child = if options.detach {
            command.spawn()
        } else {
            owned::spawn(command)
        }
        .map_err(io(format!("starting {}", binary.display())))?;
        // A restart on the same ports may find the old socket lingering a moment.
        let wait = if options.ports.is_some() { 30 } else { 10 };
        match wait_for_port(port, "nats-server", Duration::from_secs(wait)) {
            Ok(()) => {
                let pid = child.id();
                return Ok(NatsProcess {
                    url: format!("nats://127.0.0.1:{port}"),
                    port,
                    monitor_port,
                    store_dir,
                    child: (!options.detach).then_some(child),
                    pid,
                    dir: dir.to_owned(),
                    options,
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

    /// How it ended, if it has (only for one this process started and owns).
    pub fn exited(&mut self) -> Option<String> {
        let child = self.child.as_mut()?;
        match child.try_wait() {
            Ok(Some(status)) => Some(status.to_string()),
            Ok(None) => None,
            Err(e) => Some(e.to_string()),
        }
    }

    /// Starts it again on the same ports and store (after it died, or was killed).
    pub fn restart(&mut self) -> Result<(), InfraError> {
        self.stop();
        let again = start_nats_with(
            &self.dir,
            NatsOptions {
                ports: Some((self.port, self.monitor_port)),
                ..self.options
            },
        )?;
        *self = again;
        Ok(())
    }
}
