//! The ERP connector trait: the few things Ferry needs from an ERP, with every error
//! classified transient or permanent where it arises. A new ERP is one new crate under
//! `crates/erp/connectors/` implementing [`ErpConnector`]. See `docs/connectors.md`.

use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

/// A sales order as Ferry posts it. Money is integer minor units of `currency`;
/// `net = gross − tax` on every line and the lines sum to what the customer paid.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PostOrder {
    pub tenant: String,
    /// The Centra order number: the idempotency key in the ERP.
    pub external_ref: String,
    pub currency: String,
    pub order_date: String,
    pub customer: Customer,
    pub lines: Vec<PostLine>,
    pub gross_minor: i64,
    pub tax_minor: i64,
    pub payment_term: Option<String>,
    pub carrier: Option<String>,
    pub sales_channel: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LineKind {
    Item,
    Shipping,
    Handling,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PostLine {
    pub kind: LineKind,
    pub erp_item: String,
    pub sku: Option<String>,
    pub centra_line_id: Option<i64>,
    pub quantity: i64,
    /// Percent, as a decimal string ("25", "8.875").
    pub tax_rate: String,
    pub tax_code: Option<String>,
    pub gross_minor: i64,
    pub tax_minor: i64,
    pub net_minor: i64,
    pub description: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Customer {
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    pub company_name: String,
    pub vat_number: String,
    pub address1: String,
    pub address2: String,
    pub city: String,
    pub zip_code: String,
    pub state_or_province: String,
    pub country_code: String,
    pub phone_number: String,
    /// Post to this ERP customer instead of matching by e-mail (generic guest customers).
    pub erp_customer: Option<String>,
}

/// Where an ERP document stands against the posting policy. Only a `Complete` document
/// counts as posted: a half-done one (a quotation never confirmed, a confirmed sale never
/// processed) looks synced while the warehouse never sees it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DocumentState {
    /// In the state the posting policy asks for (e.g. confirmed and processed, or a draft
    /// left for review where the policy says so). Documents that carry no state are this.
    #[default]
    Complete,
    /// Created, but a step of the posting is still to do. Creating the order again finishes
    /// it ([`ErpConnector::create_sales_order`] resumes where the document stands).
    Unfinished,
    /// Cancelled in the ERP: never posted, whatever else is true of it.
    Cancelled,
}

impl DocumentState {
    pub fn as_str(&self) -> &'static str {
        match self {
            DocumentState::Complete => "complete",
            DocumentState::Unfinished => "unfinished",
            DocumentState::Cancelled => "cancelled",
        }
    }
}

/// A sales order as the ERP holds it, read back after posting.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErpDocument {
    /// The ERP's own reference (number or id).
    pub reference: String,
    pub external_ref: String,
    pub currency: String,
    pub gross_minor: i64,
    pub tax_minor: i64,
    pub line_count: usize,
    /// An explicit rounding line the connector had to add so that the ERP's total equals
    /// what the customer paid (ERPs that recompute tax from net prices); 0 when none.
    #[serde(default)]
    pub rounding_minor: i64,
    /// How far the ERP has taken the document; see [`DocumentState`].
    #[serde(default)]
    pub state: DocumentState,
    /// The ERP's own word for where the document stands ("quotation", "processing"), for
    /// messages to people; empty when the ERP has none.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub erp_state: String,
}

/// One outbound shipment as the ERP recorded it (fulfilment feedback reads these).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErpShipment {
    /// The ERP's own id or number for the shipment.
    pub id: String,
    /// The Centra order number the shipment belongs to.
    pub external_ref: String,
    /// When it left, RFC 3339 (or a date when the ERP keeps only that).
    pub shipped_at: String,
    pub carrier: Option<String>,
    pub tracking_number: Option<String>,
    pub lines: Vec<ErpShipmentLine>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErpShipmentLine {
    pub erp_item: String,
    pub quantity: i64,
}

/// A page of the shipment feed and the cursor to continue from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShipmentPage {
    pub shipments: Vec<ErpShipment>,
    /// Pass back to read on; unchanged when nothing new arrived.
    pub next_cursor: String,
}

/// What the ERP can sell of one item in one warehouse (stock less what is already promised).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StockLevel {
    pub erp_item: String,
    pub warehouse: String,
    pub available: i64,
}

/// One stock change from an ERP's change feed: the item's new level, numbered so a later
/// change always has a larger `seq` than an earlier one of the same item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StockChange {
    pub seq: i64,
    pub erp_item: String,
    pub warehouse: String,
    pub available: i64,
}

