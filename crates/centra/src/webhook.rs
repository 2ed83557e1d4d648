//! Centra webhook signatures (`X-Centra-Signature: t=<unix seconds>,v1=<hex>`), verified in
//! constant time with a replay window, and the Integration-API webhook payload.
//!
//! `v1 = hex(HMAC-SHA256(secret, "{t}.{raw body}"))`, where the raw body is the still
//! URL-encoded `payload=…` form, exactly as it arrived.

use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

/// Why a webhook was refused. Everything but `Malformed` answers 401.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    #[error("missing X-Centra-Signature header")]
    MissingSignature,
    #[error("X-Centra-Signature header is not `t=…,v1=…`")]
    BadSignatureHeader,
    #[error("signature does not match")]
    BadSignature,
    #[error("timestamp {age_secs}s away from now, outside the {window_secs}s replay window")]
    Stale { age_secs: i64, window_secs: i64 },
    #[error("malformed webhook body: {0}")]
    Malformed(String),
}

impl WebhookError {
    /// A short label for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            WebhookError::MissingSignature => "missing_signature",
            WebhookError::BadSignatureHeader => "bad_signature_header",
            WebhookError::BadSignature => "bad_signature",
            WebhookError::Stale { .. } => "stale",
            WebhookError::Malformed(_) => "malformed",
        }
    }
}

/// The hex signature of `body` at time `t`.
pub fn signature(secret: &[u8], t: i64, body: &[u8]) -> String {
    mac(secret, t, body)
        .map(|m| hex::encode(m.finalize().into_bytes()))
        .unwrap_or_default()
}

/// HMAC takes keys of any length, so this is `None` only in theory.
fn mac(secret: &[u8], t: i64, body: &[u8]) -> Option<HmacSha256> {
    let mut mac = HmacSha256::new_from_slice(secret).ok()?;
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    Some(mac)
}

/// The value of an `X-Centra-Signature` header for `body` at time `t`.
pub fn signature_header(secret: &[u8], t: i64, body: &[u8]) -> String {
    format!("t={t},v1={}", signature(secret, t, body))
}

/// Verifies a webhook: the header's `t` must be within `window_secs` of `now`, and one of
/// its `v1` signatures must match (compared in constant time).
pub fn verify(
    secret: &[u8],
    header: Option<&str>,
    body: &[u8],
    now: i64,
    window_secs: i64,
) -> Result<i64, WebhookError> {
    let header = header.ok_or(WebhookError::MissingSignature)?;
    let mut t: Option<i64> = None;
    let mut signatures: Vec<Vec<u8>> = Vec::new();
    for part in header.split(',') {
        let (key, value) = part
            .trim()
            .split_once('=')
            .ok_or(WebhookError::BadSignatureHeader)?;
        match key {
            "t" => {
                t = Some(
                    value
                        .parse()
                        .map_err(|_| WebhookError::BadSignatureHeader)?,
                )
            }
            "v1" => {
                signatures.push(hex::decode(value).map_err(|_| WebhookError::BadSignatureHeader)?)
            }
            _ => {} // unknown schemes are ignored, as Stripe-style receivers do
        }
    }
    let t = t.ok_or(WebhookError::BadSignatureHeader)?;
    if signatures.is_empty() {
        return Err(WebhookError::BadSignatureHeader);
    }
    // Saturating: a timestamp far out (i64::MIN, found by the fuzz seeds) must be stale,
    // not an overflow.
    let age = now.saturating_sub(t);
    if age.unsigned_abs() > window_secs.unsigned_abs() {
        return Err(WebhookError::Stale {
            age_secs: age,
            window_secs,
        });
    }
    let expected = mac(secret, t, body)
        .ok_or(WebhookError::BadSignature)?
        .finalize()
        .into_bytes();
    let matched = signatures.iter().fold(subtle::Choice::from(0), |acc, s| {
        acc | expected.as_slice().ct_eq(s)
    });
    if bool::from(matched) {
        Ok(t)
    } else {
        Err(WebhookError::BadSignature)
    }
}

/// One event of an Integration-API webhook.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
pub struct WebhookEvent {
    #[serde(rename = "type")]
    pub object_type: String,
    pub action: String,
    #[serde(default)]
    pub date: String,
    /// The order number for orders, the object id otherwise.
    #[serde(deserialize_with = "int_or_string")]
    pub id: i64,
}

