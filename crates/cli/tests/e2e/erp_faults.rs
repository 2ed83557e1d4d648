//! The writer against a misbehaving ERP: a 60 s outage in the middle of 10,000 orders, 429s,
//! answers lost after commit on 5% of posts and a naive ERP that duplicates any double post.
//! Every order ends posted exactly once, the in-flight bound holds, and while the ERP is down
//! the writer pauses (a few health probes) instead of hammering it.

use std::time::{Duration, Instant};

use ferry::stack::{Stack, StackOptions};
use ferry_sim_centra::OrderMix;
use ferry_sim_erp::Faults;
use ferry_testing::TestEnv;

const ORDERS: i64 = 10_000;
const IN_FLIGHT: usize = 16;

async fn posted(store: &ferry_store::Store) -> i64 {
    ferry_testing::count_in_state(store, "acme", "posted").await
}

async fn wait_posted(store: &ferry_store::Store, want: i64, within: Duration) -> i64 {
    ferry_testing::wait_for_state(store, "acme", "posted", want, within).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_429s_and_lost_answers_still_post_every_order_once() {
    let env = TestEnv::new().await;
    let mut config = env.config();
    config.erp_writer.max_in_flight_per_tenant = IN_FLIGHT;
    config.erp_writer.request_timeout = Duration::from_secs(2);
    let options = StackOptions {
        tenant: "acme".into(),
        seed: 3,
        centra_requests_per_10s: 100_000,
        ..StackOptions::default()
    };
    let stack = Stack::start(config, options).await.expect("stack");
    let faults = Faults {
        ignore_idempotency_key: true,
        latency_ms: 1,
        jitter_ms: 4,
        throttle_per_mille: 20,
        timeout_after_commit_per_mille: 50,
        ..Faults::default()
    };
    stack.erp.set_faults(faults.clone());
    let store = env.store().await;
    stack.centra.generate(
        ORDERS as usize,
        &OrderMix {
            hold_pct: 0,
            pending_pct: 0,
            ..OrderMix::default()
        },
    );

    // The outage strikes mid-run.
    let before = wait_posted(&store, ORDERS / 4, Duration::from_secs(120)).await;
    assert!(before < ORDERS, "the outage must land mid-run");
    stack.erp.set_faults(Faults {
        down_for_ms: 60_000,
        ..faults.clone()
    });
    let outage_started = Instant::now();
    // Posts already in flight finish or fail; then nothing reaches the ERP but probes.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let settled = stack.erp.stats();
    let posted_settled = posted(&store).await;
    tokio::time::sleep(Duration::from_secs(50)).await;
    let late = stack.erp.stats();
    let calls = (late.create_requests + late.lookups) - (settled.create_requests + settled.lookups);
    let probes = late.health_checks - settled.health_checks;
    assert_eq!(
        posted(&store).await,
        posted_settled,
        "nothing is posted while the ERP is down"
    );
    assert!(
        calls <= 2 * IN_FLIGHT as u64,
        "while the ERP is down the writer pauses: {calls} order calls in 50 s"
    );
    assert!(
        (1..=60).contains(&probes),
        "the breaker probes the ERP's health with backoff: {probes} probes in 50 s"
    );
    assert!(
        store
            .erp_breaker_open_since("acme")
            .await
            .unwrap()
            .is_some_and(|since| since.timestamp() <= chrono::Utc::now().timestamp() - 40),
        "the console's sync health sees posting paused since the outage began"
    );

    let all = wait_posted(&store, ORDERS, Duration::from_secs(300)).await;
    let recovered_in = outage_started.elapsed();
    assert_eq!(all, ORDERS, "every order posted after the outage");
    let mut paused = store.erp_breaker_open_since("acme").await.unwrap();
    for _ in 0..50 {
        if paused.is_none() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        paused = store.erp_breaker_open_since("acme").await.unwrap();
    }
    assert_eq!(paused, None, "and flowing again once the ERP answers");
    let stats = stack.erp.stats();
    assert_eq!(stats.orders, ORDERS as usize, "one ERP document per order");
    assert!(
        stack.erp.duplicated_refs().is_empty(),
        "no order was posted twice"
    );
    assert!(
        stats.max_in_flight <= IN_FLIGHT as u64,
        "the writer kept to its in-flight bound: {}",
        stats.max_in_flight
    );
    let exhausted: Vec<_> = store
        .open_exceptions("acme")
        .await
        .expect("exceptions")
        .into_iter()
        .filter(|e| e.kind == "delivery_exhausted" || e.kind == "erp_rejected")
        .collect();
    assert!(exhausted.is_empty(), "{exhausted:?}");
    eprintln!(
        "ERP FAULTS: posted {before} before the outage, all {ORDERS} {recovered_in:?} after it began; \
         {calls} order calls and {probes} probes during 50 s down; ERP stats {stats:?}"
    );
    stack.shutdown().await;
    env.cleanup().await;
}

/// Issue 22 for the HTTP ERP: an ERP that books orders through a queue answers `unfinished`
/// first. No order is recorded as posted before the ERP has booked it, every order ends
/// posted once; a document cancelled in the ERP before Ferry settled it is an exception for
/// finance, and its order is not posted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_document_the_erp_has_not_booked_or_has_cancelled_is_never_taken_for_posted() {
    let env = TestEnv::new().await;
    let options = StackOptions {
        tenant: "acme".into(),
        seed: 9,
        centra_requests_per_10s: 100_000,
        ..StackOptions::default()
    };
    // Retried until the ERP has booked (with full jitter, six quick deliveries could all
    // fall inside the booking time).
    let mut config = env.config();
    config.consumer.max_deliver = 40;
    config.consumer.backoff_max = Duration::from_millis(200);
    let stack = Stack::start(config, options).await.expect("stack");
    stack.erp.set_faults(Faults {
        booking_ms: 400,
        ..Faults::default()
    });
    let store = env.store().await;
    let mix = OrderMix {
        hold_pct: 0,
        pending_pct: 0,
        ..OrderMix::default()
    };
    let numbers = stack.centra.generate(20, &mix);
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut saw_unfinished = false;
    loop {
        // Read the ledger first: whatever it calls posted must be booked in the ERP.
        let mut posted_now = Vec::new();
        for n in &numbers {
            if let Some(row) = store.ledger_row("acme", *n).await.expect("ledger")
                && row.state == "posted"
            {
                posted_now.push(*n);
            }
        }
        for n in &posted_now {
            let doc = stack.erp.order(&n.to_string()).expect("in the ERP");
            assert_eq!(
                doc.state(),
                ferry_sim_erp::DocState::Complete,
                "order {n} recorded as posted before the ERP booked it"
            );
        }
        saw_unfinished |= stack
            .erp
            .orders()
            .iter()
            .any(|o| o.state() == ferry_sim_erp::DocState::Unfinished);
        if posted_now.len() == numbers.len() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} of 20 posted",
            posted_now.len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(saw_unfinished, "the ERP answered unfinished first");
    assert!(stack.erp.duplicated_refs().is_empty());
    assert!(store.open_exceptions("acme").await.expect("x").is_empty());

    // Booking now takes a minute; someone cancels the document meanwhile.
    stack.erp.set_faults(Faults {
        booking_ms: 60_000,
        ..Faults::default()
    });
    let number = stack.centra.generate(1, &mix)[0];
    while !stack.erp.cancel(&number.to_string()) {
        assert!(
            Instant::now() < deadline + Duration::from_secs(30),
            "never reached the ERP"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let exception = loop {
        let open = store.open_exceptions("acme").await.expect("x");
        if let Some(e) = open
            .into_iter()
            .find(|e| e.kind == "erp_document_cancelled")
        {
            break e;
        }
        assert!(
            Instant::now() < deadline + Duration::from_secs(60),
            "no exception"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(exception.owner, "finance");
    assert_eq!(exception.order_number, Some(number));
    let row = store
        .ledger_row("acme", number)
        .await
        .expect("l")
        .expect("row");
    assert_eq!(row.state, "rejected");
    assert_eq!(stack.erp.orders().len(), 21, "one document per order");
    stack.shutdown().await;
    env.cleanup().await;
}
