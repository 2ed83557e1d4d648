//! What the chaos run proves, read from Centra, the ERP and the ledger — never from
//! Ferry's own counters.

use std::collections::{BTreeMap, HashMap};

use ferry_sim_centra::CentraSim;
use ferry_sim_erp::ErpSim;

use super::rig::World;

/// The tracking number the warehouse gives order `reference`'s shipment.
pub fn tracking(reference: &str) -> String {
    format!("CH{reference}SE")
}

/// Where the run stands.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct Verdict {
    /// Centra orders not in the ERP.
    pub lost: usize,
    /// Extra ERP documents for an order, plus extra Centra shipments for one, plus extra
    /// credit notes for a return.
    pub duplicates: usize,
    /// Returns completed in Centra without a credit note in the ERP.
    pub credits_missing: usize,
    /// Orders the ERP shipped whose shipment is not in Centra, with its tracking number.
    pub shipments_missing: usize,
    /// SKUs whose free-to-allocate stock in Centra differs from the ERP's level.
    pub stock_diverged: usize,
    /// Orders the ledger does not say are posted.
    pub ledger_unposted: usize,
    /// Orders the reconciler has not judged reconciled: of those, judged pending (inside
    /// their grace or awaiting a step), judged with a variance, and not judged yet.
    pub unreconciled: usize,
    pub reconcile_pending: usize,
    pub reconcile_variances: usize,
    pub reconcile_unchecked: usize,
}

impl Verdict {
    pub fn clean(&self) -> bool {
        self.lost == 0
            && self.duplicates == 0
            && self.credits_missing == 0
            && self.shipments_missing == 0
            && self.stock_diverged == 0
            && self.ledger_unposted == 0
            && self.unreconciled == 0
    }
}

/// Reads the three sources about what `world` did for `tenant`.
pub async fn judge(world: &World, tenant: &str) -> Verdict {
    let (store, orders) = (&world.store, &world.orders);
    // The store may be away (a restart): then nothing counts as proven.
    let posted = match store.count_by_state(tenant).await {
        Ok(states) => states
            .iter()
            .find(|(s, _)| s == "posted")
            .map_or(0, |(_, n)| *n as usize),
        Err(_) => 0,
    };
    let counts = store.verdict_counts(tenant).await.unwrap_or_default();
    let count = |n: i64| usize::try_from(n).unwrap_or(0);
    let judged = count(counts.reconciled + counts.pending + counts.variance);
    Verdict {
        ledger_unposted: orders.len().saturating_sub(posted),
        unreconciled: orders.len().saturating_sub(count(counts.reconciled)),
        reconcile_pending: count(counts.pending),
        reconcile_variances: count(counts.variance),
        reconcile_unchecked: orders.len().saturating_sub(judged),
        ..compare(
            &world.centra,
            &world.erp,
            orders,
            &world.shipped,
            &world.stock,
            &world.returns,
        )
    }
}

/// Centra against the ERP: `orders` are Centra's order numbers, `shipped` the ERP
/// references the warehouse shipped, `stock` each SKU's latest ERP level, `returns` the
/// (order, return) pairs completed in Centra.
pub fn compare(
    centra: &CentraSim,
    erp: &ErpSim,
    orders: &[i64],
    shipped: &[String],
    stock: &BTreeMap<String, i64>,
    returns: &[(i64, i64)],
) -> Verdict {
    let mut documents: HashMap<String, usize> = HashMap::new();
    for o in erp.orders() {
        *documents.entry(o.external_ref).or_default() += 1;
    }
    let lost = orders
        .iter()
        .filter(|n| !documents.contains_key(&n.to_string()))
        .count();
    let mut duplicates: usize = documents.values().map(|n| n.saturating_sub(1)).sum();
    let (missing, extra_shipments, diverged) = centra.state.ops(|o| {
        let mut missing = 0;
        let mut extra = 0;
        for reference in shipped {
            let Ok(number) = reference.parse::<i64>() else {
                continue;
            };
            let in_centra = o.shipments_of(number);
            extra += in_centra.len().saturating_sub(1);
            let want = tracking(reference);
            if !in_centra
                .iter()
                .any(|s| s.tracking_number.as_deref() == Some(want.as_str()))
            {
                missing += 1;
            }
        }
        let diverged = stock
            .iter()
            .filter(|(sku, level)| {
                o.size_by_sku(sku)
                    .map(|size| o.stock_of(size, 1).free_to_allocate())
                    != Some(**level)
            })
            .count();
        (missing, extra, diverged)
    });
    duplicates += extra_shipments;
    // Each return is one credit note, keyed `<order>-R<return id>`.
    let mut credits: HashMap<String, usize> = HashMap::new();
    for note in erp.credit_notes() {
        *credits.entry(note.external_ref).or_default() += 1;
    }
    duplicates += credits.values().map(|n| n.saturating_sub(1)).sum::<usize>();
    let credits_missing = returns
        .iter()
        .filter(|(order, id)| !credits.contains_key(&format!("{order}-R{id}")))
        .count();
    Verdict {
        lost,
        duplicates,
        credits_missing,
        shipments_missing: missing,
        stock_diverged: diverged,
        ..Verdict::default()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use ferry_sim_centra::{OrderMix, SimConfig};

    /// The comparison finds each kind of fault it is there to find: an order missing from
    /// the ERP, a second document, a shipment missing in Centra, stock astray.
    #[tokio::test]
    async fn each_fault_is_counted() {
        let stop = tokio_util::sync::CancellationToken::new();
        let centra = CentraSim::start(SimConfig::default(), stop.clone())
            .await
            .unwrap();
        let erp = ErpSim::start(([127, 0, 0, 1], 0).into(), stop.clone())
            .await
            .unwrap();
        let orders = centra.generate(3, &OrderMix::default());
        let sku = centra.state.ops_mut(|o| {
            let end = o.add_synthetic_sizes(1, 0);
            o.sizes[end - 1].sku.clone()
        });
        let stock = BTreeMap::from([(sku.clone(), 7)]);
        let clean = compare(&centra, &erp, &[], &[], &BTreeMap::new(), &[]);
        assert!(clean.clean(), "{clean:?}");

        // Nothing in the ERP, stock 0 in Centra where 7 is expected, a return not credited.
        let returned = [(orders[0], 5)];
        let v = compare(&centra, &erp, &orders, &[], &stock, &returned);
        assert_eq!(
            (v.lost, v.stock_diverged, v.credits_missing),
            (3, 1, 1),
            "{v:?}"
        );

        // Two documents for the first order, one for the second; the first shipped.
        let naive = ferry_sim_erp::Faults {
            ignore_idempotency_key: true,
            ..Default::default()
        };
        erp.set_faults(naive);
        let first = orders[0].to_string();
        for reference in [&first, &first, &orders[1].to_string()] {
            erp.enter_by_hand(ferry_sim_erp::NewSalesOrder {
                external_ref: reference.clone(),
                ..ferry_sim_erp::NewSalesOrder::counter_sale("X", 100)
            });
        }
        let v = compare(
            &centra,
            &erp,
            &orders,
            std::slice::from_ref(&first),
            &stock,
            &[],
        );
        assert_eq!(
            (v.lost, v.duplicates, v.shipments_missing),
            (1, 1, 1),
            "{v:?}"
        );
        stop.cancel();
    }
}
