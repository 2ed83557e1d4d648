//! The arithmetic of sellable stock, kept pure so it can be proven by property tests.
//!
//! Centra shows `free to allocate = physical − allocated`, where *allocated* is what its
//! own unshipped orders hold. Ferry wants Centra to sell exactly
//! `sellable = ERP available − pending − buffer` (never negative), where *pending* are
//! units of Centra orders not in the ERP yet. Centra takes absolute *physical* quantities
//! (`setStock … PHYSICAL`), so Ferry sends `physical = sellable + reserved`, *reserved*
//! being the units Centra holds allocated for orders Ferry knows: pending ones and posted
//! ones not yet recorded shipped. See docs/adr/0017-sellable-stock.md.

/// What Centra should be told for one SKU in one warehouse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target {
    /// Sent to Centra as its physical stock.
    pub physical: i64,
    /// What Centra will then offer for sale.
    pub sellable: i64,
}

/// Units of Centra orders that Centra holds allocated for one SKU.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reserved {
    /// Not in the ERP yet: the ERP's available stock still counts them.
    pub pending: i64,
    /// In the ERP (its available stock excludes them), not yet shipped in Centra.
    pub posted_unshipped: i64,
}

impl Reserved {
    pub fn total(&self) -> i64 {
        self.pending.max(0) + self.posted_unshipped.max(0)
    }
}

pub fn target(erp_available: i64, reserved: Reserved, buffer: i64) -> Target {
    let sellable = erp_available
        .saturating_sub(reserved.pending.max(0))
        .saturating_sub(buffer.max(0))
        .max(0);
    Target {
        physical: sellable.saturating_add(reserved.total()),
        sellable,
    }
}

/// Whether and how soon a target must go to Centra.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Urgency {
    /// Centra already has it.
    Done,
    /// The item can no longer be sold (zero, or down to its buffer) and Centra still
    /// offers it: every moment oversells.
    SellingOut,
    /// Any other change: batched on the push interval.
    Ordinary,
}

pub fn urgency(
    target: Target,
    pushed_physical: Option<i64>,
    pushed_sellable: Option<i64>,
    force: bool,
) -> Urgency {
    if pushed_physical == Some(target.physical) && !force {
        return Urgency::Done;
    }
    if target.sellable == 0 && pushed_sellable != Some(0) {
        Urgency::SellingOut
    } else {
        Urgency::Ordinary
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn reserved() -> impl Strategy<Value = Reserved> {
        (0i64..1000, 0i64..1000).prop_map(|(pending, posted_unshipped)| Reserved {
            pending,
            posted_unshipped,
        })
    }

    #[test]
    fn an_example_by_hand() {
        // 10 on the ERP's shelf free, 2 units ordered in Centra not yet in the ERP, 3 posted
        // and waiting to ship, buffer 1: Centra may sell 7 and holds 5 allocated.
        let t = target(
            10,
            Reserved {
                pending: 2,
                posted_unshipped: 3,
            },
            1,
        );
        assert_eq!(
            t,
            Target {
                physical: 12,
                sellable: 7
            }
        );
    }

    proptest! {
        /// Centra's free-to-allocate after the push is exactly the sellable stock, and
        /// sellable stock is never negative.
        #[test]
        fn centra_offers_exactly_the_sellable_stock(
            available in -100i64..5000, r in reserved(), buffer in 0i64..50,
        ) {
            let t = target(available, r, buffer);
            prop_assert!(t.sellable >= 0);
            prop_assert_eq!(t.physical - r.total(), t.sellable);
            prop_assert!(t.sellable <= (available - r.pending - buffer).max(0));
        }

        /// Posting an order moves its units from pending to posted while the ERP's
        /// available stock drops by as much: nothing changes in Centra (no double count,
        /// no push).
        #[test]
        fn posting_an_order_changes_nothing(
            available in 0i64..5000, r in reserved(), buffer in 0i64..50, q in 0i64..100,
        ) {
            let r = Reserved { pending: r.pending + q, ..r };
            let before = target(available, r, buffer);
            let after = target(
                available - q,
                Reserved { pending: r.pending - q, posted_unshipped: r.posted_unshipped + q },
                buffer,
            );
            prop_assert_eq!(before, after);
        }

        /// A shipment recorded in Centra lowers Centra's physical stock by its units; the
        /// ERP's available stock does not move (its shelf and its promise both drop). Ferry's
        /// new target is what Centra already has (re-sending it changes nothing).
        #[test]
        fn a_shipment_leaves_centra_right(
            available in 0i64..5000, r in reserved(), buffer in 0i64..50, q in 0i64..100,
        ) {
            let r = Reserved { posted_unshipped: r.posted_unshipped + q, ..r };
            let before = target(available, r, buffer);
            let after = target(
                available,
                Reserved { posted_unshipped: r.posted_unshipped - q, ..r },
                buffer,
            );
            prop_assert_eq!(after.physical, before.physical - q);
            prop_assert_eq!(after.sellable, before.sellable);
        }

        /// A new Centra order (pending) changes nothing while there is stock to spare:
        /// Centra has already allocated it.
        #[test]
        fn a_new_order_with_stock_to_spare_needs_no_push(
            available in 0i64..5000, r in reserved(), buffer in 0i64..50, q in 0i64..100,
        ) {
            prop_assume!(available - r.pending - q - buffer >= 0);
            let before = target(available, r, buffer);
            let after = target(available, Reserved { pending: r.pending + q, ..r }, buffer);
            prop_assert_eq!(after.physical, before.physical);
            prop_assert_eq!(after.sellable, before.sellable - q);
        }

        #[test]
        fn selling_out_goes_first(
            available in 0i64..50, r in reserved(), buffer in 0i64..50,
            pushed in proptest::option::of(0i64..100),
        ) {
            let t = target(available, r, buffer);
            let u = urgency(t, pushed.map(|p| p + 1_000_000), pushed, false);
            if t.sellable == 0 && pushed != Some(0) {
                prop_assert_eq!(u, Urgency::SellingOut);
            } else {
                prop_assert_eq!(u, Urgency::Ordinary);
            }
            prop_assert_eq!(urgency(t, Some(t.physical), Some(t.sellable), false), Urgency::Done);
        }
    }
}
