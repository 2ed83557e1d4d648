//! Customers kept in step with Centra (ADR 0038): `PUT /api/customers/centra/{id}` makes
//! the ERP's customer for a Centra customer hold the account as it is now (found by the
//! Centra id, then the e-mail; created when none); `DELETE /api/customers/centra/{id}`
//! erases it — the customer record anonymised, and the customer on every sales order of
//! it, while the orders' money stays for the books.

use super::*;

/// A customer as the ERP keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Party {
    pub id: String,
    pub centra_customer_id: Option<i64>,
    /// The customer as last sent (Ferry's `Customer`), or the erasure marker.
    pub details: serde_json::Value,
    #[serde(default)]
    pub erased: bool,
}

#[derive(Default)]
pub(crate) struct Parties {
    pub by_id: BTreeMap<String, Party>,
    pub by_centra: HashMap<i64, String>,
}

/// What is left of a customer after erasure: the ids, nothing personal.
fn erased_details(centra_customer_id: i64) -> serde_json::Value {
    serde_json::json!({ "erased": true, "centra_customer_id": centra_customer_id })
}

pub(crate) async fn sync(
    State(sim): State<Arc<Sim>>,
    Path(centra_customer_id): Path<i64>,
    Json(details): Json<serde_json::Value>,
) -> Response {
    let _in_flight = sim.enter();
    if let Some(answer) = before(&sim).await {
        return answer;
    }
    let email = details["email"].as_str().unwrap_or_default().to_lowercase();
    let mut logistics = sim.logistics.lock();
    let mut parties = sim.parties.lock();
    let id = match parties.by_centra.get(&centra_customer_id) {
        Some(id) => id.clone(),
        None => {
            // The customer the first order created (matched by e-mail), or a new one.
            let next = format!("C-{:07}", logistics.customers.len() + 1);
            let id = if email.is_empty() {
                next
            } else {
                logistics
                    .customers
                    .entry(email.clone())
                    .or_insert(next)
                    .clone()
            };
            parties.by_centra.insert(centra_customer_id, id.clone());
            id
        }
    };
    if !email.is_empty() {
        logistics.customers.insert(email, id.clone());
    }
    parties.by_id.insert(
        id.clone(),
        Party {
            id: id.clone(),
            centra_customer_id: Some(centra_customer_id),
            details,
            erased: false,
        },
    );
    Json(serde_json::json!({ "id": id })).into_response()
}

pub(crate) async fn erase(
    State(sim): State<Arc<Sim>>,
    Path(centra_customer_id): Path<i64>,
) -> Response {
    let _in_flight = sim.enter();
    if let Some(answer) = before(&sim).await {
        return answer;
    }
    let mut book = sim.book.lock();
    let mut orders = 0;
    for order in &mut book.orders {
        if order.customer["centra_customer_id"].as_i64() == Some(centra_customer_id) {
            order.customer = erased_details(centra_customer_id);
            // The recipient's address is personal data too (delivered, it is history).
            if order.delivery.is_some() {
                order.delivery = Some(serde_json::json!({ "erased": true }));
            }
            orders += 1;
        }
    }
    let mut logistics = sim.logistics.lock();
    let mut parties = sim.parties.lock();
    let id = parties.by_centra.get(&centra_customer_id).cloned();
    if id.is_none() && orders == 0 {
        return error(StatusCode::NOT_FOUND, "no customer for that Centra id");
    }
    if let Some(party) = id.as_ref().and_then(|id| parties.by_id.get_mut(id)) {
        party.details = erased_details(centra_customer_id);
        party.erased = true;
    }
    // The e-mail no longer finds the customer.
    if let Some(id) = &id {
        logistics.customers.retain(|_, v| v != id);
    }
    Json(serde_json::json!({
        "erased": true,
        "customer": id,
        "sales_orders_anonymised": orders,
    }))
    .into_response()
}
