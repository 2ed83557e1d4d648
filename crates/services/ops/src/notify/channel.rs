//! The two ways a message leaves Ferry: a Slack-compatible webhook (HTTP POST of JSON) and
//! e-mail over SMTP. Each failure is classed where it arises: transient (the receiver is
//! away or busy; the channel's feed tries again) or permanent (the address or credentials
//! are wrong; a person must fix the configuration).

use std::time::Duration;

use ferry_config::{ChannelConfig, SmtpConfig, SmtpSecurity};
use lettre::message::{Mailbox, header::ContentType};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use secrecy::{ExposeSecret, SecretString};

use super::message::{Message, slack_body};

#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("{0}")]
    Transient(String),
    #[error("{0}")]
    Permanent(String),
}

/// Where one channel's messages go.
pub enum Channel {
    Webhook {
        http: reqwest::Client,
        url: SecretString,
    },
    Email {
        mailer: AsyncSmtpTransport<Tokio1Executor>,
        from: Mailbox,
        to: Vec<Mailbox>,
    },
}

impl Channel {
    /// The channel a configuration describes.
    pub fn new(config: &ChannelConfig, smtp: &SmtpConfig) -> Result<Channel, SendError> {
        if let Some(url) = &config.webhook {
            let http = reqwest::Client::builder()
                .timeout(Duration::from_secs(15))
                .build()
                .map_err(|e| SendError::Permanent(format!("HTTP client: {e}")))?;
            return Ok(Channel::Webhook {
                http,
                url: url.clone(),
            });
        }
        let bad = |what: &str, e: &dyn std::fmt::Display| {
            SendError::Permanent(format!("channel {}: {what}: {e}", config.name))
        };
        let from: Mailbox = smtp.from.parse().map_err(|e| bad("smtp.from", &e))?;
        let to = config
            .email
            .iter()
            .map(|a| a.parse::<Mailbox>().map_err(|e| bad(a, &e)))
            .collect::<Result<Vec<_>, _>>()?;
        let builder = match smtp.security {
            SmtpSecurity::None => {
                AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&smtp.host)
            }
            SmtpSecurity::Starttls => {
                AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&smtp.host)
                    .map_err(|e| bad("smtp", &e))?
            }
            SmtpSecurity::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(&smtp.host)
                .map_err(|e| bad("smtp", &e))?,
        };
        let mut builder = builder.port(smtp.port).timeout(Some(smtp.timeout));
        if let (Some(user), Some(password)) = (&smtp.username, &smtp.password) {
            builder = builder.credentials(Credentials::new(
                user.clone(),
                password.expose_secret().to_owned(),
            ));
        }
        Ok(Channel::Email {
            mailer: builder.build(),
            from,
            to,
        })
    }

    /// Sends one message.
    pub async fn send(&self, message: &Message) -> Result<(), SendError> {
        match self {
            Channel::Webhook { http, url } => {
                let reply = http
                    .post(url.expose_secret())
                    .json(&slack_body(message))
                    .send()
                    .await
                    // Never the URL: it is the channel's secret.
                    .map_err(|e| {
                        SendError::Transient(format!("webhook unreachable: {}", e.without_url()))
                    })?;
                let status = reply.status();
                if status.is_success() {
                    Ok(())
                } else if status.is_server_error() || status.as_u16() == 429 {
                    Err(SendError::Transient(format!("webhook answered {status}")))
                } else {
                    Err(SendError::Permanent(format!(
                        "webhook answered {status}: the URL is wrong or the channel is gone"
                    )))
                }
            }
            Channel::Email { mailer, from, to } => {
                let mut email = lettre::Message::builder()
                    .from(from.clone())
                    .subject(&message.subject)
                    .header(ContentType::TEXT_PLAIN);
                for address in to {
                    email = email.to(address.clone());
                }
                let email = email
                    .body(message.body.clone())
                    .map_err(|e| SendError::Permanent(format!("e-mail not built: {e}")))?;
                match mailer.send(email).await {
                    Ok(_) => Ok(()),
                    Err(e) if e.is_permanent() => Err(SendError::Permanent(format!(
                        "SMTP refused the message: {e}"
                    ))),
                    Err(e) => Err(SendError::Transient(format!("SMTP: {e}"))),
                }
            }
        }
    }
}
