//! ERP shipment lines → Centra order lines: plain lines by item, bundle components back to
//! their bundle line (a bundle counts as shipped when every component of it has), partial
//! and repeated shipments by cumulative quantities.

use std::collections::BTreeMap;

/// One line of the sales order Ferry posted, as the mapping needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostedLine {
    pub centra_line_id: i64,
    pub erp_item: String,
    pub quantity: i64,
    /// For bundle components: the bundle's Centra line and how many bundles it has.
    pub bundle: Option<(i64, i64)>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MapError {
    #[error("item {0} is not on the order")]
    UnknownItem(String),
    #[error("{shipped} of item {item} shipped in total, but the order has {ordered}")]
    MoreThanOrdered {
        item: String,
        shipped: i64,
        ordered: i64,
    },
}

/// Centra quantities per line once `shipped` units per item have left in total.
fn cumulative(
    posted: &[PostedLine],
    shipped: &BTreeMap<String, i64>,
) -> Result<BTreeMap<i64, i64>, MapError> {
    for (item, units) in shipped {
        let ordered: i64 = posted
            .iter()
            .filter(|l| &l.erp_item == item)
            .map(|l| l.quantity)
            .sum();
        if ordered == 0 && *units > 0 {
            return Err(MapError::UnknownItem(item.clone()));
        }
        if *units > ordered {
            return Err(MapError::MoreThanOrdered {
                item: item.clone(),
                shipped: *units,
                ordered,
            });
        }
    }
    // Units of an item go to plain lines first, then to bundle components, in line order.
    let mut left = shipped.clone();
    let mut plain: BTreeMap<i64, i64> = BTreeMap::new();
    let mut bundles: BTreeMap<i64, i64> = BTreeMap::new();
    let mut ordered_lines: Vec<&PostedLine> =
        posted.iter().filter(|l| l.bundle.is_none()).collect();
    ordered_lines.extend(posted.iter().filter(|l| l.bundle.is_some()));
    for line in ordered_lines {
        let units = left.entry(line.erp_item.clone()).or_default();
        let take = (*units).min(line.quantity);
        *units -= take;
        match line.bundle {
            None => *plain.entry(line.centra_line_id).or_default() += take,
            Some((bundle_line, bundle_qty)) => {
                let per_bundle = (line.quantity / bundle_qty.max(1)).max(1);
                let complete = take / per_bundle;
                bundles
                    .entry(bundle_line)
                    .and_modify(|b| *b = (*b).min(complete))
                    .or_insert(complete);
            }
        }
    }
    plain.extend(bundles);
    Ok(plain)
}

/// The Centra lines and quantities for one shipment, given what earlier shipments of the
/// same order carried. Lines that gain nothing are left out (half a bundle waits for the
/// rest); an empty result means nothing to tell Centra yet.
pub fn centra_lines(
    posted: &[PostedLine],
    earlier: &BTreeMap<String, i64>,
    this: &BTreeMap<String, i64>,
) -> Result<Vec<(i64, i64)>, MapError> {
    let before = cumulative(posted, earlier)?;
    let mut total = earlier.clone();
    for (item, units) in this {
        *total.entry(item.clone()).or_default() += units;
    }
    let after = cumulative(posted, &total)?;
    Ok(after
        .into_iter()
        .filter_map(|(line, qty)| {
            let gained = qty - before.get(&line).copied().unwrap_or(0);
            (gained > 0).then_some((line, gained))
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn items(pairs: &[(&str, i64)]) -> BTreeMap<String, i64> {
        pairs.iter().map(|(i, q)| ((*i).to_owned(), *q)).collect()
    }

    fn order() -> Vec<PostedLine> {
        vec![
            PostedLine {
                centra_line_id: 1,
                erp_item: "TEE".into(),
                quantity: 3,
                bundle: None,
            },
            PostedLine {
                centra_line_id: 2,
                erp_item: "CAP".into(),
                quantity: 1,
                bundle: None,
            },
            // Bundle line 9, two bundles of (2 × SOCK, 1 × CAP).
            PostedLine {
                centra_line_id: 9,
                erp_item: "SOCK".into(),
                quantity: 4,
                bundle: Some((9, 2)),
            },
            PostedLine {
                centra_line_id: 9,
                erp_item: "CAP".into(),
                quantity: 2,
                bundle: Some((9, 2)),
            },
        ]
    }

    #[test]
    fn a_whole_shipment_ships_every_line() {
        let got = centra_lines(
            &order(),
            &BTreeMap::new(),
            &items(&[("TEE", 3), ("CAP", 3), ("SOCK", 4)]),
        );
        assert_eq!(got, Ok(vec![(1, 3), (2, 1), (9, 2)]));
    }

    #[test]
    fn partial_shipments_add_up_and_a_bundle_waits_for_its_last_component() {
        let first = items(&[("TEE", 1), ("SOCK", 3), ("CAP", 2)]);
        // TEE 1; CAP: the plain line first (1), then one bundle's cap; socks for one bundle.
        assert_eq!(
            centra_lines(&order(), &BTreeMap::new(), &first),
            Ok(vec![(1, 1), (2, 1), (9, 1)])
        );
        let rest = items(&[("TEE", 2), ("SOCK", 1), ("CAP", 1)]);
        assert_eq!(
            centra_lines(&order(), &first, &rest),
            Ok(vec![(1, 2), (9, 1)])
        );
        let half_bundle = items(&[("SOCK", 2)]);
        let after_tees = items(&[("TEE", 3), ("CAP", 1)]);
        assert_eq!(
            centra_lines(&order(), &after_tees, &half_bundle),
            Ok(vec![])
        );
    }

    #[test]
    fn more_than_ordered_or_unknown_items_are_refused() {
        assert_eq!(
            centra_lines(&order(), &items(&[("TEE", 3)]), &items(&[("TEE", 1)])),
            Err(MapError::MoreThanOrdered {
                item: "TEE".into(),
                shipped: 4,
                ordered: 3
            })
        );
        assert_eq!(
            centra_lines(&order(), &BTreeMap::new(), &items(&[("HAT", 1)])),
            Err(MapError::UnknownItem("HAT".into()))
        );
    }

    proptest! {
        /// However an order is split into shipments, the Centra quantities add up to the
        /// order once everything has shipped, and never exceed it on the way.
        #[test]
        fn splits_add_up(cuts in proptest::collection::vec(0usize..10, 0..6)) {
            let posted = order();
            let mut units: Vec<String> = Vec::new();
            for l in &posted {
                for _ in 0..l.quantity { units.push(l.erp_item.clone()); }
            }
            let mut bounds: Vec<usize> = cuts.iter().map(|c| c % (units.len() + 1)).collect();
            bounds.push(0);
            bounds.push(units.len());
            bounds.sort_unstable();
            let mut earlier = BTreeMap::new();
            let mut told: BTreeMap<i64, i64> = BTreeMap::new();
            for w in bounds.windows(2) {
                let mut this = BTreeMap::new();
                for u in &units[w[0]..w[1]] { *this.entry(u.clone()).or_insert(0) += 1; }
                let lines = centra_lines(&posted, &earlier, &this).map_err(|e| TestCaseError::fail(e.to_string()))?;
                for (line, q) in lines { *told.entry(line).or_insert(0) += q; }
                for (i, q) in this { *earlier.entry(i).or_insert(0) += q; }
            }
            prop_assert_eq!(told, BTreeMap::from([(1, 3), (2, 1), (9, 2)]));
        }
    }
}
