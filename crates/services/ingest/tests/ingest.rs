//! The ingest service on its own, against a real nats-server, PostgreSQL and the Centra
//! simulator (no transform, no writer): each order Centra announces by a signed webhook
//! arrives on `centra.order.v1` once, as Centra sent it, with its content hash as identity;
//! a webhook with a forged signature is refused and publishes nothing; a client sending its
//! headers a byte at a time (slowloris) is cut off.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failing test says what broke

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use ferry_platform::Platform;
use ferry_proto::centra::v1 as centra_pb;
use ferry_runtime::{Readiness, StreamKind};
use ferry_sim_centra::{CentraSim, OrderMix, SimConfig, WebhookConfig};
use ferry_testing::TestEnv;
use futures::StreamExt;
use prost::Message;
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

const SECRET: &str = "whsec-ingest-test";

fn tenant(graphql_url: &str) -> String {
    format!(
        r#"
        [[tenants]]
        id = "acme"
        [tenants.centra]
        url = "{graphql_url}"
        token = "sim-token"
        webhook_secret = "{SECRET}"
        events = false
        resync_interval = "0s"
        [tenants.erp]
        kind = "http"
        url = "http://127.0.0.1:9"
        "#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_become_snapshots_once_and_a_forged_one_is_refused() {
    let env = TestEnv::new().await;
    let shutdown = CancellationToken::new();
    let centra = CentraSim::start(SimConfig::default(), shutdown.clone())
        .await
        .expect("simulator");
    let mut config = env.config();
    config.tenants = ferry_config::Config::from_toml(&tenant(&centra.graphql_url()))
        .expect("tenant")
        .tenants;
    config.ingest.header_read_timeout = Duration::from_secs(1);
    let platform = Platform::open(
        ferry_ingest::SERVICE,
        Arc::new(config),
        shutdown.clone(),
        Readiness::default(),
    )
    .await
    .expect("platform");
    let ingest = ferry_ingest::Ingest::start(&platform)
        .await
        .expect("ingest");
    let webhook_url = format!("http://{}/webhooks/centra/acme", ingest.webhook_addr);

    let mix = OrderMix {
        hold_pct: 0,
        pending_pct: 0,
        ..OrderMix::default()
    };
    // An order Centra never announces (no webhook is configured yet), named by a webhook
    // signed with the wrong secret: refused, and it must never become a snapshot.
    let unannounced = centra.generate(1, &mix)[0];
    let body = ferry_centra::webhook::encode_body(&ferry_centra::webhook::WebhookPayload {
        events: vec![ferry_centra::webhook::WebhookEvent {
            object_type: "order".into(),
            action: "insert".into(),
            date: String::new(),
            id: unannounced,
        }],
    });
    let forged = ferry_centra::webhook::signature_header(
        b"not-the-secret",
        chrono::Utc::now().timestamp(),
        body.as_bytes(),
    );
    let refused = reqwest::Client::new()
        .post(&webhook_url)
        .header("content-type", "application/x-www-form-urlencoded")
        .header("x-centra-signature", forged)
        .body(body)
        .send()
        .await
        .expect("the webhook endpoint answers");
    assert_eq!(refused.status().as_u16(), 401);

    centra.configure_webhooks(Some(WebhookConfig {
        url: webhook_url,
        secret: SECRET.to_owned(),
        // Each announcement twice: ingest must still publish each snapshot once.
        duplicate_per_mille: 1000,
        ..WebhookConfig::default()
    }));
    let numbers: BTreeSet<i64> = centra.generate(5, &mix).into_iter().collect();

    let stream = platform
        .base
        .js
        .get_stream(platform.base.topology.stream_name(StreamKind::Centra))
        .await
        .expect("the CENTRA stream");
    let mut seen = BTreeSet::new();
    for _ in 0..150 {
        seen.clear();
        for &number in &numbers {
            let subject = platform.base.topology.snapshot_subject("acme", number);
            if let Ok(message) = stream.get_last_raw_message_by_subject(&subject).await {
                let snapshot =
                    centra_pb::OrderSnapshot::decode(message.payload.as_ref()).expect("a snapshot");
                assert_eq!(snapshot.order_number, number);
                assert_eq!(
                    snapshot.content_hash,
                    hex::encode(Sha256::digest(&snapshot.snapshot_json)),
                    "the identity is the content's hash"
                );
                let json: serde_json::Value =
                    serde_json::from_slice(&snapshot.snapshot_json).expect("Centra's JSON");
                assert_eq!(json["number"].as_i64(), Some(number), "{json}");
                assert_eq!(snapshot.source, centra_pb::Source::Webhook as i32);
                seen.insert(number);
            }
        }
        if seen == numbers {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(seen, numbers, "every announced order became a snapshot");

    let stats = centra.webhook_stats();
    assert!(
        stats.events_duplicated > 0,
        "duplicates were sent: {stats:?}"
    );
    // Give the duplicates time to arrive, then count: one snapshot per order.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut per_subject = stream
        .info_with_subjects(platform.base.topology.snapshots_filter("acme"))
        .await
        .expect("subjects");
    let mut counts = Vec::new();
    while let Some(entry) = per_subject.next().await {
        counts.push(entry.expect("a subject's count"));
    }
    assert_eq!(counts.len(), numbers.len(), "{counts:?}");
    assert!(counts.iter().all(|(_, n)| *n == 1), "{counts:?}");
    let forged_subject = platform.base.topology.snapshot_subject("acme", unannounced);
    assert!(
        counts.iter().all(|(subject, _)| *subject != forged_subject),
        "the forged webhook led to a fetch"
    );

    // Slowloris: a request line, then a header a byte at a time. The connection is closed
    // once the headers are late (1 s here), however patient the client.
    let started = std::time::Instant::now();
    let mut slow = tokio::net::TcpStream::connect(ingest.webhook_addr)
        .await
        .expect("connect");
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    slow.write_all(b"POST /webhooks/centra/acme HTTP/1.1\r\nHost: x\r\n")
        .await
        .expect("request line");
    let mut closed = false;
    for byte in b"X-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa".iter() {
        tokio::time::sleep(Duration::from_millis(200)).await;
        if slow.write_all(&[*byte]).await.is_err() {
            closed = true;
            break;
        }
        let mut buf = [0u8; 256];
        match tokio::time::timeout(Duration::from_millis(1), slow.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {
                closed = true;
                break;
            }
            _ => {}
        }
    }
    assert!(closed, "a slow client kept its connection");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "cut off after {:?}",
        started.elapsed()
    );

    shutdown.cancel();
    ingest.wait().await.expect("ingest stops cleanly");
    env.cleanup().await;
}

/// With the broker gone, a webhook is answered 503 within `ingest.publish_timeout` (Centra
/// stops waiting after 5 s), and `/readyz` says "not ready" within the probe's 3 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_nats_down_a_webhook_is_refused_within_centras_timeout() {
    let env = TestEnv::new().await;
    let shutdown = CancellationToken::new();
    let dir = tempfile::tempdir().expect("a directory");
    let mut nats = ferry_testing::infra::start_nats(dir.path(), false).expect("nats-server");
    let mut config = env.config();
    config.nats.url = nats.url.clone();
    config.tenants = ferry_config::Config::from_toml(&tenant("http://127.0.0.1:9/graphql"))
        .expect("tenant")
        .tenants;
    config.ingest.publish_timeout = Duration::from_secs(1);
    let readiness = Readiness::default();
    let platform = Platform::open(
        ferry_ingest::SERVICE,
        Arc::new(config),
        shutdown.clone(),
        readiness.clone(),
    )
    .await
    .expect("platform");
    let ingest = ferry_ingest::Ingest::start(&platform)
        .await
        .expect("ingest");
    let ops = ferry_runtime::ops::serve(
        "127.0.0.1:0".parse().expect("address"),
        ferry_runtime::telemetry::init(&Default::default(), "test").expect("telemetry"),
        readiness,
        shutdown.clone(),
    )
    .await
    .expect("ops endpoint");
    let http = reqwest::Client::new();
    let ready = http
        .get(format!("http://{ops}/readyz"))
        .send()
        .await
        .expect("readyz");
    assert_eq!(ready.status().as_u16(), 200, "ready while NATS runs");

    nats.stop();
    let body = ferry_centra::webhook::encode_body(&ferry_centra::webhook::WebhookPayload {
        events: vec![ferry_centra::webhook::WebhookEvent {
            object_type: "order".into(),
            action: "insert".into(),
            date: String::new(),
            id: 1001,
        }],
    });
    let signed = ferry_centra::webhook::signature_header(
        SECRET.as_bytes(),
        chrono::Utc::now().timestamp(),
        body.as_bytes(),
    );
    let started = std::time::Instant::now();
    let answer = http
        .post(format!(
            "http://{}/webhooks/centra/acme",
            ingest.webhook_addr
        ))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("x-centra-signature", signed)
        .body(body)
        .send()
        .await
        .expect("the webhook endpoint answers");
    let took = started.elapsed();
    assert_eq!(answer.status().as_u16(), 503);
    assert!(took < Duration::from_secs(3), "answered after {took:?}");

    let started = std::time::Instant::now();
    let ready = http
        .get(format!("http://{ops}/readyz"))
        .send()
        .await
        .expect("readyz");
    let took = started.elapsed();
    assert_eq!(ready.status().as_u16(), 503);
    assert!(
        took < Duration::from_secs(3),
        "readyz answered after {took:?}"
    );
    let report = ready.text().await.expect("report");
    assert!(report.contains("nats:"), "{report}");

    shutdown.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(10), ingest.wait()).await;
    env.cleanup().await;
}
