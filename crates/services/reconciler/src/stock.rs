//! Centra's sellable stock against what Ferry expects: what Ferry last told Centra was
//! sellable, less the units of orders Ferry has heard of since (Centra allocates those as
//! they are placed). A difference past the brand's threshold is drift, listed per SKU.

/// Whether Centra's `centra` free-to-allocate units stray from Ferry's `expected` by more
/// than the brand allows: more than `units` *and* more than `percent` of what is expected
/// (a few units of a best-seller are noise; of a size with three left, they are not).
pub fn drifts(expected: i64, centra: i64, units: i64, percent: i64) -> bool {
    let off = i128::from(centra) - i128::from(expected);
    let off = off.abs();
    off > i128::from(units) && off * 100 > i128::from(percent) * i128::from(expected).abs()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn drift_is_past_both_the_units_and_the_percentage() {
        // 5 units or 5 %: 6 off 100 is drift, 6 off 1,000 is not, 5 off 10 is not.
        assert!(drifts(100, 106, 5, 5));
        assert!(drifts(100, 94, 5, 5));
        assert!(!drifts(1_000, 1_006, 5, 5));
        assert!(!drifts(10, 15, 5, 5));
        assert!(drifts(0, 6, 5, 5));
        assert!(!drifts(0, 0, 0, 0));
    }

    proptest! {
        #[test]
        fn drift_is_symmetric_and_never_within_the_threshold(
            expected in 0i64..100_000, off in -10_000i64..10_000,
            units in 0i64..50, percent in 0i64..50,
        ) {
            let d = drifts(expected, expected + off, units, percent);
            prop_assert_eq!(d, drifts(expected, expected - off, units, percent));
            if off.abs() <= units {
                prop_assert!(!d);
            }
        }
    }
}
