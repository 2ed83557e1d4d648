//! Connector for the generic HTTP JSON ERP (`docs/erp-http-api.md`), the API the ERP
//! simulator speaks: idempotent sales orders by `Idempotency-Key` (singly or in batches),
//! lookup by external reference, documents read back as recorded, changes after posting,
//! credit notes for returns, 429 with `Retry-After`.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use ferry_erp::{
    BuildContext, Connector, Customer, Customers, DocumentState, Erasure, Erp, ErpDocument,
    ErpError, Kind, PostOrder, PostOrders, ReadBack, ReadDocument, ReadLine, ReadLineKind,
    ReadPage, Settings, ShipmentFeed, ShipmentPage, StockFeed, StockLevel, StockPage,
};
use secrecy::{ExposeSecret, SecretString};

mod changes;
mod credits;

/// `[erp] kind = "http"`: the ERP's base URL and, optionally, a bearer token.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSettings {
    pub url: String,
    #[serde(default)]
    pub token: Option<SecretString>,
    /// Orders per batch request (1: no batches).
    #[serde(default = "default_batch_limit")]
    pub batch_limit: usize,
}

fn default_batch_limit() -> usize {
    DEFAULT_BATCH_LIMIT
}

/// The connector kind, for the binary's registry.
pub fn kind() -> Kind {
    Kind {
        name: "http",
        build,
    }
}

fn build(settings: &Settings, context: &BuildContext) -> Result<Connector, String> {
    let s: HttpSettings = ferry_erp::registry::settings(settings)?;
    if !s.url.starts_with("http://") && !s.url.starts_with("https://") {
        return Err(format!("url {:?} must be http(s)", s.url));
    }
    let erp = HttpErp::new(
        s.url,
        s.token.map(|t| t.expose_secret().to_owned()),
        context.timeout,
    )
    .with_batch_limit(s.batch_limit);
    let erp = Arc::new(erp);
    Ok(Connector::full("http", erp.clone())
        .changes(erp.clone())
        .credits(erp))
}

pub struct HttpErp {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
    batch_limit: usize,
}

/// Orders per `POST /api/sales-orders/batch` unless configured otherwise.
pub const DEFAULT_BATCH_LIMIT: usize = 100;

#[derive(serde::Serialize)]
struct BatchRequest<'a> {
    orders: &'a [PostOrder],
}

#[derive(serde::Deserialize)]
struct BatchAnswer {
    results: Vec<BatchResult>,
}

/// One order's verdict in a batch: the HTTP status the single call would have answered,
/// with the document or the error text.
#[derive(serde::Deserialize)]
struct BatchResult {
    status: u16,
    #[serde(default)]
    document: Option<ErpDocument>,
    #[serde(default)]
    error: Option<String>,
}

impl HttpErp {
    pub fn new(base: impl Into<String>, token: Option<String>, timeout: Duration) -> Self {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .pool_max_idle_per_host(64)
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        Self {
            http,
            base: base.into().trim_end_matches('/').to_owned(),
            token,
            batch_limit: DEFAULT_BATCH_LIMIT,
        }
    }

    /// At most `limit` orders per batch request; 1 posts every order on its own.
    pub fn with_batch_limit(mut self, limit: usize) -> Self {
        self.batch_limit = limit.max(1);
        self
    }

    /// One `POST /api/sales-orders/batch` of at most `batch_limit` orders.
    async fn batch(&self, orders: &[PostOrder]) -> Vec<Result<ErpDocument, ErpError>> {
        let everyone = |error: ErpError| orders.iter().map(|_| Err(error.clone())).collect();
        let sent = self
            .request(reqwest::Method::POST, "/api/sales-orders/batch")
            .json(&BatchRequest { orders })
            .send()
            .await;
        let response = match sent {
            Ok(r) => r,
            Err(e) => return everyone(transport(e)),
        };
        let answer: BatchAnswer = match classify(response).await {
            // Accepted, but the answer cannot be read: any of the orders may exist now, so
            // each is uncertain and settled by lookup.
            Ok(r) => match r.json().await {
                Ok(a) => a,
                Err(e) => {
                    return everyone(ErpError::Timeout(format!("unreadable batch answer: {e}")));
                }
            },
            // Refused as a whole (no batch call, too large, one order the ERP cannot even
            // read): no order was created, and each one deserves its own verdict.
            Err(ErpError::Rejected(reason)) => {
                tracing::debug!(%reason, orders = orders.len(), "batch refused; posting singly");
                return ferry_erp::create_one_by_one(self, orders).await;
            }
            Err(e) => return everyone(e),
        };
        if answer.results.len() != orders.len() {
            return everyone(ErpError::Timeout(format!(
                "the batch answer has {} results for {} orders",
                answer.results.len(),
                orders.len()
            )));
        }
        answer.results.into_iter().map(Self::batch_result).collect()
    }

