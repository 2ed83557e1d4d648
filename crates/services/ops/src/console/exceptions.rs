//! One exception: what is blocked and why, the money at stake, the stored message, the
//! order's journey, the actions its team may take and the audit of who did what.

use axum::extract::{Form, Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::Utc;
use ferry_proto::ops::v1 as pb;
use ferry_proto::ops::v1::exception_service_server::ExceptionService as _;
use ferry_proto::ops::v1::order_service_server::OrderService as _;
use maud::{Markup, html};
use serde::Deserialize;
use tonic::Status;

use super::layout::{self, Section};
use super::orders::steps;
use super::session::Session;
use super::{Console, Refused};
use crate::access::Action;

/// The most of a stored message the page shows (the CLI's `--json` has all of it).
const PAYLOAD_SHOWN: usize = 4096;

pub(crate) async fn page(
    State(console): State<Console>,
    session: Session,
    Path((tenant, id)): Path<(String, String)>,
) -> Result<Response, Refused> {
    let e = console
        .api
        .get_exception(Console::call(
            &session.who,
            pb::GetExceptionRequest {
                name: format!("tenants/{tenant}/exceptions/{id}"),
            },
        ))
        .await?
        .into_inner();
    let timeline = match e.order_number {
        Some(n) => console
            .api
            .get_order_timeline(Console::call(
                &session.who,
                pb::GetOrderTimelineRequest {
                    name: format!("tenants/{tenant}/orders/{n}"),
                },
            ))
            .await
            .ok()
            .map(tonic::Response::into_inner),
        None => None,
    };
    let title = layout::kind_title(&e.kind).to_owned();
    let may_act = session.who.may(Action::Act, &e.owner);
    let open = matches!(e.state.as_str(), "open" | "retrying");
    let here = format!("/exceptions/{tenant}/{id}");
    let body = html! {
        p.crumbs { a href="/" { "Inbox" } " › " (e.tenant) }
        h1 { (title) }
        dl.facts {
            dt { "What is blocked" } dd { (e.message) }
            @if !e.reason.is_empty() { dt { "Why" } dd { (e.reason) } }
            dt { "Money at stake" } dd.money { (or_dash(layout::money(e.amount_minor, &e.currency))) }
            dt { "Order" } dd { @if let Some(n) = e.order_number { a href=(format!("/orders/{tenant}/{n}")) { (n) } } @else { "–" } }
            dt { "Team" } dd { (layout::team(&e.owner)) }
            dt { "State" } dd { (e.state) @if !e.assignee.is_empty() { " · assigned to " (e.assignee) } @if !e.state_reason.is_empty() { " — " (e.state_reason) } }
            dt { "Due" } dd { (layout::time(e.sla_due.as_ref())) " (" (layout::sla(e.sla_due.as_ref(), e.overdue, Utc::now())) ")" }
            dt { "Seen" } dd { (e.seen_count) @if e.seen_count == 1 { " time" } @else { " times" } ", first " (layout::time(e.first_seen.as_ref())) ", last " (layout::time(e.last_seen.as_ref())) " by " (e.service) }
        }
        @if open {
            (actions(&session, &here, may_act, &e.owner))
        }
        h2 { "Who did what" }
        @if e.audit.is_empty() { p.empty { "Nobody has acted on it yet." } } @else {
            table { thead { tr { th scope="col" { "When" } th scope="col" { "Who" } th scope="col" { "Did" } th scope="col" { "Note" } } }
                tbody { @for a in &e.audit { tr { td { (layout::time(a.at.as_ref())) } td { (a.actor) } td { (a.action) } td { (a.note) } } } } }
        }
        @if let Some(t) = &timeline {
            h2 { "The order's journey" }
            (steps(&t.steps))
        }
        h2 { "The stored message" }
        (payload(&e.payload))
    };
    Ok(layout::page(&session, Section::Inbox, &title, body).into_response())
}

fn or_dash(s: String) -> String {
    if s.is_empty() { "–".into() } else { s }
}

fn actions(session: &Session, here: &str, may_act: bool, owner: &str) -> Markup {
    let form = |action: &str, fields: Markup, button: &str| {
        html! {
            form.action method="post" action=(format!("{here}/{action}")) {
                input type="hidden" name="csrf" value=(session.csrf);
                input type="hidden" name="request_id" value=(uuid::Uuid::new_v4());
                (fields)
                button type="submit" { (button) }
            }
        }
    };
    html! {
        section.actions aria-labelledby="actions-title" {
            h2 #actions-title { "Actions" }
            @if may_act {
                (form("retry", html! {}, "Retry"))
                (form("resolve", html! { label { "Note " input name="note"; } }, "Resolve"))
                (form("ignore", html! { label { "Reason " input name="reason" required; } }, "Ignore"))
                (form("assign", html! { label { "Assign to " input name="assignee" value=(session.who.name); } }, "Assign"))
            } @else {
                p.hint { "Only " (layout::team(owner)) ", engineering and admins act on this; you may comment." }
            }
            (form("comment", html! { label { "Comment " input name="text" required; } }, "Comment"))
        }
    }
}

/// The stored message: text where it is text, else the bytes in hex (it is a protobuf
/// message; `ferry exceptions show --json` gives all of it).
fn payload(bytes: &[u8]) -> Markup {
    if bytes.is_empty() {
        return html! { p.empty { "Nothing was stored: fix the cause and Ferry picks it up by itself." } };
    }
    let shown = &bytes[..bytes.len().min(PAYLOAD_SHOWN)];
    let text = match std::str::from_utf8(shown) {
        Ok(t) => t.to_owned(),
        Err(_) => shown
            .chunks(32)
            .map(hex::encode)
            .collect::<Vec<_>>()
            .join("\n"),
    };
    html! {
        p.hint { (bytes.len()) " bytes" @if bytes.len() > PAYLOAD_SHOWN { ", the first " (PAYLOAD_SHOWN) " shown" } }
        pre.payload { (text) }
    }
}

#[derive(Deserialize)]
pub(crate) struct ActForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    request_id: String,
    #[serde(default)]
    note: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    assignee: String,
    #[serde(default)]
    text: String,
}

