//! Ferry's configuration file: the runtime's sections, the database, each service's
//! section and the tenants (one brand each: its Centra, its ERP connector's table, its
//! order-to-cash rules). Layered defaults < a TOML file < the `FERRY_*` environment (added
//! by the binary), validated once at start-up; secrets are [`SecretString`]s.

mod notify;
mod tenant;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Format, Toml};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

pub use ferry_runtime::config::{
    ConsumerConfig, FeedsConfig, LogFormat, NatsConfig, OpsConfig, RuntimeConfig, TelemetryConfig,
    is_token,
};
pub use notify::*;
pub use tenant::*;

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
    pub reconciler: ReconcilerConfig,
    pub api: ApiConfig,
    pub console: ConsoleConfig,
    /// The SMTP server exception notifications are e-mailed through.
    pub smtp: SmtpConfig,
    /// Extra tenant files (`*.toml`, one brand each) are read from this directory.
    pub tenants_dir: Option<PathBuf>,
    pub tenants: Vec<TenantConfig>,
}

/// The operations API (`ferry run ops`): gRPC for the CLI and the console.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApiConfig {
    /// Where the gRPC API listens (plain HTTP/2: TLS is the ingress's or the mesh's).
    pub listen: SocketAddr,
    /// Where the CLI finds it (`ferry exceptions …`); `FERRY_API__URL` overrides.
    pub url: String,
    /// The CLI's token (`ferry tokens create`); `FERRY_API__TOKEN` overrides. Secret.
    pub token: Option<SecretString>,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 50051)),
            url: "http://127.0.0.1:50051".to_owned(),
            token: None,
        }
    }
}

/// The web console (served by `ferry run ops` beside the gRPC API).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConsoleConfig {
    /// Where the console's web pages are served (plain HTTP: TLS is the ingress's).
    pub listen: SocketAddr,
    /// Marks the session cookie `Secure` (only sent over HTTPS): on wherever people reach
    /// the console through TLS, as in the chart.
    pub secure_cookies: bool,
    /// How long a sign-in lasts.
    #[serde(with = "humantime_serde")]
    pub session_ttl: Duration,
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8090)),
            secure_cookies: false,
            session_ttl: Duration::from_secs(12 * 3600),
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
    /// Each service applies pending migrations when it starts (under an advisory lock); off
    /// where a job applies them first (`ferry migrate`, the chart's hook).
    pub migrate_on_start: bool,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            url: SecretString::from("postgres://postgres@127.0.0.1:5432/ferry"),
            max_connections: 16,
            acquire_timeout: Duration::from_secs(5),
            analyze_interval: Duration::from_secs(2),
            migrate_on_start: true,
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
    /// A webhook's request headers must arrive within this: a client sending them a byte
    /// at a time (slowloris) is cut off instead of holding a connection.
    #[serde(with = "humantime_serde")]
    pub header_read_timeout: Duration,
    /// A webhook must be answered within this from its headers, its body included: a body
    /// sent a byte at a time is answered 408.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// How long a webhook waits for JetStream to store its events before it is answered
    /// 503: within Centra's own send timeout (5 s by default), so Centra hears "failed"
    /// (and retries, if set to) instead of timing out on its side.
    #[serde(with = "humantime_serde")]
    pub publish_timeout: Duration,
}

impl Default for IngestConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            max_body_bytes: 1 << 20,
            replay_window: Duration::from_secs(300),
            snapshot_batch: 200,
            batch_wait: Duration::from_millis(100),
            header_read_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(10),
            publish_timeout: Duration::from_secs(4),
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

/// The reconciler (`[reconciler]`, ADR 0028).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReconcilerConfig {
    /// How long after Centra accepted an order it should be in the ERP: until then its
    /// absence is "pending", after it "missing".
    #[serde(with = "humantime_serde")]
    pub grace: Duration,
    /// How soon an order found not reconciled is checked again.
    #[serde(with = "humantime_serde")]
    pub recheck: Duration,
    /// How often every order is checked again, reconciled or not (what changes in the ERP
    /// alone shows in the ledger nowhere).
    #[serde(with = "humantime_serde")]
    pub sweep: Duration,
    /// Orders checked per pass (one ledger query, one Centra request).
    pub batch: usize,
    /// How long to wait after a pass that found nothing due.
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    /// ERP reads in flight per tenant, for connectors that read one document at a time.
    pub erp_reads_in_flight: usize,
    /// Batches checked at once by `ferry reconcile run` (each: one Centra request, one ERP
    /// read, one write), so reading one source overlaps judging another's answer.
    pub batches_in_flight: usize,
}

impl Default for ReconcilerConfig {
    fn default() -> Self {
        Self {
            grace: Duration::from_secs(30 * 60),
            recheck: Duration::from_secs(15 * 60),
            sweep: Duration::from_secs(24 * 60 * 60),
            batch: 200,
            interval: Duration::from_secs(30),
            erp_reads_in_flight: 8,
            batches_in_flight: 2,
        }
    }
}

impl Config {
    /// The layers of a configuration read from `file` (if any) over the defaults. The
    /// binary adds the `FERRY_*` environment on top (a library reads no environment).
    pub fn figment(file: Option<&Path>) -> Figment {
        let figment = Figment::new();
        match file {
            Some(file) => figment.merge(Toml::file_exact(file)),
            None => figment,
        }
    }

