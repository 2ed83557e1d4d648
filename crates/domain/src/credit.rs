//! Pricing a return as the order charged it. A returned unit is credited at what the
//! customer paid for it — the posted line's money after vouchers, a bundle's price as the
//! transform spread it over the components — and the credits of every return of a line
//! add up to exactly what the line charged once all of its units are back, whatever order
//! the returns arrive in. Pure arithmetic in minor units; the erp-writer keeps the history.

/// What a posted line charged (or still has to credit): units and money in minor units,
/// tax included in `gross`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Charge {
    pub quantity: i64,
    pub gross: i64,
    pub tax: i64,
}

impl Charge {
    pub fn net(&self) -> i64 {
        self.gross - self.tax
    }
}

/// Why a return cannot be credited as asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CreditError {
    /// More units back than the line still has, or more money than is left to credit.
    #[error("{asked} asked, only {left} left to credit")]
    MoreThanCharged { asked: i64, left: i64 },
    /// The figures cannot describe a return (no units, a line without units).
    #[error("{0}")]
    Invalid(String),
}

/// `value × k / of`, rounded half away from zero, without overflow.
fn part(value: i64, k: i64, of: i64) -> i64 {
    let n = i128::from(value) * i128::from(k);
    let d = i128::from(of);
    let q = n / d;
    let r = n % d;
    let q = if 2 * r.abs() >= d { q + n.signum() } else { q };
    q as i64
}

/// The credit for `now` of the `of` units of one Centra line after `before` of them were
/// credited by earlier returns: the part of each posted line (the line itself, or every
/// component of a bundle) those units carry. Each share is the line's money for
/// `before + now` units less its money for `before`, so a line returned in any number of
/// returns is credited exactly what it charged.
pub fn units_share(
    posted: &[Charge],
    of: i64,
    before: i64,
    now: i64,
) -> Result<Vec<Charge>, CreditError> {
    if of <= 0 {
        return Err(CreditError::Invalid(format!(
            "the order line has {of} units, so nothing on it can be returned"
        )));
    }
    if now <= 0 || before < 0 {
        return Err(CreditError::Invalid(format!(
            "a return of {now} units (after {before}) is not a return"
        )));
    }
    if before + now > of {
        return Err(CreditError::MoreThanCharged {
            asked: now,
            left: of - before,
        });
    }
    let after = before + now;
    Ok(posted
        .iter()
        .map(|c| Charge {
            quantity: part(c.quantity, after, of) - part(c.quantity, before, of),
            gross: part(c.gross, after, of) - part(c.gross, before, of),
            tax: part(c.tax, after, of) - part(c.tax, before, of),
        })
        .collect())
}

