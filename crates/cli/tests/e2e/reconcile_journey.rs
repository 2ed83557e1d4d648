//! After the ERP document, the rest of the journey on the real chain: ERP shipments told
//! to the Centra simulator by fulfilment feedback, then changed in Centra behind Ferry's
//! back — a shipment gone, its tracking number gone, a shipment made twice — and a
//! shipment the warehouse gave no tracking number. `ferry reconcile run` finds each with
//! its cause, owner and money, times every step against the brand's targets, and closes
//! what was put right at the next run.

use std::time::Duration;

use ferry::reconcile::month_report;
use ferry::stack::{Stack, StackOptions};
use ferry_reconciler::report::Period;
use ferry_reconciler::timeliness::Step;
use ferry_sim_centra::OrderMix;
use ferry_sim_erp::ShipRequest;
use ferry_testing::TestEnv;

use super::reconcile_run::run_json;

/// Waits until Centra has a shipped shipment for each of `orders`.
async fn shipped_in_centra(stack: &Stack, orders: &[i64]) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let done = stack.centra.state.ops(|o| {
            orders
                .iter()
                .all(|n| o.shipments_of(*n).iter().any(|s| s.is_shipped))
        });
        if done {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "Centra has the shipments"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The (order, cause, owner) of each variance, and every money figure.
fn causes(found: &[serde_json::Value]) -> Vec<(i64, String, String)> {
    let mut got: Vec<(i64, String, String)> = found
        .iter()
        .map(|v| {
            assert!(
                v["money_minor"].as_i64().is_some_and(|m| m > 0),
                "the goods shipped are money at stake: {v}"
            );
            (
                v["order"].as_i64().expect("an order"),
                v["cause"].as_str().expect("cause").to_owned(),
                v["owner"].as_str().expect("owner").to_owned(),
            )
        })
        .collect();
    got.sort();
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shipments_are_checked_against_centra_and_every_step_is_timed() {
    let env = TestEnv::new().await;
    let mut config = env.config();
    config.reconciler.grace = Duration::ZERO;
    let options = StackOptions {
        tenant: "acme".into(),
        seed: 51,
        centra_requests_per_10s: 1000,
        fulfilment: ferry_config::FulfilmentConfig {
            poll_interval: Duration::from_millis(200),
            capture: true,
            ..Default::default()
        },
        targets: ferry_config::TargetsConfig {
            shipped_within: Duration::from_secs(1),
            ..Default::default()
        },
        ..StackOptions::default()
    };
    let stack = Stack::start(config, options).await.expect("stack starts");
    let config = (*stack.config).clone();
    let store = env.store().await;
    let numbers = stack.centra.generate(
        5,
        &OrderMix {
            bundle_pct: 0,
            cancellation_pct: 0,
            markets: vec![1],
            ..OrderMix::default()
        },
    );
    let posted =
        ferry_testing::wait_for_state(&store, "acme", "posted", 5, Duration::from_secs(60)).await;
    assert_eq!(posted, 5);
    for (i, n) in numbers.iter().enumerate() {
        stack
            .erp
            .ship(ShipRequest {
                external_ref: n.to_string(),
                lines: None,
                carrier: Some("PostNord".into()),
                // The last: the warehouse gives no tracking number.
                tracking_number: (i < 4).then(|| format!("PN-{n}")),
            })
            .expect("shipped in the ERP");
    }
    shipped_in_centra(&stack, &numbers[..4]).await;

    // Behind Ferry's back, in Centra: a shipment gone, a tracking number gone, a shipment
    // made a second time.
    let (gone, untracked, twice) = (numbers[0], numbers[1], numbers[2]);
    let removed = stack.centra.state.ops_mut(|o| {
        let id = o.shipments_of(gone)[0].id;
        let removed = o.shipments.remove(&id).expect("the shipment");
        let id = o.shipments_of(untracked)[0].id;
        if let Some(s) = o.shipments.get_mut(&id) {
            s.tracking_number = None;
        }
        let mut copy = o.shipments_of(twice)[0].clone();
        copy.id = 9_000_000;
        copy.number = format!("{twice}-9");
        o.shipments.insert(copy.id, copy);
        removed
    });
    // Past the brand's target for the shipment without a tracking number.
    tokio::time::sleep(Duration::from_millis(1_500)).await;

    let (found, summary, _) = run_json(&config, "acme").await;
    let cs = "customer_service".to_owned();
    assert_eq!(
        causes(&found),
        vec![
            (gone, "shipment_not_in_centra".into(), cs.clone()),
            (untracked, "tracking_missing".into(), cs.clone()),
            (twice, "duplicate_shipment".into(), cs.clone()),
            (numbers[4], "tracking_missing".into(), cs.clone()),
        ]
    );
    assert_eq!(summary["checked"], 5);
    assert!(
        summary["late"].as_i64().is_some_and(|n| n >= 1),
        "the shipment without tracking is late: {summary}"
    );
    let reconciler_kinds = |open: Vec<ferry_store::ExceptionRow>| {
        let mut k: Vec<(Option<i64>, String)> = open
            .into_iter()
            .filter(|e| e.service == "reconciler")
            .map(|e| (e.order_number, e.kind))
            .collect();
        k.sort();
        k
    };
    let open = store.open_exceptions("acme").await.expect("exceptions");
    assert_eq!(
        reconciler_kinds(open),
        vec![
            (Some(gone), "shipment_not_in_centra".into()),
            (Some(untracked), "tracking_missing".into()),
            (Some(twice), "duplicate_centra_shipment".into()),
            (Some(numbers[4]), "tracking_missing".into()),
        ]
    );

    // Every step is timed in the month-end report: posted for all five, shipped, e-mailed
    // and captured for the four Centra has (as Ferry's ledger timed them).
    let order = stack.centra.state.order(gone).expect("order");
    let month = Period::month(order.order_date.get(..7).expect("a date")).expect("month");
    let report = month_report(&store, "acme", month).await.expect("report");
    let timed = |step: Step| {
        report
            .timeliness
            .iter()
            .find(|t| t.step == step)
            .map(|t| (t.timed, t.late))
            .expect("step")
    };
    // Orders of other months in the simulator's year: at least these.
    assert!(timed(Step::Posted).0 >= 1);
    let all_months: u64 = {
        let mut n = 0;
        for m in 1..=12 {
            let p = Period::month(&format!("{}-{m:02}", month.first.format("%Y"))).expect("m");
            let r = month_report(&store, "acme", p).await.expect("report");
            n += r
                .timeliness
                .iter()
                .filter(|t| t.step == Step::Shipped)
                .map(|t| t.timed)
                .sum::<u64>();
        }
        n
    };
    assert_eq!(all_months, 4, "four shipments reached Centra by the ledger");

    // Put right in Centra: the shipment back, its tracking number back, the copy removed.
    // The warehouse still has not given the last one's tracking number.
    stack.centra.state.ops_mut(|o| {
        o.shipments.insert(removed.id, removed);
        let id = o.shipments_of(untracked)[0].id;
        if let Some(s) = o.shipments.get_mut(&id) {
            s.tracking_number = Some(format!("PN-{untracked}"));
        }
        o.shipments.remove(&9_000_000);
    });
    let (found, _, _) = run_json(&config, "acme").await;
    assert_eq!(
        causes(&found),
        vec![(numbers[4], "tracking_missing".into(), cs.clone())]
    );
    let open = store.open_exceptions("acme").await.expect("exceptions");
    assert_eq!(
        reconciler_kinds(open),
        vec![(Some(numbers[4]), "tracking_missing".into())]
    );

    stack.shutdown().await;
    env.cleanup().await;
}
