//! Sending what Centra lacks: sizes selling out first and at once, the rest batched on
//! the push interval, many sizes per `setStock`, within the tenant's share of Centra's
//! mutation budget and request quota.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use ferry_centra::CentraError;
use ferry_domain::ExceptionKind;
use ferry_store::fulfilment::Priority;
use ferry_store::inventory::Pushed;
use tokio::time::Instant;
use tracing::Instrument;

use crate::RESERVED_REQUESTS;
use crate::plan::{self, Target, Urgency};
use crate::pusher::{Pusher, Skip, StepError};

impl Pusher {
    /// Sends what Centra lacks: items selling out at once, the rest on the push interval
    /// (when `ordinary` allows).
    pub(crate) async fn push(&mut self, ordinary: bool) -> Result<(), StepError> {
        // Ordinary work that must wait (budget, request slots) does not make the loop
        // recompute every size each tick.
        let ordinary_blocked = matches!(self.budget.wait,
                Some((Priority::Ordinary, until)) if Instant::now() < until)
            || self.centra.limiter().remaining() <= RESERVED_REQUESTS;
        let ordinary_due = ordinary
            && !ordinary_blocked
            && (self.rounds.ordinary_round
                || self.rounds.last_ordinary.elapsed() >= self.tenant.inventory.push_interval);
        if !ordinary_due && !self.rounds.dirty && !self.rounds.selling_out_waiting {
            return Ok(());
        }
        self.rounds.dirty = false;
        let mut urgent: BTreeMap<i64, Vec<(String, Target)>> = BTreeMap::new();
        let mut regular: BTreeMap<i64, Vec<(String, Target)>> = BTreeMap::new();
        for (key, entry) in &self.entries {
            if entry.skip.is_some() {
                continue;
            }
            let target = self.target_of(key, entry);
            match plan::urgency(
                target,
                entry.pushed_physical,
                entry.pushed_sellable,
                entry.force,
            ) {
                Urgency::Done => {}
                Urgency::SellingOut => urgent
                    .entry(key.0)
                    .or_default()
                    .push((key.1.clone(), target)),
                Urgency::Ordinary if ordinary_due => {
                    regular
                        .entry(key.0)
                        .or_default()
                        .push((key.1.clone(), target));
                }
                Urgency::Ordinary => {}
            }
        }
        metrics::gauge!("ferry_stock_selling_out_waiting", "tenant" => self.tenant.id.clone())
            .set(urgent.values().map(Vec::len).sum::<usize>() as f64);
        self.rounds.selling_out_waiting = !self.send_all(urgent, Priority::ZeroStock).await?;
        if self.rounds.selling_out_waiting {
            return Ok(());
        }
        if ordinary_due {
            let waiting: usize = regular.values().map(Vec::len).sum();
            if waiting == 0 {
                self.rounds.ordinary_round = false;
                self.rounds.last_ordinary = Instant::now();
            } else {
                self.rounds.ordinary_round = true;
                if self.send_all(regular, Priority::Ordinary).await? {
                    self.rounds.ordinary_round = false;
                    self.rounds.last_ordinary = Instant::now();
                }
            }
        }
        Ok(())
    }

    /// Sends batches while the budget allows; returns whether everything went.
    async fn send_all(
        &mut self,
        mut by_warehouse: BTreeMap<i64, Vec<(String, Target)>>,
        priority: Priority,
    ) -> Result<bool, StepError> {
        let batch_size = self.tenant.inventory.batch_size;
        for (warehouse, sizes) in &mut by_warehouse {
            // Deterministic batches: the lowest stock first within a priority.
            sizes.sort_by(|a, b| a.1.sellable.cmp(&b.1.sellable).then_with(|| a.0.cmp(&b.0)));
            for batch in sizes.chunks(batch_size) {
                // Ordinary work leaves two request slots of this client's share free, so
                // sizes selling out do not wait behind it for Centra's request quota.
                if priority == Priority::Ordinary
                    && self.centra.limiter().remaining() <= RESERVED_REQUESTS
                {
                    return Ok(false);
                }
                if !self.take_budget(priority).await? {
                    return Ok(false);
                }
                self.send(*warehouse, batch, priority).await?;
            }
        }
        Ok(true)
    }

    /// One mutation from the shared budget; items selling out wait up to a second for it.
    async fn take_budget(&mut self, priority: Priority) -> Result<bool, StepError> {
        if let Some((p, until)) = self.budget.wait
            && p == priority
            && Instant::now() < until
        {
            return Ok(false);
        }
        loop {
            match self
                .store
                .reserve_mutations(&self.tenant.id, &self.budget.budget, priority, 1)
                .await?
            {
                None => {
                    self.budget.wait = None;
                    return Ok(true);
                }
                Some(wait) if priority == Priority::ZeroStock && wait <= Duration::from_secs(1) => {
                    tokio::time::sleep(wait).await;
                }
                Some(wait) => {
                    self.budget.wait = Some((priority, Instant::now() + wait));
                    return Ok(false);
                }
            }
        }
    }

