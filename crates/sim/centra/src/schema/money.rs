//! An order's money: monetary values, totals, shipping, vouchers and discounts, payments.

use super::*;

/// `MonetaryValue { value currency conversionRate formattedValue }`.
pub struct MonetaryValue {
    pub(crate) value: Decimal,
    pub(crate) currency: &'static str,
    pub(crate) exponent: u32,
    pub(crate) rate: Decimal,
}

impl MonetaryValue {
    pub(crate) fn of(order: &Order, value: Decimal) -> Self {
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

pub struct OrderTotals(pub(crate) Arc<Order>);

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

pub struct ShippingOption(pub(crate) Arc<Order>);

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

pub struct ShippingPriceGroup(pub(crate) Arc<Order>);

#[Object]
impl ShippingPriceGroup {
    async fn shipping_option(&self) -> ShippingOption {
        ShippingOption(self.0.clone())
    }
}

pub struct Voucher {
    pub(crate) name: String,
    pub(crate) code: String,
    pub(crate) kind: &'static str,
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
    pub(crate) order: Arc<Order>,
    pub(crate) index: usize,
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

pub struct PaymentMethod(pub(crate) Arc<Order>);

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
    pub(crate) order: Arc<Order>,
    pub(crate) index: usize,
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
