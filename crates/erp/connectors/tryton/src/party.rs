//! Parties: the customer matched by e-mail (or the configured guest party), else created
//! with an address and contact mechanisms.

use std::time::Duration;

use ferry_erp::{Customer, ErpError};
use serde_json::{Value, json};

use crate::Tryton;

impl Tryton {
    /// The customer's party and address: an existing party with the same e-mail (or the
    /// configured guest party), else a new one.
    pub(crate) async fn party(
        &self,
        c: &Customer,
        external_ref: &str,
    ) -> Result<(i64, i64), ErpError> {
        let _one_at_a_time = self.parties.lock().await;
        let domain = match &c.erp_customer {
            Some(code) => json!([["code", "=", code]]),
            None if !c.email.is_empty() => json!([["contact_mechanisms.value", "=", c.email]]),
            None => json!([["name", "=", format!("Centra order {external_ref}")]]),
        };
        let found = self
            .rpc
            .call(
                "model.party.party.search_read",
                vec![
                    domain,
                    json!(0),
                    json!(1),
                    json!([["id", "ASC"]]),
                    json!(["addresses"]),
                ],
            )
            .await?;
        if let Some(row) = found.get(0) {
            let party = row["id"].as_i64().unwrap_or_default();
            if let Some(address) = row["addresses"].get(0).and_then(Value::as_i64) {
                return Ok((party, address));
            }
        } else if let Some(code) = &c.erp_customer {
            return Err(ErpError::Rejected(format!(
                "guest customer {code} does not exist in Tryton"
            )));
        }
        let name = [c.first_name.as_str(), c.last_name.as_str()]
            .iter()
            .filter(|s| !s.is_empty())
            .copied()
            .collect::<Vec<_>>()
            .join(" ");
        let name = if !c.company_name.is_empty() {
            c.company_name.clone()
        } else if name.is_empty() {
            format!("Centra order {external_ref}")
        } else {
            name
        };
        let street = [c.address1.as_str(), c.address2.as_str()]
            .iter()
            .filter(|s| !s.is_empty())
            .copied()
            .collect::<Vec<_>>()
            .join("\n");
        let mut address = json!({
            "street": street,
            "city": c.city,
            "postal_code": c.zip_code,
        });
        if let Some(country) = self.country(&c.country_code).await? {
            address["country"] = json!(country);
        }
        let mut contacts = Vec::new();
        if !c.email.is_empty() {
            contacts.push(json!({"type": "email", "value": c.email}));
        }
        if !c.phone_number.is_empty() {
            contacts.push(json!({"type": "phone", "value": c.phone_number}));
        }
        let created = self
            .rpc
            .call(
                "model.party.party.create",
                vec![json!([{
                    "name": name,
                    "addresses": [["create", [address]]],
                    "contact_mechanisms": [["create", contacts]],
                }])],
            )
            .await
            .map_err(|e| match e {
                // Another process created a party at the same moment (the code sequence
                // collided): matching again on retry settles it.
                ErpError::Rejected(m) if m.contains("must be unique") => ErpError::Unavailable {
                    reason: m,
                    retry_after: Some(Duration::from_millis(200)),
                },
                other => other,
            })?;
        let party = created
            .get(0)
            .and_then(Value::as_i64)
            .ok_or_else(|| ErpError::Rejected("Tryton created no party".into()))?;
        let addresses = self
            .rpc
            .call(
                "model.party.address.search",
                vec![
                    json!([["party", "=", party]]),
                    json!(0),
                    json!(1),
                    Value::Null,
                ],
            )
            .await?;
        let address = addresses.get(0).and_then(Value::as_i64).ok_or_else(|| {
            ErpError::Rejected("Tryton created the party without an address".into())
        })?;
        Ok((party, address))
    }
}
