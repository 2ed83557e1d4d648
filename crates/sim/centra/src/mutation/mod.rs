//! Mutations of the simulated Integration API, one object per area merged into Centra's
//! `Mutation` type. Business errors come back as `userErrors` in an HTTP 200 answer, as
//! Centra does; every mutation asks for its permission.

mod events;
mod orders;
mod returns;
mod shipments;
mod stock;

use async_graphql::{InputObject, MergedObject};

use crate::ops::{UserError, user_error};
use crate::state::World;

pub use crate::ops::{UserError as UserErrorType, UserWarning as UserWarningType};
pub use events::*;
pub use orders::*;
pub use returns::*;
pub use shipments::*;
pub use stock::*;

/// Centra's `Mutation` type.
#[derive(MergedObject, Default)]
pub struct Mutation(
    OrderMutation,
    ShipmentMutation,
    ReturnMutation,
    StockMutation,
    EventMutation,
);

/// Exactly one of `id` or `number`.
#[derive(InputObject, Default, Clone)]
pub struct OrderInput {
    pub id: Option<String>,
    pub number: Option<i64>,
}

impl OrderInput {
    fn resolve(&self, world: &World<'_>) -> Result<i64, UserError> {
        match (&self.id, self.number) {
            (Some(id), None) => world.order_by_id(id),
            (None, Some(n)) => world.order(n).map(|o| o.number),
            _ => Err(user_error(
                "Exactly one input field should be provided",
                &["order"],
            )),
        }
    }
}

/// A reference by integer id (`{ id: 1 }`).
#[derive(InputObject, Clone, Copy)]
pub struct IdInput {
    pub id: i64,
}

#[derive(InputObject, Clone)]
pub struct OrderLineIdInput {
    pub id: i64,
}

#[derive(InputObject, Default, Clone)]
pub struct WarehouseInput {
    pub id: Option<i64>,
    pub name: Option<String>,
}

#[derive(InputObject, Default, Clone)]
pub struct ProductSizeInput {
    pub id: Option<i64>,
    #[graphql(name = "SKU")]
    pub sku: Option<String>,
    #[graphql(name = "EAN")]
    pub ean: Option<String>,
    #[graphql(name = "UPC")]
    pub upc: Option<String>,
    pub any: Option<String>,
}

fn size_index(ops: &crate::ops::Ops, input: &ProductSizeInput) -> Result<Option<usize>, UserError> {
    ops.find_size(
        input.id,
        input.sku.as_deref(),
        input.ean.as_deref().or(input.upc.as_deref()),
        input.any.as_deref(),
    )
}

fn warehouse_id(
    ops: &crate::ops::Ops,
    input: &WarehouseInput,
    path: &str,
) -> Result<i64, UserError> {
    let found = match (input.id, input.name.as_deref()) {
        (Some(id), None) => ops.warehouse(id),
        (None, Some(name)) => ops.warehouses.iter().find(|w| w.name == name),
        _ => {
            return Err(user_error(
                "Exactly one input field should be provided",
                &["input", path],
            ));
        }
    };
    found
        .map(|w| w.id)
        .ok_or_else(|| user_error("Warehouse not found", &["input", path]))
}
