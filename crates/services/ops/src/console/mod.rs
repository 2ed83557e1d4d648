//! The web console: server-rendered pages through which finance, operations and customer
//! service work their exceptions and follow orders. Every page and action calls the same
//! operations API the CLI calls (in this process, as the signed-in person), so roles,
//! tenants and the audit are the API's — the console has no rules of its own.

mod chart;
mod exceptions;
mod health;
mod inbox;
mod layout;
mod mappings;
mod orders;
mod reconcile;
mod session;

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use ferry_runtime::nats::Topology;
use ferry_store::fulfilment::MutationBudget;
use tonic::{Code, Status};

use crate::access::Principal;
use crate::server::{OpsApi, SignedIn};

/// What every handler shares.
#[derive(Clone)]
pub(crate) struct Console {
    api: OpsApi,
    secure_cookies: bool,
    session_ttl: Duration,
    jetstream: async_nats::jetstream::Context,
    topology: Topology,
    /// Each tenant's share of Centra's mutation quota (the health page shows what is left).
    budgets: std::sync::Arc<std::collections::BTreeMap<String, MutationBudget>>,
}

impl Console {
    /// `body` as a call of the signed-in person `who` to the operations API.
    fn call<T>(who: &Principal, body: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(body);
        request.extensions_mut().insert(SignedIn(who.clone()));
        request
    }
}

/// Binds `[console] listen` and serves the console until `shutdown`; answers the address.
pub(crate) async fn start(
    api: OpsApi,
    config: &ferry_config::Config,
    jetstream: async_nats::jetstream::Context,
    topology: Topology,
    shutdown: tokio_util::sync::CancellationToken,
) -> std::io::Result<SocketAddr> {
    let budgets = config
        .tenants
        .iter()
        .map(|t| (t.id.clone(), MutationBudget::for_tenant(t)))
        .collect();
    let config = &config.console;
    let listener = tokio::net::TcpListener::bind(config.listen).await?;
    let addr = listener.local_addr()?;
    let state = Console {
        api,
        secure_cookies: config.secure_cookies,
        session_ttl: config.session_ttl,
        jetstream,
        topology,
        budgets: std::sync::Arc::new(budgets),
    };
    tokio::spawn(ferry_runtime::http::serve_guarded(
        "console",
        listener,
        router(state),
        ferry_runtime::http::Deadlines::default(),
        shutdown,
    ));
    tracing::info!(%addr, "console listening");
    Ok(addr)
}

fn router(state: Console) -> Router {
    Router::new()
        .route("/", get(inbox::page))
        .route("/login", get(session::login_page).post(session::login))
        .route("/logout", post(session::logout))
        .route("/bulk", post(inbox::bulk))
        .route("/operations/{id}", get(inbox::operation))
        .route("/exceptions/{tenant}/{id}", get(exceptions::page))
        .route("/exceptions/{tenant}/{id}/{action}", post(exceptions::act))
        .route("/orders", get(orders::search))
        .route("/orders/{tenant}/{number}", get(orders::timeline))
        .route(
            "/orders/{tenant}/{number}/replay",
            get(orders::replay_preview).post(orders::replay_apply),
        )
        .route("/mappings", get(mappings::page))
        .route("/mappings/{tenant}", post(mappings::upload))
        .route("/reconciliation", get(reconcile::page))
        .route("/reconciliation/{tenant}/{file}", get(reconcile::download))
        .route("/health", get(health::page))
        .route("/static/console.css", get(css))
        .route("/static/console.js", get(js))
        .route("/favicon.ico", get(|| async { StatusCode::NO_CONTENT }))
        // A CSV of 10,000 mappings fits in 1 MiB many times over.
        .layer(axum::extract::DefaultBodyLimit::max(2 << 20))
        .layer(axum::middleware::map_response(security_headers))
        .with_state(state)
}

/// What every answer carries: scripts and styles only from the console itself, never in
/// a frame, nothing cached that a shared computer could show the next person.
async fn security_headers(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self' data:; \
             connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    response
}

async fn css() -> impl IntoResponse {
    asset(
        "text/css; charset=utf-8",
        include_str!("assets/console.css"),
    )
}

async fn js() -> impl IntoResponse {
    asset(
        "text/javascript; charset=utf-8",
        include_str!("assets/console.js"),
    )
}

fn asset(kind: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        body,
    )
        .into_response()
}

/// An API refusal as a page: the API's own words, with the status a browser expects.
pub(crate) struct Refused(Status);

impl From<Status> for Refused {
    fn from(status: Status) -> Self {
        Refused(status)
    }
}

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        let (code, title) = match self.0.code() {
            Code::NotFound => (StatusCode::NOT_FOUND, "Not found"),
            Code::PermissionDenied => (StatusCode::FORBIDDEN, "Not allowed"),
            Code::Unauthenticated => (StatusCode::UNAUTHORIZED, "Please sign in"),
            Code::InvalidArgument | Code::FailedPrecondition => {
                (StatusCode::BAD_REQUEST, "That cannot be done")
            }
            _ => (
                StatusCode::SERVICE_UNAVAILABLE,
                "Ferry could not answer just now",
            ),
        };
        let page = layout::bare(
            title,
            maud::html! {
                h1 { (title) }
                p.notice.error role="alert" { (self.0.message()) }
                p { a href="/" { "Back to the inbox" } }
            },
        );
        (code, page).into_response()
    }
}
