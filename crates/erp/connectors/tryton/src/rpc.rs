//! Tryton's JSON-RPC over HTTP: sessions with re-login on 401, the context on every call,
//! Decimal and date encoding, and error classification at the source.

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine;
use ferry_erp::ErpError;
use rust_decimal::Decimal;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use tokio::sync::Mutex;

/// A Decimal in Tryton's wire form.
pub fn decimal(d: Decimal) -> Value {
    json!({"__class__": "Decimal", "decimal": d.to_string()})
}

/// Reads a Numeric field: Tryton answers `{"__class__":"Decimal","decimal":"…"}`, but
/// plain numbers and strings are accepted too.
pub fn read_decimal(v: &Value) -> Option<Decimal> {
    match v {
        Value::Object(o) => o.get("decimal").and_then(Value::as_str)?.parse().ok(),
        Value::String(s) => s.parse().ok(),
        Value::Number(n) => n.to_string().parse().ok(),
        _ => None,
    }
}

struct Session {
    header: String,
}

/// One Tryton database's JSON-RPC endpoint (`http://host:port/<db>/`).
pub struct Rpc {
    http: reqwest::Client,
    url: String,
    user: String,
    password: SecretString,
    session: Mutex<Option<Session>>,
    /// The user's company, found at login; every call carries it.
    company: Mutex<Option<i64>>,
    /// The configured timeout of one call; calls on many records get more.
    timeout: Duration,
    /// Calls and seconds per method: where Tryton spends the time (`ferry bench writer`).
    timings: std::sync::Mutex<BTreeMap<String, (u64, Duration)>>,
}

/// How much longer a call may take for each record it works through ([`Rpc::call_many`]).
pub const TIME_PER_RECORD: Duration = Duration::from_secs(2);

impl Rpc {
    pub fn new(base: &str, user: &str, password: SecretString, timeout: Duration) -> Self {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        Self {
            http,
            url: format!("{}/rpc/", base.trim_end_matches('/')),
            user: user.to_owned(),
            password,
            session: Mutex::new(None),
            company: Mutex::new(None),
            timeout,
            timings: std::sync::Mutex::new(BTreeMap::new()),
        }
    }

    /// Calls `method` with `params`; the context (company, language) is appended.
    pub async fn call(&self, method: &str, mut params: Vec<Value>) -> Result<Value, ErpError> {
        params.push(self.context().await?);
        self.call_raw(method, Value::Array(params)).await
    }

    /// Calls a method that works through `records` records at once (a batch's creates,
    /// quote, confirm): Tryton's time grows with them — half a second of its CPU per sale
    /// confirmed, more while other batches are ahead of it — so the timeout grows too
    /// ([`TIME_PER_RECORD`] each, never less than the configured one). A batch call cut
    /// short by a fixed timeout would go on inside Tryton while Ferry took its sales on one
    /// by one, and the two would fight over the same sales.
    pub async fn call_many(
        &self,
        method: &str,
        mut params: Vec<Value>,
        records: usize,
    ) -> Result<Value, ErpError> {
        params.push(self.context().await?);
        let within = self
            .timeout
            .max(TIME_PER_RECORD.saturating_mul(records.try_into().unwrap_or(u32::MAX)));
        self.call_within(method, Value::Array(params), Some(within))
            .await
    }

    /// Calls with extra context keys (e.g. `locations` for stock), merged over the default.
    pub async fn call_in(
        &self,
        method: &str,
        mut params: Vec<Value>,
        extra: Value,
    ) -> Result<Value, ErpError> {
        let mut context = self.context().await?;
        if let (Some(c), Some(e)) = (context.as_object_mut(), extra.as_object()) {
            c.extend(e.clone());
        }
        params.push(context);
        self.call_raw(method, Value::Array(params)).await
    }

    /// Calls with the context already in `params`.
    /// Calls and seconds spent per method since the connector was made.
    pub fn timings(&self) -> BTreeMap<String, (u64, Duration)> {
        self.timings.lock().map(|t| t.clone()).unwrap_or_default()
    }

    pub async fn call_raw(&self, method: &str, params: Value) -> Result<Value, ErpError> {
        self.call_within(method, params, None).await
    }

