//! Layered configuration: built-in defaults < a TOML file < `FERRY_*` environment variables
//! (`FERRY_NATS__URL`, `FERRY_DATABASE__URL`, …; `__` separates levels). Validated once at
//! start-up; secrets are [`SecretString`]s that print as `[REDACTED]`.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Toml};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use ferry_domain::Rules;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration could not be read: {0}")]
    Read(#[from] Box<figment::Error>),
    #[error("configuration is invalid: {0}")]
    Invalid(String),
    #[error("tenant file {path}: {source}")]
    TenantFile {
        path: PathBuf,
        source: Box<figment::Error>,
    },
    #[error("tenant directory {path}: {source}")]
    TenantDir {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Everything a Ferry process needs. One struct for every service, so `ferry up` and
/// `ferry run <service>` read the same file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub nats: NatsConfig,
    pub database: DatabaseConfig,
    pub telemetry: TelemetryConfig,
    pub ops: OpsConfig,
    pub consumer: ConsumerConfig,
    pub feeds: FeedsConfig,
    pub ingest: IngestConfig,
    pub erp_writer: ErpWriterConfig,
    /// Extra tenant files (`*.toml`, one brand each) are read from this directory.
    pub tenants_dir: Option<PathBuf>,
    pub tenants: Vec<TenantConfig>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NatsConfig {
    pub url: String,
    /// First token of every subject and prefix of every stream name. Tests use a random one.
    pub prefix: String,
    pub token: Option<SecretString>,
    /// Stream replicas: 1 locally, 3 in production.
    pub replicas: usize,
    /// Upper bound per stream; a full stream rejects publishes (`discard: new`).
    pub stream_max_bytes: i64,
    #[serde(with = "humantime_serde")]
    pub stream_max_age: Duration,
    /// Window in which JetStream drops a message whose `Nats-Msg-Id` it has seen.
    #[serde(with = "humantime_serde")]
    pub duplicate_window: Duration,
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
}

impl Default for NatsConfig {
    fn default() -> Self {
        Self {
            url: "nats://127.0.0.1:4222".to_owned(),
            prefix: "ferry".to_owned(),
            token: None,
            replicas: 1,
            stream_max_bytes: 1 << 30,
            stream_max_age: Duration::from_secs(14 * 24 * 3600),
            duplicate_window: Duration::from_secs(30 * 60),
            connect_timeout: Duration::from_secs(5),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseConfig {
    pub url: SecretString,
    pub max_connections: u32,
    #[serde(with = "humantime_serde")]
    pub acquire_timeout: Duration,
    /// How often a service checks whether the keyed tables outgrew their planner
    /// statistics (`0s` leaves it to autovacuum alone).
    #[serde(with = "humantime_serde")]
    pub analyze_interval: Duration,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            url: SecretString::from("postgres://postgres@127.0.0.1:5432/ferry"),
            max_connections: 16,
            acquire_timeout: Duration::from_secs(5),
            analyze_interval: Duration::from_secs(2),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable, for a terminal.
    Pretty,
    /// One JSON object per line, for production log pipelines.
    Json,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TelemetryConfig {
    pub log_format: LogFormat,
    /// `tracing` filter directives, e.g. `info,ferry=debug`.
    pub log_filter: String,
    /// OTLP/gRPC endpoint for traces and metrics, e.g. `http://otel-collector:4317`.
    pub otlp_endpoint: Option<String>,
    #[serde(with = "humantime_serde")]
    pub otlp_metrics_interval: Duration,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self {
            log_format: LogFormat::Pretty,
            log_filter: "info".to_owned(),
            otlp_endpoint: None,
            otlp_metrics_interval: Duration::from_secs(30),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OpsConfig {
    /// Where `/livez`, `/readyz` and `/metrics` are served.
    pub listen: SocketAddr,
    /// How long in-flight work may take to finish after a stop signal.
    #[serde(with = "humantime_serde")]
    pub shutdown_grace: Duration,
}

impl Default for OpsConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 9090)),
            shutdown_grace: Duration::from_secs(20),
        }
    }
}

/// How every durable consumer behaves (see ADR 0004).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConsumerConfig {
    /// Deliveries before a message that keeps failing becomes a `delivery_exhausted` exception.
    pub max_deliver: i64,
    #[serde(with = "humantime_serde")]
    pub ack_wait: Duration,
    /// First NAK delay; doubles per delivery up to `backoff_max`, with full jitter.
    #[serde(with = "humantime_serde")]
    pub backoff_base: Duration,
    #[serde(with = "humantime_serde")]
    pub backoff_max: Duration,
    /// Unacknowledged messages the server lets one consumer hold (back-pressure).
    pub max_ack_pending: i64,
    /// Messages one service instance handles at once per consumer.
    pub concurrency: usize,
    /// Messages pulled per request.
    pub batch: usize,
}

impl Default for ConsumerConfig {
    fn default() -> Self {
        Self {
            max_deliver: 12,
            ack_wait: Duration::from_secs(30),
            backoff_base: Duration::from_millis(500),
            backoff_max: Duration::from_secs(300),
            max_ack_pending: 2000,
            concurrency: 128,
            batch: 256,
        }
    }
}

/// How every feed (a loop reading a source, see `feed.rs`) is led and retried.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FeedsConfig {
    /// A leader that stops renewing its lease is replaced after this long.
    #[serde(with = "humantime_serde")]
    pub lease_ttl: Duration,
    /// First and longest wait after a failed pass (backon, with jitter).
    #[serde(with = "humantime_serde")]
    pub backoff_min: Duration,
    #[serde(with = "humantime_serde")]
    pub backoff_max: Duration,
}

impl Default for FeedsConfig {
    fn default() -> Self {
        Self {
            lease_ttl: Duration::from_secs(6),
            backoff_min: Duration::from_millis(200),
            backoff_max: Duration::from_secs(30),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IngestConfig {
    /// Where Centra's webhooks are received (`POST /webhooks/centra/<tenant>`).
    pub listen: SocketAddr,
    pub max_body_bytes: usize,
    /// Signed webhooks older (or further in the future) than this are rejected.
    #[serde(with = "humantime_serde")]
    pub replay_window: Duration,
    /// Orders asked for in one snapshot query (Centra allows at most 200).
    pub snapshot_batch: usize,
    /// How long the fetcher waits to fill a batch before querying Centra anyway.
    #[serde(with = "humantime_serde")]
    pub batch_wait: Duration,
}

impl Default for IngestConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            max_body_bytes: 1 << 20,
            replay_window: Duration::from_secs(300),
            snapshot_batch: 200,
            batch_wait: Duration::from_millis(100),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ErpWriterConfig {
    /// Requests in flight to one tenant's ERP at once (a batch is one request).
    pub max_in_flight_per_tenant: usize,
    /// A post that takes longer is "possibly created" and is settled by a lookup.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// Most orders per create request to an ERP with a batch call (the HTTP ERP); 1 posts
    /// each order on its own. Orders waiting while earlier batches are out form the next
    /// batch, so an idle writer adds no latency.
    pub batch_size: usize,
    /// Batch requests out at once per tenant (within `max_in_flight_per_tenant`).
    pub batches_in_flight: usize,
}

impl Default for ErpWriterConfig {
    fn default() -> Self {
        Self {
            max_in_flight_per_tenant: 32,
            request_timeout: Duration::from_secs(10),
            batch_size: 50,
            batches_in_flight: 4,
        }
    }
}

/// One brand: its Centra, its ERP and its order-to-cash rules.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantConfig {
    /// Short, stable id: lowercase letters, digits, `-` and `_`. It is part of every subject.
    pub id: String,
    #[serde(default)]
    pub display_name: String,
    pub centra: CentraConfig,
    pub erp: ErpConfig,
    #[serde(default)]
    pub rules: Rules,
    #[serde(default)]
    pub fulfilment: FulfilmentConfig,
    #[serde(default)]
    pub inventory: InventoryConfig,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CentraConfig {
    /// The Integration API endpoint, e.g. `https://brand.centra.com/graphql`.
    pub url: String,
    pub token: SecretString,
    /// The secret configured in Centra's webhook plugin.
    pub webhook_secret: SecretString,
    /// Centra's plan, for the quotas Centra documents for it (`fresh`, `growth`,
    /// `enterprise`); the `*_per_*` figures below override single buckets.
    #[serde(default)]
    pub plan: ferry_domain::quota::Plan,
    /// Percent of every bucket Ferry may spend: Centra's quotas are shared by every
    /// integration of the environment.
    #[serde(default = "default_share_percent")]
    pub share_percent: u64,
    /// Requests per 10 s (the plan's unless set).
    #[serde(default)]
    pub requests_per_10s: Option<u64>,
    #[serde(default)]
    pub requests_per_hour: Option<u64>,
    /// Query complexity points per 10 s and per hour.
    #[serde(default)]
    pub complexity_per_10s: Option<u64>,
    #[serde(default)]
    pub complexity_per_hour: Option<u64>,
    #[serde(default = "default_centra_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// Poll Centra's Events queue for order changes (the token needs `Event:read` and
    /// `Event:write`, and Centra must have enabled Events for the integration).
    #[serde(default)]
    pub events: bool,
    /// How often the Events queue is polled when it is empty (Centra suggests a minute).
    #[serde(default = "default_events_poll", with = "humantime_serde")]
    pub events_poll: Duration,
    /// How often ingest asks Centra for every order changed since the last resync: the
    /// safety net for dropped webhooks. `0s` turns it off.
    #[serde(default = "default_resync_interval", with = "humantime_serde")]
    pub resync_interval: Duration,
    /// How far each resync looks back before the previous one began (late commits, clock
    /// skew between Centra and Ferry).
    #[serde(default = "default_resync_overlap", with = "humantime_serde")]
    pub resync_overlap: Duration,
    /// Mutations per 10 s and per hour, shared by every Ferry service that writes to this
    /// Centra (the plan's unless set).
    #[serde(default)]
    pub mutations_per_10s: Option<u64>,
    #[serde(default)]
    pub mutations_per_hour: Option<u64>,
}

pub use ferry_domain::quota::Caller as CentraCaller;

impl CentraConfig {
    /// The quotas Ferry may spend: the plan's, with the figures set here, times
    /// `share_percent`.
    pub fn quotas(&self) -> ferry_domain::quota::Quotas {
        let plan = self.plan.quotas();
        ferry_domain::quota::Quotas {
            requests_per_10s: self.requests_per_10s.or(plan.requests_per_10s),
            requests_per_hour: self.requests_per_hour.or(plan.requests_per_hour),
            complexity_per_10s: self.complexity_per_10s.or(plan.complexity_per_10s),
            complexity_per_hour: self.complexity_per_hour.or(plan.complexity_per_hour),
            mutations_per_10s: self.mutations_per_10s.or(plan.mutations_per_10s),
            mutations_per_hour: self.mutations_per_hour.or(plan.mutations_per_hour),
        }
        .share(self.share_percent)
    }

    /// What `caller` paces its Centra client to: its part of Ferry's share (ingest 60 %,
    /// fulfilment and inventory 20 % each), every bucket.
    pub fn pacing_for(&self, caller: CentraCaller) -> ferry_domain::quota::Pacing {
        self.quotas().pacing_for(caller)
    }
}

fn default_share_percent() -> u64 {
    100
}

/// How shipments are told to Centra (`[fulfilment]` in a tenant file).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FulfilmentConfig {
    /// Centra sends the customer its shipping e-mail.
    pub send_email: bool,
    /// Capture the payment with each shipment.
    pub capture: bool,
    /// How long a shipment may wait for its tracking number before customer service hears.
    #[serde(with = "humantime_serde")]
    pub tracking_grace: Duration,
    /// How often the ERP's shipment feed is read when it had nothing new.
    #[serde(with = "humantime_serde")]
    pub poll_interval: Duration,
}

impl Default for FulfilmentConfig {
    fn default() -> Self {
        Self {
            send_email: true,
            capture: false,
            tracking_grace: Duration::from_secs(24 * 3600),
            poll_interval: Duration::from_secs(5),
        }
    }
}

/// How stock is pushed to Centra (`[inventory]` in a tenant file).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InventoryConfig {
    /// ERP warehouse (its code) → Centra warehouse id. Stock of warehouses not listed is
    /// not pushed; with none listed the tenant's stock is not pushed at all.
    pub warehouses: BTreeMap<String, i64>,
    /// The Centra warehouse Centra allocates orders from, where open orders' units are
    /// counted (default: the lowest mapped Centra warehouse id).
    pub allocation_warehouse: Option<i64>,
    /// Units held back from sale.
    pub buffer: BufferConfig,
    /// Ordinary changes wait at most this long to be batched; items selling out go at once.
    #[serde(with = "humantime_serde")]
    pub push_interval: Duration,
    /// Every SKU is sent again on this schedule, healing what Centra lost or someone changed.
    /// A sweep costs `sizes ÷ batch_size` mutations (250 for 50,000 sizes) of the ordinary
    /// share of Centra's hourly budget.
    #[serde(with = "humantime_serde")]
    pub sweep_interval: Duration,
    /// How often the ERP is read: its change feed, or all its stock when it has none.
    #[serde(with = "humantime_serde")]
    pub poll_interval: Duration,
    /// How often one page (200 SKUs) of Centra's free-to-allocate stock is compared with
    /// what Ferry expects. `0s` turns drift checks off.
    #[serde(with = "humantime_serde")]
    pub drift_interval: Duration,
    /// A difference that is still there after this many corrections is an exception.
    pub drift_checks: u32,
    /// Sizes per `setStock` call.
    pub batch_size: usize,
}

impl Default for InventoryConfig {
    fn default() -> Self {
        Self {
            warehouses: BTreeMap::new(),
            allocation_warehouse: None,
            buffer: BufferConfig::default(),
            push_interval: Duration::from_secs(60),
            sweep_interval: Duration::from_secs(6 * 3600),
            poll_interval: Duration::from_secs(5),
            drift_interval: Duration::from_secs(10),
            drift_checks: 2,
            batch_size: 200,
        }
    }
}

/// Safety stock: the most specific rule wins — a SKU, then the longest matching SKU
/// prefix (a category: `"JKT-"`), then the Centra warehouse, then the default.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BufferConfig {
    pub default: i64,
    /// Centra warehouse id (as a string: TOML keys are strings) → units.
    pub warehouses: BTreeMap<String, i64>,
    /// SKU prefix → units.
    pub categories: BTreeMap<String, i64>,
    pub skus: BTreeMap<String, i64>,
}

impl BufferConfig {
    /// The buffer for one SKU in one Centra warehouse.
    pub fn for_sku(&self, warehouse: i64, sku: &str) -> i64 {
        if let Some(units) = self.skus.get(sku) {
            return *units;
        }
        if let Some((_, units)) = self
            .categories
            .iter()
            .filter(|(prefix, _)| sku.starts_with(prefix.as_str()))
            .max_by_key(|(prefix, _)| prefix.len())
        {
            return *units;
        }
        self.warehouses
            .get(&warehouse.to_string())
            .copied()
            .unwrap_or(self.default)
    }
}

fn default_events_poll() -> Duration {
    Duration::from_secs(60)
}

fn default_resync_interval() -> Duration {
    Duration::from_secs(300)
}

fn default_resync_overlap() -> Duration {
    Duration::from_secs(120)
}

fn default_centra_timeout() -> Duration {
    Duration::from_secs(20)
}

/// A tenant's `[erp]` table: which connector, and that connector's own settings, read by
/// the connector itself (`docs/connectors.md`): the runtime knows no connector.
#[derive(Clone, Deserialize)]
pub struct ErpConfig {
    /// `http`, `tryton`, `file-drop`, … as the binary's connector registry names them.
    pub kind: String,
    #[serde(flatten)]
    pub settings: serde_json::Map<String, serde_json::Value>,
}

impl ErpConfig {
    pub fn new(kind: &str, settings: serde_json::Value) -> Self {
        ErpConfig {
            kind: kind.to_owned(),
            settings: match settings {
                serde_json::Value::Object(map) => map,
                _ => serde_json::Map::new(),
            },
        }
    }
}

/// Settings may hold passwords and tokens: only their names are printed.
impl std::fmt::Debug for ErpConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ErpConfig")
            .field("kind", &self.kind)
            .field("settings", &self.settings.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Config {
    /// Reads defaults < `file` (if any) < `FERRY_*` environment, then tenant files, then validates.
    pub fn load(file: Option<&Path>) -> Result<Config, ConfigError> {
        let mut figment = Figment::new();
        if let Some(file) = file {
            figment = figment.merge(Toml::file_exact(file));
        }
        figment = figment.merge(Env::prefixed("FERRY_").split("__"));
        Self::from_figment(figment)
    }

    /// Reads a configuration from TOML text over the defaults (no environment): for tests.
    pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
        Self::from_figment(Figment::from(Toml::string(text)))
    }

    fn from_figment(figment: Figment) -> Result<Config, ConfigError> {
        let mut config: Config = figment.extract().map_err(Box::new)?;
        if let Some(dir) = config.tenants_dir.clone() {
            config.tenants.extend(load_tenant_dir(&dir)?);
        }
        config.validate()?;
        Ok(config)
    }

    /// Checks what serde cannot: names that go into subjects, duplicates, URLs, secrets.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |m: String| Err(ConfigError::Invalid(m));
        if !is_token(&self.nats.prefix) {
            return bad(format!(
                "nats.prefix {:?} must be lowercase letters, digits, '-' or '_'",
                self.nats.prefix
            ));
        }
        if !self.nats.url.starts_with("nats://") && !self.nats.url.starts_with("tls://") {
            return bad(format!(
                "nats.url {:?} must start with nats:// or tls://",
                self.nats.url
            ));
        }
        if self.nats.replicas == 0 || self.nats.replicas > 5 {
            return bad("nats.replicas must be between 1 and 5".into());
        }
        if !self.database.url.expose_secret().starts_with("postgres") {
            return bad("database.url must be a postgres:// URL".into());
        }
        if self.consumer.max_deliver < 2 {
            return bad("consumer.max_deliver must be at least 2".into());
        }
        if self.feeds.lease_ttl < Duration::from_secs(1) {
            return bad("feeds.lease_ttl must be at least 1s".into());
        }
        if self.feeds.backoff_min.is_zero() || self.feeds.backoff_max < self.feeds.backoff_min {
            return bad("feeds.backoff_min must be positive and at most feeds.backoff_max".into());
        }
        if self.consumer.concurrency == 0 || self.consumer.batch == 0 {
            return bad("consumer.concurrency and consumer.batch must be positive".into());
        }
        if self.ingest.snapshot_batch == 0 || self.ingest.snapshot_batch > 200 {
            return bad("ingest.snapshot_batch must be between 1 and 200 (Centra's limit)".into());
        }
        if self.erp_writer.max_in_flight_per_tenant == 0 {
            return bad("erp_writer.max_in_flight_per_tenant must be positive".into());
        }
        if self.erp_writer.batch_size == 0 || self.erp_writer.batches_in_flight == 0 {
            return bad(
                "erp_writer.batch_size and erp_writer.batches_in_flight must be positive".into(),
            );
        }
        let mut seen = BTreeSet::new();
        for t in &self.tenants {
            if !is_token(&t.id) {
                return bad(format!(
                    "tenant id {:?} must be lowercase letters, digits, '-' or '_'",
                    t.id
                ));
            }
            if !seen.insert(t.id.as_str()) {
                return bad(format!("tenant {:?} is configured twice", t.id));
            }
            if !t.centra.url.starts_with("http://") && !t.centra.url.starts_with("https://") {
                return bad(format!("tenant {}: centra.url must be http(s)", t.id));
            }
            if t.centra.webhook_secret.expose_secret().is_empty() {
                return bad(format!("tenant {}: centra.webhook_secret is empty", t.id));
            }
            if t.centra.requests_per_10s == Some(0) || !(1..=100).contains(&t.centra.share_percent)
            {
                return bad(format!(
                    "tenant {}: centra.requests_per_10s must be positive and centra.share_percent 1-100",
                    t.id
                ));
            }
            let inventory = &t.inventory;
            if inventory.batch_size == 0 || inventory.batch_size > 1000 {
                return bad(format!(
                    "tenant {}: inventory.batch_size must be between 1 and 1000",
                    t.id
                ));
            }
            let mut centra_warehouses = BTreeSet::new();
            for (erp, centra) in &inventory.warehouses {
                if !centra_warehouses.insert(centra) {
                    return bad(format!(
                        "tenant {}: inventory.warehouses maps {erp:?} to Centra warehouse {centra}, \
                         which another ERP warehouse already feeds",
                        t.id
                    ));
                }
            }
            let buffers = &inventory.buffer;
            if std::iter::once(&buffers.default)
                .chain(buffers.warehouses.values())
                .chain(buffers.categories.values())
                .chain(buffers.skus.values())
                .any(|units| *units < 0)
            {
                return bad(format!(
                    "tenant {}: inventory buffers cannot be negative",
                    t.id
                ));
            }
            if t.erp.kind.is_empty() {
                return bad(format!("tenant {}: erp.kind is missing", t.id));
            }
        }
        Ok(())
    }

    pub fn tenant(&self, id: &str) -> Option<&TenantConfig> {
        self.tenants.iter().find(|t| t.id == id)
    }
}

