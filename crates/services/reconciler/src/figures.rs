//! One order's figures as each source holds them — what Centra charged, what the ERP's
//! documents hold, what Ferry posted — recorded with each check so the month-end report
//! adds up recorded facts, and regenerating a period gives the same figures.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use ferry_domain::{Currency, LineKind, Release, SalesOrder, Snapshot};
use ferry_erp::{DocumentState, ReadDocument};
use ferry_store::LedgerRow;
use serde::{Deserialize, Serialize};

/// Minor units of the order's currency throughout.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Figures {
    pub centra: CentraFigures,
    /// The ERP's active documents for the order; `None` when there are none.
    pub erp: Option<ErpFigures>,
    /// What Ferry posted (the ledger's totals of a posted order); `None` when not posted.
    pub ledger: Option<LedgerFigures>,
    /// How long each step took, and which were late (recorded before this existed: none).
    #[serde(default)]
    pub timing: crate::timeliness::Timing,
}

/// What Centra charged, after the brand's rules (vouchers and bundles allocated).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CentraFigures {
    pub gross: i64,
    pub net: i64,
    pub tax: i64,
    /// Shipping and handling charged (gross).
    pub shipping: i64,
    /// Discounts and vouchers applied, as Centra reports them (positive).
    pub discounts: i64,
    /// Net and tax by normalised rate in percent ("25", "5.5").
    pub tax_by_rate: BTreeMap<String, RateFigures>,
    pub cancelled: bool,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RateFigures {
    pub net: i64,
    pub tax: i64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErpFigures {
    pub documents: i64,
    pub gross: i64,
    pub tax: i64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerFigures {
    pub gross: i64,
    pub tax: i64,
}

impl Figures {
    /// The figures of one order from its three sources.
    pub fn of(
        snapshot: &Snapshot,
        order: &SalesOrder,
        row: Option<&LedgerRow>,
        documents: &[ReadDocument],
    ) -> Figures {
        let mut tax_by_rate: BTreeMap<String, RateFigures> = BTreeMap::new();
        for line in &order.lines {
            let rate = tax_by_rate
                .entry(line.tax_rate.normalize().to_string())
                .or_default();
            rate.net += line.net;
            rate.tax += line.tax;
        }
        let discounts = Currency::from_code(&order.currency).map_or(0, |c| {
            snapshot
                .discounts_applied
                .iter()
                .filter_map(|d| ferry_domain::snapshot::Money::get(&d.value))
                .filter_map(|v| c.to_minor(v.abs()).ok())
                .sum()
        });
        let active: Vec<&ReadDocument> = documents
            .iter()
            .filter(|d| d.state != DocumentState::Cancelled)
            .collect();
        Figures {
            centra: CentraFigures {
                gross: order.totals.gross,
                net: order.totals.net,
                tax: order.totals.tax,
                shipping: order
                    .lines
                    .iter()
                    .filter(|l| l.kind != LineKind::Item)
                    .map(|l| l.gross)
                    .sum(),
                discounts,
                tax_by_rate,
                cancelled: order.release == Release::Cancelled,
            },
            erp: (!active.is_empty()).then(|| ErpFigures {
                documents: active.len() as i64,
                gross: active.iter().map(|d| d.gross_minor).sum(),
                tax: active.iter().map(|d| d.tax_minor).sum(),
            }),
            ledger: row.filter(|r| r.state == "posted").map(|r| LedgerFigures {
                gross: r.gross_minor.unwrap_or_default(),
                tax: r.tax_minor.unwrap_or_default(),
            }),
            timing: crate::timeliness::Timing::default(),
        }
    }
}

/// Centra's order date (`2026-11-03T10:00:00+01:00` or `2026-11-03 10:00:00`): the day as
/// Centra wrote it, so an order belongs to the month the brand sees it in.
pub fn order_day(order_date: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(order_date.get(..10)?, "%Y-%m-%d").ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_order_day_is_the_day_centra_wrote() {
        let day = NaiveDate::from_ymd_opt(2026, 11, 30);
        assert_eq!(order_day("2026-11-30T23:59:00+01:00"), day);
        assert_eq!(order_day("2026-11-30 23:59:00"), day);
        assert_eq!(order_day("30/11/2026"), None);
        assert_eq!(order_day(""), None);
    }
}