    /// One order's verdict inside a batch answer.
    fn batch_result(result: BatchResult) -> Result<ErpDocument, ErpError> {
        if (200..300).contains(&result.status) {
            // Accepted but unreadable: as uncertain as a lost answer.
            return result
                .document
                .ok_or_else(|| ErpError::Timeout("a batch result without its document".into()));
        }
        Err(ErpError::from_status(
            result.status,
            "batch create",
            None,
            &result.error.unwrap_or_default(),
        ))
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let builder = self.http.request(method, format!("{}{path}", self.base));
        match &self.token {
            Some(t) => builder.bearer_auth(t),
            None => builder,
        }
    }
}

fn transport(e: reqwest::Error) -> ErpError {
    if e.is_timeout() {
        ErpError::Timeout(e.without_url().to_string())
    } else {
        ErpError::Unavailable {
            reason: e.without_url().to_string(),
            retry_after: None,
        }
    }
}

async fn classify(response: reqwest::Response) -> Result<reqwest::Response, ErpError> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| ferry_domain::http::parse_retry_after(v, SystemTime::now()));
    let what = response.url().path().to_owned();
    let body = response.text().await.unwrap_or_default();
    Err(ErpError::from_status(
        status.as_u16(),
        &what,
        retry_after,
        &body,
    ))
}

/// Reads a JSON answer; an unreadable one is treated as the ERP misbehaving (transient).
async fn read_json<T: serde::de::DeserializeOwned>(
    response: reqwest::Response,
    what: &str,
) -> Result<T, ErpError> {
    classify(response)
        .await?
        .json()
        .await
        .map_err(|e| ErpError::Unavailable {
            reason: format!("unreadable {what} answer: {e}"),
            retry_after: None,
        })
}

#[async_trait]
impl Erp for HttpErp {
    fn name(&self) -> &'static str {
        "http"
    }

    async fn health(&self) -> Result<(), ErpError> {
        let response = self
            .request(reqwest::Method::GET, "/health")
            .send()
            .await
            .map_err(transport)?;
        classify(response).await.map(|_| ())
    }
}

#[async_trait]
impl PostOrders for HttpErp {
    async fn find_sales_order(&self, external_ref: &str) -> Result<Option<ErpDocument>, ErpError> {
        let response = self
            .request(reqwest::Method::GET, "/api/sales-orders")
            .query(&[("external_ref", external_ref)])
            .send()
            .await
            .map_err(transport)?;
        let found: Vec<ErpDocument> =
            classify(response)
                .await?
                .json()
                .await
                .map_err(|e| ErpError::Unavailable {
                    reason: format!("unreadable lookup answer: {e}"),
                    retry_after: None,
                })?;
        Ok(found.into_iter().next())
    }

    async fn create_sales_order(&self, order: &PostOrder) -> Result<ErpDocument, ErpError> {
        let response = self
            .request(reqwest::Method::POST, "/api/sales-orders")
            .header("Idempotency-Key", &order.external_ref)
            .json(order)
            .send()
            .await
            .map_err(transport)?;
        classify(response)
            .await?
            .json()
            .await
            // The order was accepted but the answer is unreadable: treat as uncertain.
            .map_err(|e| ErpError::Timeout(format!("unreadable create answer: {e}")))
    }

    fn batch_limit(&self) -> usize {
        self.batch_limit
    }

