//! NATS JetStream as code: the subject and stream names of one deployment (its prefix), the
//! streams every service needs (provisioned idempotently at start-up), and a publisher that
//! always sets `Nats-Msg-Id` and retries with the same id.

use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::{self, consumer, stream};
use backon::{ExponentialBuilder, Retryable};
use bytes::Bytes;
use futures::future::join_all;
use secrecy::ExposeSecret;
use tracing::Instrument as _;

use crate::config::{ConsumerConfig, NatsConfig};
use crate::telemetry;

/// The header JetStream deduplicates on.
pub const MSG_ID: &str = "Nats-Msg-Id";

#[derive(Debug, thiserror::Error)]
pub enum NatsError {
    #[error("connecting to NATS at {url}: {source}")]
    Connect {
        url: String,
        source: async_nats::ConnectError,
    },
    #[error("provisioning stream {stream}: {reason}")]
    Stream { stream: String, reason: String },
    #[error("provisioning consumer {consumer}: {reason}")]
    Consumer { consumer: String, reason: String },
    #[error("key-value bucket {bucket}: {reason}")]
    Kv { bucket: String, reason: String },
    #[error("publishing to {subject}: {reason}")]
    Publish {
        subject: String,
        reason: String,
        /// A publish that can never succeed (payload too large): retrying is pointless.
        permanent: bool,
    },
}

impl NatsError {
    pub fn is_permanent(&self) -> bool {
        matches!(
            self,
            NatsError::Publish {
                permanent: true,
                ..
            }
        )
    }
}

/// The streams of a deployment. Every subject is `<prefix>.<tenant>.<area>.<event>.v<N>[.<key>]`:
/// the tenant second (consumers filter on one tenant), the message's version before its key
/// (a new version of a message is a new subject, so old and new consumers can overlap).
/// `docs/architecture.md` has the table of every subject.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StreamKind {
    /// Centra notices and full order snapshots.
    Centra,
    /// Ready, posted and amended sales orders.
    Orders,
    /// Exceptions raised by any service.
    Exceptions,
    /// What the ERP reports: shipments and stock levels (the last message per subject).
    Erp,
    /// JetStream's advisories about messages of the other streams whose deliveries ran out
    /// (see `dead_letters.rs`).
    DeadLetters,
}

impl StreamKind {
    pub const ALL: [StreamKind; 5] = [
        StreamKind::Centra,
        StreamKind::Orders,
        StreamKind::Exceptions,
        StreamKind::Erp,
        StreamKind::DeadLetters,
    ];

    fn suffix(&self) -> &'static str {
        match self {
            StreamKind::Centra => "CENTRA",
            StreamKind::Orders => "ORDERS",
            StreamKind::Exceptions => "EXCEPTIONS",
            StreamKind::Erp => "ERP",
            StreamKind::DeadLetters => "DEAD_LETTERS",
        }
    }

    fn token(&self) -> &'static str {
        match self {
            StreamKind::Centra => "centra",
            StreamKind::Orders => "order",
            StreamKind::Exceptions => "exception",
            StreamKind::Erp => "erp",
            StreamKind::DeadLetters => "dead-letters",
        }
    }

    /// Messages kept per subject (`None`: all, within the stream's limits). The ERP stream
    /// keeps the latest shipment per id and the latest level per (warehouse, item), so
    /// JetStream itself coalesces what consumers have not read yet.
    fn per_subject(&self) -> Option<i64> {
        match self {
            StreamKind::Erp => Some(1),
            _ => None,
        }
    }
}

/// Names of every subject, stream and consumer of one deployment. Every subject carries
/// the tenant as its second token, and every consumer filters on one tenant, so one brand's
/// messages never reach another brand's consumer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topology {
    prefix: String,
}

impl Topology {
    pub fn new(prefix: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into(),
        }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    pub fn stream_name(&self, kind: StreamKind) -> String {
        format!(
            "{}_{}",
            self.prefix.to_ascii_uppercase().replace('-', "_"),
            kind.suffix()
        )
    }

    /// A key-value bucket of this deployment: `<PREFIX>_<NAME>`.
    pub fn bucket_name(&self, name: &str) -> String {
        format!(
            "{}_{name}",
            self.prefix.to_ascii_uppercase().replace('-', "_")
        )
    }

