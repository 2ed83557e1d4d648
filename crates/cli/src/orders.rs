//! `ferry order show|search` and `ferry replay`: customer service's "where is this order?" from a terminal,
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
    /// Orders by number, ERP document number, tracking number or customer e-mail.
    Search {
        tenant: String,
        query: String,
        #[arg(long, env = "FERRY_CONFIG")]
        config: Option<PathBuf>,
        /// One JSON object per order instead of a table.
        #[arg(long)]
        json: bool,
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
                // The trace's first 8 digits: enough to find it in the tracing UI.
                let trace = s.trace_id.get(..8).map(|t| format!("  [trace {t}…]"));
                writeln!(
                    out,
                    "  {}  {:<20} {:<22} {}{}",
                    time(s.at.as_ref()),
                    s.step,
                    s.by,
                    s.detail,
                    trace.unwrap_or_default()
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
            json,
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
                if json {
                    writeln!(out, "{}", summary_json(o))?;
                    continue;
                }
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

#[derive(clap::Args, Debug)]
pub struct ReplayArgs {
    pub tenant: String,
    pub number: i64,
    /// Only show what would change; send nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// One JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
    #[arg(long, env = "FERRY_CONFIG")]
    pub config: Option<PathBuf>,
}

pub async fn replay(args: ReplayArgs) -> anyhow::Result<()> {
    let (url, token) = endpoint(args.config.as_deref())?;
    let (ch, bearer) = channel(&url, &token).await?;
    let r = OrderServiceClient::with_interceptor(ch, bearer)
        .replay_order(pb::ReplayOrderRequest {
            name: format!("tenants/{}/orders/{}", args.tenant, args.number),
            dry_run: args.dry_run,
            request_id: String::new(),
        })
        .await
        .map_err(refused)?
        .into_inner();
    let mut out = std::io::stdout();
    if args.json {
        writeln!(out, "{}", replay_json(&r))?;
        return Ok(());
    }
    let money = |m: i64| money_of(Some(m), &r.currency);
    writeln!(
        out,
        "order {} — today: {} — compared with: {} — {}",
        args.number,
        r.release,
        r.compared_with,
        match (r.action.as_str(), r.applied) {
            ("post", true) => "sent on to the ERP",
            ("post", false) => "would be sent to the ERP",
            ("amend", true) => "sent on as an amendment of the posted order",
            ("amend", false) => "would be an amendment of the posted order",
            ("hold", _) => "still held back",
            _ => "nothing differs; nothing sent",
        }
    )?;
    for p in &r.problems {
        writeln!(out, "  problem: {p}")?;
    }
    for l in &r.lines {
        writeln!(
            out,
            "  {:<8} {:<9} {:<18} item {} → {}  qty {} → {}  {} → {}  tax {} → {}",
            l.change,
            l.kind,
            l.sku,
            or_dash(&l.previous_erp_item),
            or_dash(&l.erp_item),
            l.previous_quantity,
            l.quantity,
            money(l.previous_gross_minor),
            money(l.gross_minor),
            money(l.previous_tax_minor),
            money(l.tax_minor)
        )?;
    }
    writeln!(
        out,
        "  total {} → {}  tax {} → {}",
        money(r.previous_gross_minor),
        money(r.gross_minor),
        money(r.previous_tax_minor),
        money(r.tax_minor)
    )?;
    Ok(())
}

fn or_dash(s: &str) -> &str {
    if s.is_empty() { "-" } else { s }
}

/// A replay's answer as a JSON object.
pub fn replay_json(r: &pb::ReplayOrderResponse) -> serde_json::Value {
    serde_json::json!({
        "release": r.release, "problems": r.problems, "compared_with": r.compared_with,
        "currency": r.currency, "action": r.action, "applied": r.applied,
        "previous_gross_minor": r.previous_gross_minor, "gross_minor": r.gross_minor,
        "previous_tax_minor": r.previous_tax_minor, "tax_minor": r.tax_minor,
        "lines": r.lines.iter().map(|l| serde_json::json!({
            "change": l.change, "kind": l.kind, "sku": l.sku,
            "previous_erp_item": l.previous_erp_item, "erp_item": l.erp_item,
            "previous_quantity": l.previous_quantity, "quantity": l.quantity,
            "previous_gross_minor": l.previous_gross_minor, "gross_minor": l.gross_minor,
            "previous_tax_minor": l.previous_tax_minor, "tax_minor": l.tax_minor,
        })).collect::<Vec<_>>(),
    })
}

/// An order's summary as a JSON object.
fn summary_json(o: &pb::OrderSummary) -> serde_json::Value {
    serde_json::json!({
        "name": o.name, "number": o.number, "state": o.state,
        "erp_reference": o.erp_reference, "gross_minor": o.gross_minor, "currency": o.currency,
    })
}

/// A timeline as a JSON object.
pub fn timeline_json(t: &pb::OrderTimeline) -> serde_json::Value {
    serde_json::json!({
        "order": t.order.as_ref().map(summary_json),
        "steps": t.steps.iter().map(|s| serde_json::json!({
            "at": time(s.at.as_ref()), "step": s.step, "by": s.by, "detail": s.detail,
            "trace_id": s.trace_id,
        })).collect::<Vec<_>>(),
        "verdict": t.verdict,
        "causes": t.causes,
        "exceptions": t.exceptions.iter().map(crate::exceptions::json).collect::<Vec<_>>(),
    })
}
