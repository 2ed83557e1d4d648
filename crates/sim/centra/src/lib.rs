//! A Centra simulator: the Integration API's GraphQL endpoint (answering the order snapshot
//! contract exactly), signed webhooks, and an admin API to create orders and steer faults.
//! It runs as its own binary (`ferry-sim-centra`) and inside `ferry up`, tests and benches.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use async_graphql::Value;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use rand::Rng;
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

pub mod auth;
pub mod fast;
pub mod generate;
pub mod limits;
pub mod load;
pub mod model;
pub mod mutation;
pub mod ops;
pub mod queries;
pub mod schema;
pub mod state;
pub mod webhook;

pub use auth::ApiToken;
pub use generate::OrderMix;
pub use limits::{Plan, Quotas, RetryAfterFormat};
pub use state::{Faults, SchemaRename, ShipmentStep, SimState};
pub use webhook::{WebhookConfig, WebhookStats};

/// The version the simulator reports in `extensions.appVersion`.
pub const APP_VERSION: &str = "ferry-sim-0.2";

/// The SDL of the simulated Integration API, checked in next to the crate.
pub const SCHEMA_SDL: &str = include_str!("../schema.graphql");

/// What reading the contract snapshot takes.
/// Sorted, as the engine path reports them.
const CONTRACT_PERMISSIONS: &[&str] = &[
    "Order.billingAddress:read",
    "Order.shippingAddress:read",
    "Order:read",
    "Purchaser:read",
];

#[derive(Debug, Clone)]
pub struct SimConfig {
    pub listen: SocketAddr,
    /// Seed of the order generator (same seed, same orders).
    pub seed: u64,
    pub first_order_number: i64,
    /// Integration API tokens the simulator accepts.
    pub tokens: Vec<ApiToken>,
    /// Rate-limit quotas (Centra's Growth plan by default).
    pub quotas: Quotas,
    /// The markets the instance sells in (`None`: the embedded `markets.toml`).
    pub markets: Option<Vec<generate::MarketSpec>>,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            seed: 1,
            first_order_number: 1000,
            tokens: vec![ApiToken::all("sim-token", "ferry")],
            quotas: Quotas::default(),
            markets: None,
        }
    }
}

#[derive(Clone)]
struct App {
    state: Arc<SimState>,
    schema: schema::CentraSchema,
    tokens: Arc<Vec<ApiToken>>,
    /// The contract query's complexity, as the engine computes it.
    contract_complexity: ContractComplexity,
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
        let markets = match config.markets {
            Some(specs) => specs
                .into_iter()
                .map(generate::MarketSpec::into_market)
                .collect(),
            None => generate::markets(),
        };
        let state = Arc::new(SimState::with(
            config.seed,
            config.first_order_number,
            config.quotas,
            markets,
        ));
        state.webhooks.start(shutdown.clone());
        let schema = schema::build(state.clone());
        let contract_complexity = ContractComplexity::of(&schema).await;
        let app = App {
            state: state.clone(),
            schema,
            tokens: Arc::new(config.tokens),
            contract_complexity,
        };
        let router = Router::new()
            .route("/graphql", post(graphql))
            .route("/admin/orders", post(admin_generate))
            .route("/admin/orders/{number}", get(admin_order))
            .route("/admin/snapshots", post(admin_load_snapshot))
            .route(
                "/admin/webhooks",
                put(admin_webhooks).get(admin_webhook_stats),
            )
            .route("/admin/webhooks/announce", post(admin_announce))
            .route("/admin/shipments", get(admin_shipments))
            .route("/admin/stock", get(admin_stock))
            .route("/admin/emails", get(admin_emails))
            .route("/admin/requests", get(admin_requests))
            .route("/admin/faults", put(admin_faults).get(admin_faults_get))
            .route("/admin/limits", put(admin_limits).get(admin_limits_get))
            .route("/admin/catalogue", post(admin_catalogue))
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

    pub fn set_faults(&self, faults: Faults) {
        *self.state.faults.write() = arm(faults);
    }
}

fn arm(mut faults: Faults) -> Faults {
    faults.storm_until = (faults.storm_ms > 0)
        .then(|| std::time::Instant::now() + Duration::from_millis(faults.storm_ms));
    faults
}

