//! Reconciliation: how complete, accurate and timely a brand's orders were over a month,
//! day by day, each step's late orders, the variances by cause with the money at stake, and the month-end report
//! (the reconciler's own, as `ferry reconcile report` writes it) to download.

use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use ferry_reconciler::report::{Period, html as report_html, month_report, percent, step_words};
use ferry_reconciler::service::{completeness_causes, counted_days};
use ferry_reconciler::timeliness::Step;
use maud::html;
use serde::Deserialize;
use tonic::Status;

use super::chart::{self, Series};
use super::layout::{self, Section};
use super::session::Session;
use super::{Console, Refused};
use crate::server::internal;

#[derive(Deserialize)]
pub(crate) struct PeriodQuery {
    #[serde(default)]
    tenant: String,
    #[serde(default)]
    period: String,
}

/// The tenant asked for (or the first the person may see) and the month (this one by
/// default); a tenant the person may not see is not found, as in the API.
fn scope(
    console: &Console,
    session: &Session,
    q: &PeriodQuery,
) -> Result<(String, Period), Refused> {
    let tenant = match q.tenant.trim() {
        "" => console
            .api
            .tenants_of(&session.who)
            .into_iter()
            .next()
            .unwrap_or_default(),
        t => t.to_owned(),
    };
    if !session.who.can_see(&tenant) {
        return Err(Status::not_found(format!("no tenant {tenant}")).into());
    }
    let month = match q.period.trim() {
        "" => Utc::now().format("%Y-%m").to_string(),
        p => p.to_owned(),
    };
    let period = Period::month(&month).map_err(|e| Status::invalid_argument(e.to_string()))?;
    Ok((tenant, period))
}

