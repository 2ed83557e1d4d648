//! The planner-statistics keeper: a young ledger that outgrew its statistics is analysed,
//! after which the batch statements look orders up by key instead of reading the tenant.

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

/// A ledger of `rows` ready orders, one in a hundred another tenant's, never analysed.
/// Autovacuum may analyse (or, vacuuming, lock) the table at any moment and so take the
/// keeper's work away: these tests are about the minute before it wakes up.
async fn young_ledger(store: &ferry_store::Store, rows: i64) {
    sqlx::query("ALTER TABLE order_ledger SET (autovacuum_enabled = false)")
        .execute(store.pool())
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO order_ledger (tenant, order_number, state, snapshot_hash, snapshot_fetched_at)
         SELECT CASE WHEN n % 100 = 0 THEN 'other' ELSE 'acme' END, n, 'ready', 'h' || n, now()
         FROM generate_series(1, $1) AS n",
    )
    .bind(rows)
    .execute(store.pool())
    .await
    .unwrap();
}

#[tokio::test]
async fn a_grown_ledger_is_analysed_and_then_looked_up_by_key() {
    let env = TestEnv::new().await;
    let store = env.store().await;
    young_ledger(&store, 40_000).await;

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

/// A table another session holds (as autovacuum does while vacuuming it) is skipped, not
/// waited for and not reported as analysed; the next tick analyses it.
#[tokio::test]
async fn a_table_being_vacuumed_is_skipped_and_analysed_later() {
    let env = TestEnv::new().await;
    let store = env.store().await;
    young_ledger(&store, 5_000).await;

    let mut holder = store.pool().begin().await.unwrap();
    sqlx::query("LOCK TABLE order_ledger IN SHARE UPDATE EXCLUSIVE MODE")
        .execute(&mut *holder)
        .await
        .unwrap();
    // Give the row counters time to be published, so "nothing" means "skipped".
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let live: i64 = sqlx::query_scalar(
            "SELECT n_live_tup FROM pg_stat_user_tables WHERE relname = 'order_ledger'",
        )
        .fetch_one(store.pool())
        .await
        .unwrap();
        if live >= 5000 || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let started = Instant::now();
    assert_eq!(
        store.refresh_statistics().await.unwrap(),
        Vec::<&str>::new()
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the keeper waited for the lock"
    );
    holder.rollback().await.unwrap();

    assert_eq!(
        store.refresh_statistics().await.unwrap(),
        vec!["order_ledger"]
    );
    env.cleanup().await;
}
