//! Sales orders over HTTP: create (singly and in batches, idempotent by key, with the
//! configured faults), look up, cancel, and the fault and statistics endpoints.

use super::*;

pub(crate) fn error(status: StatusCode, message: &str) -> Response {
    (status, Json(serde_json::json!({ "error": message }))).into_response()
}

/// Latency and the faults that strike before any work. `Some` is the answer to give.
pub(crate) async fn before(sim: &Sim) -> Option<Response> {
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

pub(crate) async fn health(State(sim): State<Arc<Sim>>) -> Response {
    sim.health_checks.fetch_add(1, Ordering::Relaxed);
    if sim.is_down() {
        return error(StatusCode::SERVICE_UNAVAILABLE, "the ERP is down");
    }
    Json(serde_json::json!({ "status": "ok" })).into_response()
}

pub(crate) async fn create(
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
pub(crate) struct BatchAnswer {
    results: Vec<BatchItem>,
}

/// One order's verdict in a batch answer.
#[derive(Serialize)]
pub(crate) struct BatchItem {
    status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    document: Option<Summary>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// `POST /api/sales-orders/batch`: `{"orders":[…]}`, each order keyed by its
/// `external_ref`. Faults strike the request as a whole; each order gets the status and
/// body a single create would have answered.
pub(crate) async fn create_batch(State(sim): State<Arc<Sim>>, body: axum::body::Bytes) -> Response {
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
pub(crate) fn create_one(
    sim: &Sim,
    body: &[u8],
    key: Option<&str>,
) -> Result<(StatusCode, Summary), String> {
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
    let faults = sim.faults.read().clone();
    let mut book = sim.book.lock();
    if let Some(reason) = &faults.refuse_new
        && !book.by_key.contains_key(&key)
    {
        return Err(reason.clone());
    }
    let existing = if faults.ignore_idempotency_key {
        None
    } else {
        // A document deleted since is gone: the same key creates a new one.
        book.by_key
            .get(&key)
            .copied()
            .filter(|&i| !book.orders[i].deleted)
    };
    if let Some(i) = existing {
        sim.idempotent_replays.fetch_add(1, Ordering::Relaxed);
        return Ok((StatusCode::OK, summary(&book.orders[i])));
    }
    let mut stored = SalesOrder::from_new(order);
    if faults.booking_ms > 0 {
        stored.booked_at =
            Some(std::time::Instant::now() + Duration::from_millis(faults.booking_ms));
    }
    let mut rng = rand::rng();
    let mut strikes = |per_mille: u32| per_mille > 0 && rng.random_range(0..1000) < per_mille;
    if strikes(faults.drop_line_per_mille) && alter(&mut stored, Change::DropLine) {
        sim.dropped_lines.fetch_add(1, Ordering::Relaxed);
    }
    for (per_mille, change) in [
        (faults.change_price_per_mille, Change::ChangePrice),
        (faults.tax_rounding_per_mille, Change::TaxRounding),
        (faults.wrong_currency_per_mille, Change::WrongCurrency),
    ] {
        if strikes(per_mille) && alter(&mut stored, change) {
            sim.altered.fetch_add(1, Ordering::Relaxed);
        }
    }
    let twice = strikes(faults.duplicate_per_mille);
    let mut logistics = sim.logistics.lock();
    logistics.reserve(&stored.lines);
    let index = book.push(Some(key), stored);
    if twice {
        let copy = book.orders[index].clone();
        logistics.reserve(&copy.lines);
        book.push(None, copy);
        sim.altered.fetch_add(1, Ordering::Relaxed);
    }
    // The answer describes the document as recorded: an ERP that stored something else
    // than it was sent says so, and the writer can notice.
    let answer = summary(&book.orders[index]);
    Ok((StatusCode::CREATED, answer))
}

/// The faults that strike after orders are saved: a slow commit, a lost answer.
pub(crate) async fn after_commit(sim: &Sim) -> Option<Response> {
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
pub(crate) fn summary(d: &SalesOrder) -> Summary {
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
pub(crate) struct Summary {
    reference: String,
    external_ref: String,
    currency: String,
    gross_minor: i64,
    tax_minor: i64,
    line_count: usize,
    state: DocState,
}

#[derive(Deserialize)]
pub(crate) struct LookupQuery {
    external_ref: String,
}

pub(crate) async fn lookup(State(sim): State<Arc<Sim>>, Query(q): Query<LookupQuery>) -> Response {
    sim.lookups.fetch_add(1, Ordering::Relaxed);
    let _in_flight = sim.enter();
    if let Some(answer) = before(&sim).await {
        return answer;
    }
    let book = sim.book.lock();
    let found: Vec<Summary> = book
        .current(&q.external_ref)
        .map(|i| vec![summary(&book.orders[i])])
        .unwrap_or_default();
    Json(found).into_response()
}

pub(crate) async fn by_reference(
    State(sim): State<Arc<Sim>>,
    Path(reference): Path<String>,
) -> Response {
    let book = sim.book.lock();
    match book
        .orders
        .iter()
        .find(|o| o.reference == reference && !o.deleted)
    {
        Some(d) => Json(d.clone()).into_response(),
        None => error(StatusCode::NOT_FOUND, "no such sales order"),
    }
}

/// Cancels the document of `external_ref`; what it now looks like, if there is one.
pub(crate) fn cancel(sim: &Sim, external_ref: &str) -> Option<Summary> {
    let mut book = sim.book.lock();
    let i = book.current(external_ref)?;
    let order = book.orders.get_mut(i)?;
    order.cancelled = true;
    Some(summary(order))
}

pub(crate) async fn admin_cancel(
    State(sim): State<Arc<Sim>>,
    Path(external_ref): Path<String>,
) -> Response {
    match cancel(&sim, &external_ref) {
        Some(document) => Json(document).into_response(),
        None => error(StatusCode::NOT_FOUND, "no such sales order"),
    }
}

pub(crate) async fn get_faults(State(sim): State<Arc<Sim>>) -> Json<Faults> {
    Json(sim.faults.read().clone())
}

pub(crate) async fn put_faults(
    State(sim): State<Arc<Sim>>,
    Json(faults): Json<Faults>,
) -> Json<Faults> {
    sim.set_faults(faults.clone());
    Json(faults)
}

pub(crate) async fn get_stats(State(sim): State<Arc<Sim>>) -> Json<Stats> {
    Json(stats(&sim))
}
