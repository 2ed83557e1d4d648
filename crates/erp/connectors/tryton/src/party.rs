//! Parties: the customer matched by their Centra id or e-mail (or the configured guest
//! party), else created with an address, contact mechanisms and the Centra id as an
//! identifier — what later changes and erasure requests find them by (`customers.rs`).

use std::collections::HashMap;
use std::time::Duration;

use ferry_erp::{Customer, ErpError};
use serde_json::{Value, json};

use crate::Tryton;

/// The party identifier (Tryton's `party.identifier`, no type) that names a Centra account.
pub(crate) fn centra_code(centra_customer_id: i64) -> String {
    format!("centra-customer:{centra_customer_id}")
}

/// The non-empty parts, joined by `separator`.
pub(crate) fn joined(parts: &[&str], separator: &str) -> String {
    parts
        .iter()
        .filter(|s| !s.is_empty())
        .copied()
        .collect::<Vec<_>>()
        .join(separator)
}

/// The party's name: the company, else the person, else the order it came with.
pub(crate) fn party_name(c: &Customer, external_ref: &str) -> String {
    let person = joined(&[&c.first_name, &c.last_name], " ");
    if !c.company_name.is_empty() {
        c.company_name.clone()
    } else if person.is_empty() {
        format!("Centra order {external_ref}")
    } else {
        person
    }
}

/// How one customer is found: the configured guest party's code, the Centra id, the
/// e-mail, or (neither) the name of the party made for their order.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Guest(String),
    Account { code: String, email: String },
    Email(String),
    Order(String),
}

impl Key {
    fn of(c: &Customer, external_ref: &str) -> Self {
        match (&c.erp_customer, c.centra_customer_id) {
            (Some(guest), _) => Key::Guest(guest.clone()),
            (None, Some(id)) => Key::Account {
                code: centra_code(id),
                email: c.email.clone(),
            },
            (None, None) if !c.email.is_empty() => Key::Email(c.email.clone()),
            (None, None) => Key::Order(format!("Centra order {external_ref}")),
        }
    }

    /// Whether a party row (read with `PARTY_MATCH`) is this customer's; the Centra id
    /// first, the e-mail second.
    fn rank(&self, row: &Value) -> Option<u8> {
        let email = |e: &str| {
            !e.is_empty()
                && row["contact_mechanisms."]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|m| m["value"].as_str() == Some(e))
        };
        match self {
            Key::Guest(code) => (row["code"].as_str() == Some(code)).then_some(0),
            Key::Account { code, .. } if has_code(row, code) => Some(0),
            Key::Account { email: e, .. } => email(e).then_some(1),
            Key::Email(e) => email(e).then_some(0),
            Key::Order(name) => (row["name"].as_str() == Some(name)).then_some(0),
        }
    }
}

/// What a party is read with to match customers to it.
const PARTY_MATCH: [&str; 6] = [
    "code",
    "name",
    "addresses",
    "addresses.invoice",
    "identifiers.code",
    "contact_mechanisms.value",
];

impl Tryton {
    /// The customer's party and address: an existing party with the same Centra id or
    /// e-mail (or the configured guest party), else a new one.
    pub(crate) async fn party(
        &self,
        c: &Customer,
        external_ref: &str,
    ) -> Result<(i64, i64), ErpError> {
        self.parties_of(&[(c, external_ref)])
            .await
            .pop()
            .unwrap_or_else(|| Err(ErpError::Rejected("no party".into())))
    }

    /// [`Tryton::party`] for many customers in a few calls whatever their number: one
    /// search for them all, one create for the new ones, one read of their addresses. A
    /// customer twice among them gets one party.
    pub(crate) async fn parties_of(
        &self,
        customers: &[(&Customer, &str)],
    ) -> Vec<Result<(i64, i64), ErpError>> {
        let _one_at_a_time = self.parties.lock().await;
        match self.match_or_create(customers).await {
            Ok(found) => found,
            Err(e) => customers.iter().map(|_| Err(e.clone())).collect(),
        }
    }

