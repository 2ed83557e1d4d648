//! A Centra account's changes and erasure in Tryton (ADR 0038). The party is found by the
//! Centra id (an identifier Ferry adds), then by e-mail. A changed address becomes a new
//! address and the old one is deactivated, not rewritten: sales and invoices already made
//! keep the address they were made with. An erasure is Tryton's own `party.erase` wizard
//! (the party deactivated first, as the wizard requires): names, addresses, contact
//! mechanisms and identifiers blanked, documents and amounts kept. Tryton refuses it while
//! the party has sales, shipments or invoices not yet done — the books need them — and
//! that refusal reaches customer service in Ferry's words, without the party's name.

use ferry_erp::{Customer, Erasure, ErpError};
use serde_json::{Value, json};

use crate::Tryton;
use crate::party::{centra_code, has_code, party_name};
use crate::rpc::truthy;

/// What a party is read with to compare it to the account.
const PARTY_FIELDS: [&str; 11] = [
    "name",
    "identifiers.code",
    "addresses.invoice",
    "addresses.party_name",
    "addresses.street_unstructured",
    "addresses.city",
    "addresses.postal_code",
    "addresses.country",
    "contact_mechanisms.type",
    "contact_mechanisms.value",
    "active",
];

impl Tryton {
    /// Makes the account's party hold the account as it is now; returns the party's id.
    pub(crate) async fn sync_party(&self, c: &Customer) -> Result<i64, ErpError> {
        let Some(id) = c.centra_customer_id else {
            return Err(ErpError::Rejected("a customer without a Centra id".into()));
        };
        let _one_at_a_time = self.parties.lock().await;
        let code = centra_code(id);
        let mut domain = vec![json!(["identifiers.code", "=", code])];
        if !c.email.is_empty() {
            domain.push(json!(["contact_mechanisms.value", "=", c.email]));
        }
        let mut or = vec![json!("OR")];
        or.extend(domain);
        let found = self
            .rpc
            .call(
                "model.party.party.search_read",
                vec![
                    json!([or]),
                    json!(0),
                    json!(1),
                    json!([["id", "ASC"]]),
                    json!(PARTY_FIELDS),
                ],
            )
            .await?;
        let Some(row) = found.get(0) else {
            return self.create_party(c, &format!("customer {id}")).await;
        };
        let party = row["id"].as_i64().unwrap_or_default();
        let mut values = serde_json::Map::new();
        let name = party_name(c, &format!("customer {id}"));
        if row["name"].as_str() != Some(name.as_str()) {
            values.insert("name".into(), json!(name));
        }
        if !has_code(row, &code) {
            values.insert("identifiers".into(), json!([["create", [{"code": code}]]]));
        }
        let address = self.address_values(c).await?;
        // The customer's own addresses, not those of the people they sent gifts to.
        let current: Vec<&Value> = row["addresses."]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|a| truthy(&a["invoice"]) || a["party_name"].as_str().unwrap_or("").is_empty())
            .collect();
        if !current.iter().any(|a| same_address(a, &address)) {
            let old: Vec<i64> = current.iter().filter_map(|a| a["id"].as_i64()).collect();
            let mut ops = vec![json!(["create", [address]])];
            if !old.is_empty() {
                ops.push(json!(["write", old, {"active": false}]));
            }
            values.insert("addresses".into(), Value::Array(ops));
        }
        let mechanisms: Vec<&Value> = row["contact_mechanisms."]
            .as_array()
            .into_iter()
            .flatten()
            .collect();
        let mut contact_ops = Vec::new();
        for (kind, value) in [("email", &c.email), ("phone", &c.phone_number)] {
            if value.is_empty() {
                continue;
            }
            let of_kind: Vec<&&Value> = mechanisms
                .iter()
                .filter(|m| m["type"].as_str() == Some(kind))
                .collect();
            if of_kind.iter().any(|m| m["value"].as_str() == Some(value)) {
                continue;
            }
            match of_kind.first().and_then(|m| m["id"].as_i64()) {
                Some(mechanism) => {
                    contact_ops.push(json!(["write", [mechanism], {"value": value}]));
                }
                None => contact_ops.push(json!(["create", [{"type": kind, "value": value}]])),
            }
        }
        if !contact_ops.is_empty() {
            values.insert("contact_mechanisms".into(), Value::Array(contact_ops));
        }
        if !values.is_empty() {
            self.rpc
                .call(
                    "model.party.party.write",
                    vec![json!([party]), Value::Object(values)],
                )
                .await?;
        }
        Ok(party)
    }

    /// Tryton's erasure of the account's party.
    pub(crate) async fn erase_party(&self, centra_customer_id: i64) -> Result<Erasure, ErpError> {
        let _one_at_a_time = self.parties.lock().await;
        let found = self
            .rpc
            .call_in(
                "model.party.party.search",
                vec![
                    json!([["identifiers.code", "=", centra_code(centra_customer_id)]]),
                    json!(0),
                    Value::Null,
                    json!([["id", "ASC"]]),
                ],
                json!({"active_test": false}),
            )
            .await?;
        let parties: Vec<i64> = found
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_i64)
            .collect();
        if parties.is_empty() {
            return Ok(Erasure::NotFound);
        }
        for &party in &parties {
            self.rpc
                .call(
                    "model.party.party.write",
                    vec![json!([party]), json!({"active": false})],
                )
                .await?;
            if let Err(e) = self.run_erase_wizard(party).await {
                // Left as it was: a party Tryton would not erase keeps taking orders.
                self.rpc
                    .call(
                        "model.party.party.write",
                        vec![json!([party]), json!({"active": true})],
                    )
                    .await?;
                return Err(in_our_words(e));
            }
        }
        Ok(Erasure::Done(format!(
            "Tryton's party erasure: name, addresses, contact mechanisms and identifiers \
             blanked on {} part{}; its sales, invoices and moves kept for the books",
            parties.len(),
            if parties.len() == 1 { "y" } else { "ies" }
        )))
    }

    async fn run_erase_wizard(&self, party: i64) -> Result<(), ErpError> {
        let context =
            json!({"active_model": "party.party", "active_id": party, "active_ids": [party]});
        let session = self
            .rpc
            .call_in("wizard.party.erase.create", vec![], context.clone())
            .await?;
        let id = session
            .get(0)
            .and_then(Value::as_i64)
            .ok_or_else(|| ErpError::Rejected("Tryton opened no erase wizard".into()))?;
        let result = self
            .rpc
            .call_in(
                "wizard.party.erase.execute",
                vec![json!(id), json!({"ask": {"party": party}}), json!("erase")],
                context.clone(),
            )
            .await;
        // The wizard's session is Tryton's bookkeeping; a leftover one is harmless.
        let _ = self
            .rpc
            .call_in("wizard.party.erase.delete", vec![json!(id)], context)
            .await;
        result.map(|_| ())
    }
}

