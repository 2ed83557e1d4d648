//! An order blocked on an unmapped SKU is released and posted once when the mapping is
//! imported with `ferry mapping import`, without anyone replaying it.

use std::collections::BTreeSet;
use std::time::Duration;

use ferry::stack::{Stack, StackOptions};
use ferry_sim_centra::OrderMix;
use ferry_sim_erp::Faults;
use ferry_testing::TestEnv;

async fn states(store: &ferry_store::Store) -> Vec<(String, i64)> {
    store.count_by_state("acme").await.unwrap()
}

async fn wait_for(store: &ferry_store::Store, want: Vec<(String, i64)>) -> Vec<(String, i64)> {
    for _ in 0..300 {
        let now = states(store).await;
        if now == want {
            return now;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    states(store).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn importing_the_mapping_releases_blocked_orders_once() {
    let env = TestEnv::new().await;
    let options = StackOptions {
        tenant: "acme".into(),
        centra_requests_per_10s: 1000,
        // Every SKU must be mapped: nothing is, yet.
        rules: ferry_domain::Rules::default(),
        ..StackOptions::default()
    };
    let stack = Stack::start(env.config(), options).await.expect("stack");
    stack.erp.set_faults(Faults {
        ignore_idempotency_key: true,
        ..Faults::default()
    });
    let store = env.store().await;
    let numbers = stack.centra.generate(
        5,
        &OrderMix {
            hold_pct: 0,
            pending_pct: 0,
            markets: vec![1, 2],
            ..OrderMix::default()
        },
    );

    assert_eq!(
        wait_for(&store, vec![("rejected".into(), 5)]).await,
        vec![("rejected".to_owned(), 5)]
    );
    let open = store.open_exceptions("acme").await.unwrap();
    assert!(!open.is_empty());
    assert!(
        open.iter()
            .all(|e| e.kind == "unmapped_sku" && e.owner == "operations")
    );
    assert!(
        stack.erp.orders().is_empty(),
        "nothing reaches the ERP while SKUs are unmapped"
    );

    // Every SKU of the orders (bundle components, not bundles) gets an ERP item.
    let mut skus = BTreeSet::new();
    for n in &numbers {
        for line in &stack.centra.state.order(*n).unwrap().lines {
            if line.bundle_items.is_empty() {
                skus.insert(line.sku.clone());
            }
            for item in &line.bundle_items {
                skus.insert(item.sku.clone());
            }
        }
    }
    let csv: String = std::iter::once("centra_sku,erp_item".to_owned())
        .chain(skus.iter().map(|s| format!("{s},ERP-{s}")))
        .collect::<Vec<_>>()
        .join("\n");
    let file = std::env::temp_dir().join(format!("ferry-map-{}.csv", env.prefix));
    std::fs::write(&file, csv).unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(["mapping", "import", "--tenant", "acme", "--file"])
        .arg(&file)
        .env("FERRY_DATABASE__URL", &env.database_url)
        .output()
        .expect("ferry runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let said = String::from_utf8_lossy(&output.stdout);
    assert!(
        said.contains("5 blocked orders will be re-evaluated"),
        "{said}"
    );

    assert_eq!(
        wait_for(&store, vec![("posted".into(), 5)]).await,
        vec![("posted".to_owned(), 5)]
    );
    let erp = stack.erp.orders();
    assert_eq!(erp.len(), 5, "each released order posted once");
    assert!(stack.erp.duplicated_refs().is_empty());
    assert!(erp.iter().all(|d| {
        d.lines
            .iter()
            .all(|l| l.kind != "item" || l.erp_item.starts_with("ERP-"))
    }));
    assert!(
        store.open_exceptions("acme").await.unwrap().is_empty(),
        "the fixed exceptions are resolved"
    );
    let _ = std::fs::remove_file(&file);
    stack.shutdown().await;
    env.cleanup().await;
}
