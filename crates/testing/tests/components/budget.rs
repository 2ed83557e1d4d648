//! The shared Centra mutation budget: token buckets in PostgreSQL, priorities as floors,
//! exact under concurrency, and a wait that is enough.

use std::time::Duration;

use ferry_store::fulfilment::{MutationBudget, Priority};
use ferry_testing::TestEnv;

fn budget() -> MutationBudget {
    MutationBudget {
        per_10s: 10,
        per_hour: 1000,
        safety_pct: 100,
        reserve_shipments_pct: 20,
        reserve_zero_stock_pct: 20,
    }
}

async fn take(store: &ferry_store::Store, p: Priority) -> Option<Duration> {
    store
        .reserve_mutations("acme", &budget(), p, 1)
        .await
        .expect("reserve")
}

#[tokio::test]
async fn priorities_keep_their_reserve_and_waits_are_enough() {
    let env = TestEnv::new().await;
    let store = env.store().await;
    let mut ordinary = 0;
    while take(&store, Priority::Ordinary).await.is_none() {
        ordinary += 1;
    }
    assert_eq!(ordinary, 6, "ordinary work leaves 40% of the 10 s bucket");
    let mut zero = 0;
    while take(&store, Priority::ZeroStock).await.is_none() {
        zero += 1;
    }
    assert_eq!(zero, 2, "zero-stock leaves 20% for shipments");
    let mut shipments = 0;
    let wait = loop {
        match take(&store, Priority::Shipments).await {
            None => shipments += 1,
            Some(wait) => break wait,
        }
    };
    assert_eq!(shipments, 2, "shipments may use the rest");
    // One token refills in a second (10 per 10 s).
    assert!(
        wait > Duration::from_millis(500) && wait <= Duration::from_millis(1100),
        "{wait:?}"
    );
    tokio::time::sleep(wait).await;
    assert_eq!(
        take(&store, Priority::Shipments).await,
        None,
        "waiting as told is enough"
    );
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_services_never_spend_more_than_the_quota() {
    let env = TestEnv::new().await;
    let store = env.store().await;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..40 {
        let store = store.clone();
        tasks.spawn(async move { take(&store, Priority::Shipments).await.is_none() });
    }
    let mut granted = 0;
    while let Some(ok) = tasks.join_next().await {
        if ok.unwrap() {
            granted += 1;
        }
    }
    assert_eq!(
        granted, 10,
        "exactly the 10 s quota, however many ask at once"
    );
    env.cleanup().await;
}
