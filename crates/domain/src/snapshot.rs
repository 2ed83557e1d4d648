//! The Centra order snapshot (`contracts/order-snapshot.graphql`), parsed exactly.
//!
//! Every money value is read from the JSON text itself into a [`Decimal`], never through
//! `f64`. Almost every field is optional here: a snapshot that is readable but incomplete is
//! an `invalid_snapshot` exception raised by the transform, not a parse failure.

use std::str::FromStr;

use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;

/// A decimal read from a JSON number (or numeric string) without passing through `f64`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Dec(pub Decimal);

impl<'de> Deserialize<'de> for Dec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = <&'de RawValue>::deserialize(d)?;
        parse_decimal(raw.get())
            .map(Dec)
            .ok_or_else(|| serde::de::Error::custom(format!("not a decimal number: {}", raw.get())))
    }
}

fn parse_decimal(text: &str) -> Option<Decimal> {
    let text = text.trim();
    let text = text
        .strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .unwrap_or(text);
    if text.contains(['e', 'E']) {
        Decimal::from_scientific(text).ok()
    } else {
        Decimal::from_str(text).ok()
    }
}

/// Treats JSON `null` like a missing field (Centra sends both).
fn null_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// `{ "value": … }`, Centra's MonetaryValue as the contract query selects it.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Money {
    #[serde(default)]
    pub value: Option<Dec>,
}

