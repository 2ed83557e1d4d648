//! The Centra Integration API client: GraphQL over HTTP with a Bearer token, paced to the
//! request quota, 429 `Retry-After` honoured, errors classified transient or permanent.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use reqwest::StatusCode;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::ratelimit::{Pacing, RateLimiter, parse_retry_after};

mod customers;
mod events;
mod parsed;
mod returns;
mod shipments;
mod stock;

pub use customers::{CentraCustomer, CustomerAddress};
pub use events::CentraEvent;
pub use returns::{CentraReturn, CentraReturnLine};
pub use shipments::{CentraShipment, NewShipment};
pub use stock::{CentraStock, STOCK_SKUS_PER_REQUEST};

/// The contract query, sent verbatim: read from the contract itself so the two can never
/// differ.
pub const ORDER_SNAPSHOT_QUERY: &str =
    include_str!("../../../../tests/contracts/order-snapshot.graphql");

/// Ferry's other operations, each checked against the simulator's SDL by a test.
pub mod ops {
    pub const ORDERS_CHANGED_SINCE: &str =
        include_str!("../../graphql/orders-changed-since.graphql");
    pub const EVENTS: &str = include_str!("../../graphql/events.graphql");
    pub const CONFIRM_EVENTS: &str = include_str!("../../graphql/confirm-events.graphql");
    pub const SET_EVENT_LISTENERS: &str = include_str!("../../graphql/set-event-listeners.graphql");
    pub const RATE_LIMITS: &str = include_str!("../../graphql/rate-limits.graphql");
    pub const CREATE_SHIPMENT: &str = include_str!("../../graphql/create-shipment.graphql");
    pub const COMPLETE_SHIPMENT: &str = include_str!("../../graphql/complete-shipment.graphql");
    pub const CAPTURE_SHIPMENT: &str = include_str!("../../graphql/capture-shipment.graphql");
    pub const ORDER_SHIPMENTS: &str = include_str!("../../graphql/order-shipments.graphql");
    pub const RETURNS: &str = include_str!("../../graphql/returns.graphql");
    pub const CUSTOMERS: &str = include_str!("../../graphql/customers.graphql");
    pub const SET_STOCK: &str = include_str!("../../graphql/set-stock.graphql");
    /// The field repeated per SKU in [`stock_levels_query`], `$ALIAS` standing for `s0`, `s1`, ….
    const STOCK_LEVEL_FIELD: &str = include_str!("../../graphql/stock-levels.graphql");

    /// The stock query for `count` SKUs: variables `$warehouse` and `$s0` … `$s{count-1}`.
    pub fn stock_levels_query(count: usize) -> String {
        let field: String = STOCK_LEVEL_FIELD
            .lines()
            .filter(|l| !l.starts_with('#'))
            .map(|l| format!("{l}\n"))
            .collect();
        let mut query = String::from("query FerryStockLevels($warehouse: Int!");
        for i in 0..count {
            query.push_str(&format!(", $s{i}: String!"));
        }
        query.push_str(") {\n");
        for i in 0..count {
            query.push_str(&field.replace("$ALIAS", &format!("s{i}")));
        }
        query.push_str("}\n");
        query
    }

    /// Every operation Ferry sends, by name (the stock query in a two-SKU form).
    pub fn all() -> Vec<(&'static str, std::borrow::Cow<'static, str>)> {
        use std::borrow::Cow::Borrowed;
        vec![
            ("order-snapshot", Borrowed(super::ORDER_SNAPSHOT_QUERY)),
            ("orders-changed-since", Borrowed(ORDERS_CHANGED_SINCE)),
            ("events", Borrowed(EVENTS)),
            ("confirm-events", Borrowed(CONFIRM_EVENTS)),
            ("set-event-listeners", Borrowed(SET_EVENT_LISTENERS)),
            ("rate-limits", Borrowed(RATE_LIMITS)),
            ("create-shipment", Borrowed(CREATE_SHIPMENT)),
            ("complete-shipment", Borrowed(COMPLETE_SHIPMENT)),
            ("capture-shipment", Borrowed(CAPTURE_SHIPMENT)),
            ("order-shipments", Borrowed(ORDER_SHIPMENTS)),
            ("returns", Borrowed(RETURNS)),
            ("customers", Borrowed(CUSTOMERS)),
            ("set-stock", Borrowed(SET_STOCK)),
            (
                "stock-levels",
                std::borrow::Cow::Owned(stock_levels_query(2)),
            ),
        ]
    }
}

/// One rate-limit bucket as Centra reports it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RateLimitBucket {
    #[serde(rename = "type")]
    pub kind: String,
    pub interval_seconds: String,
    pub quota: u64,
    pub used_quota: u64,
    pub remaining_quota: u64,
}