    async fn create_sales_orders(
        &self,
        orders: &[PostOrder],
    ) -> Vec<Result<ErpDocument, ErpError>> {
        if orders.len() <= 1 || self.batch_limit <= 1 {
            return ferry_erp::create_one_by_one(self, orders).await;
        }
        let mut results = Vec::with_capacity(orders.len());
        for chunk in orders.chunks(self.batch_limit) {
            results.extend(self.batch(chunk).await);
        }
        results
    }
}

/// The ERP's id in a customer answer (`{"id": …}`).
async fn customer_id(response: reqwest::Response) -> Result<String, ErpError> {
    let answer: serde_json::Value = read_json(response, "customer").await?;
    answer["id"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| ErpError::Rejected("the ERP returned no customer id".into()))
}

#[async_trait]
impl Customers for HttpErp {
    async fn match_or_create_customer(
        &self,
        customer: &Customer,
        _external_ref: &str,
    ) -> Result<String, ErpError> {
        if let Some(id) = &customer.erp_customer {
            return Ok(id.clone());
        }
        let response = self
            .request(reqwest::Method::POST, "/api/customers")
            .json(customer)
            .send()
            .await
            .map_err(transport)?;
        customer_id(response).await
    }

    async fn sync_customer(&self, customer: &Customer) -> Result<Option<String>, ErpError> {
        let Some(centra_id) = customer.centra_customer_id else {
            return Ok(None);
        };
        let response = self
            .request(
                reqwest::Method::PUT,
                &format!("/api/customers/centra/{centra_id}"),
            )
            .json(customer)
            .send()
            .await
            .map_err(transport)?;
        customer_id(response).await.map(Some)
    }

    async fn erase_customer(&self, centra_customer_id: i64) -> Result<Erasure, ErpError> {
        let response = self
            .request(
                reqwest::Method::DELETE,
                &format!("/api/customers/centra/{centra_customer_id}"),
            )
            .send()
            .await
            .map_err(transport)?;
        if response.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(Erasure::NotFound);
        }
        let answer: serde_json::Value = read_json(response, "erasure").await?;
        Ok(Erasure::Done(format!(
            "customer {} anonymised, and the customer on {} sales order(s); the orders' \
             amounts are kept for the books",
            answer["customer"].as_str().unwrap_or("(none)"),
            answer["sales_orders_anonymised"].as_u64().unwrap_or(0)
        )))
    }
}

#[async_trait]
impl ShipmentFeed for HttpErp {
    async fn shipments_since(&self, cursor: &str, limit: usize) -> Result<ShipmentPage, ErpError> {
        let response = self
            .request(reqwest::Method::GET, "/api/shipments")
            .query(&[("after", cursor), ("limit", &limit.to_string())])
            .send()
            .await
            .map_err(transport)?;
        read_json(response, "shipment feed").await
    }
}

#[async_trait]
impl StockFeed for HttpErp {
    async fn stock_levels(&self, items: &[String]) -> Result<Vec<StockLevel>, ErpError> {
        let response = self
            .request(reqwest::Method::GET, "/api/stock")
            .query(&[("items", items.join(","))])
            .send()
            .await
            .map_err(transport)?;
        read_json(response, "stock").await
    }

    async fn stock_changes_since(
        &self,
        cursor: &str,
        limit: usize,
    ) -> Result<Option<StockPage>, ErpError> {
        let response = self
            .request(reqwest::Method::GET, "/api/stock/changes")
            .query(&[("after", cursor), ("limit", &limit.to_string())])
            .send()
            .await
            .map_err(transport)?;
        read_json(response, "stock change feed").await.map(Some)
    }
}

/// A document as `GET /api/sales-orders/documents` describes it.
#[derive(serde::Deserialize)]
struct WireDocument {
    reference: String,
    #[serde(default)]
    external_ref: String,
    currency: String,
    #[serde(default)]
    state: DocumentState,
    gross_minor: i64,
    tax_minor: i64,
    lines: Vec<WireLine>,
    #[serde(default)]
    created_at: String,
}

#[derive(serde::Deserialize)]
struct WireLine {
    kind: String,
    erp_item: String,
    #[serde(default)]
    description: String,
    quantity: i64,
    #[serde(default)]
    unit_price: Option<rust_decimal::Decimal>,
    #[serde(default)]
    tax_rate: String,
    gross_minor: i64,
    tax_minor: i64,
    net_minor: i64,
}

