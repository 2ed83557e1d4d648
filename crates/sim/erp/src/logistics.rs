//! What the warehouse does: shipments (the feed and the admin call that ships an order),
//! stock (levels, the change feed, the admin call that sets it) and customers.

use super::*;

pub(crate) fn ship(sim: &Sim, request: ShipRequest) -> Option<Shipment> {
    let order = {
        let book = sim.book.lock();
        let i = book.current(&request.external_ref)?;
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
    logistics.shipped_refs.insert(shipment.external_ref.clone());
    logistics.shipments.push(shipment.clone());
    Some(shipment)
}

#[derive(Deserialize)]
pub(crate) struct FeedQuery {
    #[serde(default)]
    after: String,
    #[serde(default = "default_limit")]
    limit: usize,
}

pub(crate) fn default_limit() -> usize {
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
pub(crate) async fn shipments(State(sim): State<Arc<Sim>>, Query(q): Query<FeedQuery>) -> Response {
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
pub(crate) struct StockQuery {
    /// Comma-separated item codes; all when absent.
    #[serde(default)]
    items: String,
}

pub(crate) async fn stock(State(sim): State<Arc<Sim>>, Query(q): Query<StockQuery>) -> Response {
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
pub(crate) async fn customer(
    State(sim): State<Arc<Sim>>,
    Json(body): Json<serde_json::Value>,
) -> Response {
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

pub(crate) async fn admin_ship(
    State(sim): State<Arc<Sim>>,
    Json(request): Json<ShipRequest>,
) -> Response {
    match ship(&sim, request) {
        Some(shipment) => (StatusCode::CREATED, Json(shipment)).into_response(),
        None => error(StatusCode::NOT_FOUND, "no such sales order"),
    }
}

pub(crate) async fn admin_stock(
    State(sim): State<Arc<Sim>>,
    Json(levels): Json<Vec<StockLevel>>,
) -> Response {
    let mut logistics = sim.logistics.lock();
    for l in levels {
        logistics.record_stock(&l.erp_item, &l.warehouse, l.available);
    }
    StatusCode::NO_CONTENT.into_response()
}

/// The stock change feed: changes after the cursor (a sequence number), oldest first.
pub(crate) async fn stock_changes(
    State(sim): State<Arc<Sim>>,
    Query(q): Query<FeedQuery>,
) -> Response {
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
