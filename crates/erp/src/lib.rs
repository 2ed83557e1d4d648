//! What Ferry needs from an ERP — one trait per capability (post orders, customers, the
//! shipment feed, the stock feed, reading documents back), with every error classified transient or permanent where
//! it arises — and the registry that builds a tenant's connector from its `[erp]` table. A
//! new ERP is one new crate under `crates/erp/connectors/` (see `docs/connectors.md`).

pub mod capability;
pub mod error;
pub mod registry;
pub mod types;

pub use capability::{
    ChangeOrders, CreditNotes, Customers, Erp, PostOrders, ReadBack, ShipmentFeed, StockFeed,
    create_one_by_one,
};
pub use error::ErpError;
pub use registry::{BuildContext, Connector, Connectors, Kind, Registry, RegistryError, Settings};
pub use types::*;
