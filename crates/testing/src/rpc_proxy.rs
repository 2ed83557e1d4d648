//! A proxy that stands between a connector and a real JSON-RPC server (Tryton) and fails
//! chosen calls the way networks and servers do: refused before they reach the server, or
//! carried out with the answer lost. Tests use it to interrupt a multi-step ERP workflow
//! between two of its calls and prove that a retry finishes the work.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use parking_lot::Mutex;
use tokio_util::sync::CancellationToken;

/// What happens to a call a rule matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RpcFault {
    /// Answer 503 without forwarding: the call never took effect.
    Refuse,
    /// Forward the call, wait for the server to finish it, then answer 504: the call took
    /// effect but the caller never heard.
    LoseAnswer,
}

#[derive(Debug)]
struct Rule {
    method: String,
    fault: RpcFault,
    times: usize,
}

struct Inner {
    upstream: String,
    http: reqwest::Client,
    rules: Mutex<Vec<Rule>>,
    /// Calls seen per JSON-RPC method.
    calls: Mutex<HashMap<String, usize>>,
}

/// A running proxy; stops when dropped.
pub struct RpcProxy {
    inner: Arc<Inner>,
    origin: String,
    stop: CancellationToken,
}

impl RpcProxy {
    /// Starts a proxy on a free loopback port in front of `upstream` (scheme, host and port,
    /// e.g. `http://127.0.0.1:8000`); every path is forwarded unchanged.
    pub async fn start(upstream: &str) -> std::io::Result<RpcProxy> {
        let inner = Arc::new(Inner {
            upstream: origin_of(upstream).to_owned(),
            http: reqwest::Client::new(),
            rules: Mutex::new(Vec::new()),
            calls: Mutex::new(HashMap::new()),
        });
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let origin = format!("http://{}", listener.local_addr()?);
        let app = axum::Router::new()
            .fallback(forward)
            .with_state(inner.clone());
        let stop = CancellationToken::new();
        let stopped = stop.clone().cancelled_owned();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(stopped)
                .await;
        });
        Ok(RpcProxy {
            inner,
            origin,
            stop,
        })
    }

    /// `url` (an address of the upstream server) as reached through the proxy.
    pub fn url(&self, url: &str) -> String {
        format!("{}{}", self.origin, &url[origin_of(url).len()..])
    }

    /// Fails the next `times` calls of JSON-RPC `method` with `fault`.
    pub fn fail_next(&self, method: &str, times: usize, fault: RpcFault) {
        self.inner.rules.lock().push(Rule {
            method: method.to_owned(),
            fault,
            times,
        });
    }

    /// How many calls of `method` the proxy has seen (failed ones included).
    pub fn calls(&self, method: &str) -> usize {
        self.inner.calls.lock().get(method).copied().unwrap_or(0)
    }

    /// Faults armed and not yet spent.
    pub fn faults_left(&self) -> usize {
        self.inner.rules.lock().iter().map(|r| r.times).sum()
    }
}

impl Drop for RpcProxy {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// `scheme://host:port` of a URL.
fn origin_of(url: &str) -> &str {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    match url[after_scheme..].find('/') {
        Some(i) => &url[..after_scheme + i],
        None => url,
    }
}

async fn forward(
    State(inner): State<Arc<Inner>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let rpc_method = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v.get("method")?.as_str().map(str::to_owned))
        .unwrap_or_default();
    *inner.calls.lock().entry(rpc_method.clone()).or_default() += 1;
    let fault = {
        let mut rules = inner.rules.lock();
        let fault = rules
            .iter_mut()
            .find(|r| r.times > 0 && r.method == rpc_method)
            .map(|r| {
                r.times -= 1;
                r.fault
            });
        rules.retain(|r| r.times > 0);
        fault
    };
    if fault == Some(RpcFault::Refuse) {
        return (StatusCode::SERVICE_UNAVAILABLE, "refused by the test proxy").into_response();
    }
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let mut request = inner
        .http
        .request(method, format!("{}{path}", inner.upstream))
        .body(body);
    for name in [
        axum::http::header::AUTHORIZATION,
        axum::http::header::CONTENT_TYPE,
    ] {
        if let Some(value) = headers.get(&name) {
            request = request.header(name, value);
        }
    }
    let answer = match request.send().await {
        Ok(a) => a,
        Err(e) => return (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    };
    let status = answer.status();
    let content_type = answer.headers().get(reqwest::header::CONTENT_TYPE).cloned();
    let body = answer.bytes().await.unwrap_or_default();
    if fault == Some(RpcFault::LoseAnswer) {
        return (StatusCode::GATEWAY_TIMEOUT, "answer lost by the test proxy").into_response();
    }
    let mut response = (status, body).into_response();
    if let Some(ct) = content_type {
        response
            .headers_mut()
            .insert(axum::http::header::CONTENT_TYPE, ct);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::origin_of;

    #[test]
    fn origins() {
        assert_eq!(
            origin_of("http://127.0.0.1:8000/ferry/"),
            "http://127.0.0.1:8000"
        );
        assert_eq!(origin_of("http://127.0.0.1:8000"), "http://127.0.0.1:8000");
    }
}
