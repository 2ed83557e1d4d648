//! The test harness: one real nats-server and one real PostgreSQL per test run (shared by
//! every test process through a lock file, or given by `FERRY_TEST_NATS_URL` and
//! `FERRY_TEST_PG_URL`), and per test its own subject prefix, streams and database.

// The harness finds the machine's test infrastructure (nats-server, PostgreSQL, Tryton)
// where CI or a developer points it: reading the environment is its job.
#![allow(
    clippy::disallowed_methods,
    reason = "the test harness takes its infrastructure from the environment"
)]

pub mod infra;
pub mod mail;
pub mod rpc_proxy;

use std::io::{Read, Seek, Write};
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use ferry_config::Config;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use sqlx::Connection;

use crate::infra::{InfraError, port_open, start_nats, start_postgres};

/// Where the shared servers of a test run are.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SharedInfra {
    pub nats_url: String,
    /// Admin URL (the `postgres` database) of the test cluster.
    pub pg_url: String,
}

static SHARED: OnceLock<Result<SharedInfra, String>> = OnceLock::new();

fn port_of(url: &str) -> Option<u16> {
    url.rsplit(':').next()?.split('/').next()?.parse().ok()
}

fn infra_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| infra::workspace_root().join("target"))
        .join("ferry-test-infra")
}

/// Finds or starts the run's servers (once per process; processes coordinate through a
/// lock file so that a whole `cargo nextest run` shares one of each).
pub fn shared_infra() -> Result<SharedInfra, String> {
    SHARED
        .get_or_init(|| {
            if let (Ok(nats_url), Ok(pg_url)) = (
                std::env::var("FERRY_TEST_NATS_URL"),
                std::env::var("FERRY_TEST_PG_URL"),
            ) {
                return Ok(SharedInfra { nats_url, pg_url });
            }
            locked_infra().map_err(|e| e.to_string())
        })
        .clone()
}

fn locked_infra() -> Result<SharedInfra, InfraError> {
    let dir = infra_dir();
    std::fs::create_dir_all(&dir).map_err(|source| InfraError::Io {
        what: "creating the test infra dir".into(),
        source,
    })?;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(dir.join("infra.json"))
        .map_err(|source| InfraError::Io {
            what: "opening infra.json".into(),
            source,
        })?;
    let mut lock = fd_lock::RwLock::new(file);
    let mut guard = lock.write().map_err(|source| InfraError::Io {
        what: "locking infra.json".into(),
        source,
    })?;
    let mut text = String::new();
    let _ = guard.read_to_string(&mut text);
    if let Ok(known) = serde_json::from_str::<SharedInfra>(&text) {
        let alive = port_of(&known.nats_url).is_some_and(port_open)
            && port_of(&known.pg_url).is_some_and(port_open);
        if alive {
            return Ok(known);
        }
    }
    // Fresh data directories: streams left by an interrupted run would hold JetStream's
    // storage reservations.
    let _ = std::fs::remove_dir_all(dir.join("nats"));
    let nats = start_nats(&dir.join("nats"), true)?;
    let _ = std::fs::remove_dir_all(dir.join("pg"));
    let pg = start_postgres(&dir.join("pg"), true)?;
    let infra = SharedInfra {
        nats_url: nats.url.clone(),
        pg_url: pg.url.clone(),
    };
    let json = serde_json::to_string(&infra).unwrap_or_default();
    let _ = guard.set_len(0);
    let _ = guard.rewind();
    let _ = guard.write_all(json.as_bytes());
    let _ = std::fs::write(
        dir.join("pids"),
        format!("{}\n{}\n", nats.pid, pg.data_dir.display()),
    );
    Ok(infra)
}

/// DDL over generated database names. Identifiers cannot be bound parameters; these are
/// built only from hex digits and fixed text, checked here.
fn ddl(sql: String) -> sqlx::AssertSqlSafe<String> {
    debug_assert!(sql.split('"').skip(1).step_by(2).all(|ident| {
        ident
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    }));
    sqlx::AssertSqlSafe(sql)
}

