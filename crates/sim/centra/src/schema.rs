//! The GraphQL schema of the simulated Integration API, answering the contract query
//! (`order-snapshot.graphql`) field for field. The SDL it prints is checked in as
//! `crates/sim/centra/schema.graphql`.

// async-graphql's derive takes repeated `field(...)` / `arg(...)` attributes by design;
// clippy mistakes them for duplicates.
#![allow(clippy::duplicated_attributes)]

use std::str::FromStr;
use std::sync::Arc;

use async_graphql::{
    Context, EmptySubscription, Enum, InputObject, InputValueError, InputValueResult, Interface,
    Object, Scalar, ScalarType, Schema, Value,
};
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;

use crate::model::{self, Order, OrderLine, OrderStatus};
use crate::state::SimState;

pub type CentraSchema = Schema<QueryRoot, crate::mutation::Mutation, EmptySubscription>;

/// Orders and the back office, as one query type.
#[derive(async_graphql::MergedObject, Default)]
#[graphql(name = "Query")]
pub struct QueryRoot(OrderQuery, crate::queries::OpsQuery);

pub fn build(state: Arc<SimState>) -> CentraSchema {
    Schema::build_with_ignore_name_conflicts(
        QueryRoot::default(),
        crate::mutation::Mutation::default(),
        EmptySubscription,
        ["Float"],
    )
    .data(state)
    .extension(async_graphql::extensions::Analyzer)
    .limit_depth(16)
    .finish()
}

/// Centra's `Float`, carried as an exact decimal: integral values print as integers
/// (`49`), others with their shortest exact digits (`1847.95`), like Centra's JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Num(pub Decimal);

#[Scalar(name = "Float")]
impl ScalarType for Num {
    fn parse(value: Value) -> InputValueResult<Self> {
        match value {
            Value::Number(n) => {
                let text = n.to_string();
                Decimal::from_str(&text)
                    .or_else(|_| Decimal::from_scientific(&text))
                    .map(Num)
                    .map_err(|_| InputValueError::custom(format!("{text} is not a decimal")))
            }
            other => Err(InputValueError::expected_type(other)),
        }
    }

    fn to_value(&self) -> Value {
        let d = self.0.normalize();
        if d.scale() == 0
            && let Some(i) = d.to_i64()
        {
            return Value::Number(i.into());
        }
        d.to_f64()
            .and_then(serde_json::Number::from_f64)
            .map(Value::Number)
            .unwrap_or(Value::Null)
    }
}

#[derive(Enum, Clone, Copy, PartialEq, Eq)]
#[graphql(rename_items = "SCREAMING_SNAKE_CASE")]
pub enum StoreType {
    DirectToConsumer,
    Wholesale,
}

pub struct Store;

#[Object]
impl Store {
    async fn id(&self) -> i64 {
        1
    }
    #[graphql(name = "type")]
    async fn kind(&self) -> StoreType {
        StoreType::DirectToConsumer
    }
}

pub struct Market(pub Arc<Order>);

#[Object]
impl Market {
    async fn id(&self) -> i64 {
        self.0.market.id
    }
    async fn name(&self) -> &str {
        self.0.market.name
    }
}

pub struct Pricelist(Arc<Order>);

#[Object]
impl Pricelist {
    async fn id(&self) -> i64 {
        self.0.market.pricelist_id
    }
    async fn name(&self) -> &str {
        self.0.market.pricelist_name
    }
}

pub struct Country {
    code: String,
    name: String,
}

#[Object]
impl Country {
    async fn code(&self) -> Option<&str> {
        Some(&self.code)
    }
    async fn name(&self) -> Option<&str> {
        Some(&self.name)
    }
}

pub struct Currency {
    code: &'static str,
}

#[Object]
impl Currency {
    async fn id(&self) -> i64 {
        match self.code {
            "SEK" => 1,
            "GBP" => 2,
            "EUR" => 3,
            "USD" => 4,
            _ => 5,
        }
    }
    async fn code(&self) -> &str {
        self.code
    }
}

/// `MonetaryValue { value currency conversionRate formattedValue }`.
pub struct MonetaryValue {
    value: Decimal,
    currency: &'static str,
    exponent: u32,
    rate: Decimal,
}

impl MonetaryValue {
    fn of(order: &Order, value: Decimal) -> Self {
        MonetaryValue {
            value,
            currency: order.market.currency,
            exponent: order.market.exponent,
            rate: order.market.conversion_rate,
        }
    }
}

