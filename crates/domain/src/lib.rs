//! Ferry's canonical model and order-to-cash rules: exact money, the Centra order snapshot,
//! the transform to an ERP-bound sales order, and exceptions. Pure code, no I/O, so the
//! `ferry transform` CLI and the transform service share one code path.

#![deny(clippy::float_arithmetic)]

mod bundles;
pub mod credit;
pub mod exception;
pub mod http;
pub mod lookup;
pub mod money;
pub mod quota;
pub mod rules;
pub mod snapshot;
pub mod summary;
pub mod transform;

pub use exception::{ExceptionKind, NewException, Owner, Severity};
pub use money::{Currency, allocate};
pub use rules::{ItemMap, NoItems, ReleasePolicy, Rules};
pub use snapshot::{Snapshot, content_hash};
pub use summary::Summary;
pub use transform::{LineKind, OrderLine, Problem, Release, SalesOrder, transform};
