//! Exception notifications against a real SMTP server (aiosmtpd), a real HTTP receiver,
//! nats-server and PostgreSQL: a storm of 5,000 unmapped-SKU exceptions is one chat
//! message and one e-mail for operations (the webhook's first refusal retried, not lost),
//! an exception seen again is not news, and an overdue one escalates to finance's lead.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use ferry::stack::{Stack, StackOptions};
use ferry_config::{ChannelConfig, NoticeEvent, NotificationsConfig, SmtpSecurity};
use ferry_domain::{ExceptionKind, NewException, Owner};
use ferry_testing::TestEnv;
use ferry_testing::mail::SmtpServer;
use secrecy::SecretString;
use tokio_util::sync::CancellationToken;

/// What the chat webhook received, and how often it refused first.
#[derive(Default)]
struct Hook {
    refusals_left: usize,
    attempts: usize,
    bodies: Vec<serde_json::Value>,
}

async fn hook(
    State(hook): State<Arc<Mutex<Hook>>>,
    axum::Json(body): axum::Json<serde_json::Value>,
) -> StatusCode {
    let mut h = hook.lock().expect("hook");
    h.attempts += 1;
    if h.refusals_left > 0 {
        h.refusals_left -= 1;
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    h.bodies.push(body);
    StatusCode::OK
}

fn channel(name: &str, team: Owner, events: &[NoticeEvent]) -> ChannelConfig {
    ChannelConfig {
        name: name.into(),
        team,
        webhook: None,
        email: Vec::new(),
        events: events.to_vec(),
    }
}

fn unmapped(i: usize) -> NewException {
    NewException {
        tenant: "acme".into(),
        kind: ExceptionKind::UnmappedSku,
        key: format!("sku:STORM-{i}"),
        message: format!("SKU STORM-{i} has no ERP item: order {} waits", 10_000 + i),
        reason: "planted storm".into(),
        order_number: Some(10_000 + i as i64),
        amount_minor: Some(10_000),
        currency: Some("SEK".into()),
        service: "test".into(),
        source_subject: None,
        payload: Vec::new(),
    }
}

async fn until(what: &str, mut ready: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    while !ready() {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storm_is_one_message_per_channel_and_overdue_escalates() {
    let env = TestEnv::new().await;
    let smtp = SmtpServer::start().expect("aiosmtpd");
    let received = Arc::new(Mutex::new(Hook {
        refusals_left: 1,
        ..Hook::default()
    }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let hook_url = format!("http://{}/hook", listener.local_addr().expect("addr"));
    let stop = CancellationToken::new();
    let app = axum::Router::new()
        .route("/hook", axum::routing::post(hook))
        .with_state(received.clone());
    let serving = stop.clone();
    tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(serving.cancelled_owned())
            .await
    });

    let mut config = env.config();
    config.smtp.host = "127.0.0.1".into();
    config.smtp.port = smtp.port;
    config.smtp.security = SmtpSecurity::None;
    config.smtp.from = "Ferry <ferry@acme.example>".into();
    let both = [NoticeEvent::Raised, NoticeEvent::Overdue];
    let options = StackOptions {
        tenant: "acme".into(),
        notifications: NotificationsConfig {
            quiet: Duration::from_secs(3),
            window: Duration::from_secs(60),
            console_url: None,
            channels: vec![
                ChannelConfig {
                    webhook: Some(SecretString::from(hook_url)),
                    ..channel("ops-chat", Owner::Operations, &both)
                },
                ChannelConfig {
                    email: vec!["ops@acme.example".into()],
                    ..channel("ops-mail", Owner::Operations, &[NoticeEvent::Raised])
                },
                ChannelConfig {
                    email: vec!["cfo@acme.example".into()],
                    ..channel("cfo", Owner::Finance, &[NoticeEvent::Overdue])
                },
            ],
        },
        ..StackOptions::default()
    };
    let stack = Stack::start(config, options).await.expect("stack");
    let store = env.store().await;
    let base = ferry_runtime::ServiceBase::connect(
        "test",
        Arc::new(stack.config.runtime()),
        CancellationToken::new(),
        ferry_runtime::Readiness::default(),
    )
    .await
    .expect("nats");
    let sink = ferry_platform::exception_sink(&store, &base);

    // The storm, as services raise it: stored, then announced.
    for i in 0..5_000 {
        sink.record(&unmapped(i)).await.expect("recorded");
    }
    until("one chat message", || {
        !received.lock().expect("hook").bodies.is_empty()
    })
    .await;
    until("one e-mail", || !smtp.messages().is_empty()).await;
    // Seen again while open: not news. Then a quiet spell longer than the batching.
    sink.record(&unmapped(7)).await.expect("recorded again");
    tokio::time::sleep(Duration::from_secs(8)).await;
    {
        let h = received.lock().expect("hook");
        assert_eq!(h.bodies.len(), 1, "one chat message: {:?}", h.bodies);
        assert_eq!(h.attempts, 2, "refused once, then delivered");
        let text = h.bodies[0]["text"].as_str().expect("Slack's text");
        assert!(
            text.contains("Operations: 5,000 new exceptions (500,000.00 SEK at stake)"),
            "{text}"
        );
        assert!(
            text.contains("Items not mapped to an ERP item: 5,000"),
            "{text}"
        );
        assert!(
            text.contains(
                "ferry exceptions list --tenant acme --filter 'owner = operations AND state = open'"
            ),
            "{text}"
        );
    }
    let mail = smtp.messages();
    assert_eq!(mail.len(), 1, "one e-mail to operations");
    assert!(mail[0].contains("To: ops@acme.example"), "{}", mail[0]);
    assert!(mail[0].contains("5,000 new exceptions"), "{}", mail[0]);

    // A finance exception goes overdue: finance's lead hears of it once; operations' chat
    // hears nothing of finance's.
    let totals = NewException {
        kind: ExceptionKind::ErpTotalsMismatch,
        key: "order:77".into(),
        message: "Order 77 is booked at 1,200.00 SEK; the customer paid 1,250.00 SEK".into(),
        order_number: Some(77),
        amount_minor: Some(5_000),
        ..unmapped(0)
    };
    sink.record(&totals).await.expect("recorded");
    let pool = sqlx::PgPool::connect(&env.database_url)
        .await
        .expect("pool");
    sqlx::query("UPDATE exceptions SET sla_due = now() - interval '1 minute' WHERE kind = $1")
        .bind("erp_totals_mismatch")
        .execute(&pool)
        .await
        .expect("overdue");
    until("the escalation", || smtp.messages().len() >= 2).await;
    tokio::time::sleep(Duration::from_secs(8)).await;
    let mail = smtp.messages();
    assert_eq!(mail.len(), 2, "one escalation: {mail:#?}");
    assert!(mail[1].contains("To: cfo@acme.example"), "{}", mail[1]);
    assert!(mail[1].contains("Finance: 1 overdue"), "{}", mail[1]);
    assert!(mail[1].contains("order 77"), "{}", mail[1]);
    assert_eq!(received.lock().expect("hook").bodies.len(), 1);

    stop.cancel();
    stack.shutdown().await;
    env.cleanup().await;
}
