//! The verdict on one order, from three sources: what Centra charged (the sales order the
//! transform makes of Centra's current snapshot), what the ledger says Ferry did, and what
//! the ERP holds now (its documents read back). Pure: no I/O, so every rule is tested on
//! its own and a sweep of a million orders is a loop over this function.
//!
//! Every difference gets a [`Cause`] — which says who acts ([`Cause::owner`]) — and the
//! money at stake, in the order's currency.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use ferry_domain::{ExceptionKind, Owner};
use ferry_erp::{DocumentState, ReadDocument, ReadLineKind};
use serde::{Deserialize, Serialize};

/// Why an order is not as it should be in the ERP. The names are the stable, documented
/// `cause` of `ferry reconcile run --json` and of the month-end report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Cause {
    /// Past its grace, the order is not in the ERP and Ferry has not posted it.
    Missing,
    /// Ferry posted it, and the ERP no longer has it (deleted there).
    DeletedInErp,
    /// Two or more ERP documents for one Centra order.
    Duplicate,
    /// An ERP document no Centra order explains (entered by hand, or another system's).
    Unexplained,
    /// Lines, prices or tax changed in the ERP after Ferry posted what Centra charged.
    AlteredInErp,
    /// The ERP recorded something else than Ferry sent (it said so when Ferry posted).
    RecordedDifferently,
    /// Only tax differs, by at most one minor unit per line, with no recorded rounding line.
    Rounding,
    /// The ERP document is in another currency than the Centra order.
    Currency,
    /// Cancelled on one side only: in Centra and not in the ERP, or the other way round.
    OneSidedCancellation,
    /// Centra's order changed after posting and the ERP still holds the earlier version.
    AmendmentNotApplied,
    /// Held past its grace because an item, currency or tax rate has no ERP mapping.
    UnmappedItem,
    /// The ERP shipped, and past the brand's target Centra has no shipment for it.
    ShipmentNotInCentra,
    /// A shipment in Centra has no tracking number, or another than the ERP's, or the ERP
    /// has given none past the brand's target.
    TrackingMissing,
    /// One ERP shipment is more than one shipment in Centra.
    DuplicateShipment,
    /// Centra's sellable stock of a SKU differs from what Ferry expects by more than the
    /// brand's threshold (no order: `order` is 0, the SKU is in the detail).
    StockDrift,
}

