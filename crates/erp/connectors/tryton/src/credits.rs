//! Credit notes for returns (ADR 0037) as Tryton makes them: a **return sale** — a sale of
//! the returned lines at negative quantities for the original sale's party and addresses —
//! which Tryton turns into a return shipment (the warehouse receives the goods) and a
//! credit note. Its reference is the credit's (`<order>-R<return id>`), so a repeat finds
//! it; it is balanced to the refunded amount with a rounding line and taken as far as the
//! posting policy takes sales.

use async_trait::async_trait;
use ferry_erp::{CreditNotes, CreditOutcome, ErpError, PostCredit};
use serde_json::{Value, json};

use crate::Tryton;

#[async_trait]
impl CreditNotes for Tryton {
    async fn create_credit_note(&self, credit: &PostCredit) -> Result<CreditOutcome, ErpError> {
        let reference = self.reference(&credit.external_ref);
        // Idempotent by reference, as sales are: an earlier attempt's return sale is
        // finished, never made twice.
        if let Some(id) = self.sale_id(&reference).await? {
            return self
                .finish(id, -credit.gross_minor)
                .await
                .map(CreditOutcome::Credited);
        }
        let Some(original) = self.sale_id(&self.reference(&credit.order_ref)).await? else {
            return Ok(CreditOutcome::Refused(format!(
                "Tryton has no sale for order {}",
                credit.order_ref
            )));
        };
        let rows = self
            .rpc
            .call(
                "model.sale.sale.read",
                vec![
                    json!([original]),
                    json!(["party", "invoice_address", "shipment_address", "state"]),
                ],
            )
            .await?;
        let row = rows
            .get(0)
            .ok_or_else(|| ErpError::Rejected(format!("Tryton sale {original} vanished")))?;
        if row["state"].as_str() == Some("cancelled") {
            return Ok(CreditOutcome::Refused(format!(
                "the sale of order {} is cancelled in Tryton: there is nothing to credit",
                credit.order_ref
            )));
        }
        let currency = self.currency(&credit.currency).await?;
        let lines = self.lines_of(&credit.lines, currency.digits, -1).await?;
        let sale = json!({
            "party": row["party"],
            "invoice_address": row["invoice_address"],
            "shipment_address": row["shipment_address"],
            "currency": currency.id,
            "reference": reference,
            "description": format!(
                "Return {} of Centra order {} ({}){}",
                credit.return_id,
                credit.order_ref,
                credit.date,
                if credit.restock { "" } else { ": not for resale" }
            ),
            "shipment_cost_method": Value::Null,
            "lines": [["create", lines]],
        });
        let id = self.create_one_sale(sale).await?;
        tracing::debug!(credit = %credit.external_ref, sale = id, "Tryton return sale created");
        self.finish(id, -credit.gross_minor)
            .await
            .map(CreditOutcome::Credited)
    }
}
