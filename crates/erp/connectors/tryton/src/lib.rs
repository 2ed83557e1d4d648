//! ERP connector for Tryton (a real open-source ERP) over its JSON-RPC API: parties matched
//! by e-mail or created, sales with tax-exclusive lines, Ferry's own shipping line, quote
//! and confirm per policy, and the totals read back and balanced to what the customer paid.
//!
//! Tryton prices are tax-exclusive and it recomputes tax from net amounts, so the posting
//! policy (see `docs/connectors.md`) is: post each line's net amount exactly (4-decimal unit
//! price), let Tryton compute tax, and if its total differs from what the customer paid, add
//! one explicit ROUNDING line for the difference, recorded on the document.
//!
//! A sale counts as posted only once Tryton has processed it (state processing or done, so
//! the warehouse has its shipment); one found on the way (draft, quotation, confirmed) is
//! taken on from there, and one found cancelled is reported, never posted.

mod amend_prep;
mod batch;
mod change_batch;
mod changes;
mod credits;
mod customers;
mod delivery;
mod feeds;
mod lookups;
mod party;
mod readback;
pub mod rpc;
mod sale;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use ferry_erp::{
    BuildContext, Connector, Customer, Customers, Erasure, Erp, ErpDocument, ErpError, Kind,
    PostOrder, PostOrders, ReadBack, ReadDocument, ReadPage, Settings, ShipmentFeed, ShipmentPage,
    StockFeed, StockLevel,
};
use secrecy::SecretString;
use serde_json::json;
use tokio::sync::Mutex;

use crate::lookups::Lookups;
use crate::rpc::Rpc;
pub use crate::sale::net_unit_price;

/// How to reach Tryton and how far to take each sale.
#[derive(Debug, Clone)]
pub struct TrytonConfig {
    /// The database's base URL, e.g. `http://127.0.0.1:8000/ferry/`.
    pub url: String,
    pub user: String,
    pub password: SecretString,
    pub timeout: Duration,
    /// Quote and confirm each sale (true), or leave it as a draft for review (false).
    pub confirm: bool,
    /// The service item for explicit rounding lines.
    pub rounding_item: String,
    /// The carrier put on sales (by party name), if any.
    pub carrier: Option<String>,
    /// Put before the Centra order number in the sale's reference, for ERPs shared by
    /// several brands (e.g. "acme-"); empty by default.
    pub reference_prefix: String,
    /// Orders created per call (1: each on its own). Most of a sale's cost in Tryton is
    /// per call, so batches post several times faster.
    pub batch: usize,
}

impl TrytonConfig {
    pub fn new(url: impl Into<String>, user: impl Into<String>, password: SecretString) -> Self {
        Self {
            url: url.into(),
            user: user.into(),
            password,
            timeout: Duration::from_secs(30),
            confirm: true,
            rounding_item: "ROUNDING".into(),
            carrier: Some("PostNord".into()),
            reference_prefix: String::new(),
            batch: DEFAULT_BATCH,
        }
    }
}

/// `[erp] kind = "tryton"`: the database's URL, a user and password, and the posting policy.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrytonSettings {
    /// e.g. `http://127.0.0.1:8000/ferry/` (the database's base URL).
    pub url: String,
    pub user: String,
    pub password: SecretString,
    /// Quote and confirm each sale (default) or leave it a draft for review.
    #[serde(default = "yes")]
    pub confirm: bool,
    /// The carrier (party name) put on sales.
    #[serde(default)]
    pub carrier: Option<String>,
    /// Put before the order number in the sale's reference (ERPs shared by brands).
    #[serde(default)]
    pub reference_prefix: String,
    /// Orders created per Tryton call (1 posts each on its own).
    #[serde(default = "default_batch")]
    pub batch: usize,
}

/// Orders per Tryton call unless configured.
pub const DEFAULT_BATCH: usize = 50;

fn yes() -> bool {
    true
}

fn default_batch() -> usize {
    DEFAULT_BATCH
}

/// The connector kind, for the binary's registry.
pub fn kind() -> Kind {
    Kind {
        name: "tryton",
        build,
    }
}

