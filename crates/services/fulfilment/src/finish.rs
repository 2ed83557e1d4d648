//! Telling Centra: create the shipment (shipped, with the e-mail and capture the policy
//! asks for), or find and finish the one an earlier attempt left half-done, and what to do
//! when Centra refuses a step.

use ferry_centra::{CentraError, CentraShipment, NewShipment, UserMessage};
use ferry_domain::ExceptionKind;
use ferry_erp::ErpShipment;
use ferry_store::fulfilment::ShipmentState;

use crate::handle::{Feedback, Outcome, PassError};

impl Feedback {
    /// Creates the shipment in Centra. A refused capture does not hold the customer's
    /// e-mail back: the shipment goes without it and finance captures.
    pub(crate) async fn send(
        &self,
        s: &ErpShipment,
        order_id: &str,
        new: &NewShipment<'_>,
    ) -> Result<Outcome, PassError> {
        let number = new.order_number;
        self.spend_budget().await?;
        match self.centra.create_shipment(new).await {
            Ok(created) => {
                self.settle_sent(s, created.id, new.send_email, created.is_captured)
                    .await?;
                Ok(Outcome::Sent)
            }
            Err(CentraError::UserErrors(errors)) if new.capture => {
                // The capture may be what failed, perhaps after Centra created the shipment:
                // finish that one if it exists, else create it without the capture.
                let reason = join(&errors);
                let shipment = match self.existing_shipment(order_id, new).await? {
                    Some(existing) => self.complete_if_needed(existing, new).await?,
                    None => {
                        self.spend_budget().await?;
                        let without = NewShipment {
                            capture: false,
                            ..*new
                        };
                        refusal(self.centra.create_shipment(&without).await)?
                    }
                };
                match shipment {
                    Ok(shipment) => {
                        self.sent_without_capture(s, number, &shipment, &reason)
                            .await
                    }
                    Err(errors) => self.refused(s, number, &errors).await,
                }
            }
            Err(CentraError::UserErrors(errors)) => self.refused(s, number, &errors).await,
            Err(e) => Err(e.into()),
        }
    }

    /// The shipment Ferry may already have made for `new` in Centra (order `order_id`, the
    /// hash id): same tracking number and the same lines.
    pub(crate) async fn existing_shipment(
        &self,
        order_id: &str,
        new: &NewShipment<'_>,
    ) -> Result<Option<CentraShipment>, PassError> {
        Ok(self
            .centra
            .order_shipments(order_id)
            .await?
            .into_iter()
            .find(|c| {
                c.tracking_number.as_deref() == new.tracking_number
                    && same_lines(&c.lines, new.lines)
            }))
    }

    /// Finishes a shipment found in Centra: sent if it is not (with the customer's e-mail
    /// per policy), captured if the policy captures and it is not, then recorded as sent.
    pub(crate) async fn finish_existing(
        &self,
        s: &ErpShipment,
        existing: CentraShipment,
        new: &NewShipment<'_>,
    ) -> Result<Outcome, PassError> {
        let number = new.order_number;
        let shipment = match self.complete_if_needed(existing, new).await? {
            Ok(shipment) => shipment,
            Err(errors) => return self.refused(s, number, &errors).await,
        };
        if !new.capture || shipment.is_captured {
            self.settle_sent(s, shipment.id, new.send_email, shipment.is_captured)
                .await?;
            return Ok(Outcome::Sent);
        }
        self.spend_budget().await?;
        match self.centra.capture_shipment(shipment.id).await {
            Ok(captured) => {
                self.settle_sent(s, captured.id, new.send_email, captured.is_captured)
                    .await?;
                Ok(Outcome::Sent)
            }
            Err(CentraError::UserErrors(errors)) => {
                self.sent_without_capture(s, number, &shipment, &join(&errors))
                    .await
            }
            Err(e) => Err(e.into()),
        }
    }

    /// `shipment` itself when Centra has sent it, else the shipment completed now; the
    /// inner error is Centra refusing the completion.
    async fn complete_if_needed(
        &self,
        shipment: CentraShipment,
        new: &NewShipment<'_>,
    ) -> Result<Result<CentraShipment, Vec<UserMessage>>, PassError> {
        if shipment.is_shipped {
            return Ok(Ok(shipment));
        }
        self.spend_budget().await?;
        refusal(self.centra.complete_shipment(shipment.id, new).await)
    }

    async fn settle_sent(
        &self,
        s: &ErpShipment,
        centra_id: i64,
        email_sent: bool,
        captured: bool,
    ) -> Result<(), PassError> {
        self.store
            .settle_shipment(
                &self.tenant.id,
                &s.id,
                ShipmentState::Sent,
                Some(centra_id),
                email_sent,
                captured,
            )
            .await?;
        Ok(())
    }

    /// The shipment is sent but its payment was not captured: recorded as sent, and a
    /// `capture_failed` exception for finance.
    async fn sent_without_capture(
        &self,
        s: &ErpShipment,
        number: i64,
        shipment: &CentraShipment,
        reason: &str,
    ) -> Result<Outcome, PassError> {
        self.settle_sent(s, shipment.id, self.tenant.fulfilment.send_email, false)
            .await?;
        let message = format!(
            "Order {number} has shipped (shipment {} in Centra) but the payment could not be \
             captured: {reason}. Capture it by hand in Centra or with the payment provider.",
            shipment.number
        );
        self.record(
            s,
            number,
            ExceptionKind::CaptureFailed,
            message,
            reason.to_owned(),
        )
        .await?;
        Ok(Outcome::Sent)
    }

    async fn refused(
        &self,
        s: &ErpShipment,
        number: i64,
        errors: &[UserMessage],
    ) -> Result<Outcome, PassError> {
        let reason = join(errors);
        self.fail(
            s,
            number,
            ExceptionKind::ShipmentRefused,
            format!(
                "Centra refused the shipment of order {number} (ERP shipment {}): {reason}. The \
                 customer has not been told it shipped. Create the shipment in Centra by hand.",
                s.id
            ),
            reason.clone(),
        )
        .await
    }
}

/// Splits Centra's refusal (`userErrors`, the inner error) from failures to retry.
fn refusal<T>(result: Result<T, CentraError>) -> Result<Result<T, Vec<UserMessage>>, PassError> {
    match result {
        Ok(value) => Ok(Ok(value)),
        Err(CentraError::UserErrors(errors)) => Ok(Err(errors)),
        Err(e) => Err(e.into()),
    }
}

/// Centra's `userErrors` as one line.
fn join(errors: &[UserMessage]) -> String {
    errors
        .iter()
        .map(|e| e.message.as_str())
        .collect::<Vec<_>>()
        .join("; ")
}

fn same_lines(a: &[(i64, i64)], b: &[(i64, i64)]) -> bool {
    let mut a = a.to_vec();
    let mut b = b.to_vec();
    a.sort_unstable();
    b.sort_unstable();
    a == b
}