/// The complexity the engine computes for the contract query at `limit` (without running
/// resolvers that matter: the filter matches nothing).
async fn complexity_of(schema: &schema::CentraSchema, query: &str, limit: i64) -> u64 {
    let request =
        async_graphql::Request::new(query).variables(async_graphql::Variables::from_json(
            serde_json::json!({ "where": { "number": [] }, "limit": limit, "page": 1 }),
        ));
    let response = schema.execute(request).await;
    analyzer_complexity(&response.extensions).unwrap_or(100)
}

/// The contract query's complexity as `base + per_order × limit`: what the engine would
/// charge, without running it for every request of the precompiled path.
#[derive(Debug, Clone, Copy)]
struct ContractComplexity {
    base: u64,
    per_order: u64,
}

impl ContractComplexity {
    async fn of(schema: &schema::CentraSchema) -> Self {
        let one = complexity_of(schema, ferry_centra::ORDER_SNAPSHOT_QUERY, 1).await;
        let two = complexity_of(schema, ferry_centra::ORDER_SNAPSHOT_QUERY, 2).await;
        let per_order = two.saturating_sub(one);
        ContractComplexity {
            base: one.saturating_sub(per_order),
            per_order,
        }
    }

    fn at(self, limit: i64) -> u64 {
        self.base + self.per_order * u64::try_from(limit).unwrap_or(1)
    }
}

