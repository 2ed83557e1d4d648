//! The order ledger's guarantees, against a real PostgreSQL: stale snapshots never win,
//! posting is claimed once, abandoned claims are taken over after the lease; changes of one
//! order are applied one at a time; pending returns are read again until they are not.

use std::time::Duration;

use chrono::{DateTime, Utc};
use ferry_store::{BeginPosting, LedgerState, PostingClaim, SnapshotOutcome, SnapshotRecord};
use ferry_testing::TestEnv;

fn at(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_700_000_000 + secs, 0).unwrap_or_default()
}

fn record(number: i64, hash: &str, fetched: i64, state: LedgerState) -> SnapshotRecord {
    SnapshotRecord {
        tenant: "acme".into(),
        order_number: number,
        centra_order_id: format!("id{number}"),
        snapshot_hash: hash.into(),
        fetched_at: at(fetched),
        first_accepted_at: Some(at(fetched - 1)),
        order_fingerprint: format!("fp-{hash}"),
        state,
        currency: "SEK".into(),
        gross_minor: Some(1000),
        tax_minor: Some(200),
        trace_id: None,
        customer_email_key: None,
        body: format!("{{\"number\":{number}}}").into_bytes().into(),
    }
}

#[tokio::test]
async fn a_stale_snapshot_never_overwrites_a_newer_one() {
    let env = TestEnv::new().await;
    let store = env.store().await;
    assert_eq!(
        store
            .record_snapshot(&record(1, "b", 20, LedgerState::Held))
            .await
            .ok(),
        Some(SnapshotOutcome::Applied)
    );
    assert_eq!(
        store
            .record_snapshot(&record(1, "a", 10, LedgerState::Ready))
            .await
            .ok(),
        Some(SnapshotOutcome::Stale)
    );
    assert_eq!(
        store
            .record_snapshot(&record(1, "b", 20, LedgerState::Held))
            .await
            .ok(),
        Some(SnapshotOutcome::AlreadyApplied(LedgerState::Held))
    );
    assert_eq!(
        store
            .record_snapshot(&record(1, "c", 30, LedgerState::Ready))
            .await
            .ok(),
        Some(SnapshotOutcome::Changed(LedgerState::Held))
    );
    let row = store
        .ledger_row("acme", 1)
        .await
        .ok()
        .flatten()
        .expect("row");
    assert_eq!(
        (row.state.as_str(), row.snapshot_hash.as_str()),
        ("ready", "c")
    );
    // Of the snapshots applied (b, then c), the earliest acceptance is kept.
    assert_eq!(row.first_accepted_at, Some(at(19)));
    env.cleanup().await;
}

#[tokio::test]
async fn one_batch_with_several_snapshots_of_an_order_keeps_the_latest() {
    let env = TestEnv::new().await;
    let store = env.store().await;
    let batch = vec![
        record(5, "old", 10, LedgerState::Held),
        record(6, "x", 10, LedgerState::Ready),
        record(5, "new", 30, LedgerState::Ready),
        record(5, "new", 30, LedgerState::Ready),
        record(5, "mid", 20, LedgerState::Held),
    ];
    let outcomes = store.record_snapshots(&batch).await.expect("batch");
    assert_eq!(
        outcomes,
        vec![
            SnapshotOutcome::Stale,
            SnapshotOutcome::Applied,
            SnapshotOutcome::Applied,
            SnapshotOutcome::AlreadyApplied(LedgerState::Ready),
            SnapshotOutcome::Stale,
        ]
    );
    let row = store
        .ledger_row("acme", 5)
        .await
        .ok()
        .flatten()
        .expect("row");
    assert_eq!(row.snapshot_hash, "new");
    env.cleanup().await;
}

