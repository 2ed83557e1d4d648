//! Changing a sales order after it was booked (`POST /api/sales-orders/{reference}/changes`,
//! ADR 0035): the document is made to hold the order as sent — lines, totals, customer — or
//! cancelled. Refused (`409`) once the warehouse shipped it, or when the `refuse_changes`
//! fault says the ERP cannot change documents (invoiced, period closed).

use super::*;

/// The body of a change.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct ChangeBody {
    pub change_id: String,
    #[serde(default)]
    pub cancel: bool,
    pub order: NewSalesOrder,
}

pub(crate) async fn change(
    State(sim): State<Arc<Sim>>,
    Path(reference): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let _in_flight = sim.enter();
    if let Some(answer) = before(&sim).await {
        return answer;
    }
    let body: ChangeBody = match serde_json::from_slice(&body) {
        Ok(body) => body,
        Err(e) => return error(StatusCode::BAD_REQUEST, &format!("invalid change: {e}")),
    };
    match apply(&sim, &reference, body) {
        Ok(summary) => Json(summary).into_response(),
        Err((status, reason)) => error(status, &reason),
    }
}

fn apply(sim: &Sim, reference: &str, body: ChangeBody) -> Result<Summary, (StatusCode, String)> {
    let conflict = |reason: String| (StatusCode::CONFLICT, reason);
    if let Some(bad) = body
        .order
        .lines
        .iter()
        .find(|l| l.net_minor != l.gross_minor - l.tax_minor)
    {
        return Err((
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("line {} does not balance: net != gross - tax", bad.erp_item),
        ));
    }
    let refuse = sim.faults.read().refuse_changes.clone();
    let mut book = sim.book.lock();
    let i = book
        .by_reference(reference)
        .filter(|i| !book.orders[*i].deleted)
        .ok_or_else(|| (StatusCode::NOT_FOUND, "no such sales order".to_owned()))?;
    let mut logistics = sim.logistics.lock();
    let order = &mut book.orders[i];
    if order.applied_changes.contains(&body.change_id) {
        // The same change again: answered as the first time.
        return Ok(summary(order));
    }
    if let Some(reason) = refuse {
        return Err(conflict(reason));
    }
    if logistics.shipped_refs.contains(&order.external_ref) {
        return Err(conflict(format!(
            "{reference} has shipped: it can no longer be changed"
        )));
    }
    if order.cancelled && !body.cancel {
        return Err(conflict(format!("{reference} is cancelled")));
    }
    // What the order promised is given back and the new lines promised instead.
    logistics.reserve_by(&order.lines, -1);
    if body.cancel {
        order.cancelled = true;
    } else {
        logistics.reserve_by(&body.order.lines, 1);
        order.gross_minor = body.order.lines.iter().map(|l| l.gross_minor).sum();
        order.tax_minor = body.order.lines.iter().map(|l| l.tax_minor).sum();
        order.line_count = body.order.lines.len();
        order.lines = body.order.lines;
        order.customer = body.order.customer;
        order.delivery = body.order.delivery;
    }
    order.applied_changes.push(body.change_id);
    sim.changes.fetch_add(1, Ordering::Relaxed);
    Ok(summary(order))
}
