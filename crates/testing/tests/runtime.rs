//! The runtime against a real nats-server and PostgreSQL: publisher deduplication, and the
//! consumer runner's ack / NAK / TERM / exception behaviour.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failing test says what broke

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use ferry_domain::ExceptionKind;
use ferry_runtime::consumer::{ConsumerSpec, Delivery, Handler, HandlerError, Runner};
use ferry_runtime::exceptions::{ExceptionSink, RecordAndAnnounce, SinkError};
use ferry_runtime::nats::{self, Outgoing, Publisher, StreamKind, Topology};
use ferry_testing::TestEnv;
use tokio_util::sync::CancellationToken;

struct Rig {
    env: TestEnv,
    js: async_nats::jetstream::Context,
    topology: Topology,
    publisher: Publisher,
    store: ferry_store::Store,
    config: ferry_runtime::Config,
}

async fn rig() -> Rig {
    let env = TestEnv::new().await;
    let config = env.config();
    let client = nats::connect(&config.nats, "test").await.expect("nats");
    let js = nats::jetstream(client);
    let topology = Topology::new(&env.prefix);
    nats::provision_streams(&js, &topology, &config.nats)
        .await
        .expect("streams");
    let store = env.store().await;
    Rig {
        publisher: Publisher::new(js.clone()),
        js,
        topology,
        store,
        config,
        env,
    }
}

impl Rig {
    fn sink(&self) -> Arc<dyn ExceptionSink> {
        Arc::new(RecordAndAnnounce {
            store: Arc::new(self.store.clone()),
            publisher: self.publisher.clone(),
            topology: self.topology.clone(),
        })
    }

    fn runner(&self, tenant: &str, sink: Arc<dyn ExceptionSink>) -> Runner {
        Runner {
            js: self.js.clone(),
            topology: self.topology.clone(),
            spec: ConsumerSpec {
                service: "test",
                tenant: tenant.to_owned(),
                stream: StreamKind::Centra,
                durable: self.topology.consumer_name("test", tenant),
                filter_subject: self.topology.snapshots_filter(tenant),
                double_ack: true,
            },
            config: self.config.consumer.clone(),
            sink,
            grace: Duration::from_secs(5),
            gate: None,
        }
    }

    async fn send(&self, tenant: &str, number: i64, body: &[u8]) {
        self.publisher
            .publish(&Outgoing {
                subject: self.topology.snapshot_subject(tenant, number),
                msg_id: format!("{tenant}:{number}"),
                payload: Bytes::copy_from_slice(body),
            })
            .await
            .expect("published");
    }

    /// (pending, ack pending) of the test consumer; `None` until the runner created it.
    async fn pending(&self, tenant: &str) -> Option<(u64, usize)> {
        let stream = self
            .js
            .get_stream(self.topology.stream_name(StreamKind::Centra))
            .await
            .ok()?;
        let mut consumer: async_nats::jetstream::consumer::PullConsumer = stream
            .get_consumer(&self.topology.consumer_name("test", tenant))
            .await
            .ok()?;
        let info = consumer.info().await.ok()?;
        Some((info.num_pending, info.num_ack_pending))
    }

    async fn wait_drained(&self, tenant: &str) {
        for _ in 0..600 {
            if self.pending(tenant).await == Some((0, 0)) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("consumer did not drain: {:?}", self.pending(tenant).await);
    }
}

/// Records what it saw, and fails as told by the payload.
#[derive(Default)]
struct Scripted {
    seen: std::sync::Mutex<Vec<(String, i64)>>,
    calls: AtomicUsize,
}

#[async_trait]
impl Handler for Scripted {
    async fn handle(&self, d: &Delivery) -> Result<(), HandlerError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let body = String::from_utf8_lossy(&d.payload).to_string();
        self.seen
            .lock()
            .map(|mut s| s.push((body.clone(), d.delivered)))
            .ok();
        match body.as_str() {
            "ok" => Ok(()),
            "flaky" if d.delivered >= 3 => Ok(()),
            "flaky" | "always-transient" => Err(HandlerError::transient("try later")),
            "slow" => {
                tokio::time::sleep(Duration::from_secs(12)).await;
                Ok(())
            }
            _ => Err(d.poison("test", "test", &"not a known payload")),
        }
    }
}

#[tokio::test]
async fn publisher_deduplicates_on_msg_id() {
    let rig = rig().await;
    let message = Outgoing {
        subject: rig.topology.snapshot_subject("acme", 1),
        msg_id: "same".into(),
        payload: Bytes::from_static(b"x"),
    };
    let first = rig.publisher.publish(&message).await.expect("first");
    let second = rig.publisher.publish(&message).await.expect("second");
    assert!(!first.duplicate);
    assert!(second.duplicate);
    assert_eq!(first.sequence, second.sequence);
    rig.env.cleanup().await;
}