#[Object]
impl MonetaryValue {
    async fn value(&self) -> Num {
        Num(self.value)
    }
    async fn currency(&self) -> Currency {
        Currency {
            code: self.currency,
        }
    }
    async fn conversion_rate(&self) -> Num {
        Num(self.rate)
    }
    async fn formatted_value(&self) -> String {
        format!("{} {}", self.value.round_dp(self.exponent), self.currency)
    }
}

pub struct OrderTotals(Arc<Order>);

#[Object]
impl OrderTotals {
    async fn shipping(&self) -> MonetaryValue {
        MonetaryValue::of(&self.0, self.0.shipping)
    }
    async fn handling(&self) -> MonetaryValue {
        MonetaryValue::of(&self.0, self.0.handling)
    }
    async fn tax_added(&self) -> MonetaryValue {
        MonetaryValue::of(&self.0, self.0.figures().tax_added)
    }
    async fn tax_deducted(&self) -> MonetaryValue {
        MonetaryValue::of(&self.0, self.0.figures().tax_deducted)
    }
    async fn tax_included(&self) -> MonetaryValue {
        MonetaryValue::of(&self.0, self.0.figures().tax_included)
    }
    async fn discounts(&self) -> MonetaryValue {
        MonetaryValue::of(&self.0, self.0.figures().vouchers)
    }
    async fn quantity(&self) -> i64 {
        self.0.lines.iter().map(|l| l.quantity).sum()
    }
}

pub struct ShippingOption(Arc<Order>);

#[Object]
impl ShippingOption {
    async fn id(&self) -> i64 {
        self.0.market.shipping_option.id
    }
    async fn name(&self) -> &str {
        self.0.market.shipping_option.name
    }
    async fn uri(&self) -> &str {
        self.0.market.shipping_option.uri
    }
}

pub struct ShippingPriceGroup(Arc<Order>);

#[Object]
impl ShippingPriceGroup {
    async fn shipping_option(&self) -> ShippingOption {
        ShippingOption(self.0.clone())
    }
}

pub struct Voucher {
    name: String,
    code: String,
    kind: &'static str,
}

#[Object]
impl Voucher {
    async fn name(&self) -> &str {
        &self.name
    }
    async fn code(&self) -> &str {
        &self.code
    }
    #[graphql(name = "type")]
    async fn kind(&self) -> &str {
        self.kind
    }
}

pub struct AppliedDiscount {
    order: Arc<Order>,
    index: usize,
}

#[Object]
impl AppliedDiscount {
    async fn value(&self) -> MonetaryValue {
        MonetaryValue::of(&self.order, self.order.vouchers[self.index].value)
    }
    async fn discount(&self) -> Voucher {
        let v = &self.order.vouchers[self.index];
        Voucher {
            name: v.name.clone(),
            code: v.code.clone(),
            kind: v.kind,
        }
    }
}

#[derive(Interface)]
#[graphql(field(name = "value", ty = "MonetaryValue"))]
pub enum OrderDiscount {
    AppliedDiscount(AppliedDiscount),
}

pub struct PaymentMethod(Arc<Order>);

#[Object]
impl PaymentMethod {
    async fn uri(&self) -> &str {
        self.0.payment_uri
    }
    async fn plugin(&self) -> &str {
        self.0.payment_plugin
    }
    async fn name(&self) -> &str {
        self.0.payment_plugin
    }
}

#[derive(Clone)]
pub struct PaymentHistoryEntry {
    order: Arc<Order>,
    index: usize,
}

impl PaymentHistoryEntry {
    /// The order's newest entry (e.g. the capture just made).
    pub fn latest(order: Arc<Order>) -> Option<Self> {
        let index = order.payment_history.len().checked_sub(1)?;
        Some(PaymentHistoryEntry { order, index })
    }
}

#[Object]
impl PaymentHistoryEntry {
    async fn id(&self) -> i64 {
        self.order.payment_history[self.index].id
    }
    async fn created_at(&self) -> &str {
        &self.order.payment_history[self.index].created_at
    }
    async fn status(&self) -> &str {
        self.order.payment_history[self.index].status
    }
    async fn entry_type(&self) -> &str {
        self.order.payment_history[self.index].entry_type
    }
    async fn external_reference(&self) -> &str {
        &self.order.payment_history[self.index].external_reference
    }
    async fn value(&self) -> MonetaryValue {
        MonetaryValue::of(&self.order, self.order.payment_history[self.index].value)
    }
}

