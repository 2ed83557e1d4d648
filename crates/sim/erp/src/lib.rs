//! An ERP simulator: a small "generic ERP" over HTTP JSON (`docs/erp-http-api.md`) with
//! idempotent sales orders, lookup by external reference, and fault injection, for tests,
//! demos and benchmarks.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use parking_lot::{Mutex, RwLock};
use rand::Rng;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

/// A sales order line as the generic ERP accepts it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Line {
    pub kind: String,
    pub erp_item: String,
    #[serde(default)]
    pub sku: Option<String>,
    #[serde(default)]
    pub centra_line_id: Option<i64>,
    pub quantity: i64,
    pub tax_rate: String,
    #[serde(default)]
    pub tax_code: Option<String>,
    pub gross_minor: i64,
    pub tax_minor: i64,
    pub net_minor: i64,
    #[serde(default)]
    pub description: String,
}

/// The body of `POST /api/sales-orders`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewSalesOrder {
    pub external_ref: String,
    pub currency: String,
    #[serde(default)]
    pub order_date: String,
    #[serde(default)]
    pub customer: serde_json::Value,
    pub lines: Vec<Line>,
    #[serde(default)]
    pub payment_term: Option<String>,
    #[serde(default)]
    pub carrier: Option<String>,
    #[serde(default)]
    pub sales_channel: Option<String>,
}

/// Where a document stands (`state` in the API): booked, still being booked (an ERP that
/// imports orders through a queue), or cancelled in the ERP.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DocState {
    #[default]
    Complete,
    Unfinished,
    Cancelled,
}

/// A sales order as the ERP stores it. Totals are the ERP's own sums of its lines.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SalesOrder {
    pub reference: String,
    pub external_ref: String,
    pub currency: String,
    pub gross_minor: i64,
    pub tax_minor: i64,
    pub line_count: usize,
    pub lines: Vec<Line>,
    pub customer: serde_json::Value,
    pub created_at: String,
    #[serde(default)]
    pub cancelled: bool,
    /// Until when the order is still being booked (the `booking_ms` fault).
    #[serde(skip)]
    pub booked_at: Option<std::time::Instant>,
}

impl SalesOrder {
    /// Where the document stands now.
    pub fn state(&self) -> DocState {
        if self.cancelled {
            DocState::Cancelled
        } else if self
            .booked_at
            .is_some_and(|at| std::time::Instant::now() < at)
        {
            DocState::Unfinished
        } else {
            DocState::Complete
        }
    }
}

/// Faults to inject, all off by default. Rates are per mille of requests.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Faults {
    /// Added to every request.
    pub latency_ms: u64,
    /// Extra random latency, uniform in [0, jitter_ms].
    pub jitter_ms: u64,
    /// Answer 500 before doing anything.
    pub error_per_mille: u32,
    /// Wait this long after saving an order before answering (a crash of the caller in
    /// this window leaves an order the caller never heard about).
    pub commit_latency_ms: u64,
    /// Answer 429 with `Retry-After: 1` before doing anything.
    pub throttle_per_mille: u32,
    /// Create the order, then answer 504 as if the response was lost.
    pub timeout_after_commit_per_mille: u32,
    /// Answer 503 to everything (an outage).
    pub down: bool,
    /// An outage window: 503 to everything for this long from when these faults are set.
    pub down_for_ms: u64,
    /// Slow tail: this share of requests waits `tail_ms` more (a long-tailed latency).
    pub tail_per_mille: u32,
    pub tail_ms: u64,
    /// Store the order without its last line but answer as if it were whole: the
    /// "looks synced" failure the reconciler must find.
    pub drop_line_per_mille: u32,
    /// Behave like a naive ERP that creates a new document for every create request, so
    /// any double post by the caller shows up as a duplicate document.
    pub ignore_idempotency_key: bool,
    /// Behave like an ERP without the batch call: `404` to `POST /api/sales-orders/batch`.
    pub no_batch_call: bool,
    /// Book new orders through a queue: each stays `unfinished` for this long after it is
    /// received (the answer and lookups say so), then becomes `complete`.
    pub booking_ms: u64,
}