impl Cause {
    pub const ALL: [Cause; 15] = [
        Cause::Missing,
        Cause::DeletedInErp,
        Cause::Duplicate,
        Cause::Unexplained,
        Cause::AlteredInErp,
        Cause::RecordedDifferently,
        Cause::Rounding,
        Cause::Currency,
        Cause::OneSidedCancellation,
        Cause::AmendmentNotApplied,
        Cause::UnmappedItem,
        Cause::ShipmentNotInCentra,
        Cause::TrackingMissing,
        Cause::DuplicateShipment,
        Cause::StockDrift,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            Cause::Missing => "missing",
            Cause::DeletedInErp => "deleted_in_erp",
            Cause::Duplicate => "duplicate",
            Cause::Unexplained => "unexplained",
            Cause::AlteredInErp => "altered_in_erp",
            Cause::RecordedDifferently => "recorded_differently",
            Cause::Rounding => "rounding",
            Cause::Currency => "currency",
            Cause::OneSidedCancellation => "one_sided_cancellation",
            Cause::AmendmentNotApplied => "amendment_not_applied",
            Cause::UnmappedItem => "unmapped_item",
            Cause::ShipmentNotInCentra => "shipment_not_in_centra",
            Cause::TrackingMissing => "tracking_missing",
            Cause::DuplicateShipment => "duplicate_shipment",
            Cause::StockDrift => "stock_drift",
        }
    }

    /// The exception a variance of this cause raises; `None` where another service already
    /// raises one for the same problem (an unmapped item: the transform's `unmapped_sku`).
    pub fn exception_kind(&self) -> Option<ExceptionKind> {
        Some(match self {
            Cause::Missing => ExceptionKind::OrderMissingInErp,
            Cause::DeletedInErp => ExceptionKind::ErpDocumentDeleted,
            Cause::Duplicate => ExceptionKind::DuplicateErpDocument,
            Cause::AlteredInErp => ExceptionKind::ErpDocumentAltered,
            // The writer raises the same when the ERP answers so at posting.
            Cause::RecordedDifferently => ExceptionKind::ErpTotalsMismatch,
            Cause::Rounding => ExceptionKind::TaxRoundingDifference,
            Cause::Currency => ExceptionKind::ErpCurrencyMismatch,
            Cause::OneSidedCancellation => ExceptionKind::OneSidedCancellation,
            Cause::AmendmentNotApplied => ExceptionKind::AmendmentNotApplied,
            Cause::Unexplained => ExceptionKind::UnexplainedErpDocument,
            Cause::ShipmentNotInCentra => ExceptionKind::ShipmentNotInCentra,
            Cause::TrackingMissing => ExceptionKind::TrackingMissing,
            Cause::DuplicateShipment => ExceptionKind::DuplicateCentraShipment,
            Cause::StockDrift => ExceptionKind::StockDrift,
            Cause::UnmappedItem => return None,
        })
    }

    /// Whether a variance of this cause is about one order (not an ERP document no order
    /// explains, nor a SKU's stock).
    pub fn concerns_order(&self) -> bool {
        !matches!(self, Cause::Unexplained | Cause::StockDrift)
    }

    /// A cause that makes an order incomplete in the ERP (absent, there twice, or there
    /// when it should not be), as opposed to there once but inaccurate.
    pub fn is_completeness(&self) -> bool {
        matches!(
            self,
            Cause::Missing
                | Cause::DeletedInErp
                | Cause::Duplicate
                | Cause::Unexplained
                | Cause::OneSidedCancellation
                | Cause::UnmappedItem
        )
    }

    /// The team that acts: finance for what the books hold, operations for master data
    /// and stock, customer service for what the customer was (or was not) told,
    /// engineering for what Ferry failed to do.
    pub fn owner(&self) -> Owner {
        match self {
            Cause::Missing => Owner::Engineering,
            Cause::UnmappedItem => Owner::Operations,
            Cause::DeletedInErp
            | Cause::Duplicate
            | Cause::Unexplained
            | Cause::AlteredInErp
            | Cause::RecordedDifferently
            | Cause::Rounding
            | Cause::Currency
            | Cause::AmendmentNotApplied => Owner::Finance,
            Cause::OneSidedCancellation
            | Cause::ShipmentNotInCentra
            | Cause::TrackingMissing
            | Cause::DuplicateShipment => Owner::CustomerService,
            Cause::StockDrift => Owner::Operations,
        }
    }
}

/// One line of what Centra charged, as the ERP should hold it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpectedLine {
    pub kind: ReadLineKind,
    pub erp_item: String,
    pub quantity: i64,
    pub gross_minor: i64,
    pub tax_minor: i64,
}

/// What Centra charged for one order, as the ERP should hold it (from the transform).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    pub order_number: i64,
    pub currency: String,
    pub lines: Vec<ExpectedLine>,
    pub gross_minor: i64,
    pub tax_minor: i64,
    /// Cancelled in Centra: nothing (or a cancelled document) should be in the ERP.
    pub cancelled: bool,
    /// Not yet releasable in Centra (on hold there, or awaiting confirmation or payment
    /// under the brand's policy): its absence from the ERP is right, for now.
    pub awaiting_centra: bool,
    /// The fingerprint of these lines (`SalesOrder::fingerprint`), to compare with the one
    /// the ledger recorded when Ferry posted.
    pub fingerprint: String,
}

/// What the ledger says Ferry did with the order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerView {
    /// `held`, `rejected`, `cancelled`, `ready`, `posting`, `possibly_created`, `posted`.
    pub state: String,
    /// Why it is held, when it is (an unmapped item, say): the exception kind's name.
    pub held_for: Option<String>,
    pub fingerprint: String,
    pub erp_reference: Option<String>,
    /// The ERP's totals when Ferry posted (what the create answered).
    pub erp_gross_minor: Option<i64>,
    pub erp_tax_minor: Option<i64>,
    /// The explicit rounding line the connector recorded at posting.
    pub erp_rounding_minor: i64,
}

/// When an order should have settled: Centra accepted it at `accepted_at`, and it is given
/// `grace` to reach the ERP before its absence is a variance.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    pub now: DateTime<Utc>,
    pub accepted_at: DateTime<Utc>,
    pub grace: chrono::Duration,
}

impl Clock {
    fn settled(&self) -> bool {
        self.now - self.accepted_at >= self.grace
    }
}

/// One difference found, with who acts and what is at stake.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Variance {
    pub order: i64,
    pub cause: Cause,
    pub owner: Owner,
    /// What is at stake, in minor units of `currency` (always ≥ 0).
    pub money_minor: i64,
    pub currency: String,
    /// What differs, for the person who acts (no personal data).
    pub detail: String,
    /// The ERP document it concerns, when there is one.
    pub erp_reference: Option<String>,
}

