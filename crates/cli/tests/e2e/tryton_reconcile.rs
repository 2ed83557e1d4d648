//! The reconciler against a real Tryton: orders posted through the whole stack, then
//! changed behind Ferry's back over Tryton's own JSON-RPC — a sale line deleted, a unit
//! price changed, a sale cancelled, a sale entered by hand — are each found by
//! `ferry reconcile run` with the right cause, owner and money; put right in Tryton, the
//! next run closes every exception it raised.

use std::time::Duration;

use ferry::stack::{Stack, StackOptions};
use ferry_config::ErpConfig;
use ferry_erp::{ReadBack, ReadDocument};
use ferry_erp_tryton::Tryton;
use ferry_sim_centra::OrderMix;
use ferry_testing::TestEnv;
use serde_json::{Value, json};

use super::reconcile_run::run_json;
use super::tryton::{connector, unique_prefix};

/// Sales left as drafts (`confirm = false`): the lines a person can still edit in Tryton.
fn drafts_erp(t: &ferry_testing::TrytonInfra, prefix: &str) -> ErpConfig {
    ErpConfig::new(
        "tryton",
        json!({
            "url": t.url,
            "user": t.user,
            "password": t.password,
            "confirm": false,
            "carrier": "PostNord",
            "reference_prefix": prefix,
        }),
    )
}

async fn call(tryton: &Tryton, method: &str, args: Vec<Value>) -> Value {
    tryton
        .rpc()
        .call(method, args)
        .await
        .unwrap_or_else(|e| panic!("{method}: {e}"))
}

async fn sale_id(tryton: &Tryton, reference: &str) -> i64 {
    call(
        tryton,
        "model.sale.sale.search",
        vec![json!([["reference", "=", reference]])],
    )
    .await[0]
        .as_i64()
        .expect("a sale")
}

/// The sale's first line as Tryton holds it (the fields a person would type again).
async fn first_line(tryton: &Tryton, sale: i64) -> Value {
    let ids = call(
        tryton,
        "model.sale.line.search",
        vec![
            json!([["sale", "=", sale], ["type", "=", "line"]]),
            json!(0),
            json!(1),
            json!([["id", "ASC"]]),
        ],
    )
    .await;
    let rows = call(
        tryton,
        "model.sale.line.read",
        vec![
            ids,
            json!([
                "product",
                "unit",
                "quantity",
                "unit_price",
                "description",
                "taxes"
            ]),
        ],
    )
    .await;
    rows[0].clone()
}

