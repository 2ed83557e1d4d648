//! The catalogue: products, their variants and sizes (SKUs, EANs, SEK prices), the fixed
//! bundles, and the catalogue as an ERP needs it set up.

use rust_decimal::Decimal;

use super::{markets, rate};
use crate::model::Market;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TaxClass {
    Standard,
    Books,
    Children,
}

/// A product → variants → sizes; one size is one SKU.
#[derive(Debug, Clone)]
pub struct Product {
    pub id: i64,
    pub number: &'static str,
    pub name: &'static str,
    pub variants: &'static [(&'static str, &'static str)],
    pub sizes: &'static [&'static str],
    /// Base price in SEK (tax included).
    pub price_sek: i64,
    pub tax_class: TaxClass,
}

/// A fixed bundle: its own SKU (never stocked), its price, and component SKUs × quantity.
#[derive(Debug, Clone)]
pub struct Bundle {
    pub id: i64,
    pub sku: &'static str,
    pub name: &'static str,
    pub price_sek: i64,
    pub components: &'static [(&'static str, i64)],
}

/// One sellable size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Size {
    pub product_id: i64,
    pub product_name: &'static str,
    pub variant_id: i64,
    pub variant_name: &'static str,
    pub variant_number: &'static str,
    pub size: &'static str,
    pub sku: String,
    pub ean: String,
    pub price_sek: i64,
    pub tax_class: TaxClass,
}

pub const PRODUCTS: &[Product] = &[
    Product {
        id: 718,
        number: "JKT",
        name: "Basic Jacket",
        variants: &[("BLK", "Blk"), ("OLV", "Olv"), ("NVY", "Nvy")],
        sizes: &["XS", "S", "M", "L", "XL"],
        price_sek: 129995,
        tax_class: TaxClass::Standard,
    },
    Product {
        id: 312,
        number: "TEE",
        name: "Organic Tee",
        variants: &[("WHT", "Wht"), ("BLK", "Blk"), ("GRY", "Gry")],
        sizes: &["XS", "S", "M", "L", "XL"],
        price_sek: 24950,
        tax_class: TaxClass::Standard,
    },
    Product {
        id: 934,
        number: "SCF",
        name: "Wool Scarf",
        variants: &[("GRY", "Gry"), ("RED", "Red")],
        sizes: &["OS"],
        price_sek: 39900,
        tax_class: TaxClass::Standard,
    },
    Product {
        id: 403,
        number: "BNE",
        name: "Rib Beanie",
        variants: &[("NVY", "Nvy"), ("BLK", "Blk")],
        sizes: &["OS"],
        price_sek: 19900,
        tax_class: TaxClass::Standard,
    },
    Product {
        id: 868,
        number: "JNS",
        name: "Straight Jeans",
        variants: &[("IND", "Ind"), ("BLK", "Blk")],
        sizes: &["28", "30", "32", "34", "36"],
        price_sek: 89900,
        tax_class: TaxClass::Standard,
    },
    Product {
        id: 521,
        number: "SHT",
        name: "Linen Shirt",
        variants: &[("WHT", "Wht"), ("BLU", "Blu")],
        sizes: &["S", "M", "L", "XL"],
        price_sek: 69900,
        tax_class: TaxClass::Standard,
    },
    Product {
        id: 610,
        number: "SWT",
        name: "Knit Sweater",
        variants: &[("CRM", "Crm"), ("GRN", "Grn")],
        sizes: &["S", "M", "L", "XL"],
        price_sek: 109900,
        tax_class: TaxClass::Standard,
    },
    Product {
        id: 245,
        number: "TOT",
        name: "Canvas Tote",
        variants: &[("NAT", "Nat")],
        sizes: &["OS"],
        price_sek: 14900,
        tax_class: TaxClass::Standard,
    },
    Product {
        id: 377,
        number: "SCK",
        name: "Sock 3-Pack",
        variants: &[("BLK", "Blk"), ("WHT", "Wht")],
        sizes: &["36-40", "41-45"],
        price_sek: 14900,
        tax_class: TaxClass::Standard,
    },
    Product {
        id: 802,
        number: "KHD",
        name: "Kids Hoodie",
        variants: &[("GRY", "Gry")],
        sizes: &["110", "120", "130", "140"],
        price_sek: 44900,
        tax_class: TaxClass::Children,
    },
    Product {
        id: 915,
        number: "BOK",
        name: "Care & Repair Book",
        variants: &[("ENG", "English")],
        sizes: &["OS"],
        price_sek: 29900,
        tax_class: TaxClass::Books,
    },
];

