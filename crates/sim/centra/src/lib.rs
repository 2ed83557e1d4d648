//! A Centra simulator: the Integration API's GraphQL endpoint (answering the order snapshot
//! contract exactly), signed webhooks, and an admin API to create orders and steer faults.
//! It runs as its own binary (`ferry-sim-centra`) and inside `ferry up`, tests and benches.

use std::net::SocketAddr;
use std::sync::Arc;

use async_graphql::Value;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

pub mod fast;
pub mod generate;
pub mod model;
pub mod mutation;
pub mod schema;
pub mod state;
pub mod webhook;

pub use generate::OrderMix;
pub use state::SimState;
pub use webhook::{WebhookConfig, WebhookStats};

/// The version the simulator reports in `extensions.appVersion`.
pub const APP_VERSION: &str = "ferry-sim-0.1";

#[derive(Debug, Clone)]
pub struct SimConfig {
    pub listen: SocketAddr,
    /// Seed of the order generator (same seed, same orders).
    pub seed: u64,
    pub first_order_number: i64,
    /// Integration API tokens the simulator accepts.
    pub tokens: Vec<String>,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            seed: 1,
            first_order_number: 1000,
            tokens: vec!["sim-token".to_owned()],
        }
    }
}

#[derive(Clone)]
struct App {
    state: Arc<SimState>,
    schema: schema::CentraSchema,
    tokens: Arc<Vec<String>>,
}

/// A running simulator.
#[derive(Clone)]
pub struct CentraSim {
    pub state: Arc<SimState>,
    pub addr: SocketAddr,
}

impl CentraSim {
    pub async fn start(
        config: SimConfig,
        shutdown: CancellationToken,
    ) -> std::io::Result<CentraSim> {
        let state = Arc::new(SimState::new(config.seed, config.first_order_number));
        state.webhooks.start(shutdown.clone());
        let app = App {
            state: state.clone(),
            schema: schema::build(state.clone()),
            tokens: Arc::new(config.tokens),
        };
        let router = Router::new()
            .route("/graphql", post(graphql))
            .route("/admin/orders", post(admin_generate))
            .route("/admin/orders/{number}", get(admin_order))
            .route(
                "/admin/webhooks",
                put(admin_webhooks).get(admin_webhook_stats),
            )
            .route("/admin/webhooks/announce", post(admin_announce))
            .with_state(app);
        let listener = tokio::net::TcpListener::bind(config.listen).await?;
        let addr = listener.local_addr()?;
        tokio::spawn(async move {
            let _ = axum::serve(listener, router)
                .with_graceful_shutdown(shutdown.cancelled_owned())
                .await;
        });
        Ok(CentraSim { state, addr })
    }

