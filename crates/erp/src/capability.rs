//! What an ERP can do for Ferry, one trait per capability: a connector implements what its
//! ERP offers, and each service asks for what it needs (the erp-writer [`PostOrders`], the
//! shipment source [`ShipmentFeed`], the stock source [`StockFeed`], the reconciler
//! [`ReadBack`], the writer's change consumer [`ChangeOrders`], its return consumer
//! [`CreditNotes`]).

use async_trait::async_trait;

use crate::error::ErpError;
use crate::types::{
    ChangeOutcome, CreditOutcome, Customer, Erasure, ErpDocument, OrderChange, PostCredit,
    PostOrder, ReadDocument, ReadPage, ShipmentPage, StockLevel, StockPage,
};

/// Every connector: its name, and whether the ERP answers.
#[async_trait]
pub trait Erp: Send + Sync + 'static {
    /// A short name for logs, metrics and messages ("tryton", "http", "file-drop").
    fn name(&self) -> &'static str;

    /// Whether the ERP answers (the writer's circuit breaker probes it).
    async fn health(&self) -> Result<(), ErpError>;
}

/// Posting sales orders, exactly once by `external_ref`.
#[async_trait]
pub trait PostOrders: Erp {
    /// Finds the sales order Ferry posted for `external_ref`, if the ERP has it, as it
    /// stands: a lookup changes nothing (a document left half-done says so in its `state`).
    async fn find_sales_order(&self, external_ref: &str) -> Result<Option<ErpDocument>, ErpError>;

    /// Creates the sales order, or finishes the one an earlier attempt left unfinished, and
    /// returns it as the ERP holds it afterwards. Connectors make this idempotent by
    /// `external_ref` where the ERP allows; the writer always looks up first after an
    /// uncertain attempt, and records the order as posted only when the document comes back
    /// [`crate::DocumentState::Complete`].
    async fn create_sales_order(&self, order: &PostOrder) -> Result<ErpDocument, ErpError>;

    /// How many orders [`PostOrders::create_sales_orders`] sends in one request; 1 when the
    /// ERP has no batch call (the writer then posts each order on its own).
    fn batch_limit(&self) -> usize {
        1
    }

    /// Creates several sales orders in one request where the ERP has a batch call: one
    /// result per order, in order, each with the verdict [`PostOrders::create_sales_order`]
    /// would have given it. An error of the request as a whole (timeout, outage) is every
    /// order's error. Without a batch call, the orders are created one after another.
    async fn create_sales_orders(
        &self,
        orders: &[PostOrder],
    ) -> Vec<Result<ErpDocument, ErpError>> {
        create_one_by_one(self, orders).await
    }
}

/// Changing a posted sales order as Centra's order changed (ADR 0035).
#[async_trait]
pub trait ChangeOrders: Erp {
    /// Makes the document `change.erp_reference` hold `change.order` (lines, quantities,
    /// prices, tax, address), or cancels it when `change.cancel`. Applying the same change
    /// again leaves the document as it is. An ERP that cannot change the document answers
    /// [`ChangeOutcome::Refused`]; errors are for the ERP not answering or not
    /// understanding (transient or permanent as usual).
    async fn change_sales_order(&self, change: &OrderChange) -> Result<ChangeOutcome, ErpError>;

    /// How many changes [`ChangeOrders::change_sales_orders`] applies in one go; 1 when
    /// the ERP gains nothing from more (the writer then applies each on its own).
    fn change_batch_limit(&self) -> usize {
        1
    }

    /// Applies changes of different orders together where the ERP takes them in bulk: one
    /// result per change, in order, each with the verdict
    /// [`ChangeOrders::change_sales_order`] would have given it. Without a bulk call, one
    /// after another.
    async fn change_sales_orders(
        &self,
        changes: &[OrderChange],
    ) -> Vec<Result<ChangeOutcome, ErpError>> {
        let mut results = Vec::with_capacity(changes.len());
        for change in changes {
            results.push(self.change_sales_order(change).await);
        }
        results
    }
}

/// Crediting returns (ADR 0037).
#[async_trait]
pub trait CreditNotes: Erp {
    /// Makes the credit document `credit.external_ref` against the sales order
    /// `credit.order_erp_reference`, or finds the one an earlier attempt made: the same
    /// credit twice is one document. An ERP that will not credit the order answers
    /// [`CreditOutcome::Refused`]; errors are for the ERP not answering or not
    /// understanding (transient or permanent as usual).
    async fn create_credit_note(&self, credit: &PostCredit) -> Result<CreditOutcome, ErpError>;

    /// The credit document an earlier attempt made for `credit.external_ref`, if the ERP
    /// holds one. The writer asks before sending a credit again after an attempt whose
    /// answer it never heard (lost, or the writer died), so that an ERP which does not
    /// honour idempotency keys still ends with one document. `None` by default: for
    /// connectors whose create already finds the earlier document itself.
    async fn find_credit_note(&self, credit: &PostCredit) -> Result<Option<ErpDocument>, ErpError> {
        let _ = credit;
        Ok(None)
    }

