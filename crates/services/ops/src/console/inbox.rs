//! The inbox: the signed-in person's team's exceptions still to be worked, most overdue
//! first, with filters, SLA timers and bulk actions over a filter (followed as an
//! operation with its progress).

use axum::extract::{Form, Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::Utc;
use ferry_domain::{ExceptionKind, Owner};
use ferry_proto::ops::v1 as pb;
use ferry_proto::ops::v1::exception_service_server::ExceptionService as _;
use ferry_proto::ops::v1::operation_service_server::OperationService as _;
use maud::{Markup, html};
use serde::Deserialize;

use super::layout::{self, Section};
use super::session::Session;
use super::{Console, Refused};
use crate::access::Role;
use crate::filter::{ExceptionFilter, STATES};

const PAGE_SIZE: i32 = 50;

/// The inbox's filters, as the form (and its links) carry them.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct InboxQuery {
    #[serde(default)]
    tenant: String,
    #[serde(default)]
    team: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    state: String,
    #[serde(default)]
    overdue: String,
    #[serde(default)]
    text: String,
    #[serde(default)]
    after: String,
    #[serde(default)]
    notice: String,
}

fn some(v: &str) -> Option<String> {
    Some(v.trim().to_owned()).filter(|v| !v.is_empty())
}

impl InboxQuery {
    /// Whose exceptions: a team's own for its members; engineering and admins choose
    /// (every team when they leave it empty).
    fn team(&self, role: Role) -> Option<String> {
        match (role, role.team()) {
            (Role::Engineering | Role::Admin, _) => some(&self.team),
            (_, Some(team)) => Some(team.as_str().to_owned()),
            (_, None) => None,
        }
    }

    fn filter(&self, role: Role) -> ExceptionFilter {
        ExceptionFilter {
            owner: self.team(role),
            kind: some(&self.kind),
            state: Some(some(&self.state).unwrap_or_else(|| "active".to_owned())),
            overdue: (self.overdue == "true").then_some(true),
            text: some(&self.text),
            ..ExceptionFilter::default()
        }
    }

    fn parent(&self) -> String {
        format!(
            "tenants/{}",
            some(&self.tenant).unwrap_or_else(|| "-".into())
        )
    }
}

pub(crate) async fn page(
    State(console): State<Console>,
    session: Session,
    Query(q): Query<InboxQuery>,
) -> Result<Response, Refused> {
    let filter = q.filter(session.who.role);
    let listed = console
        .api
        .list_exceptions(Console::call(
            &session.who,
            pb::ListExceptionsRequest {
                parent: q.parent(),
                page_size: PAGE_SIZE,
                page_token: q.after.clone(),
                filter: filter.to_string(),
            },
        ))
        .await?
        .into_inner();
    let tenants = console.api.tenants_of(&session.who);
    let title = match filter.owner.as_deref() {
        Some(owner) => format!("Inbox · {}", layout::team(owner)),
        None => "Inbox · every team".to_owned(),
    };
    let body = html! {
        h1 { (title) }
        @if let Some(text) = notice(&q.notice) { p.notice role="status" { (text) } }
        (filters(&q, session.who.role, &tenants))
        (table(&listed.exceptions))
        @if !listed.next_page_token.is_empty() {
            p { a href=(next_page(&q, &listed.next_page_token)) { "Next page →" } }
        }
        (bulk_form(&session, &q))
    };
    Ok(layout::page(&session, Section::Inbox, &title, body).into_response())
}

/// What an action that came back here says it did (only these fixed words are shown).
fn notice(key: &str) -> Option<&'static str> {
    match key {
        "resolve" => Some("Resolved: it has left the inbox."),
        "ignore" => Some("Ignored, with your reason recorded."),
        "retry" => Some("Sent again: it shows as retrying until it goes through."),
        _ => None,
    }
}

