//! Changes after posting (`POST /api/sales-orders/{reference}/changes`, ADR 0035): the
//! document is sent the whole order as it now stands; `409` is the ERP refusing to change
//! it (shipped, invoiced), a permanent answer for finance.

use async_trait::async_trait;
use ferry_erp::{ChangeOrders, ChangeOutcome, ErpDocument, ErpError, OrderChange, PostOrder};

use crate::{HttpErp, classify, transport};

#[derive(serde::Serialize)]
struct ChangeBody<'a> {
    change_id: &'a str,
    cancel: bool,
    order: &'a PostOrder,
}

#[derive(serde::Deserialize)]
struct Refusal {
    #[serde(default)]
    error: String,
}

/// The ERP's reason in a `409` answer (`{"error": …}`), or `fallback` when it gave none.
pub(crate) async fn refusal(response: reqwest::Response, fallback: &str) -> String {
    let reason = response
        .json::<Refusal>()
        .await
        .map(|r| r.error)
        .unwrap_or_default();
    if reason.is_empty() {
        fallback.to_owned()
    } else {
        reason
    }
}

#[async_trait]
impl ChangeOrders for HttpErp {
    async fn change_sales_order(&self, change: &OrderChange) -> Result<ChangeOutcome, ErpError> {
        let path = format!(
            "/api/sales-orders/{}/changes",
            urlencoding(&change.erp_reference)
        );
        let response = self
            .request(reqwest::Method::POST, &path)
            .header("Idempotency-Key", &change.change_id)
            .json(&ChangeBody {
                change_id: &change.change_id,
                cancel: change.cancel,
                order: &change.order,
            })
            .send()
            .await
            .map_err(transport)?;
        if response.status() == reqwest::StatusCode::CONFLICT {
            return Ok(ChangeOutcome::Refused(
                refusal(response, "the ERP refused to change the document").await,
            ));
        }
        let document: ErpDocument = classify(response)
            .await?
            .json()
            .await
            // Applied or not, we cannot tell: the same change is sent again.
            .map_err(|e| ErpError::Unavailable {
                reason: format!("unreadable change answer: {e}"),
                retry_after: None,
            })?;
        Ok(ChangeOutcome::Applied(document))
    }
}

/// A reference as one path segment (ERP references are plain, but nothing promises it).
fn urlencoding(reference: &str) -> String {
    reference
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_reference_is_one_path_segment() {
        assert_eq!(super::urlencoding("SO-0000001"), "SO-0000001");
        assert_eq!(super::urlencoding("a/b c"), "a%2Fb%20c");
    }
}
