//! Exact money: ISO 4217 currencies, decimal → minor-unit conversion, largest-remainder
//! allocation. Nothing here touches floating point.

use std::fmt;

use rust_decimal::Decimal;

/// An ISO 4217 currency Ferry knows the minor units of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Currency {
    code: &'static str,
    exponent: u32,
    symbol: Option<&'static str>,
}

/// The currencies Ferry can post, with their ISO 4217 minor units. A currency missing here
/// is an `unmapped_currency` exception, never a guess at its decimals.
const CURRENCIES: &[Currency] = &[
    Currency::new("SEK", 2, None),
    Currency::new("NOK", 2, None),
    Currency::new("DKK", 2, None),
    Currency::new("EUR", 2, Some("€")),
    Currency::new("GBP", 2, Some("£")),
    Currency::new("USD", 2, Some("$")),
    Currency::new("CAD", 2, None),
    Currency::new("AUD", 2, None),
    Currency::new("NZD", 2, None),
    Currency::new("CHF", 2, None),
    Currency::new("PLN", 2, None),
    Currency::new("RON", 2, None),
    Currency::new("CZK", 2, None),
    Currency::new("HUF", 2, None),
    Currency::new("CNY", 2, None),
    Currency::new("HKD", 2, None),
    Currency::new("SGD", 2, None),
    Currency::new("AED", 2, None),
    Currency::new("JPY", 0, Some("¥")),
    Currency::new("KRW", 0, None),
    Currency::new("ISK", 0, None),
];

impl Currency {
    const fn new(code: &'static str, exponent: u32, symbol: Option<&'static str>) -> Self {
        Self {
            code,
            exponent,
            symbol,
        }
    }

    /// Looks a currency up by its ISO code (case-sensitive, as Centra sends it).
    pub fn from_code(code: &str) -> Option<Currency> {
        CURRENCIES.iter().copied().find(|c| c.code == code)
    }

    pub fn code(&self) -> &'static str {
        self.code
    }

    /// Number of minor-unit digits (2 for SEK, 0 for JPY).
    pub fn exponent(&self) -> u32 {
        self.exponent
    }

    /// Converts a decimal amount to integer minor units, refusing anything that is not a
    /// whole number of minor units (so 12.345 SEK is an error, not a rounding).
    pub fn to_minor(&self, amount: Decimal) -> Result<i64, MoneyError> {
        let scaled = amount
            .checked_mul(Decimal::from(10_i64.pow(self.exponent)))
            .ok_or(MoneyError::Overflow)?;
        if !scaled.fract().is_zero() {
            return Err(MoneyError::SubMinorUnit {
                amount,
                currency: self.code,
            });
        }
        i64::try_from(scaled.trunc()).map_err(|_| MoneyError::Overflow)
    }

    /// The decimal amount of a number of minor units.
    pub fn from_minor(&self, minor: i64) -> Decimal {
        Decimal::new(minor, self.exponent)
    }

    /// Formats minor units for people: "£284.84", "1 847.95 SEK", "¥12 000".
    pub fn format(&self, minor: i64) -> String {
        let amount = self.from_minor(minor);
        let sign = if amount.is_sign_negative() { "-" } else { "" };
        let abs = amount.abs();
        let whole = abs.trunc().to_string();
        let grouped = group_thousands(&whole);
        let text = if self.exponent == 0 {
            grouped
        } else {
            let frac = (abs.fract() * Decimal::from(10_i64.pow(self.exponent))).trunc();
            format!("{grouped}.{frac:0>width$}", width = self.exponent as usize)
        };
        match self.symbol {
            Some(symbol) => format!("{sign}{symbol}{text}"),
            None => format!("{sign}{text} {}", self.code),
        }
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code)
    }
}

/// `minor` units of `currency` as a person reads them (`SEK 1,250.00`); a currency Ferry
/// does not know is shown in minor units, saying so.
pub fn format_minor(minor: i64, currency: &str) -> String {
    Currency::from_code(currency)
        .map(|c| c.format(minor))
        .unwrap_or_else(|| format!("{minor} {currency} (minor units)"))
}

/// Digits grouped by thousands with commas: "1234567" → "1,234,567".
pub fn group_thousands(digits: &str) -> String {
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error("{amount} {currency} is not a whole number of minor units")]
    SubMinorUnit {
        amount: Decimal,
        currency: &'static str,
    },
    #[error("amount out of range")]
    Overflow,
}

/// Splits `total` over `weights` in proportion, so that every share is within one unit of
/// its exact proportion and the shares sum to `total` exactly (largest remainder method;
/// ties go to the earlier weight). Returns `None` when all weights are zero but the total
/// is not, or when a weight is negative.
/// The decimal amount of `minor` units of a currency with `digits` decimals — for ERPs
/// that name a currency's decimals themselves (Tryton's `digits`, an ERP's own table).
pub fn minor_to_decimal(minor: i64, digits: u32) -> Decimal {
    Decimal::new(minor, digits)
}