#[derive(Debug, Default, Serialize)]
pub struct Stats {
    pub orders: usize,
    /// Create requests, single or batch.
    pub create_requests: u64,
    /// Of those, batch requests (`POST /api/sales-orders/batch`).
    pub batch_requests: u64,
    pub idempotent_replays: u64,
    pub lookups: u64,
    pub health_checks: u64,
    pub injected_errors: u64,
    /// The most requests (create or lookup) handled at once.
    pub max_in_flight: u64,
    pub dropped_lines: u64,
}

/// A shipment the warehouse completed (what the shipment feed returns).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shipment {
    pub id: String,
    pub external_ref: String,
    pub shipped_at: String,
    #[serde(default)]
    pub carrier: Option<String>,
    #[serde(default)]
    pub tracking_number: Option<String>,
    pub lines: Vec<ShipmentLine>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShipmentLine {
    pub erp_item: String,
    pub quantity: i64,
}

/// The body of `POST /admin/shipments`: ship an order, whole (no `lines`) or in part.
#[derive(Debug, Clone, Deserialize)]
pub struct ShipRequest {
    pub external_ref: String,
    #[serde(default)]
    pub lines: Option<Vec<ShipmentLine>>,
    #[serde(default)]
    pub carrier: Option<String>,
    #[serde(default)]
    pub tracking_number: Option<String>,
}

/// Sellable stock of one item in one warehouse.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StockLevel {
    pub erp_item: String,
    pub warehouse: String,
    pub available: i64,
}

/// One entry of the stock change feed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StockChange {
    pub seq: i64,
    pub erp_item: String,
    pub warehouse: String,
    pub available: i64,
    /// When the change happened (not sent on the feed; benchmarks measure from it).
    #[serde(skip)]
    pub at: Option<chrono::DateTime<chrono::Utc>>,
}

/// The warehouse a sales order reserves stock in: creating an order lowers the available
/// quantity of its items there, as a real ERP's forecast does.
pub const SALES_WAREHOUSE: &str = "Main";

#[derive(Default)]
struct Logistics {
    shipments: Vec<Shipment>,
    /// (item, warehouse) → available
    stock: BTreeMap<(String, String), i64>,
    /// Every stock change, oldest first; `seq` is the index + 1.
    stock_log: Vec<StockChange>,
    /// e-mail → customer id
    customers: HashMap<String, String>,
}

impl Logistics {
    fn record_stock(&mut self, item: &str, warehouse: &str, available: i64) {
        self.stock
            .insert((item.to_owned(), warehouse.to_owned()), available);
        let seq = self.stock_log.len() as i64 + 1;
        self.stock_log.push(StockChange {
            seq,
            erp_item: item.to_owned(),
            warehouse: warehouse.to_owned(),
            available,
            at: Some(chrono::Utc::now()),
        });
    }

    /// A new sales order promises its items: less is available in the sales warehouse
    /// (only items the warehouse stocks).
    fn reserve(&mut self, lines: &[Line]) {
        for line in lines.iter().filter(|l| l.kind == "item") {
            let key = (line.erp_item.clone(), SALES_WAREHOUSE.to_owned());
            if let Some(level) = self.stock.get(&key).copied() {
                self.record_stock(&line.erp_item, SALES_WAREHOUSE, level - line.quantity);
            }
        }
    }
}

#[derive(Default)]
struct Book {
    by_ref: HashMap<String, usize>,
    orders: Vec<SalesOrder>,
}

#[derive(Default)]
struct Sim {
    book: Mutex<Book>,
    logistics: Mutex<Logistics>,
    faults: RwLock<Faults>,
    down_until: Mutex<Option<std::time::Instant>>,
    create_requests: AtomicU64,
    batch_requests: AtomicU64,
    idempotent_replays: AtomicU64,
    lookups: AtomicU64,
    health_checks: AtomicU64,
    injected_errors: AtomicU64,
    in_flight: AtomicU64,
    max_in_flight: AtomicU64,
    dropped_lines: AtomicU64,
}

impl Sim {
    fn set_faults(&self, faults: Faults) {
        *self.down_until.lock() = (faults.down_for_ms > 0)
            .then(|| std::time::Instant::now() + Duration::from_millis(faults.down_for_ms));
        *self.faults.write() = faults;
    }

