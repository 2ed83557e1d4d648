//! The webhook sender, as Centra's webhook plugin behaves: form-encoded `payload=` with the
//! Integration-API events, signed `X-Centra-Signature: t=…,v1=…`, batches of up to 100
//! events, a 5 s timeout, 0–3 retries with increasing delay, then gives up. Delivery and
//! order are not guaranteed, so drop, duplicate and reorder rates are configurable.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use ferry_centra::webhook::{WebhookEvent, WebhookPayload};
use hmac::{Hmac, Mac};
use parking_lot::{Mutex, RwLock};
use rand::Rng;
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// The body Centra's webhook plugin sends: one form field, `payload=<URL-encoded JSON>`.
/// Written here from Centra's documentation, not borrowed from Ferry's receiver: a mistake
/// shared by both sides would pass every test.
pub fn encode_body(payload: &WebhookPayload) -> String {
    let json = serde_json::to_string(payload).unwrap_or_else(|_| "{\"events\":[]}".to_owned());
    serde_urlencoded::to_string([("payload", json)]).unwrap_or_default()
}

/// `X-Centra-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "{t}.{raw body}")>`,
/// as Centra documents it (the raw body still URL-encoded).
pub fn signature_header(secret: &[u8], t: i64, body: &[u8]) -> String {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
        return String::new();
    };
    mac.update(format!("{t}.").as_bytes());
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("t={t},v1={hex}")
}

/// Where and how to send webhooks. Rates are per mille of events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct WebhookConfig {
    pub url: String,
    /// Empty: unsigned (Centra sends no signature without a secret).
    pub secret: String,
    /// Events per call (Centra's default and maximum: 100).
    pub batch_max: usize,
    pub timeout_ms: u64,
    /// Retries after a failed call (Centra: 0 by default, at most 3).
    pub retries: u32,
    pub drop_per_mille: u32,
    pub duplicate_per_mille: u32,
    pub reorder_per_mille: u32,
    /// How long events gather before a call.
    pub flush_ms: u64,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        Self {
            url: String::new(),
            secret: String::new(),
            batch_max: 100,
            timeout_ms: 5000,
            retries: 0,
            drop_per_mille: 0,
            duplicate_per_mille: 0,
            reorder_per_mille: 0,
            flush_ms: 20,
        }
    }
}

#[derive(Debug, Default, Clone, Serialize)]
pub struct WebhookStats {
    pub calls: u64,
    pub failed_calls: u64,
    pub events_sent: u64,
    pub events_dropped: u64,
    pub events_duplicated: u64,
    pub events_reordered: u64,
    pub events_given_up: u64,
    pub queued: usize,
}

#[derive(Default)]
struct Counters {
    calls: AtomicU64,
    failed_calls: AtomicU64,
    events_sent: AtomicU64,
    events_dropped: AtomicU64,
    events_duplicated: AtomicU64,
    events_reordered: AtomicU64,
    events_given_up: AtomicU64,
}

#[derive(Clone, Default)]
pub struct WebhookSender {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    config: RwLock<Option<WebhookConfig>>,
    queue: Mutex<VecDeque<WebhookEvent>>,
    notify: Notify,
    counters: Counters,
}

impl WebhookSender {
    pub fn new() -> Self {
        Self::default()
    }

    /// Turns webhooks on (or changes them). `None` turns them off; queued events stay.
    pub fn configure(&self, config: Option<WebhookConfig>) {
        *self.inner.config.write() = config;
        self.inner.notify.notify_one();
    }

    pub fn config(&self) -> Option<WebhookConfig> {
        self.inner.config.read().clone()
    }

    /// Queues an event if webhooks are on.
    pub fn announce(&self, object_type: &str, action: &str, id: i64) {
        if self.inner.config.read().is_none() {
            return;
        }
        let date = chrono::Utc::now()
            .format("%Y-%m-%d %H:%M:%S%.6f")
            .to_string();
        self.inner.queue.lock().push_back(WebhookEvent {
            object_type: object_type.to_owned(),
            action: action.to_owned(),
            date,
            id,
        });
        self.inner.notify.notify_one();
    }

    pub fn stats(&self) -> WebhookStats {
        let c = &self.inner.counters;
        WebhookStats {
            calls: c.calls.load(Ordering::Relaxed),
            failed_calls: c.failed_calls.load(Ordering::Relaxed),
            events_sent: c.events_sent.load(Ordering::Relaxed),
            events_dropped: c.events_dropped.load(Ordering::Relaxed),
            events_duplicated: c.events_duplicated.load(Ordering::Relaxed),
            events_reordered: c.events_reordered.load(Ordering::Relaxed),
            events_given_up: c.events_given_up.load(Ordering::Relaxed),
            queued: self.inner.queue.lock().len(),
        }
    }

