//! `ferry exceptions list|show|resolve|ignore|assign|retry|bulk|comment`: the operations API from a
//! terminal — tables for people, `--json` (one object per line) for scripts. The API's
//! address and token come from `[api]` in the configuration or `FERRY_API__URL` and
//! `FERRY_API__TOKEN`.

use std::io::Write as _;
use std::path::PathBuf;

use anyhow::Context as _;
use ferry_proto::ops::v1 as pb;
use ferry_proto::ops::v1::exception_service_client::ExceptionServiceClient;
use secrecy::ExposeSecret as _;
use tonic::metadata::MetadataValue;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

#[derive(clap::Args, Debug)]
pub struct ApiArgs {
    #[arg(long, env = "FERRY_CONFIG")]
    config: Option<PathBuf>,
    /// One JSON object per line instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Subcommand, Debug)]
pub enum ExceptionsCommand {
    /// The exceptions you may see, most overdue first.
    List {
        /// One tenant (default: every tenant your token may see).
        #[arg(long)]
        tenant: Option<String>,
        /// e.g. `owner = finance AND state = open AND overdue = true`, `text : "48170"`.
        #[arg(long, default_value = "")]
        filter: String,
        /// Exceptions per page.
        #[arg(long, default_value_t = 50)]
        page_size: i32,
        /// Every page, not only the first.
        #[arg(long)]
        all: bool,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// One exception with its payload and who did what.
    Show {
        /// `tenants/<tenant>/exceptions/<id>` (as `list` prints it).
        name: String,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Close it: the problem is fixed.
    Resolve {
        name: String,
        #[arg(long, default_value = "")]
        note: String,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Close it: nothing will be done (a reason is required).
    Ignore {
        name: String,
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Give it to a person or a team (`--to ""` gives it back to the team's inbox).
    Assign {
        name: String,
        #[arg(long)]
        to: String,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Re-drive the blocked work through today's code (after the cause is fixed).
    Retry {
        name: String,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Retry, resolve or ignore every exception a filter finds, and follow the operation.
    Bulk {
        #[arg(long)]
        tenant: String,
        /// As for `list`, e.g. `kind = erp_rejected AND state = open`.
        #[arg(long)]
        filter: String,
        /// retry, resolve or ignore.
        #[arg(long)]
        action: String,
        /// The note (resolve) or reason (ignore).
        #[arg(long, default_value = "")]
        note: String,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Add a comment to its audit.
    Comment {
        name: String,
        #[arg(long)]
        text: String,
        #[command(flatten)]
        api: ApiArgs,
    },
}

pub type Client = ExceptionServiceClient<InterceptedService<Channel, Bearer>>;

/// Presents the token on every call.
#[derive(Clone)]
pub struct Bearer(MetadataValue<tonic::metadata::Ascii>);

impl tonic::service::Interceptor for Bearer {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        request
            .metadata_mut()
            .insert("authorization", self.0.clone());
        Ok(request)
    }
}

/// A channel to the API at `url`, and the interceptor presenting `token`.
pub async fn channel(url: &str, token: &str) -> anyhow::Result<(Channel, Bearer)> {
    let channel = Channel::from_shared(url.to_owned())
        .with_context(|| format!("{url:?} is not an address"))?
        .connect()
        .await
        .with_context(|| format!("connecting to the operations API at {url}"))?;
    let header = format!("Bearer {token}")
        .parse()
        .context("the token is not a valid header value")?;
    Ok((channel, Bearer(header)))
}

/// A client of the API at `url` presenting `token`.
pub async fn connect(url: &str, token: &str) -> anyhow::Result<Client> {
    let (channel, bearer) = channel(url, token).await?;
    Ok(ExceptionServiceClient::with_interceptor(channel, bearer))
}

/// The API's address and the token, from the configuration (or the environment).
pub fn endpoint(config: Option<&std::path::Path>) -> anyhow::Result<(String, String)> {
    let config = crate::config::load(config)?;
    let token = config
        .api
        .token
        .as_ref()
        .map(|t| t.expose_secret().to_owned())
        .context("no API token: set FERRY_API__TOKEN (ferry tokens create makes one)")?;
    Ok((config.api.url, token))
}

async fn client(args: &ApiArgs) -> anyhow::Result<Client> {
    let (url, token) = endpoint(args.config.as_deref())?;
    connect(&url, &token).await
}

/// The API's refusal in words for a person.
pub fn refused(status: tonic::Status) -> anyhow::Error {
    anyhow::anyhow!("{:?}: {}", status.code(), status.message())
}

pub async fn run(command: ExceptionsCommand) -> anyhow::Result<()> {
    let mut out = std::io::stdout();
    let request_id = uuid::Uuid::new_v4().to_string();
    let (api, shown) = match command {
        ExceptionsCommand::List {
            tenant,
            filter,
            page_size,
            all,
            api,
        } => {
            let mut c = client(&api).await?;
            let parent = format!("tenants/{}", tenant.as_deref().unwrap_or("-"));
            let mut page_token = String::new();
            if !api.json {
                writeln!(
                    out,
                    "{:<17} {:<9} {:<16} {:<28} {:>10} {:>14}  name",
                    "due", "state", "owner", "kind", "order", "at stake"
                )?;
            }
            loop {
                let page = c
                    .list_exceptions(pb::ListExceptionsRequest {
                        parent: parent.clone(),
                        page_size,
                        page_token: page_token.clone(),
                        filter: filter.clone(),
                    })
                    .await
                    .map_err(refused)?
                    .into_inner();
                for e in &page.exceptions {
                    if api.json {
                        writeln!(out, "{}", json(e))?;
                    } else {
                        writeln!(
                            out,
                            "{:<17} {:<9} {:<16} {:<28} {:>10} {:>14}  {}",
                            due(e),
                            e.state,
                            e.owner,
                            e.kind,
                            e.order_number.map(|n| n.to_string()).unwrap_or_default(),
                            money(e),
                            e.name
                        )?;
                    }
                }
                if !all || page.next_page_token.is_empty() {
                    break;
                }
                page_token = page.next_page_token;
            }
            return Ok(());
        }
        ExceptionsCommand::Show { name, api } => {
            let e = client(&api)
                .await?
                .get_exception(pb::GetExceptionRequest { name })
                .await
                .map_err(refused)?
                .into_inner();
            (api, e)
        }
        ExceptionsCommand::Resolve { name, note, api } => {
            let e = client(&api)
                .await?
                .resolve_exception(pb::ResolveExceptionRequest {
                    name,
                    note,
                    request_id,
                })
                .await
                .map_err(refused)?
                .into_inner();
            (api, e)
        }
        ExceptionsCommand::Ignore { name, reason, api } => {
            let e = client(&api)
                .await?
                .ignore_exception(pb::IgnoreExceptionRequest {
                    name,
                    reason,
                    request_id,
                })
                .await
                .map_err(refused)?
                .into_inner();
            (api, e)
        }
        ExceptionsCommand::Assign { name, to, api } => {
            let e = client(&api)
                .await?
                .assign_exception(pb::AssignExceptionRequest {
                    name,
                    assignee: to,
                    request_id,
                })
                .await
                .map_err(refused)?
                .into_inner();
            (api, e)
        }
        ExceptionsCommand::Bulk {
            tenant,
            filter,
            action,
            note,
            api,
        } => {
            let (url, token) = endpoint(api.config.as_deref())?;
            let started = connect(&url, &token)
                .await?
                .bulk_act_on_exceptions(pb::BulkActRequest {
                    parent: format!("tenants/{tenant}"),
                    filter,
                    action,
                    note,
                    request_id,
                })
                .await
                .map_err(refused)?
                .into_inner();
            let (ch, bearer) = channel(&url, &token).await?;
            let mut operations =
                ferry_proto::ops::v1::operation_service_client::OperationServiceClient::with_interceptor(
                    ch, bearer,
                );
            let bar = indicatif::ProgressBar::new(u64::try_from(started.total).unwrap_or(0));
            if api.json || !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
                bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
            }
            let op = loop {
                let op = operations
                    .get_operation(pb::GetOperationRequest {
                        name: started.name.clone(),
                    })
                    .await
                    .map_err(refused)?
                    .into_inner();
                bar.set_position(u64::try_from(op.succeeded + op.failed).unwrap_or(0));
                if op.state != "running" {
                    break op;
                }
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            };
            bar.finish_and_clear();
            if api.json {
                writeln!(
                    out,
                    "{}",
                    serde_json::json!({
                        "name": op.name, "state": op.state, "total": op.total,
                        "succeeded": op.succeeded, "failed": op.failed, "errors": op.errors,
                    })
                )?;
            } else {
                writeln!(
                    out,
                    "{}: {} — {} of {} done, {} failed",
                    op.name, op.state, op.succeeded, op.total, op.failed
                )?;
                for e in &op.errors {
                    writeln!(out, "  {e}")?;
                }
            }
            return Ok(());
        }
        ExceptionsCommand::Retry { name, api } => {
            let e = client(&api)
                .await?
                .retry_exception(pb::RetryExceptionRequest { name, request_id })
                .await
                .map_err(refused)?
                .into_inner();
            (api, e)
        }
        ExceptionsCommand::Comment { name, text, api } => {
            let e = client(&api)
                .await?
                .comment_exception(pb::CommentExceptionRequest {
                    name,
                    text,
                    request_id,
                })
                .await
                .map_err(refused)?
                .into_inner();
            (api, e)
        }
    };
    if api.json {
        writeln!(out, "{}", json(&shown))?;
    } else {
        describe(&mut out, &shown)?;
    }
    Ok(())
}

pub fn time(t: Option<&prost_types::Timestamp>) -> String {
    t.and_then(|t| chrono::DateTime::from_timestamp(t.seconds, 0))
        .map(|t| t.format("%Y-%m-%d %H:%M").to_string())
        .unwrap_or_default()
}

fn due(e: &pb::Exception) -> String {
    let at = time(e.sla_due.as_ref());
    if e.overdue { format!("{at}!") } else { at }
}

fn money(e: &pb::Exception) -> String {
    money_of(e.amount_minor, &e.currency)
}

/// Minor units as a person reads them (`SEK 1 250.00`).
pub fn money_of(amount: Option<i64>, currency: &str) -> String {
    amount.map_or_else(String::new, |minor| {
        ferry_domain::money::format_minor(minor, currency)
    })
}

/// One exception as a JSON object (the payload as base64).
pub fn json(e: &pb::Exception) -> serde_json::Value {
    use base64::Engine as _;
    serde_json::json!({
        "name": e.name, "tenant": e.tenant, "kind": e.kind, "owner": e.owner,
        "severity": e.severity, "state": e.state, "message": e.message, "reason": e.reason,
        "order": e.order_number, "amount_minor": e.amount_minor, "currency": e.currency,
        "service": e.service, "first_seen": time(e.first_seen.as_ref()),
        "last_seen": time(e.last_seen.as_ref()), "seen_count": e.seen_count,
        "sla_due": time(e.sla_due.as_ref()), "overdue": e.overdue, "assignee": e.assignee,
        "state_reason": e.state_reason,
        "payload": base64::engine::general_purpose::STANDARD.encode(&e.payload),
        "audit": e.audit.iter().map(|a| serde_json::json!({
            "at": time(a.at.as_ref()), "actor": a.actor, "action": a.action, "note": a.note,
        })).collect::<Vec<_>>(),
    })
}

fn describe(out: &mut impl std::io::Write, e: &pb::Exception) -> std::io::Result<()> {
    writeln!(out, "{}", e.name)?;
    writeln!(
        out,
        "  {} · {} · {} · {}",
        e.kind, e.owner, e.severity, e.state
    )?;
    if !e.assignee.is_empty() {
        writeln!(out, "  assigned to {}", e.assignee)?;
    }
    writeln!(
        out,
        "  due {}{}",
        due(e),
        if e.overdue { " (overdue)" } else { "" }
    )?;
    if let Some(n) = e.order_number {
        writeln!(out, "  order {n}  {}", money(e))?;
    }
    writeln!(out, "\n  {}\n", e.message)?;
    writeln!(out, "  reason: {}", e.reason)?;
    if !e.state_reason.is_empty() {
        writeln!(out, "  closed: {}", e.state_reason)?;
    }
    if !e.payload.is_empty() {
        writeln!(
            out,
            "  payload: {} bytes (--json shows it)",
            e.payload.len()
        )?;
    }
    for a in &e.audit {
        writeln!(
            out,
            "  {}  {:<24} {:<8} {}",
            time(a.at.as_ref()),
            a.actor,
            a.action,
            a.note
        )?;
    }
    Ok(())
}
