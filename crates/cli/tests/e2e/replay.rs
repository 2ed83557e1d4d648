//! Replay through the real services, simulators, nats-server and PostgreSQL: after a
//! mapping change, a posted order's dry run shows the remapped line and sends nothing;
//! applying it changes the ERP document (ADR 0035), never a second sales order; an
//! order held for an unmapped item is posted by its replay once mapped.

use std::time::Duration;

use ferry::stack::{Stack, StackOptions};
use ferry_ops::access::Role;
use ferry_proto::Message as _;
use ferry_proto::ops::v1 as pb;
use ferry_proto::ops::v1::mapping_service_client::MappingServiceClient;
use ferry_proto::ops::v1::order_service_client::OrderServiceClient;
use ferry_sim_centra::OrderMix;
use ferry_testing::TestEnv;
use futures::StreamExt;
use tonic::Code;

type Orders = OrderServiceClient<
    tonic::service::interceptor::InterceptedService<
        tonic::transport::Channel,
        ferry::exceptions::Bearer,
    >,
>;

async fn orders_client(store: &ferry_store::Store, url: &str, role: Role) -> (Orders, String) {
    let (_, secret) = ferry::tokens::create(store, &format!("{role}@acme"), role, &["acme".into()])
        .await
        .expect("token");
    let (channel, bearer) = ferry::exceptions::channel(url, &secret)
        .await
        .expect("channel");
    (
        OrderServiceClient::with_interceptor(channel, bearer),
        secret,
    )
}

fn replay(number: i64, dry_run: bool) -> pb::ReplayOrderRequest {
    pb::ReplayOrderRequest {
        name: format!("tenants/acme/orders/{number}"),
        dry_run,
        request_id: String::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_shows_the_remapped_line_and_applying_it_changes_the_erp_document_never_reposts()
{
    let env = TestEnv::new().await;
    let stack = Stack::start(
        env.config(),
        StackOptions {
            tenant: "acme".into(),
            centra_requests_per_10s: 1000,
            ..StackOptions::default()
        },
    )
    .await
    .expect("stack");
    let store = env.store().await;
    let mix = OrderMix {
        hold_pct: 0,
        pending_pct: 0,
        bundle_pct: 0,
        cancellation_pct: 0,
        voucher_pct: 0,
        markets: vec![1],
        ..OrderMix::default()
    };
    let number = stack.centra.generate(1, &mix)[0];
    for _ in 0..400 {
        let row = store.ledger_row("acme", number).await.expect("ledger");
        if row.is_some_and(|r| r.state == "posted") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (mut ops, _) = orders_client(&store, &stack.api_url, Role::Operations).await;
    let (mut cs, _) = orders_client(&store, &stack.api_url, Role::CustomerService).await;

    // Nothing has changed: nothing to do.
    let same = ops
        .replay_order(replay(number, true))
        .await
        .expect("dry run")
        .into_inner();
    assert_eq!(
        (
            same.compared_with.as_str(),
            same.action.as_str(),
            same.lines.len()
        ),
        ("posted", "none", 0),
        "{same:?}"
    );
    assert_eq!(
        same.order.as_ref().map(|o| o.state.as_str()),
        Some("posted")
    );

    // Operations maps the first item's SKU to another ERP item.
    let sku = stack.centra.state.order(number).expect("order").lines[0]
        .sku
        .clone();
    let (channel, bearer) = {
        let (_, secret) =
            ferry::tokens::create(&store, "mapper@acme", Role::Operations, &["acme".into()])
                .await
                .expect("token");
        ferry::exceptions::channel(&stack.api_url, &secret)
            .await
            .expect("channel")
    };
    MappingServiceClient::with_interceptor(channel, bearer)
        .import_mappings(pb::ImportMappingsRequest {
            parent: "tenants/acme".into(),
            mappings: vec![pb::Mapping {
                centra_sku: sku.clone(),
                erp_item: format!("NEW-{sku}"),
            }],
        })
        .await
        .expect("mapped");

    let diff = cs
        .replay_order(replay(number, true))
        .await
        .expect("anyone may look")
        .into_inner();
    assert_eq!(
        (diff.action.as_str(), diff.applied),
        ("amend", false),
        "{diff:?}"
    );
    let changed: Vec<_> = diff.lines.iter().filter(|l| l.sku == sku).collect();
    assert_eq!(changed.len(), 1, "{diff:?}");
    assert_eq!(changed[0].change, "changed");
    assert_eq!(changed[0].previous_erp_item, sku);
    assert_eq!(changed[0].erp_item, format!("NEW-{sku}"));
    assert_eq!(changed[0].quantity, changed[0].previous_quantity);
    assert_eq!(diff.gross_minor, diff.previous_gross_minor, "same money");
    assert_eq!(diff.tax_minor, diff.previous_tax_minor);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        store
            .open_exceptions("acme")
            .await
            .expect("exceptions")
            .is_empty(),
        "a dry run sends nothing"
    );

    let refused = cs
        .replay_order(replay(number, false))
        .await
        .expect_err("not customer service");
    assert_eq!(refused.code(), Code::PermissionDenied);
    let unknown = ops
        .replay_order(replay(999_999_999, true))
        .await
        .expect_err("no such order");
    assert_eq!(unknown.code(), Code::NotFound);

    let client = env.nats().await;
    let mut amended = client
        .subscribe(ferry_runtime::Topology::new(&env.prefix).amended_subject("acme", number))
        .await
        .expect("subscribe");
    client.flush().await.expect("flush");
    let applied = ops
        .replay_order(replay(number, false))
        .await
        .expect("applied")
        .into_inner();
    assert_eq!((applied.action.as_str(), applied.applied), ("amend", true));
    // The change reaches the ERP document (ADR 0035): its line now names the new item.
    let mut changed = false;
    for _ in 0..200 {
        changed = stack.erp.orders().iter().any(|o| {
            o.external_ref == number.to_string()
                && o.lines.iter().any(|l| l.erp_item == format!("NEW-{sku}"))
        });
        if changed {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(changed, "the remapped item was applied to the ERP document");
    // The amendment says what the ERP was given and what it should hold now.
    let message = tokio::time::timeout(Duration::from_secs(20), amended.next())
        .await
        .expect("an amendment event")
        .expect("message");
    let event = ferry_proto::order::v1::OrderAmended::decode(message.payload.as_ref())
        .expect("OrderAmended");
    assert!(event.lines_known);
    let remapped: Vec<_> = event
        .changes
        .iter()
        .map(|c| {
            (
                c.previous_erp_item.as_str(),
                c.erp_item.as_str(),
                c.quantity - c.previous_quantity,
            )
        })
        .collect();
    assert_eq!(remapped, [(sku.as_str(), format!("NEW-{sku}").as_str(), 0)]);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(stack.erp.orders().len(), 1, "never a second sales order");
    assert_eq!(stack.erp.stats().changes, 1, "changed once");
    let open = store.open_exceptions("acme").await.expect("exceptions");
    assert!(
        !open.iter().any(|e| e.kind == "amendment_not_applied"),
        "{open:?}"
    );

    stack.shutdown().await;
    env.cleanup().await;
}