    /// Sends queued events until `shutdown`.
    pub fn start(&self, shutdown: CancellationToken) {
        let inner = self.inner.clone();
        tokio::spawn(async move {
            let http = reqwest::Client::new();
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = inner.notify.notified() => {}
                    _ = tokio::time::sleep(Duration::from_millis(200)) => {}
                }
                let Some(flush_ms) = inner.config.read().as_ref().map(|c| c.flush_ms) else {
                    continue;
                };
                tokio::time::sleep(Duration::from_millis(flush_ms)).await;
                while let Some((config, batch)) = inner.take_batch() {
                    inner.send(&http, &config, batch).await;
                }
            }
        });
    }
}

impl Inner {
    /// Takes up to `batch_max` events, applying the configured drop, duplicate and reorder
    /// faults (a duplicate or a reordered event goes back to the end of the queue); `None`
    /// when nothing is queued or webhooks are off.
    ///
    /// The configuration is read while the queue is held: an event announced after a
    /// `configure` then always meets that configuration (a copy read before the flush
    /// pause would let a test's "drop everything from now on" miss the next event).
    fn take_batch(&self) -> Option<(WebhookConfig, Vec<WebhookEvent>)> {
        let mut rng = rand::rng();
        let mut queue = self.queue.lock();
        let config = self.config.read().clone()?;
        let mut batch = Vec::new();
        let mut deferred = Vec::new();
        while batch.len() < config.batch_max.clamp(1, 100) {
            let Some(event) = queue.pop_front() else {
                break;
            };
            if rng.random_range(0..1000) < config.drop_per_mille {
                self.counters.events_dropped.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            if rng.random_range(0..1000) < config.reorder_per_mille && !event.action.ends_with('~')
            {
                self.counters
                    .events_reordered
                    .fetch_add(1, Ordering::Relaxed);
                // Marked so that it is reordered at most once.
                deferred.push(WebhookEvent {
                    action: format!("{}~", event.action),
                    ..event
                });
                continue;
            }
            if rng.random_range(0..1000) < config.duplicate_per_mille
                && !event.action.ends_with('^')
            {
                self.counters
                    .events_duplicated
                    .fetch_add(1, Ordering::Relaxed);
                deferred.push(WebhookEvent {
                    action: format!("{}^", event.action),
                    ..event.clone()
                });
            }
            batch.push(event);
        }
        queue.extend(deferred);
        for event in &mut batch {
            event.action = event.action.trim_end_matches(['~', '^']).to_owned();
        }
        (!batch.is_empty()).then_some((config, batch))
    }

    async fn send(
        &self,
        http: &reqwest::Client,
        config: &WebhookConfig,
        events: Vec<WebhookEvent>,
    ) {
        let count = events.len() as u64;
        let body = encode_body(&WebhookPayload { events });
        for attempt in 0..=config.retries.min(3) {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_secs(u64::from(attempt))).await;
            }
            let mut request = http
                .post(&config.url)
                .timeout(Duration::from_millis(config.timeout_ms))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body.clone());
            if !config.secret.is_empty() {
                let t = chrono::Utc::now().timestamp();
                request = request.header(
                    "x-centra-signature",
                    signature_header(config.secret.as_bytes(), t, body.as_bytes()),
                );
            }
            self.counters.calls.fetch_add(1, Ordering::Relaxed);
            match request.send().await {
                Ok(r) if r.status().is_success() => {
                    self.counters
                        .events_sent
                        .fetch_add(count, Ordering::Relaxed);
                    return;
                }
                Ok(r) => tracing::debug!(status = %r.status(), "webhook refused"),
                Err(e) => tracing::debug!(error = %e.without_url(), "webhook failed"),
            }
            self.counters.failed_calls.fetch_add(1, Ordering::Relaxed);
        }
        self.counters
            .events_given_up
            .fetch_add(count, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Centra's documented test vector: secret `test123`, `t=12345678`, body
    /// `payload=%7B%22x%22%3A%22test%22%7D`. Ferry's receiver checks the same vector
    /// (`ferry_centra::webhook` tests), each with its own code.
    #[test]
    fn signs_centras_documented_test_vector() {
        assert_eq!(
            signature_header(b"test123", 12345678, b"payload=%7B%22x%22%3A%22test%22%7D"),
            "t=12345678,v1=0b9cd84f5d583e5e1aadfb9f160aa8080b51d5b85ff85808d6b75bdac356c549"
        );
    }

    #[test]
    fn the_body_is_one_url_encoded_form_field() {
        let payload: WebhookPayload =
            serde_json::from_str(r#"{"events":[]}"#).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(encode_body(&payload), "payload=%7B%22events%22%3A%5B%5D%7D");
    }
}
