//! The runtime against a real nats-server and PostgreSQL: publisher deduplication, and the
//! consumer runner's ack / NAK / TERM / exception behaviour.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use ferry_domain::ExceptionKind;
use ferry_runtime::consumer::{Delivery, Handler, HandlerError, Runner};
use ferry_runtime::exceptions::{ExceptionSink, SinkError};
use ferry_runtime::nats::{Outgoing, Publisher, StreamKind, Topology};
use ferry_runtime::{Readiness, ServiceBase};
use ferry_testing::TestEnv;
use tokio_util::sync::CancellationToken;

struct Rig {
    env: TestEnv,
    base: ServiceBase,
    js: async_nats::jetstream::Context,
    topology: Topology,
    publisher: Publisher,
    store: ferry_store::Store,
    config: ferry_config::Config,
}

async fn rig() -> Rig {
    let env = TestEnv::new().await;
    let config = env.config();
    let base = ServiceBase::connect(
        "test",
        Arc::new(config.runtime()),
        CancellationToken::new(),
        Readiness::default(),
    )
    .await
    .expect("nats");
    let store = env.store().await;
    Rig {
        publisher: base.publisher.clone(),
        js: base.js.clone(),
        topology: base.topology.clone(),
        base,
        store,
        config,
        env,
    }
}

impl Rig {
    fn sink(&self) -> Arc<dyn ExceptionSink> {
        ferry_platform::exception_sink(&self.store, &self.base)
    }