/// A page of the stock change feed and the cursor to continue from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StockPage {
    pub changes: Vec<StockChange>,
    /// Pass back to read on; unchanged when nothing new arrived.
    pub next_cursor: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ErpError {
    /// No answer in time: the document may or may not exist. Settle by lookup.
    #[error("the ERP did not answer in time: {0}")]
    Timeout(String),
    /// Down, overloaded or asking us to slow down: retry later.
    #[error("the ERP is unavailable: {reason}")]
    Unavailable {
        reason: String,
        retry_after: Option<Duration>,
    },
    /// The ERP refused the document; retrying the same thing will fail again.
    #[error("the ERP refused the sales order: {0}")]
    Rejected(String),
    /// Credentials or configuration are wrong.
    #[error("the ERP connector is misconfigured: {0}")]
    Misconfigured(String),
}

impl ErpError {
    pub fn is_transient(&self) -> bool {
        matches!(self, ErpError::Timeout(_) | ErpError::Unavailable { .. })
    }

    /// The request may have taken effect in the ERP.
    pub fn possibly_applied(&self) -> bool {
        matches!(self, ErpError::Timeout(_))
    }

    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ErpError::Unavailable { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// What Ferry needs from an ERP.
#[async_trait]
pub trait ErpConnector: Send + Sync + 'static {
    /// A short name for logs and metrics ("tryton", "http").
    fn name(&self) -> &'static str;

    /// Finds the sales order Ferry posted for `external_ref`, if the ERP has it, as it
    /// stands: a lookup changes nothing (a document left half-done says so in its `state`).
    async fn find_sales_order(&self, external_ref: &str) -> Result<Option<ErpDocument>, ErpError>;

    /// Creates the sales order, or finishes the one an earlier attempt left unfinished, and
    /// returns it as the ERP holds it afterwards. Connectors make this idempotent by
    /// `external_ref` where the ERP allows; the writer always looks up first after an
    /// uncertain attempt, and records the order as posted only when the document comes back
    /// [`DocumentState::Complete`].
    async fn create_sales_order(&self, order: &PostOrder) -> Result<ErpDocument, ErpError>;

    /// How many orders [`ErpConnector::create_sales_orders`] sends in one request; 1 when the
    /// ERP has no batch call (the writer then posts each order on its own).
    fn batch_limit(&self) -> usize {
        1
    }

    /// Creates several sales orders in one request where the ERP has a batch call: one
    /// result per order, in order, each with the verdict [`ErpConnector::create_sales_order`]
    /// would have given it. An error of the request as a whole (timeout, outage) is every
    /// order's error. Without a batch call, the orders are created one after another.
    async fn create_sales_orders(
        &self,
        orders: &[PostOrder],
    ) -> Vec<Result<ErpDocument, ErpError>> {
        create_one_by_one(self, orders).await
    }

    /// Whether the ERP answers.
    async fn health(&self) -> Result<(), ErpError>;

    /// Matches the customer (by e-mail, or the configured generic customer) or creates it,
    /// and returns the ERP's id for it. `external_ref` names the order it came with.
    async fn match_or_create_customer(
        &self,
        customer: &Customer,
        external_ref: &str,
    ) -> Result<String, ErpError>;

    /// Shipments completed after `cursor` ("" = from the beginning), oldest first, at most
    /// `limit`. Resuming from the returned cursor never skips one; a shipment may come again
    /// if the ERP changed it, so readers deduplicate by id.
    async fn shipments_since(&self, cursor: &str, limit: usize) -> Result<ShipmentPage, ErpError>;

    /// Sellable stock per warehouse for `items` (all stocked items when empty).
    async fn stock_levels(&self, items: &[String]) -> Result<Vec<StockLevel>, ErpError>;

    /// Stock changes after `cursor` ("" = from the beginning), oldest first, at most
    /// `limit`; `None` when the ERP has no change feed and must be read whole with
    /// [`ErpConnector::stock_levels`].
    async fn stock_changes_since(
        &self,
        _cursor: &str,
        _limit: usize,
    ) -> Result<Option<StockPage>, ErpError> {
        Ok(None)
    }
}

/// Creates `orders` one request after another: what an ERP without a batch call does with
/// [`ErpConnector::create_sales_orders`], and a batch connector's fallback.
pub async fn create_one_by_one<E: ErpConnector + ?Sized>(
    erp: &E,
    orders: &[PostOrder],
) -> Vec<Result<ErpDocument, ErpError>> {
    let mut results = Vec::with_capacity(orders.len());
    for order in orders {
        results.push(erp.create_sales_order(order).await);
    }
    results
}
