//! The `ferry` command's library: the local stack (everything in one process), `ferry up`,
//! `ferry transform` and the benchmarks, shared with the end-to-end tests.

pub mod bench;
pub mod bench_centra;
pub mod bench_fulfilment;
pub mod bench_inventory;
pub mod bench_writer;
pub mod centra_check;
pub mod connectors;
pub mod mapping;
pub mod services;
pub mod stack;
pub mod transform_cmd;
pub mod up;
