//! Exceptions: the failures Ferry cannot fix by retrying, each owned by a named team and
//! described in that team's words. See `docs/operations/exceptions.md`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The team that acts on an exception.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Owner {
    Finance,
    Operations,
    CustomerService,
    Engineering,
}

impl Owner {
    pub fn as_str(&self) -> &'static str {
        match self {
            Owner::Finance => "finance",
            Owner::Operations => "operations",
            Owner::CustomerService => "customer_service",
            Owner::Engineering => "engineering",
        }
    }
}

impl Owner {
    /// The team's name as people say it.
    pub fn team_name(&self) -> &'static str {
        match self {
            Owner::Finance => "Finance",
            Owner::Operations => "Operations",
            Owner::CustomerService => "Customer service",
            Owner::Engineering => "Engineering",
        }
    }
}

impl fmt::Display for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Info,
    Warning,
    Error,
    Critical,
}

impl Severity {
    pub fn as_str(&self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
            Severity::Critical => "critical",
        }
    }
}

/// Every kind of exception Ferry raises. The owner and default severity belong to the kind,
/// so two services can never disagree on who handles what.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExceptionKind {
    /// A Centra SKU has no ERP item.
    UnmappedSku,
    /// The order's currency is not one the tenant posts.
    UnmappedCurrency,
    /// A tax rate has no ERP tax code.
    UnmappedTaxRate,
    /// The snapshot's figures do not add up (Centra's totals versus its lines).
    SnapshotInconsistent,
    /// The snapshot is readable but lacks what an order needs.
    InvalidSnapshot,
    /// A message could not be decoded at all.
    PoisonMessage,
    /// A message kept failing with temporary errors until its delivery budget ran out.
    DeliveryExhausted,
    /// The ERP refused the sales order.
    ErpRejected,
    /// The ERP's totals differ from what the customer paid.
    ErpTotalsMismatch,
    /// The sales order Ferry posted was found cancelled in the ERP: the order is not booked.
    ErpDocumentCancelled,
    /// A change arrived for an order already in the ERP that the connector cannot apply.
    AmendmentNotApplied,
    /// Centra does not know an order that a notice named.
    OrderNotFound,
    /// The ERP shipped an order Ferry never posted.
    ShipmentForUnknownOrder,
    /// An ERP shipment carries items or quantities the order does not have.
    ShipmentQuantityMismatch,
    /// Centra refused a shipment (`userErrors`): the customer has not been told.
    ShipmentRefused,
    /// The order shipped but its payment could not be captured.
    CaptureFailed,
    /// A shipment has had no tracking number for longer than the tenant allows.
    TrackingMissing,
    /// Centra's sellable stock keeps differing from what Ferry set, even after a correction.
    StockDrift,
    /// Centra would not take a stock level (e.g. it does not know the SKU).
    StockRefused,
    /// A source Ferry reads (the ERP's shipment or stock feed, Centra's Events) refuses to
    /// be read for a reason retrying cannot fix: credentials or configuration.
    FeedFailed,
    /// One record from the ERP or a warehouse (a shipment file) could not be read; the feed
    /// went on without it.
    ErpRecordUnreadable,
    /// The reconciler: past its grace, a Centra order is not in the ERP and Ferry has not
    /// posted it.
    OrderMissingInErp,
    /// The reconciler: an order Ferry posted is no longer in the ERP.
    ErpDocumentDeleted,
    /// The reconciler: two or more ERP documents for one Centra order.
    DuplicateErpDocument,
    /// The reconciler: lines, prices or tax of a posted order were changed in the ERP.
    ErpDocumentAltered,
    /// The reconciler: only tax differs, by a minor unit per line, with no rounding line.
    TaxRoundingDifference,
    /// The reconciler: the ERP document is in another currency than the Centra order.
    ErpCurrencyMismatch,
    /// The reconciler: cancelled in Centra and active in the ERP, or the other way round.
    OneSidedCancellation,
    /// The reconciler: an ERP sales order no Centra order that Ferry knows explains.
    UnexplainedErpDocument,
    /// The reconciler: the ERP shipped, and past the brand's target Centra has no shipment
    /// for it (the customer has had no shipping e-mail).
    ShipmentNotInCentra,
    /// The reconciler: one ERP shipment is more than one shipment in Centra.
    DuplicateCentraShipment,
    /// A completed return that did not become a credit document in the ERP: its order
    /// never reached the ERP, the ERP refused the credit, or its connector cannot credit.
    ReturnNotCredited,
    /// A return refunds more than the order has left to refund (units or shipping).
    RefundExceedsPaid,
    /// A customer's change, or erasure request, that did not reach the ERP.
    CustomerNotSynced,
}