/// `value` in minor units of a currency with `digits` decimals, rounded half away from zero
/// (an ERP's computed total may carry more decimals than its currency); `None` on overflow.
pub fn decimal_to_minor(value: Decimal, digits: u32) -> Option<i64> {
    use rust_decimal::prelude::ToPrimitive;
    let scale = Decimal::from(10_i64.checked_pow(digits)?);
    value
        .checked_mul(scale)?
        .round_dp_with_strategy(0, rust_decimal::RoundingStrategy::MidpointAwayFromZero)
        .to_i64()
}

pub fn allocate(total: i64, weights: &[i64]) -> Option<Vec<i64>> {
    let mut out = vec![0_i64; weights.len()];
    allocate_into(total, weights, &mut out).then_some(out)
}

/// [`allocate`] into a caller-owned buffer (the transform's hot path avoids allocations).
pub fn allocate_into(total: i64, weights: &[i64], out: &mut [i64]) -> bool {
    debug_assert_eq!(weights.len(), out.len());
    if weights.iter().any(|w| *w < 0) {
        return false;
    }
    let sum: i128 = weights.iter().map(|w| i128::from(*w)).sum();
    if sum == 0 {
        out.iter_mut().for_each(|o| *o = 0);
        return total == 0;
    }
    let negative = total < 0;
    let magnitude = i128::from(total).abs();
    let mut assigned: i128 = 0;
    for (o, w) in out.iter_mut().zip(weights) {
        let exact = magnitude * i128::from(*w);
        let share = exact / sum;
        assigned += share;
        *o = share as i64;
    }
    let mut left = magnitude - assigned;
    // At most weights.len() - 1 units remain; hand them to the largest remainders.
    while left > 0 {
        let mut best: Option<(usize, i128)> = None;
        for (i, w) in weights.iter().enumerate() {
            let rem = (magnitude * i128::from(*w)) % sum;
            let already = i128::from(out[i]) * sum > magnitude * i128::from(*w);
            if already || *w == 0 {
                continue;
            }
            if best.is_none_or(|(_, r)| rem > r) {
                best = Some((i, rem));
            }
        }
        match best {
            Some((i, _)) => out[i] += 1,
            None => return false,
        }
        left -= 1;
    }
    if negative {
        out.iter_mut().for_each(|o| *o = -*o);
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::str::FromStr;

    fn dec(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap_or_default()
    }

    #[test]
    fn converts_exactly_to_minor_units() {
        let sek = Currency::from_code("SEK").unwrap_or(CURRENCIES[0]);
        assert_eq!(sek.to_minor(dec("1847.95")), Ok(184795));
        assert_eq!(sek.to_minor(dec("49")), Ok(4900));
        assert_eq!(sek.to_minor(dec("-25")), Ok(-2500));
        assert!(sek.to_minor(dec("12.345")).is_err());
        let jpy = Currency::from_code("JPY").unwrap_or(CURRENCIES[0]);
        assert_eq!(jpy.to_minor(dec("12000")), Ok(12000));
        assert!(jpy.to_minor(dec("12000.5")).is_err());
    }

    #[test]
    fn formats_for_people() {
        let gbp = Currency::from_code("GBP").unwrap_or(CURRENCIES[0]);
        assert_eq!(gbp.format(41250), "£412.50");
        assert_eq!(gbp.format(-5), "-£0.05");
        let sek = Currency::from_code("SEK").unwrap_or(CURRENCIES[0]);
        assert_eq!(sek.format(184795), "1,847.95 SEK");
        let jpy = Currency::from_code("JPY").unwrap_or(CURRENCIES[0]);
        assert_eq!(jpy.format(1200000), "¥1,200,000");
    }

    #[test]
    fn allocates_the_gbp_voucher_like_the_contract_example() {
        // 02-gbp-voucher-shipping: £25 over 149.99, 74.97, 39.95, 39.98.
        assert_eq!(
            allocate(2500, &[14999, 7497, 3995, 3998]),
            Some(vec![1230, 615, 327, 328])
        );
    }

    #[test]
    fn allocation_edge_cases() {
        assert_eq!(allocate(0, &[0, 0]), Some(vec![0, 0]));
        assert_eq!(allocate(5, &[0, 0]), None);
        assert_eq!(allocate(5, &[1, -1]), None);
        assert_eq!(allocate(-100, &[1, 1, 1]), Some(vec![-34, -33, -33]));
        assert_eq!(allocate(100, &[1, 1, 1]), Some(vec![34, 33, 33]));
        assert_eq!(allocate(2, &[0, 3, 0]), Some(vec![0, 2, 0]));
    }

    proptest! {
        #[test]
        fn allocation_is_exact_and_within_one_unit(
            total in -10_000_000_i64..10_000_000,
            weights in proptest::collection::vec(0_i64..5_000_000, 1..12),
        ) {
            let sum: i128 = weights.iter().map(|w| i128::from(*w)).sum();
            prop_assume!(sum > 0);
            let shares = allocate(total, &weights).unwrap_or_default();
            prop_assert_eq!(shares.iter().sum::<i64>(), total);
            for (share, w) in shares.iter().zip(&weights) {
                // |share * sum - total * w| < sum  ⇔  within one unit of the exact share
                let diff = (i128::from(*share) * sum - i128::from(total) * i128::from(*w)).abs();
                prop_assert!(diff < sum, "share {share} weight {w}");
                if *w == 0 { prop_assert_eq!(*share, 0); }
            }
        }
    }
}
