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
        body: bytes::Bytes::new(),
    }
}

/// Due with no full sweep in sight.
fn window(settled_before: DateTime<Utc>, recheck_before: DateTime<Utc>) -> Due {
    Due {
        settled_before,
        recheck_before,
        sweep_before: settled_before - Duration::days(1),
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
