//! Healing Centra's stock: the periodic sweep sends every size again, and the drift check
//! compares Centra's free-to-allocate stock with what Ferry expects, corrects it, and
//! reports a difference that keeps coming back.

use std::collections::{BTreeMap, HashSet};

use ferry_domain::{ExceptionKind, NewException};
use tokio::time::Instant;

use crate::levels::Key;
use crate::pusher::{Pusher, Skip, StepError};
use crate::{RESERVED_REQUESTS, SERVICE};

impl Pusher {
    /// Every size is sent again (ordinary priority); SKUs Centra did not know are tried
    /// again; commitments of finished orders are forgotten.
    pub(crate) async fn sweep(&mut self) -> Result<(), StepError> {
        self.rounds.last_sweep = Instant::now();
        self.load_skus().await?;
        for entry in self.entries.values_mut() {
            if entry.skip == Some(Skip::Unknown) {
                entry.skip = None;
            }
            entry.force = true;
        }
        self.rounds.ordinary_round = true;
        self.rounds.dirty = true;
        let pruned = self.prune().await?;
        tracing::info!(tenant = %self.tenant.id, sizes = self.entries.len(), pruned, "stock sweep");
        Ok(())
    }

    /// Forgets the commitments of finished orders (every minute, `PRUNE_EVERY`: the commitments
    /// are read every poll, and reading a day of finished orders each time starved the
    /// database in the chaos run). The shipped units forgotten come off the running total
    /// the pusher compares with, so a shipment recorded meanwhile still counts.
    pub(crate) async fn prune(&mut self) -> Result<u64, StepError> {
        self.rounds.last_prune = Instant::now();
        let pruned = self.store.prune_commitments(&self.tenant.id).await?;
        if let Some(shipped) = self.reserved.shipped.as_mut() {
            for (sku, units) in pruned.shipped {
                *shipped.entry(sku).or_default() -= units;
            }
        }
        Ok(pruned.orders)
    }

    /// Compares one page of Centra's free-to-allocate stock with what Ferry expects. Centra
    /// offering more than expected is corrected (sent again) and checked again next time;
    /// one that survives `drift_checks` corrections is an operations exception.
    pub(crate) async fn check_drift(&mut self) -> Result<(), StepError> {
        let every = self.tenant.inventory.drift_interval;
        if every.is_zero()
            || self.drift.last.elapsed() < every
            || self.centra.limiter().remaining() <= RESERVED_REQUESTS
        {
            return Ok(());
        }
        self.drift.last = Instant::now();
        let mut page: Vec<Key> = std::mem::take(&mut self.drift.recheck);
        let chosen: HashSet<Key> = page.iter().cloned().collect();
        let mut sorted: Vec<&Key> = self
            .entries
            .iter()
            .filter(|(_, e)| e.pushed_physical.is_some() && e.skip.is_none())
            .map(|(k, _)| k)
            .collect();
        sorted.sort();
        let n = sorted.len();
        let start = if n == 0 { 0 } else { self.drift.cursor % n };
        for i in 0..n {
            if page.len() >= ferry_centra::client::MAX_PAGE {
                break;
            }
            let key = sorted[(start + i) % n];
            self.drift.cursor = (start + i + 1) % n;
            if !chosen.contains(key) {
                page.push(key.clone());
            }
        }
        let mut by_warehouse: BTreeMap<i64, Vec<String>> = BTreeMap::new();
        for (w, sku) in page {
            by_warehouse.entry(w).or_default().push(sku);
        }
        for (warehouse, skus) in by_warehouse {
            let refs: Vec<&str> = skus.iter().map(String::as_str).collect();
            let seen = self.centra.stock_levels(warehouse, &refs).await?;
            for s in seen {
                let key = (warehouse, s.sku.clone());
                let Some(entry) = self.entries.get(&key).cloned() else {
                    continue;
                };
                let (Some(physical), Some(sellable)) =
                    (entry.pushed_physical, entry.pushed_sellable)
                else {
                    continue;
                };
                let reserved = if warehouse == self.allocation_warehouse {
                    self.reserved
                        .by_sku
                        .get(&s.sku)
                        .map(|h| h.reserved.total())
                        .unwrap_or(0)
                } else {
                    0
                };
                let expected = physical - reserved;
                if s.free_to_allocate <= expected {
                    // Less than expected is what orders on their way to Ferry (or held by
                    // it) look like: Centra has allocated units Ferry does not know yet.
                    // Only offering more than Ferry computed risks overselling.
                    if s.free_to_allocate < expected && sellable > 0 {
                        metrics::counter!("ferry_stock_shortfall_total", "tenant" => self.tenant.id.clone())
                            .increment(1);
                    }
                    self.drift.seen.remove(&key);
                    continue;
                }
                let seen_times = {
                    let n = self.drift.seen.entry(key.clone()).or_insert(0);
                    *n += 1;
                    *n
                };
                metrics::counter!("ferry_stock_drift_total", "tenant" => self.tenant.id.clone())
                    .increment(1);
                tracing::info!(tenant = %self.tenant.id, warehouse, sku = %s.sku, expected, centra = s.free_to_allocate, "stock drift; sending again");
                if let Some(e) = self.entries.get_mut(&key) {
                    e.force = true;
                }
                self.rounds.dirty = true;
                self.drift.recheck.push(key.clone());
                if seen_times >= self.tenant.inventory.drift_checks.max(1) {
                    self.raise(
                        ExceptionKind::StockDrift,
                        format!("sku:{warehouse}:{}", s.sku),
                        format!(
                            "Centra offers {} of {} in warehouse {warehouse} but should offer {expected} \
                             (ERP stock less open orders and buffer), and it has come back {seen_times} \
                             times after Ferry corrected it. Something else is changing this stock in \
                             Centra (a person, another integration, a warehouse threshold). Find it and \
                             stop it; until then customers may be offered stock that is not there.",
                            s.free_to_allocate, s.sku
                        ),
                        format!(
                            "freeToAllocate {} != expected {expected} (pushed physical {physical}, reserved {reserved})",
                            s.free_to_allocate
                        ),
                    )
                    .await?;
                }
            }
        }
        Ok(())
    }

    pub(crate) async fn raise(
        &self,
        kind: ExceptionKind,
        key: String,
        message: String,
        reason: String,
    ) -> Result<(), StepError> {
        self.raise_with_payload(kind, key, message, reason, Vec::new())
            .await
    }

    pub(crate) async fn raise_with_payload(
        &self,
        kind: ExceptionKind,
        key: String,
        message: String,
        reason: String,
        payload: Vec<u8>,
    ) -> Result<(), StepError> {
        let exception = NewException {
            tenant: self.tenant.id.clone(),
            kind,
            key,
            message,
            reason,
            order_number: None,
            amount_minor: None,
            currency: None,
            service: SERVICE.to_owned(),
            source_subject: None,
            payload,
        };
        self.sink
            .record(&exception)
            .await
            .map_err(|e| StepError::Sink(e.to_string()))
    }
}