pub struct Product {
    id: i64,
    name: String,
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
    id: i64,
    name: String,
    number: String,
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
    sku: String,
    ean: String,
    size_number: String,
    description: String,
    preorder: bool,
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
    order: Arc<Order>,
    line: OrderLine,
}

impl LineData {
    fn line(&self) -> &OrderLine {
        &self.line
    }

    fn money(&self, including_tax: bool, value: Decimal) -> MonetaryValue {
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

pub struct ProductOrderLine(LineData);
line_fields!(ProductOrderLine);

pub struct BundleOrderLine(LineData);
line_fields!(BundleOrderLine);

/// A bundle's component, listed after its bundle line (centra.dev documents the type).
pub struct BundleItemOrderLine(LineData);
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

pub struct Address(model::Address);

#[Object]
impl Address {
    async fn company_name(&self) -> Option<&str> {
        self.0.company_name.as_deref()
    }
    async fn first_name(&self) -> Option<&str> {
        Some(&self.0.first_name)
    }
    async fn last_name(&self) -> Option<&str> {
        Some(&self.0.last_name)
    }
    async fn address1(&self) -> Option<&str> {
        Some(&self.0.address1)
    }
    async fn address2(&self) -> Option<&str> {
        self.0.address2.as_deref()
    }
    async fn city(&self) -> Option<&str> {
        Some(&self.0.city)
    }
    async fn state_or_province(&self) -> Option<&str> {
        self.0.state_or_province.as_deref()
    }
    async fn zip_code(&self) -> Option<&str> {
        Some(&self.0.zip_code)
    }
    async fn country(&self) -> Option<Country> {
        Some(Country {
            code: self.0.country_code.clone(),
            name: self.0.country_name.clone(),
        })
    }
    async fn email(&self) -> Option<&str> {
        Some(&self.0.email)
    }
    async fn phone_number(&self) -> Option<&str> {
        Some(&self.0.phone_number)
    }
    async fn vat_number(&self) -> Option<&str> {
        self.0.vat_number.as_deref()
    }
}

pub struct Customer(Arc<Order>);

#[Object]
impl Customer {
    async fn id(&self) -> i64 {
        self.0.customer.id
    }
    async fn email(&self) -> &str {
        &self.0.customer.email
    }
    async fn first_name(&self) -> &str {
        &self.0.customer.first_name
    }
    async fn last_name(&self) -> &str {
        &self.0.customer.last_name
    }
}

/// A direct-to-consumer order.
pub struct DirectToConsumerOrder(pub Arc<Order>);

#[Object]
impl DirectToConsumerOrder {
    async fn id(&self) -> &str {
        &self.0.id
    }
    async fn number(&self) -> i64 {
        self.0.number
    }
    async fn status(&self) -> OrderStatus {
        self.0.status
    }
    async fn is_on_hold(&self) -> bool {
        self.0.is_on_hold
    }
    async fn is_locked(&self) -> bool {
        self.0.is_locked
    }
    async fn order_date(&self, format: Option<String>) -> String {
        date(&self.0.order_date, format.as_deref())
    }
    async fn created_at(&self, format: Option<String>) -> String {
        date(&self.0.order_date, format.as_deref())
    }
    async fn store(&self) -> Store {
        Store
    }
    async fn market(&self) -> Market {
        Market(self.0.clone())
    }
    async fn pricelist(&self) -> Pricelist {
        Pricelist(self.0.clone())
    }
    async fn country(&self) -> Country {
        Country {
            code: self.0.market.country_code.to_owned(),
            name: self.0.market.country_name.to_owned(),
        }
    }
    async fn grand_total(&self, #[graphql(default = true)] including_tax: bool) -> MonetaryValue {
        let f = self.0.figures();
        MonetaryValue::of(
            &self.0,
            if including_tax {
                f.grand_total
            } else {
                f.grand_total_ex_tax
            },
        )
    }
    async fn totals(&self) -> OrderTotals {
        OrderTotals(self.0.clone())
    }
    async fn shipping_price_group(&self) -> ShippingPriceGroup {
        ShippingPriceGroup(self.0.clone())
    }
    async fn discounts_applied(&self) -> Vec<OrderDiscount> {
        (0..self.0.vouchers.len())
            .map(|index| {
                OrderDiscount::AppliedDiscount(AppliedDiscount {
                    order: self.0.clone(),
                    index,
                })
            })
            .collect()
    }
    async fn payment_method(&self) -> PaymentMethod {
        PaymentMethod(self.0.clone())
    }
    async fn payment_history(&self) -> Vec<PaymentHistoryEntry> {
        (0..self.0.payment_history.len())
            .map(|index| PaymentHistoryEntry {
                order: self.0.clone(),
                index,
            })
            .collect()
    }
    async fn lines(
        &self,
        #[graphql(default = false)] include_fully_cancelled: bool,
    ) -> Vec<OrderLineIface> {
        model::listed_lines(&self.0.lines, include_fully_cancelled)
            .into_iter()
            .map(|(kind, line)| {
                let data = LineData {
                    order: self.0.clone(),
                    line: line.into_owned(),
                };
                match kind {
                    model::LineKind::Product => {
                        OrderLineIface::ProductOrderLine(ProductOrderLine(data))
                    }
                    model::LineKind::Bundle => {
                        OrderLineIface::BundleOrderLine(BundleOrderLine(data))
                    }
                    model::LineKind::BundleItem => {
                        OrderLineIface::BundleItemOrderLine(BundleItemOrderLine(data))
                    }
                }
            })
            .collect()
    }
    async fn shipping_address(&self) -> Address {
        Address(self.0.shipping_address.clone())
    }
    async fn billing_address(&self) -> Address {
        Address(self.0.billing_address.clone())
    }
    async fn customer(&self) -> Customer {
        Customer(self.0.clone())
    }
}

fn date(stored: &str, format: Option<&str>) -> String {
    match format {
        Some("Y-m-d") => stored.get(..10).unwrap_or(stored).to_owned(),
        _ => stored.to_owned(),
    }
}

#[derive(Interface)]
#[graphql(
    name = "Order",
    field(name = "id", ty = "&str"),
    field(name = "number", ty = "i64"),
    field(name = "status", ty = "OrderStatus"),
    field(name = "is_on_hold", ty = "bool"),
    field(name = "is_locked", ty = "bool"),
    field(
        name = "order_date",
        ty = "String",
        arg(name = "format", ty = "Option<String>")
    ),
    field(
        name = "created_at",
        ty = "String",
        arg(name = "format", ty = "Option<String>")
    ),
    field(name = "store", ty = "Store"),
    field(name = "market", ty = "Market"),
    field(name = "pricelist", ty = "Pricelist"),
    field(name = "country", ty = "Country"),
    field(
        name = "grand_total",
        ty = "MonetaryValue",
        arg(name = "including_tax", ty = "bool", default = true)
    ),
    field(name = "totals", ty = "OrderTotals"),
    field(name = "shipping_price_group", ty = "ShippingPriceGroup"),
    field(name = "discounts_applied", ty = "Vec<OrderDiscount>"),
    field(name = "payment_method", ty = "PaymentMethod"),
    field(name = "payment_history", ty = "Vec<PaymentHistoryEntry>"),
    field(
        name = "lines",
        ty = "Vec<OrderLineIface>",
        arg(name = "include_fully_cancelled", ty = "bool", default = false)
    ),
    field(name = "shipping_address", ty = "Address"),
    field(name = "billing_address", ty = "Address")
)]
pub enum OrderIface {
    DirectToConsumerOrder(DirectToConsumerOrder),
}