    fn is_down(&self) -> bool {
        self.faults.read().down
            || self
                .down_until
                .lock()
                .is_some_and(|until| std::time::Instant::now() < until)
    }

    /// Counts a request in flight until the guard drops.
    fn enter(&self) -> InFlight<'_> {
        let now = self.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
        self.max_in_flight.fetch_max(now, Ordering::Relaxed);
        InFlight(self)
    }
}

struct InFlight<'a>(&'a Sim);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// In-process access to a running simulator (tests and `ferry up` use it).
#[derive(Clone)]
pub struct ErpSim {
    sim: Arc<Sim>,
    pub addr: SocketAddr,
}

impl ErpSim {
    /// Binds and serves until `shutdown`.
    pub async fn start(listen: SocketAddr, shutdown: CancellationToken) -> std::io::Result<ErpSim> {
        let sim = Arc::new(Sim::default());
        let listener = tokio::net::TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let app = router(sim.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(shutdown.cancelled_owned())
                .await;
        });
        Ok(ErpSim { sim, addr })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn set_faults(&self, faults: Faults) {
        self.sim.set_faults(faults);
    }

    pub fn stats(&self) -> Stats {
        stats(&self.sim)
    }

    pub fn orders(&self) -> Vec<SalesOrder> {
        self.sim.book.lock().orders.clone()
    }

    /// External references that have more than one document (only possible when the
    /// idempotency key is ignored).
    pub fn duplicated_refs(&self) -> Vec<String> {
        let book = self.sim.book.lock();
        let mut counts: HashMap<&str, usize> = HashMap::new();
        for o in &book.orders {
            *counts.entry(o.external_ref.as_str()).or_default() += 1;
        }
        counts
            .into_iter()
            .filter(|(_, n)| *n > 1)
            .map(|(r, _)| r.to_owned())
            .collect()
    }

    /// Ships an order as the warehouse would (tests and demos); `None` if unknown.
    pub fn ship(&self, request: ShipRequest) -> Option<Shipment> {
        ship(&self.sim, request)
    }

    /// Every shipment the warehouse completed, oldest first.
    pub fn shipments(&self) -> Vec<Shipment> {
        self.sim.logistics.lock().shipments.clone()
    }

    /// Sets sellable stock levels (each one a change on the feed).
    pub fn set_stock(&self, levels: &[StockLevel]) {
        let mut logistics = self.sim.logistics.lock();
        for l in levels {
            logistics.record_stock(&l.erp_item, &l.warehouse, l.available);
        }
    }

    /// Appends `updates` random stock changes over `items` in `warehouse`, levels
    /// 1..=500: the benchmark's ERP, without a million HTTP calls.
    pub fn generate_stock_changes(
        &self,
        items: &[String],
        updates: usize,
        warehouse: &str,
        seed: u64,
    ) {
        use rand::SeedableRng;
        if items.is_empty() {
            return;
        }
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let mut logistics = self.sim.logistics.lock();
        logistics.stock_log.reserve(updates);
        for _ in 0..updates {
            let item = &items[rng.random_range(0..items.len())];
            let available = rng.random_range(1..=500);
            logistics.record_stock(item, warehouse, available);
        }
    }

    /// The stock change feed so far.
    pub fn stock_changes(&self) -> Vec<StockChange> {
        self.sim.logistics.lock().stock_log.clone()
    }

    /// Cancels the document of `external_ref` as someone in the ERP would; `false` if there
    /// is none.
    pub fn cancel(&self, external_ref: &str) -> bool {
        cancel(&self.sim, external_ref).is_some()
    }

    pub fn order(&self, external_ref: &str) -> Option<SalesOrder> {
        let book = self.sim.book.lock();
        book.by_ref
            .get(external_ref)
            .map(|i| book.orders[*i].clone())
    }
}