/// The verdict on one order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// In the ERP once, whole and as charged (or, cancelled, rightly absent).
    Reconciled,
    /// Not settled yet: inside its grace, nothing to say.
    Pending,
    Variances(Vec<Variance>),
}

impl Verdict {
    /// The verdict's name as recorded and counted: `reconciled`, `pending`, `variance`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Verdict::Reconciled => "reconciled",
            Verdict::Pending => "pending",
            Verdict::Variances(_) => "variance",
        }
    }

    pub fn variances(&self) -> &[Variance] {
        match self {
            Verdict::Variances(v) => v,
            _ => &[],
        }
    }
}

/// The verdict on one Centra order: `documents` are every ERP document carrying its number.
pub fn reconcile(
    expected: &Expected,
    ledger: Option<&LedgerView>,
    documents: &[ReadDocument],
    clock: Clock,
) -> Verdict {
    let variance =
        |cause: Cause, money: i64, detail: String, doc: Option<&ReadDocument>| Variance {
            order: expected.order_number,
            cause,
            owner: cause.owner(),
            money_minor: money.abs(),
            currency: expected.currency.clone(),
            detail,
            erp_reference: doc.map(|d| d.reference.clone()),
        };
    let active: Vec<&ReadDocument> = documents
        .iter()
        .filter(|d| d.state != DocumentState::Cancelled)
        .collect();
    let posted = ledger.is_some_and(|l| l.state == "posted");

    if expected.cancelled {
        return match active.as_slice() {
            [] => Verdict::Reconciled,
            docs => Verdict::Variances(
                docs.iter()
                    .map(|d| {
                        variance(
                            Cause::OneSidedCancellation,
                            d.gross_minor,
                            "cancelled in Centra, still active in the ERP".into(),
                            Some(d),
                        )
                    })
                    .collect(),
            ),
        };
    }

    let Some(first) = documents.first() else {
        if posted {
            return Verdict::Variances(vec![variance(
                Cause::DeletedInErp,
                expected.gross_minor,
                "posted by Ferry, no longer in the ERP".into(),
                None,
            )]);
        }
        if !clock.settled() || expected.awaiting_centra {
            return Verdict::Pending;
        }
        let held_unmapped = ledger.is_some_and(|l| {
            l.held_for
                .as_deref()
                .is_some_and(|k| k.starts_with("unmapped_"))
        });
        let (cause, detail) = if held_unmapped {
            (
                Cause::UnmappedItem,
                "held: an item, currency or tax rate has no ERP mapping",
            )
        } else {
            (Cause::Missing, "not in the ERP")
        };
        let state = ledger.map_or("never seen by Ferry", |l| l.state.as_str());
        return Verdict::Variances(vec![variance(
            cause,
            expected.gross_minor,
            format!("{detail} (Ferry: {state})"),
            None,
        )]);
    };

    let mut found = Vec::new();
    if active.len() > 1 {
        for extra in &active[1..] {
            found.push(variance(
                Cause::Duplicate,
                extra.gross_minor,
                format!("{} documents for one order", active.len()),
                Some(extra),
            ));
        }
    }
    let Some(doc) = active.first().copied() else {
        return Verdict::Variances(vec![variance(
            Cause::OneSidedCancellation,
            expected.gross_minor,
            "cancelled in the ERP, active in Centra".into(),
            Some(first),
        )]);
    };
    if doc.currency != expected.currency {
        found.push(variance(
            Cause::Currency,
            expected.gross_minor,
            format!("the ERP holds it in {}", doc.currency),
            Some(doc),
        ));
        return Verdict::Variances(found);
    }
    if let Some(difference) = difference(expected, ledger, doc) {
        let cause = if ledger.is_some_and(|l| l.fingerprint != expected.fingerprint) {
            Cause::AmendmentNotApplied
        } else if difference.tax_only_within_rounding {
            Cause::Rounding
        } else if ledger.is_some_and(|l| {
            l.erp_gross_minor.is_some_and(|g| g != expected.gross_minor)
                || l.erp_tax_minor
                    .is_some_and(|t| t != expected.tax_minor && l.erp_rounding_minor == 0)
        }) {
            Cause::RecordedDifferently
        } else {
            Cause::AlteredInErp
        };
        // A change Ferry has not applied yet is not a variance while it may still be.
        if cause == Cause::AmendmentNotApplied && !clock.settled() && found.is_empty() {
            return Verdict::Pending;
        }
        found.push(variance(
            cause,
            difference.money,
            difference.detail,
            Some(doc),
        ));
    }
    if found.is_empty() {
        Verdict::Reconciled
    } else {
        Verdict::Variances(found)
    }
}