    async fn match_or_create(
        &self,
        customers: &[(&Customer, &str)],
    ) -> Result<Vec<Result<(i64, i64), ErpError>>, ErpError> {
        let keys: Vec<Key> = customers.iter().map(|(c, r)| Key::of(c, r)).collect();
        let rows = self.matching_parties(&keys).await?;
        // The party each key found: the best rank, the oldest among equals.
        let mut found: HashMap<&Key, (i64, Option<i64>, bool)> = HashMap::new();
        for key in &keys {
            let best = rows
                .iter()
                .filter_map(|row| Some((key.rank(row)?, row)))
                .min_by_key(|(rank, row)| (*rank, row["id"].as_i64()));
            if let Some((_, row)) = best {
                let party = row["id"].as_i64().unwrap_or_default();
                let address = invoice_address(row);
                let known = matches!(key, Key::Account { code, .. } if has_code(row, code));
                found.insert(key, (party, address, known));
            }
        }
        // A party Ferry did not create (matched by e-mail) learns the Centra id, so that
        // the account's changes and erasure find it.
        let learn: Vec<Value> = found
            .iter()
            .filter(|(_, (_, address, known))| address.is_some() && !known)
            .filter_map(|(key, (party, _, _))| match key {
                Key::Account { code, .. } => Some(json!({"party": party, "code": code})),
                _ => None,
            })
            .collect();
        if !learn.is_empty() {
            self.rpc
                .call("model.party.identifier.create", vec![Value::Array(learn)])
                .await?;
        }
        // New parties, one per key (a party found without an address gets a new one).
        let mut new: Vec<&Key> = Vec::new();
        let mut values = Vec::new();
        for ((c, external_ref), key) in customers.iter().zip(&keys) {
            let usable = found.get(key).is_some_and(|(_, a, _)| a.is_some());
            if usable || new.contains(&key) {
                continue;
            }
            // The brand's guest party is the brand's to make.
            if matches!(key, Key::Guest(_)) {
                continue;
            }
            new.push(key);
            values.push(self.party_values(c, external_ref).await?);
        }
        let mut refused: HashMap<&Key, ErpError> = HashMap::new();
        if !values.is_empty() {
            let created: Vec<Result<i64, ErpError>> =
                match self.create_parties(values.clone()).await {
                    Ok(ids) => ids.into_iter().map(Ok).collect(),
                    // Tryton refuses the whole call for one bad party: each on its own, so
                    // that only that customer's order fails.
                    Err(e) if !e.is_transient() && values.len() > 1 => {
                        let mut one_by_one = Vec::with_capacity(values.len());
                        for v in values {
                            one_by_one.push(self.create_one_party(v).await);
                        }
                        one_by_one
                    }
                    Err(e) => return Err(e),
                };
            let ids: Vec<i64> = created
                .iter()
                .filter_map(|r| r.as_ref().ok().copied())
                .collect();
            let addresses = self
                .rpc
                .call(
                    "model.party.party.read",
                    vec![json!(ids), json!(["addresses"])],
                )
                .await?;
            let address_of: HashMap<i64, Option<i64>> = addresses
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|row| {
                    Some((
                        row["id"].as_i64()?,
                        row["addresses"].get(0).and_then(Value::as_i64),
                    ))
                })
                .collect();
            for (key, result) in new.into_iter().zip(created) {
                match result {
                    Ok(party) => {
                        let address = address_of.get(&party).copied().flatten();
                        found.insert(key, (party, address, true));
                    }
                    Err(e) => {
                        refused.insert(key, e);
                    }
                }
            }
        }
        Ok(keys
            .iter()
            .map(|key| match (key, found.get(key)) {
                _ if refused.contains_key(key) => Err(refused[key].clone()),
                (_, Some((party, Some(address), _))) => Ok((*party, *address)),
                (Key::Guest(code), None) => Err(ErpError::Rejected(format!(
                    "guest customer {code} does not exist in Tryton"
                ))),
                (Key::Guest(code), Some(_)) => Err(ErpError::Rejected(format!(
                    "guest customer {code} has no address in Tryton"
                ))),
                _ => Err(ErpError::Rejected(
                    "Tryton created the party without an address".into(),
                )),
            })
            .collect())
    }

    /// Every party one of `keys` may be, in one search.
    async fn matching_parties(&self, keys: &[Key]) -> Result<Vec<Value>, ErpError> {
        let mut guests = Vec::new();
        let mut codes = Vec::new();
        let mut emails = Vec::new();
        let mut names = Vec::new();
        for key in keys {
            match key {
                Key::Guest(code) => guests.push(code.as_str()),
                Key::Account { code, email } => {
                    codes.push(code.as_str());
                    if !email.is_empty() {
                        emails.push(email.as_str());
                    }
                }
                Key::Email(email) => emails.push(email.as_str()),
                Key::Order(name) => names.push(name.as_str()),
            }
        }
        let mut or = vec![json!("OR")];
        for (field, values) in [
            ("code", guests),
            ("identifiers.code", codes),
            ("contact_mechanisms.value", emails),
            ("name", names),
        ] {
            if !values.is_empty() {
                or.push(json!([field, "in", values]));
            }
        }
        let rows = self
            .rpc
            .call(
                "model.party.party.search_read",
                vec![
                    json!([or]),
                    json!(0),
                    Value::Null,
                    json!([["id", "ASC"]]),
                    json!(PARTY_MATCH),
                ],
            )
            .await?;
        Ok(rows.as_array().cloned().unwrap_or_default())
    }

    /// A new party for the customer; callers hold `self.parties`.
    pub(crate) async fn create_party(
        &self,
        c: &Customer,
        external_ref: &str,
    ) -> Result<i64, ErpError> {
        let values = self.party_values(c, external_ref).await?;
        self.create_one_party(values).await
    }

    async fn create_one_party(&self, values: Value) -> Result<i64, ErpError> {
        self.create_parties(vec![values])
            .await?
            .first()
            .copied()
            .ok_or_else(|| ErpError::Rejected("Tryton created no party".into()))
    }

    /// A new party's values: name, address, contact mechanisms and the Centra id.
    async fn party_values(&self, c: &Customer, external_ref: &str) -> Result<Value, ErpError> {
        let mut contacts = Vec::new();
        if !c.email.is_empty() {
            contacts.push(json!({"type": "email", "value": c.email}));
        }
        if !c.phone_number.is_empty() {
            contacts.push(json!({"type": "phone", "value": c.phone_number}));
        }
        let mut values = json!({
            "name": party_name(c, external_ref),
            "addresses": [["create", [self.address_values(c).await?]]],
            "contact_mechanisms": [["create", contacts]],
        });
        if let Some(id) = c.centra_customer_id.filter(|_| c.erp_customer.is_none()) {
            values["identifiers"] = json!([["create", [{"code": centra_code(id)}]]]);
        }
        Ok(values)
    }

    /// Creates parties in one call; their ids, in order.
    async fn create_parties(&self, values: Vec<Value>) -> Result<Vec<i64>, ErpError> {
        let wanted = values.len();
        let created = self
            .rpc
            .call_many(
                "model.party.party.create",
                vec![Value::Array(values)],
                wanted,
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
        crate::rpc::created_ids(&created, wanted, "parties")
    }

    /// The customer's address as Tryton's `party.address` values.
    pub(crate) async fn address_values(&self, c: &Customer) -> Result<Value, ErpError> {
        // Marked as the party's invoice address: delivery addresses join it (`delivery.rs`).
        let mut address = json!({
            "invoice": true,
            "street": joined(&[&c.address1, &c.address2], "\n"),
            "city": c.city,
            "postal_code": c.zip_code,
        });
        if let Some(country) = self.country(&c.country_code).await? {
            address["country"] = json!(country);
        }
        Ok(address)
    }
}

/// The party's invoice address (read with `addresses.invoice`): the first marked so, else
/// the first (a party Ferry did not make, or the brand's guest party).
pub(crate) fn invoice_address(row: &Value) -> Option<i64> {
    let addresses = row["addresses."].as_array();
    addresses
        .into_iter()
        .flatten()
        .find(|a| crate::rpc::truthy(&a["invoice"]))
        .or_else(|| addresses.and_then(|a| a.first()))
        .and_then(|a| a["id"].as_i64())
        .or_else(|| row["addresses"].get(0).and_then(Value::as_i64))
}

/// Whether a party row read with `identifiers.code` carries `code`.
pub(crate) fn has_code(row: &Value, code: &str) -> bool {
    row["identifiers."]
        .as_array()
        .into_iter()
        .flatten()
        .any(|i| i["code"].as_str() == Some(code))
}
