//! A tenant's SKU → ERP item map held in memory, read again from the database once it is
//! older than the holder allows: every order consults it, a mapping changes rarely.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::RwLock;

use crate::{Store, StoreError};

pub struct SkuCache {
    ttl: Duration,
    map: RwLock<(Instant, Arc<HashMap<String, String>>)>,
}

impl SkuCache {
    /// A cache whose map is read again when older than `ttl` (first read on first use).
    pub fn new(ttl: Duration) -> Self {
        let stale = Instant::now()
            .checked_sub(ttl * 2)
            .unwrap_or_else(Instant::now);
        Self {
            ttl,
            map: RwLock::new((stale, Arc::new(HashMap::new()))),
        }
    }

    /// The tenant's map; read from the database now when `fresh`, or when the held one is
    /// older than the ttl.
    pub async fn get(
        &self,
        store: &Store,
        tenant: &str,
        fresh: bool,
    ) -> Result<Arc<HashMap<String, String>>, StoreError> {
        if !fresh {
            let cached = self.map.read().await;
            if cached.0.elapsed() < self.ttl {
                return Ok(cached.1.clone());
            }
        }
        let mut cached = self.map.write().await;
        if fresh || cached.0.elapsed() >= self.ttl {
            *cached = (Instant::now(), Arc::new(store.sku_map(tenant).await?));
        }
        Ok(cached.1.clone())
    }
}