pub(crate) async fn page(
    State(console): State<Console>,
    session: Session,
    Query(q): Query<PeriodQuery>,
) -> Result<Response, Refused> {
    let (tenant, period) = scope(&console, &session, &q)?;
    let store = console.api.store();
    // This month and the last as the reconciler last counted them; older months are
    // counted now (closed months, rarely opened).
    let (counted_from, _) = counted_days(Utc::now().date_naive());
    let (days, counted_at) = if period.last >= counted_from {
        store
            .reconciliation_days(&tenant, period.first, period.last)
            .await
            .map_err(internal)?
    } else {
        let days = store
            .count_reconciliation_days(&tenant, period.first, period.last, &completeness_causes())
            .await
            .map_err(internal)?;
        (days, Some(Utc::now()))
    };
    let causes = store
        .reconciliation_causes(&tenant, period.first, period.last)
        .await
        .map_err(internal)?;
    let sum = |f: fn(&ferry_store::reconciliation::DayFigures) -> i64| -> u64 {
        days.iter().map(f).sum::<i64>().unsigned_abs()
    };
    let (checked, complete, accurate, pending) = (
        sum(|d| d.checked),
        sum(|d| d.complete),
        sum(|d| d.accurate),
        sum(|d| d.pending),
    );
    let ratio = |part: i64, whole: i64| {
        if whole == 0 {
            100.0
        } else {
            part as f64 * 100.0 / whole as f64
        }
    };
    let series = |name, class, pick: fn(&ferry_store::reconciliation::DayFigures) -> i64| Series {
        name,
        class,
        points: days
            .iter()
            .map(|d| (d.day.format("%d").to_string(), ratio(pick(d), d.checked)))
            .collect(),
    };
    let tenants = console.api.tenants_of(&session.who);
    let name = period.name();
    let body = html! {
        h1 { "Reconciliation · " (tenant) " · " (name) }
        form.filters method="get" action="/reconciliation" {
            label { "Brand " select name="tenant" { @for t in &tenants { option value=(t) selected[*t == tenant] { (t) } } } }
            label { "Month " input type="month" name="period" value=(name); }
            button type="submit" { "Show" }
        }
        dl.figures {
            div { dt { "Orders checked" } dd { (checked) } }
            div { dt { "Complete" } dd { (percent(complete, checked)) " %" } }
            div { dt { "Accurate" } dd { (percent(accurate, checked)) " %" } }
            div { dt { "Waiting (inside their grace, or held)" } dd { (pending) } }
        }
        h2 { "Day by day" }
        @if let Some(at) = counted_at { p.hint { "As counted at " (at.format("%Y-%m-%d %H:%M UTC")) " (the reconciler counts again after each pass through the orders)." } }
        @if days.is_empty() { p.empty { "No order of this month has been checked yet." } } @else {
            (chart::lines("Completeness and accuracy by day, in percent", &[
                series("complete", "complete", |d| d.complete),
                series("accurate", "accurate", |d| d.accurate),
            ], 100.0, " %"))
            details {
                summary { "The figures" }
                table {
                    thead { tr { th scope="col" { "Day" } th scope="col" { "Checked" } th scope="col" { "Complete" } th scope="col" { "Accurate" } th scope="col" { "Waiting" } } }
                    tbody { @for d in &days { tr { td { (d.day) } td { (d.checked) } td { (d.complete) } td { (d.accurate) } td { (d.pending) } } } }
                }
            }
        }
        h2 { "On time" }
        @if days.is_empty() { p.empty { "Nothing timed yet." } } @else {
            table {
                thead { tr { th scope="col" { "Step" } th scope="col" { "Orders timed" } th scope="col" { "Late against the targets" } } }
                tbody { @for (i, step) in Step::ALL.iter().enumerate() { tr {
                    td { (step_words(*step)) }
                    td { (days.iter().map(|d| d.timed.get(i).copied().unwrap_or(0)).sum::<i64>()) }
                    td { (days.iter().map(|d| d.late.get(i).copied().unwrap_or(0)).sum::<i64>()) }
                } } }
            }
        }
        h2 { "Variances by cause" }
        @if causes.is_empty() { p.empty { "No variance this month." } } @else {
            (chart::bars("Orders with a variance, by cause", &causes.iter().map(|c| (format!("{} ({})", c.cause, c.currency), c.orders.unsigned_abs(), c.orders.to_string())).collect::<Vec<_>>()))
            table {
                thead { tr { th scope="col" { "Cause" } th scope="col" { "Orders" } th scope="col" { "Money at stake on them" } } }
                tbody { @for c in &causes { tr { td { (c.cause) } td { (c.orders) } td.money { (layout::money(Some(c.money_minor), &c.currency)) } } } }
            }
        }
        h2 { "Month-end report" }
        p {
            "The reconciler's report of " (name) ", with every variance and its owner: "
            a href=(format!("/reconciliation/{tenant}/{name}.html")) download { "HTML (prints to PDF)" } " · "
            a href=(format!("/reconciliation/{tenant}/{name}.csv")) download { "CSV" }
        }
    };
    Ok(layout::page(&session, Section::Reconciliation, "Reconciliation", body).into_response())
}

/// The month-end report as a file: `<period>.html` or `<period>.csv`.
pub(crate) async fn download(
    State(console): State<Console>,
    session: Session,
    Path((tenant, file)): Path<(String, String)>,
) -> Result<Response, Refused> {
    let (month, kind) = file
        .rsplit_once('.')
        .ok_or_else(|| Refused(Status::not_found("no such report")))?;
    let (tenant, period) = scope(
        &console,
        &session,
        &PeriodQuery {
            tenant,
            period: month.to_owned(),
        },
    )?;
    let report = month_report(console.api.store(), &tenant, period)
        .await
        .map_err(internal)?;
    let (body, content_type) = match kind {
        "html" => (report_html(&report), "text/html; charset=utf-8"),
        "csv" => (
            report
                .csv()
                .map_err(|e| Refused(Status::internal(e.to_string())))?,
            "text/csv; charset=utf-8",
        ),
        _ => return Err(Status::not_found("no such report").into()),
    };
    let disposition = format!(
        "attachment; filename=\"ferry-{tenant}-{}.{kind}\"",
        period.name()
    );
    Ok((
        [
            (header::CONTENT_TYPE, content_type.to_owned()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        body,
    )
        .into_response())
}
