//! The reconciler's bookkeeping against a real PostgreSQL: an order is due once it should
//! have settled, not again while nothing changes and it was reconciled, again when its
//! ledger row changes, and again (after the recheck delay) while it is not reconciled.

use chrono::{DateTime, Duration, Utc};
use ferry_store::reconciliation::{Due, VerdictCounts, VerdictRecord};
use ferry_store::{LedgerState, SnapshotRecord, Store};
use ferry_testing::TestEnv;

fn record(number: i64, hash: &str, accepted: DateTime<Utc>) -> SnapshotRecord {
    SnapshotRecord {
        tenant: "acme".into(),
        order_number: number,
        centra_order_id: format!("id{number}"),
        snapshot_hash: hash.into(),
        fetched_at: accepted + Duration::seconds(1),
        first_accepted_at: Some(accepted),
        order_fingerprint: format!("fp-{hash}"),
        state: LedgerState::Ready,
        currency: "SEK".into(),
        gross_minor: Some(1000),
        tax_minor: Some(200),
        trace_id: None,
        customer_email_key: None,
        body: bytes::Bytes::new(),
    }
}

/// Due with no full sweep in sight.
fn window(settled_before: DateTime<Utc>, recheck_before: DateTime<Utc>) -> Due {
    Due {
        settled_before,
        recheck_before,
        sweep_before: settled_before - Duration::days(1),
        accepted_from: None,
    }
}

async fn due(
    store: &Store,
    after: i64,
    settled_before: DateTime<Utc>,
    recheck_before: DateTime<Utc>,
) -> Vec<i64> {
    store
        .orders_to_reconcile("acme", after, window(settled_before, recheck_before), 100)
        .await
        .expect("due orders")
        .into_iter()
        .map(|d| d.row.order_number)
        .collect()
}

fn verdict(
    number: i64,
    verdict: &'static str,
    causes: &[&str],
    version: DateTime<Utc>,
) -> VerdictRecord {
    VerdictRecord {
        order_number: number,
        verdict,
        causes: causes.iter().map(|c| (*c).to_owned()).collect(),
        money_minor: if causes.is_empty() { 0 } else { 1000 },
        currency: "SEK".into(),
        ledger_version: Some(version),
        order_date: None,
        figures: "{}".to_owned(),
        variances: "[]".to_owned(),
    }
}

#[tokio::test]
async fn orders_are_due_when_settled_changed_or_not_yet_reconciled() {
    let env = TestEnv::new().await;
    let store = env.store().await;
    let now = Utc::now();
    let an_hour_ago = now - Duration::hours(1);
    for n in 1..=3 {
        store
            .record_snapshot(&record(n, "a", an_hour_ago))
            .await
            .expect("ledger");
    }
    // Accepted a moment ago: not settled yet under a 30-minute grace.
    store
        .record_snapshot(&record(4, "a", now))
        .await
        .expect("ledger");
    let settled = now - Duration::minutes(30);
    assert_eq!(due(&store, 0, settled, now).await, vec![1, 2, 3]);
    assert_eq!(
        due(&store, 1, settled, now).await,
        vec![2, 3],
        "pages by order number"
    );

    let versions = store
        .orders_to_reconcile("acme", 0, window(settled, now), 100)
        .await
        .expect("due");
    let version = |n: i64| {
        versions
            .iter()
            .find(|d| d.row.order_number == n)
            .map(|d| d.ledger_version)
            .expect("version")
    };
    store
        .record_verdicts(
            "acme",
            &[
                verdict(1, "reconciled", &[], version(1)),
                verdict(2, "variance", &["altered_in_erp", "duplicate"], version(2)),
                verdict(3, "pending", &[], version(3)),
            ],
        )
        .await
        .expect("verdicts");
    assert_eq!(
        store.verdict("acme", 2).await.expect("verdict"),
        Some((
            "variance".to_owned(),
            vec!["altered_in_erp".to_owned(), "duplicate".to_owned()]
        ))
    );
    assert_eq!(
        store.verdict_counts("acme").await.expect("counts"),
        VerdictCounts {
            reconciled: 1,
            pending: 1,
            variance: 1
        }
    );

    // Just checked: nothing due. After the recheck delay: what was not reconciled.
    assert!(
        due(&store, 0, settled, now - Duration::minutes(1))
            .await
            .is_empty()
    );
    let later = Utc::now() + Duration::seconds(1);
    assert_eq!(due(&store, 0, settled, later).await, vec![2, 3]);

    // A change to a reconciled order's ledger row makes it due again.
    store
        .record_snapshot(&record(1, "b", an_hour_ago + Duration::seconds(5)))
        .await
        .expect("newer snapshot");
    assert_eq!(
        due(&store, 0, settled, now - Duration::minutes(1)).await,
        vec![1]
    );

    // The full sweep takes everything checked before it, reconciled or not.
    let sweep = Due {
        sweep_before: Utc::now() + Duration::seconds(1),
        ..window(settled, now - Duration::minutes(1))
    };
    let swept: Vec<i64> = store
        .orders_to_reconcile("acme", 0, sweep, 100)
        .await
        .expect("sweep")
        .into_iter()
        .map(|d| d.row.order_number)
        .collect();
    assert_eq!(swept, vec![1, 2, 3]);

    // Checked again, now fixed: reconciled replaces the variance.
    store
        .record_verdicts("acme", &[verdict(2, "reconciled", &[], version(2))])
        .await
        .expect("verdict");
    assert_eq!(
        store.verdict("acme", 2).await.expect("verdict"),
        Some(("reconciled".to_owned(), vec![]))
    );
    env.cleanup().await;
}