    fn runner(&self, tenant: &str, sink: Arc<dyn ExceptionSink>) -> Runner {
        let mut runner = Runner::builder(
            &self.base,
            sink,
            "test",
            tenant,
            StreamKind::Centra,
            self.topology.snapshots_filter(tenant),
        )
        .double_ack()
        .build();
        runner.grace = Duration::from_secs(5);
        runner
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
            _ => Err(d.poison("test", &"not a known payload")),
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
            .is_some_and(|s| s.ends_with(".centra.order.v1.4"))
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

// ---- The feed runner: leadership, cursors, retries, exceptions ----

use ferry_runtime::feed::{Cursors, Feed, FeedError, FeedRunner, FeedSpec, Pass};
use ferry_runtime::lease::Leading;

/// A feed that counts its passes (per replica) and moves its cursor by one each pass.
struct Counting {
    replica: &'static str,
    passes: Arc<std::sync::Mutex<Vec<(&'static str, String)>>>,
}

#[async_trait]
impl Feed for Counting {
    async fn pass(&self, cursor: &str) -> Result<Pass, FeedError> {
        self.passes
            .lock()
            .unwrap()
            .push((self.replica, cursor.to_owned()));
        let next = cursor.parse::<u64>().unwrap_or(0) + 1;
        Ok(Pass {
            cursor: next.to_string(),
            items: 1,
            ..Pass::default()
        })
    }
}

async fn feed_runner(rig: &Rig, ttl: Duration) -> FeedRunner {
    let mut config = rig.config.clone();
    config.feeds.lease_ttl = ttl;
    let base = ServiceBase::connect(
        "test",
        Arc::new(config.runtime()),
        CancellationToken::new(),
        Readiness::default(),
    )
    .await
    .expect("nats");
    FeedRunner::open(&base, rig.sink()).await.expect("buckets")
}

/// One replica reads a feed at a time; when it dies without a word (its process gone, the
/// lease no longer renewed), another takes over within the lease's TTL and continues from
/// the stored cursor: nothing read twice, nothing skipped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_feed_has_one_leader_and_another_takes_over_from_its_cursor() {
    let rig = rig().await;
    let ttl = Duration::from_secs(2);
    let passes = Arc::new(std::sync::Mutex::new(Vec::new()));
    let spec = FeedSpec::source("test", "acme", "numbers", Duration::from_millis(20));

    // Replica A on a runtime of its own, so it can die as a process does.
    let a_runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let a_runner = a_runtime.spawn({
        let config = rig.config.clone();
        let sink = rig.sink();
        let spec = spec.clone();
        let passes = passes.clone();
        async move {
            let mut config = config;
            config.feeds.lease_ttl = ttl;
            let base = ServiceBase::connect(
                "test",
                Arc::new(config.runtime()),
                CancellationToken::new(),
                Readiness::default(),
            )
            .await
            .unwrap();
            let runner = FeedRunner::open(&base, sink).await.unwrap();
            let feed = Arc::new(Counting {
                replica: "a",
                passes,
            });
            runner
                .run(spec, feed, Leading::new(), CancellationToken::new())
                .await;
        }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let b = feed_runner(&rig, ttl).await;
    let b_shutdown = CancellationToken::new();
    let b_leading = Leading::new();
    let b_task = tokio::spawn({
        let (b, spec, leading, shutdown) = (
            b.clone(),
            spec.clone(),
            b_leading.clone(),
            b_shutdown.clone(),
        );
        let feed = Arc::new(Counting {
            replica: "b",
            passes: passes.clone(),
        });
        async move { b.run(spec, feed, leading, shutdown).await }
    });
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(!b_leading.is_leading(), "B waits while A leads");
    assert!(passes.lock().unwrap().iter().all(|(r, _)| *r == "a"));

    let died = std::time::Instant::now();
    drop(a_runner);
    a_runtime.shutdown_background();
    while !b_leading.is_leading() {
        assert!(
            died.elapsed() < ttl * 3,
            "B took over within the lease's TTL"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let took = died.elapsed();
    assert!(took <= ttl + ttl / 2, "took over after {took:?}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    b_shutdown.cancel();
    b_task.await.unwrap();

    // Each cursor was read once, in order, whichever replica read it (A may have read one
    // more whose cursor it could not store: that one is read again, as the contract says).
    let passes = passes.lock().unwrap().clone();
    let first_b = passes
        .iter()
        .position(|(r, _)| *r == "b")
        .expect("B passed");
    let cursors: Vec<u64> = passes
        .iter()
        .map(|(_, c)| c.parse::<u64>().unwrap_or(0))
        .collect();
    for pair in cursors[..first_b].windows(2) {
        assert_eq!(pair[1], pair[0] + 1, "A: {cursors:?}");
    }
    for pair in cursors[first_b..].windows(2) {
        assert_eq!(pair[1], pair[0] + 1, "B: {cursors:?}");
    }
    let last_a = cursors[first_b - 1];
    assert!(
        cursors[first_b] == last_a + 1 || cursors[first_b] == last_a,
        "B continued where A's stored cursor was: {cursors:?}"
    );
    rig.env.cleanup().await;
}

/// A feed fails: transient failures are retried with backoff until a pass works; a
/// permanent one is recorded as an exception with its payload (once, however often it
/// repeats) and the feed keeps trying.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feed_failures_are_retried_and_permanent_ones_recorded() {
    struct Failing {
        calls: AtomicUsize,
    }
    #[async_trait]
    impl Feed for Failing {
        async fn pass(&self, cursor: &str) -> Result<Pass, FeedError> {
            match self.calls.fetch_add(1, Ordering::SeqCst) {
                0 | 1 => Err(FeedError::transient("the source is away")),
                2 | 3 => Err(FeedError::Permanent(Box::new(ferry_domain::NewException {
                    tenant: "acme".into(),
                    kind: ExceptionKind::FeedFailed,
                    key: "feed:test".into(),
                    message: "the source refuses us".into(),
                    reason: "401".into(),
                    order_number: None,
                    amount_minor: None,
                    currency: None,
                    service: "test".into(),
                    source_subject: None,
                    payload: b"the answer".to_vec(),
                }))),
                _ => Ok(Pass {
                    cursor: format!("{cursor}x"),
                    ..Pass::default()
                }),
            }
        }
    }
    let rig = rig().await;
    let runner = feed_runner(&rig, Duration::from_secs(3)).await;
    let feed = Arc::new(Failing {
        calls: AtomicUsize::new(0),
    });
    let shutdown = CancellationToken::new();
    let spec = FeedSpec::source("test", "acme", "failing", Duration::from_millis(10))
        .backoff(Duration::from_millis(10), Duration::from_millis(50));
    let handle = runner.spawn(spec, feed.clone(), shutdown.clone());
    let cursors = Cursors::open(&rig.js, &rig.topology, 1).await.unwrap();
    for _ in 0..200 {
        if cursors.get("acme", "failing").await.unwrap().0.len() >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    shutdown.cancel();
    handle.task.await.unwrap();
    assert!(cursors.get("acme", "failing").await.unwrap().0.len() >= 3);
    let open = rig.store.open_exceptions("acme").await.unwrap();
    assert_eq!(open.len(), 1, "{open:?}");
    assert_eq!(open[0].kind, "feed_failed");
    assert_eq!(open[0].seen_count, 2);
    let payload: Vec<u8> =
        sqlx::query_scalar("SELECT payload FROM exceptions WHERE tenant = 'acme'")
            .fetch_one(rig.store.pool())
            .await
            .unwrap();
    assert_eq!(payload, b"the answer");
    rig.env.cleanup().await;
}

/// A cursor moved by someone else (a replica that took over, an operator's reset) is not
/// overwritten: the runner reads it again and continues from there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cursor_moved_elsewhere_is_read_again_not_overwritten() {
    let rig = rig().await;
    let runner = feed_runner(&rig, Duration::from_secs(3)).await;
    let passes = Arc::new(std::sync::Mutex::new(Vec::new()));
    let feed = Arc::new(Counting {
        replica: "a",
        passes: passes.clone(),
    });
    let shutdown = CancellationToken::new();
    let spec = FeedSpec::source("test", "acme", "numbers", Duration::from_millis(30));
    let handle = runner.spawn(spec, feed, shutdown.clone());
    let cursors = Cursors::open(&rig.js, &rig.topology, 1).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    cursors.set("acme", "numbers", "1000").await.unwrap();
    // The next store fails (the revision moved), the runner backs off, reads it again.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    shutdown.cancel();
    handle.task.await.unwrap();
    let seen: Vec<String> = passes
        .lock()
        .unwrap()
        .iter()
        .map(|(_, c)| c.clone())
        .collect();
    let reset = seen
        .iter()
        .position(|c| c == "1000")
        .expect("the reset cursor was read");
    assert!(
        seen[reset..]
            .iter()
            .all(|c| c.parse::<u64>().unwrap() >= 1000),
        "{seen:?}"
    );
    let (stored, _) = cursors.get("acme", "numbers").await.unwrap();
    assert!(stored.parse::<u64>().unwrap() > 1000, "{stored}");
    rig.env.cleanup().await;
}

/// No message parked without a record: with PostgreSQL stopped, a poison message cannot
/// have its exception written, so the runner keeps it until the server's deliveries run
/// out and the server parks it. Once PostgreSQL is back, the dead-letter recorder has
/// written the exception, with the payload, exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_parked_while_the_database_was_down_is_recorded_once_it_is_back() {
    let env = TestEnv::new().await;
    let mut pg = ferry_testing::PrivatePostgres::start().expect("a private PostgreSQL");
    let mut config = env.config();
    config.database.url = pg.process.url.clone().into();
    config.database.acquire_timeout = Duration::from_millis(500);
    config.consumer.max_deliver = 3;
    config.consumer.backoff_base = Duration::from_millis(50);
    config.consumer.backoff_max = Duration::from_millis(200);
    let store = ferry_store::Store::connect(&config.database)
        .await
        .expect("connects");
    store.migrate().await.expect("migrated");
    let base = ServiceBase::connect(
        "test",
        Arc::new(config.runtime()),
        CancellationToken::new(),
        Readiness::default(),
    )
    .await
    .expect("nats");
    let sink = ferry_platform::exception_sink(&store, &base);
    let runner = Runner::builder(
        &base,
        sink.clone(),
        "test",
        "acme",
        StreamKind::Centra,
        base.topology.snapshots_filter("acme"),
    )
    .build();
    let consumer = tokio::spawn(runner.run(Arc::new(Scripted::default()), base.shutdown.clone()));
    let recorder =
        ferry_runtime::dead_letters::Recorder::spawn(&base, sink, vec!["acme".to_owned()]);

    pg.stop();
    base.publisher
        .publish(&Outgoing {
            subject: base.topology.snapshot_subject("acme", 77),
            msg_id: "acme:77".into(),
            payload: Bytes::from_static(b"cannot be read"),
        })
        .await
        .expect("published");
    // The server gives up on it: its advisory lands in the dead-letter stream.
    let dead = base
        .js
        .get_stream(base.topology.stream_name(StreamKind::DeadLetters))
        .await
        .expect("the dead-letter stream");
    let mut parked = false;
    for _ in 0..300 {
        let mut dead = dead.clone();
        if dead.info().await.expect("info").state.messages >= 1 {
            parked = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(parked, "the server parked the message");

    pg.restart().expect("PostgreSQL back");
    for _ in 0..300 {
        if !store
            .open_exceptions("acme")
            .await
            .unwrap_or_default()
            .is_empty()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Time for a second record, if one were coming.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rows: Vec<(String, i64, Vec<u8>, Option<String>)> = sqlx::query_as(
        "SELECT kind, seen_count, payload, source_subject FROM exceptions WHERE tenant = 'acme'",
    )
    .fetch_all(store.pool())
    .await
    .expect("exceptions");
    assert_eq!(rows.len(), 1, "exactly one record: {rows:?}");
    let (kind, seen, payload, subject) = &rows[0];
    assert_eq!(kind, "delivery_exhausted");
    assert_eq!(*seen, 1);
    assert_eq!(payload.as_slice(), b"cannot be read");
    assert_eq!(
        subject.as_deref(),
        Some(base.topology.snapshot_subject("acme", 77).as_str())
    );
    base.shutdown.cancel();
    let _ = consumer.await;
    let _ = recorder.await;
    env.cleanup().await;
}
