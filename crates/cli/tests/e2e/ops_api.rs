//! The operations API against the real service, nats-server and PostgreSQL: who may do
//! what (every role against every team's exception), tenants kept apart (another tenant's
//! exception does not exist for the caller), a retried call acting once, filters and pages,
//! and the health and reflection services beside it.

use std::time::Duration;

use ferry::exceptions::connect;
use ferry::stack::{Stack, StackOptions};
use ferry_domain::{ExceptionKind, NewException};
use ferry_ops::access::Role;
use ferry_proto::ops::v1 as pb;
use ferry_testing::TestEnv;
use tonic::Code;

fn exception(tenant: &str, kind: ExceptionKind, order: i64) -> NewException {
    NewException {
        tenant: tenant.into(),
        kind,
        key: format!("order:{order}:{}", kind.as_str()),
        message: format!("Order {order} needs {} to act", kind.owner()),
        reason: format!("planted for the API test ({order})"),
        order_number: Some(order),
        amount_minor: Some(12_500),
        currency: Some("SEK".into()),
        service: "test".into(),
        source_subject: None,
        payload: format!("{{\"order\":{order}}}").into_bytes(),
    }
}

/// One exception per team in acme (orders 1–4), and one in globex (order 9).
const KINDS: [ExceptionKind; 4] = [
    ExceptionKind::ErpTotalsMismatch, // finance
    ExceptionKind::UnmappedSku,       // operations
    ExceptionKind::ShipmentRefused,   // customer service
    ExceptionKind::ErpRejected,       // engineering
];

