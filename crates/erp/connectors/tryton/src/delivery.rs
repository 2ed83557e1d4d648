//! Delivery addresses: an order whose goods go elsewhere than the customer's own address (a
//! gift, a work address) gets that address as the sale's shipment address — a `party.address`
//! of the customer's party, with the recipient as its `party_name`, so the warehouse's
//! shipment goes there. An address the party already has is used again, never doubled.

use std::collections::HashMap;

use ferry_erp::{Address, ErpError};
use serde_json::{Value, json};

use crate::Tryton;
use crate::party::joined;

impl Tryton {
    /// The party address for each `(party, delivery address)`, found or created: one search
    /// and at most one create, whatever their number. A result per input, in order.
    pub(crate) async fn delivery_addresses(
        &self,
        wanted: &[(i64, &Address)],
    ) -> Result<Vec<i64>, ErpError> {
        if wanted.is_empty() {
            return Ok(Vec::new());
        }
        let mut values = Vec::with_capacity(wanted.len());
        for (party, address) in wanted {
            values.push(self.delivery_values(*party, address).await?);
        }
        let parties: Vec<i64> = wanted.iter().map(|(p, _)| *p).collect();
        let rows = self
            .rpc
            .call(
                "model.party.address.search_read",
                vec![
                    json!([["party", "in", parties]]),
                    json!(0),
                    Value::Null,
                    json!([["id", "ASC"]]),
                    json!([
                        "party",
                        "party_name",
                        "street_unstructured",
                        "city",
                        "postal_code",
                        "country"
                    ]),
                ],
            )
            .await?;
        let existing: Vec<&Value> = rows.as_array().into_iter().flatten().collect();
        let mut found: Vec<Option<i64>> = values
            .iter()
            .map(|v| {
                existing
                    .iter()
                    .find(|row| same(row, v))
                    .and_then(|row| row["id"].as_i64())
            })
            .collect();
        // New addresses, each place once.
        let mut new: Vec<Value> = Vec::new();
        let mut index: HashMap<String, usize> = HashMap::new();
        for (slot, v) in found.iter().zip(&values) {
            if slot.is_none() {
                index.entry(v.to_string()).or_insert_with(|| {
                    new.push(v.clone());
                    new.len() - 1
                });
            }
        }
        if !new.is_empty() {
            let count = new.len();
            let created = self
                .rpc
                .call_many("model.party.address.create", vec![Value::Array(new)], count)
                .await?;
            let ids = crate::rpc::created_ids(&created, count, "delivery addresses")?;
            for (slot, v) in found.iter_mut().zip(&values) {
                if slot.is_none() {
                    *slot = index.get(&v.to_string()).and_then(|&i| ids.get(i).copied());
                }
            }
        }
        found
            .into_iter()
            .map(|f| f.ok_or_else(|| ErpError::Rejected("a delivery address went missing".into())))
            .collect()
    }

    async fn delivery_values(&self, party: i64, a: &Address) -> Result<Value, ErpError> {
        let recipient = if a.company_name.is_empty() {
            joined(&[&a.first_name, &a.last_name], " ")
        } else {
            a.company_name.clone()
        };
        let street = joined(&[&a.address1, &a.address2], "\n");
        // Not the customer's invoice address: Ferry's next order of theirs is invoiced to
        // their own (`party::invoice_address`).
        let mut values = json!({
            "party": party,
            "invoice": false,
            "party_name": recipient,
            "street": street,
            "city": a.city,
            "postal_code": a.zip_code,
        });
        if let Some(country) = self.country(&a.country_code).await? {
            values["country"] = json!(country);
        }
        Ok(values)
    }
}

/// Whether an address row is the place and recipient of `values`.
fn same(row: &Value, values: &Value) -> bool {
    row["party"].as_i64() == values["party"].as_i64()
        && row["party_name"].as_str().unwrap_or("") == values["party_name"].as_str().unwrap_or("")
        && crate::customers::same_address(row, values)
}