#[tokio::test]
async fn runner_acks_retries_and_records_exceptions() {
    let rig = rig().await;
    let handler = Arc::new(Scripted::default());
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(
        rig.runner("acme", rig.sink())
            .run(handler.clone(), shutdown.clone()),
    );
    rig.send("acme", 1, b"ok").await;
    rig.send("acme", 2, b"flaky").await;
    rig.send("acme", 3, b"always-transient").await;
    rig.send("acme", 4, b"\xff\xfe poison").await;
    rig.send("acme", 5, b"ok").await;
    // A message for another tenant never reaches this consumer.
    rig.send("other", 6, b"ok").await;
    rig.wait_drained("acme").await;
    shutdown.cancel();
    task.await.expect("joined").expect("runner ok");

    let seen = handler.seen.lock().map(|s| s.clone()).unwrap_or_default();
    let deliveries = |body: &str| seen.iter().filter(|(b, _)| b == body).count();
    assert_eq!(
        deliveries("ok"),
        2,
        "tenant 'other' must not be seen: {seen:?}"
    );
    assert_eq!(deliveries("flaky"), 3);
    assert_eq!(
        deliveries("always-transient") as i64,
        rig.config.consumer.max_deliver
    );

    let exceptions = rig.store.open_exceptions("acme").await.expect("exceptions");
    let kinds: Vec<&str> = exceptions.iter().map(|e| e.kind.as_str()).collect();
    assert!(
        kinds.contains(&ExceptionKind::DeliveryExhausted.as_str()),
        "{kinds:?}"
    );
    assert!(
        kinds.contains(&ExceptionKind::PoisonMessage.as_str()),
        "{kinds:?}"
    );
    assert_eq!(exceptions.len(), 2);
    let poison = exceptions
        .iter()
        .find(|e| e.kind == "poison_message")
        .expect("poison");
    assert_eq!(poison.payload, b"\xff\xfe poison");
    assert_eq!(poison.owner, "engineering");
    assert!(
        poison
            .source_subject
            .as_deref()
            .is_some_and(|s| s.ends_with(".centra.order.4"))
    );
    rig.env.cleanup().await;
}

/// A sink that refuses the first attempts, as when the database is away.
struct FlakySink {
    inner: Arc<dyn ExceptionSink>,
    refusals: AtomicUsize,
}

#[async_trait]
impl ExceptionSink for FlakySink {
    async fn record(&self, e: &ferry_domain::NewException) -> Result<(), SinkError> {
        if self.refusals.fetch_sub(1, Ordering::SeqCst) > 0 {
            return Err(SinkError("database away".into()));
        }
        self.inner.record(e).await
    }
}

#[tokio::test]
async fn a_message_is_never_dropped_before_its_exception_is_stored() {
    let rig = rig().await;
    let sink = Arc::new(FlakySink {
        inner: rig.sink(),
        refusals: AtomicUsize::new(2),
    });
    let handler = Arc::new(Scripted::default());
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(
        rig.runner("acme", sink)
            .run(handler.clone(), shutdown.clone()),
    );
    rig.send("acme", 1, b"poison!").await;
    rig.wait_drained("acme").await;
    shutdown.cancel();
    task.await.expect("joined").expect("runner ok");
    assert_eq!(
        handler.calls.load(Ordering::SeqCst),
        3,
        "redelivered until the record was stored"
    );
    let exceptions = rig.store.open_exceptions("acme").await.expect("exceptions");
    assert_eq!(exceptions.len(), 1);
    assert_eq!(exceptions[0].seen_count, 1);
    rig.env.cleanup().await;
}

#[tokio::test]
async fn slow_work_is_kept_alive_with_progress_acks() {
    let rig = rig().await;
    let handler = Arc::new(Scripted::default());
    let shutdown = CancellationToken::new();
    // ack_wait is 5 s in tests; the handler takes 12 s.
    let task = tokio::spawn(
        rig.runner("acme", rig.sink())
            .run(handler.clone(), shutdown.clone()),
    );
    rig.send("acme", 1, b"slow").await;
    rig.wait_drained("acme").await;
    shutdown.cancel();
    task.await.expect("joined").expect("runner ok");
    let seen = handler.seen.lock().map(|s| s.clone()).unwrap_or_default();
    assert_eq!(
        seen,
        vec![("slow".to_owned(), 1)],
        "no redelivery while work progresses"
    );
    rig.env.cleanup().await;
}

#[tokio::test]
async fn shutdown_lets_in_flight_work_finish() {
    let rig = rig().await;
    let handler = Arc::new(Scripted::default());
    let shutdown = CancellationToken::new();
    let mut runner = rig.runner("acme", rig.sink());
    runner.grace = Duration::from_secs(20);
    let task = tokio::spawn(runner.run(handler.clone(), shutdown.clone()));
    rig.send("acme", 1, b"slow").await;
    while handler.calls.load(Ordering::SeqCst) == 0 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    shutdown.cancel();
    task.await.expect("joined").expect("runner ok");
    assert_eq!(
        rig.pending("acme").await,
        Some((0, 0)),
        "the in-flight message was finished and acked"
    );
    rig.env.cleanup().await;
}
