//! `ferry bench ops`, the bulk retry with the ERP downstream: every Ferry service and both
//! simulators run; the ERP simulator refuses new sales orders (its period is closed) until
//! `n` orders wait as `erp_rejected` exceptions; then it takes them again and engineering
//! retries them all in one bulk operation. Measured from the retry's start until the ERP
//! holds every order — once each.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use ferry_config::Config;
use ferry_ops::access::Role;
use ferry_proto::ops::v1 as pb;
use ferry_proto::ops::v1::operation_service_client::OperationServiceClient;

use crate::stack::{Stack, StackOptions};

const TENANT: &str = "down";

/// How fast a bulk retry of `n` refused orders gets them into the ERP: (orders posted per
/// second, operation's own duration in seconds).
pub async fn retry_into_erp(config: &Config, n: usize) -> anyhow::Result<(f64, f64)> {
    let mut config = config.clone();
    config.nats.prefix = "benchdown".into();
    let stack = Stack::start(
        config,
        StackOptions {
            tenant: TENANT.into(),
            centra_requests_per_10s: 10_000,
            ..StackOptions::default()
        },
    )
    .await?;
    let store = ferry_store::Store::connect(&stack.config.database).await?;
    stack.erp.set_faults(ferry_sim_erp::Faults {
        refuse_new: Some("the accounting period is closed".into()),
        ..Default::default()
    });
    let mix = ferry_sim_centra::OrderMix {
        hold_pct: 0,
        pending_pct: 0,
        cancellation_pct: 0,
        ..ferry_sim_centra::OrderMix::default()
    };
    stack.centra.generate(n, &mix);
    let refused = Instant::now();
    loop {
        let (waiting,): (i64,) = sqlx::query_as(
            "SELECT count(*) FROM exceptions
             WHERE tenant = $1 AND kind = 'erp_rejected' AND state = 'open'",
        )
        .bind(TENANT)
        .fetch_one(store.pool())
        .await?;
        if waiting >= n as i64 {
            break;
        }
        anyhow::ensure!(
            refused.elapsed() < Duration::from_secs(600),
            "only {waiting} of {n} orders were refused"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!(
        "{n} orders refused in {:.1} s",
        refused.elapsed().as_secs_f64()
    );
    stack.erp.set_faults(ferry_sim_erp::Faults::default());

    let (_, secret) =
        crate::tokens::create(&store, "bench@eng", Role::Engineering, &[TENANT.into()]).await?;
    let mut client = crate::exceptions::connect(&stack.api_url, &secret).await?;
    let (channel, bearer) = crate::exceptions::channel(&stack.api_url, &secret).await?;
    let mut operations = OperationServiceClient::with_interceptor(channel, bearer);
    let t = Instant::now();
    let op = client
        .bulk_act_on_exceptions(pb::BulkActRequest {
            parent: format!("tenants/{TENANT}"),
            filter: "kind = erp_rejected AND state = open".into(),
            action: "retry".into(),
            note: "the period is open again".into(),
            request_id: "bench-downstream".into(),
        })
        .await
        .context("bulk retry")?
        .into_inner();
    let mut operation_seconds = None;
    loop {
        if operation_seconds.is_none() {
            let now = operations
                .get_operation(pb::GetOperationRequest {
                    name: op.name.clone(),
                })
                .await?
                .into_inner();
            if now.state != "running" {
                anyhow::ensure!(
                    now.succeeded == n as i64 && now.failed == 0,
                    "every exception retried: {now:?}"
                );
                operation_seconds = Some(t.elapsed().as_secs_f64());
            }
        }
        let posted = stack.erp.orders().len();
        if posted >= n && operation_seconds.is_some() {
            anyhow::ensure!(posted == n, "{posted} sales orders for {n} orders");
            break;
        }
        anyhow::ensure!(
            t.elapsed() < Duration::from_secs(600),
            "only {posted} of {n} orders reached the ERP"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let seconds = t.elapsed().as_secs_f64();
    eprintln!("bulk retry into the ERP: {n} in {seconds:.2} s");
    stack.shutdown().await;
    Ok((
        (n as f64 / seconds).round(),
        operation_seconds.unwrap_or(seconds),
    ))
}