    /// All subjects of a stream, across tenants: `<prefix>.*.<kind>.>` (the dead letters:
    /// the server's max-deliveries advisories about this deployment's other streams).
    pub fn stream_subjects(&self, kind: StreamKind) -> Vec<String> {
        match kind {
            StreamKind::DeadLetters => StreamKind::ALL
                .iter()
                .filter(|k| **k != StreamKind::DeadLetters)
                .map(|k| crate::dead_letters::advisory_subject(&self.stream_name(*k)))
                .collect(),
            _ => vec![format!("{}.*.{}.>", self.prefix, kind.token())],
        }
    }

    /// `<prefix>.<tenant>.centra.notices.v1`: batches of change notices.
    pub fn notices_subject(&self, tenant: &str) -> String {
        format!("{}.{tenant}.centra.notices.v1", self.prefix)
    }

    /// `<prefix>.<tenant>.centra.order.v1.<number>`
    pub fn snapshot_subject(&self, tenant: &str, number: i64) -> String {
        format!("{}.{tenant}.centra.order.v1.{number}", self.prefix)
    }

    pub fn snapshots_filter(&self, tenant: &str) -> String {
        format!("{}.{tenant}.centra.order.v1.*", self.prefix)
    }

    /// `<prefix>.<tenant>.centra.return.v1.<return_id>`: a return and its order, as read.
    pub fn return_snapshot_subject(&self, tenant: &str, return_id: i64) -> String {
        format!("{}.{tenant}.centra.return.v1.{return_id}", self.prefix)
    }

    pub fn return_snapshots_filter(&self, tenant: &str) -> String {
        format!("{}.{tenant}.centra.return.v1.*", self.prefix)
    }

    /// `<prefix>.<tenant>.centra.customer.v1.<id>`: a customer account as it is now.
    pub fn customer_subject(&self, tenant: &str, centra_customer_id: i64) -> String {
        format!(
            "{}.{tenant}.centra.customer.v1.{centra_customer_id}",
            self.prefix
        )
    }

    pub fn customers_filter(&self, tenant: &str) -> String {
        format!("{}.{tenant}.centra.customer.v1.*", self.prefix)
    }

    /// `<prefix>.<tenant>.order.return.v1.<return_id>`: a completed return, priced.
    pub fn return_ready_subject(&self, tenant: &str, return_id: i64) -> String {
        format!("{}.{tenant}.order.return.v1.{return_id}", self.prefix)
    }

    pub fn returns_ready_filter(&self, tenant: &str) -> String {
        format!("{}.{tenant}.order.return.v1.*", self.prefix)
    }

    /// `<prefix>.<tenant>.order.ready.v1.<number>`
    pub fn ready_subject(&self, tenant: &str, number: i64) -> String {
        format!("{}.{tenant}.order.ready.v1.{number}", self.prefix)
    }

    pub fn ready_filter(&self, tenant: &str) -> String {
        format!("{}.{tenant}.order.ready.v1.*", self.prefix)
    }

    /// `<prefix>.<tenant>.order.posted.v1.<number>`
    pub fn posted_subject(&self, tenant: &str, number: i64) -> String {
        format!("{}.{tenant}.order.posted.v1.{number}", self.prefix)
    }

    pub fn posted_filter(&self, tenant: &str) -> String {
        format!("{}.{tenant}.order.posted.v1.*", self.prefix)
    }

    /// `<prefix>.<tenant>.order.amended.v1.<number>`
    pub fn amended_subject(&self, tenant: &str, number: i64) -> String {
        format!("{}.{tenant}.order.amended.v1.{number}", self.prefix)
    }

    pub fn amended_filter(&self, tenant: &str) -> String {
        format!("{}.{tenant}.order.amended.v1.*", self.prefix)
    }

    /// `<prefix>.<tenant>.exception.v1.<kind>`
    pub fn exception_subject(&self, tenant: &str, kind: &str) -> String {
        format!("{}.{tenant}.exception.v1.{kind}", self.prefix)
    }

    /// `<prefix>.<tenant>.erp.shipment.v1.<shipment>`: the ERP's shipment, latest version.
    pub fn shipment_subject(&self, tenant: &str, erp_shipment_id: &str) -> String {
        format!(
            "{}.{tenant}.erp.shipment.v1.{}",
            self.prefix,
            subject_token(erp_shipment_id)
        )
    }

