//! Bundles as Centra documents them: the bundle itself is a `BundleOrderLine` carrying the
//! bundle's price, and each component is a `BundleItemOrderLine` of its own in the order's
//! `lines` (centra.dev/graphql/bundleitemorderline.html: `BundleItemOrderLine implements
//! OrderLine`). Centra's pages do not say how an item line names its bundle: Ferry takes the
//! nearest bundle line before it — Centra lists a bundle's item lines right after it, an
//! inference written down in `docs/centra.md` — and holds any order whose lines do not fit
//! that shape instead of posting it wrong. Each component is posted exactly once, as part of
//! its bundle, never again as a line of its own.

use rust_decimal::Decimal;

use crate::snapshot::Line;

/// A line as Ferry posts it: a plain line, or a bundle line with its item lines.
#[derive(Debug)]
pub(crate) struct Entry<'a> {
    pub line: &'a Line,
    /// The bundle's item lines; empty for a plain line.
    pub items: Vec<&'a Line>,
}

/// Groups the order's lines: every `BundleItemOrderLine` goes with the bundle line before it.
/// An item line with no bundle line before it cannot be placed.
pub(crate) fn group(lines: &[Line]) -> Result<Vec<Entry<'_>>, String> {
    let mut entries: Vec<Entry<'_>> = Vec::with_capacity(lines.len());
    for line in lines {
        if !line.is_bundle_item() {
            entries.push(Entry {
                line,
                items: Vec::new(),
            });
            continue;
        }
        match entries.last_mut() {
            Some(entry) if entry.line.is_bundle() => entry.items.push(line),
            _ => {
                return Err(format!(
                    "line {} is a bundle item, but no bundle line comes before it, so Ferry \
                     cannot tell which bundle it belongs to",
                    id(line)
                ));
            }
        }
    }
    Ok(entries)
}

/// Why a bundle cannot be posted as it stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum BundleProblem {
    /// The lines do not have the documented shape (Ferry cannot tell what to post).
    Shape(String),
    /// The figures contradict each other (Centra's data, not Ferry's reading of it).
    Figures(String),
}

/// One item line of a bundle, in minor units, as read by the caller (who knows the currency).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ItemFigures {
    /// The item line's own `lineValue`.
    pub value: i64,
    /// `unitOriginalPrice × quantity`: the component's list value.
    pub list_value: i64,
}

/// One component of a bundle as it is posted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Component<'a> {
    /// The item line's own Centra id.
    pub id: i64,
    pub sku: &'a str,
    /// Units of the component in the order (all bundles of the line together).
    pub quantity: i64,
    /// Its share of the bundle's value is proportional to this.
    pub weight: i64,
}

/// What a bundle line and its item lines come to: what the customer paid for the bundle,
/// and the components it is split over.
///
/// Money: the bundle is counted once. Where the item lines carry no value, the bundle line's
/// value is split by the components' list values (by quantity without list prices); where
/// the bundle line carries none, the item lines carry the price and each keeps its own; where
/// both carry values, the item lines must break the bundle's value down exactly. Anything else
/// is held.
pub(crate) fn price<'a>(
    entry: &Entry<'a>,
    bundle_value: i64,
    bundle_rate: Decimal,
    figures: &[ItemFigures],
) -> Result<(i64, Vec<Component<'a>>), BundleProblem> {
    let bundle = id(entry.line);
    let bundles = entry.line.quantity.unwrap_or(0);
    if entry.items.is_empty() {
        return Err(BundleProblem::Shape(format!(
            "bundle line {bundle} has no item lines after it, so Ferry cannot tell what it holds"
        )));
    }
    let mut components = Vec::with_capacity(entry.items.len());
    for (item, f) in entry.items.iter().zip(figures) {
        let item_id = item.id.ok_or_else(|| {
            BundleProblem::Shape(format!("an item line of bundle line {bundle} has no id"))
        })?;
        let sku = item.sku().filter(|s| !s.is_empty()).ok_or_else(|| {
            BundleProblem::Shape(format!(
                "item line {item_id} of bundle line {bundle} has no SKU"
            ))
        })?;
        let units = item.quantity.unwrap_or(0);
        if bundles == 0 {
            // A fully cancelled bundle takes its items with it.
            if units != 0 || f.value != 0 {
                return Err(BundleProblem::Figures(format!(
                    "bundle line {bundle} is fully cancelled but its item line {item_id} still \
                     has {units} units"
                )));
            }
            continue;
        }
        if units <= 0 || units % bundles != 0 {
            return Err(BundleProblem::Shape(format!(
                "item line {item_id} ({sku}) of bundle line {bundle} has {units} units for \
                 {bundles} bundles, which is not a whole number per bundle"
            )));
        }
        if let Some(rate) = item.tax_percent.map(|d| d.0.normalize())
            && rate != bundle_rate
        {
            return Err(BundleProblem::Shape(format!(
                "item line {item_id} ({sku}) is taxed at {rate}% but its bundle line {bundle} \
                 at {bundle_rate}%, so Ferry cannot split the bundle's tax"
            )));
        }
        components.push(Component {
            id: item_id,
            sku,
            quantity: units,
            weight: f.list_value.max(0),
        });
    }
    if bundles == 0 {
        return Ok((bundle_value, Vec::new()));
    }
    let items_value: i64 = figures.iter().map(|f| f.value).sum();
    let value = match (bundle_value, items_value) {
        (_, 0) => {
            if components.iter().all(|c| c.weight == 0) {
                components.iter_mut().for_each(|c| c.weight = c.quantity);
            }
            bundle_value
        }
        (b, items) if b == 0 || b == items => {
            for (c, f) in components.iter_mut().zip(figures) {
                c.weight = f.value;
            }
            items
        }
        (b, items) => {
            return Err(BundleProblem::Shape(format!(
                "bundle line {bundle} is worth {b} but its item lines add up to {items} (minor \
                 units), so Ferry cannot tell what the customer paid for the bundle"
            )));
        }
    };
    Ok((value, components))
}

