//! Order snapshots for a reader that needs them parsed, not their bytes (the reconciler):
//! one pass over Centra's answer instead of splitting it and parsing each order again.

use ferry_domain::Snapshot;

use super::*;

impl CentraClient {
    /// [`CentraClient::order_snapshots`], parsed. An order that does not parse is left out,
    /// as one Centra does not know is: the answer is then read again order by order, so
    /// one bad order costs its batch a second parse, not its other orders.
    pub async fn order_snapshots_parsed(
        &self,
        numbers: &[i64],
    ) -> Result<Vec<Snapshot>, CentraError> {
        #[derive(Deserialize)]
        struct Orders {
            orders: Vec<Snapshot>,
        }
        let mut out = Vec::with_capacity(numbers.len());
        for chunk in numbers.chunks(MAX_PAGE) {
            let answer = self
                .answer(
                    ORDER_SNAPSHOT_QUERY,
                    serde_json::json!({ "where": { "number": chunk }, "limit": chunk.len(), "page": 1 }),
                )
                .await?;
            match data_of::<Orders>(&answer, &self.limiter) {
                Ok(orders) => out.extend(orders.orders),
                Err(CentraError::Decode(_)) => out.extend(each(&answer)?),
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }
}

/// The orders of an answer parsed one by one, those that do not parse left out.
fn each(answer: &[u8]) -> Result<Vec<Snapshot>, CentraError> {
    #[derive(Deserialize)]
    struct Envelope<'a> {
        #[serde(borrow)]
        data: OrdersData<'a>,
    }
    let envelope: Envelope<'_> =
        serde_json::from_slice(answer).map_err(|e| CentraError::Decode(e.to_string()))?;
    Ok(envelope
        .data
        .orders
        .into_iter()
        .filter_map(|raw| Snapshot::parse(raw.get().as_bytes()).ok())
        .collect())
}
