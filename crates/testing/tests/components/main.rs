//! The runtime and the store against a real nats-server and PostgreSQL — the consumer and
//! feed runners, leases, dead letters, the ledgers, the Centra budget, commitments, the
//! reconciler's bookkeeping and the statistics keeper — in one test binary, one module each.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failing test says what broke

mod budget;
mod commitments;
mod ledger;
mod reconciliation;
mod runtime;
mod statistics;