pub const BUNDLES: &[Bundle] = &[
    Bundle {
        id: 9001,
        sku: "BND-TRIO-M",
        name: "Tee Trio M",
        price_sek: 59900,
        components: &[("TEE-WHT-M", 1), ("TEE-BLK-M", 1), ("TEE-GRY-M", 1)],
    },
    Bundle {
        id: 9002,
        sku: "BND-WINTER-OS",
        name: "Winter Set",
        price_sek: 49900,
        components: &[("SCF-GRY-OS", 1), ("BNE-NVY-OS", 1)],
    },
    Bundle {
        id: 9003,
        sku: "BND-SOCKS-4145",
        name: "Sock Box",
        price_sek: 39900,
        components: &[("SCK-BLK-41-45", 2), ("SCK-WHT-41-45", 1)],
    },
];

/// A valid EAN-13 derived from a SKU (stable across runs).
pub fn ean_for(sku: &str) -> String {
    let mut h: u64 = 1469598103934665603;
    for b in sku.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(1099511628211);
    }
    let body = format!("73{:010}", h % 10_000_000_000);
    let sum: u32 = body
        .bytes()
        .enumerate()
        .map(|(i, b)| u32::from(b - b'0') * if i % 2 == 0 { 1 } else { 3 })
        .sum();
    format!("{body}{}", (10 - sum % 10) % 10)
}

/// Every size of the catalogue.
pub fn sizes() -> Vec<Size> {
    let mut out = Vec::new();
    for p in PRODUCTS {
        for (vi, (number, name)) in p.variants.iter().enumerate() {
            for size in p.sizes {
                let sku = format!("{}-{}-{}", p.number, number, size);
                out.push(Size {
                    product_id: p.id,
                    product_name: p.name,
                    variant_id: p.id * 10 + vi as i64,
                    variant_name: name,
                    variant_number: number,
                    size,
                    ean: ean_for(&sku),
                    sku,
                    price_sek: p.price_sek,
                    tax_class: p.tax_class,
                });
            }
        }
    }
    out
}

/// The catalogue as an ERP needs it to be set up (`scripts/tryton/catalogue.json`): every
/// stocked size with its SEK price, the currencies and the tax rates of the markets.
pub fn erp_catalogue() -> serde_json::Value {
    let markets: Vec<Market> = markets().into_iter().filter(|m| m.sample).collect();
    let mut rates: Vec<Decimal> = Vec::new();
    for m in &markets {
        for class in [TaxClass::Standard, TaxClass::Books, TaxClass::Children] {
            let r = rate(m, class);
            if !rates.contains(&r) {
                rates.push(r);
            }
        }
    }
    rates.sort();
    let mut currencies: Vec<serde_json::Value> = Vec::new();
    for m in &markets {
        if !currencies.iter().any(|c| c["code"] == m.currency) {
            currencies.push(serde_json::json!({
                "code": m.currency,
                "digits": m.exponent,
                "sek_per_unit": m.conversion_rate.to_string(),
            }));
        }
    }
    serde_json::json!({
        "company_currency": "SEK",
        "currencies": currencies,
        "tax_rates": rates.iter().map(|r| r.normalize().to_string()).collect::<Vec<_>>(),
        "items": sizes().iter().map(|s| serde_json::json!({
            "code": s.sku,
            "name": format!("{} {} {}", s.product_name, s.variant_name, s.size),
            "list_price_sek": Decimal::new(s.price_sek, 2).to_string(),
        })).collect::<Vec<_>>(),
        "bundles": BUNDLES.iter().map(|b| b.sku).collect::<Vec<_>>(),
    })
}
