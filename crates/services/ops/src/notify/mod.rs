//! Exception notifications: each team hears about its new and overdue exceptions on its
//! own channels (a Slack-compatible webhook, e-mail), in its own words, batched. A consumer
//! of `exception.raised` queues a notice per new exception (the upkeep queues the overdue
//! ones); one feed per channel sends what is queued for it (ADR 0032).

pub mod channel;
pub mod feed;
pub mod message;

use std::sync::Arc;

use async_trait::async_trait;
use ferry_config::{NoticeEvent, TenantConfig};
use ferry_domain::ExceptionKind;
use ferry_platform::Platform;
use ferry_proto::exception::v1 as pb;
use ferry_runtime::{Delivery, FeedSpec, Handler, HandlerError, Runner, StreamKind};
use ferry_store::Store;
use prost::Message as _;
use tokio::task::JoinSet;

use crate::SERVICE;

/// The durable consumer's name part: `notify-<tenant>`.
const CONSUMER: &str = "notify";

/// Queues a `raised` notice for each new exception a team hears about.
pub struct Raised {
    store: Store,
    /// Teams with a channel hearing `raised`: the others' exceptions are not queued.
    teams: Vec<String>,
}

#[async_trait]
impl Handler for Raised {
    async fn handle(&self, delivery: &Delivery) -> Result<(), HandlerError> {
        let event = pb::ExceptionRaised::decode(delivery.payload.as_ref())
            .map_err(|e| delivery.poison("exception event", &e))?;
        // Seen again while still open: the team has heard. (0: from a publisher older than
        // the count, taken as new.)
        if event.seen_count > 1 {
            return Ok(());
        }
        let Ok(kind) = event.kind.parse::<ExceptionKind>() else {
            return Err(
                delivery.poison("exception event", &format!("unknown kind {:?}", event.kind))
            );
        };
        let owner = kind.owner().as_str();
        if !self.teams.iter().any(|t| t == owner) {
            return Ok(());
        }
        let id =
            uuid::Uuid::parse_str(&event.id).map_err(|e| delivery.poison("exception event", &e))?;
        self.store
            .queue_notice(&delivery.tenant, owner, NoticeEvent::Raised.as_str(), id)
            .await
            .map_err(HandlerError::transient)?;
        Ok(())
    }
}

/// Starts the tenant's notice consumer and one feed per channel; nothing when it has no
/// channels.
pub fn start(platform: &Platform, tenant: &TenantConfig, tasks: &mut JoinSet<()>) {
    let n = &tenant.notifications;
    if n.channels.is_empty() {
        return;
    }
    let store = platform.store.clone();
    let mut teams: Vec<String> = n
        .channels
        .iter()
        .filter(|c| c.events.contains(&NoticeEvent::Raised))
        .map(|c| c.team.as_str().to_owned())
        .collect();
    teams.sort();
    teams.dedup();
    let base = &platform.base;
    if !teams.is_empty() {
        let runner = Runner::builder(
            base,
            platform.sink.clone(),
            SERVICE,
            &tenant.id,
            StreamKind::Exceptions,
            base.topology.exception_subject(&tenant.id, ">"),
        )
        .durable(base.topology.consumer_name(CONSUMER, &tenant.id))
        .build();
        let handler = Arc::new(Raised {
            store: store.clone(),
            teams,
        });
        let shutdown = base.shutdown.clone();
        tasks.spawn(async move {
            if let Err(e) = runner.run(handler, shutdown).await {
                tracing::error!(error = %e, "the notice consumer stopped");
            }
        });
    }
    let brand = if tenant.display_name.is_empty() {
        tenant.id.as_str()
    } else {
        tenant.display_name.as_str()
    };
    for config in &n.channels {
        let channel = match channel::Channel::new(config, &platform.config.smtp) {
            Ok(c) => c,
            Err(e) => {
                // Configuration is checked at start; what is left is the TLS set-up.
                tracing::error!(tenant = %tenant.id, channel = %config.name, error = %e, "notification channel not started");
                continue;
            }
        };
        let feed = feed::ChannelFeed::new(&tenant.id, brand, n, config, channel, store.clone());
        let spec = FeedSpec::source(
            SERVICE,
            &tenant.id,
            format!("notify-{}", config.name),
            feed.every(),
        )
        .quiet();
        platform
            .feeds
            .spawn(spec, Arc::new(feed), base.shutdown.clone());
    }
}
