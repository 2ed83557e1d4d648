use chrono::{Duration, TimeZone};
use ferry_erp::ReadLineKind;

use super::*;
use crate::timeliness::tests::shipment;

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 30, 10, 0, 0)
        .single()
        .expect("time")
        + Duration::minutes(500)
}

/// Two units of SKU-1 charged 250.00 together, and shipping.
fn lines() -> Vec<ExpectedLine> {
    vec![
        ExpectedLine {
            kind: ReadLineKind::Item,
            erp_item: "SKU-1".into(),
            quantity: 2,
            gross_minor: 25_000,
            tax_minor: 5_000,
        },
        ExpectedLine {
            kind: ReadLineKind::Shipping,
            erp_item: "SHIP".into(),
            quantity: 1,
            gross_minor: 4_900,
            tax_minor: 980,
        },
    ]
}

fn centra(id: i64, tracking: Option<&str>, shipped: bool) -> CentraShipment {
    CentraShipment {
        id,
        number: format!("7-{id}"),
        is_shipped: shipped,
        is_captured: false,
        shipped_at: None,
        tracking_number: tracking.map(str::to_owned),
        lines: vec![],
    }
}

fn check(erp: &[ShipmentRow], c: &[CentraShipment]) -> Vec<(Cause, i64)> {
    check_shipments(7, "SEK", &lines(), erp, c, Duration::minutes(60), now())
        .into_iter()
        .map(|v| (v.cause, v.money_minor))
        .collect()
}

#[test]
fn one_erp_shipment_as_one_centra_shipment_with_its_tracking_is_no_variance() {
    let erp = shipment(100, Some(110), true, false);
    assert_eq!(check(&[erp], &[centra(1, Some("TRK-1"), true)]), vec![]);
}

#[test]
fn a_shipment_centra_lacks_is_found_with_what_its_units_were_charged() {
    let erp = shipment(100, Some(110), true, false);
    // Not made in Centra (another id, another tracking number).
    assert_eq!(
        check(&[erp], &[centra(9, Some("OTHER"), true)]),
        vec![(Cause::ShipmentNotInCentra, 12_500)]
    );
}

#[test]
fn tracking_missing_or_different_in_centra_is_found() {
    let erp = shipment(100, Some(110), true, false);
    assert_eq!(
        check(std::slice::from_ref(&erp), &[centra(1, None, true)]),
        vec![(Cause::TrackingMissing, 12_500)]
    );
    assert_eq!(
        check(
            std::slice::from_ref(&erp),
            &[centra(1, Some("TRK-2"), true)]
        ),
        vec![(Cause::TrackingMissing, 12_500)]
    );
    assert_eq!(
        check(&[erp], &[centra(1, Some("TRK-1"), false)]),
        vec![(Cause::TrackingMissing, 12_500)]
    );
    // The ERP never gave one: Centra was not told, and the warehouse must give it.
    let waiting = shipment(100, None, false, false);
    assert_eq!(
        check(&[waiting], &[]),
        vec![(Cause::TrackingMissing, 12_500)]
    );
}

#[test]
fn one_erp_shipment_twice_in_centra_is_a_duplicate() {
    let erp = shipment(100, Some(110), true, false);
    assert_eq!(
        check(
            &[erp],
            &[
                centra(1, Some("TRK-1"), true),
                centra(2, Some("TRK-1"), true)
            ]
        ),
        vec![(Cause::DuplicateShipment, 12_500)]
    );
}

#[test]
fn a_recent_shipment_and_half_a_bundle_are_not_judged() {
    let recent = shipment(470, None, false, false);
    let mut merged = shipment(100, None, false, false);
    merged.state = ShipmentState::Merged;
    assert_eq!(check(&[recent, merged], &[]), vec![]);
}

#[test]
fn shipment_numbers_name_their_order() {
    assert_eq!(centra(3, None, true).order_number(), Some(7));
    let odd = CentraShipment {
        number: "x".into(),
        ..centra(3, None, true)
    };
    assert_eq!(odd.order_number(), None);
}
