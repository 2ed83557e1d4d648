//! `POST /webhooks/centra/<tenant>`: verifies `X-Centra-Signature` in constant time with a
//! replay window, and answers 2xx only once every event is stored in JetStream.
//!
//! | answer | when |
//! |---|---|
//! | 204 | every event stored (or a duplicate of one already stored) |
//! | 400 | the body is not `payload=<events JSON>` |
//! | 401 | signature missing, wrong, or outside the replay window |
//! | 404 | unknown tenant |
//! | 413 | body larger than `ingest.max_body_bytes` |
//! | 503 | JetStream did not store the events (Centra may retry; the resync catches up) |

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use ferry_centra::webhook::{self, WebhookError, WebhookEvent};
use ferry_config::{Config, TenantConfig};
use ferry_proto::centra::v1 as pb;
use ferry_runtime::{Outgoing, ServiceBase};
use prost::Message as _;
use secrecy::ExposeSecret;
use sha2::{Digest, Sha256};
use tracing::Instrument;

use ferry_runtime::log_limit::LogLimit;

#[derive(Clone)]
struct WebhookState {
    base: ServiceBase,
    config: Arc<Config>,
    tenants: Arc<HashMap<String, TenantConfig>>,
    quiet: Arc<LogLimit>,
}

/// Binds the webhook endpoint and serves it until shutdown; returns the bound address.
pub async fn serve(base: ServiceBase, config: Arc<Config>) -> std::io::Result<SocketAddr> {
    let state = WebhookState {
        config: config.clone(),
        tenants: Arc::new(
            config
                .tenants
                .iter()
                .map(|t| (t.id.clone(), t.clone()))
                .collect(),
        ),
        base: base.clone(),
        quiet: Arc::new(LogLimit::new(REFUSALS_LOGGED_EVERY)),
    };
    let app = Router::new()
        .route("/webhooks/centra/{tenant}", post(receive))
        .layer(DefaultBodyLimit::max(config.ingest.max_body_bytes))
        .with_state(state);
    let listener = tokio::net::TcpListener::bind(config.ingest.listen).await?;
    let addr = listener.local_addr()?;
    tokio::spawn(ferry_runtime::http::serve_guarded(
        "webhook",
        listener,
        app,
        ferry_runtime::http::Deadlines {
            header_read: config.ingest.header_read_timeout,
            request: config.ingest.request_timeout,
        },
        base.shutdown.clone(),
    ));
    tracing::info!(%addr, "webhook endpoint listening");
    Ok(addr)
}

/// A refusal of each kind per tenant is logged at most this often.
const REFUSALS_LOGGED_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

fn refuse(
    quiet: &LogLimit,
    tenant: &str,
    status: StatusCode,
    outcome: &'static str,
    why: &str,
) -> Response {
    metrics::counter!("ferry_webhooks_total", "tenant" => tenant.to_owned(), "outcome" => outcome)
        .increment(1);
    if let Some(unlogged) = quiet.admit(tenant, outcome, std::time::Instant::now()) {
        tracing::warn!(tenant, outcome, why, unlogged, "webhook refused");
    }
    (status, format!("{why}\n")).into_response()
}

