//! Tax per line: each line's share of Centra's order-level tax figure, by largest
//! remainder, so the line taxes sum exactly to it and each is within one minor unit of its
//! exact share (ADR 0008).

use std::cmp::Ordering;

use rust_decimal::Decimal;

use super::OrderLine;
use crate::money::allocate;

/// Sets tax, and net or gross, on every line so that the line taxes sum exactly to Centra's
/// tax figure. Lines carry their final value in `gross` on entry.
pub(super) fn apply_tax(
    lines: &mut [OrderLine],
    tax_included: i64,
    tax_added: i64,
    tax_deducted: i64,
) -> Result<(), String> {
    if tax_deducted != 0 {
        // Export sale: the VAT Centra removed comes off every line in proportion.
        let weights: Vec<i64> = lines.iter().map(|l| l.gross).collect();
        let shares = allocate(tax_deducted, &weights)
            .ok_or("tax was deducted from an order with nothing to deduct it from")?;
        for (l, s) in lines.iter_mut().zip(shares) {
            l.gross -= s;
        }
        if tax_included == 0 && tax_added == 0 {
            for l in lines.iter_mut() {
                l.tax_rate = Decimal::ZERO;
                l.tax = 0;
                l.net = l.gross;
            }
            return Ok(());
        }
    }
    if tax_added != 0 {
        if tax_included != 0 {
            return Err("the order both includes and adds tax".to_owned());
        }
        // Tax-added market: values are net; the added tax is shared by net value.
        let weights: Vec<i64> = lines.iter().map(|l| l.gross).collect();
        let shares = allocate(tax_added, &weights)
            .ok_or("tax was added to an order with no value to add it to")?;
        for (l, s) in lines.iter_mut().zip(shares) {
            l.net = l.gross;
            l.tax = s;
            l.gross = l.net + s;
        }
        return Ok(());
    }
    // Tax-inclusive market: each line's exact VAT is gross × r / (100 + r); start from the
    // floor and hand out the difference to Centra's order-level figure by largest remainder.
    let mut remainders: Vec<(usize, i128, i128)> = Vec::with_capacity(lines.len());
    let mut floor_sum: i64 = 0;
    for (i, l) in lines.iter_mut().enumerate() {
        let (num, den) = rate_fraction(l.tax_rate);
        let exact = i128::from(l.gross) * num;
        let floor = exact.div_euclid(den);
        l.tax = i64::try_from(floor).map_err(|_| "tax out of range".to_owned())?;
        floor_sum += l.tax;
        remainders.push((i, exact.rem_euclid(den), den));
    }
    let mut left = tax_included - floor_sum;
    if left > 0 {
        if left > lines.len() as i64 {
            return Err(format!(
                "Centra's tax figure is {} minor units above what the lines' rates give",
                left
            ));
        }
        // Largest fractional part first; ties keep line order.
        remainders.sort_by(|a, b| cmp_fraction(b.1, b.2, a.1, a.2).then(a.0.cmp(&b.0)));
        for (i, _, _) in remainders.iter().take(left as usize) {
            lines[*i].tax += 1;
        }
        left = 0;
    } else if left < 0 {
        // Only lines whose exact tax is a whole number can go one unit under it.
        for (i, rem, _) in &remainders {
            if left == 0 {
                break;
            }
            if *rem == 0 && lines[*i].tax > 0 {
                lines[*i].tax -= 1;
                left += 1;
            }
        }
    }
    if left != 0 {
        return Err(format!(
            "Centra's tax figure is {} minor units below what the lines' rates give",
            -left
        ));
    }
    for l in lines.iter_mut() {
        l.net = l.gross - l.tax;
    }
    Ok(())
}

/// r / (100 + r) as an integer fraction, for a rate in percent.
fn rate_fraction(rate: Decimal) -> (i128, i128) {
    let scale = rate.scale();
    let mantissa = rate.mantissa();
    let hundred = 100_i128 * 10_i128.pow(scale);
    (mantissa, hundred + mantissa)
}

fn cmp_fraction(a_num: i128, a_den: i128, b_num: i128, b_den: i128) -> Ordering {
    (a_num * b_den).cmp(&(b_num * a_den))
}
