//! A small chaos run (`ferry bench chaos`): every service two OS processes, killed with
//! SIGKILL every two seconds, nats-server and PostgreSQL killed and restarted, an ERP
//! outage, 429 storms, lost, doubled and reordered webhooks, a third of the shipped orders
//! returned — and every order in the ERP once, every shipment in Centra once with its
//! tracking number, every return one credit note, Centra's stock where the ERP's is, the
//! reconciler satisfied.

use ferry::bench_chaos::{ChaosArgs, run};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_kills_and_restarts_nothing_is_lost_or_done_twice() {
    let args = ChaosArgs {
        orders: 1_500,
        rate: 30,
        kill_every_ms: 2_000,
        broker_restarts: 1,
        db_restarts: 1,
        replicas: 2,
        skus: 20,
        settle_secs: 240,
        seed: 11,
        exe: Some(env!("CARGO_BIN_EXE_ferry").into()),
    };
    let report = run(&args).await.expect("the chaos run");
    eprintln!("{}", serde_json::to_string(&report).expect("json"));
    assert!(report.kills >= 5, "{report:?}");
    assert_eq!(
        report.services_hit,
        ferry::stack::SERVICES.len(),
        "{report:?}"
    );
    assert_eq!((report.broker_restarts, report.db_restarts), (1, 1));
    assert_eq!(report.shipments, 1_500, "every order shipped: {report:?}");
    assert!(report.returns >= 400, "a third came back: {report:?}");
    assert!(report.clean(), "{report:?}");
}