fn filters(q: &InboxQuery, role: Role, tenants: &[String]) -> Markup {
    let state = some(&q.state).unwrap_or_else(|| "active".into());
    let chooses_team = matches!(role, Role::Engineering | Role::Admin);
    html! {
        form.filters method="get" action="/" aria-label="Filter the inbox" {
            label { "Brand "
                select name="tenant" {
                    option value="" { "All" }
                    @for t in tenants { option value=(t) selected[q.tenant == *t] { (t) } }
                }
            }
            @if chooses_team {
                label { "Team "
                    select name="team" {
                        option value="" { "Every team" }
                        @for o in [Owner::Finance, Owner::Operations, Owner::CustomerService, Owner::Engineering] {
                            option value=(o.as_str()) selected[q.team == o.as_str()] { (o.team_name()) }
                        }
                    }
                }
            }
            label { "Kind "
                select name="kind" {
                    option value="" { "Any" }
                    @for k in ExceptionKind::ALL {
                        @if chooses_team || role.team() == Some(k.owner()) {
                            option value=(k.as_str()) selected[q.kind == k.as_str()] { (k.title()) }
                        }
                    }
                }
            }
            label { "State "
                select name="state" {
                    @for s in STATES { option value=(s) selected[state == s] { (s) } }
                }
            }
            label.check { input type="checkbox" name="overdue" value="true" checked[q.overdue == "true"]; " Overdue only" }
            label { "Text " input type="search" name="text" value=(q.text); }
            button type="submit" { "Show" }
        }
    }
}

fn table(rows: &[pb::Exception]) -> Markup {
    let now = Utc::now();
    html! {
        @if rows.is_empty() {
            p.empty { "Nothing to do here." }
        } @else {
            table.inbox {
                caption.sr { "Exceptions, most overdue first" }
                thead { tr {
                    th scope="col" { "Due" } th scope="col" { "What" } th scope="col" { "Money at stake" }
                    th scope="col" { "Order" } th scope="col" { "Brand" } th scope="col" { "State" }
                } }
                tbody {
                    @for e in rows {
                        tr.overdue[e.overdue] {
                            td { (layout::sla(e.sla_due.as_ref(), e.overdue, now)) }
                            td {
                                a href=(exception_href(e)) { (layout::kind_title(&e.kind)) }
                                div.message { (e.message) }
                            }
                            td.money { (layout::money(e.amount_minor, &e.currency)) }
                            td { @if let Some(n) = e.order_number { a href=(format!("/orders/{}/{n}", e.tenant)) { (n) } } }
                            td { (e.tenant) }
                            td { (e.state) @if !e.assignee.is_empty() { " · " (e.assignee) } }
                        }
                    }
                }
            }
        }
    }
}

/// The console's address of an exception (`tenants/<t>/exceptions/<id>` in the API).
pub(crate) fn exception_href(e: &pb::Exception) -> String {
    format!(
        "/exceptions/{}/{}",
        e.tenant,
        e.name.rsplit('/').next().unwrap_or_default()
    )
}

fn next_page(q: &InboxQuery, token: &str) -> String {
    let query = serde_urlencoded::to_string([
        ("tenant", q.tenant.as_str()),
        ("team", q.team.as_str()),
        ("kind", q.kind.as_str()),
        ("state", q.state.as_str()),
        ("overdue", q.overdue.as_str()),
        ("text", q.text.as_str()),
        ("after", token),
    ])
    .unwrap_or_default();
    format!("/?{query}")
}

