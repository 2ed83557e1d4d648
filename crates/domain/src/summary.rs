//! The `--format summary` JSON of `ferry transform`, exactly as the contract shows it.

use serde::Serialize;

use crate::transform::{LineKind, SalesOrder};

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary<'a> {
    pub order: i64,
    pub status: &'static str,
    pub currency: &'a str,
    pub lines: Vec<SummaryLine<'a>>,
    pub totals: SummaryTotals,
    pub exceptions: Vec<SummaryException<'a>>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SummaryLine<'a> {
    pub kind: LineKind,
    pub centra_line_id: Option<i64>,
    pub sku: Option<&'a str>,
    pub erp_item: Option<&'a str>,
    pub quantity: i64,
    pub tax_rate_percent: String,
    pub gross_minor: i64,
    pub tax_minor: i64,
    pub net_minor: i64,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SummaryTotals {
    pub gross_minor: i64,
    pub tax_minor: i64,
    pub net_minor: i64,
}

#[derive(Debug, Serialize)]
pub struct SummaryException<'a> {
    pub kind: &'static str,
    pub owner: &'static str,
    pub message: &'a str,
}

impl<'a> Summary<'a> {
    pub fn of(order: &'a SalesOrder) -> Self {
        Summary {
            order: order.order_number,
            status: order.release.as_str(),
            currency: &order.currency,
            lines: order
                .lines
                .iter()
                .map(|l| SummaryLine {
                    kind: l.kind,
                    centra_line_id: l.centra_line_id,
                    sku: l.sku.as_deref(),
                    erp_item: l.erp_item.as_deref(),
                    quantity: l.quantity,
                    tax_rate_percent: l.tax_rate.normalize().to_string(),
                    gross_minor: l.gross,
                    tax_minor: l.tax,
                    net_minor: l.net,
                })
                .collect(),
            totals: SummaryTotals {
                gross_minor: order.totals.gross,
                tax_minor: order.totals.tax,
                net_minor: order.totals.net,
            },
            exceptions: order
                .problems
                .iter()
                .map(|p| SummaryException {
                    kind: p.kind.as_str(),
                    owner: p.kind.owner().as_str(),
                    message: &p.message,
                })
                .collect(),
        }
    }

    /// Pretty JSON with a trailing newline, byte for byte like the contract's examples.
    pub fn to_pretty_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).unwrap_or_else(|e| {
            // Serialising plain structs of strings and integers cannot fail; say so loudly if it does.
            format!("{{\"error\": \"{e}\"}}")
        });
        s.push('\n');
        s
    }
}
