//! The comparison's inputs from their sources: what Centra charged, as the ERP should hold
//! it (the transform's sales order of Centra's current snapshot), and what the ledger says
//! Ferry did.

use chrono::{DateTime, NaiveDate, Utc};
use ferry_domain::{ItemMap, LineKind, Release, Rules, SalesOrder, Snapshot, transform};
use ferry_erp::{ReadDocument, ReadLineKind};
use ferry_store::LedgerRow;

use crate::compare::{Clock, Expected, ExpectedLine, LedgerView, Verdict, reconcile};
use crate::figures::{Figures, order_day};

/// The check of one order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Judgement {
    /// What Centra charged, as the ERP should hold it.
    pub expected: Expected,
    pub verdict: Verdict,
    pub figures: Figures,
    /// Centra's order date.
    pub order_day: Option<NaiveDate>,
}

/// The verdict on one order: Centra's current `snapshot` through the tenant's rules, its
/// ledger `row` (`None`: Ferry never saw the order), and the ERP's `documents` under its
/// number.
pub fn judge(
    snapshot: &Snapshot,
    rules: &Rules,
    items: &dyn ItemMap,
    row: Option<&LedgerRow>,
    documents: &[ReadDocument],
    now: DateTime<Utc>,
    grace: chrono::Duration,
) -> Judgement {
    let order = transform(snapshot, rules, items);
    let expected = expected(&order);
    let accepted_at = match row {
        Some(row) => row.first_accepted_at.unwrap_or(row.received_at),
        // Never seen by Ferry: the grace runs from when the customer placed it (an order
        // whose date cannot be read is given its grace from now).
        None => placed_at(&order.order_date).unwrap_or(now),
    };
    let clock = Clock {
        now,
        accepted_at,
        grace,
    };
    let mut ledger = row.map(ledger_view);
    // What blocks the order now, as the transform finds it (an unmapped item, say).
    if let Some(ledger) = ledger.as_mut()
        && order.release == Release::Rejected
    {
        ledger.held_for = order.problems.first().map(|p| p.kind.as_str().to_owned());
    }
    let verdict = reconcile(&expected, ledger.as_ref(), documents, clock);
    Judgement {
        figures: Figures::of(snapshot, &order, row, documents),
        order_day: order_day(&order.order_date),
        expected,
        verdict,
    }
}

/// When Centra's order was placed: `2026-11-30T10:00:00+01:00`, or `2026-11-30 10:00:00`
/// (read as UTC: Centra's documentation does not say which zone that form is in).
pub fn placed_at(order_date: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(order_date)
        .map(|d| d.with_timezone(&Utc))
        .ok()
        .or_else(|| {
            chrono::NaiveDateTime::parse_from_str(order_date, "%Y-%m-%d %H:%M:%S")
                .ok()
                .map(|d| d.and_utc())
        })
}

/// What the ledger row says Ferry did. `held_for` is left to the caller, which knows what
/// blocks the order.
pub fn ledger_view(row: &LedgerRow) -> LedgerView {
    LedgerView {
        state: row.state.clone(),
        held_for: None,
        fingerprint: row.order_fingerprint.clone(),
        erp_reference: row.erp_reference.clone(),
        erp_gross_minor: row.erp_gross_minor,
        erp_tax_minor: row.erp_tax_minor,
        erp_rounding_minor: row.erp_rounding_minor.unwrap_or(0),
    }
}

/// The expected ERP document for `order` (Centra's snapshot through the transform). An
/// item without an ERP mapping is expected under an empty item code: it cannot match any
/// ERP line, and the ledger says the order is held for it.
pub fn expected(order: &SalesOrder) -> Expected {
    Expected {
        order_number: order.order_number,
        currency: order.currency.clone(),
        lines: order
            .lines
            .iter()
            .map(|l| ExpectedLine {
                kind: match l.kind {
                    LineKind::Item => ReadLineKind::Item,
                    LineKind::Shipping => ReadLineKind::Shipping,
                    LineKind::Handling => ReadLineKind::Handling,
                },
                erp_item: l.erp_item.clone().unwrap_or_default(),
                quantity: l.quantity,
                gross_minor: l.gross,
                tax_minor: l.tax,
            })
            .collect(),
        gross_minor: order.totals.gross,
        tax_minor: order.totals.tax,
        cancelled: order.release == Release::Cancelled,
        awaiting_centra: order.release == Release::Held,
        fingerprint: order.fingerprint(),
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use ferry_domain::NoItems;

    use super::*;

    #[test]
    fn an_order_is_placed_when_centra_says_in_either_form() {
        let utc = Utc.with_ymd_and_hms(2026, 11, 30, 9, 0, 0).single();
        assert_eq!(placed_at("2026-11-30T10:00:00+01:00"), utc);
        assert_eq!(placed_at("2026-11-30 09:00:00"), utc);
        assert_eq!(placed_at("yesterday"), None);
    }

    fn example(name: &str) -> Vec<u8> {
        let path = format!(
            "{}/../../../tests/contracts/examples/{name}.json",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    #[test]
    fn the_contract_example_is_expected_with_what_the_customer_paid() {
        let snapshot = Snapshot::parse(&example("01-sek-simple")).expect("snapshot");
        let rules = Rules {
            erp_item_equals_sku: true,
            ..Rules::default()
        };
        let order = transform(&snapshot, &rules, &NoItems);
        let e = expected(&order);
        assert_eq!((e.currency.as_str(), e.gross_minor), ("SEK", 184_795));
        assert_eq!(
            e.lines.iter().map(|l| l.gross_minor).sum::<i64>(),
            e.gross_minor
        );
        assert_eq!(
            e.lines.iter().map(|l| l.tax_minor).sum::<i64>(),
            e.tax_minor
        );
        assert!(e.lines.iter().all(|l| !l.erp_item.is_empty()));
        assert!(!e.cancelled);
        assert!(!e.awaiting_centra);
        assert_eq!(e.fingerprint, order.fingerprint());
    }
}