/// The credit for `refund` (gross, minor units) spread over lines that still have `left`
/// to credit (a shipping refund over the order's shipping lines): in proportion to what
/// each has left, never more than it has left, tax in the line's own proportion, and a line
/// credited in full gets all of its remaining tax.
pub fn amount_share(left: &[Charge], refund: i64) -> Result<Vec<Charge>, CreditError> {
    if refund < 0 {
        return Err(CreditError::Invalid(format!(
            "a refund of {refund} is negative"
        )));
    }
    let remaining: i64 = left.iter().map(|c| c.gross.max(0)).sum();
    if refund > remaining {
        return Err(CreditError::MoreThanCharged {
            asked: refund,
            left: remaining,
        });
    }
    let weights: Vec<i64> = left.iter().map(|c| c.gross.max(0)).collect();
    let shares = crate::money::allocate(refund, &weights).ok_or_else(|| {
        CreditError::Invalid("the lines' remaining amounts cannot be split".into())
    })?;
    Ok(left
        .iter()
        .zip(shares)
        .map(|(c, gross)| Charge {
            quantity: i64::from(gross > 0).min(c.quantity.max(0)),
            gross,
            tax: if gross == 0 {
                0
            } else {
                part(c.tax, gross, c.gross)
            },
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn charge(quantity: i64, gross: i64, tax: i64) -> Charge {
        Charge {
            quantity,
            gross,
            tax,
        }
    }

    #[test]
    fn one_unit_of_three_is_a_third_rounded() {
        let got = units_share(&[charge(3, 10_000, 2_000)], 3, 0, 1).unwrap();
        assert_eq!(got, vec![charge(1, 3_333, 667)]);
        let rest = units_share(&[charge(3, 10_000, 2_000)], 3, 1, 2).unwrap();
        assert_eq!(rest, vec![charge(2, 6_667, 1_333)]);
    }

    #[test]
    fn a_bundle_returned_credits_each_component_its_part() {
        // Two bundles, each one shirt (6,000) and one cap (2,000) as the transform spread
        // the bundle price after a voucher.
        let posted = [charge(2, 11_998, 2_400), charge(2, 3_998, 800)];
        let got = units_share(&posted, 2, 0, 1).unwrap();
        assert_eq!(got, vec![charge(1, 5_999, 1_200), charge(1, 1_999, 400)]);
    }

    #[test]
    fn more_units_than_left_is_refused() {
        assert_eq!(
            units_share(&[charge(2, 100, 20)], 2, 1, 2),
            Err(CreditError::MoreThanCharged { asked: 2, left: 1 })
        );
        assert!(matches!(
            units_share(&[charge(2, 100, 20)], 2, 0, 0),
            Err(CreditError::Invalid(_))
        ));
    }

    #[test]
    fn shipping_refund_beyond_what_is_left_is_refused() {
        assert_eq!(
            amount_share(&[charge(1, 4_900, 980)], 5_000),
            Err(CreditError::MoreThanCharged {
                asked: 5_000,
                left: 4_900
            })
        );
        assert_eq!(
            amount_share(&[charge(1, 4_900, 980)], 4_900).unwrap(),
            vec![charge(1, 4_900, 980)]
        );
        assert_eq!(
            amount_share(&[charge(1, 4_900, 980)], 0).unwrap(),
            vec![charge(0, 0, 0)]
        );
    }

    proptest! {
        /// However a line's units come back — in any split, in any number of returns — the
        /// credits sum to exactly what the line charged, each within a unit of its exact
        /// proportion, never negative.
        #[test]
        fn returns_of_a_line_sum_to_what_it_charged(
            units in 1_i64..50,
            gross in 0_i64..10_000_000,
            tax_permille in 0_i64..400,
            cuts in proptest::collection::vec(1_i64..50, 0..10),
        ) {
            let tax = gross * tax_permille / 1000;
            let posted = [charge(units, gross, tax), charge(units * 2, gross / 3, tax / 3)];
            let mut steps: Vec<i64> = cuts.into_iter().filter(|c| *c < units).collect();
            steps.push(0);
            steps.push(units);
            steps.sort_unstable();
            steps.dedup();
            let mut total = [Charge::default(); 2];
            for w in steps.windows(2) {
                let got = units_share(&posted, units, w[0], w[1] - w[0]).unwrap();
                for (i, c) in got.iter().enumerate() {
                    prop_assert!(c.gross >= 0 && c.tax >= 0 && c.quantity >= 0);
                    // Within one unit of the exact proportion: |gross·of − charged·k| ≤ of.
                    let off = i128::from(c.gross) * i128::from(units)
                        - i128::from(posted[i].gross) * i128::from(w[1] - w[0]);
                    prop_assert!(off.abs() <= i128::from(units));
                    total[i].quantity += c.quantity;
                    total[i].gross += c.gross;
                    total[i].tax += c.tax;
                }
            }
            prop_assert_eq!(total[0], posted[0]);
            prop_assert_eq!(total[1], posted[1]);
        }

        /// Refunds spread over lines never credit a line more than it has left, and a
        /// series of refunds that uses up every line credits exactly what they charged.
        #[test]
        fn refunds_never_exceed_and_end_exact(
            lines in proptest::collection::vec((0_i64..100_000, 0_i64..300), 1..4),
            cuts in proptest::collection::vec(0_i64..300_000, 0..5),
        ) {
            let charged: Vec<Charge> = lines
                .iter()
                .map(|(g, p)| charge(1, *g, g * p / 1000))
                .collect();
            let mut left = charged.clone();
            let mut credited = vec![Charge::default(); charged.len()];
            let mut refunds: Vec<i64> = cuts;
            refunds.push(i64::MAX);
            for r in refunds {
                let remaining: i64 = left.iter().map(|c| c.gross).sum();
                let r = r.min(remaining);
                let got = amount_share(&left, r).unwrap();
                prop_assert_eq!(got.iter().map(|c| c.gross).sum::<i64>(), r);
                for (i, c) in got.iter().enumerate() {
                    prop_assert!(c.gross <= left[i].gross && c.tax <= left[i].tax);
                    prop_assert!(c.gross >= 0 && c.tax >= 0);
                    left[i].gross -= c.gross;
                    left[i].tax -= c.tax;
                    credited[i].gross += c.gross;
                    credited[i].tax += c.tax;
                }
            }
            for (c, o) in credited.iter().zip(&charged) {
                prop_assert_eq!((c.gross, c.tax), (o.gross, o.tax));
            }
        }
    }
}