    pub fn shipments_filter(&self, tenant: &str) -> String {
        format!("{}.{tenant}.erp.shipment.v1.*", self.prefix)
    }

    /// `<prefix>.<tenant>.erp.stock.v1.<warehouse>.<item>`: the latest level.
    pub fn stock_subject(&self, tenant: &str, warehouse: &str, erp_item: &str) -> String {
        format!(
            "{}.{tenant}.erp.stock.v1.{}.{}",
            self.prefix,
            subject_token(warehouse),
            subject_token(erp_item)
        )
    }

    pub fn stock_filter(&self, tenant: &str) -> String {
        format!("{}.{tenant}.erp.stock.v1.>", self.prefix)
    }

    /// Durable consumer of one service for one tenant.
    pub fn consumer_name(&self, service: &str, tenant: &str) -> String {
        format!("{service}-{tenant}")
    }

    /// The tenant token of a subject of this deployment.
    pub fn tenant_of<'a>(&self, subject: &'a str) -> Option<&'a str> {
        let rest = subject.strip_prefix(&self.prefix)?.strip_prefix('.')?;
        rest.split('.').next()
    }
}

/// A subject without its identifying tokens, written as the consumers' filters write it —
/// `<prefix>.<tenant>.<kind>.<type>.v1` then `*` for one token (an order number, a shipment
/// id) or `>` for more (a warehouse and an item): the low-cardinality destination a span
/// is named after.
pub fn subject_template(subject: &str) -> String {
    match subject.splitn(6, '.').collect::<Vec<_>>().as_slice() {
        [head @ .., rest] if head.len() == 5 => {
            let wildcard = if rest.contains('.') { ">" } else { "*" };
            format!("{}.{wildcard}", head.join("."))
        }
        _ => subject.to_owned(),
    }
}

/// An ERP's identifier as one subject token, reversibly: letters, digits, `-` and `_` stay,
/// every other byte becomes `~` and two hex digits (ids hold dots, slashes and spaces; two
/// ids never share a token).
pub fn subject_token(id: &str) -> String {
    let mut token = String::with_capacity(id.len());
    for b in id.bytes() {
        match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' => token.push(char::from(b)),
            _ => token.push_str(&format!("~{b:02X}")),
        }
    }
    if token.is_empty() {
        token.push('~');
    }
    token
}