    /// Reads a configuration from TOML text over the defaults (no environment): for tests.
    pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
        Self::from_figment(Figment::from(Toml::string(text)))
    }

    /// Reads the layers, then tenant files, then validates.
    pub fn from_figment(figment: Figment) -> Result<Config, ConfigError> {
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
        self.runtime().validate().map_err(ConfigError::Invalid)?;
        if !self.database.url.expose_secret().starts_with("postgres") {
            return bad("database.url must be a postgres:// URL".into());
        }
        if self.ingest.snapshot_batch == 0 || self.ingest.snapshot_batch > 200 {
            return bad("ingest.snapshot_batch must be between 1 and 200 (Centra's limit)".into());
        }
        if self.reconciler.batch == 0 || self.reconciler.erp_reads_in_flight == 0 {
            return bad(
                "reconciler.batch and reconciler.erp_reads_in_flight must be positive".into(),
            );
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
            for (carrier, url) in &t.fulfilment.tracking_urls {
                if !(url.starts_with("https://") || url.starts_with("http://"))
                    || !url.contains("{tracking}")
                {
                    return bad(format!(
                        "tenant {}: fulfilment.tracking_urls.{carrier} must be an http(s) URL \
                         with {{tracking}} where the tracking number goes",
                        t.id
                    ));
                }
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
            if let Err(m) = t.notifications.validate(&self.smtp) {
                return bad(format!("tenant {}: {m}", t.id));
            }
        }
        Ok(())
    }

    /// The runtime's sections.
    pub fn runtime(&self) -> RuntimeConfig {
        RuntimeConfig {
            nats: self.nats.clone(),
            telemetry: self.telemetry.clone(),
            ops: self.ops.clone(),
            consumer: self.consumer.clone(),
            feeds: self.feeds.clone(),
        }
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
    fn tracking_pages_take_the_number_encoded_and_must_say_where_it_goes() {
        let with = format!(
            "{TENANT}\n[tenants.fulfilment.tracking_urls]\nPostNord = \"https://track.example/?id={{tracking}}\"\n"
        );
        let config = Config::from_toml(&with).expect("valid");
        let f = &config.tenants[0].fulfilment;
        assert_eq!(
            f.tracking_url("PostNord", "PN 12/3").as_deref(),
            Some("https://track.example/?id=PN%2012%2F3")
        );
        assert_eq!(f.tracking_url("DHL", "1"), None, "no page named: no link");
        for bad in ["ftp://track.example/{tracking}", "https://track.example/"] {
            let text =
                format!("{TENANT}\n[tenants.fulfilment.tracking_urls]\nPostNord = \"{bad}\"\n");
            assert!(
                matches!(Config::from_toml(&text), Err(ConfigError::Invalid(m)) if m.contains("tracking_urls")),
                "{bad}"
            );
        }
    }

    #[test]
    fn notification_channels_are_checked_and_their_webhooks_kept_secret() {
        let channels = r#"
        [tenants.notifications]
        window = "30s"
        [[tenants.notifications.channels]]
        name = "finance-chat"
        team = "finance"
        webhook = "https://hooks.example/T000/secret-path"
        [[tenants.notifications.channels]]
        name = "cfo"
        team = "finance"
        email = ["cfo@brand.example"]
        events = ["overdue"]
        "#;
        let without_smtp = format!("{TENANT}{channels}");
        assert!(
            matches!(Config::from_toml(&without_smtp), Err(ConfigError::Invalid(m)) if m.contains("[smtp]"))
        );
        let with_smtp = format!("[smtp]\nhost = \"mail.brand.example\"\n{without_smtp}");
        let config = Config::from_toml(&with_smtp).expect("valid");
        let n = &config.tenant("acme").expect("tenant").notifications;
        assert_eq!(n.window, Duration::from_secs(30));
        assert_eq!(n.channels[1].events, vec![NoticeEvent::Overdue]);
        assert_eq!(n.channels[0].team, ferry_domain::Owner::Finance);
        assert!(!format!("{config:?}").contains("secret-path"));
        let both = with_smtp.replace("events = [\"overdue\"]", "webhook = \"https://x\"");
        assert!(
            Config::from_toml(&both).is_err(),
            "a webhook and e-mail in one channel"
        );
        let no_team = with_smtp.replace(
            "team = \"finance\"\n        webhook",
            "team = \"sales\"\n        webhook",
        );
        assert!(Config::from_toml(&no_team).is_err(), "no such team");
    }

    /// The configuration the Helm chart mounts is one Ferry reads (a key after a table
    /// header belongs to that table: `tenants_dir` once sat under `[ingest]`).
    #[test]
    fn the_charts_configuration_is_read() {
        let values = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../helm/ferry/values.yaml"),
        )
        .expect("values.yaml");
        let block: String = values
            .lines()
            .skip_while(|l| !l.starts_with("config: |"))
            .skip(1)
            .take_while(|l| l.is_empty() || l.starts_with("  "))
            .map(|l| format!("{}\n", l.get(2..).unwrap_or("")))
            .collect();
        let dir = tempfile::tempdir().expect("tempdir");
        let text = block.replace("/etc/ferry/tenants", &dir.path().display().to_string());
        let c = Config::from_toml(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(c.tenants_dir.as_deref(), Some(dir.path()));
        assert_eq!(c.api.listen.port(), 50051);
        assert_eq!(c.ingest.listen.port(), 8080);
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
        let channels = &c.tenants[0].notifications.channels;
        assert_eq!(channels.len(), 1);
        assert_eq!(channels[0].team, ferry_domain::Owner::Operations);
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
