//! Leadership among a service's replicas, per (tenant, name): one replica holds a lease in
//! a JetStream key-value bucket (`<PREFIX>_LEASES`, whose entries expire `ttl` after their
//! last write), renews it every third of `ttl`, and gives up the moment a renewal fails.
//! When the holder dies its entry expires and another replica takes over within `ttl`.
//! Work that must not run twice (reading a feed, pushing a tenant's stock) runs only while
//! its lease is held; its durable writes are fenced by revision where it matters (the feed
//! cursor).

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, kv};
use async_trait::async_trait;
use bytes::Bytes;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::consumer::Gate;
use crate::nats::{NatsError, Topology};

/// The leases of one deployment.
#[derive(Clone)]
pub struct Leases {
    kv: kv::Store,
    /// Who this process is, written into the leases it holds (for people reading the bucket).
    holder: Arc<str>,
    ttl: Duration,
}

impl Leases {
    /// Opens (creating if needed) the deployment's lease bucket.
    /// `service` names this process in the leases it holds.
    pub async fn open(
        js: &jetstream::Context,
        topology: &Topology,
        ttl: Duration,
        replicas: usize,
        service: &str,
    ) -> Result<Self, NatsError> {
        let bucket = topology.bucket_name("LEASES");
        let kv = open_bucket(
            js,
            kv::Config {
                bucket: bucket.clone(),
                description: "Ferry: which replica leads each (tenant, feed)".into(),
                history: 1,
                max_age: ttl,
                storage: jetstream::stream::StorageType::File,
                num_replicas: replicas,
                ..Default::default()
            },
        )
        .await?;
        let holder = format!(
            "{service}-{}-{}",
            std::process::id(),
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        Ok(Leases {
            kv,
            holder: holder.into(),
            ttl,
        })
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Takes the lease `name` if nobody holds it; `None` when another replica does.
    pub async fn try_acquire(&self, name: &str) -> Result<Option<Lease>, NatsError> {
        let key = lease_key(name);
        match self
            .kv
            .create(&key, Bytes::copy_from_slice(self.holder.as_bytes()))
            .await
        {
            Ok(revision) => Ok(Some(Lease::start(self.clone(), key, revision))),
            Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => Ok(None),
            Err(e) => Err(NatsError::Kv {
                bucket: "leases".into(),
                reason: e.to_string(),
            }),
        }
    }

    /// Waits until the lease `name` is ours (or `shutdown`), trying every third of the TTL.
    pub async fn acquire(&self, name: &str, shutdown: &CancellationToken) -> Option<Lease> {
        loop {
            match self.try_acquire(name).await {
                Ok(Some(lease)) => return Some(lease),
                Ok(None) => {}
                Err(e) => tracing::warn!(lease = name, error = %e, "cannot reach the lease bucket"),
            }
            tokio::select! {
                _ = shutdown.cancelled() => return None,
                _ = tokio::time::sleep(self.ttl / 3) => {}
            }
        }
    }
}

/// A held lease: renewed in the background until dropped; [`Lease::lost`] fires when a
/// renewal fails (another replica may lead now: stop at once).
pub struct Lease {
    lost: CancellationToken,
    stop: CancellationToken,
}

impl Lease {
    fn start(leases: Leases, key: String, revision: u64) -> Self {
        let lost = CancellationToken::new();
        let stop = CancellationToken::new();
        let (lost_task, stop_task) = (lost.clone(), stop.clone());
        tokio::spawn(async move {
            let mut revision = revision;
            loop {
                tokio::select! {
                    _ = stop_task.cancelled() => {
                        // Released: let the next replica in at once instead of after the TTL.
                        let _ = leases.kv.delete_expect_revision(&key, Some(revision)).await;
                        return;
                    }
                    _ = tokio::time::sleep(leases.ttl / 3) => {}
                }
                match leases
                    .kv
                    .update(
                        &key,
                        Bytes::copy_from_slice(leases.holder.as_bytes()),
                        revision,
                    )
                    .await
                {
                    Ok(next) => revision = next,
                    Err(e) => {
                        tracing::warn!(lease = %key, error = %e, "lease lost");
                        metrics::counter!("ferry_lease_lost_total", "lease" => key.clone())
                            .increment(1);
                        lost_task.cancel();
                        return;
                    }
                }
            }
        });
        metrics::counter!("ferry_lease_acquired_total").increment(1);
        Lease { lost, stop }
    }

    /// Fires when the lease could not be renewed.
    pub fn lost(&self) -> CancellationToken {
        self.lost.clone()
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Whether this process leads a (tenant, feed) right now. As a consumer's [`Gate`] it lets
/// the consumer pull only where the feed runs: the inventory pusher's stock consumer hands
/// levels to the pusher of its own process, and fulfilment's shipments are handled by one
/// replica at a time (Centra's quota, not CPU, limits them).
pub struct Leading {
    state: watch::Sender<bool>,
}

impl Leading {
    pub fn new() -> Arc<Self> {
        Arc::new(Leading {
            state: watch::Sender::new(false),
        })
    }

    pub fn set(&self, leading: bool) {
        self.state.send_replace(leading);
    }

    pub fn is_leading(&self) -> bool {
        *self.state.borrow()
    }
}

#[async_trait]
impl Gate for Leading {
    fn is_open(&self) -> bool {
        self.is_leading()
    }

    async fn wait_open(&self) {
        let mut rx = self.state.subscribe();
        // The sender lives as long as `self`: the wait ends only when leading.
        let _ = rx.wait_for(|leading| *leading).await;
    }
}

/// Lease and cursor names become KV keys: `tenant/feed` → `tenant.feed`; characters a key
/// cannot hold are replaced.
pub fn lease_key(name: &str) -> String {
    name.chars()
        .map(|c| match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' | '-' | '_' | '=' => c,
            _ => '.',
        })
        .collect()
}

/// Creates the bucket, or opens it when it exists.
pub(crate) async fn open_bucket(
    js: &jetstream::Context,
    config: kv::Config,
) -> Result<kv::Store, NatsError> {
    let bucket = config.bucket.clone();
    match js.create_key_value(config).await {
        Ok(store) => Ok(store),
        Err(create) => js.get_key_value(&bucket).await.map_err(|e| NatsError::Kv {
            bucket: bucket.clone(),
            reason: format!("{create}; {e}"),
        }),
    }
}
