//! The order itself: `DirectToConsumerOrder`, its customer and addresses, and the `Order`
//! interface.

use super::*;

pub struct Address(pub(crate) model::Address);

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

/// A customer: an order's (as it was when ordered) or an account's (as it is now).
pub struct Customer(pub crate::ops::CustomerAccount);

#[Object]
impl Customer {
    async fn id(&self) -> i64 {
        self.0.id
    }
    async fn email(&self) -> &str {
        &self.0.email
    }
    async fn first_name(&self) -> &str {
        &self.0.first_name
    }
    async fn last_name(&self) -> &str {
        &self.0.last_name
    }
    /// [INF] Centra's pages do not show a customer's address fields.
    async fn billing_address(&self) -> Address {
        Address(self.0.billing_address.clone())
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
        Customer(crate::ops::CustomerAccount::of(&self.0))
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
