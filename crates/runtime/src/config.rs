//! The runtime's own settings — NATS, telemetry, the ops endpoint, consumers and feeds — as
//! sections of Ferry's configuration file (the file itself, tenants and the services'
//! sections are `ferry-config`'s). Secrets are [`SecretString`]s that print as `[REDACTED]`.

use std::net::SocketAddr;
use std::time::Duration;

use secrecy::SecretString;
use serde::{Deserialize, Serialize};

/// What the runtime needs of the configuration: every service process has one.
#[derive(Debug, Clone, Default)]
pub struct RuntimeConfig {
    pub nats: NatsConfig,
    pub telemetry: TelemetryConfig,
    pub ops: OpsConfig,
    pub consumer: ConsumerConfig,
    pub feeds: FeedsConfig,
}

impl RuntimeConfig {
    /// Checks what serde cannot; the message names the setting.
    pub fn validate(&self) -> Result<(), String> {
        if !is_token(&self.nats.prefix) {
            return Err(format!(
                "nats.prefix {:?} must be lowercase letters, digits, '-' or '_'",
                self.nats.prefix
            ));
        }
        if !self.nats.url.starts_with("nats://") && !self.nats.url.starts_with("tls://") {
            return Err(format!(
                "nats.url {:?} must start with nats:// or tls://",
                self.nats.url
            ));
        }
        if self.nats.replicas == 0 || self.nats.replicas > 5 {
            return Err("nats.replicas must be between 1 and 5".into());
        }
        if self.consumer.max_deliver < 2 {
            return Err("consumer.max_deliver must be at least 2".into());
        }
        if self.feeds.lease_ttl < Duration::from_secs(1) {
            return Err("feeds.lease_ttl must be at least 1s".into());
        }
        if self.feeds.backoff_min.is_zero() || self.feeds.backoff_max < self.feeds.backoff_min {
            return Err("feeds.backoff_min must be positive and at most feeds.backoff_max".into());
        }
        if self.consumer.concurrency == 0 || self.consumer.batch == 0 {
            return Err("consumer.concurrency and consumer.batch must be positive".into());
        }
        Ok(())
    }
}

/// Safe as a NATS subject token, stream name part and log field.
pub fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 48
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
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
    /// Each service creates or updates the streams when it starts; off where a job does it
    /// before the services start (`ferry migrate`, the chart's hook), and services then
    /// only check the streams are there.
    pub provision_on_start: bool,
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
            provision_on_start: true,
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
    /// Log to standard error instead of standard output: commands whose output is data
    /// (`ferry reconcile run --json`) set it.
    pub log_to_stderr: bool,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self {
            log_format: LogFormat::Pretty,
            log_filter: "info".to_owned(),
            otlp_endpoint: None,
            otlp_metrics_interval: Duration::from_secs(30),
            log_to_stderr: false,
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
    /// First NAK delay; doubles per delivery up to `backoff_max`, each plus up to as much
    /// again at random (backon's jitter), at most twice `backoff_max`.
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