fn stats(sim: &Sim) -> Stats {
    Stats {
        orders: sim.book.lock().orders.len(),
        create_requests: sim.create_requests.load(Ordering::Relaxed),
        batch_requests: sim.batch_requests.load(Ordering::Relaxed),
        idempotent_replays: sim.idempotent_replays.load(Ordering::Relaxed),
        lookups: sim.lookups.load(Ordering::Relaxed),
        health_checks: sim.health_checks.load(Ordering::Relaxed),
        injected_errors: sim.injected_errors.load(Ordering::Relaxed),
        max_in_flight: sim.max_in_flight.load(Ordering::Relaxed),
        dropped_lines: sim.dropped_lines.load(Ordering::Relaxed),
    }
}

fn router(sim: Arc<Sim>) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/api/sales-orders", post(create).get(lookup))
        .route("/api/sales-orders/batch", post(create_batch))
        .route("/api/sales-orders/{reference}", get(by_reference))
        .route("/api/shipments", get(shipments))
        .route("/api/stock", get(stock))
        .route("/api/stock/changes", get(stock_changes))
        .route("/api/customers", post(customer))
        .route("/admin/shipments", post(admin_ship))
        .route(
            "/admin/sales-orders/{external_ref}/cancel",
            post(admin_cancel),
        )
        .route("/admin/stock", put(admin_stock))
        .route("/admin/faults", get(get_faults).put(put_faults))
        .route("/admin/stats", get(get_stats))
        .with_state(sim)
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, Json(serde_json::json!({ "error": message }))).into_response()
}

/// Latency and the faults that strike before any work. `Some` is the answer to give.
async fn before(sim: &Sim) -> Option<Response> {
    let faults = sim.faults.read().clone();
    let delay = faults.latency_ms
        + if faults.jitter_ms > 0 {
            rand::rng().random_range(0..=faults.jitter_ms)
        } else {
            0
        }
        + if faults.tail_per_mille > 0 && rand::rng().random_range(0..1000) < faults.tail_per_mille
        {
            faults.tail_ms
        } else {
            0
        };
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    if sim.is_down() {
        sim.injected_errors.fetch_add(1, Ordering::Relaxed);
        return Some(error(StatusCode::SERVICE_UNAVAILABLE, "the ERP is down"));
    }
    let roll = rand::rng().random_range(0..1000);
    if roll < faults.error_per_mille {
        sim.injected_errors.fetch_add(1, Ordering::Relaxed);
        return Some(error(StatusCode::INTERNAL_SERVER_ERROR, "injected failure"));
    }
    if roll < faults.error_per_mille + faults.throttle_per_mille {
        sim.injected_errors.fetch_add(1, Ordering::Relaxed);
        let mut response = error(StatusCode::TOO_MANY_REQUESTS, "slow down");
        response
            .headers_mut()
            .insert("retry-after", axum::http::HeaderValue::from_static("1"));
        return Some(response);
    }
    None
}

async fn health(State(sim): State<Arc<Sim>>) -> Response {
    sim.health_checks.fetch_add(1, Ordering::Relaxed);
    if sim.is_down() {
        return error(StatusCode::SERVICE_UNAVAILABLE, "the ERP is down");
    }
    Json(serde_json::json!({ "status": "ok" })).into_response()
}

async fn create(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    sim.create_requests.fetch_add(1, Ordering::Relaxed);
    let _in_flight = sim.enter();
    if let Some(answer) = before(&sim).await {
        return answer;
    }
    let key = headers.get("idempotency-key").and_then(|v| v.to_str().ok());
    match create_one(&sim, &body, key) {
        Ok((status, document)) => match after_commit(&sim).await {
            Some(lost) => lost,
            None => (status, Json(document)).into_response(),
        },
        Err(refusal) => error(StatusCode::UNPROCESSABLE_ENTITY, &refusal),
    }
}

/// The answer to a batch: one verdict per order, in order.
#[derive(Serialize)]
struct BatchAnswer {
    results: Vec<BatchItem>,
}

