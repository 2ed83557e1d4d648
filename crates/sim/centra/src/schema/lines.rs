//! Order lines (products, bundles and their components) and the catalogue they point at.

use super::*;

pub struct Product {
    pub(crate) id: i64,
    pub(crate) name: String,
}

#[Object]
impl Product {
    async fn id(&self) -> i64 {
        self.id
    }
    async fn name(&self) -> &str {
        &self.name
    }
}

pub struct ProductVariant {
    pub(crate) id: i64,
    pub(crate) name: String,
    pub(crate) number: String,
}

#[Object]
impl ProductVariant {
    async fn id(&self) -> i64 {
        self.id
    }
    async fn name(&self) -> &str {
        &self.name
    }
    async fn variant_number(&self) -> &str {
        &self.number
    }
}

pub struct ProductSize {
    pub(crate) sku: String,
    pub(crate) ean: String,
    pub(crate) size_number: String,
    pub(crate) description: String,
    pub(crate) preorder: bool,
}

impl ProductSize {
    pub fn catalogue(record: &crate::ops::SizeRecord) -> ProductSize {
        ProductSize {
            sku: record.sku.clone(),
            ean: record.ean.clone(),
            size_number: record.size_number.clone(),
            description: record.size_number.clone(),
            preorder: false,
        }
    }
}

#[Object]
impl ProductSize {
    /// The catalogue id (0 for a SKU the catalogue does not know).
    async fn id(&self, ctx: &Context<'_>) -> async_graphql::Result<i64> {
        let state = ctx.data::<Arc<SimState>>()?;
        Ok(state.ops(|o| o.size_by_sku(&self.sku).map_or(0, |i| o.sizes[i].id)))
    }
    /// Whether this size is a bundle (its stock is derived from its components).
    async fn is_bundle(&self, ctx: &Context<'_>) -> async_graphql::Result<bool> {
        let state = ctx.data::<Arc<SimState>>()?;
        Ok(state.ops(|o| {
            o.size_by_sku(&self.sku)
                .is_some_and(|i| !o.sizes[i].components.is_empty())
        }))
    }
    /// Stock per warehouse (`freeToAllocateQuantity` is the cheap field).
    async fn stock(
        &self,
        ctx: &Context<'_>,
        #[graphql(name = "where")] filter: Option<crate::queries::StockFilter>,
    ) -> async_graphql::Result<Vec<crate::queries::StockView>> {
        crate::auth::need(ctx, "ProductSize.stock:read", "ProductSize.stock")?;
        let state = ctx.data::<Arc<SimState>>()?;
        let wanted = filter.and_then(|f| f.warehouse_id);
        Ok(state.ops(|o| {
            let Some(size) = o.size_by_sku(&self.sku) else {
                return Vec::new();
            };
            o.warehouses
                .iter()
                .filter(|w| wanted.as_ref().is_none_or(|ids| ids.contains(&w.id)))
                .map(|w| crate::queries::StockView::of(o, size, w))
                .collect()
        }))
    }
    #[graphql(name = "SKU")]
    async fn sku(&self) -> &str {
        &self.sku
    }
    #[graphql(name = "EAN")]
    async fn ean(&self) -> &str {
        &self.ean
    }
    async fn size_number(&self) -> &str {
        &self.size_number
    }
    async fn description(&self) -> &str {
        &self.description
    }
    async fn preorder(&self) -> bool {
        self.preorder
    }
}

/// What every order line type shares.
pub struct LineData {
    pub(crate) order: Arc<Order>,
    pub(crate) line: OrderLine,
}

impl LineData {
    pub(crate) fn line(&self) -> &OrderLine {
        &self.line
    }

    pub(crate) fn money(&self, including_tax: bool, value: Decimal) -> MonetaryValue {
        let value = if including_tax {
            value
        } else {
            self.order.unit_price_ex_tax(value, self.line().tax_percent)
        };
        MonetaryValue::of(&self.order, value)
    }
}

macro_rules! line_fields {
    ($ty:ident $(, $extra:item)*) => {
        #[Object]
        impl $ty {
            async fn id(&self) -> i64 {
                self.0.line().id
            }
            async fn tax_percent(&self) -> Num {
                Num(self.0.line().tax_percent)
            }
            async fn product(&self) -> Product {
                Product { id: self.0.line().product_id, name: self.0.line().product_name.clone() }
            }
            async fn product_variant(&self) -> ProductVariant {
                let l = self.0.line();
                ProductVariant { id: l.variant_id, name: l.variant_name.clone(), number: l.variant_number.clone() }
            }
            async fn product_size(&self) -> ProductSize {
                let l = self.0.line();
                ProductSize {
                    sku: l.sku.clone(),
                    ean: l.ean.clone(),
                    size_number: l.size_number.clone(),
                    description: l.size_description.clone(),
                    preorder: l.preorder,
                }
            }
            async fn product_name(&self) -> &str {
                &self.0.line().product_name
            }
            async fn size(&self) -> &str {
                &self.0.line().size_number
            }
            async fn unit_original_price(&self, #[graphql(default = true)] including_tax: bool) -> MonetaryValue {
                self.0.money(including_tax, self.0.line().unit_original_price)
            }
            async fn unit_price(&self, #[graphql(default = true)] including_tax: bool) -> MonetaryValue {
                self.0.money(including_tax, self.0.line().unit_price)
            }
            async fn discount_percent(&self) -> Num {
                Num(self.0.line().discount_percent)
            }
            async fn quantity(&self) -> i64 {
                self.0.line().quantity
            }
            async fn cancelled_quantity(&self) -> i64 {
                self.0.line().cancelled_quantity
            }
            async fn line_value(&self, #[graphql(default = true)] including_tax: bool) -> MonetaryValue {
                let value = if including_tax {
                    self.0.line().line_value()
                } else {
                    self.0.order.line_value_ex_tax(self.0.line())
                };
                MonetaryValue::of(&self.0.order, value)
            }
            $($extra)*
        }
    };
}

pub struct ProductOrderLine(pub(crate) LineData);
line_fields!(ProductOrderLine);

pub struct BundleOrderLine(pub(crate) LineData);
line_fields!(BundleOrderLine);

/// A bundle's component, listed after its bundle line (centra.dev documents the type).
pub struct BundleItemOrderLine(pub(crate) LineData);
line_fields!(BundleItemOrderLine);

#[derive(Interface)]
#[graphql(
    name = "OrderLine",
    field(name = "id", ty = "i64"),
    field(name = "tax_percent", ty = "Num"),
    field(name = "product", ty = "Product"),
    field(name = "product_variant", ty = "ProductVariant"),
    field(name = "product_size", ty = "ProductSize"),
    field(name = "product_name", ty = "&str"),
    field(name = "size", ty = "&str"),
    field(
        name = "unit_original_price",
        ty = "MonetaryValue",
        arg(name = "including_tax", ty = "bool", default = true)
    ),
    field(
        name = "unit_price",
        ty = "MonetaryValue",
        arg(name = "including_tax", ty = "bool", default = true)
    ),
    field(name = "discount_percent", ty = "Num"),
    field(name = "quantity", ty = "i64"),
    field(name = "cancelled_quantity", ty = "i64"),
    field(
        name = "line_value",
        ty = "MonetaryValue",
        arg(name = "including_tax", ty = "bool", default = true)
    )
)]
pub enum OrderLineIface {
    ProductOrderLine(ProductOrderLine),
    BundleOrderLine(BundleOrderLine),
    BundleItemOrderLine(BundleItemOrderLine),
}
