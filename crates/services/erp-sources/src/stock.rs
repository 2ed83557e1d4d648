//! The stock source: the ERP's stock, as the latest level per (warehouse, item), published
//! on `<prefix>.<tenant>.erp.stock.v1.<warehouse>.<item>`. The stream keeps one message per
//! subject, so a level nobody has read yet is replaced by the next: JetStream coalesces.
//!
//! An ERP with a change feed is read in rounds of pages; a round keeps only each item's
//! latest change before publishing (a million changes over fifty thousand items become
//! fifty thousand messages). An ERP without one is read whole each pass, and only levels
//! that differ from the last published are sent (all of them after a restart).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use bytes::Bytes;
use ferry_erp::StockFeed;
use ferry_proto::erp::v1 as pb;
use ferry_runtime::{Feed, FeedError, Outgoing, Pass, Publisher, Topology};
use parking_lot::Mutex;
use prost::Message;

/// The feed's name: its lease, cursor, metrics and spans.
pub const FEED: &str = "erp-stock";
/// Changes asked for per request, and requests per round.
pub const PAGE: usize = 10_000;
pub const PAGES_PER_ROUND: usize = 100;
/// Messages in flight while a round is published.
const PUBLISH_CHUNK: usize = 4_096;

pub struct StockSource {
    pub tenant: String,
    pub service: &'static str,
    pub erp: Arc<dyn StockFeed>,
    pub publisher: Publisher,
    pub topology: Topology,
    /// Whether the ERP has a change feed (`None` until asked), and for one without, what
    /// was last published per (warehouse, item).
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    has_feed: Option<bool>,
    published: HashMap<(String, String), i64>,
}

/// One level to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Level {
    available: i64,
    version: i64,
}

impl StockSource {
    pub fn new(
        tenant: String,
        service: &'static str,
        erp: Arc<dyn StockFeed>,
        publisher: Publisher,
        topology: Topology,
    ) -> Self {
        StockSource {
            tenant,
            service,
            erp,
            publisher,
            topology,
            state: Mutex::new(State::default()),
        }
    }

    fn error(&self, e: ferry_erp::ErpError) -> FeedError {
        crate::feed_error(e, &self.tenant, self.service, "stock")
    }

    /// A round of the change feed from `cursor`: the latest change per item, where the
    /// round ended, and whether the feed has more. `None`: the ERP has no feed.
    async fn read_feed(
        &self,
        cursor: &str,
    ) -> Result<Option<(HashMap<(String, String), Level>, String, bool)>, FeedError> {
        let mut latest: HashMap<(String, String), Level> = HashMap::new();
        let mut at = cursor.to_owned();
        let mut more = false;
        for _ in 0..PAGES_PER_ROUND {
            let Some(page) = self
                .erp
                .stock_changes_since(&at, PAGE)
                .await
                .map_err(|e| self.error(e))?
            else {
                return Ok(None);
            };
            more = page.changes.len() >= PAGE;
            for c in page.changes {
                let level = Level {
                    available: c.available,
                    version: c.seq,
                };
                match latest.get_mut(&(c.warehouse.clone(), c.erp_item.clone())) {
                    Some(known) if known.version >= level.version => {}
                    Some(known) => *known = level,
                    None => {
                        latest.insert((c.warehouse, c.erp_item), level);
                    }
                }
            }
            at = page.next_cursor;
            if !more {
                break;
            }
        }
        Ok(Some((latest, at, more)))
    }

    /// Every level, versioned by the time of reading; only those that changed since the
    /// last publish are kept.
    async fn read_whole(&self) -> Result<HashMap<(String, String), Level>, FeedError> {
        let levels = self
            .erp
            .stock_levels(&[])
            .await
            .map_err(|e| self.error(e))?;
        let version = now_micros();
        let state = self.state.lock();
        Ok(levels
            .into_iter()
            .filter(|l| {
                state
                    .published
                    .get(&(l.warehouse.clone(), l.erp_item.clone()))
                    != Some(&l.available)
            })
            .map(|l| {
                (
                    (l.warehouse, l.erp_item),
                    Level {
                        available: l.available,
                        version,
                    },
                )
            })
            .collect())
    }

    async fn publish(&self, levels: &HashMap<(String, String), Level>) -> Result<(), FeedError> {
        let read_at = Some(ferry_proto::timestamp(SystemTime::now()));
        let connector = self.erp.name();
        let messages: Vec<Outgoing> = levels
            .iter()
            .map(|((warehouse, item), level)| {
                let message = pb::StockLevel {
                    tenant: self.tenant.clone(),
                    warehouse: warehouse.clone(),
                    erp_item: item.clone(),
                    available: level.available,
                    version: level.version,
                    connector: connector.to_owned(),
                    read_at,
                };
                Outgoing {
                    subject: self.topology.stock_subject(&self.tenant, warehouse, item),
                    msg_id: format!("{}:stock:{warehouse}:{item}:{}", self.tenant, level.version),
                    payload: Bytes::from(message.encode_to_vec()),
                }
            })
            .collect();
        for chunk in messages.chunks(PUBLISH_CHUNK) {
            self.publisher
                .publish_all(chunk)
                .await
                .map_err(FeedError::transient)?;
        }
        Ok(())
    }
}

#[async_trait]
impl Feed for StockSource {
    /// Another replica may have published since this one last led: publish everything again.
    async fn lead(&self) -> Result<(), FeedError> {
        *self.state.lock() = State::default();
        Ok(())
    }

    async fn pass(&self, cursor: &str) -> Result<Pass, FeedError> {
        let has_feed = self.state.lock().has_feed;
        if has_feed != Some(false) {
            if let Some((latest, next, more)) = self.read_feed(cursor).await? {
                self.state.lock().has_feed = Some(true);
                self.publish(&latest).await?;
                return Ok(Pass {
                    cursor: next,
                    items: latest.len() as u64,
                    more,
                    ..Pass::default()
                });
            }
            tracing::info!(tenant = %self.tenant, connector = self.erp.name(), "the ERP has no stock change feed; reading its stock whole each pass");
            self.state.lock().has_feed = Some(false);
        }
        let changed = self.read_whole().await?;
        self.publish(&changed).await?;
        let mut state = self.state.lock();
        for ((warehouse, item), level) in &changed {
            state
                .published
                .insert((warehouse.clone(), item.clone()), level.available);
        }
        Ok(Pass {
            cursor: cursor.to_owned(),
            items: changed.len() as u64,
            ..Pass::default()
        })
    }
}

fn now_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
