//! A seeded, reproducible generator of a realistic catalogue and order mix: markets with
//! their currencies and tax rates (configuration: `markets.rs`), products → variants → sizes with SKUs and EANs,
//! fixed bundles, vouchers, shipping and handling, partial cancellations and holds.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rust_decimal::Decimal;
use rust_decimal::prelude::*;

use crate::model::*;

mod markets;

use markets::dec;

pub use markets::{
    MarketSpec, MarketsError, default_markets, markets, parse_markets, price_in, rate,
};

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

const FIRST: &[&str] = &[
    "Oskar", "Astrid", "Hugo", "Elsa", "Liam", "Maja", "Noah", "Alice", "Léa", "Yuki", "Jonas",
    "Emma",
];
const LAST: &[&str] = &[
    "Virtanen",
    "Holm",
    "Martin",
    "Schmidt",
    "Dubois",
    "Tanaka",
    "Smith",
    "Lindqvist",
    "Müller",
    "Berg",
];
pub(crate) const PAYMENTS: &[(&str, &str)] = &[
    ("adyen-drop-in", "adyen"),
    ("klarna-checkout", "kco"),
    ("paypal", "paypal"),
];

/// What kinds of orders to make.
#[derive(Debug, Clone)]
pub struct OrderMix {
    /// Percent of orders with a voucher.
    pub voucher_pct: u32,
    /// Percent of orders with a bundle line.
    pub bundle_pct: u32,
    /// Percent of orders with a partially cancelled line.
    pub cancellation_pct: u32,
    /// Percent of orders on hold.
    pub hold_pct: u32,
    /// Percent of orders still PENDING.
    pub pending_pct: u32,
    /// Percent of orders with a handling charge.
    pub handling_pct: u32,
    /// Restrict to these market ids (empty: the markets marked `sample`).
    pub markets: Vec<i64>,
}

impl Default for OrderMix {
    fn default() -> Self {
        Self {
            voucher_pct: 20,
            bundle_pct: 10,
            cancellation_pct: 5,
            hold_pct: 0,
            pending_pct: 0,
            handling_pct: 5,
            markets: Vec::new(),
        }
    }
}

/// The seeded order generator.
pub struct Generator {
    rng: StdRng,
    markets: Vec<Market>,
    sizes: Vec<Size>,
    next_line_id: i64,
    next_payment_id: i64,
    next_customer_id: i64,
}

impl Generator {
    pub fn new(seed: u64) -> Self {
        Self::with_markets(seed, markets())
    }

    /// A generator over `markets` (a mix naming no markets uses those marked `sample`).
    pub fn with_markets(seed: u64, markets: Vec<Market>) -> Self {
        Self {
            rng: StdRng::seed_from_u64(seed),
            markets,
            sizes: sizes(),
            next_line_id: 5101 + (seed % 1000) as i64 * 1000,
            next_payment_id: 90001,
            next_customer_id: 700,
        }
    }

    fn pct(&mut self, p: u32) -> bool {
        self.rng.random_range(0..100) < p
    }

    fn line_id(&mut self) -> i64 {
        let id = self.next_line_id;
        self.next_line_id += 3;
        id
    }