#[derive(serde::Deserialize)]
struct WirePage {
    documents: Vec<WireDocument>,
    #[serde(default)]
    next_cursor: String,
}

impl From<WireDocument> for ReadDocument {
    fn from(d: WireDocument) -> Self {
        ReadDocument {
            reference: d.reference,
            external_ref: d.external_ref,
            currency: d.currency,
            state: d.state,
            erp_state: String::new(),
            lines: d.lines.into_iter().map(ReadLine::from).collect(),
            gross_minor: d.gross_minor,
            tax_minor: d.tax_minor,
            created_at: d.created_at,
        }
    }
}

impl From<WireLine> for ReadLine {
    fn from(l: WireLine) -> Self {
        // A kind the API does not name is a line Ferry never posts.
        let kind = match l.kind.as_str() {
            "item" => ReadLineKind::Item,
            "shipping" => ReadLineKind::Shipping,
            "handling" => ReadLineKind::Handling,
            "rounding" => ReadLineKind::Rounding,
            _ => ReadLineKind::Other,
        };
        ReadLine {
            kind,
            erp_item: l.erp_item,
            description: l.description,
            quantity: l.quantity,
            unit_price: l.unit_price,
            tax_rate: l.tax_rate,
            gross_minor: l.gross_minor,
            tax_minor: l.tax_minor,
            net_minor: l.net_minor,
        }
    }
}

impl HttpErp {
    /// `GET /api/sales-orders/documents?after=…&limit=…`, with or without the lines.
    async fn list(&self, cursor: &str, limit: usize, lines: bool) -> Result<ReadPage, ErpError> {
        let response = self
            .request(reqwest::Method::GET, "/api/sales-orders/documents")
            .query(&[
                ("after", cursor),
                ("limit", &limit.to_string()),
                ("lines", if lines { "true" } else { "false" }),
            ])
            .send()
            .await
            .map_err(transport)?;
        let page: WirePage = read_json(response, "document list").await?;
        Ok(ReadPage {
            documents: page.documents.into_iter().map(ReadDocument::from).collect(),
            next_cursor: page.next_cursor,
        })
    }
}

/// References read per request by [`ReadBack::read_many`] (the API's limit).
pub const READ_MANY: usize = 500;

#[async_trait]
impl ReadBack for HttpErp {
    async fn read_sales_orders(&self, external_ref: &str) -> Result<Vec<ReadDocument>, ErpError> {
        let response = self
            .request(reqwest::Method::GET, "/api/sales-orders/documents")
            .query(&[("external_ref", external_ref)])
            .send()
            .await
            .map_err(transport)?;
        let page: WirePage = read_json(response, "read-back").await?;
        Ok(page.documents.into_iter().map(ReadDocument::from).collect())
    }

    /// One request per [`READ_MANY`] references (`?external_refs=a,b,…`).
    async fn read_many(
        &self,
        external_refs: &[String],
        _in_flight: usize,
    ) -> Result<Vec<Vec<ReadDocument>>, ErpError> {
        let mut out = Vec::with_capacity(external_refs.len());
        for chunk in external_refs.chunks(READ_MANY) {
            let response = self
                .request(reqwest::Method::GET, "/api/sales-orders/documents")
                .query(&[("external_refs", chunk.join(","))])
                .send()
                .await
                .map_err(transport)?;
            let page: WirePage = read_json(response, "read-back").await?;
            let mut by_ref: std::collections::HashMap<String, Vec<ReadDocument>> =
                std::collections::HashMap::with_capacity(chunk.len());
            for d in page.documents {
                let d = ReadDocument::from(d);
                by_ref.entry(d.external_ref.clone()).or_default().push(d);
            }
            out.extend(chunk.iter().map(|r| by_ref.remove(r).unwrap_or_default()));
        }
        Ok(out)
    }

    async fn sales_orders_since(&self, cursor: &str, limit: usize) -> Result<ReadPage, ErpError> {
        self.list(cursor, limit, true).await
    }

    async fn headers_since(&self, cursor: &str, limit: usize) -> Result<ReadPage, ErpError> {
        self.list(cursor, limit, false).await
    }
}