fn build(settings: &Settings, context: &BuildContext) -> Result<Connector, String> {
    let s: TrytonSettings = ferry_erp::registry::settings(settings)?;
    if !s.url.starts_with("http://") && !s.url.starts_with("https://") {
        return Err(format!("url {:?} must be http(s)", s.url));
    }
    let tryton = Arc::new(Tryton::new(TrytonConfig {
        timeout: context.timeout,
        confirm: s.confirm,
        carrier: s.carrier,
        reference_prefix: s.reference_prefix,
        batch: s.batch.max(1),
        ..TrytonConfig::new(s.url, s.user, s.password)
    }));
    Ok(Connector::full("tryton", tryton.clone())
        .changes(tryton.clone())
        .credits(tryton))
}

/// A Tryton database as Ferry's ERP.
pub struct Tryton {
    rpc: Rpc,
    config: TrytonConfig,
    lookups: Mutex<Lookups>,
    /// One match-or-create of a party at a time: two concurrent orders of one customer must
    /// not create two parties, and Tryton's party code sequence collides under concurrency.
    parties: Mutex<()>,
}

impl Tryton {
    pub fn new(config: TrytonConfig) -> Self {
        Self {
            rpc: Rpc::new(
                &config.url,
                &config.user,
                config.password.clone(),
                config.timeout,
            ),
            config,
            lookups: Mutex::new(Lookups::default()),
            parties: Mutex::new(()),
        }
    }

    fn reference(&self, external_ref: &str) -> String {
        format!("{}{external_ref}", self.config.reference_prefix)
    }

    /// The raw JSON-RPC client, for tests and tools that drive Tryton's own workflows.
    pub fn rpc(&self) -> &Rpc {
        &self.rpc
    }
}

#[async_trait]
impl Erp for Tryton {
    fn name(&self) -> &'static str {
        "tryton"
    }

    async fn health(&self) -> Result<(), ErpError> {
        self.rpc
            .call("model.res.user.get_preferences", vec![json!(true)])
            .await
            .map(|_| ())
    }
}

#[async_trait]
impl PostOrders for Tryton {
    async fn find_sales_order(&self, external_ref: &str) -> Result<Option<ErpDocument>, ErpError> {
        // As it stands: a sale an interrupted post left half-done says so, and the writer
        // finishes it through `create_sales_order`, which knows what the customer paid.
        match self.sale_id(&self.reference(external_ref)).await? {
            Some(id) => self.sale_as_it_stands(id).await.map(Some),
            None => Ok(None),
        }
    }

    async fn create_sales_order(&self, order: &PostOrder) -> Result<ErpDocument, ErpError> {
        self.create_sale(order).await
    }

    fn batch_limit(&self) -> usize {
        self.config.batch
    }

    async fn create_sales_orders(
        &self,
        orders: &[PostOrder],
    ) -> Vec<Result<ErpDocument, ErpError>> {
        if let [order] = orders {
            return vec![self.create_sale(order).await];
        }
        self.create_sales_batch(orders).await
    }
}

#[async_trait]
impl ReadBack for Tryton {
    async fn read_sales_orders(&self, external_ref: &str) -> Result<Vec<ReadDocument>, ErpError> {
        self.read_back(external_ref).await
    }

    async fn sales_orders_since(&self, cursor: &str, limit: usize) -> Result<ReadPage, ErpError> {
        self.read_back_since(cursor, limit).await
    }
}

#[async_trait]
impl Customers for Tryton {
    async fn match_or_create_customer(
        &self,
        customer: &Customer,
        external_ref: &str,
    ) -> Result<String, ErpError> {
        let (party, _) = self.party(customer, external_ref).await?;
        Ok(format!("party.party,{party}"))
    }

    async fn sync_customer(&self, customer: &Customer) -> Result<Option<String>, ErpError> {
        let party = self.sync_party(customer).await?;
        Ok(Some(format!("party.party,{party}")))
    }

    async fn erase_customer(&self, centra_customer_id: i64) -> Result<Erasure, ErpError> {
        self.erase_party(centra_customer_id).await
    }
}

#[async_trait]
impl ShipmentFeed for Tryton {
    async fn shipments_since(&self, cursor: &str, limit: usize) -> Result<ShipmentPage, ErpError> {
        self.shipments_page(cursor, limit).await
    }
}

/// Tryton has no stock change feed: its stock is read whole each poll.
#[async_trait]
impl StockFeed for Tryton {
    async fn stock_levels(&self, items: &[String]) -> Result<Vec<StockLevel>, ErpError> {
        self.stock_per_warehouse(items).await
    }
}