fn int_or_string<'de, D: serde::Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum IntOrString {
        Int(i64),
        Str(String),
    }
    match IntOrString::deserialize(d)? {
        IntOrString::Int(i) => Ok(i),
        IntOrString::Str(s) => s.trim().parse().map_err(serde::de::Error::custom),
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
pub struct WebhookPayload {
    pub events: Vec<WebhookEvent>,
}

/// Reads the form body `payload=<url-encoded JSON>` into its events.
pub fn parse_body(body: &[u8]) -> Result<WebhookPayload, WebhookError> {
    let fields: Vec<(String, String)> = serde_urlencoded::from_bytes(body)
        .map_err(|e| WebhookError::Malformed(format!("not a form body: {e}")))?;
    let json = fields
        .iter()
        .find(|(k, _)| k == "payload")
        .map(|(_, v)| v)
        .ok_or_else(|| WebhookError::Malformed("no payload field".to_owned()))?;
    serde_json::from_str(json)
        .map_err(|e| WebhookError::Malformed(format!("payload is not the events JSON: {e}")))
}

/// The form body Centra sends for `payload`.
pub fn encode_body(payload: &WebhookPayload) -> String {
    let json = serde_json::to_string(payload).unwrap_or_else(|_| "{\"events\":[]}".to_owned());
    serde_urlencoded::to_string([("payload", json)]).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Centra's documented test vector.
    const BODY: &[u8] = b"payload=%7B%22x%22%3A%22test%22%7D";

    #[test]
    fn documented_test_vector() {
        assert_eq!(
            signature(b"test123", 12345678, BODY),
            "0b9cd84f5d583e5e1aadfb9f160aa8080b51d5b85ff85808d6b75bdac356c549"
        );
        let header =
            "t=12345678,v1=0b9cd84f5d583e5e1aadfb9f160aa8080b51d5b85ff85808d6b75bdac356c549";
        assert_eq!(
            verify(b"test123", Some(header), BODY, 12345678, 300),
            Ok(12345678)
        );
    }

    #[test]
    fn real_captured_request_parses() {
        let body = b"payload=%7B%22products%22%3A%5B%221%22%5D%7D";
        let fields: Vec<(String, String)> = serde_urlencoded::from_bytes(body).unwrap_or_default();
        assert_eq!(fields[0].1, r#"{"products":["1"]}"#);
    }

    #[test]
    fn rejects_replays_wrong_secrets_and_garbage() {
        let header = signature_header(b"test123", 1000, BODY);
        assert_eq!(verify(b"test123", Some(&header), BODY, 1300, 300), Ok(1000));
        assert_eq!(
            verify(b"test123", Some(&header), BODY, 1301, 300),
            Err(WebhookError::Stale {
                age_secs: 301,
                window_secs: 300
            })
        );
        assert!(matches!(
            verify(b"test123", Some(&header), BODY, 699, 300),
            Err(WebhookError::Stale { .. })
        ));
        // Timestamps at the ends of the range are stale, not an overflow.
        for t in [i64::MIN, i64::MAX] {
            let far = format!("t={t},v1=00");
            assert!(matches!(
                verify(b"test123", Some(&far), BODY, 1300, 300),
                Err(WebhookError::Stale { .. })
            ));
        }
        assert_eq!(
            verify(b"other", Some(&header), BODY, 1000, 300),
            Err(WebhookError::BadSignature)
        );
        assert_eq!(
            verify(b"test123", Some(&header), b"payload=%7B%7D", 1000, 300),
            Err(WebhookError::BadSignature)
        );
        assert_eq!(
            verify(b"test123", None, BODY, 1000, 300),
            Err(WebhookError::MissingSignature)
        );
        assert_eq!(
            verify(b"test123", Some("garbage"), BODY, 1000, 300),
            Err(WebhookError::BadSignatureHeader)
        );
        assert_eq!(
            verify(b"test123", Some("t=1000"), BODY, 1000, 300),
            Err(WebhookError::BadSignatureHeader)
        );
        assert_eq!(
            verify(b"test123", Some("t=x,v1=00"), BODY, 1000, 300),
            Err(WebhookError::BadSignatureHeader)
        );
        // A rotated secret: either signature may match.
        let two = format!("{header},v1={}", "00".repeat(32));
        assert_eq!(verify(b"test123", Some(&two), BODY, 1000, 300), Ok(1000));
    }

    #[test]
    fn reads_the_integration_payload() {
        let payload = WebhookPayload {
            events: vec![
                WebhookEvent {
                    object_type: "order".into(),
                    action: "update".into(),
                    date: "2021-01-29 14:40:58.628033".into(),
                    id: 2735,
                },
                WebhookEvent {
                    object_type: "shipment".into(),
                    action: "good_to_go".into(),
                    date: "2021-01-29 14:40:58.628239".into(),
                    id: 1902,
                },
            ],
        };
        let body = encode_body(&payload);
        assert!(body.starts_with("payload=%7B%22events%22"));
        assert_eq!(parse_body(body.as_bytes()), Ok(payload));
        let stringly = encode_body(&WebhookPayload { events: vec![] }).replace("%5B%5D", "%5B%7B%22type%22%3A%22order%22%2C%22action%22%3A%22insert%22%2C%22id%22%3A%2214%22%7D%5D");
        assert_eq!(
            parse_body(stringly.as_bytes()).map(|p| p.events[0].id),
            Ok(14)
        );
        assert!(parse_body(b"payload=notjson").is_err());
        assert!(parse_body(b"other=1").is_err());
    }

    proptest! {
        #[test]
        fn any_tampering_is_caught(body in proptest::collection::vec(any::<u8>(), 0..200), flip in 0usize..200, t in 0i64..2_000_000_000) {
            let header = signature_header(b"s3cret", t, &body);
            prop_assert_eq!(verify(b"s3cret", Some(&header), &body, t, 300), Ok(t));
            if !body.is_empty() {
                let mut tampered = body.clone();
                let i = flip % tampered.len();
                tampered[i] ^= 0x01;
                prop_assert_eq!(verify(b"s3cret", Some(&header), &tampered, t, 300), Err(WebhookError::BadSignature));
            }
        }
    }
}