#[tokio::test]
async fn posting_is_claimed_once_and_posted_once() {
    let env = TestEnv::new().await;
    let store = env.store().await;
    let lease = Duration::from_secs(60);
    store
        .record_snapshot(&record(7, "h", 10, LedgerState::Ready))
        .await
        .expect("recorded");
    assert_eq!(
        store
            .begin_posting("acme", 7, "other-hash", lease)
            .await
            .ok(),
        Some(BeginPosting::Superseded(LedgerState::Ready))
    );
    assert_eq!(
        store.begin_posting("acme", 8, "h", lease).await.ok(),
        Some(BeginPosting::Missing)
    );
    assert_eq!(
        store.begin_posting("acme", 7, "h", lease).await.ok(),
        Some(BeginPosting::Proceed {
            previous: LedgerState::Ready,
            attempts: 1
        })
    );
    assert_eq!(
        store.begin_posting("acme", 7, "h", lease).await.ok(),
        Some(BeginPosting::Busy)
    );
    // A newer snapshot may not change an order that is being posted.
    assert!(matches!(
        store
            .record_snapshot(&record(7, "h2", 20, LedgerState::Ready))
            .await,
        Ok(SnapshotOutcome::AfterPosting(LedgerState::Posting, _))
    ));
    store
        .mark_possibly_created("acme", 7)
        .await
        .expect("marked");
    assert_eq!(
        store.begin_posting("acme", 7, "h", lease).await.ok(),
        Some(BeginPosting::Proceed {
            previous: LedgerState::PossiblyCreated,
            attempts: 2
        })
    );
    // The lookup failed (ERP away): giving the claim back keeps "possibly created", so the
    // next attempt looks it up again instead of creating a second document.
    store.release_posting("acme", 7).await.expect("released");
    assert_eq!(
        store.begin_posting("acme", 7, "h", lease).await.ok(),
        Some(BeginPosting::Proceed {
            previous: LedgerState::PossiblyCreated,
            attempts: 3
        })
    );
    assert_eq!(
        store
            .mark_posted("acme", 7, "SO-1", Some(1000), Some(200))
            .await
            .ok(),
        Some(true)
    );
    assert_eq!(
        store
            .mark_posted("acme", 7, "SO-1", Some(1000), Some(200))
            .await
            .ok(),
        Some(false)
    );
    assert_eq!(
        store.begin_posting("acme", 7, "h", lease).await.ok(),
        Some(BeginPosting::AlreadyPosted {
            erp_reference: "SO-1".into()
        })
    );
    env.cleanup().await;
}

#[tokio::test]
async fn an_abandoned_claim_is_taken_over_after_the_lease() {
    let env = TestEnv::new().await;
    let store = env.store().await;
    store
        .record_snapshot(&record(9, "h", 10, LedgerState::Ready))
        .await
        .expect("recorded");
    let lease = Duration::from_millis(300);
    assert!(matches!(
        store.begin_posting("acme", 9, "h", lease).await,
        Ok(BeginPosting::Proceed { .. })
    ));
    assert_eq!(
        store.begin_posting("acme", 9, "h", lease).await.ok(),
        Some(BeginPosting::Busy)
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        store.begin_posting("acme", 9, "h", lease).await.ok(),
        Some(BeginPosting::Proceed {
            previous: LedgerState::Posting,
            attempts: 2
        }),
        "the taker learns an earlier attempt may have reached the ERP"
    );
    // Claims in one batch: the same order twice is claimed once.
    store
        .record_snapshot(&record(10, "k", 10, LedgerState::Ready))
        .await
        .expect("recorded");
    let claims = vec![
        PostingClaim {
            tenant: "acme".into(),
            order_number: 10,
            snapshot_hash: "k".into(),
        },
        PostingClaim {
            tenant: "acme".into(),
            order_number: 10,
            snapshot_hash: "k".into(),
        },
    ];
    let answers = store
        .begin_postings(&claims, Duration::from_secs(60))
        .await
        .expect("claims");
    assert_eq!(
        answers[0],
        BeginPosting::Proceed {
            previous: LedgerState::Ready,
            attempts: 1
        }
    );
    assert_eq!(answers[1], BeginPosting::Busy);
    env.cleanup().await;
}

#[tokio::test]
async fn tenants_never_see_each_others_orders() {
    let env = TestEnv::new().await;
    let store = env.store().await;
    let mut other = record(1, "h", 10, LedgerState::Ready);
    other.tenant = "other".into();
    store
        .record_snapshot(&record(1, "h", 10, LedgerState::Held))
        .await
        .expect("acme");
    store.record_snapshot(&other).await.expect("other");
    assert_eq!(
        store.count_by_state("acme").await.ok(),
        Some(vec![("held".into(), 1)])
    );
    assert_eq!(
        store.count_by_state("other").await.ok(),
        Some(vec![("ready".into(), 1)])
    );
    assert_eq!(
        store
            .begin_posting("acme", 1, "h", Duration::from_secs(9))
            .await
            .ok(),
        Some(BeginPosting::Superseded(LedgerState::Held))
    );
    env.cleanup().await;
}