impl Money {
    pub fn get(m: &Option<Money>) -> Option<Decimal> {
        m.as_ref().and_then(|m| m.value).map(|d| d.0)
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct CurrencyRef {
    #[serde(default)]
    pub code: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GrandTotal {
    #[serde(default)]
    pub value: Option<Dec>,
    #[serde(default)]
    pub currency: Option<CurrencyRef>,
    #[serde(default)]
    pub conversion_rate: Option<Dec>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Totals {
    #[serde(default)]
    pub shipping: Option<Money>,
    #[serde(default)]
    pub handling: Option<Money>,
    #[serde(default)]
    pub tax_added: Option<Money>,
    #[serde(default)]
    pub tax_deducted: Option<Money>,
    #[serde(default)]
    pub tax_included: Option<Money>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct IdName {
    #[serde(default)]
    pub id: Option<serde_json::Value>,
    #[serde(default)]
    pub name: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Store {
    #[serde(default)]
    pub id: Option<serde_json::Value>,
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Country {
    #[serde(default)]
    pub code: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ShippingOption {
    #[serde(default)]
    pub id: Option<serde_json::Value>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub uri: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ShippingPriceGroup {
    #[serde(default)]
    pub shipping_option: Option<ShippingOption>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct DiscountInfo {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub code: Option<String>,
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct AppliedDiscount {
    #[serde(default)]
    pub value: Option<Money>,
    #[serde(default)]
    pub discount: Option<DiscountInfo>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct PaymentMethod {
    #[serde(default)]
    pub uri: Option<String>,
    #[serde(default)]
    pub plugin: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentEntry {
    #[serde(default)]
    pub id: Option<serde_json::Value>,
    #[serde(default)]
    pub created_at: Option<String>,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub entry_type: Option<String>,
    #[serde(default)]
    pub external_reference: Option<String>,
    #[serde(default)]
    pub value: Option<GrandTotal>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Product {
    #[serde(default)]
    pub id: Option<serde_json::Value>,
    #[serde(default)]
    pub name: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProductVariant {
    #[serde(default)]
    pub id: Option<serde_json::Value>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub variant_number: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProductSize {
    #[serde(default, rename = "SKU")]
    pub sku: Option<String>,
    #[serde(default, rename = "EAN")]
    pub ean: Option<String>,
    #[serde(default)]
    pub size_number: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub preorder: Option<bool>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Line {
    #[serde(default, rename = "__typename")]
    pub typename: Option<String>,
    #[serde(default)]
    pub id: Option<i64>,
    #[serde(default)]
    pub tax_percent: Option<Dec>,
    #[serde(default)]
    pub product: Option<Product>,
    #[serde(default)]
    pub product_variant: Option<ProductVariant>,
    #[serde(default)]
    pub product_size: Option<ProductSize>,
    #[serde(default)]
    pub unit_original_price: Option<Money>,
    #[serde(default)]
    pub unit_price: Option<Money>,
    #[serde(default)]
    pub discount_percent: Option<Dec>,
    #[serde(default)]
    pub quantity: Option<i64>,
    #[serde(default)]
    pub cancelled_quantity: Option<i64>,
    #[serde(default)]
    pub line_value: Option<Money>,
    #[serde(default)]
    pub line_value_ex_tax: Option<Money>,
}

impl Line {
    /// A bundle: its price is on this line, its components on the item lines after it.
    pub fn is_bundle(&self) -> bool {
        self.typename.as_deref() == Some("BundleOrderLine")
    }

    /// A component of the bundle line before it (see `crate::bundles`).
    pub fn is_bundle_item(&self) -> bool {
        self.typename.as_deref() == Some("BundleItemOrderLine")
    }

    pub fn sku(&self) -> Option<&str> {
        self.product_size.as_ref().and_then(|s| s.sku.as_deref())
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Address {
    #[serde(default)]
    pub company_name: Option<String>,
    #[serde(default)]
    pub first_name: Option<String>,
    #[serde(default)]
    pub last_name: Option<String>,
    #[serde(default)]
    pub address1: Option<String>,
    #[serde(default)]
    pub address2: Option<String>,
    #[serde(default)]
    pub city: Option<String>,
    #[serde(default)]
    pub state_or_province: Option<String>,
    #[serde(default)]
    pub zip_code: Option<String>,
    #[serde(default)]
    pub country: Option<Country>,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub phone_number: Option<String>,
    #[serde(default)]
    pub vat_number: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Customer {
    #[serde(default)]
    pub id: Option<i64>,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub first_name: Option<String>,
    #[serde(default)]
    pub last_name: Option<String>,
}

/// One object of `data.orders` in the answer to the contract query.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Snapshot {
    #[serde(default)]
    pub id: Option<String>,
    /// The order number: the one field without which a JSON object is not a snapshot.
    pub number: i64,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub is_on_hold: Option<bool>,
    #[serde(default)]
    pub order_date: Option<String>,
    #[serde(default)]
    pub created_at: Option<String>,
    #[serde(default)]
    pub store: Option<Store>,
    #[serde(default)]
    pub market: Option<IdName>,
    #[serde(default)]
    pub pricelist: Option<IdName>,
    #[serde(default)]
    pub country: Option<Country>,
    #[serde(default)]
    pub grand_total: Option<GrandTotal>,
    #[serde(default)]
    pub grand_total_ex_tax: Option<Money>,
    #[serde(default)]
    pub totals: Option<Totals>,
    #[serde(default)]
    pub shipping_price_group: Option<ShippingPriceGroup>,
    #[serde(default, deserialize_with = "null_default")]
    pub discounts_applied: Vec<AppliedDiscount>,
    #[serde(default)]
    pub payment_method: Option<PaymentMethod>,
    #[serde(default, deserialize_with = "null_default")]
    pub payment_history: Vec<PaymentEntry>,
    /// Absent lines are a parse error: an order without lines is not a snapshot.
    pub lines: Vec<Line>,
    #[serde(default)]
    pub shipping_address: Option<Address>,
    #[serde(default)]
    pub billing_address: Option<Address>,
    #[serde(default)]
    pub customer: Option<Customer>,
}

/// Why bytes could not be read as a snapshot at all.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotParseError {
    #[error("not JSON or not an order snapshot: {0}")]
    NotASnapshot(#[from] serde_json::Error),
}

impl Snapshot {
    /// Parses one snapshot from its JSON text. Accepts either the snapshot object itself
    /// or a whole GraphQL answer holding exactly one order (`{"data":{"orders":[…]}}`).
    pub fn parse(bytes: &[u8]) -> Result<Snapshot, SnapshotParseError> {
        match serde_json::from_slice::<Snapshot>(bytes) {
            Ok(s) => Ok(s),
            Err(first) => {
                #[derive(Deserialize)]
                struct Answer<'a> {
                    #[serde(borrow)]
                    data: AnswerData<'a>,
                }
                #[derive(Deserialize)]
                struct AnswerData<'a> {
                    #[serde(borrow)]
                    orders: Vec<&'a RawValue>,
                }
                match serde_json::from_slice::<Answer<'_>>(bytes) {
                    Ok(answer) if answer.data.orders.len() == 1 => {
                        Ok(serde_json::from_str(answer.data.orders[0].get())?)
                    }
                    _ => Err(first.into()),
                }
            }
        }
    }

    pub fn currency_code(&self) -> Option<&str> {
        self.grand_total
            .as_ref()
            .and_then(|g| g.currency.as_ref())
            .and_then(|c| c.code.as_deref())
    }
}

/// The content identity of a snapshot: sha256 of its exact bytes, in hex.
pub fn content_hash(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_money_exactly() {
        let d: Dec = serde_json::from_str("1847.95").unwrap_or_default();
        assert_eq!(d.0.to_string(), "1847.95");
        let d: Dec = serde_json::from_str("0.1").unwrap_or_default();
        assert_eq!(d.0.to_string(), "0.1");
        let d: Dec = serde_json::from_str("8.875").unwrap_or_default();
        assert_eq!(d.0.to_string(), "8.875");
        let d: Dec = serde_json::from_str("1e2").unwrap_or_default();
        assert_eq!(d.0, Decimal::from(100));
        let d: Dec = serde_json::from_str("\"12.50\"").unwrap_or_default();
        assert_eq!(d.0.to_string(), "12.50");
        assert!(serde_json::from_str::<Dec>("\"abc\"").is_err());
        assert!(serde_json::from_str::<Dec>("true").is_err());
    }

    #[test]
    fn rejects_what_is_not_a_snapshot() {
        assert!(Snapshot::parse(b"not json").is_err());
        assert!(Snapshot::parse(b"{}").is_err());
        assert!(Snapshot::parse(br#"{"number": 1}"#).is_err());
        assert!(Snapshot::parse(br#"{"number": 1, "lines": []}"#).is_ok());
        assert!(Snapshot::parse(br#"{"data":{"orders":[{"number": 1, "lines": null}]}}"#).is_err());
        assert!(Snapshot::parse(br#"{"data":{"orders":[{"number": 7, "lines": []}]}}"#).is_ok());
    }
}
