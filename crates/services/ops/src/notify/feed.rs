//! One channel's feed: reads the team's queued notices after its cursor (the last queue id
//! it delivered), waits until the batch has calmed or waited its window, sends one
//! message, and moves on. At least once: a message sent just before the process died is
//! sent again, never lost.

use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use ferry_config::{ChannelConfig, NotificationsConfig};
use ferry_domain::{ExceptionKind, NewException, Owner};
use ferry_runtime::{Feed, FeedError, Pass};
use ferry_store::Store;

use super::channel::{Channel, SendError};
use super::message::{Audience, compose};

/// Notices read (and told in one message) at most per pass.
const BATCH_MAX: i64 = 10_000;

pub struct ChannelFeed {
    pub tenant: String,
    pub brand: String,
    pub console_url: Option<String>,
    pub name: String,
    pub team: Owner,
    events: Vec<String>,
    quiet: Duration,
    window: Duration,
    channel: Channel,
    store: Store,
}

impl ChannelFeed {
    pub fn new(
        tenant: &str,
        brand: &str,
        notifications: &NotificationsConfig,
        config: &ChannelConfig,
        channel: Channel,
        store: Store,
    ) -> ChannelFeed {
        ChannelFeed {
            tenant: tenant.to_owned(),
            brand: brand.to_owned(),
            console_url: notifications.console_url.clone(),
            name: config.name.clone(),
            team: config.team,
            events: config
                .events
                .iter()
                .map(|e| e.as_str().to_owned())
                .collect(),
            quiet: notifications.quiet,
            window: notifications.window,
            channel,
            store,
        }
    }

    /// How often the feed looks: often enough to keep `quiet`.
    pub fn every(&self) -> Duration {
        (self.quiet / 4).max(Duration::from_millis(100))
    }

    fn failed(&self, reason: String) -> FeedError {
        FeedError::Permanent(Box::new(NewException {
            tenant: self.tenant.clone(),
            kind: ExceptionKind::FeedFailed,
            key: format!("notify:{}", self.name),
            message: format!(
                "{} is not being told about its exceptions: the notification channel `{}` \
                 refuses messages. Fix its address in the tenant's [notifications]; nothing \
                 waiting is lost.",
                self.team.team_name(),
                self.name
            ),
            reason,
            order_number: None,
            amount_minor: None,
            currency: None,
            service: crate::SERVICE.to_owned(),
            source_subject: None,
            payload: Vec::new(),
        }))
    }
}

#[async_trait]
impl Feed for ChannelFeed {
    async fn pass(&self, cursor: &str) -> Result<Pass, FeedError> {
        let after = match cursor {
            "" => None,
            c => Some(c.parse::<i64>().map_err(|e| {
                self.failed(format!("the channel's cursor {c:?} is not a queue id: {e}"))
            })?),
        };
        let team = self.team.as_str();
        let Some((first, last)) = self
            .store
            .notices_waiting(&self.tenant, team, &self.events, after)
            .await
            .map_err(FeedError::transient)?
        else {
            return Ok(Pass::idle(cursor));
        };
        let now = Utc::now();
        let waited = |since: chrono::DateTime<Utc>, d: Duration| {
            (now - since).to_std().unwrap_or_default() >= d
        };
        if !waited(first, self.window) && !waited(last, self.quiet) {
            return Ok(Pass::idle(cursor));
        }
        let notices = self
            .store
            .notices_after(&self.tenant, team, &self.events, after, BATCH_MAX)
            .await
            .map_err(FeedError::transient)?;
        let Some(newest) = notices.last() else {
            return Ok(Pass::idle(cursor));
        };
        let audience = Audience {
            tenant: &self.tenant,
            brand: &self.brand,
            team: self.team,
            console_url: self.console_url.as_deref(),
        };
        if let Some(message) = compose(&audience, &notices) {
            self.channel.send(&message).await.map_err(|e| match e {
                SendError::Transient(reason) => FeedError::transient(reason),
                SendError::Permanent(reason) => self.failed(reason),
            })?;
            metrics::counter!(
                "ferry_notifications_sent_total",
                "tenant" => self.tenant.clone(),
                "channel" => self.name.clone()
            )
            .increment(1);
            tracing::info!(
                tenant = %self.tenant,
                channel = %self.name,
                exceptions = message.exceptions,
                "notification sent"
            );
        }
        Ok(Pass {
            cursor: newest.id.to_string(),
            items: notices.len() as u64,
            more: notices.len() as i64 == BATCH_MAX,
            ..Pass::default()
        })
    }
}
