//! The webhook sender, as Centra's webhook plugin behaves: form-encoded `payload=` with the
//! Integration-API events, signed `X-Centra-Signature: t=…,v1=…`, batches of up to 100
//! events, a 5 s timeout, 0–3 retries with increasing delay, then gives up. Delivery and
//! order are not guaranteed, so drop, duplicate and reorder rates are configurable.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use ferry_centra::webhook::{WebhookEvent, WebhookPayload, encode_body, signature_header};
use parking_lot::{Mutex, RwLock};
use rand::Rng;
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

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
                let Some(config) = inner.config.read().clone() else {
                    continue;
                };
                tokio::time::sleep(Duration::from_millis(config.flush_ms)).await;
                loop {
                    let batch = inner.take_batch(&config);
                    if batch.is_empty() {
                        break;
                    }
                    inner.send(&http, &config, batch).await;
                }
            }
        });
    }
}

impl Inner {
    /// Takes up to `batch_max` events, applying the configured drop, duplicate and reorder
    /// faults (a duplicate or a reordered event goes back to the end of the queue).
    fn take_batch(&self, config: &WebhookConfig) -> Vec<WebhookEvent> {
        let mut rng = rand::rng();
        let mut queue = self.queue.lock();
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
        batch
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
