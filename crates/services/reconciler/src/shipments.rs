//! Every ERP shipment is one Centra shipment with its tracking number: the ERP's shipments
//! as the fulfilment ledger recorded them (the ERP's shipment feed) against the shipments
//! Centra holds for the order now. Pure, like the order comparison.

use chrono::{DateTime, Utc};
use ferry_centra::CentraShipment;
use ferry_store::fulfilment::{ShipmentRow, ShipmentState};

use crate::compare::{Cause, ExpectedLine, Variance};
use crate::timeliness::erp_shipped_at;

/// One order's shipments checked: a variance per ERP shipment that Centra does not hold
/// as one shipment with its tracking number, once `shipped_within` has passed since the
/// ERP shipped it (before that, Ferry may still be telling Centra). `lines` are what
/// Centra charged, for the money a shipment carries.
pub fn check_shipments(
    order: i64,
    currency: &str,
    lines: &[ExpectedLine],
    erp: &[ShipmentRow],
    centra: &[CentraShipment],
    shipped_within: chrono::Duration,
    now: DateTime<Utc>,
) -> Vec<Variance> {
    let mut found = Vec::new();
    for row in erp {
        // Half a bundle: nothing to tell Centra until the rest ships.
        if row.state == ShipmentState::Merged || now - erp_shipped_at(row) <= shipped_within {
            continue;
        }
        let erp_tracking = row.tracking_number.as_deref().filter(|t| !t.is_empty());
        let matched: Vec<&CentraShipment> = centra
            .iter()
            .filter(|c| {
                Some(c.id) == row.centra_shipment_id
                    || erp_tracking.is_some() && c.tracking_number.as_deref() == erp_tracking
            })
            .collect();
        let variance = |cause: Cause, detail: String| Variance {
            order,
            cause,
            owner: cause.owner(),
            money_minor: value(lines, &row.items),
            currency: currency.to_owned(),
            detail,
            erp_reference: Some(row.erp_shipment_id.clone()),
        };
        let shipment = &row.erp_shipment_id;
        match matched.as_slice() {
            [] if erp_tracking.is_none() => found.push(variance(
                Cause::TrackingMissing,
                format!("ERP shipment {shipment} has no tracking number: Centra was not told"),
            )),
            [] => found.push(variance(
                Cause::ShipmentNotInCentra,
                format!(
                    "ERP shipment {shipment} (tracking {}) is not in Centra",
                    erp_tracking.unwrap_or_default()
                ),
            )),
            [one] => {
                let tracking = one.tracking_number.as_deref().filter(|t| !t.is_empty());
                if !one.is_shipped || tracking.is_none() || tracking != erp_tracking {
                    found.push(variance(
                        Cause::TrackingMissing,
                        format!(
                            "Centra shipment {} is {} with tracking {:?}; the ERP's is {:?}",
                            one.number,
                            if one.is_shipped {
                                "shipped"
                            } else {
                                "not shipped"
                            },
                            tracking.unwrap_or(""),
                            erp_tracking.unwrap_or("")
                        ),
                    ));
                }
            }
            many => found.push(variance(
                Cause::DuplicateShipment,
                format!(
                    "ERP shipment {shipment} is {} shipments in Centra: {}",
                    many.len(),
                    many.iter()
                        .map(|c| c.number.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )),
        }
    }
    found
}

/// What the shipped units were charged (gross, minor units): each item's units at the
/// price per unit Centra charged for it. Floor division: never more than was charged.
fn value(lines: &[ExpectedLine], items: &std::collections::BTreeMap<String, i64>) -> i64 {
    items
        .iter()
        .map(|(item, units)| {
            let (quantity, gross) = lines
                .iter()
                .filter(|l| l.kind == ferry_erp::ReadLineKind::Item && l.erp_item == *item)
                .fold((0i64, 0i64), |(q, g), l| {
                    (q + l.quantity, g + l.gross_minor)
                });
            if quantity <= 0 {
                return 0;
            }
            let v = i128::from(gross) * i128::from(*units) / i128::from(quantity);
            i64::try_from(v).unwrap_or(i64::MAX)
        })
        .sum()
}

#[cfg(test)]
mod tests;
