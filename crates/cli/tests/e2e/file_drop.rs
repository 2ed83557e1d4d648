//! The file-drop connector end to end, with no change to any service: orders from Centra
//! are written as files, a warehouse's shipment files reach Centra (a broken one is an
//! exception while the next still flows), and the ERP's stock file — as a spreadsheet
//! saves it — becomes Centra's stock.

use std::time::{Duration, Instant};

use ferry::stack::{Stack, StackOptions};
use ferry_config::ErpConfig;
use ferry_sim_centra::OrderMix;
use ferry_testing::TestEnv;

async fn until(what: &str, within: Duration, mut done: impl AsyncFnMut() -> bool) {
    let start = Instant::now();
    while !done().await {
        assert!(start.elapsed() < within, "{what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_shipments_and_stock_through_a_directory() {
    let env = TestEnv::new().await;
    let exchange = tempfile::tempdir().unwrap();
    let dir = exchange.path().to_owned();
    let mut options = StackOptions {
        tenant: "acme".into(),
        seed: 31,
        centra_requests_per_10s: 1000,
        erp: Some(ErpConfig::new(
            "file-drop",
            serde_json::json!({ "directory": dir }),
        )),
        ..StackOptions::default()
    };
    options.fulfilment.poll_interval = Duration::from_millis(100);
    let stack = Stack::start(env.config(), options).await.expect("stack");
    let store = env.store().await;

    // 1. Orders become files, with the money as Centra has it.
    let numbers = stack.centra.generate(
        4,
        &OrderMix {
            hold_pct: 0,
            pending_pct: 0,
            cancellation_pct: 0,
            bundle_pct: 0,
            markets: vec![1],
            ..OrderMix::default()
        },
    );
    let posted =
        ferry_testing::wait_for_state(&store, "acme", "posted", 4, Duration::from_secs(60)).await;
    assert_eq!(posted, 4);
    for n in &numbers {
        let file: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join(format!("orders/{n}.json"))).unwrap())
                .unwrap();
        let order = stack.centra.state.order(*n).unwrap();
        assert_eq!(file["format"], "ferry.sales-order.v1");
        assert_eq!(file["external_ref"], n.to_string());
        let gross: rust_decimal::Decimal = file["gross"].as_str().unwrap().parse().unwrap();
        assert_eq!(
            gross,
            order.figures().grand_total,
            "order {n}: what the customer paid"
        );
    }
    // The ERP imports the first: it moves the file, and nothing is written again.
    std::fs::rename(
        dir.join(format!("orders/{}.json", numbers[0])),
        dir.join(format!("orders/processed/{}.json", numbers[0])),
    )
    .unwrap();

    // 2. The warehouse ships three parcels; the middle file is broken.
    let ship = |name: &str, n: i64| {
        let file: serde_json::Value = serde_json::from_slice(
            &std::fs::read(dir.join(format!("orders/{n}.json")))
                .or_else(|_| std::fs::read(dir.join(format!("orders/processed/{n}.json"))))
                .unwrap(),
        )
        .unwrap();
        let lines: Vec<serde_json::Value> = file["lines"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|l| l["kind"] == "item")
            .map(|l| serde_json::json!({ "item": l["erp_item"], "quantity": l["quantity"] }))
            .collect();
        let body = serde_json::json!({
            "order": n.to_string(), "shipped_at": "2026-12-06T10:15:00Z",
            "carrier": "PostNord", "tracking_number": format!("PN{n}"), "lines": lines,
        });
        let tmp = dir.join(format!("shipments/.{name}.tmp"));
        std::fs::write(&tmp, serde_json::to_vec(&body).unwrap()).unwrap();
        std::fs::rename(&tmp, dir.join(format!("shipments/{name}"))).unwrap();
    };
    ship("20261206T100000-a.json", numbers[0]);
    std::fs::write(
        dir.join("shipments/20261206T100100-b.json"),
        b"{\"order\": \"1\", \"lines\": \"oops\"}",
    )
    .unwrap();
    ship("20261206T100200-c.json", numbers[1]);
    for n in &numbers[..2] {
        until(
            &format!("order {n}'s shipment reached Centra"),
            Duration::from_secs(30),
            async || {
                stack.centra.state.ops(|o| {
                    o.shipments_of(*n).iter().any(|s| {
                        s.is_shipped && s.tracking_number.as_deref() == Some(&format!("PN{n}"))
                    })
                })
            },
        )
        .await;
    }
    let open = store.open_exceptions("acme").await.unwrap();
    let broken: Vec<_> = open
        .iter()
        .filter(|e| e.kind == "erp_record_unreadable")
        .collect();
    assert_eq!(broken.len(), 1, "{open:?}");
    assert!(broken[0].message.contains("20261206T100100-b.json"));
    let payload: Vec<u8> = sqlx::query_scalar(
        "SELECT payload FROM exceptions WHERE tenant = 'acme' AND kind = 'erp_record_unreadable'",
    )
    .fetch_one(store.pool())
    .await
    .unwrap();
    assert_eq!(payload, b"{\"order\": \"1\", \"lines\": \"oops\"}");

    // 3. The ERP's stock file, as a spreadsheet saves it, becomes Centra's stock (sizes no
    // order holds, so Centra shows exactly what the ERP has).
    let skus: Vec<String> = stack.centra.state.ops_mut(|o| {
        let end = o.add_synthetic_sizes(3, 0);
        o.sizes[end - 3..end]
            .iter()
            .map(|s| s.sku.clone())
            .collect()
    });
    let csv = format!(
        "\u{feff}Item;Warehouse;Available;Note\r\n{};Main;7;\"olive; M\"\r\n\"{}\";Main;0;\r\n{};Main;12;\r\n",
        skus[0], skus[1], skus[2]
    );
    std::fs::write(dir.join("stock/.20261206T1100.csv.tmp"), csv).unwrap();
    std::fs::rename(
        dir.join("stock/.20261206T1100.csv.tmp"),
        dir.join("stock/20261206T1100.csv"),
    )
    .unwrap();
    let want = [
        (skus[0].clone(), 7),
        (skus[1].clone(), 0),
        (skus[2].clone(), 12),
    ];
    until(
        "the stock file reached Centra",
        Duration::from_secs(30),
        async || {
            want.iter().all(|(sku, units)| {
                stack.centra.state.ops(|o| {
                    o.size_by_sku(sku)
                        .is_some_and(|i| o.stock_of(i, 1).physical == *units)
                })
            })
        },
    )
    .await;
    // Nothing was written twice, and every order file is where the ERP left it.
    assert!(!dir.join(format!("orders/{}.json", numbers[0])).exists());
    assert_eq!(
        std::fs::read_dir(dir.join("orders"))
            .unwrap()
            .filter_map(Result::ok)
            .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
            .count(),
        3
    );
    stack.shutdown().await;
    env.cleanup().await;
}
