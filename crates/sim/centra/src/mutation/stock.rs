//! Stock mutations: absolute (`setStock`) and delta (`changeStock`) per size and warehouse.

use std::sync::Arc;

use async_graphql::{Context, Enum, InputObject, Object, SimpleObject};

use crate::auth::need;
use crate::ops::{UserError, UserWarning, user_error};
use crate::queries::StockChangeRef;
use crate::state::SimState;

use super::{ProductSizeInput, WarehouseInput, size_index, warehouse_id};

#[derive(Enum, Clone, Copy, PartialEq, Eq)]
#[graphql(rename_items = "SCREAMING_SNAKE_CASE")]
pub enum StockQuantityType {
    Physical,
    /// [INF] the second value the reference suspects; physical = allocated + this.
    FreeToAllocate,
}

#[derive(InputObject)]
pub struct StockSetProductSizeInput {
    pub product_size: ProductSizeInput,
    pub quantity: i64,
}

#[derive(InputObject)]
pub struct StockSetInput {
    pub warehouse: WarehouseInput,
    pub description: String,
    pub stock_quantity_type: StockQuantityType,
    pub product_sizes: Option<Vec<StockSetProductSizeInput>>,
}

#[derive(InputObject)]
pub struct StockChangeProductSizeInput {
    pub product_size: ProductSizeInput,
    pub delivered_quantity: i64,
}

#[derive(InputObject)]
pub struct StockChangeInput {
    pub into_warehouse: Option<WarehouseInput>,
    pub out_from_warehouse: Option<WarehouseInput>,
    pub description: String,
    pub product_sizes: Option<Vec<StockChangeProductSizeInput>>,
}

#[derive(SimpleObject)]
pub struct StockSetPayload {
    pub stock_changes: Vec<StockChangeRef>,
    pub user_errors: Vec<UserError>,
    pub user_warnings: Vec<UserWarning>,
}

#[derive(SimpleObject)]
pub struct StockChangePayload {
    pub stock_change: Option<StockChangeRef>,
    pub user_errors: Vec<UserError>,
    pub user_warnings: Vec<UserWarning>,
}

#[derive(Default)]
pub struct StockMutation;

#[Object]
impl StockMutation {
    /// Absolute stock per size in one warehouse. Bundles and unknown sizes are skipped with
    /// a warning ([INF]), so one bad row does not block a batch.
    async fn set_stock(
        &self,
        ctx: &Context<'_>,
        input: StockSetInput,
    ) -> async_graphql::Result<StockSetPayload> {
        need(ctx, "StockChange:write", "setStock")?;
        let state = ctx.data::<Arc<SimState>>()?;
        let outcome = state.ops_mut(|ops| {
            let warehouse = warehouse_id(ops, &input.warehouse, "warehouse")?;
            let mut warnings = Vec::new();
            let mut levels = Vec::new();
            for (i, row) in input
                .product_sizes
                .as_deref()
                .unwrap_or_default()
                .iter()
                .enumerate()
            {
                let index = i.to_string();
                if row.quantity < 0 {
                    return Err(user_error(
                        "Quantity must be 0 or more",
                        &["input", "productSizes", &index, "quantity"],
                    ));
                }
                match size_index(ops, &row.product_size)? {
                    Some(size) if ops.sizes[size].components.is_empty() => {
                        levels.push((size, row.quantity));
                    }
                    Some(size) => warnings.push(crate::ops::user_warning(
                        format!(
                            "{} is a bundle; its stock comes from its components, skipped",
                            ops.sizes[size].sku
                        ),
                        &["input", "productSizes", &index],
                    )),
                    None => warnings.push(crate::ops::user_warning(
                        "Product size not found, skipped",
                        &["input", "productSizes", &index],
                    )),
                }
            }
            let id = ops.set_stock(
                warehouse,
                &input.description,
                input.stock_quantity_type == StockQuantityType::FreeToAllocate,
                &levels,
            );
            Ok((id, warnings))
        });
        Ok(match outcome {
            Ok((id, warnings)) => StockSetPayload {
                stock_changes: vec![StockChangeRef { id }],
                user_errors: Vec::new(),
                user_warnings: warnings,
            },
            Err(e) => StockSetPayload {
                stock_changes: Vec::new(),
                user_errors: vec![e],
                user_warnings: Vec::new(),
            },
        })
    }

    /// Stock in (`intoWarehouse`), out (`outFromWarehouse`), or a transfer (both).
    async fn change_stock(
        &self,
        ctx: &Context<'_>,
        input: StockChangeInput,
    ) -> async_graphql::Result<StockChangePayload> {
        need(ctx, "StockChange:write", "changeStock")?;
        let state = ctx.data::<Arc<SimState>>()?;
        let outcome = state.ops_mut(|ops| {
            let into = input
                .into_warehouse
                .as_ref()
                .map(|w| warehouse_id(ops, w, "intoWarehouse"))
                .transpose()?;
            let out = input
                .out_from_warehouse
                .as_ref()
                .map(|w| warehouse_id(ops, w, "outFromWarehouse"))
                .transpose()?;
            if into.is_none() && out.is_none() {
                return Err(user_error(
                    "Provide intoWarehouse, outFromWarehouse or both",
                    &["input"],
                ));
            }
            let mut changes = Vec::new();
            for (i, row) in input
                .product_sizes
                .as_deref()
                .unwrap_or_default()
                .iter()
                .enumerate()
            {
                let index = i.to_string();
                if row.delivered_quantity <= 0 {
                    return Err(user_error(
                        "deliveredQuantity must be positive",
                        &["input", "productSizes", &index, "deliveredQuantity"],
                    ));
                }
                match size_index(ops, &row.product_size)? {
                    Some(size) if ops.sizes[size].components.is_empty() => {
                        changes.push((size, row.delivered_quantity));
                    }
                    _ => {
                        return Err(user_error(
                            "Product size not found or a bundle",
                            &["input", "productSizes", &index, "productSize"],
                        ));
                    }
                }
            }
            ops.change_stock(into, out, &input.description, &changes)
        });
        Ok(match outcome {
            Ok(id) => StockChangePayload {
                stock_change: Some(StockChangeRef { id }),
                user_errors: Vec::new(),
                user_warnings: Vec::new(),
            },
            Err(e) => StockChangePayload {
                stock_change: None,
                user_errors: vec![e],
                user_warnings: Vec::new(),
            },
        })
    }
}
