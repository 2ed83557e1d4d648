//! Stock mutations: absolute (`setStock`) and delta (`changeStock`) per size and warehouse.

use std::sync::Arc;

use async_graphql::{Context, Enum, InputObject, Object, SimpleObject};

use crate::auth::need;
use crate::ops::{UserError, UserWarning, user_error};
use crate::queries::StockChangeRef;
use crate::schema::MonetaryValueInput;
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
    pub unit_cost: Option<MonetaryValueInput>,
}

/// `{ id }` of a product variant.
#[derive(InputObject, Clone, Copy)]
pub struct ProductVariantInput {
    pub id: i64,
}

/// A size of a variant by its id or name (`{ name: "XL" }`).
#[derive(InputObject, Clone, Default)]
pub struct SizeInput {
    pub id: Option<i64>,
    pub name: Option<String>,
}

#[derive(InputObject)]
pub struct ProductSizeStockSetInput {
    pub size: SizeInput,
    pub quantity: i64,
}

/// The documented example's form: a variant and the levels of its sizes.
#[derive(InputObject)]
pub struct ProductVariantStockSetInput {
    pub product_variant: ProductVariantInput,
    pub size_stock_levels: Vec<ProductSizeStockSetInput>,
    pub unit_cost: Option<MonetaryValueInput>,
}

#[derive(InputObject)]
pub struct StockSetInput {
    pub warehouse: WarehouseInput,
    pub description: String,
    pub stock_quantity_type: StockQuantityType,
    pub product_variants: Option<Vec<ProductVariantStockSetInput>>,
    pub product_sizes: Option<Vec<StockSetProductSizeInput>>,
}

#[derive(InputObject)]
pub struct StockChangeProductSizeInput {
    pub product_size: ProductSizeInput,
    pub delivered_quantity: i64,
}

#[derive(InputObject)]
pub struct ProductSizeStockChangeInput {
    pub size: SizeInput,
    pub delivered_quantity: i64,
}

#[derive(InputObject)]
pub struct ProductVariantStockChangeInput {
    pub product_variant: ProductVariantInput,
    pub unit_cost: Option<MonetaryValueInput>,
    pub size_changes: Vec<ProductSizeStockChangeInput>,
}

#[derive(InputObject)]
pub struct StockChangeInput {
    pub into_warehouse: Option<WarehouseInput>,
    pub out_from_warehouse: Option<WarehouseInput>,
    pub description: String,
    pub product_variants: Option<Vec<ProductVariantStockChangeInput>>,
    pub product_sizes: Option<Vec<StockChangeProductSizeInput>>,
}

/// One row of a stock mutation, whichever form it came in: where it is in the input (for
/// messages), the size it names (if known) and its quantity.
struct Row {
    path: Vec<String>,
    size: Option<usize>,
    quantity: i64,
}

/// The size `{ id }` or `{ name }` of a variant.
fn variant_size(
    ops: &crate::ops::Ops,
    variant: ProductVariantInput,
    size: &SizeInput,
) -> Result<Option<usize>, UserError> {
    match (size.id, size.name.as_deref()) {
        (Some(id), None) => Ok(usize::try_from(id - 1).ok().filter(|i| {
            ops.sizes
                .get(*i)
                .is_some_and(|s| s.variant_id == variant.id)
        })),
        (None, Some(name)) => Ok(ops.variant_size(variant.id, name)),
        _ => Err(user_error(
            "Exactly one input field should be provided",
            &["size"],
        )),
    }
}

/// Every row of `setStock`, variants first, then sizes.
fn set_rows(ops: &crate::ops::Ops, input: &StockSetInput) -> Result<Vec<Row>, UserError> {
    let mut rows = Vec::new();
    for (i, v) in input.product_variants.iter().flatten().enumerate() {
        for (j, level) in v.size_stock_levels.iter().enumerate() {
            rows.push(Row {
                path: path(&[
                    "input",
                    "productVariants",
                    &i.to_string(),
                    "sizeStockLevels",
                    &j.to_string(),
                ]),
                size: variant_size(ops, v.product_variant, &level.size)?,
                quantity: level.quantity,
            });
        }
    }
    for (i, row) in input.product_sizes.iter().flatten().enumerate() {
        rows.push(Row {
            path: path(&["input", "productSizes", &i.to_string()]),
            size: size_index(ops, &row.product_size)?,
            quantity: row.quantity,
        });
    }
    Ok(rows)
}

/// Every row of `changeStock`, variants first, then sizes.
fn change_rows(ops: &crate::ops::Ops, input: &StockChangeInput) -> Result<Vec<Row>, UserError> {
    let mut rows = Vec::new();
    for (i, v) in input.product_variants.iter().flatten().enumerate() {
        for (j, change) in v.size_changes.iter().enumerate() {
            rows.push(Row {
                path: path(&[
                    "input",
                    "productVariants",
                    &i.to_string(),
                    "sizeChanges",
                    &j.to_string(),
                ]),
                size: variant_size(ops, v.product_variant, &change.size)?,
                quantity: change.delivered_quantity,
            });
        }
    }
    for (i, row) in input.product_sizes.iter().flatten().enumerate() {
        rows.push(Row {
            path: path(&["input", "productSizes", &i.to_string()]),
            size: size_index(ops, &row.product_size)?,
            quantity: row.delivered_quantity,
        });
    }
    Ok(rows)
}

fn path(parts: &[&str]) -> Vec<String> {
    parts.iter().map(|p| (*p).to_owned()).collect()
}

fn strs(path: &[String]) -> Vec<&str> {
    path.iter().map(String::as_str).collect()
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
            for row in set_rows(ops, &input)? {
                let at = strs(&row.path);
                if row.quantity < 0 {
                    return Err(user_error(
                        "Quantity must be 0 or more",
                        &[at.as_slice(), &["quantity"]].concat(),
                    ));
                }
                match row.size {
                    Some(size) if ops.sizes[size].components.is_empty() => {
                        levels.push((size, row.quantity));
                    }
                    Some(size) => warnings.push(crate::ops::user_warning(
                        format!(
                            "{} is a bundle; its stock comes from its components, skipped",
                            ops.sizes[size].sku
                        ),
                        &at,
                    )),
                    None => warnings.push(crate::ops::user_warning(
                        "Product size not found, skipped",
                        &at,
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
            for row in change_rows(ops, &input)? {
                let at = strs(&row.path);
                if row.quantity <= 0 {
                    return Err(user_error(
                        "deliveredQuantity must be positive",
                        &[at.as_slice(), &["deliveredQuantity"]].concat(),
                    ));
                }
                match row.size {
                    Some(size) if ops.sizes[size].components.is_empty() => {
                        changes.push((size, row.quantity));
                    }
                    _ => {
                        return Err(user_error("Product size not found or a bundle", &at));
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