/// Centra's `DateTimeTz`: ISO 8601 with offset out ("2022-06-23T15:47:12+00:00"); in, the
/// looser forms Centra's examples use — "2022-06-23 15:47:12", RFC 3339, a bare date, and
/// PHP-style relative times ("now", "yesterday", "-1 hour"). Anything else is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DateTimeTz(pub chrono::DateTime<chrono::Utc>);

impl DateTimeTz {
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        let now = chrono::Utc::now();
        let relative = match text {
            "now" => Some(now),
            "today" => now.date_naive().and_hms_opt(0, 0, 0).map(|t| t.and_utc()),
            "yesterday" => (now.date_naive() - chrono::Duration::days(1))
                .and_hms_opt(0, 0, 0)
                .map(|t| t.and_utc()),
            _ => relative(text, now),
        };
        relative
            .or_else(|| crate::state::parse_time(text))
            .or_else(|| {
                chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
                    .ok()
                    .and_then(|d| d.and_hms_opt(0, 0, 0))
                    .map(|t| t.and_utc())
            })
            .map(DateTimeTz)
    }
}

/// "-1 hour", "+2 days", "-30 minutes" from `now`.
fn relative(
    text: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Option<chrono::DateTime<chrono::Utc>> {
    let (amount, unit) = text.split_once(' ')?;
    let amount: i64 = amount.parse().ok()?;
    let span = match unit.trim_end_matches('s') {
        "second" => chrono::Duration::seconds(amount),
        "minute" => chrono::Duration::minutes(amount),
        "hour" => chrono::Duration::hours(amount),
        "day" => chrono::Duration::days(amount),
        _ => return None,
    };
    Some(now + span)
}

#[Scalar(name = "DateTimeTz")]
impl ScalarType for DateTimeTz {
    fn parse(value: Value) -> async_graphql::InputValueResult<Self> {
        match &value {
            Value::String(text) => DateTimeTz::parse(text).ok_or_else(|| {
                async_graphql::InputValueError::custom(format!(
                    "{text} is not a date Centra understands"
                ))
            }),
            _ => Err(async_graphql::InputValueError::expected_type(value)),
        }
    }
    fn to_value(&self) -> Value {
        Value::String(self.0.format("%Y-%m-%dT%H:%M:%S+00:00").to_string())
    }
}

/// `MonetaryValueInput` (e.g. `internalShippingCost`, `unitCost`): accepted, not kept.
#[derive(InputObject, Default, Clone)]
pub struct MonetaryValueInput {
    pub value: f64,
    pub currency_iso_code: String,
}

/// A time range (`{ from, to }`, each optional).
#[derive(InputObject, Default)]
pub struct DateRange {
    pub from: Option<DateTimeTz>,
    pub to: Option<DateTimeTz>,
}

impl DateRange {
    pub fn contains(&self, at: chrono::DateTime<chrono::Utc>) -> bool {
        self.from.is_none_or(|f| at >= f.0) && self.to.is_none_or(|t| at <= t.0)
    }
}

#[derive(InputObject, Default)]
pub struct OrderFilter {
    pub id: Option<Vec<String>>,
    pub number: Option<Vec<i64>>,
    pub status: Option<Vec<OrderStatus>>,
    pub store_type: Option<StoreType>,
    pub created_at: Option<DateRange>,
    /// Centra's filter for "changed since"; used by Ferry's periodic resync.
    pub updated_at: Option<DateRange>,
    pub order_date: Option<DateRange>,
}

#[derive(Default)]
pub struct OrderQuery;

/// The permissions reading orders takes, by what the query selects.
fn order_permissions(ctx: &Context<'_>, field: &str) -> async_graphql::Result<()> {
    crate::auth::need(ctx, "Order:read", field)?;
    let look = ctx.look_ahead();
    if look.field("shippingAddress").exists() {
        crate::auth::need(ctx, "Order.shippingAddress:read", field)?;
    }
    if look.field("billingAddress").exists() {
        crate::auth::need(ctx, "Order.billingAddress:read", field)?;
    }
    if look.field("customer").exists() {
        crate::auth::need(ctx, "Purchaser:read", field)?;
    }
    Ok(())
}

#[Object]
impl OrderQuery {
    /// Orders by filter, oldest number first; `page` is 1-based, `limit` 1–200. Complexity:
    /// nested lists multiply (Centra's docs), each paginated list by its `limit`.
    #[graphql(complexity = "limit.max(1) as usize * child_complexity + 1")]
    async fn orders(
        &self,
        ctx: &Context<'_>,
        #[graphql(name = "where")] filter: Option<OrderFilter>,
        #[graphql(default = 20)] limit: i32,
        #[graphql(default = 1)] page: i32,
    ) -> async_graphql::Result<Vec<OrderIface>> {
        if !(1..=200).contains(&limit) {
            return Err("Limit must be in range 1 - 200".into());
        }
        if page < 1 {
            return Err("Page must be 1 or more".into());
        }
        order_permissions(ctx, "orders")?;
        let state = ctx.data::<Arc<SimState>>()?;
        let filter = filter.unwrap_or_default();
        let orders = state.find_orders(&filter, limit as usize, page as usize);
        Ok(orders
            .into_iter()
            .map(|o| OrderIface::DirectToConsumerOrder(DirectToConsumerOrder(o)))
            .collect())
    }

    /// One order by its hash id.
    async fn order(
        &self,
        ctx: &Context<'_>,
        id: String,
    ) -> async_graphql::Result<Option<OrderIface>> {
        order_permissions(ctx, "order")?;
        let state = ctx.data::<Arc<SimState>>()?;
        Ok(state
            .order_by_id(&id)
            .map(|o| OrderIface::DirectToConsumerOrder(DirectToConsumerOrder(o))))
    }
}
