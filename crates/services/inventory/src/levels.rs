//! The stock consumer: each ERP level from the stream is mapped to its (Centra warehouse,
//! SKU), stored (group-committed; a level older than the stored one changes nothing), and
//! only then acknowledged and handed to the pusher of this process.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use async_trait::async_trait;
use ferry_config::TenantConfig;
use ferry_proto::erp::v1 as pb;
use ferry_runtime::coalesce::Coalescer;
use ferry_runtime::{Delivery, Handler, HandlerError};
use ferry_store::Store;
use ferry_store::inventory::ErpStock;
use parking_lot::RwLock;
use prost::Message;
use tokio::sync::mpsc::UnboundedSender;

/// (Centra warehouse, SKU).
pub(crate) type Key = (i64, String);

/// An ERP level, stored, on its way to the pusher.
#[derive(Debug, Clone)]
pub(crate) struct Observation {
    pub key: Key,
    pub available: i64,
    pub version: i64,
    /// When the source read it from the ERP, µs since the epoch.
    pub read_at: i64,
    /// Levels still waiting in the stream after this one.
    pub pending: u64,
}

/// ERP warehouse and item → Centra warehouse and SKU.
pub(crate) struct Mapping {
    warehouses: BTreeMap<String, i64>,
    /// ERP item → SKU where a mapping says otherwise than "the same code"; `None` when
    /// several SKUs name the item (its stock would be sold twice: not pushed).
    skus: HashMap<String, Option<String>>,
}

impl Mapping {
    pub(crate) fn shared(tenant: &TenantConfig) -> Arc<RwLock<Mapping>> {
        Arc::new(RwLock::new(Mapping {
            warehouses: tenant.inventory.warehouses.clone(),
            skus: HashMap::new(),
        }))
    }

    pub(crate) fn key_for(&self, warehouse: &str, item: &str) -> Option<Key> {
        let centra = *self.warehouses.get(warehouse)?;
        let sku = match self.skus.get(item) {
            Some(Some(sku)) => sku.clone(),
            Some(None) => return None,
            None => item.to_owned(),
        };
        Some((centra, sku))
    }

    /// Takes the tenant's SKU mappings (SKU, ERP item); returns the items several SKUs name.
    pub(crate) fn set_skus(&mut self, pairs: Vec<(String, String)>) -> Vec<String> {
        let mut by_item: HashMap<String, Vec<String>> = HashMap::new();
        for (sku, item) in pairs {
            by_item.entry(item).or_default().push(sku);
        }
        let mut ambiguous = Vec::new();
        self.skus = by_item
            .into_iter()
            .map(|(item, mut skus)| {
                let one = (skus.len() == 1).then(|| skus.remove(0));
                if one.is_none() {
                    ambiguous.push(item.clone());
                }
                (item, one)
            })
            .collect();
        ambiguous
    }
}

pub(crate) struct Levels {
    writes: Coalescer<ErpStock, Result<(), String>>,
    mapping: Arc<RwLock<Mapping>>,
    observations: UnboundedSender<Observation>,
}

impl Levels {
    pub(crate) fn new(
        tenant: &str,
        store: Store,
        mapping: Arc<RwLock<Mapping>>,
        observations: UnboundedSender<Observation>,
    ) -> Self {
        let tenant = tenant.to_owned();
        let writes = Coalescer::spawn(4096, 2, move |levels: Vec<ErpStock>| {
            let store = store.clone();
            let tenant = tenant.clone();
            async move {
                let n = levels.len();
                let result = store
                    .save_erp_stock(&tenant, &levels)
                    .await
                    .map_err(|e| e.to_string());
                vec![result; n]
            }
        });
        Levels {
            writes,
            mapping,
            observations,
        }
    }
}

#[async_trait]
impl Handler for Levels {
    async fn handle(&self, delivery: &Delivery) -> Result<(), HandlerError> {
        let level = pb::StockLevel::decode(delivery.payload.as_ref())
            .map_err(|e| delivery.poison("stock level", &e))?;
        let key = self
            .mapping
            .read()
            .key_for(&level.warehouse, &level.erp_item);
        // A warehouse the tenant does not map, or an item several SKUs claim: not pushed.
        let Some(key) = key else { return Ok(()) };
        let read_at = ferry_proto::millis(level.read_at.as_ref()) * 1000;
        self.writes
            .call(ErpStock {
                warehouse: key.0,
                sku: key.1.clone(),
                available: level.available,
                version: level.version,
                read_at,
            })
            .await
            .ok_or_else(|| HandlerError::transient("the stock writer stopped"))?
            .map_err(HandlerError::transient)?;
        // Stored: the pusher of this process may have stopped leading, and then reads it
        // from the database when it leads again.
        let _ = self.observations.send(Observation {
            key,
            available: level.available,
            version: level.version,
            read_at,
            pending: delivery.pending,
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_map_to_their_sku_or_their_own_code_and_ambiguous_ones_not_at_all() {
        let mut mapping = Mapping {
            warehouses: BTreeMap::from([("WH".to_owned(), 1)]),
            skus: HashMap::new(),
        };
        let ambiguous = mapping.set_skus(vec![
            ("JKT-M".into(), "100234".into()),
            ("TEE-S".into(), "200".into()),
            ("TEE-S-OLD".into(), "200".into()),
        ]);
        assert_eq!(ambiguous, vec!["200".to_owned()]);
        assert_eq!(mapping.key_for("WH", "100234"), Some((1, "JKT-M".into())));
        assert_eq!(mapping.key_for("WH", "SOCK"), Some((1, "SOCK".into())));
        assert_eq!(mapping.key_for("WH", "200"), None);
        assert_eq!(mapping.key_for("OTHER", "100234"), None);
    }
}
