//! A seeded, reproducible generator of a realistic catalogue and order mix: markets with
//! their currencies and tax rates (configuration: `markets.rs`), products → variants → sizes with SKUs and EANs,
//! fixed bundles, vouchers, shipping and handling, partial cancellations and holds.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rust_decimal::Decimal;
use rust_decimal::prelude::*;

use crate::model::*;

mod catalogue;
mod markets;

pub use catalogue::{
    BUNDLES, Bundle, PRODUCTS, Product, Size, TaxClass, ean_for, erp_catalogue, sizes,
};

use markets::dec;

pub use markets::{
    MarketSpec, MarketsError, default_markets, markets, parse_markets, price_in, rate,
};

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
    /// How many of its bundle a bundle line has (a return can then take some back).
    pub bundles_per_line: i64,
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
            bundles_per_line: 1,
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
                quantity: mix.bundles_per_line.max(1),
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