async fn document(tryton: &Tryton, number: i64) -> ReadDocument {
    let mut read = tryton
        .read_many(&[number.to_string()], 1)
        .await
        .expect("read back");
    read.remove(0).pop().expect("one sale")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tryton_changes_behind_ferrys_back_are_found_and_fixing_them_closes_the_exceptions() {
    let env = TestEnv::new().await;
    let t = ferry_testing::tryton().expect("Tryton runs (scripts/tryton.sh)");
    let prefix = unique_prefix();
    let mut config = env.config();
    config.reconciler.grace = Duration::ZERO;
    config.erp_writer.request_timeout = Duration::from_secs(20);
    let options = StackOptions {
        tenant: "acme".into(),
        seed: 41,
        centra_requests_per_10s: 1000,
        erp: Some(drafts_erp(&t, &prefix)),
        ..StackOptions::default()
    };
    let stack = Stack::start(config, options).await.expect("stack");
    let config = (*stack.config).clone();
    let store = env.store().await;
    let numbers = stack.centra.generate(
        6,
        &OrderMix {
            cancellation_pct: 0,
            markets: vec![1, 2, 3],
            ..OrderMix::default()
        },
    );
    let posted =
        ferry_testing::wait_for_state(&store, "acme", "posted", 6, Duration::from_secs(180)).await;
    assert_eq!(posted, 6);
    let tryton = connector(&prefix);

    // As Ferry posted them, Tryton's sales are what Centra charged: no variance at all.
    let (found, summary, _) = run_json(&config, "acme").await;
    assert!(
        found.is_empty(),
        "no false positives on real Tryton: {found:?}"
    );
    assert_eq!(summary["checked"], 6);
    assert_eq!(summary["accurate_pct"], 100.0);

    // Behind Ferry's back, over Tryton's own JSON-RPC.
    let reference = |n: i64| format!("{prefix}{n}");
    let before: Vec<ReadDocument> = {
        let mut docs = Vec::new();
        for n in &numbers[..4] {
            docs.push(document(&tryton, *n).await);
        }
        docs
    };
    let shortened = sale_id(&tryton, &reference(numbers[0])).await;
    let deleted_line = first_line(&tryton, shortened).await;
    call(
        &tryton,
        "model.sale.line.delete",
        vec![json!([deleted_line["id"]])],
    )
    .await;
    let repriced = sale_id(&tryton, &reference(numbers[1])).await;
    let repriced_line = first_line(&tryton, repriced).await;
    call(
        &tryton,
        "model.sale.line.write",
        vec![
            json!([repriced_line["id"]]),
            json!({"unit_price": {"__class__": "Decimal", "decimal": "1.0000"}}),
        ],
    )
    .await;
    let cancelled = sale_id(&tryton, &reference(numbers[2])).await;
    call(&tryton, "model.sale.sale.cancel", vec![json!([cancelled])]).await;
    // A sale entered by hand: a copy of one of Ferry's, under a reference no order has.
    let by_hand_reference = format!("{prefix}BY-HAND-1");
    let today = chrono::Utc::now().date_naive();
    let copied = sale_id(&tryton, &reference(numbers[3])).await;
    let by_hand = call(
        &tryton,
        "model.sale.sale.copy",
        vec![
            json!([copied]),
            json!({
                "reference": by_hand_reference,
                "sale_date": {"__class__": "date", "year": chrono::Datelike::year(&today),
                              "month": chrono::Datelike::month(&today),
                              "day": chrono::Datelike::day(&today)},
            }),
        ],
    )
    .await[0]
        .as_i64()
        .expect("the copy");

    let (found, summary, _) = run_json(&config, "acme").await;
    let shortened_now = document(&tryton, numbers[0]).await;
    let repriced_now = document(&tryton, numbers[1]).await;
    let mut got: Vec<(Option<i64>, &str, &str, i64)> = found
        .iter()
        .map(|v| {
            (
                v["order"].as_i64(),
                v["cause"].as_str().expect("cause"),
                v["owner"].as_str().expect("owner"),
                v["money_minor"].as_i64().expect("money"),
            )
        })
        .collect();
    got.sort();
    let mut want = vec![
        (
            Some(numbers[0]),
            "altered_in_erp",
            "finance",
            before[0].gross_minor - shortened_now.gross_minor,
        ),
        (
            Some(numbers[1]),
            "altered_in_erp",
            "finance",
            (before[1].gross_minor - repriced_now.gross_minor).abs(),
        ),
        (
            Some(numbers[2]),
            "one_sided_cancellation",
            "customer_service",
            before[2].gross_minor,
        ),
        (None, "unexplained", "finance", before[3].gross_minor),
    ];
    want.sort();
    assert_eq!(got, want, "{found:#?}");
    assert!(want.iter().all(|w| w.3 > 0), "money at stake: {want:?}");
    assert_eq!(summary["checked"], 6);
    let by_hand_variance = found
        .iter()
        .find(|v| v["cause"] == "unexplained")
        .expect("the sale by hand");
    assert!(
        by_hand_variance["detail"]
            .as_str()
            .is_some_and(|d| d.contains("BY-HAND-1")),
        "{by_hand_variance}"
    );
    let kinds = |open: &[ferry_store::ExceptionRow]| {
        let mut k: Vec<(String, String)> = open
            .iter()
            .filter(|e| e.service == "reconciler")
            .map(|e| (e.kind.clone(), e.owner.clone()))
            .collect();
        k.sort();
        k
    };
    let open = store.open_exceptions("acme").await.expect("exceptions");
    assert_eq!(
        kinds(&open),
        vec![
            ("erp_document_altered".into(), "finance".into()),
            ("erp_document_altered".into(), "finance".into()),
            ("one_sided_cancellation".into(), "customer_service".into()),
            ("unexplained_erp_document".into(), "finance".into()),
        ]
    );

    // Put right in Tryton: the line typed in again, the price restored, the sale back to
    // draft, the sale by hand cancelled.
    let mut line = deleted_line.clone();
    let taxes = line["taxes"].take();
    let line = json!({
        "sale": shortened,
        "type": "line",
        "product": line["product"],
        "unit": line["unit"],
        "quantity": line["quantity"],
        "unit_price": line["unit_price"],
        "description": line["description"],
        "taxes": [["add", taxes]],
    });
    call(&tryton, "model.sale.line.create", vec![json!([line])]).await;
    call(
        &tryton,
        "model.sale.line.write",
        vec![
            json!([repriced_line["id"]]),
            json!({"unit_price": repriced_line["unit_price"]}),
        ],
    )
    .await;
    call(&tryton, "model.sale.sale.draft", vec![json!([cancelled])]).await;
    call(&tryton, "model.sale.sale.cancel", vec![json!([by_hand])]).await;

    let (found, summary, _) = run_json(&config, "acme").await;
    assert!(found.is_empty(), "fixed in Tryton: {found:#?}");
    assert_eq!(summary["accurate_pct"], 100.0);
    let open = store.open_exceptions("acme").await.expect("exceptions");
    assert_eq!(kinds(&open), Vec::<(String, String)>::new(), "{open:#?}");

    stack.shutdown().await;
    env.cleanup().await;
}
