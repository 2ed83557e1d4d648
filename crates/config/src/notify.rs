//! Where exception notifications go: the SMTP server Ferry sends e-mail through (`[smtp]`,
//! one for the installation) and each brand's channels (`[notifications]` in a tenant file):
//! a team's chat webhook or mailing list, and the escalation when its exceptions go overdue.

use std::time::Duration;

use ferry_domain::Owner;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

/// The SMTP server notifications are sent through. No `host`: no e-mail channel may be
/// configured.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SmtpConfig {
    pub host: String,
    pub port: u16,
    pub security: SmtpSecurity,
    /// The sender, e.g. `Ferry <ferry@brand.example>`.
    pub from: String,
    pub username: Option<String>,
    /// Secret; `FERRY_SMTP__PASSWORD` in the environment.
    pub password: Option<SecretString>,
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
}

impl Default for SmtpConfig {
    fn default() -> Self {
        Self {
            host: String::new(),
            port: 587,
            security: SmtpSecurity::Starttls,
            from: "Ferry <ferry@localhost>".to_owned(),
            username: None,
            password: None,
            timeout: Duration::from_secs(30),
        }
    }
}

/// How the connection to the SMTP server is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SmtpSecurity {
    /// Plain SMTP: only for a relay on the same host or pod (and the tests).
    None,
    /// Upgrade with STARTTLS, refusing to go on without it (port 587).
    Starttls,
    /// TLS from the first byte (port 465).
    Tls,
}

/// A brand's notification channels (`[notifications]` in its tenant file).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NotificationsConfig {
    /// A channel's message goes once nothing new has come for `quiet`, or once the first
    /// exception in it has waited `window`: a storm of thousands is one message, and a
    /// lone exception is told within `quiet`.
    #[serde(with = "humantime_serde")]
    pub quiet: Duration,
    #[serde(with = "humantime_serde")]
    pub window: Duration,
    /// The console's address, linked from every message.
    pub console_url: Option<String>,
    pub channels: Vec<ChannelConfig>,
}

impl Default for NotificationsConfig {
    fn default() -> Self {
        Self {
            quiet: Duration::from_secs(10),
            window: Duration::from_secs(60),
            console_url: None,
            channels: Vec::new(),
        }
    }
}

/// One place a team hears about its exceptions: a chat webhook (Slack's incoming-webhook
/// body, which Mattermost, Rocket.Chat and Teams' Slack-compatible connectors also take)
/// or e-mail to a list of addresses.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelConfig {
    /// Short, stable name (it names the channel's progress), e.g. `finance-slack`.
    pub name: String,
    pub team: Owner,
    /// The webhook's URL. Secret: whoever has it can post to the channel.
    pub webhook: Option<SecretString>,
    #[serde(default)]
    pub email: Vec<String>,
    /// What the channel hears: new exceptions, overdue ones, or both. An escalation is a
    /// channel that hears only `overdue`.
    #[serde(default = "both_events")]
    pub events: Vec<NoticeEvent>,
}

/// Why a team is told about an exception.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NoticeEvent {
    /// The exception is new (or came back after it was resolved).
    Raised,
    /// It is still open past its due time.
    Overdue,
}

impl NoticeEvent {
    pub fn as_str(&self) -> &'static str {
        match self {
            NoticeEvent::Raised => "raised",
            NoticeEvent::Overdue => "overdue",
        }
    }
}

fn both_events() -> Vec<NoticeEvent> {
    vec![NoticeEvent::Raised, NoticeEvent::Overdue]
}

impl NotificationsConfig {
    /// What serde cannot check; `smtp` tells whether e-mail can be sent at all.
    pub fn validate(&self, smtp: &SmtpConfig) -> Result<(), String> {
        if self.quiet.is_zero() || self.window < self.quiet {
            return Err("notifications.quiet must be positive and window at least quiet".into());
        }
        let mut names = std::collections::BTreeSet::new();
        for c in &self.channels {
            if !crate::is_token(&c.name) || !names.insert(c.name.as_str()) {
                return Err(format!(
                    "notification channel {:?}: names are unique, lowercase letters, digits, '-' or '_'",
                    c.name
                ));
            }
            match (&c.webhook, c.email.is_empty()) {
                (Some(url), true) => {
                    let url = url.expose_secret();
                    if !url.starts_with("https://") && !url.starts_with("http://") {
                        return Err(format!(
                            "notification channel {}: webhook must be http(s)",
                            c.name
                        ));
                    }
                }
                (None, false) => {
                    if smtp.host.is_empty() {
                        return Err(format!(
                            "notification channel {} sends e-mail, and [smtp] has no host",
                            c.name
                        ));
                    }
                    if let Some(bad) = c.email.iter().find(|a| !a.contains('@')) {
                        return Err(format!(
                            "notification channel {}: {bad:?} is not an e-mail address",
                            c.name
                        ));
                    }
                }
                _ => {
                    return Err(format!(
                        "notification channel {}: give either a webhook or e-mail addresses",
                        c.name
                    ));
                }
            }
            if c.events.is_empty() {
                return Err(format!("notification channel {}: events is empty", c.name));
            }
        }
        Ok(())
    }
}
