//! Every metric the chart's alerts and Grafana dashboard name is one a running Ferry
//! really exports: the whole stack goes through a day's events (orders, a shipment, stock,
//! a lost webhook, a Centra 429 storm, an overdue exception) and its `/metrics`, read over
//! HTTP as Prometheus reads it, must carry each name. An alert on a series that never
//! exists never fires; this is what catches a renamed metric.

use std::collections::BTreeSet;
use std::time::Duration;

use ferry::stack::Stack;
use ferry_sim_centra::{Faults, OrderMix};
use ferry_sim_erp::ShipRequest;
use ferry_testing::TestEnv;

/// The `ferry_*` metric names a file of the chart names.
fn named_in(file: &str) -> BTreeSet<String> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../helm/ferry/files")
        .join(file);
    let text = std::fs::read_to_string(&path).expect("the chart's file");
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| w.starts_with("ferry_") && w.len() > 6)
        .map(str::to_owned)
        .collect()
}

/// The metric names in a Prometheus exposition (histograms' series under their own name).
fn exported(exposition: &str) -> BTreeSet<String> {
    exposition
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| l.split(['{', ' ']).next())
        .flat_map(|name| {
            let base = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| name.strip_suffix(s))
                .map(str::to_owned);
            std::iter::once(name.to_owned()).chain(base)
        })
        .collect()
}

#[test]
fn exposition_names_are_read_with_histograms_under_their_own_name() {
    let text = "# TYPE a counter\na_total{x=\"1\"} 3\nh_bucket{le=\"1\"} 2\nh_sum 1\nup 1\n";
    let names = exported(text);
    for n in ["a_total", "h", "h_bucket", "up"] {
        assert!(names.contains(n), "{n} in {names:?}");
    }
    assert!(!names.contains("a"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_ferry_exports_every_metric_its_alerts_and_dashboard_name() {
    let env = TestEnv::new().await;
    let mut config = env.config();
    config.reconciler.grace = Duration::ZERO;
    config.reconciler.interval = Duration::from_millis(100);
    config.reconciler.recheck = Duration::from_millis(200);
    let mut options = crate::inventory::options(61);
    options.fulfilment.poll_interval = Duration::from_millis(200);
    let stack = Stack::start(config, options).await.expect("stack starts");
    let store = env.store().await;
    let http = reqwest::Client::new();
    let base = format!("http://{}", stack.ops_addr);

    let mix = OrderMix {
        hold_pct: 0,
        pending_pct: 0,
        ..OrderMix::default()
    };
    let numbers = stack.centra.generate(3, &mix);
    let posted =
        ferry_testing::wait_for_state(&store, "acme", "posted", 3, Duration::from_secs(60)).await;
    assert_eq!(posted, 3);
    stack
        .erp
        .ship(ShipRequest {
            external_ref: numbers[0].to_string(),
            lines: None,
            carrier: Some("PostNord".into()),
            tracking_number: Some("PN-METRICS-1".into()),
        })
        .expect("shipped in the ERP");
    let sku = crate::inventory::catalogue_skus(&stack, 1).remove(0);
    crate::inventory::set_erp(&stack, &[(sku.as_str(), 40)]);
    // A lost webhook: past its grace the order is missing, with money at stake.
    stack.centra.configure_webhooks(None);
    stack.centra.generate(1, &mix);
    ferry_testing::wait_for_exception(
        &store,
        "acme",
        |e| e.kind == "order_missing_in_erp",
        Duration::from_secs(30),
    )
    .await;
    // An exception past its due time, for the overdue gauge.
    sqlx::query("UPDATE exceptions SET sla_due = now() - interval '1 minute' WHERE tenant = $1")
        .bind("acme")
        .execute(store.pool())
        .await
        .expect("made overdue");
    // Centra answers 429 for a moment.
    stack.centra.set_faults(Faults {
        storm_ms: 1_500,
        ..Faults::default()
    });
    // The kubelet's probe, which `ferry_ready` keeps the answer of.
    let ready = http
        .get(format!("{base}/readyz"))
        .send()
        .await
        .expect("readyz");
    assert!(ready.status().is_success());

    let mut wanted = named_in("alerts.yaml");
    wanted.extend(named_in("dashboard.json"));
    assert!(wanted.len() >= 10, "{wanted:?}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let missing = loop {
        let text = http
            .get(format!("{base}/metrics"))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("exposition");
        let have = exported(&text);
        let missing: Vec<&String> = wanted.iter().filter(|n| !have.contains(*n)).collect();
        if missing.is_empty() || tokio::time::Instant::now() > deadline {
            break missing;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert!(
        missing.is_empty(),
        "named by the chart but not exported by a running Ferry: {missing:?}"
    );
    stack.shutdown().await;
    env.cleanup().await;
}
