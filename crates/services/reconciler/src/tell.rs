//! What the reconciler tells the teams: each variance as an exception in the owning
//! team's words, with the money at stake, and its resolution when a later check finds the
//! order fixed.

use ferry_domain::{ExceptionKind, NewException};
use ferry_runtime::{ExceptionSink, FeedError};
use ferry_store::Store;
use futures::{StreamExt as _, TryStreamExt as _};

use crate::compare::{Cause, Variance, Verdict};
use crate::service::SERVICE;

/// Exceptions recorded at once.
const RECORDED_IN_FLIGHT: usize = 16;

/// Raises an exception for each variance of a batch of verdicts and resolves the
/// reconciler's earlier ones for those orders that these checks no longer find (fixed in
/// the ERP), in one statement. A pending verdict says nothing either way.
pub async fn tell(
    store: &Store,
    sink: &dyn ExceptionSink,
    tenant: &str,
    verdicts: &[(i64, &Verdict)],
) -> Result<(), FeedError> {
    let mut keep = Vec::new();
    let mut judged = Vec::with_capacity(verdicts.len());
    let mut raised = Vec::new();
    for &(number, verdict) in verdicts {
        if *verdict == Verdict::Pending {
            continue;
        }
        judged.push(number);
        for variance in verdict.variances() {
            let Some(kind) = variance.cause.exception_kind() else {
                continue;
            };
            let exception = exception(tenant, kind, variance);
            keep.push(exception.key.clone());
            raised.push(exception);
        }
    }
    // Recorded a few at a time: each is a write and an announcement. By index: a closure
    // over borrowed items trips the Send check of the feed's future.
    futures::stream::iter(0..raised.len())
        .map(|i| sink.record(&raised[i]))
        .buffer_unordered(RECORDED_IN_FLIGHT)
        .try_collect::<Vec<_>>()
        .await
        .map_err(FeedError::transient)?;
    if judged.is_empty() {
        return Ok(());
    }
    let kinds: Vec<&str> = Cause::ALL
        .iter()
        .filter_map(Cause::exception_kind)
        .map(|k| k.as_str())
        .collect();
    store
        .resolve_orders_exceptions(
            tenant,
            &judged,
            &kinds,
            &keep,
            "the reconciler found the order in the ERP as Centra charged it",
        )
        .await
        .map_err(FeedError::transient)?;
    Ok(())
}

/// The exception for one variance, in the owning team's words.
pub fn exception(tenant: &str, kind: ExceptionKind, v: &Variance) -> NewException {
    let money = ferry_domain::Currency::from_code(&v.currency)
        .map(|c| c.format(v.money_minor))
        .unwrap_or_else(|| format!("{} {}", v.money_minor, v.currency));
    let order = v.order;
    let document = v.erp_reference.as_deref().unwrap_or("(none)");
    let message = match v.cause {
        Cause::Missing => format!(
            "Order {order} ({money}) is not in the ERP although it should be by now. Ferry has \
             not posted it: engineering must find where it stopped."
        ),
        Cause::DeletedInErp => format!(
            "Order {order} ({money}) was posted to the ERP and is no longer there: someone \
             deleted the sales order. Restore it, or record why the sale is void."
        ),
        Cause::Duplicate => format!(
            "Order {order} is in the ERP twice: sales order {document} ({money}) is a second \
             document for one sale. Cancel or delete the extra one."
        ),
        Cause::AlteredInErp => format!(
            "Sales order {document} for order {order} no longer matches what the customer was \
             charged ({money} difference): it was changed in the ERP. Correct it, or record \
             why the change is right."
        ),
        Cause::RecordedDifferently => format!(
            "Sales order {document} for order {order} was booked differently from what the \
             customer paid ({money} difference). Correct it in the ERP so the books match."
        ),
        Cause::Rounding => format!(
            "Sales order {document} for order {order} has {money} of tax rounded differently \
             from what the customer was charged, with no rounding line. Add one or correct \
             the tax."
        ),
        Cause::Currency => format!(
            "Sales order {document} for order {order} is in another currency than the \
             customer paid in ({money}). Correct its currency in the ERP."
        ),
        Cause::OneSidedCancellation => format!(
            "Order {order} ({money}) is cancelled on one side only — in Centra but not in the \
             ERP, or the other way round. Check with the customer which is right, then cancel \
             or restore the other."
        ),
        Cause::AmendmentNotApplied => format!(
            "Order {order} changed in Centra after it reached the ERP, and sales order \
             {document} still holds the earlier version ({money} difference). Apply the \
             change in the ERP."
        ),
        Cause::Unexplained => format!(
            "Sales order {document} ({money}) is in the ERP, but no Centra order Ferry knows \
             explains it (entered by hand, or by another system). Check it is a real sale; \
             if it duplicates a Centra order, cancel it."
        ),
        Cause::UnmappedItem => v.detail.clone(),
        Cause::ShipmentNotInCentra => format!(
            "The warehouse shipped order {order} (ERP shipment {document}, {money} of goods) \
             and Centra still has no shipment for it: the customer has had no shipping e-mail \
             and the payment may not be captured. Tell the customer, and create the shipment \
             in Centra with its tracking number."
        ),
        Cause::TrackingMissing => format!(
            "Order {order} shipped (ERP shipment {document}, {money} of goods) but the \
             customer cannot follow it: {}. Get the tracking number from the warehouse and \
             put it on the shipment in Centra.",
            v.detail
        ),
        Cause::DuplicateShipment => format!(
            "Order {order} shipped once (ERP shipment {document}) and is shipped more than \
             once in Centra: the customer may have had two e-mails, and a payment may be \
             captured twice ({money} each time). Remove the extra shipment in Centra and \
             check the payment."
        ),
        Cause::StockDrift => format!(
            "Centra's sellable stock of {document} is not what Ferry expects: {}. Customers \
             may be offered stock that is not there, or be refused stock that is. Find what \
             else changes this stock in Centra; Ferry's next stock sweep sets it again.",
            v.detail
        ),
    };
    NewException {
        tenant: tenant.to_owned(),
        kind,
        key: match v.cause {
            // The same problem the writer reports when the ERP answers so at posting.
            Cause::RecordedDifferently => format!("order:{order}:totals"),
            Cause::Unexplained => format!("erp:{document}"),
            // The inventory pusher's key for the same SKU: one exception, whoever finds it.
            Cause::StockDrift => format!("sku:{document}"),
            cause => format!("order:{order}:{}", cause.as_str()),
        },
        message,
        reason: v.detail.clone(),
        order_number: v.cause.concerns_order().then_some(order),
        // Stock carries no price Ferry knows.
        amount_minor: (v.cause != Cause::StockDrift).then_some(v.money_minor),
        currency: (v.cause != Cause::StockDrift).then(|| v.currency.clone()),
        service: SERVICE.to_owned(),
        source_subject: None,
        payload: serde_json::to_vec(v).unwrap_or_default(),
    }
}
