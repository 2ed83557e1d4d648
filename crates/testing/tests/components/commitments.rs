//! The units Centra holds for orders Ferry knows, as the inventory pusher reads them:
//! pending until posted, posted until Centra records them shipped, nothing once cancelled or
//! shipped in full; batches and redeliveries replace an order's lines.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use ferry_store::inventory::{Commitment, OrderUnits};
use ferry_testing::TestEnv;

async fn ledger(store: &ferry_store::Store, number: i64, state: &str) {
    sqlx::query(
        "INSERT INTO order_ledger (tenant, order_number, state, snapshot_hash, snapshot_fetched_at)
         VALUES ('acme', $1, $2, 'h', now())
         ON CONFLICT (tenant, order_number) DO UPDATE SET state = EXCLUDED.state",
    )
    .bind(number)
    .bind(state)
    .execute(store.pool())
    .await
    .unwrap();
}

async fn shipped(store: &ferry_store::Store, id: &str, number: i64, state: &str, items: &str) {
    sqlx::query(
        "INSERT INTO shipment_ledger (tenant, erp_shipment_id, order_number, state, items)
         VALUES ('acme', $1, $2, $3, $4::jsonb)",
    )
    .bind(id)
    .bind(number)
    .bind(state)
    .bind(items)
    .execute(store.pool())
    .await
    .unwrap();
}

fn units(number: i64, lines: &[(&str, i64)]) -> OrderUnits {
    OrderUnits {
        order_number: number,
        lines: lines
            .iter()
            .map(|(sku, q)| ((*sku).to_owned(), (*sku).to_owned(), *q))
            .collect(),
    }
}

async fn by_sku(store: &ferry_store::Store) -> BTreeMap<String, (i64, i64)> {
    store
        .commitments("acme", std::time::Duration::from_secs(900))
        .await
        .unwrap()
        .into_iter()
        .map(
            |Commitment {
                 sku,
                 pending,
                 posted_unshipped,
                 ..
             }| (sku, (pending, posted_unshipped)),
        )
        .collect()
}