fn analyzer_complexity(extensions: &std::collections::BTreeMap<String, Value>) -> Option<u64> {
    match extensions.get("analyzer") {
        Some(Value::Object(a)) => match a.get("complexity") {
            Some(Value::Number(n)) => n.as_u64(),
            _ => None,
        },
        _ => None,
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

/// Top-level fields of the request's mutation operation: each costs one mutation token.
fn count_mutations(request: &async_graphql::Request) -> u64 {
    use async_graphql::parser::types::{DocumentOperations, OperationType};
    let Ok(doc) = async_graphql::parser::parse_query(&request.query) else {
        return 0;
    };
    let count = |op: &async_graphql::parser::types::OperationDefinition| {
        if op.ty == OperationType::Mutation {
            op.selection_set.node.items.len() as u64
        } else {
            0
        }
    };
    match &doc.operations {
        DocumentOperations::Single(op) => count(&op.node),
        DocumentOperations::Multiple(ops) => match &request.operation_name {
            Some(name) => ops.get(name.as_str()).map_or(0, |op| count(&op.node)),
            None => ops.values().map(|op| count(&op.node)).max().unwrap_or(0),
        },
    }
}

fn too_many(state: &SimState, refusal: &limits::Refusal) -> Response {
    let header = refusal.retry_after(state.limits.quotas().retry_after);
    let kind = serde_json::to_value(refusal.kind).unwrap_or_default();
    let interval = serde_json::to_value(refusal.interval).unwrap_or_default();
    (
        StatusCode::TOO_MANY_REQUESTS,
        [("retry-after", header)],
        Json(serde_json::json!({ "errors": [{
            "message": format!("Too many requests: the {} quota for {} is used up", kind.as_str().unwrap_or(""), interval.as_str().unwrap_or("")),
            "extensions": { "category": "rate-limit" }
        }] })),
    )
        .into_response()
}

async fn graphql(
    State(app): State<App>,
    headers: HeaderMap,
    Json(request): Json<async_graphql::Request>,
) -> Response {
    let operation = request.operation_name.clone();
    let record = |status: StatusCode, mutations: u64, complexity: u64| state::RequestRecord {
        at: chrono::Utc::now(),
        operation: operation.clone(),
        status: status.as_u16(),
        mutations,
        complexity,
    };
    let faults = app.state.faults.read().clone();
    let mut delay = faults.latency_ms;
    if faults.slow_per_mille > 0 && rand::rng().random_range(0..1000) < faults.slow_per_mille {
        delay += faults.slow_ms;
    }
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    if let Some(until) = faults.storm_until
        && let Some(wait) = until.checked_duration_since(std::time::Instant::now())
    {
        app.state
            .log_request(record(StatusCode::TOO_MANY_REQUESTS, 0, 0));
        return too_many(
            &app.state,
            &limits::Refusal {
                kind: limits::RateLimitType::RequestCount,
                interval: limits::RateLimitInterval::TenSeconds,
                wait,
            },
        );
    }
    if faults.error_per_mille > 0 && rand::rng().random_range(0..1000) < faults.error_per_mille {
        app.state
            .log_request(record(StatusCode::SERVICE_UNAVAILABLE, 0, 0));
        return (StatusCode::SERVICE_UNAVAILABLE, "injected fault").into_response();
    }
    let token = token_of(&headers).and_then(|t| app.tokens.iter().find(|k| k.token == t).cloned());
    let Some(token) = token else {
        // Centra documents 403 for a missing or unknown token.
        app.state.log_request(record(StatusCode::FORBIDDEN, 0, 0));
        return (
            StatusCode::FORBIDDEN,
            Json(serde_json::json!({ "errors": [{ "message": "Unauthorized: a valid Integration API token is required" }] })),
        )
            .into_response();
    };
    // The query Ferry sends thousands of times: recognised once, answered without the
    // GraphQL engine, and known to mutate nothing (no need to parse it to count).
    let contract = fast::is_contract_query(&request.query, ferry_centra::ORDER_SNAPSHOT_QUERY);
    let mutations = if contract {
        0
    } else {
        count_mutations(&request)
    };
    if let Err(refusal) = app.state.limits.admit(mutations) {
        app.state
            .log_request(record(StatusCode::TOO_MANY_REQUESTS, mutations, 0));
        return too_many(&app.state, &refusal);
    }
    let caller = Arc::new(auth::Caller::new(token));
    if CONTRACT_PERMISSIONS.iter().all(|p| caller.has(p))
        && contract
        && let Some((orders, limit)) = contract_query_orders(&app.state, &request)
    {
        app.state
            .fast_answers
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let complexity = app.contract_complexity.at(limit);
        app.state.limits.charge_complexity(complexity);
        app.state.log_request(record(StatusCode::OK, 0, complexity));
        let used: Vec<&str> = CONTRACT_PERMISSIONS.to_vec();
        let body = fast::answer(&orders, &extensions_json(complexity, &used));
        return ([("content-type", "application/json")], body).into_response();
    }
    let lose_answer = Arc::new(state::LoseAnswer::default());
    let mut response = app
        .schema
        .execute(
            request
                .data(app.state.clone())
                .data(caller.clone())
                .data(lose_answer.clone()),
        )
        .await;
    if lose_answer.is_set() {
        app.state
            .log_request(record(StatusCode::INTERNAL_SERVER_ERROR, mutations, 0));
        return (StatusCode::INTERNAL_SERVER_ERROR, "injected: interrupted").into_response();
    }
    // A query that does not parse or validate is refused whole with 400 (Centra's docs);
    // errors of resolvers (a missing permission) come with 200 and a path.
    if response.data == Value::Null
        && !response.errors.is_empty()
        && response.errors.iter().all(|e| e.path.is_empty())
    {
        app.state
            .log_request(record(StatusCode::BAD_REQUEST, mutations, 0));
        return (StatusCode::BAD_REQUEST, Json(response)).into_response();
    }
    let complexity = analyzer_complexity(&response.extensions).unwrap_or(0);
    response.extensions.remove("analyzer");
    let used = caller.used();
    let used: Vec<&str> = used.iter().map(String::as_str).collect();
    if let serde_json::Value::Object(extensions) = extensions_json(complexity, &used) {
        for (k, v) in extensions {
            if let Ok(v) = Value::from_json(v) {
                response.extensions.insert(k, v);
            }
        }
    }
    app.state.limits.charge_complexity(complexity);
    app.state
        .log_request(record(StatusCode::OK, mutations, complexity));
    if let Some(rename) = &faults.rename_in_schema
        && let Ok(mut answer) = serde_json::to_value(&response)
        && answer.pointer("/data/__schema").is_some()
    {
        if let Some(data) = answer.get_mut("data") {
            rename.apply(data);
        }
        return Json(answer).into_response();
    }
    Json(response).into_response()
}

/// What every answer carries in `extensions`.
fn extensions_json(complexity: u64, permissions: &[&str]) -> serde_json::Value {
    // Keys sorted, as the engine path prints them.
    serde_json::json!({
        "appVersion": APP_VERSION,
        "complexity": complexity,
        "permissionsUsed": permissions,
    })
}

/// The orders asked for, when the request (already known to be the contract query) is
/// filtered by order numbers (the precompiled path); `None` sends the request through the
/// GraphQL engine.
fn contract_query_orders(
    state: &SimState,
    request: &async_graphql::Request,
) -> Option<(Vec<Arc<model::Order>>, i64)> {
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
    Some((
        state.find_orders(&filter, limit as usize, page as usize),
        limit,
    ))
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

/// Loads one snapshot (the contract query's order object, or a whole answer with one order)
/// as an order and announces it like a new order: 201 with its number, 422 when it cannot be
/// loaded faithfully (see `load`), 409 when the number is taken.
async fn admin_load_snapshot(State(app): State<App>, body: axum::body::Bytes) -> Response {
    let order = match load::order_from_json(&body, &app.state.markets) {
        Ok(order) => order,
        Err(e) => return (StatusCode::UNPROCESSABLE_ENTITY, e.to_string()).into_response(),
    };
    let number = order.number;
    match app.state.insert(order) {
        Ok(()) => (
            StatusCode::CREATED,
            Json(serde_json::json!({ "number": number })),
        )
            .into_response(),
        Err(e) => (StatusCode::CONFLICT, e.message).into_response(),
    }
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

#[derive(Deserialize)]
struct OrderQuery {
    order: Option<i64>,
}

async fn admin_shipments(State(app): State<App>, Query(q): Query<OrderQuery>) -> Response {
    let shipments: Vec<ops::Shipment> = app.state.ops(|o| {
        o.shipments
            .values()
            .filter(|s| q.order.is_none_or(|n| s.order_number == n))
            .cloned()
            .collect()
    });
    Json(shipments).into_response()
}

#[derive(Deserialize)]
struct SkuQuery {
    sku: String,
}

async fn admin_stock(State(app): State<App>, Query(q): Query<SkuQuery>) -> Response {
    let levels = app.state.ops(|o| {
        o.size_by_sku(&q.sku).map(|size| {
            o.warehouses
                .iter()
                .map(|w| {
                    let level = o.stock_of(size, w.id);
                    serde_json::json!({
                        "warehouse": w.id,
                        "physical": level.physical,
                        "allocated": level.allocated,
                        "demand": level.demand,
                        "freeToAllocate": level.free_to_allocate(),
                    })
                })
                .collect::<Vec<_>>()
        })
    });
    match levels {
        Some(levels) => Json(levels).into_response(),
        None => (StatusCode::NOT_FOUND, "no such SKU").into_response(),
    }
}

async fn admin_emails(State(app): State<App>) -> Response {
    Json(app.state.ops(|o| o.emails.clone())).into_response()
}

async fn admin_requests(State(app): State<App>) -> Response {
    Json(app.state.request_log()).into_response()
}

async fn admin_faults(State(app): State<App>, Json(faults): Json<Faults>) -> Response {
    *app.state.faults.write() = arm(faults);
    StatusCode::NO_CONTENT.into_response()
}

async fn admin_faults_get(State(app): State<App>) -> Response {
    Json(app.state.faults.read().clone()).into_response()
}

async fn admin_limits(State(app): State<App>, Json(quotas): Json<Quotas>) -> Response {
    app.state.limits.reset(quotas);
    StatusCode::NO_CONTENT.into_response()
}

async fn admin_limits_get(State(app): State<App>) -> Response {
    Json(app.state.limits.view()).into_response()
}

#[derive(Deserialize)]
struct CatalogueRequest {
    sizes: usize,
    #[serde(default)]
    physical: i64,
}

async fn admin_catalogue(State(app): State<App>, Json(r): Json<CatalogueRequest>) -> Response {
    let total = app
        .state
        .ops_mut(|o| o.add_synthetic_sizes(r.sizes.min(1_000_000), r.physical));
    Json(serde_json::json!({ "sizes": total })).into_response()
}
