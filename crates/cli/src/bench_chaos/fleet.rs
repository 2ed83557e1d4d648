//! Ferry's services as the chaos run runs them: each replica its own OS process (`ferry
//! run <service>`, as Kubernetes runs a pod), with its own ports, killed with SIGKILL and
//! started again the way a Deployment would.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use tokio::process::{Child, Command};

/// One replica of one service.
pub struct Replica {
    pub service: &'static str,
    pub index: usize,
    config: PathBuf,
    log: PathBuf,
    pub ops_port: u16,
    /// Where ingest replicas receive webhooks.
    pub webhook_port: u16,
    child: Option<Child>,
    /// Times it ended without being killed (a crash).
    pub crashes: usize,
}

/// Every replica of every service.
pub struct Fleet {
    exe: PathBuf,
    pub replicas: Vec<Replica>,
}

impl Fleet {
    /// Writes each replica's configuration (`shared` plus its own listen ports) and starts
    /// them all.
    pub async fn start(
        exe: &Path,
        dir: &Path,
        shared: &str,
        services: &[&'static str],
        replicas: usize,
    ) -> anyhow::Result<Fleet> {
        let mut fleet = Fleet {
            exe: exe.to_owned(),
            replicas: Vec::new(),
        };
        for service in services {
            for index in 0..replicas {
                let port = || ferry_testing::infra::free_port().context("a free port");
                let (ops_port, webhook_port, api, console) = (port()?, port()?, port()?, port()?);
                let config = dir.join(format!("{service}-{index}.toml"));
                std::fs::write(
                    &config,
                    format!(
                        "[ops]\nlisten = \"127.0.0.1:{ops_port}\"\n\
                         [ingest]\nlisten = \"127.0.0.1:{webhook_port}\"\n\
                         [api]\nlisten = \"127.0.0.1:{api}\"\n\
                         [console]\nlisten = \"127.0.0.1:{console}\"\n{shared}"
                    ),
                )
                .with_context(|| format!("writing {}", config.display()))?;
                fleet.replicas.push(Replica {
                    service,
                    index,
                    log: dir.join(format!("{service}-{index}.log")),
                    config,
                    ops_port,
                    webhook_port,
                    child: None,
                    crashes: 0,
                });
            }
        }
        for i in 0..fleet.replicas.len() {
            fleet.spawn(i)?;
        }
        Ok(fleet)
    }

    fn spawn(&mut self, i: usize) -> anyhow::Result<()> {
        let replica = &mut self.replicas[i];
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&replica.log)
            .with_context(|| format!("opening {}", replica.log.display()))?;
        // It dies with the benchmark, even one killed with SIGKILL.
        let child = Command::from(ferry_testing::infra::owned::command(&self.exe, false))
            .args(["run", replica.service, "--config"])
            .arg(&replica.config)
            // Only the file configures it: a FERRY_* variable of the shell running the
            // benchmark must not point a replica elsewhere. (Forked from a tokio worker
            // thread: those live as long as the runtime, so the parent-death signal holds.)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {} {}", replica.service, replica.index))?;
        replica.child = Some(child);
        Ok(())
    }

    /// Replica `i`'s process id, while it runs.
    pub fn pid(&self, i: usize) -> Option<u32> {
        self.replicas[i].child.as_ref().and_then(Child::id)
    }

    /// Waits until every replica's `/readyz` answers 200.
    pub async fn ready(&self, within: Duration) -> anyhow::Result<()> {
        let http = reqwest::Client::new();
        let deadline = Instant::now() + within;
        for r in &self.replicas {
            let url = format!("http://127.0.0.1:{}/readyz", r.ops_port);
            loop {
                let ok = http
                    .get(&url)
                    .timeout(Duration::from_millis(500))
                    .send()
                    .await
                    .is_ok_and(|a| a.status().is_success());
                if ok {
                    break;
                }
                anyhow::ensure!(
                    Instant::now() < deadline,
                    "{} {} not ready within {within:?} (log: {})",
                    r.service,
                    r.index,
                    r.log.display()
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        Ok(())
    }

    /// Kills replica `i` with SIGKILL (no shutdown, in-flight work lost) and starts it
    /// again at once, as a Deployment's controller would.
    pub async fn kill_and_restart(&mut self, i: usize) -> anyhow::Result<()> {
        if let Some(child) = &mut self.replicas[i].child {
            let _ = child.start_kill();
            let _ = child.wait().await;
        }
        self.spawn(i)
    }

    /// Starts again any replica that ended by itself; returns how many had.
    pub fn restart_crashed(&mut self) -> anyhow::Result<usize> {
        let mut crashed = Vec::new();
        for (i, r) in self.replicas.iter_mut().enumerate() {
            if let Some(child) = &mut r.child
                && let Ok(Some(status)) = child.try_wait()
            {
                eprintln!(
                    "chaos: {} {} ended by itself ({status}); see {}",
                    r.service,
                    r.index,
                    r.log.display()
                );
                r.crashes += 1;
                crashed.push(i);
            }
        }
        for &i in &crashed {
            self.spawn(i)?;
        }
        Ok(crashed.len())
    }

    /// The webhook URL of the first ingest replica other than `not` (the one just killed).
    pub fn webhook_url(&self, tenant: &str, not: Option<usize>) -> Option<String> {
        self.replicas
            .iter()
            .enumerate()
            .find(|(i, r)| r.service == ferry_ingest::SERVICE && Some(*i) != not)
            .map(|(_, r)| {
                format!(
                    "http://127.0.0.1:{}/webhooks/centra/{tenant}",
                    r.webhook_port
                )
            })
    }

    /// Stops every replica (SIGKILL: the run is over).
    pub async fn stop(&mut self) {
        for r in &mut self.replicas {
            if let Some(child) = &mut r.child {
                let _ = child.start_kill();
                let _ = child.wait().await;
            }
        }
    }
}