fn load_tenant_dir(dir: &Path) -> Result<Vec<TenantConfig>, ConfigError> {
    let entries = std::fs::read_dir(dir).map_err(|source| ConfigError::TenantDir {
        path: dir.to_owned(),
        source,
    })?;
    let mut paths: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|path| {
            Figment::from(Toml::file_exact(&path))
                .extract::<TenantConfig>()
                .map_err(|e| ConfigError::TenantFile {
                    path,
                    source: Box::new(e),
                })
        })
        .collect()
}

/// Safe as a NATS subject token, stream name part and log field.
pub fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 48
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    const TENANT: &str = r#"
        [[tenants]]
        id = "acme"
        [tenants.centra]
        url = "http://127.0.0.1:1/graphql"
        token = "tok-123"
        webhook_secret = "whsec-456"
        [tenants.erp]
        kind = "http"
        url = "http://127.0.0.1:2"
    "#;

    #[test]
    fn defaults_validate() {
        assert!(Config::default().validate().is_ok());
    }

    #[test]
    fn reads_a_tenant_and_never_prints_secrets() {
        let config = Config::from_toml(TENANT).expect("valid");
        let tenant = config.tenant("acme").expect("tenant");
        assert_eq!(tenant.centra.token.expose_secret(), "tok-123");
        let printed = format!("{config:?}");
        assert!(!printed.contains("tok-123"), "{printed}");
        assert!(!printed.contains("whsec-456"));
        assert!(!printed.contains("postgres://postgres@"));
    }

    #[test]
    fn rejects_what_would_break_subjects_or_leak_across_tenants() {
        let twice = format!("{TENANT}\n{TENANT}");
        assert!(
            matches!(Config::from_toml(&twice), Err(ConfigError::Invalid(m)) if m.contains("twice"))
        );
        let dotted = TENANT.replace("\"acme\"", "\"ac.me\"");
        assert!(Config::from_toml(&dotted).is_err());
        assert!(Config::from_toml("[nats]\nprefix = \"a b\"").is_err());
        assert!(Config::from_toml("[nats]\nunknown = 1").is_err());
        assert!(Config::from_toml("[ingest]\nsnapshot_batch = 500").is_err());
    }

    #[test]
    fn durations_are_human() {
        let c = Config::from_toml("[consumer]\nack_wait = \"45s\"\nbackoff_max = \"2m\"")
            .expect("valid");
        assert_eq!(c.consumer.ack_wait, Duration::from_secs(45));
        assert_eq!(c.consumer.backoff_max, Duration::from_secs(120));
    }

    #[test]
    fn tenant_files_come_from_a_directory() {
        let dir = tempfile::tempdir().expect("tempdir");
        let one = TENANT
            .replace("[[tenants]]", "")
            .replace("[tenants.centra]", "[centra]")
            .replace("[tenants.erp]", "[erp]");
        std::fs::write(dir.path().join("acme.toml"), &one).expect("write");
        std::fs::write(dir.path().join("zeta.toml"), one.replace("acme", "zeta")).expect("write");
        std::fs::write(dir.path().join("notes.txt"), "ignored").expect("write");
        let text = format!("tenants_dir = {:?}", dir.path());
        let c = Config::from_toml(&text).expect("valid");
        let ids: Vec<&str> = c.tenants.iter().map(|t| t.id.as_str()).collect();
        assert_eq!(ids, ["acme", "zeta"]);
    }

    #[test]
    fn the_example_tenant_file_is_valid() {
        let dir = tempfile::tempdir().expect("tempdir");
        let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/tenants/demo.toml");
        std::fs::copy(&example, dir.path().join("demo.toml")).expect("copy");
        let text = format!("tenants_dir = {:?}", dir.path());
        let c = Config::from_toml(&text).expect("the example is valid");
        let inventory = &c.tenants[0].inventory;
        assert_eq!(inventory.warehouses.get("WH"), Some(&1));
        assert_eq!(inventory.buffer.for_sku(1, "JKT-BLK-M"), 2);
        assert_eq!(inventory.buffer.for_sku(1, "TEE-BLK-M"), 0);
    }

    #[test]
    fn the_example_service_file_is_valid() {
        let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/ferry.example.toml");
        let text = std::fs::read_to_string(example).expect("read the example");
        // Its tenants directory is where Kubernetes mounts it; tenants are checked above.
        let text = text
            .lines()
            .filter(|l| !l.trim_start().starts_with("tenants_dir"))
            .collect::<Vec<_>>()
            .join("\n");
        let c = Config::from_toml(&text).expect("the example is valid");
        assert_eq!(
            c.database.analyze_interval,
            std::time::Duration::from_secs(2)
        );
    }

    #[test]
    fn the_most_specific_buffer_wins() {
        let buffer = BufferConfig {
            default: 1,
            warehouses: [("2".to_owned(), 3)].into(),
            categories: [("JKT-".to_owned(), 4), ("JKT-BLK-".to_owned(), 5)].into(),
            skus: [("JKT-BLK-M".to_owned(), 9)].into(),
        };
        assert_eq!(buffer.for_sku(1, "JKT-BLK-M"), 9, "the SKU's own");
        assert_eq!(buffer.for_sku(2, "JKT-BLK-L"), 5, "the longest prefix");
        assert_eq!(buffer.for_sku(2, "JKT-NVY-L"), 4);
        assert_eq!(buffer.for_sku(2, "TEE-BLK-L"), 3, "the warehouse");
        assert_eq!(buffer.for_sku(1, "TEE-BLK-L"), 1, "the default");
    }

    #[test]
    fn inventory_settings_are_checked() {
        let two =
            format!("{TENANT}\n[tenants.inventory]\nwarehouses = {{ \"A\" = 1, \"B\" = 1 }}\n");
        let e = Config::from_toml(&two).expect_err("two ERP warehouses into one");
        assert!(e.to_string().contains("already feeds"), "{e}");
        let negative = format!("{TENANT}\n[tenants.inventory.buffer]\ndefault = -1\n");
        assert!(Config::from_toml(&negative).is_err());
        let batch = format!("{TENANT}\n[tenants.inventory]\nbatch_size = 0\n");
        assert!(Config::from_toml(&batch).is_err());
    }
}
