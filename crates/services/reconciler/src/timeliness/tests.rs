use std::collections::BTreeMap;

use chrono::{Duration, TimeZone};
use proptest::prelude::*;

use super::*;

fn at(minutes: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 30, 10, 0, 0)
        .single()
        .expect("time")
        + Duration::minutes(minutes)
}

fn targets() -> Targets {
    Targets {
        posted: Duration::minutes(15),
        shipped: Duration::minutes(60),
        captured: Duration::minutes(60),
        send_email: true,
        capture: true,
    }
}

pub(crate) fn shipment(
    shipped: i64,
    sent: Option<i64>,
    email: bool,
    captured: bool,
) -> ShipmentRow {
    ShipmentRow {
        tenant: "acme".into(),
        erp_shipment_id: format!("SH-{shipped}"),
        order_number: 7,
        state: if sent.is_some() {
            ShipmentState::Sent
        } else {
            ShipmentState::WaitingTracking
        },
        items: sqlx_json(BTreeMap::from([("SKU-1".to_owned(), 1)])),
        carrier: Some("PostNord".into()),
        tracking_number: sent.map(|_| "TRK-1".to_owned()),
        erp_shipped_at: Some(at(shipped).to_rfc3339()),
        centra_shipment_id: sent.map(|_| 1),
        centra_completed_at: sent.map(at),
        email_sent: email,
        captured,
        attempts: 1,
        first_seen_at: at(shipped),
    }
}

fn sqlx_json<T>(t: T) -> ferry_store::fulfilment::Json<T> {
    ferry_store::fulfilment::Json(t)
}

fn times(accepted: i64, posted: Option<i64>) -> Times {
    Times {
        accepted_at: at(accepted),
        posted_at: posted.map(at),
        should_post: true,
    }
}

#[test]
fn every_step_in_time_is_timed_and_none_is_late() {
    let s = shipment(100, Some(110), true, true);
    let t = timing(&times(0, Some(2)), &[(&s, true)], &targets(), at(500));
    assert_eq!(
        t,
        Timing {
            posted_s: Some(120),
            shipped_s: Some(600),
            email_s: Some(600),
            captured_s: Some(600),
            late: vec![],
        }
    );
}

#[test]
fn a_slow_post_and_a_slow_shipment_are_late() {
    let s = shipment(100, Some(200), true, true);
    let t = timing(&times(0, Some(16)), &[(&s, true)], &targets(), at(500));
    assert_eq!(
        t.late,
        vec![Step::Posted, Step::Shipped, Step::Email, Step::Captured]
    );
    assert_eq!(t.shipped_s, Some(6000));
}

#[test]
fn a_step_not_done_is_late_only_once_its_target_has_passed() {
    let unposted = timing(&times(0, None), &[], &targets(), at(14));
    assert_eq!(unposted.late, vec![]);
    let unposted = timing(&times(0, None), &[], &targets(), at(16));
    assert_eq!(unposted.late, vec![Step::Posted]);
    // Shipped by the ERP at minute 100, not in Centra yet.
    let waiting = shipment(100, None, false, false);
    let early = timing(
        &times(0, Some(1)),
        &[(&waiting, false)],
        &targets(),
        at(130),
    );
    assert_eq!(early.late, vec![]);
    let t = timing(
        &times(0, Some(1)),
        &[(&waiting, false)],
        &targets(),
        at(161),
    );
    assert_eq!(t.late, vec![Step::Shipped, Step::Email, Step::Captured]);
    assert_eq!(t.shipped_s, None);
}

#[test]
fn what_the_brand_does_not_ask_for_is_never_late() {
    let quiet = Targets {
        send_email: false,
        capture: false,
        ..targets()
    };
    let s = shipment(100, Some(110), false, false);
    let t = timing(&times(0, Some(1)), &[(&s, false)], &quiet, at(10_000));
    assert_eq!(
        (t.email_s, t.captured_s, t.late.clone()),
        (None, None, vec![])
    );
    // Captured by hand since: Centra says so, without a time.
    let t = timing(&times(0, Some(1)), &[(&s, true)], &targets(), at(10_000));
    assert_eq!(t.late, vec![Step::Email]);
}

#[test]
fn half_a_bundle_and_a_cancelled_order_are_not_timed() {
    let mut merged = shipment(100, None, false, false);
    merged.state = ShipmentState::Merged;
    let cancelled = Times {
        should_post: false,
        ..times(0, None)
    };
    let t = timing(&cancelled, &[(&merged, false)], &targets(), at(10_000));
    assert_eq!(t, Timing::default());
}

#[test]
fn a_bare_erp_date_is_timed_from_when_ferry_saw_the_shipment() {
    let mut s = shipment(100, Some(110), true, true);
    s.erp_shipped_at = Some("2026-11-30".into());
    assert_eq!(erp_shipped_at(&s), at(100));
}

proptest! {
    /// A step is late exactly when it took longer than its target.
    #[test]
    fn late_is_exactly_over_the_target(posted in 0i64..60, shipped in 0i64..180) {
        let s = shipment(100, Some(100 + shipped), true, true);
        let t = timing(&times(0, Some(posted)), &[(&s, true)], &targets(), at(1_000));
        prop_assert_eq!(t.late.contains(&Step::Posted), posted > 15);
        prop_assert_eq!(t.late.contains(&Step::Shipped), shipped > 60);
        prop_assert_eq!(t.late.contains(&Step::Captured), shipped > 60);
        prop_assert_eq!(t.posted_s, Some(posted * 60));
    }
}
