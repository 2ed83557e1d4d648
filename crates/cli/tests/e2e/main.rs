//! The end-to-end tests: the whole stack in this process (every service, both simulators,
//! a real nats-server and PostgreSQL, and a real Tryton where named) — one test binary, as
//! each links all of Ferry (one link instead of ten on every CI run), one module per area.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failing test says what broke

mod amend;
mod browser;
mod chaos;
mod console;
mod customers;
mod erp_faults;
mod file_drop;
mod fulfilment;
mod fuzz_replay;
mod inventory;
mod metrics;
mod migrate;
mod notifications;
mod ops_api;
mod otlp;
mod pipeline;
mod privacy;
mod reconcile;
mod reconcile_journey;
mod reconcile_run;
mod release;
mod replay;
mod returns;
mod sources;
mod tenants;
mod traces;
mod tryton;
mod tryton_batch;
mod tryton_changes;
mod tryton_customers;
mod tryton_readback;
mod tryton_reconcile;
mod tryton_returns;
mod up;

/// What `probe` finds, polled every 50 ms for up to 20 s; panics naming `what` after that.
pub(crate) async fn until<T>(what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    for _ in 0..400 {
        if let Some(found) = probe() {
            return found;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}
