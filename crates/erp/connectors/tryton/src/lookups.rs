//! Tryton ids looked up by code and kept for the connector's life: currencies, products,
//! taxes, countries and the carrier (ids differ per database, so nothing is hard-coded).

use std::collections::HashMap;

use ferry_erp::ErpError;
use rust_decimal::Decimal;
use serde_json::{Value, json};

use crate::Tryton;
use crate::rpc::read_decimal;

#[derive(Debug, Clone, Copy)]
pub(crate) struct Currency {
    pub(crate) id: i64,
    pub(crate) digits: u32,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Product {
    pub(crate) id: i64,
    pub(crate) uom: i64,
}

/// Ids looked up by code, kept for the connector's life (Tryton ids differ per database).
#[derive(Default)]
pub(crate) struct Lookups {
    currencies: HashMap<String, Currency>,
    currency_codes: HashMap<i64, String>,
    products: HashMap<String, Product>,
    /// (name, rate as a fraction)
    taxes: Vec<(i64, String, Decimal)>,
    countries: HashMap<String, i64>,
    carrier: Option<Option<i64>>,
}

impl Tryton {
    /// Reads Tryton's currencies into the lookups (ids differ per database).
    pub(crate) async fn load_currencies(&self) -> Result<(), ErpError> {
        let rows = self
            .rpc
            .call(
                "model.currency.currency.search_read",
                vec![
                    json!([]),
                    json!(0),
                    Value::Null,
                    Value::Null,
                    json!(["code", "digits"]),
                ],
            )
            .await?;
        let mut lookups = self.lookups.lock().await;
        for row in rows.as_array().into_iter().flatten() {
            if let (Some(id), Some(c)) = (row["id"].as_i64(), row["code"].as_str()) {
                let digits = row["digits"].as_u64().unwrap_or(2) as u32;
                lookups
                    .currencies
                    .insert(c.to_owned(), Currency { id, digits });
                lookups.currency_codes.insert(id, c.to_owned());
            }
        }
        Ok(())
    }

    pub(crate) async fn currency(&self, code: &str) -> Result<Currency, ErpError> {
        if let Some(c) = self.lookups.lock().await.currencies.get(code) {
            return Ok(*c);
        }
        self.load_currencies().await?;
        self.lookups
            .lock()
            .await
            .currencies
            .get(code)
            .copied()
            .ok_or_else(|| ErpError::Rejected(format!("currency {code} is not set up in Tryton")))
    }

    /// The code and minor-unit digits of a currency known by its Tryton id.
    pub(crate) async fn currency_by_id(&self, id: i64) -> Result<(String, u32), ErpError> {
        let known = |lookups: &Lookups| {
            let code = lookups.currency_codes.get(&id)?;
            Some((code.clone(), lookups.currencies.get(code)?.digits))
        };
        if let Some(found) = known(&*self.lookups.lock().await) {
            return Ok(found);
        }
        self.load_currencies().await?;
        known(&*self.lookups.lock().await)
            .ok_or_else(|| ErpError::Rejected(format!("Tryton currency {id} is unknown")))
    }

    pub(crate) async fn products(
        &self,
        codes: &[&str],
    ) -> Result<HashMap<String, Product>, ErpError> {
        let missing: Vec<&str> = {
            let lookups = self.lookups.lock().await;
            codes
                .iter()
                .copied()
                .filter(|c| !lookups.products.contains_key(*c))
                .collect()
        };
        if !missing.is_empty() {
            let rows = self
                .rpc
                .call(
                    "model.product.product.search_read",
                    vec![
                        json!([["code", "in", missing]]),
                        json!(0),
                        Value::Null,
                        Value::Null,
                        json!(["code", "default_uom"]),
                    ],
                )
                .await?;
            let mut lookups = self.lookups.lock().await;
            for row in rows.as_array().into_iter().flatten() {
                if let (Some(id), Some(code), Some(uom)) = (
                    row["id"].as_i64(),
                    row["code"].as_str(),
                    row["default_uom"].as_i64(),
                ) {
                    lookups
                        .products
                        .insert(code.to_owned(), Product { id, uom });
                }
            }
        }
        let lookups = self.lookups.lock().await;
        let mut out = HashMap::new();
        for code in codes {
            let p = lookups.products.get(*code).ok_or_else(|| {
                ErpError::Rejected(format!("item {code} does not exist in Tryton"))
            })?;
            out.insert((*code).to_owned(), *p);
        }
        Ok(out)
    }