fn id(line: &Line) -> String {
    line.id.map_or_else(|| "?".to_owned(), |i| i.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Decimals are read from the raw JSON text, so lines are parsed from text.
    fn line(kind: &str, id: i64, sku: &str, quantity: i64) -> Line {
        let json = serde_json::json!({
            "__typename": kind, "id": id, "productSize": {"SKU": sku}, "quantity": quantity,
            "taxPercent": 25,
        });
        serde_json::from_str(&json.to_string()).unwrap_or_default()
    }

    fn figures(values: &[(i64, i64)]) -> Vec<ItemFigures> {
        values
            .iter()
            .map(|(value, list_value)| ItemFigures {
                value: *value,
                list_value: *list_value,
            })
            .collect()
    }

    #[test]
    fn items_go_with_the_bundle_before_them() {
        let lines = vec![
            line("ProductOrderLine", 1, "TEE", 1),
            line("BundleOrderLine", 2, "BND", 2),
            line("BundleItemOrderLine", 3, "A", 2),
            line("BundleItemOrderLine", 4, "B", 4),
            line("ProductOrderLine", 5, "CAP", 1),
        ];
        let entries = group(&lines).unwrap_or_default();
        let shape: Vec<(Option<i64>, Vec<Option<i64>>)> = entries
            .iter()
            .map(|e| (e.line.id, e.items.iter().map(|i| i.id).collect()))
            .collect();
        assert_eq!(
            shape,
            vec![
                (Some(1), vec![]),
                (Some(2), vec![Some(3), Some(4)]),
                (Some(5), vec![])
            ]
        );
    }

    #[test]
    fn an_item_without_a_bundle_before_it_is_refused() {
        for lines in [
            vec![line("BundleItemOrderLine", 3, "A", 1)],
            vec![
                line("BundleOrderLine", 2, "BND", 1),
                line("BundleItemOrderLine", 3, "A", 1),
                line("ProductOrderLine", 4, "TEE", 1),
                line("BundleItemOrderLine", 5, "B", 1),
            ],
        ] {
            let error = group(&lines).err().unwrap_or_default();
            assert!(error.contains("no bundle line comes before it"), "{error}");
        }
    }

    #[test]
    fn the_bundle_line_carries_the_price_split_by_list_values() {
        let lines = [
            line("BundleOrderLine", 2, "BND", 2),
            line("BundleItemOrderLine", 3, "A", 2),
            line("BundleItemOrderLine", 4, "B", 4),
        ];
        let entry = Entry {
            line: &lines[0],
            items: vec![&lines[1], &lines[2]],
        };
        let (value, parts) = price(
            &entry,
            119_800,
            Decimal::from(25),
            &figures(&[(0, 49_900), (0, 99_800)]),
        )
        .unwrap_or_default();
        assert_eq!(value, 119_800);
        let got: Vec<(i64, &str, i64, i64)> = parts
            .iter()
            .map(|c| (c.id, c.sku, c.quantity, c.weight))
            .collect();
        assert_eq!(got, vec![(3, "A", 2, 49_900), (4, "B", 4, 99_800)]);
    }

    #[test]
    fn priced_items_keep_their_own_values() {
        let lines = [
            line("BundleOrderLine", 2, "BND", 1),
            line("BundleItemOrderLine", 3, "A", 1),
            line("BundleItemOrderLine", 4, "B", 1),
        ];
        let entry = Entry {
            line: &lines[0],
            items: vec![&lines[1], &lines[2]],
        };
        let rate = Decimal::from(25);
        // Price on the items only, or on both with the items breaking it down.
        for bundle_value in [0, 1_000] {
            let (value, parts) = price(&entry, bundle_value, rate, &figures(&[(300, 0), (700, 0)]))
                .unwrap_or_default();
            assert_eq!(value, 1_000);
            assert_eq!(
                parts.iter().map(|c| c.weight).collect::<Vec<_>>(),
                [300, 700]
            );
        }
        // Both priced, disagreeing: held.
        assert!(matches!(
            price(&entry, 900, rate, &figures(&[(300, 0), (700, 0)])),
            Err(BundleProblem::Shape(m)) if m.contains("cannot tell what the customer paid")
        ));
    }

    #[test]
    fn shapes_ferry_cannot_read_are_held() {
        let rate = Decimal::from(25);
        let bundle = line("BundleOrderLine", 2, "BND", 2);
        let lonely = Entry {
            line: &bundle,
            items: vec![],
        };
        assert!(matches!(
            price(&lonely, 100, rate, &[]),
            Err(BundleProblem::Shape(_))
        ));
        let odd = line("BundleItemOrderLine", 3, "A", 3);
        let entry = Entry {
            line: &bundle,
            items: vec![&odd],
        };
        assert!(matches!(
            price(&entry, 100, rate, &figures(&[(0, 0)])),
            Err(BundleProblem::Shape(m)) if m.contains("3 units for 2 bundles")
        ));
        let mut other_rate = line("BundleItemOrderLine", 3, "A", 2);
        other_rate.tax_percent = serde_json::from_str("12").ok();
        let entry = Entry {
            line: &bundle,
            items: vec![&other_rate],
        };
        assert!(matches!(
            price(&entry, 100, rate, &figures(&[(0, 0)])),
            Err(BundleProblem::Shape(m)) if m.contains("taxed at 12%")
        ));
    }

    #[test]
    fn a_cancelled_bundle_posts_nothing_unless_its_items_disagree() {
        let rate = Decimal::from(25);
        let bundle = line("BundleOrderLine", 2, "BND", 0);
        let gone = line("BundleItemOrderLine", 3, "A", 0);
        let entry = Entry {
            line: &bundle,
            items: vec![&gone],
        };
        assert_eq!(
            price(&entry, 0, rate, &figures(&[(0, 0)])),
            Ok((0, Vec::new()))
        );
        let left = line("BundleItemOrderLine", 3, "A", 1);
        let entry = Entry {
            line: &bundle,
            items: vec![&left],
        };
        assert!(matches!(
            price(&entry, 0, rate, &figures(&[(0, 0)])),
            Err(BundleProblem::Figures(_))
        ));
    }

    proptest! {
        /// However plain lines and bundles are interleaved, every line lands in exactly one
        /// entry: each item line once, under the bundle before it, never as a plain line.
        #[test]
        fn every_item_line_is_placed_once(shape in prop::collection::vec((any::<bool>(), 0usize..4), 1..8)) {
            let mut lines = Vec::new();
            let mut next = 1;
            for (is_bundle, items) in &shape {
                let kind = if *is_bundle { "BundleOrderLine" } else { "ProductOrderLine" };
                lines.push(line(kind, next, "X", 1));
                next += 1;
                for _ in 0..(if *is_bundle { *items } else { 0 }) {
                    lines.push(line("BundleItemOrderLine", next, "Y", 1));
                    next += 1;
                }
            }
            let entries = group(&lines).unwrap_or_default();
            let placed: usize = entries.iter().map(|e| 1 + e.items.len()).sum();
            prop_assert_eq!(placed, lines.len());
            prop_assert!(entries.iter().all(|e| !e.line.is_bundle_item()));
            prop_assert!(entries.iter().all(|e| e.items.iter().all(|i| i.is_bundle_item())));
            prop_assert!(entries.iter().all(|e| e.items.is_empty() || e.line.is_bundle()));
        }
    }
}
