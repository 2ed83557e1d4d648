//! The markets a simulated Centra sells in are configuration: `markets.toml` (embedded: the
//! Nordics, the European Union, the United Kingdom, the United States and Japan) or a file
//! of the brand's own. Read once at start and kept for the life of the process.

use std::sync::OnceLock;

use rust_decimal::Decimal;
use serde::Deserialize;

use super::TaxClass;
use crate::model::{Market, ShippingOption};

/// The markets the simulator knows unless told otherwise.
pub const DEFAULT_MARKETS: &str = include_str!("../../markets.toml");

/// One market as a markets file describes it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MarketSpec {
    pub id: i64,
    pub name: String,
    pub country_code: String,
    pub country_name: String,
    pub currency: String,
    /// Minor-unit digits of the currency.
    pub exponent: u32,
    /// SEK per unit of the currency (prices come from the SEK base catalogue).
    pub conversion_rate: Decimal,
    pub pricelist: Pricelist,
    pub standard_rate: Decimal,
    /// Books' rate.
    pub reduced_rate: Decimal,
    #[serde(default)]
    pub tax_added: bool,
    pub shipping: Shipping,
    pub cities: Vec<String>,
    pub streets: Vec<String>,
    pub zip: String,
    #[serde(default)]
    pub state: Option<String>,
    /// Generated orders are placed here when a mix names no markets.
    #[serde(default)]
    pub sample: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pricelist {
    pub id: i64,
    pub name: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Shipping {
    pub id: i64,
    pub name: String,
    pub uri: String,
    pub price: Decimal,
}

#[derive(Debug, thiserror::Error)]
pub enum MarketsError {
    #[error("the markets file cannot be read: {0}")]
    Toml(#[from] toml::de::Error),
    #[error("market {0}: {1}")]
    Invalid(String, String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    markets: Vec<MarketSpec>,
}

/// Reads a markets file (the format of `markets.toml`) and checks it.
pub fn parse_markets(text: &str) -> Result<Vec<MarketSpec>, MarketsError> {
    let file: File = toml::from_str(text)?;
    let mut ids = std::collections::BTreeSet::new();
    for m in &file.markets {
        let bad = |why: &str| Err(MarketsError::Invalid(m.name.clone(), why.to_owned()));
        if !ids.insert(m.id) {
            return bad("its id is taken by another market");
        }
        if m.country_code.len() != 2 || m.currency.len() != 3 {
            return bad("country codes have two letters and currencies three");
        }
        if m.conversion_rate <= Decimal::ZERO || m.cities.is_empty() || m.streets.is_empty() {
            return bad("a positive conversion rate, and at least one city and one street");
        }
    }
    Ok(file.markets)
}

fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

fn leak_all(v: Vec<String>) -> &'static [&'static str] {
    Box::leak(
        v.into_iter()
            .map(leak)
            .collect::<Vec<_>>()
            .into_boxed_slice(),
    )
}

impl MarketSpec {
    /// The market as orders hold it. Its text is kept for the life of the process: markets
    /// are read once at start, and every order refers to them.
    pub fn into_market(self) -> Market {
        Market {
            id: self.id,
            name: leak(self.name),
            country_code: leak(self.country_code),
            country_name: leak(self.country_name),
            currency: leak(self.currency),
            exponent: self.exponent,
            conversion_rate: self.conversion_rate,
            pricelist_id: self.pricelist.id,
            pricelist_name: leak(self.pricelist.name),
            standard_rate: self.standard_rate,
            reduced_rate: self.reduced_rate,
            tax_added: self.tax_added,
            shipping_option: ShippingOption {
                id: self.shipping.id,
                name: leak(self.shipping.name),
                uri: leak(self.shipping.uri),
            },
            shipping_price: self.shipping.price,
            cities: leak_all(self.cities),
            streets: leak_all(self.streets),
            zip: leak(self.zip),
            state: self.state.map(leak),
            sample: self.sample,
        }
    }
}

/// The embedded markets, as specifications (to extend or replace).
pub fn default_markets() -> Vec<MarketSpec> {
    // Checked by this module's tests: the embedded file always parses.
    parse_markets(DEFAULT_MARKETS).unwrap_or_default()
}

/// The embedded markets, made once per process.
pub fn markets() -> Vec<Market> {
    static MARKETS: OnceLock<Vec<Market>> = OnceLock::new();
    MARKETS
        .get_or_init(|| {
            default_markets()
                .into_iter()
                .map(MarketSpec::into_market)
                .collect()
        })
        .clone()
}

pub(super) fn dec(s: &str) -> Decimal {
    Decimal::from_str_exact(s).unwrap_or_default()
}

/// A market price from the SEK base: converted, then made to look like a price
/// (x.95 / x.99 in two-decimal currencies, whole hundreds of yen).
pub fn price_in(market: &Market, price_sek_minor: i64) -> Decimal {
    let sek = Decimal::new(price_sek_minor, 2);
    match market.currency {
        "SEK" => sek,
        "JPY" => ((sek * dec("14.5")) / Decimal::ONE_HUNDRED).round() * Decimal::ONE_HUNDRED,
        _ => {
            let converted = (sek / market.conversion_rate).floor();
            let whole = converted.max(Decimal::ONE);
            if price_sek_minor % 2 == 0 {
                whole + dec("0.99")
            } else {
                whole + dec("0.95")
            }
        }
    }
}

pub fn rate(market: &Market, class: TaxClass) -> Decimal {
    match class {
        TaxClass::Standard => market.standard_rate,
        TaxClass::Books => market.reduced_rate,
        TaxClass::Children if market.country_code == "GB" => Decimal::ZERO,
        TaxClass::Children => market.standard_rate,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_markets_cover_the_nordics_the_eu_the_uk_and_the_us() {
        let markets = parse_markets(DEFAULT_MARKETS).unwrap_or_else(|e| panic!("{e}"));
        let countries: Vec<&str> = markets.iter().map(|m| m.country_code.as_str()).collect();
        let nordics = ["SE", "NO", "DK", "FI", "IS"];
        let eu = [
            "AT", "BE", "BG", "CY", "CZ", "DE", "DK", "EE", "ES", "FI", "FR", "GR", "HR", "HU",
            "IE", "IT", "LT", "LU", "LV", "MT", "NL", "PL", "PT", "RO", "SE", "SI", "SK",
        ];
        for c in nordics.iter().chain(&eu).chain(&["GB", "US"]) {
            assert!(countries.contains(c), "{c} is missing");
        }
        // The six the tests and benchmarks were written against are the sample.
        let sample: Vec<i64> = markets.iter().filter(|m| m.sample).map(|m| m.id).collect();
        assert_eq!(sample, [1, 2, 3, 4, 5, 6]);
        // Every currency is one Ferry can post.
        for m in &markets {
            assert!(
                ferry_domain::Currency::from_code(&m.currency)
                    .is_some_and(|c| c.exponent() == m.exponent),
                "{}: {}",
                m.name,
                m.currency
            );
        }
    }

    #[test]
    fn a_bad_markets_file_says_which_market() {
        let twice = format!(
            "{}\n{}",
            DEFAULT_MARKETS,
            DEFAULT_MARKETS.replace("# The markets", "#")
        );
        assert!(matches!(
            parse_markets(&twice),
            Err(MarketsError::Toml(_)) | Err(MarketsError::Invalid(..))
        ));
        let unknown = "[[markets]]\nid = 1\ncolour = \"red\"\n";
        assert!(parse_markets(unknown).is_err());
    }
}
