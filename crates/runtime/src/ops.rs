//! The operations endpoint every service serves: `/livez` (the process runs), `/readyz`
//! (NATS and the database really answer) and `/metrics` (Prometheus).

use std::net::SocketAddr;
use std::time::Duration;

use async_trait::async_trait;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use tokio_util::sync::CancellationToken;

use crate::service::Readiness;
use crate::telemetry::Telemetry;

/// A dependency that must answer for the service to be ready.
#[async_trait]
pub trait ReadinessCheck: Send + Sync + 'static {
    fn name(&self) -> &'static str;
    async fn check(&self) -> Result<(), String>;
}

/// NATS is ready when JetStream answers an account-info request.
pub struct NatsReady(pub async_nats::jetstream::Context);

#[async_trait]
impl ReadinessCheck for NatsReady {
    fn name(&self) -> &'static str {
        "nats"
    }

    async fn check(&self) -> Result<(), String> {
        self.0
            .query_account()
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}

/// How long one readiness check may take (the chart's probe allows 3 s).
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Clone)]
struct OpsState {
    telemetry: Telemetry,
    readiness: Readiness,
    shutdown: CancellationToken,
}

/// Binds the ops endpoint and serves it until `shutdown`. Returns the bound address (the
/// configured port may be 0).
pub async fn serve(
    listen: SocketAddr,
    telemetry: Telemetry,
    readiness: Readiness,
    shutdown: CancellationToken,
) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    let state = OpsState {
        telemetry,
        readiness,
        shutdown: shutdown.clone(),
    };
    let app = Router::new()
        .route("/livez", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(state);
    tokio::spawn(crate::http::serve_guarded(
        "ops endpoint",
        listener,
        app,
        crate::http::Deadlines::default(),
        shutdown,
    ));
    Ok(addr)
}

/// Answers the kubelet's probe, and keeps its answer as `ferry_ready` (1 or 0) for the
/// alert on a service that stays unready (the kubelet asks every few seconds).
async fn readyz(State(state): State<OpsState>) -> impl IntoResponse {
    let (status, report) = readiness(&state).await;
    metrics::gauge!("ferry_ready").set(if status == StatusCode::OK { 1.0 } else { 0.0 });
    (status, report)
}

async fn readiness(state: &OpsState) -> (StatusCode, String) {
    if state.shutdown.is_cancelled() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "shutting down\n".to_owned(),
        );
    }
    // All at once, each bounded: a probe must answer within the kubelet's timeout even
    // when every dependency is away.
    let checks = state.readiness.checks();
    let results = futures::future::join_all(checks.iter().map(|check| async move {
        tokio::time::timeout(CHECK_TIMEOUT, check.check())
            .await
            .unwrap_or_else(|_| Err(format!("no answer within {CHECK_TIMEOUT:?}")))
    }))
    .await;
    let mut report = String::new();
    let mut ready = true;
    for (check, result) in checks.iter().zip(results) {
        match result {
            Ok(()) => report.push_str(&format!("{}: ok\n", check.name())),
            Err(e) => {
                ready = false;
                report.push_str(&format!("{}: {e}\n", check.name()));
            }
        }
    }
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, report)
}

async fn metrics(State(state): State<OpsState>) -> impl IntoResponse {
    (
        [("content-type", "text/plain; version=0.0.4")],
        state.telemetry.render_metrics(),
    )
}