/// One order's verdict in a batch answer.
#[derive(Serialize)]
struct BatchItem {
    status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    document: Option<Summary>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// `POST /api/sales-orders/batch`: `{"orders":[…]}`, each order keyed by its
/// `external_ref`. Faults strike the request as a whole; each order gets the status and
/// body a single create would have answered.
async fn create_batch(State(sim): State<Arc<Sim>>, body: axum::body::Bytes) -> Response {
    #[derive(Deserialize)]
    struct Batch<'a> {
        #[serde(borrow)]
        orders: Vec<&'a serde_json::value::RawValue>,
    }
    sim.create_requests.fetch_add(1, Ordering::Relaxed);
    sim.batch_requests.fetch_add(1, Ordering::Relaxed);
    if sim.faults.read().no_batch_call {
        return error(StatusCode::NOT_FOUND, "no such call");
    }
    let _in_flight = sim.enter();
    if let Some(answer) = before(&sim).await {
        return answer;
    }
    let batch: Batch = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(e) => {
            return error(
                StatusCode::UNPROCESSABLE_ENTITY,
                &format!("invalid batch: {e}"),
            );
        }
    };
    let results: Vec<BatchItem> = batch
        .orders
        .iter()
        .map(|raw| match create_one(&sim, raw.get().as_bytes(), None) {
            Ok((status, document)) => BatchItem {
                status: status.as_u16(),
                document: Some(document),
                error: None,
            },
            Err(refusal) => BatchItem {
                status: StatusCode::UNPROCESSABLE_ENTITY.as_u16(),
                document: None,
                error: Some(refusal),
            },
        })
        .collect();
    if let Some(lost) = after_commit(&sim).await {
        return lost;
    }
    Json(BatchAnswer { results }).into_response()
}

/// Validates and books one order (`key`: its idempotency key, the external reference
/// when absent): `201` with the new document, `200` with the one booked before under the
/// same key, or why the order is refused (`422`).
fn create_one(sim: &Sim, body: &[u8], key: Option<&str>) -> Result<(StatusCode, Summary), String> {
    let order: NewSalesOrder =
        serde_json::from_slice(body).map_err(|e| format!("invalid sales order: {e}"))?;
    let key = key.map_or_else(|| order.external_ref.clone(), str::to_owned);
    if order.lines.is_empty() {
        return Err("a sales order needs lines".to_owned());
    }
    if let Some(bad) = order
        .lines
        .iter()
        .find(|l| l.net_minor != l.gross_minor - l.tax_minor)
    {
        return Err(format!(
            "line {} does not balance: net != gross - tax",
            bad.erp_item
        ));
    }
    let naive = sim.faults.read().ignore_idempotency_key;
    let mut book = sim.book.lock();
    let existing = if naive {
        None
    } else {
        book.by_ref.get(&key).copied()
    };
    if let Some(i) = existing {
        sim.idempotent_replays.fetch_add(1, Ordering::Relaxed);
        return Ok((StatusCode::OK, summary(&book.orders[i])));
    }
    let reference = format!("SO-{:07}", book.orders.len() + 1);
    let whole = SalesOrder {
        reference,
        external_ref: order.external_ref,
        currency: order.currency,
        gross_minor: order.lines.iter().map(|l| l.gross_minor).sum(),
        tax_minor: order.lines.iter().map(|l| l.tax_minor).sum(),
        line_count: order.lines.len(),
        lines: order.lines,
        customer: order.customer,
        created_at: chrono::Utc::now().to_rfc3339(),
        cancelled: false,
        booked_at: None,
    };
    // The answer describes the order as sent, whatever is stored.
    let mut answer = summary(&whole);
    let drop = sim.faults.read().drop_line_per_mille;
    let mut stored = whole;
    let booking = sim.faults.read().booking_ms;
    if booking > 0 {
        stored.booked_at = Some(std::time::Instant::now() + Duration::from_millis(booking));
    }
    if drop > 0
        && stored.lines.len() > 1
        && rand::rng().random_range(0..1000) < drop
        && let Some(gone) = stored.lines.pop()
    {
        stored.gross_minor -= gone.gross_minor;
        stored.tax_minor -= gone.tax_minor;
        stored.line_count -= 1;
        sim.dropped_lines.fetch_add(1, Ordering::Relaxed);
    }
    answer.state = stored.state();
    sim.logistics.lock().reserve(&stored.lines);
    let index = book.orders.len();
    book.orders.push(stored);
    book.by_ref.entry(key).or_insert(index);
    Ok((StatusCode::CREATED, answer))
}

