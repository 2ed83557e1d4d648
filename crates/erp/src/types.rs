//! The documents Ferry exchanges with an ERP: the sales order it posts, the document the
//! ERP holds, shipments and stock as the ERP reports them.

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
    /// Where the goods go when Centra's shipping address is not the customer's billing
    /// address (a gift, a work address); `None`: to the customer's address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery: Option<Address>,
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
    /// Centra's customer id (none for a guest): what the ERP's customer is found by when
    /// the account changes or is erased.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub centra_customer_id: Option<i64>,
}

/// A delivery address: who receives the goods, and where.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Address {
    pub first_name: String,
    pub last_name: String,
    pub company_name: String,
    pub address1: String,
    pub address2: String,
    pub city: String,
    pub zip_code: String,
    pub state_or_province: String,
    pub country_code: String,
    pub phone_number: String,
}

/// What the ERP did with a customer's erasure request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Erasure {
    /// Personal data removed or anonymised, in the ERP's words (what was kept, and why).
    Done(String),
    /// The ERP has no customer for that Centra id.
    NotFound,
    /// This ERP's connector cannot erase customers: a person must.
    Unsupported,
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

/// An order that changed in Centra after it reached the ERP: the document `erp_reference`
/// must now hold `order` (ADR 0035). Whole, not a difference: applying it twice, or after
/// a later change was lost, still leaves the document matching the order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderChange {
    /// Names this change: the newer snapshot's content hash. An ERP that records it can
    /// answer a repeat as it answered the first time.
    pub change_id: String,
    /// The document the order was posted as.
    pub erp_reference: String,
    /// The whole order as it should now stand; `order.external_ref` names it.
    pub order: PostOrder,
    /// The whole order was cancelled in Centra.
    pub cancel: bool,
}

/// What the ERP did with an [`OrderChange`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChangeOutcome {
    /// Changed (or cancelled): the document as the ERP holds it afterwards.
    Applied(ErpDocument),
    /// The ERP cannot change this document (shipped, invoiced, closed): why, in its
    /// words. Permanent: finance corrects it another way (a credit note).
    Refused(String),
}

/// A credit document for a completed Centra return (ADR 0037): the returned part of a
/// posted order, each line's money as the order charged it (positive amounts; the ERP
/// books them as a credit). `net = gross − tax` on every line and the lines sum to the
/// totals.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PostCredit {
    pub tenant: String,
    /// `<order number>-R<return id>`: the idempotency key in the ERP.
    pub external_ref: String,
    /// The Centra order number the return belongs to.
    pub order_ref: String,
    /// The ERP's sales order it credits.
    pub order_erp_reference: String,
    pub return_id: i64,
    pub currency: String,
    /// When Centra created the return, verbatim.
    pub date: String,
    pub lines: Vec<PostLine>,
    pub gross_minor: i64,
    pub tax_minor: i64,
    /// The goods go back on the shelf (Centra's stock action policy); otherwise they are
    /// written off.
    pub restock: bool,
}

/// What the ERP did with a [`PostCredit`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CreditOutcome {
    /// The ERP holds the credit document (made now, or found from an earlier attempt).
    Credited(ErpDocument),
    /// The ERP will not credit this order (closed, not invoiced, …): why, in its words.
    /// Permanent: finance credits it another way.
    Refused(String),
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
    /// Records on this page that could not be read: the feed moves past them, and the
    /// source reports each (with its content) for a person to fix and send again.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unreadable: Vec<Unreadable>,
}

/// A record from the ERP or a warehouse that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unreadable {
    /// Where it was (a file name, a record id).
    pub name: String,
    pub reason: String,
    /// What it held, as far as it could be read.
    #[serde(default)]
    pub content: Vec<u8>,
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

/// What a line of a document read back from the ERP is for. `Rounding` is the explicit line
/// a connector adds so that the ERP's total equals what the customer paid; `Other` is
/// anything Ferry never posts (a line someone added in the ERP).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReadLineKind {
    Item,
    Shipping,
    Handling,
    Rounding,
    Other,
}

impl From<LineKind> for ReadLineKind {
    fn from(kind: LineKind) -> Self {
        match kind {
            LineKind::Item => ReadLineKind::Item,
            LineKind::Shipping => ReadLineKind::Shipping,
            LineKind::Handling => ReadLineKind::Handling,
        }
    }
}

/// One line of a sales order as the ERP holds it. Amounts are the line's totals in minor
/// units of the document's currency, after any discount; `net = gross − tax`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadLine {
    pub kind: ReadLineKind,
    pub erp_item: String,
    pub description: String,
    pub quantity: i64,
    /// The unit price as the ERP keeps it (net of tax, in currency units, with the ERP's
    /// own precision), when it keeps one.
    pub unit_price: Option<rust_decimal::Decimal>,
    /// Percent ("25", "8.875"), as the ERP states it; empty when the line has no tax.
    pub tax_rate: String,
    pub gross_minor: i64,
    pub tax_minor: i64,
    pub net_minor: i64,
}

/// A sales order read back from the ERP, line by line, exactly as the ERP holds it now —
/// not as Ferry sent it: the reconciler compares it with what Centra charged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadDocument {
    /// The ERP's own reference (number or id).
    pub reference: String,
    /// The Centra order number it carries; empty for a document no Centra order names
    /// (entered by hand in the ERP).
    pub external_ref: String,
    pub currency: String,
    pub state: DocumentState,
    /// The ERP's own word for its state ("processing"), for people; may be empty.
    pub erp_state: String,
    pub lines: Vec<ReadLine>,
    /// The ERP's own totals (not Ferry's sums of the lines).
    pub gross_minor: i64,
    pub tax_minor: i64,
    /// When the ERP created it, RFC 3339 (or a date where the ERP keeps only that).
    pub created_at: String,
}

/// A page of every sales order the ERP holds, oldest first, and the cursor to go on from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadPage {
    pub documents: Vec<ReadDocument>,
    /// Pass back to read on; unchanged when nothing more is there.
    pub next_cursor: String,
}