    async fn call_within(
        &self,
        method: &str,
        params: Value,
        timeout: Option<Duration>,
    ) -> Result<Value, ErpError> {
        let started = std::time::Instant::now();
        let result = self.call_timed(method, params, timeout).await;
        let spent = started.elapsed();
        metrics::histogram!("ferry_tryton_call_seconds", "method" => method.to_owned())
            .record(spent.as_secs_f64());
        if let Ok(mut timings) = self.timings.lock() {
            let entry = timings.entry(method.to_owned()).or_default();
            entry.0 += 1;
            entry.1 += spent;
        }
        result
    }

    async fn call_timed(
        &self,
        method: &str,
        params: Value,
        timeout: Option<Duration>,
    ) -> Result<Value, ErpError> {
        // One re-login when the session expired or the server restarted.
        for attempt in 0..2 {
            let header = self.session_header().await?;
            let mut request = self
                .http
                .post(&self.url)
                .header(reqwest::header::AUTHORIZATION, &header)
                .json(&json!({"id": 1, "method": method, "params": &params}));
            if let Some(timeout) = timeout {
                request = request.timeout(timeout);
            }
            let response = request.send().await.map_err(transport)?;
            if response.status() == reqwest::StatusCode::UNAUTHORIZED && attempt == 0 {
                *self.session.lock().await = None;
                continue;
            }
            return answer(response, method).await;
        }
        Err(ErpError::Misconfigured(
            "Tryton refused the session twice".into(),
        ))
    }

    async fn context(&self) -> Result<Value, ErpError> {
        let company = {
            let known = *self.company.lock().await;
            match known {
                Some(c) => c,
                None => {
                    let prefs = self
                        .call_raw("model.res.user.get_preferences", json!([true, {}]))
                        .await?;
                    let c = prefs
                        .get("company")
                        .and_then(Value::as_i64)
                        .ok_or_else(|| {
                            ErpError::Misconfigured("the Tryton user has no company".into())
                        })?;
                    *self.company.lock().await = Some(c);
                    c
                }
            }
        };
        Ok(json!({"company": company, "language": "en"}))
    }

    async fn session_header(&self) -> Result<String, ErpError> {
        let mut session = self.session.lock().await;
        if let Some(s) = session.as_ref() {
            return Ok(s.header.clone());
        }
        let response = self
            .http
            .post(&self.url)
            .json(&json!({
                "id": 0,
                "method": "common.db.login",
                "params": [&self.user, {"password": self.password.expose_secret()}, "en"],
            }))
            .send()
            .await
            .map_err(transport)?;
        if response.status() == reqwest::StatusCode::UNAUTHORIZED {
            return Err(ErpError::Misconfigured(
                "Tryton refused the login (user or password)".into(),
            ));
        }
        let result = answer(response, "common.db.login").await?;
        let (Some(uid), Some(token)) = (
            result.get(0).and_then(Value::as_i64),
            result.get(1).and_then(Value::as_str),
        ) else {
            return Err(ErpError::Misconfigured(
                "unexpected answer to Tryton's login".into(),
            ));
        };
        let header = format!(
            "Session {}",
            base64::engine::general_purpose::STANDARD
                .encode(format!("{}:{uid}:{token}", self.user))
        );
        *session = Some(Session {
            header: header.clone(),
        });
        Ok(header)
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

/// Classifies an answer: HTTP errors by status, JSON-RPC errors by Tryton's error type.
async fn answer(response: reqwest::Response, method: &str) -> Result<Value, ErpError> {
    let status = response.status();
    if !status.is_success() {
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| ferry_domain::http::parse_retry_after(v, std::time::SystemTime::now()));
        return Err(ErpError::from_status(
            status.as_u16(),
            &format!("Tryton, {method}"),
            retry_after,
            "",
        ));
    }
    let body: Value = response.json().await.map_err(|e| ErpError::Unavailable {
        reason: format!("unreadable answer to {method}: {e}"),
        retry_after: None,
    })?;
    if let Some(error) = body.get("error").filter(|e| !e.is_null()) {
        return Err(classify_error(method, error));
    }
    Ok(body.get("result").cloned().unwrap_or(Value::Null))
}

/// `["UserError", [message, description, domain]]` and friends.
pub fn classify_error(method: &str, error: &Value) -> ErpError {
    let kind = error.get(0).and_then(Value::as_str).unwrap_or("");
    let message = error
        .get(1)
        .and_then(|d| d.get(0).and_then(Value::as_str).or_else(|| d.as_str()))
        .unwrap_or("")
        .chars()
        .take(300)
        .collect::<String>();
    match kind {
        "UserError" | "UserWarning" => ErpError::Rejected(format!("{method}: {message}")),
        "ConcurrencyException" => ErpError::Unavailable {
            reason: format!("{method}: concurrent change ({message})"),
            retry_after: Some(Duration::from_millis(200)),
        },
        "LoginException" => ErpError::Misconfigured(format!("{method}: login required")),
        // Server-side exceptions (a traceback) may be load or a bug: retry a few times, and the
        // writer's attempt limit turns a persistent one into an exception record.
        _ => ErpError::Unavailable {
            reason: format!("{method}: {kind} {message}"),
            retry_after: None,
        },
    }
}

/// The rows of a read answer, by their `id`.
pub fn by_id(rows: &Value) -> std::collections::HashMap<i64, &Value> {
    rows.as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| Some((r["id"].as_i64()?, r)))
        .collect()
}