impl ExceptionKind {
    pub const ALL: [ExceptionKind; 34] = [
        ExceptionKind::UnmappedSku,
        ExceptionKind::UnmappedCurrency,
        ExceptionKind::UnmappedTaxRate,
        ExceptionKind::SnapshotInconsistent,
        ExceptionKind::InvalidSnapshot,
        ExceptionKind::PoisonMessage,
        ExceptionKind::DeliveryExhausted,
        ExceptionKind::ErpRejected,
        ExceptionKind::ErpTotalsMismatch,
        ExceptionKind::ErpDocumentCancelled,
        ExceptionKind::AmendmentNotApplied,
        ExceptionKind::OrderNotFound,
        ExceptionKind::ShipmentForUnknownOrder,
        ExceptionKind::ShipmentQuantityMismatch,
        ExceptionKind::ShipmentRefused,
        ExceptionKind::CaptureFailed,
        ExceptionKind::TrackingMissing,
        ExceptionKind::StockDrift,
        ExceptionKind::StockRefused,
        ExceptionKind::FeedFailed,
        ExceptionKind::ErpRecordUnreadable,
        ExceptionKind::OrderMissingInErp,
        ExceptionKind::ErpDocumentDeleted,
        ExceptionKind::DuplicateErpDocument,
        ExceptionKind::ErpDocumentAltered,
        ExceptionKind::TaxRoundingDifference,
        ExceptionKind::ErpCurrencyMismatch,
        ExceptionKind::OneSidedCancellation,
        ExceptionKind::UnexplainedErpDocument,
        ExceptionKind::ShipmentNotInCentra,
        ExceptionKind::DuplicateCentraShipment,
        ExceptionKind::ReturnNotCredited,
        ExceptionKind::RefundExceedsPaid,
        ExceptionKind::CustomerNotSynced,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            ExceptionKind::UnmappedSku => "unmapped_sku",
            ExceptionKind::UnmappedCurrency => "unmapped_currency",
            ExceptionKind::UnmappedTaxRate => "unmapped_tax_rate",
            ExceptionKind::SnapshotInconsistent => "snapshot_inconsistent",
            ExceptionKind::InvalidSnapshot => "invalid_snapshot",
            ExceptionKind::PoisonMessage => "poison_message",
            ExceptionKind::DeliveryExhausted => "delivery_exhausted",
            ExceptionKind::ErpRejected => "erp_rejected",
            ExceptionKind::ErpTotalsMismatch => "erp_totals_mismatch",
            ExceptionKind::ErpDocumentCancelled => "erp_document_cancelled",
            ExceptionKind::AmendmentNotApplied => "amendment_not_applied",
            ExceptionKind::OrderNotFound => "order_not_found",
            ExceptionKind::ShipmentForUnknownOrder => "shipment_for_unknown_order",
            ExceptionKind::ShipmentQuantityMismatch => "shipment_quantity_mismatch",
            ExceptionKind::ShipmentRefused => "shipment_refused",
            ExceptionKind::CaptureFailed => "capture_failed",
            ExceptionKind::TrackingMissing => "tracking_missing",
            ExceptionKind::StockDrift => "stock_drift",
            ExceptionKind::StockRefused => "stock_refused",
            ExceptionKind::FeedFailed => "feed_failed",
            ExceptionKind::ErpRecordUnreadable => "erp_record_unreadable",
            ExceptionKind::OrderMissingInErp => "order_missing_in_erp",
            ExceptionKind::ErpDocumentDeleted => "erp_document_deleted",
            ExceptionKind::DuplicateErpDocument => "duplicate_erp_document",
            ExceptionKind::ErpDocumentAltered => "erp_document_altered",
            ExceptionKind::TaxRoundingDifference => "tax_rounding_difference",
            ExceptionKind::ErpCurrencyMismatch => "erp_currency_mismatch",
            ExceptionKind::OneSidedCancellation => "one_sided_cancellation",
            ExceptionKind::UnexplainedErpDocument => "unexplained_erp_document",
            ExceptionKind::ShipmentNotInCentra => "shipment_not_in_centra",
            ExceptionKind::DuplicateCentraShipment => "duplicate_centra_shipment",
            ExceptionKind::ReturnNotCredited => "return_not_credited",
            ExceptionKind::RefundExceedsPaid => "refund_exceeds_paid",
            ExceptionKind::CustomerNotSynced => "customer_not_synced",
        }
    }

    /// The kind in the owning team's words, for notifications and the console.
    pub fn title(&self) -> &'static str {
        match self {
            ExceptionKind::UnmappedSku => "Items not mapped to an ERP item",
            ExceptionKind::UnmappedCurrency => "Orders in a currency the ERP is not set up for",
            ExceptionKind::UnmappedTaxRate => "Tax rates without an ERP tax code",
            ExceptionKind::SnapshotInconsistent => "Orders whose Centra totals do not add up",
            ExceptionKind::InvalidSnapshot => "Orders Centra sent incomplete",
            ExceptionKind::PoisonMessage => "Messages Ferry could not read",
            ExceptionKind::DeliveryExhausted => "Work that kept failing and was set aside",
            ExceptionKind::ErpRejected => "Orders the ERP refused",
            ExceptionKind::ErpTotalsMismatch => "ERP totals differ from what the customer paid",
            ExceptionKind::ErpDocumentCancelled => "Sales orders cancelled in the ERP",
            ExceptionKind::AmendmentNotApplied => "Order changes not applied in the ERP",
            ExceptionKind::OrderNotFound => "Orders Centra no longer knows",
            ExceptionKind::ShipmentForUnknownOrder => "Shipments for orders Ferry never posted",
            ExceptionKind::ShipmentQuantityMismatch => "Shipments that do not match their order",
            ExceptionKind::ShipmentRefused => "Shipments Centra refused (customer not told)",
            ExceptionKind::CaptureFailed => "Payments not captured after shipping",
            ExceptionKind::TrackingMissing => "Shipments without a tracking number",
            ExceptionKind::StockDrift => "Centra stock differs from the ERP",
            ExceptionKind::StockRefused => "Stock levels Centra refused",
            ExceptionKind::FeedFailed => "A feed from the ERP or Centra has stopped",
            ExceptionKind::ErpRecordUnreadable => "ERP records Ferry could not read",
            ExceptionKind::OrderMissingInErp => "Orders missing from the ERP",
            ExceptionKind::ErpDocumentDeleted => "Posted orders deleted from the ERP",
            ExceptionKind::DuplicateErpDocument => "Orders booked twice in the ERP",
            ExceptionKind::ErpDocumentAltered => "Posted orders changed in the ERP",
            ExceptionKind::TaxRoundingDifference => "Tax rounded differently in the ERP",
            ExceptionKind::ErpCurrencyMismatch => "ERP documents in the wrong currency",
            ExceptionKind::OneSidedCancellation => "Orders cancelled on one side only",
            ExceptionKind::UnexplainedErpDocument => "ERP sales orders no Centra order explains",
            ExceptionKind::ShipmentNotInCentra => "Shipped, but the customer has not been told",
            ExceptionKind::DuplicateCentraShipment => "Shipments told to Centra twice",
            ExceptionKind::ReturnNotCredited => "Returns not credited in the ERP",
            ExceptionKind::RefundExceedsPaid => "Refunds larger than what was paid",
            ExceptionKind::CustomerNotSynced => "Customer changes or erasures not in the ERP",
        }
    }

    pub fn owner(&self) -> Owner {
        match self {
            ExceptionKind::UnmappedSku
            | ExceptionKind::ShipmentForUnknownOrder
            | ExceptionKind::ShipmentQuantityMismatch
            | ExceptionKind::StockDrift
            | ExceptionKind::ErpRecordUnreadable
            | ExceptionKind::StockRefused => Owner::Operations,
            ExceptionKind::ShipmentRefused
            | ExceptionKind::TrackingMissing
            | ExceptionKind::ShipmentNotInCentra
            | ExceptionKind::DuplicateCentraShipment
            | ExceptionKind::OneSidedCancellation
            | ExceptionKind::CustomerNotSynced => Owner::CustomerService,
            ExceptionKind::CaptureFailed
            | ExceptionKind::ErpDocumentDeleted
            | ExceptionKind::DuplicateErpDocument
            | ExceptionKind::ErpDocumentAltered
            | ExceptionKind::TaxRoundingDifference
            | ExceptionKind::ErpCurrencyMismatch
            | ExceptionKind::UnexplainedErpDocument => Owner::Finance,
            ExceptionKind::UnmappedCurrency
            | ExceptionKind::UnmappedTaxRate
            | ExceptionKind::SnapshotInconsistent
            | ExceptionKind::ErpTotalsMismatch
            | ExceptionKind::ErpDocumentCancelled
            | ExceptionKind::AmendmentNotApplied
            | ExceptionKind::ReturnNotCredited
            | ExceptionKind::RefundExceedsPaid => Owner::Finance,
            ExceptionKind::InvalidSnapshot
            | ExceptionKind::PoisonMessage
            | ExceptionKind::DeliveryExhausted
            | ExceptionKind::ErpRejected
            | ExceptionKind::FeedFailed
            | ExceptionKind::OrderNotFound
            | ExceptionKind::OrderMissingInErp => Owner::Engineering,
        }
    }

    pub fn severity(&self) -> Severity {
        match self {
            ExceptionKind::PoisonMessage
            | ExceptionKind::DeliveryExhausted
            | ExceptionKind::ErpRejected
            | ExceptionKind::ErpTotalsMismatch
            | ExceptionKind::FeedFailed
            | ExceptionKind::ErpDocumentCancelled
            | ExceptionKind::OrderMissingInErp
            | ExceptionKind::ErpDocumentDeleted
            | ExceptionKind::DuplicateErpDocument
            | ExceptionKind::ErpCurrencyMismatch => Severity::Critical,
            ExceptionKind::OrderNotFound
            | ExceptionKind::TrackingMissing
            | ExceptionKind::TaxRoundingDifference => Severity::Warning,
            _ => Severity::Error,
        }
    }

    /// How long the owning team has to act before the exception is overdue, in hours.
    pub fn sla_hours(&self) -> u32 {
        match self {
            ExceptionKind::ErpRejected
            | ExceptionKind::DeliveryExhausted
            | ExceptionKind::FeedFailed
            | ExceptionKind::ShipmentRefused
            | ExceptionKind::OrderMissingInErp => 1,
            ExceptionKind::ShipmentQuantityMismatch
            | ExceptionKind::ShipmentNotInCentra
            | ExceptionKind::CaptureFailed
            | ExceptionKind::StockDrift
            | ExceptionKind::ErpRecordUnreadable
            | ExceptionKind::StockRefused => 4,
            ExceptionKind::ShipmentForUnknownOrder
            | ExceptionKind::TrackingMissing
            | ExceptionKind::DuplicateCentraShipment => 24,
            ExceptionKind::UnmappedSku
            | ExceptionKind::PoisonMessage
            | ExceptionKind::InvalidSnapshot
            | ExceptionKind::ErpTotalsMismatch
            | ExceptionKind::ErpDocumentCancelled
            | ExceptionKind::ErpDocumentDeleted
            | ExceptionKind::DuplicateErpDocument
            | ExceptionKind::ErpCurrencyMismatch
            | ExceptionKind::OneSidedCancellation => 4,
            ExceptionKind::UnmappedCurrency
            | ExceptionKind::UnmappedTaxRate
            | ExceptionKind::SnapshotInconsistent
            | ExceptionKind::AmendmentNotApplied
            | ExceptionKind::OrderNotFound
            | ExceptionKind::ErpDocumentAltered
            | ExceptionKind::TaxRoundingDifference
            | ExceptionKind::UnexplainedErpDocument
            | ExceptionKind::ReturnNotCredited
            | ExceptionKind::RefundExceedsPaid
            | ExceptionKind::CustomerNotSynced => 24,
        }
    }

    /// Whether the exception stops the order from reaching the ERP.
    pub fn blocks_order(&self) -> bool {
        !matches!(
            self,
            ExceptionKind::ErpTotalsMismatch
                | ExceptionKind::AmendmentNotApplied
                | ExceptionKind::ShipmentForUnknownOrder
                | ExceptionKind::ShipmentQuantityMismatch
                | ExceptionKind::ShipmentRefused
                | ExceptionKind::CaptureFailed
                | ExceptionKind::TrackingMissing
                | ExceptionKind::StockDrift
                | ExceptionKind::StockRefused
                | ExceptionKind::FeedFailed
                | ExceptionKind::ErpRecordUnreadable
                // What the reconciler finds is about what already happened: it never
                // holds an order back.
                | ExceptionKind::OrderMissingInErp
                | ExceptionKind::ErpDocumentDeleted
                | ExceptionKind::DuplicateErpDocument
                | ExceptionKind::ErpDocumentAltered
                | ExceptionKind::TaxRoundingDifference
                | ExceptionKind::ErpCurrencyMismatch
                | ExceptionKind::OneSidedCancellation
                | ExceptionKind::UnexplainedErpDocument
                | ExceptionKind::ShipmentNotInCentra
                | ExceptionKind::DuplicateCentraShipment
                // A return is about an order already in the ERP (or never to be).
                | ExceptionKind::ReturnNotCredited
                | ExceptionKind::RefundExceedsPaid
                | ExceptionKind::CustomerNotSynced
        )
    }
}

