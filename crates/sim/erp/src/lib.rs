//! An ERP simulator: a small "generic ERP" over HTTP JSON (`docs/erp-http-api.md`) with
//! idempotent sales orders, lookup by external reference, documents read back as recorded,
//! and fault injection — including faults that change what it records — for tests, demos
//! and benchmarks.

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

mod changes;
mod credits;
mod logistics;
mod orders;
mod parties;
mod records;

pub use credits::{CreditNote, NewCreditNote};
use logistics::*;
use orders::*;
pub use parties::Party;
pub use records::Change;
use records::*;

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
    /// Where the goods go, when not to the customer's address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery: Option<serde_json::Value>,
    pub lines: Vec<Line>,
    #[serde(default)]
    pub payment_term: Option<String>,
    #[serde(default)]
    pub carrier: Option<String>,
    #[serde(default)]
    pub sales_channel: Option<String>,
}

impl NewSalesOrder {
    /// A sale entered by hand at the counter: one SEK line of `item`, 25 % tax inside
    /// `gross_minor`, no Centra order behind it (what the reconciler must call unexplained).
    pub fn counter_sale(item: &str, gross_minor: i64) -> NewSalesOrder {
        let tax_minor = gross_minor / 5;
        NewSalesOrder {
            external_ref: String::new(),
            currency: "SEK".into(),
            order_date: String::new(),
            customer: serde_json::Value::Null,
            delivery: None,
            lines: vec![Line {
                kind: "item".into(),
                erp_item: item.into(),
                sku: None,
                centra_line_id: None,
                quantity: 1,
                tax_rate: "25".into(),
                tax_code: None,
                gross_minor,
                tax_minor,
                net_minor: gross_minor - tax_minor,
                description: "Sold at the counter".into(),
            }],
            payment_term: None,
            carrier: None,
            sales_channel: None,
        }
    }
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
    /// Where the warehouse sends the goods, when not to the customer's address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery: Option<serde_json::Value>,
    pub created_at: String,
    #[serde(default)]
    pub cancelled: bool,
    /// Deleted in the ERP: kept so references stay stable, never read or looked up.
    #[serde(default)]
    pub deleted: bool,
    /// The changes applied to it since it was booked (their ids, oldest first).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub applied_changes: Vec<String>,
    /// Until when the order is still being booked (the `booking_ms` fault).
    #[serde(skip)]
    pub booked_at: Option<std::time::Instant>,
}

impl SalesOrder {
    /// The document for `order` as sent, totals summed from its lines; the book gives it
    /// its reference when it stores it.
    pub(crate) fn from_new(order: NewSalesOrder) -> Self {
        SalesOrder {
            reference: String::new(),
            external_ref: order.external_ref,
            currency: order.currency,
            gross_minor: order.lines.iter().map(|l| l.gross_minor).sum(),
            tax_minor: order.lines.iter().map(|l| l.tax_minor).sum(),
            line_count: order.lines.len(),
            lines: order.lines,
            customer: order.customer,
            delivery: order.delivery,
            created_at: chrono::Utc::now().to_rfc3339(),
            cancelled: false,
            deleted: false,
            applied_changes: Vec::new(),
            booked_at: None,
        }
    }

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
    /// Record this share of new orders changed (see [`Change`]): the answer and every read
    /// describe the document as recorded, not as sent.
    pub change_price_per_mille: u32,
    pub tax_rounding_per_mille: u32,
    pub wrong_currency_per_mille: u32,
    /// Record this share of new orders twice (two documents, one external reference).
    pub duplicate_per_mille: u32,
    /// Refuse every new order (`422`) with this reason, as an ERP does whose accounting
    /// period is closed or whose customer is blocked: a refusal retrying cannot fix until
    /// someone changes the ERP.
    pub refuse_new: Option<String>,
    /// Refuse every change to a booked order (`409`) with this reason, as an ERP does that
    /// cannot change invoiced documents.
    pub refuse_changes: Option<String>,
    /// Refuse every credit note (`409`) with this reason, as an ERP does whose period is
    /// closed.
    pub refuse_credits: Option<String>,
}

#[derive(Debug, Default, Serialize)]
pub struct Stats {
    pub orders: usize,
    /// Create requests, single or batch.
    pub create_requests: u64,
    /// Of those, batch requests (`POST /api/sales-orders/batch`).
    pub batch_requests: u64,
    pub idempotent_replays: u64,
    /// Lookups by reference: of a sales order, or of an order's credit notes.
    pub lookups: u64,
    pub health_checks: u64,
    pub injected_errors: u64,
    /// The most writer requests (creates, lookups, changes, credit notes, parties) handled
    /// at once; the reconciler's reads are not counted.
    pub max_in_flight: u64,
    pub dropped_lines: u64,
    /// Documents changed after the fact or recorded other than sent (every [`Change`]).
    pub altered: u64,
    /// Read-back requests (`GET /api/sales-orders/documents`).
    pub reads: u64,
    /// Changes applied to booked orders.
    pub changes: u64,
    /// Credit notes booked.
    pub credit_notes: usize,
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
    /// External references with at least one shipment.
    shipped_refs: std::collections::HashSet<String>,
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
        self.reserve_by(lines, 1);
    }

    /// `sign` 1 promises the lines' items, -1 gives them back (a changed order).
    fn reserve_by(&mut self, lines: &[Line], sign: i64) {
        for line in lines.iter().filter(|l| l.kind == "item") {
            let key = (line.erp_item.clone(), SALES_WAREHOUSE.to_owned());
            if let Some(level) = self.stock.get(&key).copied() {
                self.record_stock(
                    &line.erp_item,
                    SALES_WAREHOUSE,
                    level - sign * line.quantity,
                );
            }
        }
    }
}

