//! The `ferry` command's library: the local stack (everything in one process), `ferry up`,
//! `ferry transform` and the benchmarks, shared with the end-to-end tests.

// This crate is the `ferry` binary (its library part is shared with the end-to-end tests):
// the one place Ferry reads its environment (`config.rs`, `stack.rs`).
#![allow(
    clippy::disallowed_methods,
    reason = "the binary reads its environment and hands the configuration to the libraries"
)]

#[cfg(feature = "dev")]
pub mod bench;
#[cfg(feature = "dev")]
pub mod bench_centra;
#[cfg(feature = "dev")]
pub mod bench_chaos;
#[cfg(feature = "dev")]
pub mod bench_console;
#[cfg(feature = "dev")]
pub mod bench_fulfilment;
#[cfg(feature = "dev")]
pub mod bench_inventory;
#[cfg(feature = "dev")]
pub mod bench_ops;
#[cfg(feature = "dev")]
pub mod bench_ops_downstream;
#[cfg(feature = "dev")]
pub mod bench_reconcile;
#[cfg(feature = "dev")]
pub mod bench_returns;
#[cfg(feature = "dev")]
pub mod bench_tryton;
#[cfg(feature = "dev")]
pub mod bench_writer;
pub mod centra_check;
pub mod config;
pub mod connectors;
pub mod exceptions;
pub mod mapping;
pub mod orders;
pub mod reconcile;
pub mod services;
#[cfg(feature = "dev")]
pub mod stack;
pub mod tokens;
pub mod transform_cmd;
#[cfg(feature = "dev")]
pub mod up;