    pub fn graphql_url(&self) -> String {
        format!("http://{}/graphql", self.addr)
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn generate(&self, count: usize, mix: &OrderMix) -> Vec<i64> {
        self.state.generate(count, mix)
    }

    pub fn configure_webhooks(&self, config: Option<WebhookConfig>) {
        self.state.webhooks.configure(config);
    }

    pub fn webhook_stats(&self) -> WebhookStats {
        self.state.webhooks.stats()
    }
}

fn token_of(headers: &HeaderMap) -> Option<String> {
    if let Some(bearer) = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    {
        return Some(bearer.trim().to_owned());
    }
    headers
        .get_all("cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| c.trim().strip_prefix("graphql-access=").map(str::to_owned))
}

async fn graphql(
    State(app): State<App>,
    headers: HeaderMap,
    Json(request): Json<async_graphql::Request>,
) -> Response {
    let authorised = token_of(&headers).is_some_and(|t| app.tokens.contains(&t));
    if !authorised {
        return (
            StatusCode::UNAUTHORIZED,
            Json(serde_json::json!({ "errors": [{ "message": "Unauthorized: a valid Integration API token is required" }] })),
        )
            .into_response();
    }
    if let Some(orders) = contract_query_orders(&app.state, &request) {
        app.state
            .fast_answers
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let body = fast::answer(&orders, &extensions_json());
        return ([("content-type", "application/json")], body).into_response();
    }
    let mut response = app.schema.execute(request.data(app.state.clone())).await;
    if let serde_json::Value::Object(extensions) = extensions_json() {
        for (k, v) in extensions {
            if let Ok(v) = Value::from_json(v) {
                response.extensions.insert(k, v);
            }
        }
    }
    Json(response).into_response()
}

/// What every answer carries in `extensions` (keys in the order the engine prints them).
fn extensions_json() -> serde_json::Value {
    serde_json::json!({
        "appVersion": APP_VERSION,
        "complexity": 100,
        "permissionsUsed": ["Order:read"],
    })
}

/// The orders asked for, when the request is the contract query filtered by order numbers
/// (the precompiled path); `None` sends the request through the GraphQL engine.
fn contract_query_orders(
    state: &SimState,
    request: &async_graphql::Request,
) -> Option<Vec<Arc<model::Order>>> {
    if !fast::is_contract_query(&request.query, ferry_centra::ORDER_SNAPSHOT_QUERY) {
        return None;
    }
    let int = |v: &Value| match v {
        Value::Number(n) => n.as_i64(),
        _ => None,
    };
    let vars = &request.variables;
    let limit = match vars.get("limit") {
        None | Some(Value::Null) => 20,
        Some(v) => int(v).filter(|l| (1..=200).contains(l))?,
    };
    let page = match vars.get("page") {
        None | Some(Value::Null) => 1,
        Some(v) => int(v).filter(|p| *p >= 1)?,
    };
    let Some(Value::Object(filter)) = vars.get("where") else {
        return None;
    };
    if filter.len() != 1 {
        return None;
    }
    let numbers: Vec<i64> = match filter.get("number")? {
        Value::List(items) => items.iter().map(int).collect::<Option<Vec<_>>>()?,
        single => vec![int(single)?],
    };
    let filter = schema::OrderFilter {
        number: Some(numbers),
        ..Default::default()
    };
    Some(state.find_orders(&filter, limit as usize, page as usize))
}

#[derive(Deserialize)]
struct GenerateRequest {
    count: usize,
    #[serde(default)]
    markets: Vec<i64>,
    #[serde(default)]
    hold_pct: u32,
    #[serde(default)]
    pending_pct: u32,
}

async fn admin_generate(State(app): State<App>, Json(request): Json<GenerateRequest>) -> Response {
    let mix = OrderMix {
        markets: request.markets,
        hold_pct: request.hold_pct,
        pending_pct: request.pending_pct,
        ..OrderMix::default()
    };
    let numbers = app.state.generate(request.count.min(100_000), &mix);
    Json(serde_json::json!({ "numbers": numbers })).into_response()
}

async fn admin_order(State(app): State<App>, Path(number): Path<i64>) -> Response {
    match app.state.order(number) {
        Some(o) => Json(serde_json::json!({
            "number": o.number,
            "id": o.id,
            "status": format!("{:?}", o.status).to_uppercase(),
            "isOnHold": o.is_on_hold,
            "grandTotal": o.figures().grand_total.to_string(),
            "currency": o.market.currency,
        }))
        .into_response(),
        None => (StatusCode::NOT_FOUND, "no such order").into_response(),
    }
}

async fn admin_webhooks(State(app): State<App>, Json(config): Json<WebhookConfig>) -> Response {
    app.state.webhooks.configure(Some(config));
    StatusCode::NO_CONTENT.into_response()
}

async fn admin_webhook_stats(State(app): State<App>) -> Response {
    Json(app.state.webhooks.stats()).into_response()
}

#[derive(Deserialize)]
struct AnnounceRequest {
    numbers: Vec<i64>,
    #[serde(default = "update")]
    action: String,
}

fn update() -> String {
    "update".to_owned()
}

async fn admin_announce(State(app): State<App>, Json(request): Json<AnnounceRequest>) -> Response {
    for n in &request.numbers {
        app.state.webhooks.announce("order", &request.action, *n);
    }
    StatusCode::NO_CONTENT.into_response()
}