/// The faults that strike after orders are saved: a slow commit, a lost answer.
async fn after_commit(sim: &Sim) -> Option<Response> {
    let commit_latency = sim.faults.read().commit_latency_ms;
    if commit_latency > 0 {
        tokio::time::sleep(Duration::from_millis(commit_latency)).await;
    }
    let lost = sim.faults.read().timeout_after_commit_per_mille;
    if lost > 0 && rand::rng().random_range(0..1000) < lost {
        sim.injected_errors.fetch_add(1, Ordering::Relaxed);
        return Some(error(
            StatusCode::GATEWAY_TIMEOUT,
            "the answer was lost after the order was saved",
        ));
    }
    None
}

/// What create and lookup answer: the document without its lines.
fn summary(d: &SalesOrder) -> Summary {
    Summary {
        reference: d.reference.clone(),
        external_ref: d.external_ref.clone(),
        currency: d.currency.clone(),
        gross_minor: d.gross_minor,
        tax_minor: d.tax_minor,
        line_count: d.line_count,
        state: d.state(),
    }
}

/// A document as create and lookup describe it: without its lines.
#[derive(Serialize)]
struct Summary {
    reference: String,
    external_ref: String,
    currency: String,
    gross_minor: i64,
    tax_minor: i64,
    line_count: usize,
    state: DocState,
}

#[derive(Deserialize)]
struct LookupQuery {
    external_ref: String,
}

async fn lookup(State(sim): State<Arc<Sim>>, Query(q): Query<LookupQuery>) -> Response {
    sim.lookups.fetch_add(1, Ordering::Relaxed);
    let _in_flight = sim.enter();
    if let Some(answer) = before(&sim).await {
        return answer;
    }
    let book = sim.book.lock();
    let found: Vec<Summary> = book
        .by_ref
        .get(&q.external_ref)
        .map(|i| vec![summary(&book.orders[*i])])
        .unwrap_or_default();
    Json(found).into_response()
}

async fn by_reference(State(sim): State<Arc<Sim>>, Path(reference): Path<String>) -> Response {
    let book = sim.book.lock();
    match book.orders.iter().find(|o| o.reference == reference) {
        Some(d) => Json(d.clone()).into_response(),
        None => error(StatusCode::NOT_FOUND, "no such sales order"),
    }
}

/// Cancels the document of `external_ref`; what it now looks like, if there is one.
fn cancel(sim: &Sim, external_ref: &str) -> Option<Summary> {
    let mut book = sim.book.lock();
    let i = *book.by_ref.get(external_ref)?;
    let order = book.orders.get_mut(i)?;
    order.cancelled = true;
    Some(summary(order))
}

async fn admin_cancel(State(sim): State<Arc<Sim>>, Path(external_ref): Path<String>) -> Response {
    match cancel(&sim, &external_ref) {
        Some(document) => Json(document).into_response(),
        None => error(StatusCode::NOT_FOUND, "no such sales order"),
    }
}

async fn get_faults(State(sim): State<Arc<Sim>>) -> Json<Faults> {
    Json(sim.faults.read().clone())
}

async fn put_faults(State(sim): State<Arc<Sim>>, Json(faults): Json<Faults>) -> Json<Faults> {
    sim.set_faults(faults.clone());
    Json(faults)
}

async fn get_stats(State(sim): State<Arc<Sim>>) -> Json<Stats> {
    Json(stats(&sim))
}

fn ship(sim: &Sim, request: ShipRequest) -> Option<Shipment> {
    let order = {
        let book = sim.book.lock();
        let i = *book.by_ref.get(&request.external_ref)?;
        book.orders[i].clone()
    };
    let lines = request.lines.unwrap_or_else(|| {
        order
            .lines
            .iter()
            .filter(|l| l.kind == "item")
            .map(|l| ShipmentLine {
                erp_item: l.erp_item.clone(),
                quantity: l.quantity,
            })
            .collect()
    });
    let mut logistics = sim.logistics.lock();
    let shipment = Shipment {
        id: format!("SH-{:07}", logistics.shipments.len() + 1),
        external_ref: request.external_ref,
        shipped_at: chrono::Utc::now().to_rfc3339(),
        carrier: request.carrier,
        tracking_number: request.tracking_number,
        lines,
    };
    logistics.shipments.push(shipment.clone());
    Some(shipment)
}

