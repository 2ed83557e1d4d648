//! No message parked without a record. The consumer runner records an exception before it
//! gives a message up — unless the exception cannot be written (PostgreSQL away): then it
//! keeps NAKing until the server's `max_deliver` runs out, and the server parks the message
//! with only an advisory to say so. The `<PREFIX>_DEAD_LETTERS` stream keeps those
//! advisories (provisioned with the other streams, so none is missed while no recorder
//! runs), and the recorder — one shared durable consumer, run by every service process —
//! turns each into a `delivery_exhausted` exception carrying the original message's subject
//! and payload, read back from its stream. While the database is still away the recorder's
//! own handler fails transiently and retries: it never gives up.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use ferry_domain::{ExceptionKind, NewException};
use serde::Deserialize;

use crate::ServiceBase;
use crate::config::ConsumerConfig;
use crate::consumer::{Delivery, Handler, HandlerError, Runner};
use crate::exceptions::ExceptionSink;
use crate::nats::{StreamKind, Topology};

/// The advisory subject for messages of `stream` whose deliveries ran out.
pub fn advisory_subject(stream: &str) -> String {
    format!("$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.{stream}.*")
}

/// The tenant named on the recorder's own consumer (it serves every tenant).
pub const DEPLOYMENT: &str = "_deployment";
/// The recorder's durable consumer (shared by every process).
pub const DURABLE: &str = "dead-letter-recorder";

/// JetStream's `io.nats.jetstream.advisory.v1.max_deliver` (the fields Ferry reads).
#[derive(Debug, Deserialize)]
struct MaxDeliveries {
    stream: String,
    consumer: String,
    stream_seq: u64,
    deliveries: u64,
}

/// Records parked messages as exceptions.
pub struct Recorder {
    js: async_nats::jetstream::Context,
    topology: Topology,
    sink: Arc<dyn ExceptionSink>,
    tenants: Vec<String>,
}

impl Recorder {
    /// Runs the recorder until the service's shutdown.
    /// `tenants`: the deployment's tenant ids (to name one when the message is gone).
    pub fn spawn(
        base: &ServiceBase,
        sink: Arc<dyn ExceptionSink>,
        tenants: Vec<String>,
    ) -> tokio::task::JoinHandle<Result<(), crate::consumer::RunnerError>> {
        let recorder = Arc::new(Recorder {
            js: base.js.clone(),
            topology: base.topology.clone(),
            sink: sink.clone(),
            tenants,
        });
        let runner = Runner::builder(
            base,
            sink,
            "dead-letters",
            DEPLOYMENT,
            StreamKind::DeadLetters,
            advisory_subject("*"),
        )
        .durable(DURABLE.to_owned())
        .config(ConsumerConfig {
            // Never give up: a dead letter of the dead letters would have no record.
            max_deliver: 1_000_000,
            backoff_base: Duration::from_secs(1),
            backoff_max: Duration::from_secs(30),
            concurrency: 4,
            batch: 16,
            ..base.config.consumer.clone()
        })
        .build();
        tokio::spawn(runner.run(recorder, base.shutdown.clone()))
    }

    async fn original(&self, stream: &str, seq: u64) -> Option<(String, Vec<u8>)> {
        let stream = self.js.get_stream(stream).await.ok()?;
        let message = stream.get_raw_message(seq).await.ok()?;
        Some((message.subject.to_string(), message.payload.to_vec()))
    }
}

#[async_trait]
impl Handler for Recorder {
    async fn handle(&self, delivery: &Delivery) -> Result<(), HandlerError> {
        let advisory: MaxDeliveries = serde_json::from_slice(&delivery.payload)
            .map_err(|e| delivery.poison("max-deliveries advisory", &e))?;
        // The message itself, from its stream (gone only if it aged out meanwhile).
        let original = self.original(&advisory.stream, advisory.stream_seq).await;
        let (subject, payload) = original.clone().unwrap_or_default();
        let tenant = self
            .topology
            .tenant_of(&subject)
            .or_else(|| tenant_of_consumer(&advisory.consumer, &self.tenants))
            .unwrap_or(DEPLOYMENT)
            .to_owned();
        let service = advisory
            .consumer
            .strip_suffix(&format!("-{tenant}"))
            .unwrap_or(&advisory.consumer)
            .to_owned();
        let kept = if original.is_some() {
            "The payload is stored with this exception."
        } else {
            "The message had already left its stream; only its place is known."
        };
        let exception = NewException {
            tenant,
            kind: ExceptionKind::DeliveryExhausted,
            key: format!("dead:{}:{}", advisory.stream, advisory.stream_seq),
            message: format!(
                "A message kept failing in {service} and was set aside by the broker after {} \
                 attempts, while its failure could not be recorded (the database was away). \
                 {kept} Engineering must fix the cause and replay it.",
                advisory.deliveries
            ),
            reason: format!(
                "max deliveries reached on {} sequence {} (consumer {})",
                advisory.stream, advisory.stream_seq, advisory.consumer
            ),
            order_number: None,
            amount_minor: None,
            currency: None,
            service,
            source_subject: (!subject.is_empty()).then_some(subject),
            payload,
        };
        self.sink
            .record(&exception)
            .await
            .map_err(HandlerError::transient)
    }
}

/// Consumers are named `<service>-<tenant>`: the longest configured tenant that ends the name.
fn tenant_of_consumer<'a>(consumer: &str, tenants: &'a [String]) -> Option<&'a str> {
    tenants
        .iter()
        .filter(|t| consumer.ends_with(&format!("-{t}")))
        .max_by_key(|t| t.len())
        .map(String::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_servers_advisory() {
        let body = br#"{"type":"io.nats.jetstream.advisory.v1.max_deliver","id":"x","timestamp":"2026-12-06T06:00:00Z","stream":"FERRY_ORDERS","consumer":"erp-writer-acme","stream_seq":42,"deliveries":13}"#;
        let a: MaxDeliveries = serde_json::from_slice(body).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (a.stream.as_str(), a.stream_seq, a.deliveries),
            ("FERRY_ORDERS", 42, 13)
        );
        let tenants = ["acme".to_owned(), "me".to_owned()];
        assert_eq!(tenant_of_consumer(&a.consumer, &tenants), Some("acme"));
    }
}
