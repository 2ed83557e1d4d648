//! The simulator's own order model, and Centra's arithmetic over it: line values, vouchers,
//! order-level tax rounded once, and the grand total identity of `order-snapshot.md`.

use rust_decimal::prelude::*;

/// Centra's order statuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, async_graphql::Enum)]
#[graphql(rename_items = "SCREAMING_SNAKE_CASE")]
pub enum OrderStatus {
    Pending,
    Confirmed,
    Processing,
    Shipped,
    Archived,
    Cancelled,
}

/// A market: country, currency, VAT (or US sales tax, added on top of prices).
#[derive(Debug, Clone, PartialEq)]
pub struct Market {
    pub id: i64,
    pub name: &'static str,
    pub country_code: &'static str,
    pub country_name: &'static str,
    pub currency: &'static str,
    /// Minor-unit digits of the currency.
    pub exponent: u32,
    pub conversion_rate: Decimal,
    pub pricelist_id: i64,
    pub pricelist_name: &'static str,
    /// Standard rate in percent.
    pub standard_rate: Decimal,
    /// Reduced rate (books) in percent.
    pub reduced_rate: Decimal,
    /// Prices exclude tax and tax is added at order level (US).
    pub tax_added: bool,
    pub shipping_option: ShippingOption,
    pub shipping_price: Decimal,
    pub cities: &'static [&'static str],
    pub streets: &'static [&'static str],
    pub zip: &'static str,
    pub state: Option<&'static str>,
    /// Generated orders are placed here when a mix names no markets.
    pub sample: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShippingOption {
    pub id: i64,
    pub name: &'static str,
    pub uri: &'static str,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Address {
    pub company_name: Option<String>,
    pub first_name: String,
    pub last_name: String,
    pub address1: String,
    pub address2: Option<String>,
    pub city: String,
    pub state_or_province: Option<String>,
    pub zip_code: String,
    pub country_name: String,
    pub country_code: String,
    pub email: String,
    pub phone_number: String,
    pub vat_number: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Customer {
    pub id: i64,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Voucher {
    pub name: String,
    pub code: String,
    pub kind: &'static str,
    /// Negative, tax-inclusive (tax-exclusive in tax-added markets).
    pub value: Decimal,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PaymentEntry {
    pub id: i64,
    pub created_at: String,
    pub status: &'static str,
    pub entry_type: &'static str,
    pub external_reference: String,
    pub value: Decimal,
}

/// A component of a bundle: Centra lists it as a `BundleItemOrderLine` of its own.
#[derive(Debug, Clone, PartialEq)]
pub struct BundleItem {
    /// Its own order line id.
    pub id: i64,
    pub name: String,
    pub sku: String,
    pub ean: String,
    /// Units per bundle.
    pub quantity: i64,
    pub unit_original_price: Decimal,
}

/// Which of Centra's `OrderLine` types a line is shown as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineKind {
    Product,
    Bundle,
    BundleItem,
}

impl LineKind {
    pub fn typename(self) -> &'static str {
        match self {
            LineKind::Product => "ProductOrderLine",
            LineKind::Bundle => "BundleOrderLine",
            LineKind::BundleItem => "BundleItemOrderLine",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct OrderLine {
    pub id: i64,
    pub product_id: i64,
    pub product_name: String,
    pub variant_id: i64,
    pub variant_name: String,
    pub variant_number: String,
    pub sku: String,
    pub ean: String,
    pub size_number: String,
    pub size_description: String,
    pub preorder: bool,
    pub tax_percent: Decimal,
    pub unit_original_price: Decimal,
    pub unit_price: Decimal,
    pub discount_percent: Decimal,
    /// Ordered units still on the order (excludes cancelled ones).
    pub quantity: i64,
    pub cancelled_quantity: i64,
    pub bundle_items: Vec<BundleItem>,
}

impl OrderLine {
    pub fn is_bundle(&self) -> bool {
        !self.bundle_items.is_empty()
    }

    /// The bundle's components as Centra lists them: lines of their own after the bundle
    /// line, with the units in the order and their list prices. The simulator keeps the
    /// price on the bundle line (the item lines are worth nothing on their own) — how a real
    /// Centra splits it is not documented, and Ferry reads either (`ferry_domain` bundles).
    pub fn item_lines(&self) -> Vec<OrderLine> {
        self.bundle_items
            .iter()
            .map(|item| OrderLine {
                id: item.id,
                product_id: self.product_id,
                product_name: item.name.clone(),
                variant_id: self.variant_id,
                variant_name: self.variant_name.clone(),
                variant_number: self.variant_number.clone(),
                sku: item.sku.clone(),
                ean: item.ean.clone(),
                size_number: String::new(),
                size_description: item.name.clone(),
                preorder: false,
                tax_percent: self.tax_percent,
                unit_original_price: item.unit_original_price,
                unit_price: Decimal::ZERO,
                discount_percent: Decimal::ZERO,
                quantity: item.quantity * self.quantity,
                cancelled_quantity: item.quantity * self.cancelled_quantity,
                bundle_items: Vec::new(),
            })
            .collect()
    }

    pub fn line_value(&self) -> Decimal {
        self.unit_price * Decimal::from(self.quantity)
    }
}

/// The lines as Centra's `Order.lines` lists them: each bundle line followed by its item
/// lines; fully cancelled lines only when asked for (with their items).
pub fn listed_lines(
    lines: &[OrderLine],
    include_fully_cancelled: bool,
) -> Vec<(LineKind, std::borrow::Cow<'_, OrderLine>)> {
    let mut out = Vec::with_capacity(lines.len());
    for line in lines {
        if !(include_fully_cancelled || line.quantity > 0 || line.cancelled_quantity == 0) {
            continue;
        }
        if line.is_bundle() {
            out.push((LineKind::Bundle, std::borrow::Cow::Borrowed(line)));
            out.extend(
                line.item_lines()
                    .into_iter()
                    .map(|item| (LineKind::BundleItem, std::borrow::Cow::Owned(item))),
            );
        } else {
            out.push((LineKind::Product, std::borrow::Cow::Borrowed(line)));
        }
    }
    out
}

/// One Centra order with everything the snapshot query can ask for.
#[derive(Debug, Clone, PartialEq)]
pub struct Order {
    pub id: String,
    pub number: i64,
    pub status: OrderStatus,
    pub is_on_hold: bool,
    pub is_locked: bool,
    pub order_date: String,
    pub market: Market,
    pub lines: Vec<OrderLine>,
    pub shipping: Decimal,
    pub handling: Decimal,
    pub vouchers: Vec<Voucher>,
    pub payment_uri: &'static str,
    pub payment_plugin: &'static str,
    pub payment_history: Vec<PaymentEntry>,
    pub customer: Customer,
    pub shipping_address: Address,
    pub billing_address: Address,
    /// Changes every time the order changes (for the Events queue and resync).
    pub version: u64,
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

/// The figures Centra derives from an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Figures {
    pub items: Decimal,
    pub vouchers: Decimal,
    pub tax_included: Decimal,
    pub tax_added: Decimal,
    pub tax_deducted: Decimal,
    pub grand_total: Decimal,
    pub grand_total_ex_tax: Decimal,
}

impl Order {
    fn round(&self, d: Decimal) -> Decimal {
        d.round_dp_with_strategy(self.market.exponent, RoundingStrategy::MidpointAwayFromZero)
    }

    /// The highest item rate: shipping and handling are taxed at it.
    pub fn charge_rate(&self) -> Decimal {
        self.lines
            .iter()
            .filter(|l| l.quantity > 0)
            .map(|l| l.tax_percent)
            .max()
            .unwrap_or(self.market.standard_rate)
    }

    /// Line value excluding tax (what `lineValue(includingTax: false)` shows): the line's
    /// tax is rounded and taken off, so value = ex-tax + tax holds per line. The public
    /// example 02 shows it: 74.97 at 20% is 62.47 (74.97 − 12.50), not 62.48.
    pub fn line_value_ex_tax(&self, line: &OrderLine) -> Decimal {
        self.unit_price_ex_tax(line.line_value(), line.tax_percent)
    }

    pub fn unit_price_ex_tax(&self, price: Decimal, rate: Decimal) -> Decimal {
        if self.market.tax_added {
            price
        } else {
            let hundred = Decimal::ONE_HUNDRED;
            price - self.round(price * rate / (hundred + rate))
        }
    }

    /// Centra's totals: tax computed on exact voucher proportions and rounded once, at order
    /// level.
    pub fn figures(&self) -> Figures {
        let items: Decimal = self.lines.iter().map(OrderLine::line_value).sum();
        let vouchers: Decimal = self.vouchers.iter().map(|v| v.value).sum();
        let charge_rate = self.charge_rate();
        let charges = self.shipping + self.handling;
        let hundred = Decimal::ONE_HUNDRED;
        let factor = |value: Decimal| {
            if items.is_zero() {
                value
            } else {
                value + vouchers * value / items
            }
        };
        let mut exact = Decimal::ZERO;
        for line in self.lines.iter().filter(|l| l.quantity > 0) {
            let value = factor(line.line_value());
            exact += if self.market.tax_added {
                value * line.tax_percent / hundred
            } else {
                value * line.tax_percent / (hundred + line.tax_percent)
            };
        }
        exact += if self.market.tax_added {
            charges * charge_rate / hundred
        } else {
            charges * charge_rate / (hundred + charge_rate)
        };
        let tax = self.round(exact);
        let (tax_included, tax_added) = if self.market.tax_added {
            (Decimal::ZERO, tax)
        } else {
            (tax, Decimal::ZERO)
        };
        let grand_total = items + charges + vouchers + tax_added;
        Figures {
            items,
            vouchers,
            tax_included,
            tax_added,
            tax_deducted: Decimal::ZERO,
            grand_total,
            grand_total_ex_tax: grand_total - tax_included - tax_added,
        }
    }

    pub fn touch(&mut self) {
        self.version += 1;
        self.updated_at = chrono::Utc::now();
    }
}
