//! What every Ferry service shares: layered configuration, telemetry (logs, traces,
//! metrics), NATS JetStream topology and publishing, the consumer runner, the ops endpoint
//! and graceful shutdown.

pub mod coalesce;
pub mod config;
pub mod consumer;
pub mod dead_letters;
pub mod exceptions;
pub mod feed;
pub mod http;
pub mod lease;
pub mod log_limit;
pub mod nats;
pub mod ops;
pub mod service;
pub mod shutdown;
pub mod telemetry;

pub use config::RuntimeConfig;
pub use consumer::{ConsumerSpec, Delivery, Handler, HandlerError, Runner, RunnerBuilder};
pub use exceptions::{ExceptionSink, ExceptionStore, SinkError};
pub use feed::{Feed, FeedError, FeedRunner, FeedSpec, Pass};
pub use nats::{Outgoing, Publisher, StreamKind, Topology};
pub use service::{Booted, Readiness, ServiceBase};
pub use telemetry::Telemetry;
