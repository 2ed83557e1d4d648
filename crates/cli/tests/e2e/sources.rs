//! Ingest's three sources. Centra drops, reorders and repeats webhooks; the Events queue
//! and the periodic resync make sure every order still arrives, exactly once.

use std::time::Duration;

use ferry::stack::{Stack, StackOptions};
use ferry_sim_centra::{OrderMix, WebhookConfig};
use ferry_sim_erp::Faults;
use ferry_testing::TestEnv;

fn mix() -> OrderMix {
    OrderMix {
        hold_pct: 0,
        pending_pct: 0,
        ..OrderMix::default()
    }
}

async fn posted(store: &ferry_store::Store) -> i64 {
    store
        .count_by_state("acme")
        .await
        .expect("ledger")
        .iter()
        .find(|(s, _)| s == "posted")
        .map(|(_, n)| *n)
        .unwrap_or(0)
}

fn naive_erp(stack: &Stack) {
    // Any double post would become a second document.
    stack.erp.set_faults(Faults {
        ignore_idempotency_key: true,
        ..Faults::default()
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_percent_dropped_webhooks_are_healed_by_the_resync() {
    let env = TestEnv::new().await;
    let resync = Duration::from_secs(4);
    let options = StackOptions {
        tenant: "acme".into(),
        seed: 11,
        centra_requests_per_10s: 1000,
        webhook_faults: WebhookConfig {
            drop_per_mille: 300,
            duplicate_per_mille: 200,
            reorder_per_mille: 200,
            batch_max: 10,
            ..WebhookConfig::default()
        },
        resync_interval: resync,
        ..StackOptions::default()
    };
    let stack = Stack::start(env.config(), options).await.expect("stack");
    naive_erp(&stack);
    let store = env.store().await;
    let numbers = stack.centra.generate(300, &mix());
    let generated_at = tokio::time::Instant::now();

    // Wait until the webhooks that did arrive are posted: the rest is the resync's job.
    let mut posted_by_webhooks = 0;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let stats = stack.centra.webhook_stats();
        if stats.queued == 0 {
            posted_by_webhooks = posted(&store).await;
            break;
        }
    }
    let stats = stack.centra.webhook_stats();
    assert!(
        stats.events_dropped >= 60,
        "webhooks were dropped: {stats:?}"
    );
    assert!(
        stats.events_duplicated > 20 && stats.events_reordered > 20,
        "{stats:?}"
    );

    let deadline = generated_at + resync + Duration::from_secs(20);
    while posted(&store).await < 300 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let took = generated_at.elapsed();
    assert_eq!(
        store.count_by_state("acme").await.unwrap(),
        vec![("posted".to_owned(), 300)],
        "every order posted (webhooks alone brought {posted_by_webhooks})"
    );
    assert!(posted_by_webhooks < 300, "some orders needed the resync");
    assert!(
        took <= resync * 2 + Duration::from_secs(10),
        "healed within about one resync interval: {took:?}"
    );
    assert_eq!(
        stack.erp.orders().len(),
        300,
        "one ERP order per Centra order"
    );
    assert!(stack.erp.duplicated_refs().is_empty());
    for n in &numbers {
        assert!(
            stack.erp.order(&n.to_string()).is_some(),
            "order {n} in the ERP"
        );
    }
    // The checkpoint moved: the next pass starts where this one began.
    let (checkpoint, _) = stack
        .cursors()
        .await
        .unwrap()
        .get("acme", ferry_ingest::sources::RESYNC_FEED)
        .await
        .unwrap();
    assert!(
        chrono::DateTime::parse_from_rfc3339(&checkpoint).is_ok(),
        "{checkpoint:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_events_queue_alone_delivers_every_order_and_is_confirmed() {
    let env = TestEnv::new().await;
    let options = StackOptions {
        tenant: "acme".into(),
        seed: 12,
        centra_requests_per_10s: 1000,
        centra_events: true,
        ..StackOptions::default()
    };
    let stack = Stack::start(env.config(), options).await.expect("stack");
    // No webhooks at all: only the Events queue tells Ferry.
    stack.centra.configure_webhooks(None);
    naive_erp(&stack);
    let store = env.store().await;
    // Let ingest register its listener before orders are placed.
    for _ in 0..100 {
        if stack.centra.state.ops(|o| {
            o.integrations
                .get("ferry")
                .is_some_and(|i| !i.listeners.is_empty())
        }) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stack.centra.generate(250, &mix());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while posted(&store).await < 250 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        store.count_by_state("acme").await.unwrap(),
        vec![("posted".to_owned(), 250)]
    );
    assert_eq!(stack.erp.orders().len(), 250);
    assert!(stack.erp.duplicated_refs().is_empty());
    assert_eq!(stack.centra.webhook_stats().events_sent, 0);
    // Everything processed was confirmed (the ERP writes raise no order events).
    let mut left = usize::MAX;
    for _ in 0..50 {
        left = stack.centra.state.ops(|o| o.unconfirmed("ferry"));
        if left == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(left, 0, "events left unconfirmed");
}