    /// How many credits [`CreditNotes::create_credit_notes`] makes in one go; 1 when the
    /// ERP gains nothing from more (the writer then credits each return on its own).
    fn credit_batch_limit(&self) -> usize {
        1
    }

    /// Makes several credit documents together where the ERP takes them in bulk: one result
    /// per credit, in order, each with the verdict [`CreditNotes::create_credit_note`]
    /// would have given it. Without a bulk call, one after another.
    async fn create_credit_notes(
        &self,
        credits: &[PostCredit],
    ) -> Vec<Result<CreditOutcome, ErpError>> {
        let mut results = Vec::with_capacity(credits.len());
        for credit in credits {
            results.push(self.create_credit_note(credit).await);
        }
        results
    }
}

/// Customers: so support sees the same history as the warehouse.
#[async_trait]
pub trait Customers: Erp {
    /// Matches the customer (by e-mail, or the configured generic customer) or creates it,
    /// and returns the ERP's id for it. `external_ref` names the order it came with.
    async fn match_or_create_customer(
        &self,
        customer: &Customer,
        external_ref: &str,
    ) -> Result<String, ErpError>;

    /// Makes the ERP's customer for `customer.centra_customer_id` hold the account as it is
    /// now (name, e-mail, address): found by that id, then by e-mail; created when none.
    /// Returns the ERP's id; `None` when this ERP's connector does not keep customers in
    /// step (its customers change only with orders).
    async fn sync_customer(&self, _customer: &Customer) -> Result<Option<String>, ErpError> {
        Ok(None)
    }

    /// The customer asked Centra to be erased: the ERP's customer for that Centra id loses
    /// its personal data (what bookkeeping must keep, it keeps anonymised).
    async fn erase_customer(&self, _centra_customer_id: i64) -> Result<Erasure, ErpError> {
        Ok(Erasure::Unsupported)
    }
}

/// Shipments the warehouse completed.
#[async_trait]
pub trait ShipmentFeed: Erp {
    /// Shipments completed after `cursor` ("" = from the beginning), oldest first, at most
    /// `limit`. Resuming from the returned cursor never skips one; a shipment may come again
    /// if the ERP changed it, so readers deduplicate by id.
    async fn shipments_since(&self, cursor: &str, limit: usize) -> Result<ShipmentPage, ErpError>;
}

/// What the ERP can sell, per warehouse and item.
#[async_trait]
pub trait StockFeed: Erp {
    /// Sellable stock per warehouse for `items` (all stocked items when empty).
    async fn stock_levels(&self, items: &[String]) -> Result<Vec<StockLevel>, ErpError>;

    /// Stock changes after `cursor` ("" = from the beginning), oldest first, at most
    /// `limit`; `None` when the ERP has no change feed and must be read whole with
    /// [`StockFeed::stock_levels`].
    async fn stock_changes_since(
        &self,
        _cursor: &str,
        _limit: usize,
    ) -> Result<Option<StockPage>, ErpError> {
        Ok(None)
    }
}

/// Reading sales orders back as the ERP holds them — lines, prices, tax, totals, state —
/// whatever Ferry sent and whatever happened to them since: what the reconciler checks.
#[async_trait]
pub trait ReadBack: Erp {
    /// Every document the ERP holds under `external_ref`, oldest first: none (never posted,
    /// or deleted since), one, or more (a duplicate).
    async fn read_sales_orders(&self, external_ref: &str) -> Result<Vec<ReadDocument>, ErpError>;

    /// [`ReadBack::read_sales_orders`] for each of `external_refs`, in their order. An ERP
    /// that reads many at once overrides this; the default reads one at a time, at most
    /// `in_flight` together.
    async fn read_many(
        &self,
        external_refs: &[String],
        in_flight: usize,
    ) -> Result<Vec<Vec<ReadDocument>>, ErpError> {
        use futures::{StreamExt as _, TryStreamExt as _};
        // By index: a closure over borrowed items trips the Send check of async_trait.
        futures::stream::iter(0..external_refs.len())
            .map(|i| self.read_sales_orders(&external_refs[i]))
            .buffered(in_flight.max(1))
            .try_collect()
            .await
    }

    /// Every sales order the ERP holds — those Ferry posted and those it did not — oldest
    /// first, after `cursor` ("" = from the beginning), at most `limit`.
    async fn sales_orders_since(&self, cursor: &str, limit: usize) -> Result<ReadPage, ErpError>;

    /// [`ReadBack::sales_orders_since`] where the lines may be left out (empty): the walk
    /// for documents no order explains reads only who, when and how much. The default
    /// reads them whole.
    async fn headers_since(&self, cursor: &str, limit: usize) -> Result<ReadPage, ErpError> {
        self.sales_orders_since(cursor, limit).await
    }
}

/// Creates `orders` one request after another: what an ERP without a batch call does with
/// [`PostOrders::create_sales_orders`], and a batch connector's fallback.
pub async fn create_one_by_one<E: PostOrders + ?Sized>(
    erp: &E,
    orders: &[PostOrder],
) -> Vec<Result<ErpDocument, ErpError>> {
    let mut results = Vec::with_capacity(orders.len());
    for order in orders {
        results.push(erp.create_sales_order(order).await);
    }
    results
}
