//! A precompiled answer to the contract query (`order-snapshot.graphql`), the one query
//! Ferry sends thousands of times. It writes the same bytes the GraphQL engine writes for
//! that query — a test renders hundreds of generated orders both ways and compares them —
//! at a fraction of the cost, so the simulator is not the bottleneck of a benchmark.

use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use serde::Serialize;
use serde::ser::{SerializeMap, SerializeSeq, Serializer};

use crate::model::{Address, Order, OrderLine, OrderStatus};

/// Whether `query` is the contract query (whitespace aside), without copying either.
pub fn is_contract_query(query: &str, contract: &str) -> bool {
    query
        .chars()
        .filter(|c| !c.is_whitespace())
        .eq(contract.chars().filter(|c| !c.is_whitespace()))
}

/// Centra's Float: integral values as integers, others with their shortest digits.
struct Num(Decimal);

impl Serialize for Num {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let d = self.0.normalize();
        if d.scale() == 0
            && let Some(i) = d.to_i64()
        {
            return s.serialize_i64(i);
        }
        match d.to_f64() {
            Some(f) if f.is_finite() => s.serialize_f64(f),
            _ => s.serialize_unit(),
        }
    }
}

/// `{ "value": … }`
struct Value(Decimal);

impl Serialize for Value {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(1))?;
        m.serialize_entry("value", &Num(self.0))?;
        m.end()
    }
}

fn status(s: OrderStatus) -> &'static str {
    match s {
        OrderStatus::Pending => "PENDING",
        OrderStatus::Confirmed => "CONFIRMED",
        OrderStatus::Processing => "PROCESSING",
        OrderStatus::Shipped => "SHIPPED",
        OrderStatus::Archived => "ARCHIVED",
        OrderStatus::Cancelled => "CANCELLED",
    }
}

/// Serialises a map from `(key, value)` pairs in order.
macro_rules! map {
    ($s:expr, $( $k:literal => $v:expr ),* $(,)?) => {{
        let mut m = $s.serialize_map(None)?;
        $( m.serialize_entry($k, &$v)?; )*
        m.end()
    }};
}

struct IdName<'a>(i64, &'a str);

impl Serialize for IdName<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        map!(s, "id" => self.0, "name" => self.1)
    }
}

struct Addr<'a>(&'a Address);

impl Serialize for Addr<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let a = self.0;
        map!(s,
            "companyName" => a.company_name,
            "firstName" => a.first_name,
            "lastName" => a.last_name,
            "address1" => a.address1,
            "address2" => a.address2,
            "city" => a.city,
            "stateOrProvince" => a.state_or_province,
            "zipCode" => a.zip_code,
            "country" => Country { name: &a.country_name, code: &a.country_code },
            "email" => a.email,
            "phoneNumber" => a.phone_number,
            "vatNumber" => a.vat_number,
        )
    }
}

struct Country<'a> {
    name: &'a str,
    code: &'a str,
}

impl Serialize for Country<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        map!(s, "name" => self.name, "code" => self.code)
    }
}

struct Line<'a> {
    order: &'a Order,
    line: &'a OrderLine,
    kind: crate::model::LineKind,
}

impl Serialize for Line<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let (o, l) = (self.order, self.line);
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("__typename", self.kind.typename())?;
        m.serialize_entry("id", &l.id)?;
        m.serialize_entry("taxPercent", &Num(l.tax_percent))?;
        m.serialize_entry("product", &IdName(l.product_id, &l.product_name))?;
        m.serialize_entry("productVariant", &Variant(l))?;
        m.serialize_entry("productSize", &Size(l))?;
        m.serialize_entry("unitOriginalPrice", &Value(l.unit_original_price))?;
        m.serialize_entry("unitPrice", &Value(l.unit_price))?;
        m.serialize_entry("discountPercent", &Num(l.discount_percent))?;
        m.serialize_entry("quantity", &l.quantity)?;
        m.serialize_entry("cancelledQuantity", &l.cancelled_quantity)?;
        m.serialize_entry("lineValue", &Value(l.line_value()))?;
        m.serialize_entry("lineValueExTax", &Value(o.line_value_ex_tax(l)))?;
        m.end()
    }
}

