//! Returns: read by id with the lines, the order they belong to and the shipping refunded.

use super::*;

/// A return as Centra holds it (what Ferry needs to credit it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CentraReturn {
    pub id: i64,
    /// `returnStatus` verbatim ("PENDING", "COMPLETED" — [INF] the enum's values).
    pub status: String,
    pub returned_to_stock: bool,
    pub created_at: String,
    pub order_number: i64,
    pub lines: Vec<CentraReturnLine>,
    /// `totals.shipping.value` exactly as written (a JSON number's text); "" when absent.
    pub shipping_refund: String,
}

impl CentraReturn {
    /// Whether Centra has completed the return (the goods are back): what Ferry credits.
    pub fn is_completed(&self) -> bool {
        self.status.eq_ignore_ascii_case("COMPLETED")
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CentraReturnLine {
    pub id: i64,
    pub order_line_id: i64,
    pub quantity: i64,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Wire<'a> {
    id: i64,
    #[serde(default)]
    return_status: Option<String>,
    #[serde(default)]
    returned_to_stock: Option<bool>,
    #[serde(default)]
    created_at: Option<String>,
    order: Option<OrderRef>,
    #[serde(default, deserialize_with = "crate::decode::list")]
    lines: Vec<WireLine>,
    #[serde(borrow, default)]
    totals: Option<Totals<'a>>,
}

#[derive(Deserialize)]
struct OrderRef {
    number: i64,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireLine {
    id: i64,
    quantity: i64,
    order_line: LineRef,
}

#[derive(Deserialize)]
struct LineRef {
    id: i64,
}

#[derive(Deserialize)]
struct Totals<'a> {
    #[serde(borrow, default)]
    shipping: Option<Value<'a>>,
}

#[derive(Deserialize)]
struct Value<'a> {
    /// Raw, so the amount is never rounded through a float.
    #[serde(borrow)]
    value: &'a RawValue,
}

impl CentraClient {
    /// The returns with these ids (at most [`MAX_PAGE`] a request); ids Centra does not know
    /// are absent. A return without an order cannot be credited and is a decode error.
    pub async fn returns(&self, ids: &[i64]) -> Result<Vec<CentraReturn>, CentraError> {
        #[derive(Deserialize)]
        struct Data<'a> {
            #[serde(borrow, default)]
            returns: Option<Vec<Wire<'a>>>,
        }
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(MAX_PAGE) {
            let answer = self
                .answer(
                    ops::RETURNS,
                    serde_json::json!({ "ids": chunk, "limit": chunk.len() }),
                )
                .await?;
            let data: Data<'_> = data_of(&answer, &self.limiter)?;
            for r in data.returns.unwrap_or_default() {
                let order_number = r.order.map(|o| o.number).ok_or_else(|| {
                    CentraError::Decode(format!("return {} names no order", r.id))
                })?;
                out.push(CentraReturn {
                    id: r.id,
                    status: r.return_status.unwrap_or_default(),
                    returned_to_stock: r.returned_to_stock.unwrap_or(false),
                    created_at: r.created_at.unwrap_or_default(),
                    order_number,
                    lines: r
                        .lines
                        .into_iter()
                        .map(|l| CentraReturnLine {
                            id: l.id,
                            order_line_id: l.order_line.id,
                            quantity: l.quantity,
                        })
                        .collect(),
                    shipping_refund: r
                        .totals
                        .and_then(|t| t.shipping)
                        .map(|s| s.value.get().trim_matches('"').to_owned())
                        .unwrap_or_default(),
                });
            }
        }
        Ok(out)
    }
}