#[derive(Default)]
struct Book {
    /// Idempotency key → the document created under it.
    by_key: HashMap<String, usize>,
    /// External reference → every document carrying it, oldest first.
    by_ref: HashMap<String, Vec<usize>>,
    orders: Vec<SalesOrder>,
}

#[derive(Default)]
struct Sim {
    book: Mutex<Book>,
    credits: Mutex<credits::Credits>,
    parties: Mutex<parties::Parties>,
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
    altered: AtomicU64,
    reads: AtomicU64,
    changes: AtomicU64,
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

    /// The external references of the documents from the `from`th on, in the order they
    /// were created, and how many documents there are (where to read from next time):
    /// a long run looks at each new document once instead of copying them all.
    pub fn external_refs_from(&self, from: usize) -> (Vec<String>, usize) {
        let book = self.sim.book.lock();
        let refs = book
            .orders
            .get(from..)
            .unwrap_or_default()
            .iter()
            .map(|o| o.external_ref.clone())
            .collect();
        (refs, book.orders.len())
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

    /// The document Ferry's lookups see for `external_ref` (the oldest not deleted).
    pub fn order(&self, external_ref: &str) -> Option<SalesOrder> {
        let book = self.sim.book.lock();
        book.current(external_ref).map(|i| book.orders[i].clone())
    }

    /// Changes the document of `external_ref` behind Ferry's back, as a person in the ERP
    /// would; `false` when there is none or the change does not apply to it.
    pub fn change(&self, external_ref: &str, change: Change) -> bool {
        self.sim.change(external_ref, change).is_some()
    }

    /// Imports sales orders in bulk, as a data migration into the ERP would: recorded as
    /// given, with no idempotency key and no stock promised (a benchmark loads a book of a
    /// million orders this way). Returns how many the book holds now.
    pub fn import(&self, orders: impl IntoIterator<Item = NewSalesOrder>) -> usize {
        let mut book = self.sim.book.lock();
        for order in orders {
            book.push(None, SalesOrder::from_new(order));
        }
        book.orders.len()
    }

    /// The ERP's customer kept for a Centra customer, if any.
    pub fn party_of(&self, centra_customer_id: i64) -> Option<Party> {
        let parties = self.sim.parties.lock();
        let id = parties.by_centra.get(&centra_customer_id)?;
        parties.by_id.get(id).cloned()
    }

    /// Every credit note booked, oldest first.
    pub fn credit_notes(&self) -> Vec<CreditNote> {
        self.sim.credits.lock().notes.clone()
    }

    /// Enters a sales order by hand (no Centra order behind it); its ERP reference.
    pub fn enter_by_hand(&self, order: NewSalesOrder) -> String {
        let i = self.sim.enter_by_hand(order);
        self.sim.book.lock().orders[i].reference.clone()
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
        altered: sim.altered.load(Ordering::Relaxed),
        reads: sim.reads.load(Ordering::Relaxed),
        changes: sim.changes.load(Ordering::Relaxed),
        credit_notes: sim.credits.lock().notes.len(),
    }
}

fn router(sim: Arc<Sim>) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/api/sales-orders", post(create).get(lookup))
        .route("/api/sales-orders/batch", post(create_batch))
        .route("/api/sales-orders/documents", get(documents))
        .route("/api/sales-orders/{reference}", get(by_reference))
        .route(
            "/api/sales-orders/{reference}/changes",
            post(changes::change),
        )
        .route(
            "/api/credit-notes",
            post(credits::create).get(credits::list),
        )
        .route("/api/shipments", get(shipments))
        .route("/api/stock", get(stock))
        .route("/api/stock/changes", get(stock_changes))
        .route("/api/customers", post(customer))
        .route(
            "/api/customers/centra/{id}",
            put(parties::sync).delete(parties::erase),
        )
        .route("/admin/shipments", post(admin_ship))
        .route("/admin/sales-orders", post(admin_enter))
        .route(
            "/admin/sales-orders/{external_ref}/cancel",
            post(admin_cancel),
        )
        .route(
            "/admin/sales-orders/{external_ref}/change",
            post(admin_change),
        )
        .route("/admin/stock", put(admin_stock))
        .route("/admin/faults", get(get_faults).put(put_faults))
        .route("/admin/stats", get(get_stats))
        .with_state(sim)
}