/// Connects to NATS with the settings every service uses.
pub async fn connect(config: &NatsConfig, name: &str) -> Result<async_nats::Client, NatsError> {
    let client_name = name.to_owned();
    let mut options = async_nats::ConnectOptions::new()
        .name(name)
        .connection_timeout(config.connect_timeout)
        .retry_on_initial_connect()
        .max_reconnects(None)
        .event_callback(move |event| {
            let client = client_name.clone();
            async move {
                match event {
                    async_nats::Event::Connected => tracing::debug!(client, "connected to NATS"),
                    async_nats::Event::Disconnected => {
                        tracing::warn!(client, "disconnected from NATS; reconnecting")
                    }
                    async_nats::Event::SlowConsumer(sid) => {
                        tracing::warn!(client, sid, "slow NATS consumer")
                    }
                    other => tracing::debug!(client, event = %other, "NATS event"),
                }
            }
        });
    if let Some(token) = &config.token {
        options = options.token(token.expose_secret().to_owned());
    }
    // retry_on_initial_connect makes connect() return at once; wait for the first connection
    // so that readiness means something.
    let client = options
        .connect(&config.url)
        .await
        .map_err(|source| NatsError::Connect {
            url: config.url.clone(),
            source,
        })?;
    let deadline = tokio::time::Instant::now() + config.connect_timeout;
    while client.connection_state() != async_nats::connection::State::Connected {
        if tokio::time::Instant::now() > deadline {
            return Err(NatsError::Connect {
                url: config.url.clone(),
                source: async_nats::ConnectError::from(async_nats::ConnectErrorKind::TimedOut),
            });
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(client)
}

/// The JetStream context services use (publish acks time out after 10 s).
pub fn jetstream(client: async_nats::Client) -> jetstream::Context {
    jetstream::ContextBuilder::new()
        .timeout(Duration::from_secs(10))
        .build(client)
}

/// Creates or updates the streams: file storage, `discard: new` with a byte limit
/// (a full stream refuses publishes instead of dropping old orders), a maximum age, and a
/// duplicate window for `Nats-Msg-Id`.
/// Checks every stream of the deployment exists (where a job provisions them, not the
/// services): a missing one says what to run.
pub async fn check_streams(js: &jetstream::Context, topology: &Topology) -> Result<(), NatsError> {
    for kind in StreamKind::ALL {
        let name = topology.stream_name(kind);
        js.get_stream(&name)
            .await
            .map_err(|e| NatsError::Stream {
                stream: name.clone(),
                reason: format!(
                    "{e}: nats.provision_on_start is off and the stream is missing — run `ferry migrate`"
                ),
            })?;
    }
    Ok(())
}

pub async fn provision_streams(
    js: &jetstream::Context,
    topology: &Topology,
    config: &NatsConfig,
) -> Result<(), NatsError> {
    for kind in StreamKind::ALL {
        let name = topology.stream_name(kind);
        let stream_config = stream::Config {
            name: name.clone(),
            subjects: topology.stream_subjects(kind),
            storage: stream::StorageType::File,
            retention: stream::RetentionPolicy::Limits,
            discard: stream::DiscardPolicy::New,
            max_bytes: config.stream_max_bytes,
            max_age: config.stream_max_age,
            duplicate_window: config.duplicate_window,
            num_replicas: config.replicas,
            max_messages_per_subject: kind.per_subject().unwrap_or(-1),
            description: Some(format!("Ferry {} stream", kind.token())),
            ..Default::default()
        };
        js.create_or_update_stream(stream_config)
            .await
            .map_err(|e| NatsError::Stream {
                stream: name.clone(),
                reason: e.to_string(),
            })?;
    }
    Ok(())
}

/// Creates (or updates) a durable pull consumer on one tenant's subjects.
pub async fn durable_consumer(
    js: &jetstream::Context,
    topology: &Topology,
    kind: StreamKind,
    durable: &str,
    filter_subject: &str,
    config: &ConsumerConfig,
) -> Result<consumer::PullConsumer, NatsError> {
    let fail = |e: &dyn std::fmt::Display| NatsError::Consumer {
        consumer: durable.to_owned(),
        reason: e.to_string(),
    };
    let stream = js
        .get_stream(topology.stream_name(kind))
        .await
        .map_err(|e| fail(&e))?;
    stream
        .create_consumer(consumer::pull::Config {
            durable_name: Some(durable.to_owned()),
            filter_subject: filter_subject.to_owned(),
            ack_policy: consumer::AckPolicy::Explicit,
            ack_wait: config.ack_wait,
            // The runner TERMs before the server gives up, so a message that exhausts its
            // deliveries always becomes an exception record first.
            max_deliver: config.max_deliver + 1,
            max_ack_pending: config.max_ack_pending,
            deliver_policy: consumer::DeliverPolicy::All,
            ..Default::default()
        })
        .await
        .map_err(|e| fail(&e))
}

/// One message to publish.
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub subject: String,
    /// Content identity: JetStream drops a second message with the same id in its window.
    pub msg_id: String,
    pub payload: Bytes,
}

/// Publishes with `Nats-Msg-Id` and the current trace context, retrying transient failures
/// with backoff and jitter under the same id (so a retry after a lost ack is a duplicate
/// the server drops, not a second message).
#[derive(Clone)]
pub struct Publisher {
    js: jetstream::Context,
    retry: ExponentialBuilder,
}

impl Publisher {
    pub fn new(js: jetstream::Context) -> Self {
        Self {
            js,
            retry: ExponentialBuilder::new()
                .with_min_delay(Duration::from_millis(50))
                .with_max_delay(Duration::from_secs(2))
                .with_jitter()
                .with_max_times(6),
        }
    }

    pub fn context(&self) -> &jetstream::Context {
        &self.js
    }

    /// Publishes one message and waits for JetStream's acknowledgement, in a producer span
    /// named and described by OpenTelemetry's messaging conventions; the consumer's span
    /// continues its trace.
    pub async fn publish(
        &self,
        message: &Outgoing,
    ) -> Result<jetstream::publish::PublishAck, NatsError> {
        // Every publish passes here: the template is worked out only for a span something
        // records.
        let span = tracing::info_span!(
            "publish",
            otel.kind = "producer",
            otel.name = tracing::field::Empty,
            messaging.system = "nats",
            messaging.operation.type = "send",
            messaging.operation.name = "publish",
            messaging.destination.name = %message.subject,
            messaging.destination.template = tracing::field::Empty,
            messaging.message.id = %message.msg_id,
        );
        if !span.is_disabled() {
            let template = subject_template(&message.subject);
            span.record("otel.name", format!("publish {template}"));
            span.record("messaging.destination.template", template);
        }
        let mut headers = HeaderMap::new();
        span.in_scope(|| telemetry::inject_context(&mut headers));
        headers.insert(MSG_ID, message.msg_id.as_str());
        (|| self.publish_once(message, headers.clone()))
            .retry(self.retry)
            .when(|e: &NatsError| !e.is_permanent())
            .notify(|e, after| tracing::warn!(error = %e, retry_in = ?after, "publish failed; retrying"))
            .instrument(span)
            .await
    }

    /// Publishes many messages pipelined (all sent, then all acks awaited), each retried on
    /// its own. Fails if any message could not be stored.
    pub async fn publish_all(&self, messages: &[Outgoing]) -> Result<(), NatsError> {
        let results = join_all(messages.iter().map(|m| self.publish(m))).await;
        results.into_iter().try_for_each(|r| r.map(|_| ()))
    }

    async fn publish_once(
        &self,
        message: &Outgoing,
        headers: HeaderMap,
    ) -> Result<jetstream::publish::PublishAck, NatsError> {
        let fail = |e: &dyn std::fmt::Display, permanent: bool| NatsError::Publish {
            subject: message.subject.clone(),
            reason: e.to_string(),
            permanent,
        };
        let ack = self
            .js
            .publish_with_headers(message.subject.clone(), headers, message.payload.clone())
            .await
            .map_err(|e| {
                let permanent = matches!(
                    e.kind(),
                    jetstream::context::PublishErrorKind::MaxPayloadExceeded
                );
                fail(&e, permanent)
            })?;
        ack.await.map_err(|e| fail(&e, false))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn span_destinations_drop_the_identifying_tokens() {
        let t = Topology::new("ferry");
        assert_eq!(
            subject_template(&t.ready_subject("acme", 7)),
            t.ready_filter("acme")
        );
        assert_eq!(
            subject_template(&t.snapshot_subject("acme", 48170)),
            t.snapshots_filter("acme")
        );
        assert_eq!(
            subject_template(&t.stock_subject("acme", "WH", "SKU-1")),
            t.stock_filter("acme")
        );
        assert_eq!(
            subject_template(&t.shipment_subject("acme", "SH/7")),
            t.shipments_filter("acme")
        );
        // Subjects with nothing identifying stay as they are.
        let notices = t.notices_subject("acme");
        assert_eq!(subject_template(&notices), notices);
        let exception = t.exception_subject("acme", "unmapped_sku");
        assert_eq!(subject_template(&exception), exception);
    }

    #[test]
    fn ids_become_one_token_each() {
        assert_eq!(subject_token("SH-00042"), "SH-00042");
        assert_eq!(subject_token("WH/1.a b"), "WH~2F1~2Ea~20b");
        assert_eq!(subject_token(""), "~");
        assert_eq!(subject_token("*>"), "~2A~3E");
    }

    #[test]
    fn subjects_carry_tenant_then_version_before_key() {
        let t = Topology::new("ferry");
        assert_eq!(t.ready_subject("acme", 7), "ferry.acme.order.ready.v1.7");
        assert_eq!(
            t.shipment_subject("acme", "SH/7"),
            "ferry.acme.erp.shipment.v1.SH~2F7"
        );
        assert_eq!(
            t.stock_subject("acme", "WH", "JKT.M"),
            "ferry.acme.erp.stock.v1.WH.JKT~2EM"
        );
        assert_eq!(t.tenant_of("ferry.acme.erp.stock.v1.WH.X"), Some("acme"));
    }

    proptest! {
        /// Every id is a single valid subject token, and different ids never share one.
        #[test]
        fn tokens_are_valid_and_distinct(a in ".{0,12}", b in ".{0,12}") {
            for t in [subject_token(&a), subject_token(&b)] {
                prop_assert!(!t.is_empty());
                prop_assert!(t.bytes().all(|c| c.is_ascii_alphanumeric() || b"-_~".contains(&c)));
            }
            prop_assert_eq!(a == b, subject_token(&a) == subject_token(&b));
        }
    }
}