struct Variant<'a>(&'a OrderLine);

impl Serialize for Variant<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        map!(s, "id" => self.0.variant_id, "name" => self.0.variant_name, "variantNumber" => self.0.variant_number)
    }
}

struct Size<'a>(&'a OrderLine);

impl Serialize for Size<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let l = self.0;
        map!(s,
            "SKU" => l.sku,
            "EAN" => l.ean,
            "sizeNumber" => l.size_number,
            "description" => l.size_description,
            "preorder" => l.preorder,
        )
    }
}

/// One order as the contract query selects it.
pub struct Snapshot<'a>(pub &'a Order);

impl Serialize for Snapshot<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let o = self.0;
        let f = o.figures();
        let market = &o.market;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("id", &o.id)?;
        m.serialize_entry("number", &o.number)?;
        m.serialize_entry("status", status(o.status))?;
        m.serialize_entry("isOnHold", &o.is_on_hold)?;
        m.serialize_entry("orderDate", &o.order_date)?;
        m.serialize_entry("createdAt", &o.order_date)?;
        m.serialize_entry("store", &StoreRef)?;
        m.serialize_entry("market", &IdName(market.id, market.name))?;
        m.serialize_entry(
            "pricelist",
            &IdName(market.pricelist_id, market.pricelist_name),
        )?;
        m.serialize_entry("country", &CodeOnly(market.country_code))?;
        m.serialize_entry(
            "grandTotal",
            &GrandTotal {
                value: f.grand_total,
                currency: market.currency,
                rate: market.conversion_rate,
            },
        )?;
        m.serialize_entry("grandTotalExTax", &Value(f.grand_total_ex_tax))?;
        m.serialize_entry(
            "totals",
            &Totals {
                shipping: o.shipping,
                handling: o.handling,
                tax_added: f.tax_added,
                tax_deducted: f.tax_deducted,
                tax_included: f.tax_included,
            },
        )?;
        m.serialize_entry("shippingPriceGroup", &ShippingGroup(o))?;
        m.serialize_entry("discountsApplied", &Discounts(o))?;
        m.serialize_entry("paymentMethod", &Payment(o))?;
        m.serialize_entry("paymentHistory", &History(o))?;
        m.serialize_entry("lines", &Lines(o))?;
        m.serialize_entry("shippingAddress", &Addr(&o.shipping_address))?;
        m.serialize_entry("billingAddress", &Addr(&o.billing_address))?;
        m.serialize_entry("customer", &CustomerRef(o))?;
        m.end()
    }
}

struct StoreRef;

impl Serialize for StoreRef {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        map!(s, "id" => 1, "type" => "DIRECT_TO_CONSUMER")
    }
}

struct CodeOnly<'a>(&'a str);

impl Serialize for CodeOnly<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        map!(s, "code" => self.0)
    }
}

struct GrandTotal<'a> {
    value: Decimal,
    currency: &'a str,
    rate: Decimal,
}

impl Serialize for GrandTotal<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        map!(s, "value" => Num(self.value), "currency" => CodeOnly(self.currency), "conversionRate" => Num(self.rate))
    }
}

struct Totals {
    shipping: Decimal,
    handling: Decimal,
    tax_added: Decimal,
    tax_deducted: Decimal,
    tax_included: Decimal,
}

impl Serialize for Totals {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        map!(s,
            "shipping" => Value(self.shipping),
            "handling" => Value(self.handling),
            "taxAdded" => Value(self.tax_added),
            "taxDeducted" => Value(self.tax_deducted),
            "taxIncluded" => Value(self.tax_included),
        )
    }
}

struct ShippingGroup<'a>(&'a Order);

impl Serialize for ShippingGroup<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let o = &self.0.market.shipping_option;
        map!(s, "shippingOption" => ShippingOpt(o.id, o.name, o.uri))
    }
}