#[tokio::test]
async fn units_are_pending_then_posted_then_gone() {
    let env = TestEnv::new().await;
    let store = env.store().await;
    for (n, state) in [
        (1, "ready"),
        (2, "posted"),
        (3, "cancelled"),
        (4, "posting"),
    ] {
        ledger(&store, n, state).await;
    }
    store
        .record_commitments(
            "acme",
            &[
                units(1, &[("A", 2), ("B", 1)]),
                units(2, &[("A", 3)]),
                units(3, &[("A", 5)]),
                // Redelivered with other lines in the same batch: the later one counts.
                units(4, &[("A", 9)]),
                units(4, &[("A", 1)]),
            ],
        )
        .await
        .unwrap();
    assert_eq!(
        by_sku(&store).await,
        BTreeMap::from([("A".into(), (3, 3)), ("B".into(), (1, 0))]),
        "pending 2 + 1 (orders 1 and 4), posted 3, the cancelled order holds nothing"
    );

    // Part of order 2 is recorded shipped in Centra; a shipment still on its way is not.
    shipped(&store, "S1", 2, "sent", r#"{"A": 2}"#).await;
    shipped(&store, "S2", 2, "sending", r#"{"A": 1}"#).await;
    assert_eq!(by_sku(&store).await["A"], (3, 1));
    let shipped_a = |c: Vec<Commitment>| c.into_iter().find(|c| c.sku == "A").unwrap().shipped;
    assert_eq!(
        shipped_a(
            store
                .commitments("acme", std::time::Duration::from_secs(900))
                .await
                .unwrap()
        ),
        2,
        "Centra shipped 2"
    );

    // A new version of order 1 replaces its lines.
    store
        .record_commitments("acme", &[units(1, &[("B", 4)])])
        .await
        .unwrap();
    let now = by_sku(&store).await;
    assert_eq!(now["A"], (1, 1));
    assert_eq!(now["B"], (4, 0));

    // Shipped in full and cancelled orders are forgotten; the rest stays.
    shipped(&store, "S3", 2, "sent", r#"{"A": 1}"#).await;
    let total = |c: Vec<Commitment>| c.iter().map(|c| c.shipped).sum::<i64>();
    let before = total(
        store
            .commitments("acme", Duration::from_secs(900))
            .await
            .unwrap(),
    );
    let pruned = store.prune_commitments("acme").await.unwrap();
    assert_eq!(pruned.orders, 2);
    // Order 2's three units, shipped: what the running total of shipped units loses.
    assert_eq!(pruned.shipped, HashMap::from([("A".to_owned(), 3)]));
    let after = total(
        store
            .commitments("acme", Duration::from_secs(900))
            .await
            .unwrap(),
    );
    assert_eq!(
        before - after,
        3,
        "the running total drops by what prune reports"
    );
    let now = by_sku(&store).await;
    assert_eq!(now["A"], (1, 0));
    assert_eq!(now["B"], (4, 0));
    env.cleanup().await;
}

/// An order stays committed, every line of it, until it is shipped in full; a version of
/// an order without lines holds nothing.
#[tokio::test]
async fn an_order_is_forgotten_only_when_shipped_in_full() {
    let env = TestEnv::new().await;
    let store = env.store().await;
    ledger(&store, 7, "posted").await;
    ledger(&store, 8, "ready").await;
    store
        .record_commitments(
            "acme",
            &[
                units(7, &[("A", 2), ("B", 1)]),
                units(8, &[("A", 4)]),
                // The same SKU twice in one order counts once, summed.
                units(9, &[("C", 1), ("C", 2)]),
            ],
        )
        .await
        .unwrap();
    ledger(&store, 9, "ready").await;
    assert_eq!(by_sku(&store).await["C"], (3, 0));

    shipped(&store, "S1", 7, "sent", r#"{"A": 2}"#).await;
    assert_eq!(
        store.prune_commitments("acme").await.unwrap().orders,
        0,
        "B is on its way"
    );
    let now = by_sku(&store).await;
    assert_eq!(now["A"], (4, 0));
    assert_eq!(now["B"], (0, 1));
    shipped(&store, "S2", 7, "sent", r#"{"B": 1}"#).await;
    let pruned = store.prune_commitments("acme").await.unwrap();
    assert_eq!(pruned.orders, 1);
    assert_eq!(
        pruned.shipped,
        HashMap::from([("A".to_owned(), 2), ("B".to_owned(), 1)])
    );
    assert!(!by_sku(&store).await.contains_key("B"));

    // Order 8's new version has no lines left: it holds nothing.
    store
        .record_commitments("acme", &[units(8, &[])])
        .await
        .unwrap();
    assert!(!by_sku(&store).await.contains_key("A"));
    env.cleanup().await;
}

/// Migration 0005 folds the line rows of `stock_commitments` into one row per order.
#[tokio::test]
async fn line_rows_migrate_to_one_row_per_order() {
    let env = TestEnv::new().await;
    let store = env.store().await;
    let mut conn = store.pool().acquire().await.unwrap();
    sqlx::raw_sql(
        "CREATE SCHEMA before_0005; SET search_path = before_0005;
         CREATE TABLE stock_commitments (
             tenant TEXT NOT NULL, order_number BIGINT NOT NULL, erp_item TEXT NOT NULL,
             sku TEXT NOT NULL, quantity BIGINT NOT NULL,
             created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
             PRIMARY KEY (tenant, order_number, erp_item, sku));
         INSERT INTO stock_commitments (tenant, order_number, erp_item, sku, quantity) VALUES
             ('acme', 1, 'I-B', 'B', 1), ('acme', 1, 'I-A', 'A', 2), ('other', 1, 'I-A', 'A', 5),
             ('acme', 2, 'I-A', 'A', 3);",
    )
    .execute(&mut *conn)
    .await
    .unwrap();
    sqlx::raw_sql(include_str!(
        "../../../store/migrations/0005_order_commitments.sql"
    ))
    .execute(&mut *conn)
    .await
    .unwrap();
    type Row = (String, i64, Vec<String>, Vec<String>, Vec<i64>);
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT tenant, order_number, erp_items, skus, quantities
         FROM before_0005.order_commitments ORDER BY 1, 2",
    )
    .fetch_all(&mut *conn)
    .await
    .unwrap();
    let s = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    assert_eq!(
        rows,
        vec![
            (
                "acme".into(),
                1,
                s(&["I-A", "I-B"]),
                s(&["A", "B"]),
                vec![2, 1]
            ),
            ("acme".into(), 2, s(&["I-A"]), s(&["A"]), vec![3]),
            ("other".into(), 1, s(&["I-A"]), s(&["A"]), vec![5]),
        ]
    );
    let old: Option<String> =
        sqlx::query_scalar("SELECT to_regclass('before_0005.stock_commitments')::text")
            .fetch_one(&mut *conn)
            .await
            .unwrap();
    assert_eq!(old, None);
    env.cleanup().await;
}