/// A `userErrors` / `userWarnings` entry.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct UserMessage {
    pub message: String,
    #[serde(default, deserialize_with = "crate::decode::list")]
    pub path: Vec<String>,
}

/// Centra's page size limit for list queries.
pub const MAX_PAGE: usize = 200;

#[derive(Debug, thiserror::Error)]
pub enum CentraError {
    #[error("Centra could not be reached: {0}")]
    Transport(String),
    #[error("Centra rate limit reached; retry in {retry_after:?}")]
    RateLimited { retry_after: Duration },
    #[error("Centra answered HTTP {status}")]
    Server { status: u16 },
    #[error("Centra refused the token (HTTP {status})")]
    Unauthorized { status: u16 },
    #[error("Centra rejected the request (HTTP {status}): {body}")]
    Rejected { status: u16, body: String },
    #[error("Centra returned GraphQL errors: {messages}")]
    GraphQl {
        messages: String,
        authorization: bool,
    },
    #[error("Centra's answer could not be read: {0}")]
    Decode(String),
    /// A business error (`userErrors`): the request was understood and refused.
    #[error("Centra refused: {}", .0.iter().map(|e| e.message.as_str()).collect::<Vec<_>>().join("; "))]
    UserErrors(Vec<UserMessage>),
}

impl CentraError {
    /// Worth retrying later (network, 5xx, 429); the rest needs a person.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            CentraError::Transport(_)
                | CentraError::RateLimited { .. }
                | CentraError::Server { .. }
        )
    }

    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            CentraError::RateLimited { retry_after } => Some(*retry_after),
            _ => None,
        }
    }
}

/// One order snapshot exactly as Centra sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawSnapshot {
    pub number: i64,
    pub json: Vec<u8>,
}

#[derive(Clone)]
pub struct CentraClient {
    http: reqwest::Client,
    url: String,
    token: SecretString,
    limiter: Arc<RateLimiter>,
    /// Centra's 429s: each means the pacing and Centra's count disagree (another
    /// integration spending the shared quota, or a plan smaller than configured).
    throttled: metrics::Counter,
}

impl std::fmt::Debug for CentraClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CentraClient")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl CentraClient {
    /// Paced to `requests_per_10s` only (tests and tools; services use [`Self::paced`]).
    pub fn new(
        url: impl Into<String>,
        token: SecretString,
        requests_per_10s: u32,
        timeout: Duration,
    ) -> Self {
        Self::paced(url, token, Pacing::requests(requests_per_10s), timeout)
    }

    /// Paced to every bucket of `pacing`: this client's share of Centra's quotas.
    pub fn paced(
        url: impl Into<String>,
        token: SecretString,
        pacing: Pacing,
        timeout: Duration,
    ) -> Self {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .pool_max_idle_per_host(8)
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        Self {
            http,
            url: url.into(),
            token,
            limiter: Arc::new(RateLimiter::paced(pacing)),
            throttled: metrics::Counter::noop(),
        }
    }

    /// Counts Centra's 429s to this client as the tenant's
    /// (`ferry_centra_throttled_total{tenant}`), for the alert that says the quota is
    /// being overspent.
    pub fn for_tenant(mut self, tenant: &str) -> Self {
        self.throttled =
            metrics::counter!("ferry_centra_throttled_total", "tenant" => tenant.to_owned());
        self
    }

    pub fn limiter(&self) -> &RateLimiter {
        &self.limiter
    }

    /// Sends one GraphQL operation and returns the raw `data` object's bytes.
    pub async fn execute(
        &self,
        query: &str,
        variables: serde_json::Value,
    ) -> Result<Vec<u8>, CentraError> {
        let answer = self.answer(query, variables).await?;
        let data: &RawValue = data_of(&answer, &self.limiter)?;
        Ok(data.get().as_bytes().to_vec())
    }

    /// Sends one GraphQL operation and returns the whole answer, once HTTP says it is one.
    async fn answer(
        &self,
        query: &str,
        variables: serde_json::Value,
    ) -> Result<bytes::Bytes, CentraError> {
        self.limiter.acquire().await;
        let body = serde_json::json!({ "query": query, "variables": variables });
        let response = self
            .http
            .post(&self.url)
            .bearer_auth(self.token.expose_secret())
            .json(&body)
            .send()
            .await
            .map_err(|e| CentraError::Transport(e.without_url().to_string()))?;
        let status = response.status();
        if status == StatusCode::TOO_MANY_REQUESTS {
            let retry_after = response
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| parse_retry_after(v, SystemTime::now()))
                .unwrap_or(Duration::from_secs(1));
            self.limiter.block_for(retry_after);
            self.throttled.increment(1);
            return Err(CentraError::RateLimited { retry_after });
        }
        if status.is_server_error() {
            return Err(CentraError::Server {
                status: status.as_u16(),
            });
        }
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            return Err(CentraError::Unauthorized {
                status: status.as_u16(),
            });
        }
        let bytes = response
            .bytes()
            .await
            .map_err(|e| CentraError::Transport(e.without_url().to_string()))?;
        if status == StatusCode::BAD_REQUEST
            && let Err(e @ CentraError::GraphQl { .. }) =
                data_of::<serde::de::IgnoredAny>(&bytes, &self.limiter)
        {
            // Centra refuses an invalid query whole, with 400 and GraphQL errors.
            return Err(e);
        }
        if !status.is_success() {
            return Err(CentraError::Rejected {
                status: status.as_u16(),
                body: String::from_utf8_lossy(&bytes).chars().take(300).collect(),
            });
        }
        Ok(bytes)
    }

    /// The six rate-limit buckets, as Centra counts them.
    pub async fn rate_limits(&self) -> Result<Vec<RateLimitBucket>, CentraError> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Data {
            #[serde(default, deserialize_with = "crate::decode::list")]
            rate_limits: Vec<RateLimitBucket>,
        }
        let data = self
            .execute(ops::RATE_LIMITS, serde_json::json!({}))
            .await?;
        let data: Data =
            serde_json::from_slice(&data).map_err(|e| CentraError::Decode(e.to_string()))?;
        Ok(data.rate_limits)
    }

    /// Fetches the contract snapshot of up to [`MAX_PAGE`] orders by number, in one request.
    /// Orders Centra does not know are simply absent from the result.
    pub async fn order_snapshots(&self, numbers: &[i64]) -> Result<Vec<RawSnapshot>, CentraError> {
        let mut out = Vec::with_capacity(numbers.len());
        for chunk in numbers.chunks(MAX_PAGE) {
            let answer = self
                .answer(
                    ORDER_SNAPSHOT_QUERY,
                    // Complexity is charged by the limit asked for, not the orders found.
                    serde_json::json!({ "where": { "number": chunk }, "limit": chunk.len(), "page": 1 }),
                )
                .await?;
            // One pass over the answer: the envelope and the orders in it together.
            out.extend(snapshots_of(data_of(&answer, &self.limiter)?)?);
        }
        Ok(out)
    }
}