    /// The tax for a line: by the tenant's tax code (the tax's name), else by rate.
    pub(crate) async fn tax(
        &self,
        code: Option<&str>,
        rate_percent: &str,
    ) -> Result<Option<i64>, ErpError> {
        let rate: Decimal = rate_percent
            .parse::<Decimal>()
            .map_err(|_| ErpError::Rejected(format!("tax rate {rate_percent} is not a number")))?
            / Decimal::ONE_HUNDRED;
        if self.lookups.lock().await.taxes.is_empty() {
            let rows = self
                .rpc
                .call(
                    "model.account.tax.search_read",
                    vec![
                        json!([["type", "=", "percentage"]]),
                        json!(0),
                        Value::Null,
                        json!([["id", "ASC"]]),
                        json!(["name", "rate"]),
                    ],
                )
                .await?;
            let mut lookups = self.lookups.lock().await;
            for row in rows.as_array().into_iter().flatten() {
                if let (Some(id), Some(name), Some(r)) = (
                    row["id"].as_i64(),
                    row["name"].as_str(),
                    read_decimal(&row["rate"]),
                ) {
                    lookups.taxes.push((id, name.to_owned(), r));
                }
            }
        }
        if rate.is_zero() && code.is_none() {
            return Ok(None);
        }
        let lookups = self.lookups.lock().await;
        let found = match code {
            Some(code) => lookups.taxes.iter().find(|(_, n, _)| n == code),
            None => lookups.taxes.iter().find(|(_, _, r)| *r == rate),
        };
        match found {
            Some((id, _, r)) if *r == rate => Ok(Some(*id)),
            Some((_, name, r)) => Err(ErpError::Rejected(format!(
                "Tryton tax {name} is {}% but the line is taxed at {rate_percent}%",
                r * Decimal::ONE_HUNDRED
            ))),
            None => Err(ErpError::Rejected(format!(
                "no Tryton tax {} for {rate_percent}%",
                code.unwrap_or("")
            ))),
        }
    }

    pub(crate) async fn country(&self, code: &str) -> Result<Option<i64>, ErpError> {
        if code.is_empty() {
            return Ok(None);
        }
        if let Some(id) = self.lookups.lock().await.countries.get(code) {
            return Ok(Some(*id));
        }
        let ids = self
            .rpc
            .call(
                "model.country.country.search",
                vec![
                    json!([["code", "=", code]]),
                    json!(0),
                    json!(1),
                    Value::Null,
                ],
            )
            .await?;
        let id = ids.get(0).and_then(Value::as_i64);
        if let Some(id) = id {
            self.lookups
                .lock()
                .await
                .countries
                .insert(code.to_owned(), id);
        }
        Ok(id)
    }

    pub(crate) async fn carrier(&self) -> Result<Option<i64>, ErpError> {
        let Some(name) = &self.config.carrier else {
            return Ok(None);
        };
        if let Some(c) = self.lookups.lock().await.carrier {
            return Ok(c);
        }
        let ids = self
            .rpc
            .call(
                "model.carrier.search",
                vec![
                    json!([["party.name", "=", name]]),
                    json!(0),
                    json!(1),
                    Value::Null,
                ],
            )
            .await?;
        let id = ids.get(0).and_then(Value::as_i64);
        self.lookups.lock().await.carrier = Some(id);
        Ok(id)
    }
}
