//! The comparison's inputs from their sources: what Centra charged, as the ERP should hold
//! it (the transform's sales order of Centra's current snapshot), and what the ledger says
//! Ferry did.

use ferry_domain::{ItemMap, LineKind, Release, Rules, SalesOrder, Snapshot, transform};
use ferry_erp::{ReadDocument, ReadLineKind};
use ferry_store::LedgerRow;

use crate::compare::{Clock, Expected, ExpectedLine, LedgerView, Verdict, reconcile};

/// The verdict on one order the ledger holds: Centra's current `snapshot` through the
/// tenant's rules, its ledger `row`, and the ERP's `documents` under its number; with what
/// Centra charged (for its currency).
pub fn judge(
    snapshot: &Snapshot,
    rules: &Rules,
    items: &dyn ItemMap,
    row: &LedgerRow,
    documents: &[ReadDocument],
    now: chrono::DateTime<chrono::Utc>,
    grace: chrono::Duration,
) -> (Expected, Verdict) {
    let charged = expected(&transform(snapshot, rules, items));
    let clock = Clock {
        now,
        accepted_at: row.first_accepted_at.unwrap_or(row.received_at),
        grace,
    };
    let verdict = reconcile(&charged, Some(&ledger_view(row)), documents, clock);
    (charged, verdict)
}

/// What the ledger row says Ferry did. `held_for` is left to the caller, which knows the
/// order's open exceptions.
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
        fingerprint: order.fingerprint(),
    }
}

#[cfg(test)]
mod tests {
    use ferry_domain::NoItems;

    use super::*;

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
        assert_eq!(e.fingerprint, order.fingerprint());
    }
}
