//! Credit notes for returns (`POST /api/credit-notes`, ADR 0037): idempotent by the
//! credit's external reference (also sent as `Idempotency-Key`); `409` is the ERP refusing
//! to credit the order (cancelled, credited beyond what it charged, period closed), a
//! permanent answer for finance. An order's notes are listed (`GET /api/credit-notes`) to
//! find one an attempt whose answer was lost may have made.

use async_trait::async_trait;
use ferry_erp::{CreditNotes, CreditOutcome, ErpDocument, ErpError, PostCredit, PostLine};

use crate::changes::refusal;
use crate::{HttpErp, classify, read_json, transport};

#[derive(serde::Serialize)]
struct CreditBody<'a> {
    external_ref: &'a str,
    order_erp_reference: &'a str,
    currency: &'a str,
    lines: &'a [PostLine],
    restock: bool,
}

#[async_trait]
impl CreditNotes for HttpErp {
    async fn create_credit_note(&self, credit: &PostCredit) -> Result<CreditOutcome, ErpError> {
        let response = self
            .request(reqwest::Method::POST, "/api/credit-notes")
            .header("Idempotency-Key", &credit.external_ref)
            .json(&CreditBody {
                external_ref: &credit.external_ref,
                order_erp_reference: &credit.order_erp_reference,
                currency: &credit.currency,
                lines: &credit.lines,
                restock: credit.restock,
            })
            .send()
            .await
            .map_err(transport)?;
        if response.status() == reqwest::StatusCode::CONFLICT {
            return Ok(CreditOutcome::Refused(
                refusal(response, "the ERP refused the credit note").await,
            ));
        }
        let document: ErpDocument = classify(response)
            .await?
            .json()
            .await
            // Booked or not, we cannot tell: the same credit is sent again.
            .map_err(|e| ErpError::Unavailable {
                reason: format!("unreadable credit note answer: {e}"),
                retry_after: None,
            })?;
        Ok(CreditOutcome::Credited(document))
    }

    async fn find_credit_note(&self, credit: &PostCredit) -> Result<Option<ErpDocument>, ErpError> {
        let response = self
            .request(reqwest::Method::GET, "/api/credit-notes")
            .query(&[("order_ref", credit.order_ref.as_str())])
            .send()
            .await
            .map_err(transport)?;
        let listed: CreditNotesListed = read_json(response, "credit notes list").await?;
        Ok(listed
            .credit_notes
            .into_iter()
            .find(|n| n.external_ref == credit.external_ref))
    }
}

/// `GET /api/credit-notes?order_ref=`: each note in the create answer's shape (its lines,
/// also listed, are not needed to know it exists).
#[derive(serde::Deserialize)]
struct CreditNotesListed {
    credit_notes: Vec<ErpDocument>,
}
