//! Stock: `setStock` of many sizes per call, and free-to-allocate levels read back.

use super::*;

/// One size's stock in one warehouse as Centra reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CentraStock {
    pub sku: String,
    pub free_to_allocate: i64,
}

/// SKUs read per stock request: one aliased `productSizes` field each. Centra documents
/// that nested lists multiply a query's complexity but not the weights, so this is a
/// cautious inference that keeps a request far below the 10-second complexity budget.
pub const STOCK_SKUS_PER_REQUEST: usize = 50;

impl CentraClient {
    /// Sets the physical stock of many sizes in one warehouse (one mutation). Sizes Centra
    /// skips (bundles, unknown SKUs) come back as warnings naming their index in `levels`.
    pub async fn set_stock(
        &self,
        warehouse: i64,
        description: &str,
        levels: &[(&str, i64)],
    ) -> Result<Vec<UserMessage>, CentraError> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Data {
            set_stock: Payload,
        }
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Payload {
            #[serde(default, deserialize_with = "crate::decode::list")]
            user_errors: Vec<UserMessage>,
            #[serde(default, deserialize_with = "crate::decode::list")]
            user_warnings: Vec<UserMessage>,
        }
        let sizes: Vec<serde_json::Value> = levels
            .iter()
            .map(|(sku, quantity)| {
                serde_json::json!({ "productSize": { "SKU": sku }, "quantity": quantity })
            })
            .collect();
        let input = serde_json::json!({
            "warehouse": { "id": warehouse },
            "description": description,
            "stockQuantityType": "PHYSICAL",
            "productSizes": sizes,
        });
        let data = self
            .execute(ops::SET_STOCK, serde_json::json!({ "input": input }))
            .await?;
        let data: Data =
            serde_json::from_slice(&data).map_err(|e| CentraError::Decode(e.to_string()))?;
        user_errors(data.set_stock.user_errors)?;
        Ok(data.set_stock.user_warnings)
    }

    /// Free-to-allocate stock (the field that costs no query complexity) of `skus` in one
    /// warehouse, [`STOCK_SKUS_PER_REQUEST`] per request. SKUs Centra does not know are
    /// absent from the result.
    pub async fn stock_levels(
        &self,
        warehouse: i64,
        skus: &[&str],
    ) -> Result<Vec<CentraStock>, CentraError> {
        #[derive(Deserialize)]
        struct Size {
            #[serde(rename = "SKU")]
            sku: String,
            #[serde(deserialize_with = "crate::decode::list")]
            stock: Vec<Level>,
        }
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Level {
            free_to_allocate_quantity: i64,
        }
        let mut out = Vec::with_capacity(skus.len());
        for chunk in skus.chunks(STOCK_SKUS_PER_REQUEST) {
            let mut variables = serde_json::Map::with_capacity(chunk.len() + 1);
            variables.insert("warehouse".into(), warehouse.into());
            for (i, sku) in chunk.iter().enumerate() {
                variables.insert(format!("s{i}"), (*sku).into());
            }
            let data = self
                .execute(
                    &ops::stock_levels_query(chunk.len()),
                    serde_json::Value::Object(variables),
                )
                .await?;
            let data: std::collections::HashMap<String, Option<Vec<Size>>> =
                serde_json::from_slice(&data).map_err(|e| CentraError::Decode(e.to_string()))?;
            for size in data.into_values().flatten().flatten() {
                out.push(CentraStock {
                    free_to_allocate: size.stock.iter().map(|l| l.free_to_allocate_quantity).sum(),
                    sku: size.sku,
                });
            }
        }
        Ok(out)
    }
}