    /// One `setStock`, a trace of its own (the pusher's ticks are too frequent to trace;
    /// a push that sends something is what an SRE follows).
    async fn send(
        &mut self,
        warehouse: i64,
        batch: &[(String, Target)],
        priority: Priority,
    ) -> Result<(), StepError> {
        let span = tracing::info_span!(
            parent: None,
            "centra.set_stock",
            otel.name = "setStock centra",
            otel.kind = "client",
            ferry.service = crate::SERVICE,
            ferry.tenant = %self.tenant.id,
            centra.warehouse = warehouse,
            ferry.sizes = batch.len(),
            ferry.priority = ?priority,
        );
        self.send_batch(warehouse, batch, priority)
            .instrument(span)
            .await
    }

    async fn send_batch(
        &mut self,
        warehouse: i64,
        batch: &[(String, Target)],
        priority: Priority,
    ) -> Result<(), StepError> {
        let levels: Vec<(&str, i64)> = batch
            .iter()
            .map(|(sku, t)| (sku.as_str(), t.physical))
            .collect();
        let description = match priority {
            Priority::ZeroStock => "Ferry: selling out",
            _ => "Ferry: stock update",
        };
        let tenant = self.tenant.id.clone();
        let warnings = match self.centra.set_stock(warehouse, description, &levels).await {
            Ok(w) => w,
            Err(CentraError::UserErrors(errors)) => {
                // The whole batch was refused (e.g. an unknown warehouse): tell operations
                // and hold these sizes back until the next sweep rather than loop.
                let reason = errors
                    .iter()
                    .map(|e| e.message.as_str())
                    .collect::<Vec<_>>()
                    .join("; ");
                self.raise(
                    ExceptionKind::StockRefused,
                    format!("warehouse:{warehouse}"),
                    format!(
                        "Centra refused a stock update for warehouse {warehouse} ({} sizes): \
                         {reason}. Centra's stock for them is not being kept up to date. Check \
                         the warehouse mapping in the tenant's [inventory] settings.",
                        batch.len()
                    ),
                    format!("setStock userErrors: {reason}"),
                )
                .await?;
                for (sku, _) in batch {
                    if let Some(e) = self.entries.get_mut(&(warehouse, sku.clone())) {
                        e.skip = Some(Skip::Unknown);
                    }
                }
                return Ok(());
            }
            Err(e) => return Err(e.into()),
        };
        let mut skipped: HashMap<usize, Skip> = HashMap::new();
        for w in &warnings {
            let Some(index) = w.path.get(2).and_then(|i| i.parse::<usize>().ok()) else {
                continue;
            };
            let skip = if w.message.contains("bundle") {
                Skip::Bundle
            } else {
                Skip::Unknown
            };
            skipped.insert(index, skip);
        }
        let mut pushed = Vec::with_capacity(batch.len());
        let mut unknown = Vec::new();
        for (i, (sku, target)) in batch.iter().enumerate() {
            let key = (warehouse, sku.clone());
            if let Some(skip) = skipped.get(&i) {
                self.store
                    .mark_stock_skip(&tenant, warehouse, sku, Some(skip.as_str()))
                    .await?;
                if let Some(e) = self.entries.get_mut(&key) {
                    e.skip = Some(*skip);
                }
                if *skip == Skip::Unknown {
                    unknown.push(sku.as_str());
                }
                continue;
            }
            pushed.push(Pushed {
                warehouse,
                sku: sku.clone(),
                physical: target.physical,
                sellable: target.sellable,
            });
        }
        if !unknown.is_empty() {
            // ERPs stock items a brand does not sell online: one exception per warehouse
            // (its count grows), not one per item.
            let examples: Vec<&str> = unknown.iter().take(10).copied().collect();
            self.raise_with_payload(
                ExceptionKind::StockRefused,
                format!("unknown-skus:{warehouse}"),
                format!(
                    "Centra does not know {} item(s) the ERP stocks for warehouse {warehouse} \
                     (for example {}), so their stock is not in Centra. If they should sell \
                     online, create the sizes in Centra or map the ERP items to the right SKUs \
                     (ferry mapping); if not, close this. Ferry tries them again on each sweep.",
                    unknown.len(),
                    examples.join(", ")
                ),
                format!("setStock skipped {} unknown sizes", unknown.len()),
                unknown.join("\n").into_bytes(),
            )
            .await?;
        }
        self.store.mark_pushed(&tenant, &pushed).await?;
        for p in &pushed {
            if let Some(e) = self.entries.get_mut(&(p.warehouse, p.sku.clone())) {
                e.pushed_physical = Some(p.physical);
                e.pushed_sellable = Some(p.sellable);
                e.force = false;
            }
        }
        let label = match priority {
            Priority::ZeroStock => "selling_out",
            Priority::Shipments => "shipments",
            Priority::Ordinary => "ordinary",
        };
        metrics::counter!("ferry_stock_pushes_total", "tenant" => tenant.clone(), "priority" => label)
            .increment(1);
        metrics::counter!("ferry_stock_sizes_pushed_total", "tenant" => tenant, "priority" => label)
            .increment(pushed.len() as u64);
        Ok(())
    }
}