    /// Makes one order with the given number.
    pub fn order(&mut self, number: i64, mix: &OrderMix) -> Order {
        let mut candidates: Vec<&Market> = self
            .markets
            .iter()
            .filter(|m| {
                if mix.markets.is_empty() {
                    m.sample
                } else {
                    mix.markets.contains(&m.id)
                }
            })
            .collect();
        if candidates.is_empty() {
            // A mix naming markets this instance does not know: any of its markets.
            candidates = self.markets.iter().collect();
        }
        let market = candidates[self
            .rng
            .random_range(0..candidates.len().max(1))
            .min(candidates.len() - 1)]
        .clone();
        let n_lines = self.rng.random_range(1..=5);
        let mut lines: Vec<OrderLine> = Vec::new();
        let mut used: Vec<String> = Vec::new();
        while lines.len() < n_lines {
            let size = self.sizes[self.rng.random_range(0..self.sizes.len())].clone();
            if used.contains(&size.sku) {
                continue;
            }
            used.push(size.sku.clone());
            let qty = if self.pct(75) {
                1
            } else {
                self.rng.random_range(2..=3)
            };
            let original = price_in(&market, size.price_sek);
            let on_sale = self.pct(10);
            let (unit_price, discount_percent) = if on_sale {
                let p = (original * dec("0.7")).round_dp_with_strategy(
                    market.exponent,
                    RoundingStrategy::MidpointAwayFromZero,
                );
                (p, dec("30"))
            } else {
                (original, Decimal::ZERO)
            };
            let id = self.line_id();
            lines.push(OrderLine {
                id,
                product_id: size.product_id,
                product_name: size.product_name.to_owned(),
                variant_id: size.variant_id,
                variant_name: size.variant_name.to_owned(),
                variant_number: size.variant_number.to_owned(),
                sku: size.sku.clone(),
                ean: size.ean.clone(),
                size_number: size.size.to_owned(),
                size_description: size.size.to_owned(),
                preorder: false,
                tax_percent: rate(&market, size.tax_class),
                unit_original_price: original,
                unit_price,
                discount_percent,
                quantity: qty,
                cancelled_quantity: 0,
                bundle_items: Vec::new(),
            });
        }
        if self.pct(mix.bundle_pct) {
            let bundle = &BUNDLES[self.rng.random_range(0..BUNDLES.len())];
            let price = price_in(&market, bundle.price_sek);
            let id = self.line_id();
            let item_ids: Vec<i64> = bundle.components.iter().map(|_| self.line_id()).collect();
            let items = bundle
                .components
                .iter()
                .zip(item_ids)
                .map(|((sku, q), item_id)| {
                    let size = self.sizes.iter().find(|s| s.sku == *sku);
                    BundleItem {
                        id: item_id,
                        name: size.map_or_else(
                            || (*sku).to_owned(),
                            |s| format!("{} {}", s.product_name, s.size),
                        ),
                        sku: (*sku).to_owned(),
                        ean: ean_for(sku),
                        quantity: *q,
                        unit_original_price: size
                            .map(|s| price_in(&market, s.price_sek))
                            .unwrap_or(price),
                    }
                })
                .collect();
            lines.push(OrderLine {
                id,
                product_id: bundle.id,
                product_name: bundle.name.to_owned(),
                variant_id: bundle.id * 10,
                variant_name: "Bundle".to_owned(),
                variant_number: "BND".to_owned(),
                sku: bundle.sku.to_owned(),
                ean: ean_for(bundle.sku),
                size_number: "OS".to_owned(),
                size_description: bundle.name.to_owned(),
                preorder: false,
                tax_percent: market.standard_rate,
                unit_original_price: price,
                unit_price: price,
                discount_percent: Decimal::ZERO,
                quantity: 1,
                cancelled_quantity: 0,
                bundle_items: items,
            });
        }
        if self.pct(mix.cancellation_pct) {
            let i = self.rng.random_range(0..lines.len());
            // Never cancel the last unit of the order: that is a cancelled order, not a line.
            let units: i64 = lines.iter().map(|l| l.quantity).sum();
            if units > 1 {
                let line = &mut lines[i];
                line.cancelled_quantity = 1;
                line.quantity -= 1;
            }
        }
        let items: Decimal = lines.iter().map(OrderLine::line_value).sum();
        let mut vouchers = Vec::new();
        if self.pct(mix.voucher_pct) && items > Decimal::ZERO {
            let fixed = match market.currency {
                "SEK" => dec("250"),
                "JPY" => dec("2500"),
                _ => dec("25"),
            };
            let value = if self.pct(50) && fixed < items {
                vouchers.push(Voucher {
                    name: "Newsletter".into(),
                    code: "NEWS25".into(),
                    kind: "CODE",
                    value: -fixed,
                });
                -fixed
            } else {
                let v = (items * dec("0.1")).round_dp_with_strategy(
                    market.exponent,
                    RoundingStrategy::MidpointAwayFromZero,
                );
                vouchers.push(Voucher {
                    name: "Loyalty 10%".into(),
                    code: "LOYAL10".into(),
                    kind: "CODE",
                    value: -v,
                });
                -v
            };
            debug_assert!(value < Decimal::ZERO);
        }
        let shipping = if items >= price_in(&market, 150_000) {
            Decimal::ZERO
        } else {
            market.shipping_price
        };
        let handling = if self.pct(mix.handling_pct) {
            match market.currency {
                "SEK" => dec("29"),
                "JPY" => dec("300"),
                _ => dec("2.50"),
            }
        } else {
            Decimal::ZERO
        };
        let first = FIRST[self.rng.random_range(0..FIRST.len())];
        let last = LAST[self.rng.random_range(0..LAST.len())];
        let customer_id = self.next_customer_id;
        self.next_customer_id += 1;
        let email = format!(
            "{}.{}{}@example.com",
            first.to_lowercase(),
            last.to_lowercase(),
            customer_id % 97
        );
        let company = self.pct(10);
        let address = Address {
            company_name: company.then(|| "Example AB".to_owned()),
            first_name: first.to_owned(),
            last_name: last.to_owned(),
            address1: format!(
                "{} {}",
                market.streets[self.rng.random_range(0..market.streets.len())],
                self.rng.random_range(1..120)
            ),
            address2: self
                .pct(20)
                .then(|| format!("Apt {}", self.rng.random_range(1..60))),
            city: market.cities[self.rng.random_range(0..market.cities.len())].to_owned(),
            state_or_province: market.state.map(str::to_owned),
            zip_code: market.zip.to_owned(),
            country_name: market.country_name.to_owned(),
            country_code: market.country_code.to_owned(),
            email: email.clone(),
            phone_number: format!(
                "+{} {}",
                self.rng.random_range(10..99),
                self.rng.random_range(100_000_000..999_999_999)
            ),
            vat_number: company.then(|| {
                format!(
                    "{}{}",
                    market.country_code,
                    self.rng.random_range(100_000_000_000_u64..999_999_999_999)
                )
            }),
        };
        let (payment_uri, payment_plugin) = PAYMENTS[self.rng.random_range(0..PAYMENTS.len())];
        let day = self.rng.random_range(1..=28);
        let month = self.rng.random_range(1..=12);
        let order_date = format!(
            "2025-{month:02}-{day:02} {:02}:{:02}:{:02}",
            self.rng.random_range(0..24),
            self.rng.random_range(0..60),
            self.rng.random_range(0..60)
        );
        let status = if self.pct(mix.pending_pct) {
            OrderStatus::Pending
        } else {
            OrderStatus::Confirmed
        };
        let mut order = Order {
            id: format!(
                "{:016x}{:016x}",
                self.rng.random::<u64>(),
                self.rng.random::<u64>()
            ),
            number,
            status,
            is_on_hold: self.pct(mix.hold_pct),
            is_locked: false,
            order_date: order_date.clone(),
            market,
            lines,
            shipping,
            handling,
            vouchers,
            payment_uri,
            payment_plugin,
            payment_history: Vec::new(),
            customer: Customer {
                id: customer_id,
                email,
                first_name: first.to_owned(),
                last_name: last.to_owned(),
            },
            shipping_address: address.clone(),
            billing_address: address,
            version: 1,
            updated_at: chrono::Utc::now(),
        };
        let total = order.figures().grand_total;
        let payment_id = self.next_payment_id;
        self.next_payment_id += 1;
        order.payment_history.push(PaymentEntry {
            id: payment_id,
            created_at: order_date,
            status: "SUCCESS",
            entry_type: "AUTH",
            external_reference: format!("psp-{:016x}", self.rng.random::<u64>()),
            value: total,
        });
        order
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eans_are_valid_and_stable() {
        let e = ean_for("JKT-BLK-M");
        assert_eq!(e.len(), 13);
        assert_eq!(e, ean_for("JKT-BLK-M"));
        let digits: Vec<u32> = e.bytes().map(|b| u32::from(b - b'0')).collect();
        let sum: u32 = digits
            .iter()
            .enumerate()
            .map(|(i, d)| d * if i % 2 == 0 { 1 } else { 3 })
            .sum();
        assert_eq!(sum % 10, 0);
    }

    #[test]
    fn generation_is_reproducible_and_consistent() {
        let mix = OrderMix {
            hold_pct: 10,
            pending_pct: 10,
            ..OrderMix::default()
        };
        let at = chrono::DateTime::<chrono::Utc>::MIN_UTC;
        let make = || -> Vec<Order> {
            let mut g = Generator::new(7);
            (1..200)
                .map(|n| Order {
                    updated_at: at,
                    ..g.order(n, &mix)
                })
                .collect()
        };
        let (a, b) = (make(), make());
        assert!(a == b, "the same seed must give the same orders");
        for o in &a {
            let f = o.figures();
            assert!(
                f.grand_total > Decimal::ZERO,
                "order {} total {}",
                o.number,
                f.grand_total
            );
            assert_eq!(
                f.grand_total,
                f.items + o.shipping + o.handling + f.vouchers + f.tax_added - f.tax_deducted
            );
            let scale = Decimal::from(10_i64.pow(o.market.exponent));
            assert!(
                (f.grand_total * scale).fract().is_zero(),
                "order {} total {} has sub-minor units",
                o.number,
                f.grand_total
            );
            assert!(
                (f.tax_included * scale).fract().is_zero()
                    && (f.tax_added * scale).fract().is_zero()
            );
        }
        assert!(a.iter().any(|o| o.lines.iter().any(OrderLine::is_bundle)));
        assert!(a.iter().any(|o| !o.vouchers.is_empty()));
        assert!(a.iter().any(|o| o.market.tax_added));
        assert!(a.iter().any(|o| o.market.currency == "JPY"));
    }
}