/// `userErrors` as a typed, permanent error.
pub fn user_errors(errors: Vec<UserMessage>) -> Result<(), CentraError> {
    if errors.is_empty() {
        Ok(())
    } else {
        Err(CentraError::UserErrors(errors))
    }
}

/// Reads a GraphQL answer's `data` as `D`, or its `errors` as the error they are, and
/// charges the complexity Centra reports (`extensions.complexity`) to `limiter`.
pub(crate) fn data_of<'a, D: Deserialize<'a>>(
    answer: &'a [u8],
    limiter: &RateLimiter,
) -> Result<D, CentraError> {
    #[derive(Deserialize)]
    struct Envelope<D> {
        #[serde(default = "none")]
        data: Option<D>,
        #[serde(default, deserialize_with = "crate::decode::list")]
        errors: Vec<GqlError>,
        #[serde(default)]
        extensions: Option<Extensions>,
    }
    #[derive(Deserialize)]
    struct Extensions {
        #[serde(default)]
        complexity: Option<u64>,
    }
    fn none<D>() -> Option<D> {
        None
    }
    #[derive(Deserialize)]
    struct GqlError {
        message: String,
        #[serde(default)]
        extensions: Option<serde_json::Value>,
    }
    let envelope: Envelope<D> =
        serde_json::from_slice(answer).map_err(|e| CentraError::Decode(e.to_string()))?;
    if let Some(complexity) = envelope.extensions.and_then(|x| x.complexity) {
        limiter.charge_complexity(complexity);
    }
    if !envelope.errors.is_empty() {
        let authorization = envelope.errors.iter().any(|e| {
            e.extensions
                .as_ref()
                .and_then(|x| x.get("category"))
                .and_then(|c| c.as_str())
                == Some("authorization")
        });
        let messages = envelope
            .errors
            .iter()
            .map(|e| e.message.as_str())
            .collect::<Vec<_>>()
            .join("; ");
        return Err(CentraError::GraphQl {
            messages,
            authorization,
        });
    }
    envelope
        .data
        .ok_or_else(|| CentraError::Decode("no data in the answer".to_owned()))
}

/// `data` of the order snapshot query: each order kept as the bytes Centra sent.
#[derive(Deserialize)]
struct OrdersData<'a> {
    #[serde(borrow)]
    orders: Vec<&'a RawValue>,
}