fn bulk_form(session: &Session, q: &InboxQuery) -> Markup {
    html! {
        section.bulk aria-labelledby="bulk-title" {
            h2 #bulk-title { "Act on everything this filter shows" }
            @if some(&q.tenant).is_none() {
                p.hint { "Choose a brand above to act on all of its exceptions at once." }
            } @else {
                form method="post" action="/bulk" data-confirm="Act on every exception this filter shows?" {
                    input type="hidden" name="csrf" value=(session.csrf);
                    input type="hidden" name="request_id" value=(uuid::Uuid::new_v4());
                    @for (name, value) in [("tenant", &q.tenant), ("team", &q.team), ("kind", &q.kind), ("state", &q.state), ("overdue", &q.overdue), ("text", &q.text)] {
                        input type="hidden" name=(name) value=(value);
                    }
                    label { "Action "
                        select name="action" {
                            option value="retry" { "Retry" }
                            option value="resolve" { "Resolve" }
                            option value="ignore" { "Ignore" }
                        }
                    }
                    label { "Note (a reason is required to ignore) " input name="note"; }
                    button type="submit" { "Start" }
                }
            }
        }
    }
}

#[derive(Deserialize)]
pub(crate) struct BulkForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    request_id: String,
    action: String,
    #[serde(default)]
    note: String,
    #[serde(flatten)]
    inbox: InboxQuery,
}

pub(crate) async fn bulk(
    State(console): State<Console>,
    session: Session,
    Form(form): Form<BulkForm>,
) -> Result<Response, Refused> {
    if let Some(refused) = session.refuse_forged(&form.csrf) {
        return Ok(refused);
    }
    let op = console
        .api
        .bulk_act_on_exceptions(Console::call(
            &session.who,
            pb::BulkActRequest {
                parent: form.inbox.parent(),
                filter: form.inbox.filter(session.who.role).to_string(),
                action: form.action,
                note: form.note,
                request_id: form.request_id,
            },
        ))
        .await?
        .into_inner();
    let id = op.name.rsplit('/').next().unwrap_or_default().to_owned();
    Ok(Redirect::to(&format!("/operations/{id}")).into_response())
}

pub(crate) async fn operation(
    State(console): State<Console>,
    session: Session,
    Path(id): Path<String>,
) -> Result<Response, Refused> {
    let op = console
        .api
        .get_operation(Console::call(
            &session.who,
            pb::GetOperationRequest {
                name: format!("operations/{id}"),
            },
        ))
        .await?
        .into_inner();
    let done = op.succeeded + op.failed;
    let running = op.state == "running";
    let body = html! {
        h1 { "Bulk " (op.action) " · " (op.tenant) }
        div data-refresh=[running.then_some("1")] {
            p { "Filter: " code { (op.filter) } }
            label for="progress" { (done) " of " (op.total) " done (" (op.succeeded) " succeeded, " (op.failed) " failed) — " (op.state) }
            progress #progress max=(op.total.max(1)) value=(done) {}
            @if running { p.hint { "This page follows the operation; " a href=(format!("/operations/{id}")) { "refresh" } " if it does not." } }
            @if !op.errors.is_empty() {
                h2 { "Failures" }
                ul { @for e in &op.errors { li { (e) } } }
            }
            p { a href=(format!("/?tenant={}", op.tenant)) { "Back to the inbox" } }
        }
    };
    Ok(layout::page(&session, Section::Inbox, "Bulk operation", body).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_team_sees_its_own_inbox_engineering_chooses() {
        let q = InboxQuery {
            team: "operations".into(),
            ..InboxQuery::default()
        };
        assert_eq!(q.team(Role::Finance).as_deref(), Some("finance"));
        assert_eq!(q.team(Role::Engineering).as_deref(), Some("operations"));
        assert_eq!(InboxQuery::default().team(Role::Admin), None);
        let f = InboxQuery::default().filter(Role::CustomerService);
        assert_eq!(f.state.as_deref(), Some("active"));
        assert_eq!(f.owner.as_deref(), Some("customer_service"));
    }

    #[test]
    fn what_a_person_types_stays_one_condition() {
        let q = InboxQuery {
            text: "x\" AND owner = \"finance".into(),
            ..InboxQuery::default()
        };
        let f = q.filter(Role::Operations);
        let back = crate::filter::parse(&f.to_string()).expect("its own text");
        assert_eq!(back.owner.as_deref(), Some("operations"));
        assert_eq!(back.text, f.text);
    }
}