async fn receive(
    State(state): State<WebhookState>,
    Path(tenant_id): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Response {
    let Some(tenant) = state.tenants.get(&tenant_id) else {
        // Not echoing the unknown id keeps arbitrary input out of logs and metrics labels.
        return refuse(
            &state.quiet,
            "unknown",
            StatusCode::NOT_FOUND,
            "unknown_tenant",
            "unknown tenant",
        );
    };
    let body = match body {
        Ok(b) => b,
        Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return refuse(
                &state.quiet,
                &tenant.id,
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                "body too large",
            );
        }
        Err(_) => {
            return refuse(
                &state.quiet,
                &tenant.id,
                StatusCode::BAD_REQUEST,
                "malformed",
                "unreadable body",
            );
        }
    };
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let signature = headers
        .get("x-centra-signature")
        .and_then(|v| v.to_str().ok());
    if let Err(e) = webhook::verify(
        tenant.centra.webhook_secret.expose_secret().as_bytes(),
        signature,
        &body,
        now,
        state.config.ingest.replay_window.as_secs() as i64,
    ) {
        return refuse(
            &state.quiet,
            &tenant.id,
            StatusCode::UNAUTHORIZED,
            e.label(),
            &e.to_string(),
        );
    }
    let payload = match webhook::parse_body(&body) {
        Ok(p) => p,
        Err(e @ WebhookError::Malformed(_)) => {
            return refuse(
                &state.quiet,
                &tenant.id,
                StatusCode::BAD_REQUEST,
                "malformed",
                &e.to_string(),
            );
        }
        Err(e) => {
            return refuse(
                &state.quiet,
                &tenant.id,
                StatusCode::BAD_REQUEST,
                "malformed",
                &e.to_string(),
            );
        }
    };
    let accepted_at = ferry_proto::timestamp(SystemTime::now());
    let span = tracing::info_span!(
        "centra.webhook",
        otel.kind = "producer",
        ferry.tenant = %tenant.id,
        centra.events = payload.events.len(),
    );
    let message = notices(&state.base, &tenant.id, &payload.events, &body, accepted_at);
    let publisher = state.base.publisher.clone();
    // Bounded: with JetStream away the publish would retry for a long while, and Centra
    // stops waiting after 5 s. Events stored after the 503 are not lost either way (a
    // retried webhook has the same message id; the resync finds what was announced).
    let stored = match tokio::time::timeout(
        state.config.ingest.publish_timeout,
        async move { publisher.publish(&message).await }.instrument(span),
    )
    .await
    {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!(
            "JetStream did not store them within {:?}",
            state.config.ingest.publish_timeout
        )),
    };
    match stored {
        Ok(()) => {
            metrics::counter!("ferry_webhooks_total", "tenant" => tenant.id.clone(), "outcome" => "accepted").increment(1);
            metrics::counter!("ferry_webhook_events_total", "tenant" => tenant.id.clone())
                .increment(payload.events.len() as u64);
            StatusCode::NO_CONTENT.into_response()
        }
        Err(e) => {
            // Logged at the refusals' bounded rate: an outage must not flood the log.
            if let Some(unlogged) =
                state
                    .quiet
                    .admit(&tenant.id, "not_stored_why", std::time::Instant::now())
            {
                tracing::error!(tenant = %tenant.id, error = %e, unlogged, "webhook events not stored");
            }
            refuse(
                &state.quiet,
                &tenant.id,
                StatusCode::SERVICE_UNAVAILABLE,
                "not_stored",
                "events could not be stored; retry later",
            )
        }
    }
}

/// The events of one webhook call as one `ChangeNotices` message. Its id is the hash of
/// the raw body, so a webhook Centra retries is dropped by JetStream's duplicate window.
pub fn notices(
    base: &ServiceBase,
    tenant: &str,
    events: &[WebhookEvent],
    body: &[u8],
    accepted_at: prost_types::Timestamp,
) -> Outgoing {
    let message = pb::ChangeNotices {
        tenant: tenant.to_owned(),
        source: pb::Source::Webhook as i32,
        notices: events
            .iter()
            .map(|event| pb::ChangeNotice {
                tenant: tenant.to_owned(),
                source: pb::Source::Webhook as i32,
                object_type: event.object_type.clone(),
                action: event.action.clone(),
                object_id: event.id,
                event_date: event.date.clone(),
                accepted_at: Some(accepted_at),
            })
            .collect(),
        accepted_at: Some(accepted_at),
    };
    let digest = hex::encode(&Sha256::digest(body)[..16]);
    Outgoing {
        subject: base.topology.notices_subject(tenant),
        msg_id: format!("notices:webhook:{digest}"),
        payload: Bytes::from(message.encode_to_vec()),
    }
}