/// The snapshot query's orders, each with its number and its bytes untouched.
fn snapshots_of(data: OrdersData<'_>) -> Result<Vec<RawSnapshot>, CentraError> {
    #[derive(Deserialize)]
    struct Number {
        number: i64,
    }
    data.orders
        .into_iter()
        .map(|raw| {
            let number = match leading_number(raw.get()) {
                Some(number) => number,
                None => {
                    serde_json::from_str::<Number>(raw.get())
                        .map_err(|e| {
                            CentraError::Decode(format!("an order without a number: {e}"))
                        })?
                        .number
                }
            };
            Ok(RawSnapshot {
                number,
                json: raw.get().as_bytes().to_vec(),
            })
        })
        .collect()
}

/// The order number when it is the object's first member, as the contract query asks for
/// it; `None` sends the caller to a full parse. The bytes are valid JSON already (serde
/// checked them), so this only reads past the first member instead of the whole order.
fn leading_number(order: &str) -> Option<i64> {
    let rest = order.strip_prefix('{')?.trim_start();
    let rest = rest.strip_prefix("\"number\"")?.trim_start();
    let rest = rest.strip_prefix(':')?.trim_start();
    let end = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '-'))
        .unwrap_or(rest.len());
    let (digits, after) = rest.split_at(end);
    // `1.0` or `1e3` is not an integer: the full parse says so.
    match after.trim_start().as_bytes().first() {
        Some(b',' | b'}') => digits.parse().ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Splits a snapshot query's `data` (`{"orders":[…]}`) as `order_snapshots` does.
    fn split_orders(data: &[u8]) -> Result<Vec<RawSnapshot>, CentraError> {
        let data: OrdersData<'_> =
            serde_json::from_slice(data).map_err(|e| CentraError::Decode(e.to_string()))?;
        snapshots_of(data)
    }
    use proptest::prelude::*;

    #[test]
    fn the_leading_number_is_read_without_parsing_the_order() {
        assert_eq!(leading_number(r#"{"number":7,"x":[1]}"#), Some(7));
        assert_eq!(leading_number(r#"{ "number" : 12 }"#), Some(12));
        assert_eq!(leading_number(r#"{"number":1.5,"x":1}"#), None);
        assert_eq!(leading_number(r#"{"number":1e3}"#), None);
        assert_eq!(leading_number(r#"{"number":"7"}"#), None);
        assert_eq!(leading_number(r#"{"id":1,"number":7}"#), None);
        assert_eq!(leading_number(r#"{"numbers":7}"#), None);
        // Not first: the full parse finds it.
        let snaps = split_orders(br#"{"orders":[{"id":1,"number":7}]}"#).unwrap_or_default();
        assert_eq!(snaps.first().map(|s| s.number), Some(7));
        // A fraction is no order number, wherever it is.
        assert!(split_orders(br#"{"orders":[{"number":7.5}]}"#).is_err());
    }

    proptest! {
        /// The shortcut agrees with the full parse on every order it answers for.
        #[test]
        fn the_shortcut_agrees_with_serde(
            number in any::<i64>(),
            ws in "[ \n\t]{0,2}",
            tail in prop::option::of("[a-z]{1,5}"),
        ) {
            let json = match &tail {
                Some(key) => format!(r#"{{{ws}"number"{ws}:{ws}{number}{ws},"{key}":{{"number":1}}}}"#),
                None => format!(r#"{{{ws}"number"{ws}:{ws}{number}{ws}}}"#),
            };
            #[derive(Deserialize)]
            struct N { number: i64 }
            let full: Option<i64> = serde_json::from_str::<N>(&json).ok().map(|n| n.number);
            prop_assert_eq!(leading_number(&json), full);
        }
    }

    #[test]
    fn the_query_is_the_contract() {
        assert!(ORDER_SNAPSHOT_QUERY.contains("query FerryOrderSnapshot"));
        assert!(ORDER_SNAPSHOT_QUERY.contains("grandTotalExTax: grandTotal(includingTax: false)"));
    }

    #[test]
    fn splits_orders_byte_for_byte() {
        let data =
            br#"{"orders":[{"number":7,"grandTotal":{"value":1847.95}},{"number":8,"x":0.1}]}"#;
        let snaps = split_orders(data).unwrap_or_default();
        assert_eq!(snaps.len(), 2);
        assert_eq!(snaps[0].number, 7);
        assert_eq!(
            snaps[0].json,
            br#"{"number":7,"grandTotal":{"value":1847.95}}"#
        );
        assert!(split_orders(br#"{"orders":[{"x":1}]}"#).is_err());
    }

    #[test]
    fn classification() {
        assert!(CentraError::Server { status: 502 }.is_transient());
        assert!(
            CentraError::RateLimited {
                retry_after: Duration::from_secs(1)
            }
            .is_transient()
        );
        assert!(!CentraError::Unauthorized { status: 401 }.is_transient());
        assert!(
            !CentraError::GraphQl {
                messages: String::new(),
                authorization: true
            }
            .is_transient()
        );
    }
}