/// Creates (once per schema version) a migrated template database; tests copy it.
async fn ensure_template(pg_url: &str) -> Result<String, String> {
    let name = format!("ferry_tpl_{}", ferry_store::schema_fingerprint());
    let mut admin = sqlx::PgConnection::connect(pg_url)
        .await
        .map_err(|e| e.to_string())?;
    // Serialise template creation across test processes.
    sqlx::query("SELECT pg_advisory_lock(4242)")
        .execute(&mut admin)
        .await
        .map_err(|e| e.to_string())?;
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(&name)
            .fetch_one(&mut admin)
            .await
            .map_err(|e| e.to_string())?;
    if !exists {
        // The name is generated from hex digits, never from input.
        sqlx::query(ddl(format!("CREATE DATABASE \"{name}\"")))
            .execute(&mut admin)
            .await
            .map_err(|e| e.to_string())?;
        let url = pg_url
            .rsplit_once('/')
            .map(|(base, _)| format!("{base}/{name}"))
            .unwrap_or_default();
        let pool = sqlx::PgPool::connect(&url)
            .await
            .map_err(|e| e.to_string())?;
        ferry_store::Store::from_pool(pool.clone())
            .migrate()
            .await
            .map_err(|e| e.to_string())?;
        pool.close().await;
    }
    sqlx::query("SELECT pg_advisory_unlock(4242)")
        .execute(&mut admin)
        .await
        .map_err(|e| e.to_string())?;
    Ok(name)
}

/// One test's private slice of the infrastructure.
pub struct TestEnv {
    pub nats_url: String,
    pub database_url: String,
    /// Subject prefix and stream-name prefix of this test.
    pub prefix: String,
    database: String,
    pg_url: String,
    cleaned: std::sync::atomic::AtomicBool,
}

impl TestEnv {
    /// A fresh prefix and a fresh migrated database. Panics with a clear message when the
    /// infrastructure cannot be had (tests cannot run without it).
    pub async fn new() -> TestEnv {
        match Self::try_new().await {
            Ok(env) => env,
            Err(e) => panic!("test infrastructure unavailable: {e}"),
        }
    }