/// The ids a `create` answered, which must be one per record sent (`what` names them).
pub fn created_ids(answer: &Value, wanted: usize, what: &str) -> Result<Vec<i64>, ErpError> {
    let ids: Vec<i64> = answer
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_i64)
        .collect();
    if ids.len() != wanted {
        return Err(ErpError::Rejected(format!(
            "Tryton created {} {what} for {wanted}",
            ids.len()
        )));
    }
    Ok(ids)
}

/// A Tryton boolean as read: `true`/`false` on PostgreSQL, `1`/`0` on SQLite.
pub fn truthy(v: &Value) -> bool {
    v.as_bool().unwrap_or_else(|| v.as_i64() == Some(1))
}

/// A datetime in Tryton's wire form from "YYYY-MM-DD HH:MM:SS[.ffffff]".
pub fn datetime(text: &str) -> Option<Value> {
    let (date, time) = text.split_once(' ')?;
    let mut d = date.split('-').map(|p| p.parse::<u32>().ok());
    let (year, month, day) = (d.next()??, d.next()??, d.next()??);
    let (hms, micro) = time.split_once('.').unwrap_or((time, "0"));
    let mut t = hms.split(':').map(|p| p.parse::<u32>().ok());
    let (hour, minute, second) = (t.next()??, t.next()??, t.next()??);
    Some(json!({
        "__class__": "datetime", "year": year, "month": month, "day": day,
        "hour": hour, "minute": minute, "second": second,
        "microsecond": micro.parse::<u32>().ok()?,
    }))
}

/// Reads Tryton's datetime (or date) object as "YYYY-MM-DD HH:MM:SS.ffffff" ("YYYY-MM-DD").
pub fn read_datetime(v: &Value) -> Option<String> {
    let n = |k: &str| v.get(k).and_then(Value::as_u64);
    let date = format!("{:04}-{:02}-{:02}", n("year")?, n("month")?, n("day")?);
    if v.get("__class__").and_then(Value::as_str) == Some("date") {
        return Some(date);
    }
    Some(format!(
        "{date} {:02}:{:02}:{:02}.{:06}",
        n("hour")?,
        n("minute")?,
        n("second")?,
        n("microsecond").unwrap_or(0)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_both_ways() {
        let d = Decimal::new(210600, 4);
        assert_eq!(read_decimal(&decimal(d)), Some(d));
        assert_eq!(read_decimal(&json!("8.50")), Some(Decimal::new(850, 2)));
        assert_eq!(read_decimal(&json!(12)), Some(Decimal::from(12)));
        assert_eq!(read_decimal(&Value::Null), None);
    }

    #[test]
    fn datetimes_both_ways() {
        let text = "2026-11-27 14:05:09.000123";
        let wire = datetime(text).unwrap_or_default();
        assert_eq!(wire["microsecond"], 123);
        assert_eq!(read_datetime(&wire).as_deref(), Some(text));
        let date = json!({"__class__": "date", "year": 2026, "month": 1, "day": 2});
        assert_eq!(read_datetime(&date).as_deref(), Some("2026-01-02"));
        assert_eq!(datetime("nonsense"), None);
    }

    #[test]
    fn errors_are_classified() {
        let user = json!([
            "UserError",
            ["A value is required for field Unit.", "", null]
        ]);
        assert!(matches!(
            classify_error("m", &user),
            ErpError::Rejected(m) if m.contains("Unit")
        ));
        assert!(classify_error("m", &json!(["ConcurrencyException", ["x"]])).is_transient());
        assert!(!classify_error("m", &json!(["LoginException", []])).is_transient());
    }
}
