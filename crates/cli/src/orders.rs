//! `ferry order show|search`: customer service's "where is this order?" from a terminal,
//! through the operations API (`[api]` or `FERRY_API__URL` / `FERRY_API__TOKEN`).

use std::io::Write as _;
use std::path::PathBuf;

use ferry_proto::ops::v1 as pb;
use ferry_proto::ops::v1::order_service_client::OrderServiceClient;

use crate::exceptions::{channel, endpoint, money_of, refused, time};

#[derive(clap::Subcommand, Debug)]
pub enum OrderCommand {
    /// Every step of one order, oldest first: seen, posted, shipped, e-mailed, captured,
    /// reconciled, and the exceptions on the way.
    Show {
        tenant: String,
        number: i64,
        #[arg(long, env = "FERRY_CONFIG")]
        config: Option<PathBuf>,
        /// One JSON object instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Orders by number, ERP document number or tracking number.
    Search {
        tenant: String,
        query: String,
        #[arg(long, env = "FERRY_CONFIG")]
        config: Option<PathBuf>,
    },
}

pub async fn run(command: OrderCommand) -> anyhow::Result<()> {
    let mut out = std::io::stdout();
    match command {
        OrderCommand::Show {
            tenant,
            number,
            config,
            json,
        } => {
            let (url, token) = endpoint(config.as_deref())?;
            let (ch, bearer) = channel(&url, &token).await?;
            let t = OrderServiceClient::with_interceptor(ch, bearer)
                .get_order_timeline(pb::GetOrderTimelineRequest {
                    name: format!("tenants/{tenant}/orders/{number}"),
                })
                .await
                .map_err(refused)?
                .into_inner();
            if json {
                writeln!(out, "{}", timeline_json(&t))?;
                return Ok(());
            }
            if let Some(o) = &t.order {
                writeln!(
                    out,
                    "order {} — {} — {} — ERP {}",
                    o.number,
                    o.state,
                    money_of(o.gross_minor, &o.currency),
                    if o.erp_reference.is_empty() {
                        "-"
                    } else {
                        &o.erp_reference
                    }
                )?;
            }
            for s in &t.steps {
                writeln!(
                    out,
                    "  {}  {:<20} {:<22} {}",
                    time(s.at.as_ref()),
                    s.step,
                    s.by,
                    s.detail
                )?;
            }
            if !t.verdict.is_empty() {
                writeln!(out, "reconciler: {} {}", t.verdict, t.causes.join(", "))?;
            }
            for e in &t.exceptions {
                writeln!(
                    out,
                    "exception {} {} ({}): {}",
                    e.state, e.kind, e.owner, e.name
                )?;
            }
        }
        OrderCommand::Search {
            tenant,
            query,
            config,
        } => {
            let (url, token) = endpoint(config.as_deref())?;
            let (ch, bearer) = channel(&url, &token).await?;
            let found = OrderServiceClient::with_interceptor(ch, bearer)
                .search_orders(pb::SearchOrdersRequest {
                    parent: format!("tenants/{tenant}"),
                    query,
                })
                .await
                .map_err(refused)?
                .into_inner();
            for o in &found.orders {
                writeln!(
                    out,
                    "{:>10}  {:<16} {:>14}  {}",
                    o.number,
                    o.state,
                    money_of(o.gross_minor, &o.currency),
                    o.erp_reference
                )?;
            }
        }
    }
    Ok(())
}

/// A timeline as a JSON object.
pub fn timeline_json(t: &pb::OrderTimeline) -> serde_json::Value {
    serde_json::json!({
        "order": t.order.as_ref().map(|o| serde_json::json!({
            "name": o.name, "number": o.number, "state": o.state,
            "erp_reference": o.erp_reference, "gross_minor": o.gross_minor, "currency": o.currency,
        })),
        "steps": t.steps.iter().map(|s| serde_json::json!({
            "at": time(s.at.as_ref()), "step": s.step, "by": s.by, "detail": s.detail,
        })).collect::<Vec<_>>(),
        "verdict": t.verdict,
        "causes": t.causes,
        "exceptions": t.exceptions.iter().map(crate::exceptions::json).collect::<Vec<_>>(),
    })
}