pub(crate) async fn act(
    State(console): State<Console>,
    session: Session,
    Path((tenant, id, action)): Path<(String, String, String)>,
    Form(form): Form<ActForm>,
) -> Result<Response, Refused> {
    if let Some(refused) = session.refuse_forged(&form.csrf) {
        return Ok(refused);
    }
    let name = format!("tenants/{tenant}/exceptions/{id}");
    let (api, who) = (&console.api, &session.who);
    let request_id = form.request_id;
    let e = match action.as_str() {
        "resolve" => {
            api.resolve_exception(Console::call(
                who,
                pb::ResolveExceptionRequest {
                    name,
                    note: form.note,
                    request_id,
                },
            ))
            .await?
        }
        "ignore" => {
            api.ignore_exception(Console::call(
                who,
                pb::IgnoreExceptionRequest {
                    name,
                    reason: form.reason,
                    request_id,
                },
            ))
            .await?
        }
        "assign" => {
            api.assign_exception(Console::call(
                who,
                pb::AssignExceptionRequest {
                    name,
                    assignee: form.assignee,
                    request_id,
                },
            ))
            .await?
        }
        "retry" => {
            api.retry_exception(Console::call(
                who,
                pb::RetryExceptionRequest { name, request_id },
            ))
            .await?
        }
        "comment" => {
            api.comment_exception(Console::call(
                who,
                pb::CommentExceptionRequest {
                    name,
                    text: form.text,
                    request_id,
                },
            ))
            .await?
        }
        other => return Err(Status::not_found(format!("no action {other:?}")).into()),
    }
    .into_inner();
    // Work that left the inbox goes back to it; the rest stays on the exception.
    let to = match action.as_str() {
        "resolve" | "ignore" | "retry" => format!("/?notice={action}&tenant={}", e.tenant),
        _ => format!("/exceptions/{tenant}/{id}"),
    };
    Ok(Redirect::to(&to).into_response())
}