impl fmt::Display for ExceptionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ExceptionKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ExceptionKind::ALL
            .iter()
            .copied()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| format!("unknown exception kind {s:?}"))
    }
}

/// A new occurrence of an exception, before it is stored. Storage deduplicates on
/// (tenant, kind, key): the same problem seen again bumps a counter instead of a new row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewException {
    pub tenant: String,
    pub kind: ExceptionKind,
    /// What makes two occurrences "the same problem", e.g. `order:48170` or `sku:JKT-M`.
    pub key: String,
    /// Plain-language impact for the owning team.
    pub message: String,
    /// Technical reason for engineers.
    pub reason: String,
    pub order_number: Option<i64>,
    pub amount_minor: Option<i64>,
    pub currency: Option<String>,
    pub service: String,
    pub source_subject: Option<String>,
    pub payload: Vec<u8>,
}

impl NewException {
    pub fn owner(&self) -> Owner {
        self.kind.owner()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_and_have_the_contract_owners() {
        for kind in ExceptionKind::ALL {
            assert_eq!(kind.as_str().parse::<ExceptionKind>(), Ok(kind));
        }
        assert_eq!(ExceptionKind::UnmappedSku.owner(), Owner::Operations);
        assert_eq!(ExceptionKind::UnmappedCurrency.owner(), Owner::Finance);
        assert_eq!(ExceptionKind::UnmappedTaxRate.owner(), Owner::Finance);
        assert_eq!(ExceptionKind::SnapshotInconsistent.owner(), Owner::Finance);
        assert_eq!(ExceptionKind::InvalidSnapshot.owner(), Owner::Engineering);
    }
}
