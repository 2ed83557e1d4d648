//! The reconciler's judgement on the real chain: orders from the Centra simulator through
//! ingest, transform and the erp-writer into the ERP simulator, then judged from Centra's
//! current snapshot, the ledger and the ERP's documents read back through the HTTP
//! connector. A clean run has no variance (vouchers, bundles, handling, partly cancelled
//! lines included); each change planted in the ERP behind Ferry's back is found once, with
//! its cause and owner.

use std::collections::BTreeMap;
use std::time::Duration;

use ferry::stack::{Stack, StackOptions};
use ferry_centra::CentraClient;
use ferry_domain::{NoItems, Snapshot};
use ferry_erp::ReadBack;
use ferry_erp_http::HttpErp;
use ferry_reconciler::compare::{Cause, Verdict};
use ferry_reconciler::expected;
use ferry_sim_centra::OrderMix;
use ferry_sim_erp::Change;
use ferry_testing::TestEnv;
use secrecy::SecretString;

/// Every order's verdict, judged as the reconciler does.
async fn judge_all(
    stack: &Stack,
    store: &ferry_store::Store,
    numbers: &[i64],
) -> BTreeMap<i64, Verdict> {
    let client = CentraClient::new(
        stack.centra.graphql_url(),
        SecretString::from("sim-token"),
        1000,
        Duration::from_secs(10),
    );
    let erp = HttpErp::new(stack.erp.url(), None, Duration::from_secs(5));
    let rules = &stack.config.tenants[0].rules;
    let mut verdicts = BTreeMap::new();
    for raw in client
        .order_snapshots(numbers)
        .await
        .expect("Centra's snapshots")
    {
        let snapshot = Snapshot::parse(&raw.json).expect("snapshot");
        let row = store
            .ledger_row("acme", raw.number)
            .await
            .expect("ledger")
            .expect("a ledger row");
        let documents = erp
            .read_sales_orders(&raw.number.to_string())
            .await
            .expect("read back");
        let verdict = expected::judge(
            &snapshot,
            rules,
            &NoItems,
            Some(&row),
            &documents,
            chrono::Utc::now(),
            chrono::Duration::zero(),
        )
        .verdict;
        verdicts.insert(raw.number, verdict);
    }
    verdicts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clean_run_reconciles_and_every_change_in_the_erp_is_found() {
    let env = TestEnv::new().await;
    let options = StackOptions {
        tenant: "acme".into(),
        seed: 11,
        centra_requests_per_10s: 1000,
        ..StackOptions::default()
    };
    let stack = Stack::start(env.config(), options)
        .await
        .expect("stack starts");
    let store = env.store().await;
    let numbers = stack.centra.generate(
        40,
        &OrderMix {
            voucher_pct: 40,
            bundle_pct: 30,
            cancellation_pct: 20,
            handling_pct: 30,
            hold_pct: 0,
            pending_pct: 0,
            ..OrderMix::default()
        },
    );
    let posted =
        ferry_testing::wait_for_state(&store, "acme", "posted", 40, Duration::from_secs(60)).await;
    assert_eq!(posted, 40);

    let clean = judge_all(&stack, &store, &numbers).await;
    assert_eq!(clean.len(), 40);
    let unclean: Vec<_> = clean
        .iter()
        .filter(|(_, v)| **v != Verdict::Reconciled)
        .collect();
    assert!(unclean.is_empty(), "no false positives: {unclean:#?}");

    // Behind Ferry's back: one change per order (a line can only be dropped from an order
    // that has two).
    let two_lines = numbers
        .iter()
        .copied()
        .find(|n| {
            stack
                .erp
                .order(&n.to_string())
                .is_some_and(|d| d.lines.len() > 1)
        })
        .expect("an order with two lines");
    let others: Vec<i64> = numbers
        .iter()
        .copied()
        .filter(|n| *n != two_lines)
        .collect();
    let planted = [
        (two_lines, Change::DropLine, Cause::AlteredInErp),
        (others[0], Change::ChangePrice, Cause::AlteredInErp),
        (others[1], Change::TaxRounding, Cause::Rounding),
        (others[2], Change::WrongCurrency, Cause::Currency),
        (others[3], Change::Duplicate, Cause::Duplicate),
        (others[4], Change::Delete, Cause::DeletedInErp),
        (others[5], Change::Cancel, Cause::OneSidedCancellation),
    ];
    for (number, change, _) in planted {
        assert!(
            stack.erp.change(&number.to_string(), change),
            "{change:?} on {number}"
        );
    }
    let judged = judge_all(&stack, &store, &numbers).await;
    for (number, change, cause) in planted {
        let variances = judged[&number].variances();
        assert_eq!(
            variances.len(),
            1,
            "{change:?} on {number}: {:?}",
            judged[&number]
        );
        assert_eq!(variances[0].cause, cause, "{change:?}: {:?}", variances[0]);
        assert_eq!(variances[0].owner, cause.owner());
        assert!(variances[0].money_minor > 0, "{:?}", variances[0]);
    }
    let rest = judged
        .iter()
        .filter(|(n, _)| !planted.iter().any(|(p, _, _)| p == *n))
        .filter(|(_, v)| **v != Verdict::Reconciled)
        .count();
    assert_eq!(rest, 0, "only what was planted");
    stack.shutdown().await;
    env.cleanup().await;
}

async fn wait_verdict(store: &ferry_store::Store, number: i64, want: (&str, &[&str])) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut last = None;
    while tokio::time::Instant::now() < deadline {
        last = store.verdict("acme", number).await.expect("verdict");
        if last.as_ref().is_some_and(|(v, causes)| {
            v == want.0 && causes.iter().map(String::as_str).eq(want.1.iter().copied())
        }) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("order {number}: {last:?}, not {want:?}");
}

/// The reconciler service in the stack: it checks every posted order on its own, and its
/// next sweep finds what was changed in the ERP behind Ferry's back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reconciler_service_checks_every_order_and_its_sweep_finds_changes() {
    let env = TestEnv::new().await;
    let mut config = env.config();
    config.reconciler.grace = Duration::ZERO;
    config.reconciler.interval = Duration::from_millis(100);
    config.reconciler.recheck = Duration::from_millis(200);
    config.reconciler.sweep = Duration::from_secs(1);
    let options = StackOptions {
        tenant: "acme".into(),
        seed: 12,
        centra_requests_per_10s: 1000,
        ..StackOptions::default()
    };
    let stack = Stack::start(config, options).await.expect("stack starts");
    let store = env.store().await;
    let numbers = stack.centra.generate(20, &OrderMix::default());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let counts = store.verdict_counts("acme").await.expect("counts");
        if counts.reconciled == 20 {
            assert_eq!((counts.pending, counts.variance), (0, 0));
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{counts:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let planted = [
        (numbers[0], Change::Delete, "deleted_in_erp"),
        (numbers[1], Change::ChangePrice, "altered_in_erp"),
        (numbers[2], Change::Duplicate, "duplicate"),
    ];
    for (number, change, _) in planted {
        assert!(stack.erp.change(&number.to_string(), change));
    }
    for (number, _, cause) in planted {
        wait_verdict(&store, number, ("variance", &[cause])).await;
    }
    let counts = store.verdict_counts("acme").await.expect("counts");
    assert_eq!((counts.reconciled, counts.variance), (17, 3), "{counts:?}");

    // Each is an exception for the team that acts, with the money at stake.
    let open = store.open_exceptions("acme").await.expect("exceptions");
    for (number, kind, owner) in [
        (numbers[0], "erp_document_deleted", "finance"),
        (numbers[1], "erp_document_altered", "finance"),
        (numbers[2], "duplicate_erp_document", "finance"),
    ] {
        let found = open
            .iter()
            .find(|e| e.order_number == Some(number) && e.kind == kind)
            .unwrap_or_else(|| panic!("{kind} for {number}: {open:#?}"));
        assert_eq!(found.owner, owner);
        assert!(found.amount_minor.is_some_and(|m| m > 0), "{found:?}");
        assert!(
            found.message.contains(&number.to_string()),
            "{}",
            found.message
        );
    }
    assert_eq!(open.len(), 3, "{open:#?}");

    // Finance removes the extra document: the next check finds the order as charged and
    // the exception closes by itself.
    assert!(stack.erp.change(&numbers[2].to_string(), Change::Delete));
    wait_verdict(&store, numbers[2], ("reconciled", &[])).await;
    let open = store.open_exceptions("acme").await.expect("exceptions");
    assert!(
        !open.iter().any(|e| e.kind == "duplicate_erp_document"),
        "{open:#?}"
    );
    assert_eq!(open.len(), 2);

    // A sale entered by hand in the ERP: no Centra order explains it.
    let by_hand = stack
        .erp
        .enter_by_hand(ferry_sim_erp::NewSalesOrder::counter_sale(
            "COUNTER-SALE",
            50_000,
        ));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let unexplained = loop {
        let open = store.open_exceptions("acme").await.expect("exceptions");
        if let Some(e) = open.iter().find(|e| e.kind == "unexplained_erp_document") {
            break e.clone();
        }
        assert!(tokio::time::Instant::now() < deadline, "{open:#?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(unexplained.owner, "finance");
    assert_eq!(unexplained.amount_minor, Some(50_000));
    assert!(
        unexplained.message.contains(&by_hand),
        "{}",
        unexplained.message
    );
    let open = store.open_exceptions("acme").await.expect("exceptions");
    assert_eq!(
        open.iter()
            .filter(|e| e.kind == "unexplained_erp_document")
            .count(),
        1,
        "only the sale by hand: {open:#?}"
    );

    // An order whose webhook is lost (no resync runs): Centra lists it, the ledger never
    // saw it, and past its grace it is missing — engineering's to find.
    stack.centra.configure_webhooks(None);
    let lost = stack.centra.generate(1, &OrderMix::default())[0];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let missing = loop {
        let open = store.open_exceptions("acme").await.expect("exceptions");
        if let Some(e) = open.iter().find(|e| e.kind == "order_missing_in_erp") {
            break e.clone();
        }
        assert!(tokio::time::Instant::now() < deadline, "{open:#?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        (missing.order_number, missing.owner.as_str()),
        (Some(lost), "engineering")
    );
    wait_verdict(&store, lost, ("variance", &["missing"])).await;

    // Where the brand stands, for dashboards and alerts.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let metrics = stack.telemetry.render_metrics();
        let has = |name: &str| {
            metrics
                .lines()
                .any(|l| l.starts_with(name) && l.contains("tenant=\"acme\""))
        };
        if has("ferry_reconcile_complete_ratio")
            && has("ferry_reconcile_accurate_ratio")
            && has("ferry_reconcile_money_at_stake_minor")
            && has("ferry_reconcile_last_sweep_timestamp_seconds")
        {
            assert!(has("ferry_reconcile_orders_checked_total"));
            assert!(has("ferry_reconcile_variances_total"));
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{metrics}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stack.shutdown().await;
    env.cleanup().await;
}