#[tokio::test]
async fn the_same_snapshot_judged_again_may_release_a_waiting_order_but_not_a_posted_one() {
    let env = TestEnv::new().await;
    let store = env.store().await;
    store
        .record_snapshot(&record(11, "h", 10, LedgerState::Rejected))
        .await
        .expect("recorded");
    // Same snapshot, same verdict: nothing changes.
    assert_eq!(
        store
            .record_snapshot(&record(11, "h", 10, LedgerState::Rejected))
            .await
            .ok(),
        Some(SnapshotOutcome::AlreadyApplied(LedgerState::Rejected))
    );
    // Same snapshot, new verdict (the mapping was fixed): released.
    assert_eq!(
        store
            .record_snapshot(&record(11, "h", 10, LedgerState::Ready))
            .await
            .ok(),
        Some(SnapshotOutcome::Changed(LedgerState::Rejected))
    );
    // Ready orders are not moved back by the same snapshot.
    assert_eq!(
        store
            .record_snapshot(&record(11, "h", 10, LedgerState::Rejected))
            .await
            .ok(),
        Some(SnapshotOutcome::AlreadyApplied(LedgerState::Ready))
    );
    env.cleanup().await;
}

#[tokio::test]
async fn one_change_of_an_order_is_applied_at_a_time() {
    let env = TestEnv::new().await;
    let store = env.store().await;
    let lease = Duration::from_secs(60);
    assert!(store.claim_amendment("acme", 7, "a", lease).await.unwrap());
    assert!(
        !store.claim_amendment("acme", 7, "b", lease).await.unwrap(),
        "the newer change waits for the one being applied"
    );
    assert!(
        !store.claim_amendment("acme", 7, "a", lease).await.unwrap(),
        "the same change redelivered while it is applied waits too"
    );
    assert!(
        store.claim_amendment("acme", 8, "b", lease).await.unwrap(),
        "another order's change goes side by side"
    );
    assert!(
        store.claim_amendment("other", 7, "b", lease).await.unwrap(),
        "another tenant's order is another order"
    );
    // Released by another change: nothing happens.
    store.release_amendment("acme", 7, "b").await.unwrap();
    assert!(!store.claim_amendment("acme", 7, "b", lease).await.unwrap());
    store.release_amendment("acme", 7, "a").await.unwrap();
    assert!(store.claim_amendment("acme", 7, "b", lease).await.unwrap());

    // A writer that stopped mid-change: its claim lapses.
    assert!(
        store
            .claim_amendment("acme", 9, "a", Duration::from_millis(1))
            .await
            .unwrap()
    );
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(store.claim_amendment("acme", 9, "b", lease).await.unwrap());
    env.cleanup().await;
}

#[tokio::test]
async fn pending_returns_are_read_again_until_completed_or_forgotten() {
    let env = TestEnv::new().await;
    let store = env.store().await;
    let (now, long) = (Duration::ZERO, Duration::from_secs(3600));
    store
        .note_pending_returns("acme", &[(11, 1001), (12, 1002)])
        .await
        .unwrap();
    store
        .note_pending_returns("other", &[(11, 9)])
        .await
        .unwrap();
    let (mut due, _) = store
        .pending_returns_due("acme", now, long, 10)
        .await
        .unwrap();
    due.sort_unstable();
    assert_eq!(due, [11, 12]);
    assert!(
        store
            .pending_returns_due("acme", long, long, 10)
            .await
            .unwrap()
            .0
            .is_empty(),
        "just checked: not due again for an interval"
    );
    store.forget_pending_returns("acme", &[11]).await.unwrap();
    assert_eq!(
        store
            .pending_returns_due("acme", now, long, 10)
            .await
            .unwrap()
            .0,
        [12]
    );
    // Seen again still pending: still there (once), its check moved on.
    store
        .note_pending_returns("acme", &[(12, 1002)])
        .await
        .unwrap();
    assert_eq!(
        store
            .pending_returns_due("acme", now, long, 10)
            .await
            .unwrap()
            .0,
        [12]
    );
    // Pending longer than kept: forgotten.
    tokio::time::sleep(Duration::from_millis(20)).await;
    let (due, expired) = store
        .pending_returns_due("acme", now, Duration::from_millis(1), 10)
        .await
        .unwrap();
    assert!(due.is_empty());
    assert_eq!(expired, 1);
    assert_eq!(
        store
            .pending_returns_due("other", now, long, 10)
            .await
            .unwrap()
            .0,
        [11],
        "another tenant's are its own"
    );
    env.cleanup().await;
}