/// Whether a party's address (read with `street_unstructured`) is the account's.
pub(crate) fn same_address(row: &Value, wanted: &Value) -> bool {
    let text = |v: &Value| v.as_str().unwrap_or("").to_owned();
    text(&row["street_unstructured"]) == text(&wanted["street"])
        && text(&row["city"]) == text(&wanted["city"])
        && text(&row["postal_code"]) == text(&wanted["postal_code"])
        && row["country"].as_i64() == wanted["country"].as_i64()
}

/// Tryton's refusal names the party; customer service gets what is pending instead.
fn in_our_words(e: ErpError) -> ErpError {
    let ErpError::Rejected(message) = &e else {
        return e;
    };
    let pending = [
        ("pending sales", "sales not yet done or cancelled"),
        ("pending shipments", "shipments not yet done or cancelled"),
        ("pending invoices", "invoices not yet paid or cancelled"),
        ("receivable/payable", "an open balance"),
    ]
    .into_iter()
    .find(|(tryton, _)| message.contains(tryton));
    match pending {
        Some((_, what)) => ErpError::Rejected(format!(
            "Tryton keeps a party with {what} (the books need them); erase it once they \
             are done — the party was left active"
        )),
        None => ErpError::Rejected("Tryton refused the party erasure (see its log)".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_loses_the_party_name() {
        let e = in_our_words(ErpError::Rejected(
            "wizard.party.erase.execute: You cannot erase party \"Anna Svensson\" while they \
             have pending sales with company \"Demo\"."
                .into(),
        ));
        let text = e.to_string();
        assert!(text.contains("sales not yet done"), "{text}");
        assert!(!text.contains("Anna"), "{text}");
    }

    #[test]
    fn an_address_is_the_same_only_when_every_part_is() {
        let wanted = json!({"street": "Storgatan 1", "city": "Malmö", "postal_code": "211 22", "country": 3});
        let row = json!({"id": 9, "street_unstructured": "Storgatan 1", "city": "Malmö", "postal_code": "211 22", "country": 3});
        assert!(same_address(&row, &wanted));
        let moved = json!({"id": 9, "street_unstructured": "Storgatan 1", "city": "Lund", "postal_code": "211 22", "country": 3});
        assert!(!same_address(&moved, &wanted));
    }
}