    pub async fn try_new() -> Result<TestEnv, String> {
        let shared = tokio::task::spawn_blocking(shared_infra)
            .await
            .map_err(|e| e.to_string())??;
        let template = ensure_template(&shared.pg_url).await?;
        let id = uuid::Uuid::new_v4().simple().to_string();
        let database = format!("t_{}", &id[..16]);
        let mut admin = sqlx::PgConnection::connect(&shared.pg_url)
            .await
            .map_err(|e| e.to_string())?;
        let mut attempts = 0;
        loop {
            // Identifiers are generated hex; CREATE DATABASE cannot take bound parameters.
            let created = sqlx::query(ddl(format!(
                "CREATE DATABASE \"{database}\" TEMPLATE \"{template}\""
            )))
            .execute(&mut admin)
            .await;
            match created {
                Ok(_) => break,
                // Another process may be copying the template at this instant.
                Err(e)
                    if attempts < 50
                        && e.to_string().contains("is being accessed by other users") =>
                {
                    attempts += 1;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => return Err(e.to_string()),
            }
        }
        let database_url = shared
            .pg_url
            .rsplit_once('/')
            .map(|(base, _)| format!("{base}/{database}"))
            .unwrap_or_default();
        Ok(TestEnv {
            nats_url: shared.nats_url,
            database_url,
            prefix: format!("t{}", &id[16..26]),
            database,
            pg_url: shared.pg_url,
            cleaned: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// A configuration pointing at this test's slice, tuned for quick retries.
    pub fn config(&self) -> Config {
        let mut config = Config::default();
        config.nats.url = self.nats_url.clone();
        config.nats.prefix = self.prefix.clone();
        config.nats.stream_max_bytes = 256 << 20;
        config.database.url = SecretString::from(self.database_url.clone());
        config.database.max_connections = 8;
        config.consumer.backoff_base = Duration::from_millis(50);
        config.consumer.backoff_max = Duration::from_secs(1);
        config.consumer.ack_wait = Duration::from_secs(5);
        config.consumer.max_deliver = 6;
        config.ops.listen = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
        config.ops.shutdown_grace = Duration::from_secs(5);
        config.ingest.listen = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
        config.ingest.batch_wait = Duration::from_millis(20);
        config.api.listen = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
        config.console.listen = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
        config
    }

    pub async fn store(&self) -> ferry_store::Store {
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(4)
            .connect(&self.database_url)
            .await
            .unwrap_or_else(|e| panic!("connecting to the test database: {e}"));
        ferry_store::Store::from_pool(pool)
    }

    pub async fn nats(&self) -> async_nats::Client {
        async_nats::connect(&self.nats_url)
            .await
            .unwrap_or_else(|e| panic!("connecting to the test nats-server: {e}"))
    }

    /// Deletes this test's streams, key-value buckets and database. A test that fails
    /// before calling it is cleaned up when its `TestEnv` is dropped.
    pub async fn cleanup(&self) {
        remove(&self.nats_url, &self.prefix, &self.pg_url, &self.database).await;
        self.cleaned
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

async fn remove(nats_url: &str, prefix: &str, pg_url: &str, database: &str) {
    if let Ok(client) = async_nats::connect(nats_url).await {
        let js = async_nats::jetstream::new(client);
        let topology = ferry_runtime::Topology::new(prefix);
        for kind in ferry_runtime::StreamKind::ALL {
            let _ = js.delete_stream(topology.stream_name(kind)).await;
        }
        for bucket in ["LEASES", "CURSORS"] {
            let _ = js.delete_key_value(topology.bucket_name(bucket)).await;
        }
    }
    if let Ok(mut admin) = sqlx::PgConnection::connect(pg_url).await {
        let _ = sqlx::query(ddl(format!(
            "DROP DATABASE IF EXISTS \"{database}\" WITH (FORCE)"
        )))
        .execute(&mut admin)
        .await;
    }
}

impl Drop for TestEnv {
    /// A test that panicked never reached `cleanup`: its streams would hold their reserved
    /// storage in the shared nats-server for good.
    fn drop(&mut self) {
        if self.cleaned.load(std::sync::atomic::Ordering::SeqCst) {
            return;
        }
        let (nats_url, prefix, pg_url, database) = (
            self.nats_url.clone(),
            self.prefix.clone(),
            self.pg_url.clone(),
            self.database.clone(),
        );
        let cleaner = std::thread::spawn(move || {
            if let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                runtime.block_on(remove(&nats_url, &prefix, &pg_url, &database));
            }
        });
        let _ = cleaner.join();
    }
}

/// Where the run's real Tryton is (`scripts/tryton.sh`).
#[derive(Debug, Clone, Default)]
pub struct TrytonInfra {
    /// The database's base URL, e.g. `http://127.0.0.1:41234/ferry/`.
    pub url: String,
    pub user: String,
    pub password: String,
}

static TRYTON: OnceLock<Result<TrytonInfra, String>> = OnceLock::new();

/// Finds or starts the run's Tryton: `FERRY_TEST_TRYTON_URL` (+ `_USER`, `_PASSWORD`), else
/// `scripts/tryton.sh start target/ferry-test-infra/tryton`, which the test processes share
/// (the script serialises concurrent starts). The first start on a machine installs Tryton
/// from PyPI and bootstraps a template (about two minutes); later ones take seconds.
pub fn tryton() -> Result<TrytonInfra, String> {
    TRYTON
        .get_or_init(|| {
            if let Ok(url) = std::env::var("FERRY_TEST_TRYTON_URL") {
                return Ok(TrytonInfra {
                    url,
                    user: std::env::var("FERRY_TEST_TRYTON_USER")
                        .unwrap_or_else(|_| "admin".into()),
                    password: std::env::var("FERRY_TEST_TRYTON_PASSWORD")
                        .unwrap_or_else(|_| "ferry-admin".into()),
                });
            }
            let script = infra::workspace_root().join("scripts/tryton.sh");
            let output = std::process::Command::new(&script)
                .arg("start")
                .arg(infra_dir().join("tryton"))
                .output()
                .map_err(|e| format!("running {}: {e}", script.display()))?;
            if !output.status.success() {
                return Err(format!(
                    "scripts/tryton.sh start failed: {}",
                    String::from_utf8_lossy(&output.stderr)
                ));
            }
            tryton_env(&String::from_utf8_lossy(&output.stdout))
        })
        .clone()
}

/// A Tryton of one test's own, stopped and removed when dropped.
pub struct PrivateTryton {
    pub infra: TrytonInfra,
    dir: PathBuf,
}

impl PrivateTryton {
    /// Starts one (a copy of the prepared template, a few seconds). `queue_worker`: Tryton
    /// hands queued tasks (processing a confirmed sale) to a queue worker, and none runs.
    pub fn start(queue_worker: bool) -> Result<PrivateTryton, String> {
        let dir = infra_dir().join(format!(
            "tryton-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..12]
        ));
        let script = infra::workspace_root().join("scripts/tryton.sh");
        let output = std::process::Command::new(&script)
            .arg("start")
            .arg(&dir)
            .env(
                "FERRY_TRYTON_QUEUE_WORKER",
                if queue_worker { "1" } else { "0" },
            )
            .output()
            .map_err(|e| format!("running {}: {e}", script.display()))?;
        // Stops whatever the script started, should it fail half-way.
        let mut tryton = PrivateTryton {
            infra: TrytonInfra::default(),
            dir,
        };
        if !output.status.success() {
            return Err(format!(
                "scripts/tryton.sh start failed: {}",
                String::from_utf8_lossy(&output.stderr)
            ));
        }
        tryton.infra = tryton_env(&String::from_utf8_lossy(&output.stdout))?;
        Ok(tryton)
    }
}

impl Drop for PrivateTryton {
    fn drop(&mut self) {
        let script = infra::workspace_root().join("scripts/tryton.sh");
        let _ = std::process::Command::new(&script)
            .arg("stop")
            .arg(&self.dir)
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A PostgreSQL of one test's own, to stop and start again under a running service
/// (same port, same data); stopped and removed when dropped.
pub struct PrivatePostgres {
    pub process: infra::PostgresProcess,
    dir: PathBuf,
}

impl PrivatePostgres {
    pub fn start() -> Result<PrivatePostgres, String> {
        let dir = infra_dir().join(format!(
            "pg-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..12]
        ));
        let process = infra::start_postgres(&dir, false).map_err(|e| e.to_string())?;
        Ok(PrivatePostgres { process, dir })
    }

    pub fn stop(&self) {
        self.process.stop();
    }

    /// Starts it again where it was.
    pub fn restart(&mut self) -> Result<(), String> {
        self.process.restart().map_err(|e| e.to_string())
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        self.process.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Reads what `scripts/tryton.sh start` prints.
fn tryton_env(text: &str) -> Result<TrytonInfra, String> {
    let value = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
            .map(str::to_owned)
    };
    Ok(TrytonInfra {
        url: value("FERRY_TRYTON_URL").ok_or("no URL from scripts/tryton.sh")?,
        user: value("FERRY_TRYTON_USER").unwrap_or_else(|| "admin".into()),
        password: value("FERRY_TRYTON_PASSWORD").unwrap_or_default(),
    })
}

/// How many of the tenant's orders the ledger has in `state` now.
pub async fn count_in_state(store: &ferry_store::Store, tenant: &str, state: &str) -> i64 {
    store
        .count_by_state(tenant)
        .await
        .unwrap_or_default()
        .into_iter()
        .find(|(s, _)| s == state)
        .map(|(_, n)| n)
        .unwrap_or(0)
}

/// Waits until at least `want` of the tenant's orders are in `state`, or `within` has passed;
/// returns how many are (the caller asserts).
pub async fn wait_for_state(
    store: &ferry_store::Store,
    tenant: &str,
    state: &str,
    want: i64,
    within: Duration,
) -> i64 {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let n = count_in_state(store, tenant, state).await;
        if n >= want || tokio::time::Instant::now() > deadline {
            return n;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits (up to `within`) for an open exception of `tenant` that `wanted` accepts, and
/// returns the open exceptions as they then stand. An exception is recorded by whichever
/// task meets the problem, in its own time: a test that looked once would race it.
pub async fn wait_for_exception(
    store: &ferry_store::Store,
    tenant: &str,
    wanted: impl Fn(&ferry_store::ExceptionRow) -> bool,
    within: Duration,
) -> Vec<ferry_store::ExceptionRow> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let open = store.open_exceptions(tenant).await.unwrap_or_default();
        if open.iter().any(&wanted) || tokio::time::Instant::now() > deadline {
            return open;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