struct ShippingOpt<'a>(i64, &'a str, &'a str);

impl Serialize for ShippingOpt<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        map!(s, "id" => self.0, "name" => self.1, "uri" => self.2)
    }
}

struct Discounts<'a>(&'a Order);

impl Serialize for Discounts<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.0.vouchers.len()))?;
        for v in &self.0.vouchers {
            seq.serialize_element(&Discount(v))?;
        }
        seq.end()
    }
}

struct Discount<'a>(&'a crate::model::Voucher);

impl Serialize for Discount<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let v = self.0;
        map!(s, "value" => Value(v.value), "discount" => VoucherRef(v))
    }
}

struct VoucherRef<'a>(&'a crate::model::Voucher);

impl Serialize for VoucherRef<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        map!(s, "name" => self.0.name, "code" => self.0.code, "type" => self.0.kind)
    }
}

struct Payment<'a>(&'a Order);

impl Serialize for Payment<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        map!(s, "uri" => self.0.payment_uri, "plugin" => self.0.payment_plugin)
    }
}

struct History<'a>(&'a Order);

impl Serialize for History<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let o = self.0;
        let mut seq = s.serialize_seq(Some(o.payment_history.len()))?;
        for p in &o.payment_history {
            seq.serialize_element(&Entry(o, p))?;
        }
        seq.end()
    }
}

struct Entry<'a>(&'a Order, &'a crate::model::PaymentEntry);

impl Serialize for Entry<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let p = self.1;
        map!(s,
            "id" => p.id,
            "createdAt" => p.created_at,
            "status" => p.status,
            "entryType" => p.entry_type,
            "externalReference" => p.external_reference,
            "value" => ValueRate(p.value, self.0.market.conversion_rate),
        )
    }
}

struct ValueRate(Decimal, Decimal);

impl Serialize for ValueRate {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        map!(s, "value" => Num(self.0), "conversionRate" => Num(self.1))
    }
}

struct Lines<'a>(&'a Order);

impl Serialize for Lines<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let o = self.0;
        let mut seq = s.serialize_seq(None)?;
        // As `lines` without `includeFullyCancelled`: fully cancelled lines are left out.
        for (kind, line) in crate::model::listed_lines(&o.lines, false) {
            seq.serialize_element(&Line {
                order: o,
                line: &line,
                kind,
            })?;
        }
        seq.end()
    }
}

struct CustomerRef<'a>(&'a Order);

impl Serialize for CustomerRef<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let c = &self.0.customer;
        map!(s, "id" => c.id, "email" => c.email, "firstName" => c.first_name, "lastName" => c.last_name)
    }
}

/// The whole answer: `{"data":{"orders":[…]},"extensions":{…}}`.
pub fn answer(orders: &[std::sync::Arc<Order>], extensions: &serde_json::Value) -> Vec<u8> {
    struct Orders<'a>(&'a [std::sync::Arc<Order>]);
    impl Serialize for Orders<'_> {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            let mut seq = s.serialize_seq(Some(self.0.len()))?;
            for o in self.0 {
                seq.serialize_element(&Snapshot(o))?;
            }
            seq.end()
        }
    }
    struct Data<'a>(&'a [std::sync::Arc<Order>]);
    impl Serialize for Data<'_> {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            map!(s, "orders" => Orders(self.0))
        }
    }
    struct Response<'a>(&'a [std::sync::Arc<Order>], &'a serde_json::Value);
    impl Serialize for Response<'_> {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            map!(s, "data" => Data(self.0), "extensions" => self.1)
        }
    }
    // A snapshot is 4–6 KiB: room for all of them up front instead of doubling a megabyte.
    let mut body = Vec::with_capacity(512 + orders.len() * 6 * 1024);
    match serde_json::to_writer(&mut body, &Response(orders, extensions)) {
        Ok(()) => body,
        Err(_) => Vec::new(),
    }
}
