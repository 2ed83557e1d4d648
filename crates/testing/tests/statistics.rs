//! The planner-statistics keeper: a young ledger that outgrew its statistics is analysed,
//! after which the batch statements look orders up by key instead of reading the tenant.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failing test says what broke

use std::time::{Duration, Instant};

use ferry_testing::TestEnv;

/// The plan of a 200-order batch claim, as the erp-writer issues it: custom (made for these
/// parameters, as for a statement's first five runs) or generic (what a connection keeps).
async fn claim_plan(store: &ferry_store::Store, mode: &str) -> String {
    let mut conn = store.pool().acquire().await.unwrap();
    sqlx::query("SELECT set_config('plan_cache_mode', $1, false)")
        .bind(mode)
        .execute(&mut *conn)
        .await
        .unwrap();
    let numbers: Vec<i64> = (10_000..10_200).collect();
    let hashes: Vec<String> = numbers.iter().map(|n| format!("h{n}")).collect();
    let rows: Vec<(String,)> = sqlx::query_as(
        "EXPLAIN UPDATE order_ledger l SET state = 'posting'
         FROM UNNEST($2::int8[], $3::text[]) AS i(order_number, snapshot_hash)
         WHERE l.tenant = $1 AND l.order_number = ANY($2) AND l.order_number = i.order_number
           AND l.snapshot_hash = i.snapshot_hash AND l.state IN ('ready', 'possibly_created')",
    )
    .bind("acme")
    .bind(&numbers)
    .bind(&hashes)
    .fetch_all(&mut *conn)
    .await
    .unwrap();
    rows.into_iter()
        .map(|(l,)| l)
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test]
async fn a_grown_ledger_is_analysed_and_then_looked_up_by_key() {
    let env = TestEnv::new().await;
    let store = env.store().await;
    sqlx::query(
        "INSERT INTO order_ledger (tenant, order_number, state, snapshot_hash, snapshot_fetched_at)
         SELECT CASE WHEN n % 100 = 0 THEN 'other' ELSE 'acme' END, n, 'ready', 'h' || n, now()
         FROM generate_series(1, 40000) AS n",
    )
    .execute(store.pool())
    .await
    .unwrap();

    // PostgreSQL publishes a backend's modification counters within about a second.
    let deadline = Instant::now() + Duration::from_secs(20);
    let analysed = loop {
        let analysed = store.refresh_statistics().await.unwrap();
        if !analysed.is_empty() || Instant::now() > deadline {
            break analysed;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(analysed, vec!["order_ledger"]);
    // Nothing changed since: nothing to do.
    assert_eq!(
        store.refresh_statistics().await.unwrap(),
        Vec::<&str>::new()
    );

    for mode in ["force_custom_plan", "force_generic_plan"] {
        let plan = claim_plan(&store, mode).await;
        let index_cond = plan
            .lines()
            .find(|l| l.contains("Index Cond"))
            .unwrap_or_else(|| panic!("{mode}: no index condition in\n{plan}"));
        assert!(
            index_cond.contains("order_number"),
            "{mode}: the claim reads the tenant instead of looking orders up:\n{plan}"
        );
    }
    env.cleanup().await;
}