#[derive(Deserialize)]
struct FeedQuery {
    #[serde(default)]
    after: String,
    #[serde(default = "default_limit")]
    limit: usize,
}

fn default_limit() -> usize {
    100
}

impl FeedQuery {
    /// Entries already read: the cursor is a count (empty = from the beginning).
    fn position(&self) -> Option<usize> {
        if self.after.is_empty() {
            Some(0)
        } else {
            self.after.parse().ok()
        }
    }
}

/// The shipment feed: the cursor is the count of shipments already read.
async fn shipments(State(sim): State<Arc<Sim>>, Query(q): Query<FeedQuery>) -> Response {
    if let Some(answer) = before(&sim).await {
        return answer;
    }
    let Some(after) = q.position() else {
        return error(
            StatusCode::BAD_REQUEST,
            "after must be a cursor from this feed",
        );
    };
    let logistics = sim.logistics.lock();
    let page: Vec<Shipment> = logistics
        .shipments
        .iter()
        .skip(after)
        .take(q.limit.clamp(1, 1000))
        .cloned()
        .collect();
    let next = after + page.len();
    Json(serde_json::json!({ "shipments": page, "next_cursor": next.to_string() })).into_response()
}

#[derive(Deserialize)]
struct StockQuery {
    /// Comma-separated item codes; all when absent.
    #[serde(default)]
    items: String,
}

async fn stock(State(sim): State<Arc<Sim>>, Query(q): Query<StockQuery>) -> Response {
    if let Some(answer) = before(&sim).await {
        return answer;
    }
    let wanted: Vec<&str> = q.items.split(',').filter(|s| !s.is_empty()).collect();
    let logistics = sim.logistics.lock();
    let levels: Vec<StockLevel> = logistics
        .stock
        .iter()
        .filter(|((item, _), _)| wanted.is_empty() || wanted.contains(&item.as_str()))
        .map(|((item, warehouse), available)| StockLevel {
            erp_item: item.clone(),
            warehouse: warehouse.clone(),
            available: *available,
        })
        .collect();
    Json(levels).into_response()
}

/// Matches a customer by e-mail or creates one.
async fn customer(State(sim): State<Arc<Sim>>, Json(body): Json<serde_json::Value>) -> Response {
    if let Some(answer) = before(&sim).await {
        return answer;
    }
    let email = body["email"].as_str().unwrap_or_default().to_lowercase();
    if email.is_empty() {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "a customer needs an e-mail",
        );
    }
    let mut logistics = sim.logistics.lock();
    let next = format!("C-{:07}", logistics.customers.len() + 1);
    let id = logistics.customers.entry(email).or_insert(next).clone();
    Json(serde_json::json!({ "id": id })).into_response()
}

async fn admin_ship(State(sim): State<Arc<Sim>>, Json(request): Json<ShipRequest>) -> Response {
    match ship(&sim, request) {
        Some(shipment) => (StatusCode::CREATED, Json(shipment)).into_response(),
        None => error(StatusCode::NOT_FOUND, "no such sales order"),
    }
}

async fn admin_stock(State(sim): State<Arc<Sim>>, Json(levels): Json<Vec<StockLevel>>) -> Response {
    let mut logistics = sim.logistics.lock();
    for l in levels {
        logistics.record_stock(&l.erp_item, &l.warehouse, l.available);
    }
    StatusCode::NO_CONTENT.into_response()
}

/// The stock change feed: changes after the cursor (a sequence number), oldest first.
async fn stock_changes(State(sim): State<Arc<Sim>>, Query(q): Query<FeedQuery>) -> Response {
    if let Some(answer) = before(&sim).await {
        return answer;
    }
    let Some(after) = q.position() else {
        return error(
            StatusCode::BAD_REQUEST,
            "after must be a cursor from this feed",
        );
    };
    let logistics = sim.logistics.lock();
    let start = after.min(logistics.stock_log.len());
    let end = start
        .saturating_add(q.limit.clamp(1, 10_000))
        .min(logistics.stock_log.len());
    let page = &logistics.stock_log[start..end];
    Json(serde_json::json!({ "changes": page, "next_cursor": end.to_string() })).into_response()
}