/// What the month-end report and the gauges read: figures kept when a later check cannot
/// judge, orders by Centra's date, where a tenant stands, unexplained documents by date.
#[tokio::test]
async fn checks_keep_their_figures_and_the_period_reads_them_back() {
    let env = TestEnv::new().await;
    let store = env.store().await;
    let an_hour_ago = Utc::now() - Duration::hours(1);
    for n in 1..=3 {
        store
            .record_snapshot(&record(n, "a", an_hour_ago))
            .await
            .expect("ledger");
    }
    let day = |d: u32| chrono::NaiveDate::from_ymd_opt(2026, 11, d).expect("day");
    let checked = |n: i64, on: u32, v: &'static str, causes: &[&str]| VerdictRecord {
        order_date: Some(day(on)),
        figures: serde_json::json!({ "centra": { "gross": n * 1000 } }).to_string(),
        variances: serde_json::json!([{ "order": n }]).to_string(),
        ..verdict(n, v, causes, an_hour_ago)
    };
    store
        .record_verdicts(
            "acme",
            &[
                checked(1, 1, "reconciled", &[]),
                checked(2, 30, "variance", &["missing"]),
                checked(3, 15, "variance", &["altered_in_erp"]),
            ],
        )
        .await
        .expect("verdicts");
    // Checked again without figures (Centra did not answer): the figures stand.
    store
        .record_verdicts("acme", &[verdict(3, "pending", &[], an_hour_ago)])
        .await
        .expect("verdict");
    let period = store
        .checked_orders("acme", day(1), day(30))
        .await
        .expect("period");
    assert_eq!(
        period.iter().map(|o| o.order_number).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    assert_eq!(period[2].verdict, "pending");
    assert_eq!(period[2].figures["centra"]["gross"], 3000);
    assert_eq!(period[2].order_date, Some(day(15)));
    assert_eq!(
        store
            .checked_orders("acme", day(2), day(29))
            .await
            .expect("period")
            .len(),
        1
    );
    assert_eq!(
        store.first_order_day("acme").await.expect("day"),
        Some(day(1))
    );
    assert_eq!(store.first_order_day("globex").await.expect("day"), None);
    assert_eq!(store.orders_in_scope("acme", None).await.expect("scope"), 3);
    assert_eq!(
        store
            .orders_in_scope("acme", Some(Utc::now()))
            .await
            .expect("scope"),
        0
    );

    let standing = store
        .standing("acme", &["missing", "duplicate"])
        .await
        .expect("standing");
    // Order 3 is pending now: two checked, one of them incomplete.
    assert_eq!(
        (standing.checked, standing.complete, standing.accurate),
        (2, 1, 1)
    );
    assert_eq!(standing.at_stake, vec![("SEK".to_owned(), 1000)]);

    let document = |reference: &str, on: u32| ferry_store::reconciliation::UnexplainedDocument {
        erp_reference: reference.into(),
        document_date: Some(day(on)),
        currency: "SEK".into(),
        gross_minor: 5000,
        variance: serde_json::json!({ "cause": "unexplained" }),
    };
    for d in [
        document("SO-2", 20),
        document("SO-1", 2),
        document("SO-2", 20),
    ] {
        store
            .record_unexplained_document("acme", &d)
            .await
            .expect("document");
    }
    let found = store
        .unexplained_documents("acme", day(1), day(30))
        .await
        .expect("documents");
    assert_eq!(found, vec![document("SO-1", 2), document("SO-2", 20)]);
    env.cleanup().await;
}