async fn names(
    c: &mut ferry::exceptions::Client,
    parent: &str,
    filter: &str,
) -> Result<Vec<String>, tonic::Status> {
    let page = c
        .list_exceptions(pb::ListExceptionsRequest {
            parent: parent.into(),
            page_size: 100,
            page_token: String::new(),
            filter: filter.into(),
        })
        .await?
        .into_inner();
    Ok(page.exceptions.into_iter().map(|e| e.name).collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_role_may_do_what_its_team_owns_and_tenants_stay_apart() {
    let env = TestEnv::new().await;
    let options = StackOptions {
        tenant: "acme".into(),
        ..StackOptions::default()
    };
    let stack = Stack::start(env.config(), options).await.expect("stack");
    // A client that connects and says nothing is not kept (checked at the end).
    let api_addr = stack.api_url.trim_start_matches("http://").to_owned();
    let mut silent = tokio::net::TcpStream::connect(&api_addr)
        .await
        .expect("connect");
    let store = env.store().await;
    let mut by_owner = Vec::new();
    for (i, kind) in KINDS.iter().enumerate() {
        let (id, _) = store
            .upsert_exception(&exception("acme", *kind, i as i64 + 1))
            .await
            .expect("recorded");
        by_owner.push((
            kind.owner().as_str(),
            format!("tenants/acme/exceptions/{id}"),
        ));
    }
    let (other, _) = store
        .upsert_exception(&exception("globex", ExceptionKind::ErpTotalsMismatch, 9))
        .await
        .expect("recorded");
    let globex_name = format!("tenants/globex/exceptions/{other}");

    // Every role against every team's exception: read and comment, all; act, the owning
    // team, engineering and admins.
    for role in Role::ALL {
        let (_, secret) =
            ferry::tokens::create(&store, &format!("{role}@acme"), role, &["acme".into()])
                .await
                .expect("token");
        let mut c = connect(&stack.api_url, &secret).await.expect("client");
        for (owner, name) in &by_owner {
            let got = c
                .get_exception(pb::GetExceptionRequest { name: name.clone() })
                .await
                .expect("everyone reads")
                .into_inner();
            assert_eq!(&got.owner, owner);
            assert!(!got.payload.is_empty(), "the stored payload");
            c.comment_exception(pb::CommentExceptionRequest {
                name: name.clone(),
                text: format!("{role} looked"),
                request_id: String::new(),
            })
            .await
            .expect("everyone comments");
            let may = matches!(role, Role::Admin | Role::Engineering)
                || role.team().is_some_and(|t| t.as_str() == *owner);
            let assigned = c
                .assign_exception(pb::AssignExceptionRequest {
                    name: name.clone(),
                    assignee: format!("{role}@acme"),
                    request_id: String::new(),
                })
                .await;
            match assigned {
                Ok(e) => {
                    assert!(may, "{role} assigned {owner}'s exception");
                    let e = e.into_inner();
                    assert_eq!(
                        (e.state.as_str(), e.assignee.as_str()),
                        ("assigned", format!("{role}@acme").as_str())
                    );
                }
                Err(s) => {
                    assert!(!may, "{role} refused on {owner}'s: {s:?}");
                    assert_eq!(s.code(), Code::PermissionDenied);
                }
            }
        }
        // Another tenant's exception does not exist for this caller.
        let hidden = c
            .get_exception(pb::GetExceptionRequest {
                name: globex_name.clone(),
            })
            .await
            .expect_err("globex is not acme's");
        assert_eq!(hidden.code(), Code::NotFound);
        let listed = names(&mut c, "tenants/-", "").await.expect("list");
        assert_eq!(listed.len(), 4, "{role}: acme's only");
        assert_eq!(
            names(&mut c, "tenants/globex", "")
                .await
                .expect_err("globex")
                .code(),
            Code::NotFound
        );
    }

    // The audit holds who did what, in order.
    let mut admin = {
        let (_, secret) = ferry::tokens::create(&store, "root@ops", Role::Admin, &["*".into()])
            .await
            .expect("token");
        connect(&stack.api_url, &secret).await.expect("client")
    };
    let finance = by_owner[0].1.clone();
    let shown = admin
        .get_exception(pb::GetExceptionRequest {
            name: finance.clone(),
        })
        .await
        .expect("get")
        .into_inner();
    let actions: Vec<(String, String)> = shown
        .audit
        .iter()
        .map(|a| (a.actor.clone(), a.action.clone()))
        .collect();
    assert_eq!(
        actions.len(),
        5 + 3,
        "five comments, three assignments: {actions:?}"
    );
    assert_eq!(actions[0], ("finance@acme".into(), "comment".into()));
    // An admin of every tenant sees both.
    assert_eq!(
        names(&mut admin, "tenants/-", "")
            .await
            .expect("list")
            .len(),
        5
    );

    // A retried call acts once; resolving a resolved exception is a no-op.
    for _ in 0..2 {
        admin
            .comment_exception(pb::CommentExceptionRequest {
                name: finance.clone(),
                text: "called the ERP team".into(),
                request_id: "req-1".into(),
            })
            .await
            .expect("comment");
    }
    for _ in 0..2 {
        let e = admin
            .resolve_exception(pb::ResolveExceptionRequest {
                name: finance.clone(),
                note: "corrected in the ERP".into(),
                request_id: String::new(),
            })
            .await
            .expect("resolve")
            .into_inner();
        assert_eq!(e.state, "resolved");
        assert!(e.state_reason.contains("corrected in the ERP"), "{e:?}");
    }
    let audit = store
        .exception_audit(
            uuid::Uuid::parse_str(finance.rsplit('/').next().expect("id")).expect("uuid"),
        )
        .await
        .expect("audit");
    assert_eq!(
        audit
            .iter()
            .filter(|a| a.note == "called the ERP team")
            .count(),
        1
    );
    assert_eq!(audit.iter().filter(|a| a.action == "resolve").count(), 1);
    // The audit cannot be rewritten.
    assert!(
        sqlx::query("UPDATE exception_audit SET note = 'nothing happened'")
            .execute(store.pool())
            .await
            .is_err(),
        "append-only"
    );

    // Bad input: a clear InvalidArgument; no token or a revoked one: Unauthenticated.
    let bad = names(&mut admin, "tenants/acme", "colour = red")
        .await
        .expect_err("bad filter");
    assert_eq!(bad.code(), Code::InvalidArgument);
    assert!(bad.message().contains("unknown field"), "{bad:?}");
    let ignore = admin
        .ignore_exception(pb::IgnoreExceptionRequest {
            name: by_owner[1].1.clone(),
            reason: " ".into(),
            request_id: String::new(),
        })
        .await
        .expect_err("a reason is required");
    assert_eq!(ignore.code(), Code::InvalidArgument);
    let mut stranger = connect(&stack.api_url, "ferry_0000").await.expect("client");
    assert_eq!(
        names(&mut stranger, "tenants/-", "")
            .await
            .expect_err("unknown")
            .code(),
        Code::Unauthenticated
    );
    let (id, secret) =
        ferry::tokens::create(&store, "leaver@acme", Role::Finance, &["acme".into()])
            .await
            .expect("token");
    let mut leaver = connect(&stack.api_url, &secret).await.expect("client");
    names(&mut leaver, "tenants/-", "")
        .await
        .expect("works before");
    assert!(store.revoke_token(id).await.expect("revoke"));
    assert_eq!(
        names(&mut leaver, "tenants/-", "")
            .await
            .expect_err("revoked")
            .code(),
        Code::Unauthenticated
    );
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(Duration::from_secs(15), async {
        use tokio::io::AsyncReadExt as _;
        loop {
            match silent.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(read.is_ok(), "a silent connection kept past its deadline");

    stack.shutdown().await;
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_and_pages_find_each_exception_once_most_overdue_first() {
    let env = TestEnv::new().await;
    let stack = Stack::start(
        env.config(),
        StackOptions {
            tenant: "acme".into(),
            ..StackOptions::default()
        },
    )
    .await
    .expect("stack");
    let store = env.store().await;
    for order in 1..=7 {
        let kind = if order % 2 == 0 {
            ExceptionKind::UnmappedSku
        } else {
            ExceptionKind::ErpTotalsMismatch
        };
        store
            .upsert_exception(&exception("acme", kind, order))
            .await
            .expect("recorded");
    }
    // Two overdue already.
    sqlx::query(
        "UPDATE exceptions SET sla_due = now() - interval '1 hour' WHERE order_number IN (6, 7)",
    )
    .execute(store.pool())
    .await
    .expect("overdue");
    let (_, secret) = ferry::tokens::create(&store, "ops@acme", Role::Operations, &["acme".into()])
        .await
        .expect("token");
    let mut c = connect(&stack.api_url, &secret).await.expect("client");

    let mut seen = Vec::new();
    let mut token = String::new();
    let mut pages = 0;
    loop {
        let page = c
            .list_exceptions(pb::ListExceptionsRequest {
                parent: "tenants/acme".into(),
                page_size: 3,
                page_token: token.clone(),
                filter: String::new(),
            })
            .await
            .expect("page")
            .into_inner();
        pages += 1;
        seen.extend(page.exceptions);
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(pages, 3);
    let orders: Vec<i64> = seen.iter().filter_map(|e| e.order_number).collect();
    assert_eq!(orders.len(), 7);
    let mut unique = orders.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), 7, "each once: {orders:?}");
    assert!(seen[0].overdue && seen[1].overdue, "most overdue first");
    assert!(seen.windows(2).all(|w| {
        let due = |e: &pb::Exception| e.sla_due.as_ref().map(|t| (t.seconds, t.nanos));
        due(&w[0]) <= due(&w[1])
    }));

    let count = |filter: &'static str| {
        let mut c = c.clone();
        async move {
            names(&mut c, "tenants/acme", filter)
                .await
                .expect(filter)
                .len()
        }
    };
    assert_eq!(count("owner = operations").await, 3);
    assert_eq!(count("owner = finance AND overdue = true").await, 1);
    assert_eq!(count("overdue = true").await, 2);
    assert_eq!(count("order = 4").await, 1);
    assert_eq!(count(r#"text : "order 5 needs""#).await, 1);
    assert_eq!(count("text : \"50%_\"").await, 0, "% and _ are literal");
    assert_eq!(count("state = open AND kind = unmapped_sku").await, 3);
    assert_eq!(count("state = resolved").await, 0);

    // Overdue exceptions are counted for alerting, by team and kind.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let metrics = stack.telemetry.render_metrics();
        let overdue = |owner: &str, kind: &str| {
            metrics.lines().any(|l| {
                l.starts_with("ferry_exceptions_overdue{")
                    && l.contains("tenant=\"acme\"")
                    && l.contains(&format!("owner=\"{owner}\""))
                    && l.contains(&format!("kind=\"{kind}\""))
                    && l.ends_with(" 1")
            })
        };
        if overdue("finance", "erp_totals_mismatch") && overdue("operations", "unmapped_sku") {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{metrics}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The CLI on the API: JSON lines for scripts, a table for people, actions by name.
    let ferry = |args: &[&str]| {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_ferry"))
            .args(args)
            .env_remove("FERRY_CONFIG")
            .env("FERRY_API__URL", &stack.api_url)
            .env("FERRY_API__TOKEN", &secret)
            .output()
            .expect("ferry runs");
        assert!(
            output.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).expect("utf-8")
    };
    let listed: Vec<serde_json::Value> = ferry(&[
        "exceptions",
        "list",
        "--json",
        "--all",
        "--page-size",
        "2",
        "--filter",
        "owner = operations",
    ])
    .lines()
    .map(|l| serde_json::from_str(l).expect("a JSON line"))
    .collect();
    assert_eq!(listed.len(), 3);
    assert!(listed.iter().all(|e| e["owner"] == "operations"));
    let name = listed[0]["name"].as_str().expect("name").to_owned();
    let table = ferry(&["exceptions", "list", "--tenant", "acme"]);
    assert!(
        table.lines().count() == 8 && table.contains(&name),
        "{table}"
    );
    let resolved = ferry(&[
        "exceptions",
        "resolve",
        &name,
        "--note",
        "mapping added",
        "--json",
    ]);
    let resolved: serde_json::Value = serde_json::from_str(resolved.trim()).expect("json");
    assert_eq!(resolved["state"], "resolved");
    assert_eq!(resolved["audit"][0]["actor"], "ops@acme");
    let bash = ferry(&["completions", "bash"]);
    assert!(
        bash.contains("exceptions") && bash.contains("tokens") && bash.contains("--filter"),
        "shell completions know the commands"
    );
    let shown = ferry(&["exceptions", "show", &name]);
    assert!(
        shown.contains("mapping added") && shown.contains("resolve"),
        "{shown}"
    );

    // grpc.health.v1 and server reflection answer beside the API.
    let channel = tonic::transport::Channel::from_shared(stack.api_url.clone())
        .expect("url")
        .connect()
        .await
        .expect("channel");
    let health = tonic_health::pb::health_client::HealthClient::new(channel.clone())
        .check(tonic_health::pb::HealthCheckRequest {
            service: "ferry.ops.v1.ExceptionService".into(),
        })
        .await
        .expect("health")
        .into_inner();
    assert_eq!(
        health.status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    let request = tonic_reflection::pb::v1::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut answers = ServerReflectionClient::new(channel)
        .server_reflection_info(futures::stream::iter([request]))
        .await
        .expect("reflection")
        .into_inner();
    let answer = tokio::time::timeout(Duration::from_secs(5), answers.message())
        .await
        .expect("in time")
        .expect("answer")
        .expect("a message");
    let Some(MessageResponse::ListServicesResponse(list)) = answer.message_response else {
        panic!("a service list: {answer:?}");
    };
    let services: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    assert!(
        services.contains(&"ferry.ops.v1.ExceptionService".to_owned()),
        "{services:?}"
    );

    stack.shutdown().await;
    env.cleanup().await;
}

/// An order the ERP refused (its accounting period closed), retried once the ERP takes
/// orders again: posted exactly once, its exception resolved by itself, the retry audited;
/// an exception with nothing to re-drive says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_order_retried_after_the_erp_is_fixed_is_posted_once() {
    let env = TestEnv::new().await;
    let stack = Stack::start(
        env.config(),
        StackOptions {
            tenant: "acme".into(),
            seed: 71,
            centra_requests_per_10s: 1000,
            ..StackOptions::default()
        },
    )
    .await
    .expect("stack");
    let store = env.store().await;
    stack.erp.set_faults(ferry_sim_erp::Faults {
        refuse_new: Some("the accounting period 2026-12 is closed".into()),
        ..Default::default()
    });
    let numbers = stack
        .centra
        .generate(2, &ferry_sim_centra::OrderMix::default());
    for n in &numbers {
        let found = ferry_testing::wait_for_exception(
            &store,
            "acme",
            |e| e.kind == "erp_rejected" && e.order_number == Some(*n),
            Duration::from_secs(60),
        )
        .await;
        let e = found
            .iter()
            .find(|e| e.kind == "erp_rejected" && e.order_number == Some(*n))
            .expect("refused");
        assert!(e.message.contains("period 2026-12 is closed"), "{e:?}");
    }
    assert!(stack.erp.orders().is_empty());
    stack.erp.set_faults(ferry_sim_erp::Faults::default());

    let (_, secret) =
        ferry::tokens::create(&store, "dev@ferry", Role::Engineering, &["acme".into()])
            .await
            .expect("token");
    let mut c = connect(&stack.api_url, &secret).await.expect("client");
    let open = |n: i64| format!("kind = erp_rejected AND order = {n}");
    for n in &numbers {
        let name = names(&mut c, "tenants/acme", &open(*n))
            .await
            .expect("list")[0]
            .clone();
        // Twice with one request id: one re-drive.
        for _ in 0..2 {
            let e = c
                .retry_exception(pb::RetryExceptionRequest {
                    name: name.clone(),
                    request_id: format!("retry-{n}"),
                })
                .await
                .expect("retry")
                .into_inner();
            assert!(matches!(e.state.as_str(), "retrying" | "resolved"), "{e:?}");
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        let resolved = loop {
            let e = c
                .get_exception(pb::GetExceptionRequest { name: name.clone() })
                .await
                .expect("get")
                .into_inner();
            if e.state == "resolved" {
                break e;
            }
            assert!(tokio::time::Instant::now() < deadline, "resolved: {e:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        assert_eq!(resolved.state_reason, "posted to the ERP after a retry");
        // Ferry's own resolution is in the audit beside the person's retry.
        assert!(
            resolved.audit.iter().any(|a| a.action == "resolve"
                && a.actor == "ferry"
                && a.note == "posted to the ERP after a retry"),
            "{:?}",
            resolved.audit
        );
        assert_eq!(
            resolved
                .audit
                .iter()
                .filter(|a| a.action == "retry" && a.actor == "dev@ferry")
                .count(),
            1
        );
    }
    let posted =
        ferry_testing::wait_for_state(&store, "acme", "posted", 2, Duration::from_secs(30)).await;
    assert_eq!(posted, 2);
    assert_eq!(stack.erp.orders().len(), 2, "one document per order");
    assert!(stack.erp.duplicated_refs().is_empty());

    // Nothing stored to re-drive: FailedPrecondition, saying what to do.
    let (id, _) = store
        .upsert_exception(&NewException {
            payload: Vec::new(),
            ..exception("acme", ExceptionKind::UnmappedSku, 99)
        })
        .await
        .expect("recorded");
    let refused = c
        .retry_exception(pb::RetryExceptionRequest {
            name: format!("tenants/acme/exceptions/{id}"),
            request_id: String::new(),
        })
        .await
        .expect_err("nothing to re-drive");
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert!(refused.message().contains("fix the cause"), "{refused:?}");

    stack.shutdown().await;
    env.cleanup().await;
}

/// Customer service's question on the real chain: an order from Centra's webhook to the
/// captured shipment and the reconciler's verdict, found by its tracking number and its
/// ERP document, its journey in order; another brand's order does not exist for them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_orders_timeline_runs_from_the_webhook_to_the_capture() {
    use ferry_proto::ops::v1::order_service_client::OrderServiceClient;

    let env = TestEnv::new().await;
    let mut config = env.config();
    config.reconciler.grace = Duration::ZERO;
    let stack = Stack::start(
        config,
        StackOptions {
            tenant: "acme".into(),
            seed: 81,
            centra_requests_per_10s: 1000,
            fulfilment: ferry_config::FulfilmentConfig {
                poll_interval: Duration::from_millis(200),
                capture: true,
                ..Default::default()
            },
            ..StackOptions::default()
        },
    )
    .await
    .expect("stack");
    let store = env.store().await;
    let number = stack.centra.generate(
        1,
        &ferry_sim_centra::OrderMix {
            bundle_pct: 0,
            cancellation_pct: 0,
            markets: vec![1],
            ..Default::default()
        },
    )[0];
    ferry_testing::wait_for_state(&store, "acme", "posted", 1, Duration::from_secs(60)).await;
    stack
        .erp
        .ship(ferry_sim_erp::ShipRequest {
            external_ref: number.to_string(),
            lines: None,
            carrier: Some("PostNord".into()),
            tracking_number: Some("PN-TIMELINE".into()),
        })
        .expect("shipped");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !stack
        .centra
        .state
        .ops(|o| o.shipments_of(number).iter().any(|s| s.is_shipped))
    {
        assert!(tokio::time::Instant::now() < deadline, "shipped in Centra");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The shipment is recorded settled just after Centra has it.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (_, summary, _) = super::reconcile_run::run_json(&stack.config, "acme").await;
    assert_eq!(summary["checked"], 1);

    let (_, secret) =
        ferry::tokens::create(&store, "cs@acme", Role::CustomerService, &["acme".into()])
            .await
            .expect("token");
    let (channel, bearer) = ferry::exceptions::channel(&stack.api_url, &secret)
        .await
        .expect("channel");
    let mut orders = OrderServiceClient::with_interceptor(channel, bearer);
    let erp_reference = store
        .ledger_row("acme", number)
        .await
        .expect("ledger")
        .expect("row")
        .erp_reference
        .expect("posted");
    // Customer service's e-mail search: the address as the customer says it, in any case.
    let email = stack
        .centra
        .state
        .order(number)
        .expect("order")
        .customer
        .email
        .to_uppercase();
    let stored: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM order_ledger WHERE customer_email_key IS NOT NULL
           AND position(convert_to($1, 'UTF8') in customer_email_key) = 0",
    )
    .bind(email.to_lowercase())
    .fetch_one(store.pool())
    .await
    .expect("ledger");
    assert_eq!(stored, 1, "a key, never the address itself");
    for query in [
        "PN-TIMELINE",
        erp_reference.as_str(),
        &number.to_string(),
        email.as_str(),
    ] {
        let found = orders
            .search_orders(pb::SearchOrdersRequest {
                parent: "tenants/acme".into(),
                query: query.into(),
            })
            .await
            .expect("search")
            .into_inner();
        assert_eq!(
            found.orders.iter().map(|o| o.number).collect::<Vec<_>>(),
            vec![number],
            "{query}"
        );
    }
    let timeline = orders
        .get_order_timeline(pb::GetOrderTimelineRequest {
            name: format!("tenants/acme/orders/{number}"),
        })
        .await
        .expect("timeline")
        .into_inner();
    let steps: Vec<&str> = timeline.steps.iter().map(|s| s.step.as_str()).collect();
    for want in [
        "seen",
        "snapshot_fetched",
        "transformed",
        "posting",
        "posted",
        "shipped_in_erp",
        "shipment_in_centra",
        "email_sent",
        "captured",
        "reconciled",
    ] {
        assert!(steps.contains(&want), "{want} in {steps:?}");
    }
    let at = |t: &pb::TimelineStep| t.at.as_ref().map(|a| (a.seconds, a.nanos));
    assert!(
        timeline.steps.windows(2).all(|w| at(&w[0]) <= at(&w[1])),
        "oldest first"
    );
    let position = |s: &str| steps.iter().position(|x| *x == s).expect("step");
    assert!(position("seen") < position("posted"));
    assert!(position("posted") < position("shipment_in_centra"));
    assert_eq!(timeline.verdict, "reconciled");
    let posted = timeline
        .steps
        .iter()
        .find(|s| s.step == "posted")
        .expect("posted");
    assert!(posted.detail.contains(&erp_reference), "{posted:?}");
    let hidden = orders
        .get_order_timeline(pb::GetOrderTimelineRequest {
            name: format!("tenants/globex/orders/{number}"),
        })
        .await
        .expect_err("another brand");
    assert_eq!(hidden.code(), Code::NotFound);

    // The CLI prints the same journey.
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(["order", "show", "acme", &number.to_string()])
        .env_remove("FERRY_CONFIG")
        .env("FERRY_API__URL", &stack.api_url)
        .env("FERRY_API__TOKEN", &secret)
        .output()
        .expect("ferry runs");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        text.contains("shipment_in_centra") && text.contains("PN-TIMELINE"),
        "{text}"
    );
    // And finds it by the customer's e-mail, for scripts.
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(["order", "search", "acme", &email, "--json"])
        .env_remove("FERRY_CONFIG")
        .env("FERRY_API__URL", &stack.api_url)
        .env("FERRY_API__TOKEN", &secret)
        .output()
        .expect("ferry runs");
    let found: serde_json::Value = serde_json::from_slice(&output.stdout).expect("one JSON object");
    assert_eq!(found["number"], number, "{found}");

    stack.shutdown().await;
    env.cleanup().await;
}

/// Operations sees which SKUs hold orders back and how much money they block, adds the
/// mappings through the API, and the orders go to the ERP; finance may look, not change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unmapped_skus_are_listed_with_their_money_and_an_import_releases_the_orders() {
    use ferry_proto::ops::v1::mapping_service_client::MappingServiceClient;

    let env = TestEnv::new().await;
    let stack = Stack::start(
        env.config(),
        StackOptions {
            tenant: "acme".into(),
            seed: 91,
            centra_requests_per_10s: 1000,
            // No SKU is an ERP item by itself: every order waits for its mapping.
            rules: ferry_domain::Rules::default(),
            ..StackOptions::default()
        },
    )
    .await
    .expect("stack");
    let store = env.store().await;
    let numbers = stack.centra.generate(
        4,
        &ferry_sim_centra::OrderMix {
            bundle_pct: 0,
            markets: vec![1],
            ..Default::default()
        },
    );
    let held =
        ferry_testing::wait_for_state(&store, "acme", "rejected", 4, Duration::from_secs(60)).await;
    assert_eq!(held, 4, "every order held for its mapping");

    let client = |role: Role| {
        let store = store.clone();
        let url = stack.api_url.clone();
        async move {
            let (_, secret) =
                ferry::tokens::create(&store, &format!("{role}@acme"), role, &["acme".into()])
                    .await
                    .expect("token");
            let (channel, bearer) = ferry::exceptions::channel(&url, &secret)
                .await
                .expect("channel");
            MappingServiceClient::with_interceptor(channel, bearer)
        }
    };
    let mut operations = client(Role::Operations).await;
    let mut finance = client(Role::Finance).await;
    let unmapped = operations
        .list_unmapped_skus(pb::ListUnmappedSkusRequest {
            parent: "tenants/acme".into(),
        })
        .await
        .expect("list")
        .into_inner()
        .skus;
    assert!(!unmapped.is_empty());
    let total_orders: i64 = unmapped.iter().map(|u| u.orders).max().unwrap_or(0);
    assert!((1..=4).contains(&total_orders), "{unmapped:?}");
    for u in &unmapped {
        assert!(
            u.blocked
                .iter()
                .all(|m| m.currency == "SEK" && m.amount_minor > 0),
            "{u:?}"
        );
    }
    let money = |u: &pb::UnmappedSku| u.blocked.iter().map(|m| m.amount_minor).sum::<i64>();
    assert!(
        unmapped.windows(2).all(|w| money(&w[0]) >= money(&w[1])),
        "most money first"
    );
    let rows: Vec<pb::Mapping> = unmapped
        .iter()
        .map(|u| pb::Mapping {
            centra_sku: u.sku.clone(),
            erp_item: u.sku.clone(),
        })
        .collect();
    let refused = finance
        .import_mappings(pb::ImportMappingsRequest {
            parent: "tenants/acme".into(),
            mappings: rows.clone(),
        })
        .await
        .expect_err("finance may not");
    assert_eq!(refused.code(), Code::PermissionDenied);
    let written = operations
        .import_mappings(pb::ImportMappingsRequest {
            parent: "tenants/acme".into(),
            mappings: rows,
        })
        .await
        .expect("import")
        .into_inner()
        .written;
    assert_eq!(written as usize, unmapped.len());
    let posted =
        ferry_testing::wait_for_state(&store, "acme", "posted", 4, Duration::from_secs(60)).await;
    assert_eq!(posted, 4, "released and posted: {numbers:?}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let left = operations
            .list_unmapped_skus(pb::ListUnmappedSkusRequest {
                parent: "tenants/acme".into(),
            })
            .await
            .expect("list")
            .into_inner()
            .skus;
        if left.is_empty() {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{left:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    stack.shutdown().await;
    env.cleanup().await;
}

/// A bulk retry of a thousand exceptions over a filter, one of which has nothing to
/// re-drive: an operation whose progress ends at 999 re-driven and one failure with its
/// reason; the same request again starts nothing; a team acting in bulk on another team's
/// exceptions fails each, changing none; an operation can be cancelled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bulk_retry_reports_its_progress_and_its_failures() {
    use ferry_proto::ops::v1::operation_service_client::OperationServiceClient;

    let env = TestEnv::new().await;
    let stack = Stack::start(
        env.config(),
        StackOptions {
            tenant: "acme".into(),
            ..StackOptions::default()
        },
    )
    .await
    .expect("stack");
    let store = env.store().await;
    // Where the re-driven messages land (a stream of the test's own).
    let js = async_nats::jetstream::new(env.nats().await);
    let subjects = format!("{}.acme.testretry.>", env.prefix);
    let mut stream = js
        .create_stream(async_nats::jetstream::stream::Config {
            name: format!("{}_TESTRETRY", env.prefix.to_uppercase()),
            subjects: vec![subjects],
            ..Default::default()
        })
        .await
        .expect("stream");
    for n in 1..=1000i64 {
        let mut e = exception("acme", ExceptionKind::DeliveryExhausted, n);
        e.source_subject = Some(format!("{}.acme.testretry.{n}", env.prefix));
        if n == 500 {
            e.payload = Vec::new();
        }
        store.upsert_exception(&e).await.expect("recorded");
    }
    let tokens = |role: Role| {
        let store = store.clone();
        async move {
            ferry::tokens::create(&store, &format!("{role}@acme"), role, &["acme".into()])
                .await
                .expect("token")
                .1
        }
    };
    let engineering = tokens(Role::Engineering).await;
    let mut c = connect(&stack.api_url, &engineering).await.expect("client");
    let (channel, bearer) = ferry::exceptions::channel(&stack.api_url, &engineering)
        .await
        .expect("channel");
    let mut operations = OperationServiceClient::with_interceptor(channel, bearer);
    let bulk = |action: &str, filter: &str, request_id: &str| pb::BulkActRequest {
        parent: "tenants/acme".into(),
        filter: filter.into(),
        action: action.into(),
        note: "bulk".into(),
        request_id: request_id.into(),
    };
    let started = c
        .bulk_act_on_exceptions(bulk(
            "retry",
            "kind = delivery_exhausted AND state = open",
            "b-1",
        ))
        .await
        .expect("bulk")
        .into_inner();
    assert_eq!(started.total, 1000);
    let watcher = operations.clone();
    let wait_done = move |name: String| {
        let mut operations = watcher.clone();
        async move {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
            let mut seen = Vec::new();
            loop {
                let op = operations
                    .get_operation(pb::GetOperationRequest { name: name.clone() })
                    .await
                    .expect("get")
                    .into_inner();
                seen.push(op.succeeded + op.failed);
                if op.state != "running" {
                    assert!(seen.windows(2).all(|w| w[0] <= w[1]), "progress only grows");
                    return op;
                }
                assert!(tokio::time::Instant::now() < deadline, "{op:?}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    let done = wait_done(started.name.clone()).await;
    assert_eq!(
        (done.state.as_str(), done.succeeded, done.failed),
        ("done", 999, 1),
        "{done:?}"
    );
    assert_eq!(done.errors.len(), 1);
    assert!(
        done.errors[0].contains("no stored work"),
        "{:?}",
        done.errors
    );
    assert_eq!(stream.info().await.expect("info").state.messages, 999);
    assert_eq!(
        names(&mut c, "tenants/acme", "state = retrying")
            .await
            .expect("list")
            .len(),
        100,
        "(a page of the 999)"
    );
    // The same request: the same operation, nothing done again.
    let again = c
        .bulk_act_on_exceptions(bulk(
            "retry",
            "kind = delivery_exhausted AND state = open",
            "b-1",
        ))
        .await
        .expect("bulk")
        .into_inner();
    assert_eq!(again.name, started.name);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(stream.info().await.expect("info").state.messages, 999);

    // Finance acting in bulk on engineering's exceptions: each fails, none changes.
    let finance = tokens(Role::Finance).await;
    let mut f = connect(&stack.api_url, &finance).await.expect("client");
    let theirs = f
        .bulk_act_on_exceptions(bulk(
            "resolve",
            "kind = delivery_exhausted AND state = retrying",
            "",
        ))
        .await
        .expect("bulk")
        .into_inner();
    let theirs = wait_done(theirs.name).await;
    assert_eq!((theirs.succeeded, theirs.failed), (0, 999), "{theirs:?}");
    assert!(
        theirs.errors[0].contains("may not act"),
        "{:?}",
        theirs.errors
    );

    // Cancelled: it stops, and what it did stays done.
    let resolving = c
        .bulk_act_on_exceptions(bulk(
            "resolve",
            "kind = delivery_exhausted AND state = retrying",
            "",
        ))
        .await
        .expect("bulk")
        .into_inner();
    let cancelled = operations
        .cancel_operation(pb::CancelOperationRequest {
            name: resolving.name.clone(),
        })
        .await
        .expect("cancel")
        .into_inner();
    assert!(
        matches!(cancelled.state.as_str(), "running" | "done"),
        "{cancelled:?}"
    );
    let ended = wait_done(resolving.name).await;
    assert!(
        matches!(ended.state.as_str(), "cancelled" | "done"),
        "{ended:?}"
    );
    let resolved = names(&mut c, "tenants/acme", "state = resolved")
        .await
        .expect("list")
        .len() as i64;
    assert!(
        resolved <= ended.succeeded.max(100),
        "{resolved} vs {ended:?}"
    );
    // Bad input says so.
    let bad = c
        .bulk_act_on_exceptions(bulk("delete", "", ""))
        .await
        .expect_err("no such action");
    assert_eq!(bad.code(), Code::InvalidArgument);

    stack.shutdown().await;
    env.cleanup().await;
}
