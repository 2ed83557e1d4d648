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
    // The console's day figures, counted as the reconciler counts them after a pass,
    // say the same as the report: every step's orders timed and late.
    store
        .refresh_reconciliation_days(
            "acme",
            month.first,
            month.last,
            &ferry_reconciler::service::completeness_causes(),
        )
        .await
        .expect("counted");
    let (days, counted) = store
        .reconciliation_days("acme", month.first, month.last)
        .await
        .expect("the day figures");
    assert!(counted.is_some());
    for (i, step) in Step::ALL.iter().enumerate() {
        let sum = |pick: fn(&ferry_store::reconciliation::DayFigures) -> &Vec<i64>| {
            days.iter().map(|d| pick(d)[i]).sum::<i64>() as u64
        };
        assert_eq!(
            (sum(|d| &d.timed), sum(|d| &d.late)),
            timed(*step),
            "{step:?} as the report counts it"
        );
    }
    assert_eq!(
        days.iter().map(|d| d.checked).sum::<i64>() as u64,
        report.standing.checked,
        "checked as the report counts"
    );
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

/// The stock variances of a run, as (SKU in the detail, owner, order).
fn stock_lines(found: &[serde_json::Value]) -> Vec<serde_json::Value> {
    found
        .iter()
        .filter(|v| v["cause"] == "stock_drift")
        .cloned()
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stock_drift_is_listed_per_sku_and_clears_when_centra_is_put_right() {
    use super::inventory::{catalogue_skus, options, set_erp, wait_fta};

    let env = TestEnv::new().await;
    let mut options = options(61);
    // The pusher's own drift check would correct Centra: the reconciler looks alone.
    options.inventory.drift_interval = Duration::ZERO;
    let stack = Stack::start(env.config(), options)
        .await
        .expect("stack starts");
    let config = (*stack.config).clone();
    let store = env.store().await;
    let skus = catalogue_skus(&stack, 3);
    let levels: Vec<(&str, i64)> = skus.iter().map(|s| (s.as_str(), 100)).collect();
    set_erp(&stack, &levels);
    let at = |n: i64| skus.iter().map(|s| (s.clone(), n)).collect();
    wait_fta(&stack, &at(100), Duration::from_secs(15)).await;
    // Pushed and recorded.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while sqlx::query_scalar::<_, i64>(
        "SELECT count(*) FROM stock_levels WHERE tenant = 'acme' AND pushed_sellable = 100",
    )
    .fetch_one(store.pool())
    .await
    .expect("count")
        < 3
    {
        assert!(tokio::time::Instant::now() < deadline, "pushes recorded");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (found, _, _) = run_json(&config, "acme").await;
    assert!(stock_lines(&found).is_empty(), "no drift: {found:?}");

    // By hand in Centra: 30 more of one size, 30 fewer of another, 2 more of a third
    // (within the brand's 5 units).
    let set = |levels: [i64; 3]| {
        stack.centra.state.ops_mut(|o| {
            for (sku, physical) in skus.iter().zip(levels) {
                let size = o.size_by_sku(sku).expect("known SKU");
                o.set_stock(1, "by hand", false, &[(size, physical)]);
            }
        })
    };
    set([130, 70, 102]);
    let (found, summary, _) = run_json(&config, "acme").await;
    let drift = stock_lines(&found);
    assert_eq!(drift.len(), 2, "{drift:#?}");
    for (sku, words) in [
        (&skus[0], "30 more than Ferry expects"),
        (&skus[1], "30 fewer than Ferry expects"),
    ] {
        let line = drift
            .iter()
            .find(|l| l["erp_reference"] == format!("1:{sku}"))
            .unwrap_or_else(|| panic!("{sku} in {drift:#?}"));
        assert_eq!(line["order"], serde_json::Value::Null, "{line}");
        assert_eq!(line["owner"], "operations");
        assert_eq!(line["erp_reference"], format!("1:{sku}"));
        let detail = line["detail"].as_str().expect("detail");
        assert!(
            detail.contains(sku.as_str()) && detail.contains(words),
            "{detail}"
        );
    }
    assert_eq!(summary["variances"], 2);
    let mut open: Vec<String> = store
        .open_exceptions("acme")
        .await
        .expect("exceptions")
        .into_iter()
        .filter(|e| e.kind == "stock_drift")
        .map(|e| {
            assert_eq!(e.owner, "operations");
            e.dedupe_key
        })
        .collect();
    open.sort();
    let mut want = vec![format!("sku:1:{}", skus[0]), format!("sku:1:{}", skus[1])];
    want.sort();
    assert_eq!(open, want);

    // Put right: the drift closes, its exceptions resolve, and the month's report lists
    // it as first found, cleared.
    set([100, 100, 100]);
    let (found, _, _) = run_json(&config, "acme").await;
    assert!(stock_lines(&found).is_empty(), "{found:?}");
    assert!(
        store
            .open_exceptions("acme")
            .await
            .expect("exceptions")
            .iter()
            .all(|e| e.kind != "stock_drift")
    );
    let month = Period::month(&chrono::Utc::now().format("%Y-%m").to_string()).expect("month");
    let report = month_report(&store, "acme", month).await.expect("report");
    let mut listed: Vec<(&str, i64, i64, bool)> = report
        .stock_drift
        .iter()
        .map(|d| (d.sku.as_str(), d.expected, d.centra, d.cleared_at.is_some()))
        .collect();
    listed.sort();
    let mut want = vec![
        (skus[0].as_str(), 100, 130, true),
        (skus[1].as_str(), 100, 70, true),
    ];
    want.sort();
    assert_eq!(listed, want);

    stack.shutdown().await;
    env.cleanup().await;
}
