//! The reconciler: proves that every Centra order reached the ERP once, whole and on time,
//! by checking Centra, the ledger and the ERP against each other, and gives every
//! difference a cause, an owner and the money at stake.

pub mod check;
pub mod compare;
pub mod expected;
pub mod figures;
pub mod report;
pub mod service;
pub mod shipments;
pub mod stock;
pub mod tell;
pub mod timeliness;

pub use service::{ReconcilerError, SERVICE, run};
