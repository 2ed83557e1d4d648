//! Customer accounts: read by id as they are now (an erased customer is absent).

use super::*;

/// A customer account as Centra holds it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CentraCustomer {
    pub id: i64,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub first_name: Option<String>,
    #[serde(default)]
    pub last_name: Option<String>,
    #[serde(default)]
    pub billing_address: Option<CustomerAddress>,
}

/// A customer's address ([INF] the fields are the order `Address`'s).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CustomerAddress {
    #[serde(default)]
    pub company_name: Option<String>,
    #[serde(default)]
    pub address1: Option<String>,
    #[serde(default)]
    pub address2: Option<String>,
    #[serde(default)]
    pub city: Option<String>,
    #[serde(default)]
    pub zip_code: Option<String>,
    #[serde(default)]
    pub state_or_province: Option<String>,
    #[serde(default)]
    pub country: Option<CountryCode>,
    #[serde(default)]
    pub phone_number: Option<String>,
    #[serde(default)]
    pub vat_number: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct CountryCode {
    #[serde(default)]
    pub code: Option<String>,
}

impl CentraClient {
    /// The accounts with these ids (at most [`MAX_PAGE`] a request); an id Centra does not
    /// return is an erased (or unknown) customer.
    pub async fn customers(&self, ids: &[i64]) -> Result<Vec<CentraCustomer>, CentraError> {
        #[derive(Deserialize)]
        struct Data {
            #[serde(default, deserialize_with = "crate::decode::list")]
            customers: Vec<CentraCustomer>,
        }
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(MAX_PAGE) {
            let data = self
                .execute(
                    ops::CUSTOMERS,
                    serde_json::json!({ "ids": chunk, "limit": chunk.len() }),
                )
                .await?;
            let data: Data =
                serde_json::from_slice(&data).map_err(|e| CentraError::Decode(e.to_string()))?;
            out.extend(data.customers);
        }
        Ok(out)
    }
}
