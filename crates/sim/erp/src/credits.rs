//! Credit notes for returns (`POST /api/credit-notes`, ADR 0037): idempotent by the credit's
//! external reference, against a booked sales order, never more than the order charged; a
//! restocked return puts its items back in the sales warehouse. Refused (`409`) for a
//! cancelled order, credits beyond the order, or when the `refuse_credits` fault says so;
//! the request faults apply, and `timeout_after_commit` loses the answer after booking.

use super::*;

/// The body of `POST /api/credit-notes`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewCreditNote {
    pub external_ref: String,
    /// The sales order credited (its ERP reference).
    pub order_erp_reference: String,
    pub currency: String,
    pub lines: Vec<Line>,
    #[serde(default)]
    pub restock: bool,
}

/// A credit note as the ERP stores it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreditNote {
    pub reference: String,
    pub external_ref: String,
    pub order_erp_reference: String,
    /// The Centra order number of the sales order credited.
    pub order_external_ref: String,
    pub currency: String,
    pub gross_minor: i64,
    pub tax_minor: i64,
    pub line_count: usize,
    pub lines: Vec<Line>,
    pub restock: bool,
    pub created_at: String,
}

#[derive(Default)]
pub(crate) struct Credits {
    pub notes: Vec<CreditNote>,
    /// External reference → index in `notes`.
    pub by_ref: HashMap<String, usize>,
    /// Sales order reference → what its credit notes give back in all.
    pub credited: HashMap<String, i64>,
}

/// What create answers: the credit note without its lines (the sales-order summary shape).
fn answer(note: &CreditNote) -> Response {
    Json(serde_json::json!({
        "reference": note.reference,
        "external_ref": note.external_ref,
        "currency": note.currency,
        "gross_minor": note.gross_minor,
        "tax_minor": note.tax_minor,
        "line_count": note.line_count,
    }))
    .into_response()
}

pub(crate) async fn create(State(sim): State<Arc<Sim>>, body: axum::body::Bytes) -> Response {
    let _in_flight = sim.enter();
    if let Some(answer) = before(&sim).await {
        return answer;
    }
    let body: NewCreditNote = match serde_json::from_slice(&body) {
        Ok(body) => body,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                &format!("invalid credit note: {e}"),
            );
        }
    };
    let note = match book_credit(&sim, body) {
        Ok(note) => note,
        Err((status, reason)) => return error(status, &reason),
    };
    // The `timeout_after_commit` fault: booked, but the caller never hears so.
    let lost = sim.faults.read().timeout_after_commit_per_mille;
    if lost > 0 && rand::rng().random_range(0..1000) < lost {
        sim.injected_errors.fetch_add(1, Ordering::Relaxed);
        return error(
            StatusCode::GATEWAY_TIMEOUT,
            "the answer was lost after the credit note was booked",
        );
    }
    answer(&note)
}

fn book_credit(sim: &Sim, body: NewCreditNote) -> Result<CreditNote, (StatusCode, String)> {
    if let Some(bad) = body
        .lines
        .iter()
        .find(|l| l.net_minor != l.gross_minor - l.tax_minor || l.gross_minor < 0)
    {
        return Err((
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("line {} does not balance or is negative", bad.erp_item),
        ));
    }
    let (refuse, naive) = {
        let faults = sim.faults.read();
        (faults.refuse_credits.clone(), faults.ignore_idempotency_key)
    };
    let book = sim.book.lock();
    let mut credits = sim.credits.lock();
    // A naive ERP books the same credit again: a second send shows as a second note.
    if let Some(i) = credits.by_ref.get(&body.external_ref).filter(|_| !naive) {
        sim.idempotent_replays.fetch_add(1, Ordering::Relaxed);
        return Ok(credits.notes[*i].clone());
    }
    let order = book
        .by_reference(&body.order_erp_reference)
        .map(|i| &book.orders[i])
        .filter(|o| !o.deleted)
        .ok_or_else(|| {
            (
                StatusCode::CONFLICT,
                format!("no sales order {}", body.order_erp_reference),
            )
        })?;
    if let Some(reason) = refuse {
        return Err((StatusCode::CONFLICT, reason));
    }
    if order.cancelled {
        return Err((
            StatusCode::CONFLICT,
            format!(
                "{} is cancelled: there is nothing to credit",
                order.reference
            ),
        ));
    }
    let gross: i64 = body.lines.iter().map(|l| l.gross_minor).sum();
    let credited = credits.credited.get(&order.reference).copied().unwrap_or(0);
    if credited + gross > order.gross_minor {
        return Err((
            StatusCode::CONFLICT,
            format!(
                "credits of {} would exceed what {} charged ({})",
                credited + gross,
                order.reference,
                order.gross_minor
            ),
        ));
    }
    let note = CreditNote {
        reference: format!("CN-{:07}", credits.notes.len() + 1),
        external_ref: body.external_ref.clone(),
        order_erp_reference: order.reference.clone(),
        order_external_ref: order.external_ref.clone(),
        currency: body.currency,
        gross_minor: gross,
        tax_minor: body.lines.iter().map(|l| l.tax_minor).sum(),
        line_count: body.lines.len(),
        lines: body.lines,
        restock: body.restock,
        created_at: chrono::Utc::now().to_rfc3339(),
    };
    if note.restock {
        // Back on the shelf: the items are sellable again (the stock feed says so).
        sim.logistics.lock().reserve_by(&note.lines, -1);
    }
    let index = credits.notes.len();
    credits.by_ref.insert(note.external_ref.clone(), index);
    *credits
        .credited
        .entry(note.order_erp_reference.clone())
        .or_default() += note.gross_minor;
    credits.notes.push(note.clone());
    Ok(note)
}

#[derive(Deserialize)]
pub(crate) struct CreditQuery {
    /// The Centra order number (the sales order's external reference).
    #[serde(default)]
    order_ref: Option<String>,
}

/// `GET /api/credit-notes?order_ref=`: the credit notes of an order (or all), with lines.
pub(crate) async fn list(State(sim): State<Arc<Sim>>, Query(q): Query<CreditQuery>) -> Response {
    let _in_flight = sim.enter();
    if let Some(answer) = before(&sim).await {
        return answer;
    }
    sim.lookups.fetch_add(1, Ordering::Relaxed);
    let credits = sim.credits.lock();
    let notes: Vec<&CreditNote> = credits
        .notes
        .iter()
        .filter(|n| {
            q.order_ref
                .as_ref()
                .is_none_or(|r| &n.order_external_ref == r)
        })
        .collect();
    Json(serde_json::json!({ "credit_notes": notes })).into_response()
}
