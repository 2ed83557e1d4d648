//! The order spine end to end, on a real nats-server and PostgreSQL with the simulators:
//! signed webhooks in, exactly one ERP sales order per Centra order out.

use std::time::Duration;

use ferry::stack::{Stack, StackOptions};
use ferry_sim_centra::{OrderMix, WebhookConfig};
use ferry_sim_erp::Faults;
use ferry_testing::TestEnv;

fn mix() -> OrderMix {
    OrderMix {
        hold_pct: 0,
        pending_pct: 0,
        ..OrderMix::default()
    }
}

async fn start(env: &TestEnv, webhook_faults: WebhookConfig) -> Stack {
    let mut config = env.config();
    config.erp_writer.request_timeout = Duration::from_secs(2);
    let options = StackOptions {
        tenant: "acme".into(),
        seed: 7,
        centra_requests_per_10s: 1000,
        webhook_faults,
        ..StackOptions::default()
    };
    let stack = Stack::start(config, options).await.expect("stack starts");
    // A naive ERP: any double post would become a second document.
    stack.erp.set_faults(Faults {
        ignore_idempotency_key: true,
        ..Faults::default()
    });
    stack
}

async fn wait_posted(
    store: &ferry_store::Store,
    tenant: &str,
    expected: i64,
    within: Duration,
) -> Vec<(String, i64)> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let states = store.count_by_state(tenant).await.expect("ledger");
        let posted = states
            .iter()
            .find(|(s, _)| s == "posted")
            .map(|(_, n)| *n)
            .unwrap_or(0);
        if posted >= expected || tokio::time::Instant::now() > deadline {
            return states;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Nothing left in any consumer: every message acknowledged.
async fn assert_drained(env: &TestEnv) {
    let js = async_nats::jetstream::new(env.nats().await);
    let topology = ferry_runtime::Topology::new(&env.prefix);
    for (kind, consumer) in [
        (ferry_runtime::StreamKind::Centra, "ingest-fetch-acme"),
        (ferry_runtime::StreamKind::Centra, "transform-acme"),
        (ferry_runtime::StreamKind::Orders, "erp-writer-acme"),
    ] {
        let stream = js
            .get_stream(topology.stream_name(kind))
            .await
            .expect("stream");
        let mut drained = false;
        for _ in 0..100 {
            let mut c: async_nats::jetstream::consumer::PullConsumer =
                stream.get_consumer(consumer).await.expect("consumer");
            let info = c.info().await.expect("info");
            if info.num_pending == 0 && info.num_ack_pending == 0 {
                drained = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(drained, "{consumer} still has unacknowledged messages");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_orders_with_duplicated_and_reordered_webhooks_post_exactly_once() {
    let env = TestEnv::new().await;
    let faults = WebhookConfig {
        duplicate_per_mille: 200,
        reorder_per_mille: 100,
        batch_max: 20,
        ..WebhookConfig::default()
    };
    let stack = start(&env, faults).await;
    let store = env.store().await;
    let numbers = stack.centra.generate(200, &mix());

    let states = wait_posted(&store, "acme", 200, Duration::from_secs(90)).await;
    assert_eq!(
        states,
        vec![("posted".to_owned(), 200)],
        "every order posted, nothing else"
    );
    let webhooks = stack.centra.webhook_stats();
    assert!(
        webhooks.events_duplicated > 10,
        "duplicates were sent: {webhooks:?}"
    );
    assert!(
        webhooks.events_reordered > 5,
        "reordering happened: {webhooks:?}"
    );

    let erp = stack.erp.orders();
    assert_eq!(
        erp.len(),
        200,
        "exactly one ERP sales order per Centra order"
    );
    assert!(stack.erp.duplicated_refs().is_empty());
    for number in &numbers {
        let row = store
            .ledger_row("acme", *number)
            .await
            .expect("ledger")
            .expect("row");
        let document = stack.erp.order(&number.to_string()).expect("in the ERP");
        assert_eq!(
            row.erp_reference.as_deref(),
            Some(document.reference.as_str())
        );
        assert_eq!(
            row.gross_minor,
            Some(document.gross_minor),
            "ERP total = what the customer paid"
        );
        assert_eq!(row.erp_gross_minor, Some(document.gross_minor));
    }
    assert!(
        store
            .open_exceptions("acme")
            .await
            .expect("exceptions")
            .is_empty()
    );
    assert_drained(&env).await;
    stack.shutdown().await;
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_erp_writer_mid_run_loses_and_duplicates_nothing() {
    let env = TestEnv::new().await;
    let mut stack = start(&env, WebhookConfig::default()).await;
    // Slow posts, so that the kill lands while many are in flight.
    stack.erp.set_faults(Faults {
        ignore_idempotency_key: true,
        latency_ms: 20,
        jitter_ms: 20,
        commit_latency_ms: 150,
        ..Faults::default()
    });
    let store = env.store().await;
    stack.centra.generate(200, &mix());
    wait_posted(&store, "acme", 40, Duration::from_secs(60)).await;

    stack.kill_service("erp-writer").await;
    let killed_at = store.count_by_state("acme").await.expect("ledger");
    let posting: Vec<i64> = sqlx::query_scalar(
        "SELECT order_number FROM order_ledger WHERE tenant = 'acme' AND state = 'posting'",
    )
    .fetch_all(store.pool())
    .await
    .expect("ledger");
    assert!(
        !posting.is_empty(),
        "the kill must catch posts in flight: {killed_at:?}"
    );
    // Orders the ERP saved but the dead writer never recorded: the crash between the ERP
    // call and the ledger write. The ERP finishes what it had received (its commit takes
    // 150 ms) after the writer is gone.
    let mut orphans = 0;
    for _ in 0..20 {
        orphans = posting
            .iter()
            .filter(|n| stack.erp.order(&n.to_string()).is_some())
            .count();
        if orphans > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        orphans > 0,
        "some in-flight posts reached the ERP before the crash"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    stack
        .start_service("erp-writer", &ferry_runtime::service::Readiness::default())
        .await
        .expect("restarts");

    let states = wait_posted(&store, "acme", 200, Duration::from_secs(120)).await;
    assert_eq!(
        states,
        vec![("posted".to_owned(), 200)],
        "after the kill at {killed_at:?}"
    );
    assert_eq!(stack.erp.orders().len(), 200);
    assert!(
        stack.erp.duplicated_refs().is_empty(),
        "a crash must not double-post"
    );
    assert_drained(&env).await;
    stack.shutdown().await;
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_message_becomes_an_exception_and_the_pipeline_keeps_flowing() {
    let env = TestEnv::new().await;
    let stack = start(&env, WebhookConfig::default()).await;
    let store = env.store().await;
    let client = env.nats().await;
    let topology = ferry_runtime::Topology::new(&env.prefix);
    // Garbage where a snapshot should be, and a snapshot that is not an order.
    let js = async_nats::jetstream::new(client);
    js.publish(
        topology.snapshot_subject("acme", 1),
        bytes::Bytes::from_static(b"\x00\xffnot protobuf"),
    )
    .await
    .expect("publish")
    .await
    .expect("stored");
    stack.centra.generate(20, &mix());
    let states = wait_posted(&store, "acme", 20, Duration::from_secs(60)).await;
    assert_eq!(states, vec![("posted".to_owned(), 20)]);
    let exceptions = store.open_exceptions("acme").await.expect("exceptions");
    assert_eq!(exceptions.len(), 1, "{exceptions:?}");
    assert_eq!(exceptions[0].kind, "poison_message");
    assert_eq!(exceptions[0].owner, "engineering");
    assert_eq!(exceptions[0].payload, b"\x00\xffnot protobuf");
    assert_drained(&env).await;
    stack.shutdown().await;
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_are_refused_without_a_valid_recent_signature() {
    let env = TestEnv::new().await;
    let stack = start(&env, WebhookConfig::default()).await;
    let secret = {
        use secrecy::ExposeSecret;
        stack.config.tenants[0]
            .centra
            .webhook_secret
            .expose_secret()
            .to_owned()
    };
    // A fresh connection per request: after a 413 the server closes the connection without
    // reading the body, and a pooled reuse of it would fail the next request.
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .expect("client");
    let body = ferry_centra::webhook::encode_body(&ferry_centra::webhook::WebhookPayload {
        events: vec![ferry_centra::webhook::WebhookEvent {
            object_type: "order".into(),
            action: "insert".into(),
            date: String::new(),
            id: 99,
        }],
    });
    let now = chrono::Utc::now().timestamp();
    let post = |sig: Option<String>, body: String, url: String| {
        let mut r = http
            .post(url)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        if let Some(s) = sig {
            r = r.header("x-centra-signature", s);
        }
        r.send()
    };
    let url = stack.webhook_url.clone();
    let sign = |t: i64, b: &str| {
        ferry_centra::webhook::signature_header(secret.as_bytes(), t, b.as_bytes())
    };
    let status =
        |r: Result<reqwest::Response, reqwest::Error>| r.expect("answer").status().as_u16();
    assert_eq!(
        status(post(Some(sign(now, &body)), body.clone(), url.clone()).await),
        204
    );
    assert_eq!(status(post(None, body.clone(), url.clone()).await), 401);
    assert_eq!(
        status(post(Some(sign(now - 301, &body)), body.clone(), url.clone()).await),
        401,
        "replay window"
    );
    assert_eq!(
        status(post(Some(sign(now, "payload=%7B%7D")), body.clone(), url.clone()).await),
        401,
        "body tampered"
    );
    let junk = "payload=not-json".to_owned();
    assert_eq!(
        status(post(Some(sign(now, &junk)), junk, url.clone()).await),
        400
    );
    let huge = format!("payload={}", "x".repeat(2 << 20));
    assert_eq!(
        status(post(Some(sign(now, &huge)), huge, url.clone()).await),
        413
    );
    let other = url.replace("/acme", "/nobody");
    assert_eq!(
        status(post(Some(sign(now, &body)), body.clone(), other).await),
        404
    );
    let metrics = stack.telemetry.render_metrics();
    for outcome in [
        "accepted",
        "missing_signature",
        "stale",
        "bad_signature",
        "malformed",
        "too_large",
    ] {
        assert!(
            metrics.contains(&format!("outcome=\"{outcome}\"")),
            "metric for {outcome} in:\n{metrics}"
        );
    }
    stack.shutdown().await;
    env.cleanup().await;
}