/// How an ERP document differs from what was charged.
#[derive(Debug, PartialEq, Eq)]
struct Difference {
    money: i64,
    tax_only_within_rounding: bool,
    detail: String,
}

/// Lines are matched by (kind, ERP item) and compared on quantity, gross and tax; the
/// document's totals must be what was charged, except for the explicit rounding line the
/// ledger recorded at posting (the only difference the posting policy allows).
fn difference(
    expected: &Expected,
    ledger: Option<&LedgerView>,
    doc: &ReadDocument,
) -> Option<Difference> {
    type Key = (u8, String);
    let key = |kind: ReadLineKind, item: &str| -> Key { (kind as u8, item.to_owned()) };
    let mut want: BTreeMap<Key, (i64, i64, i64)> = BTreeMap::new();
    for l in &expected.lines {
        let e = want.entry(key(l.kind, &l.erp_item)).or_default();
        *e = (e.0 + l.quantity, e.1 + l.gross_minor, e.2 + l.tax_minor);
    }
    let mut have: BTreeMap<Key, (i64, i64, i64)> = BTreeMap::new();
    let mut rounding = 0;
    for l in &doc.lines {
        if l.kind == ReadLineKind::Rounding {
            rounding += l.gross_minor;
            continue;
        }
        let e = have.entry(key(l.kind, &l.erp_item)).or_default();
        *e = (e.0 + l.quantity, e.1 + l.gross_minor, e.2 + l.tax_minor);
    }
    let recorded_rounding = ledger.map_or(0, |l| l.erp_rounding_minor);
    let mut details = Vec::new();
    let mut lines_differ = false;
    let mut tax_lines = 0i64;
    for k in want
        .keys()
        .chain(have.keys().filter(|k| !want.contains_key(*k)))
    {
        let w = want.get(k).copied().unwrap_or_default();
        let h = have.get(k).copied().unwrap_or_default();
        let item = &k.1;
        if !want.contains_key(k) {
            lines_differ = true;
            details.push(format!("line {item} is in the ERP only"));
        } else if !have.contains_key(k) {
            lines_differ = true;
            details.push(format!("line {item} is missing in the ERP"));
        } else if w.0 != h.0 {
            lines_differ = true;
            details.push(format!(
                "line {item}: quantity {} in the ERP, {} charged",
                h.0, w.0
            ));
        } else if h != w {
            let (net_off, tax_diff) = ((h.1 - h.2) - (w.1 - w.2), h.2 - w.2);
            // A minor unit of tax, taken from the net (tax-inclusive prices) or added to it
            // (an ERP that computes tax from net prices), is rounding; anything else is not.
            if tax_diff.abs() <= 1 && (net_off == 0 || net_off + tax_diff == 0) {
                tax_lines += 1;
            } else {
                lines_differ = true;
            }
            details.push(format!(
                "line {item}: {} ({} tax) in the ERP, {} ({} tax) charged",
                h.1, h.2, w.1, w.2
            ));
        }
    }
    let gross_off = doc.gross_minor - expected.gross_minor;
    let tax_total_off = doc.tax_minor - expected.tax_minor;
    // Tax an ERP computes per document, balanced by the recorded rounding line, is the
    // posting policy at work: the totals are what was charged.
    let explained = gross_off == 0 && rounding == recorded_rounding && rounding != 0;
    if !lines_differ && gross_off == 0 && (tax_total_off == 0 || explained) {
        return None;
    }
    if gross_off != 0 {
        details.push(format!(
            "total {} in the ERP, {} charged",
            doc.gross_minor, expected.gross_minor
        ));
    } else if tax_total_off != 0 && !explained {
        details.push(format!(
            "tax {} in the ERP, {} charged",
            doc.tax_minor, expected.tax_minor
        ));
    }
    if details.is_empty() {
        return None;
    }
    Some(Difference {
        money: if gross_off != 0 {
            gross_off
        } else {
            tax_total_off
        },
        tax_only_within_rounding: !lines_differ
            && gross_off == 0
            && tax_total_off.abs() <= tax_lines.max(1)
            && rounding == 0,
        detail: details.join("; "),
    })
}

#[cfg(test)]
mod tests;
