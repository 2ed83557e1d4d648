//! Orders: one search box (order number, ERP document, tracking number or the customer's
//! e-mail), an order's journey from webhook to capture, and its replay shown side by side
//! before anyone applies it.

use axum::extract::{Form, Path, Query, State};
use axum::response::{IntoResponse, Response};
use ferry_proto::ops::v1 as pb;
use ferry_proto::ops::v1::order_service_server::OrderService as _;
use maud::{Markup, html};
use serde::Deserialize;

use super::inbox::exception_href;
use super::layout::{self, Section};
use super::session::Session;
use super::{Console, Refused};
use crate::access::Role;

#[derive(Deserialize)]
pub(crate) struct SearchQuery {
    #[serde(default)]
    q: String,
    #[serde(default)]
    tenant: String,
}

pub(crate) async fn search(
    State(console): State<Console>,
    session: Session,
    Query(s): Query<SearchQuery>,
) -> Result<Response, Refused> {
    let tenants = console.api.tenants_of(&session.who);
    let found = if s.q.trim().is_empty() {
        None
    } else {
        let parent = match s.tenant.trim() {
            "" => "tenants/-".to_owned(),
            t => format!("tenants/{t}"),
        };
        Some(
            console
                .api
                .search_orders(Console::call(
                    &session.who,
                    pb::SearchOrdersRequest {
                        parent,
                        query: s.q.trim().to_owned(),
                    },
                ))
                .await?
                .into_inner()
                .orders,
        )
    };
    let body = html! {
        h1 { "Find an order" }
        form.filters role="search" method="get" action="/orders" {
            label { "Order number, ERP document, tracking number or customer e-mail "
                input type="search" name="q" value=(s.q) autofocus required; }
            label { "Brand "
                select name="tenant" {
                    option value="" { "All" }
                    @for t in &tenants { option value=(t) selected[s.tenant == *t] { (t) } }
                }
            }
            button type="submit" { "Search" }
        }
        @if let Some(orders) = &found {
            @if orders.is_empty() {
                p.empty role="status" { "No order matches " strong { (s.q) } "." }
            } @else {
                table {
                    caption.sr { "Orders found" }
                    thead { tr { th scope="col" { "Order" } th scope="col" { "Brand" } th scope="col" { "State" } th scope="col" { "ERP document" } th scope="col" { "Total" } } }
                    tbody {
                        @for o in orders {
                            @let tenant = o.name.split('/').nth(1).unwrap_or_default();
                            tr {
                                td { a href=(format!("/orders/{tenant}/{}", o.number)) { (o.number) } }
                                td { (tenant) }
                                td { (o.state) }
                                td { (o.erp_reference) }
                                td.money { (layout::money(o.gross_minor, &o.currency)) }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(layout::page(&session, Section::Orders, "Find an order", body).into_response())
}

/// The steps of an order's journey, oldest first, with the trace each was taken in.
pub(crate) fn steps(steps: &[pb::TimelineStep]) -> Markup {
    html! {
        ol.timeline {
            @for s in steps {
                li.(s.step.replace('_', "-")) {
                    span.when { (layout::time(s.at.as_ref())) }
                    " "
                    strong.step { (step_words(&s.step)) }
                    " · " span.by { (s.by) }
                    @if s.step == "exception" { div.detail { (layout::kind_title(&s.detail)) } }
                    @else if !s.detail.is_empty() { div.detail { (s.detail) } }
                    @if !s.trace_id.is_empty() { div.trace { "trace " code { (s.trace_id) } } }
                }
            }
        }
    }
}

/// A step's name as people say it.
fn step_words(step: &str) -> &str {
    match step {
        "seen" => "Centra told Ferry",
        "snapshot_fetched" => "Order read from Centra",
        "transformed" => "Made into a sales order",
        "posting" => "Sending to the ERP",
        "posted" => "In the ERP",
        "stock_committed" => "Stock held back",
        "changed_in_erp" => "Change applied in the ERP",
        "change_refused" => "Change refused by the ERP",
        "change_superseded" => "Change overtaken by a newer one",
        "change_not_applied" => "Change not applied",
        "shipped_in_erp" => "Shipped by the warehouse",
        "shipment_in_centra" => "Shipment in Centra",
        "email_sent" => "Customer e-mailed",
        "captured" => "Payment captured",
        "reconciled" => "Reconciled",
        "exception" => "Exception raised",
        other => other,
    }
}

pub(crate) async fn timeline(
    State(console): State<Console>,
    session: Session,
    Path((tenant, number)): Path<(String, i64)>,
) -> Result<Response, Refused> {
    let t = console
        .api
        .get_order_timeline(Console::call(
            &session.who,
            pb::GetOrderTimelineRequest {
                name: format!("tenants/{tenant}/orders/{number}"),
            },
        ))
        .await?
        .into_inner();
    let order = t.order.unwrap_or_default();
    let title = format!("Order {number}");
    let body = html! {
        p.crumbs { a href="/orders" { "Orders" } " › " (tenant) }
        h1 { (title) }
        dl.facts {
            dt { "State" } dd { (order.state) }
            dt { "ERP document" } dd { @if order.erp_reference.is_empty() { "–" } @else { (order.erp_reference) } }
            dt { "Total" } dd.money { (layout::money(order.gross_minor, &order.currency)) }
            dt { "Reconciliation" } dd {
                @if t.verdict.is_empty() { "not checked yet" } @else { (t.verdict) }
                @if !t.causes.is_empty() { " — " (t.causes.join(", ")) }
            }
        }
        h2 { "Shipments" }
        @if t.shipments.is_empty() { p.empty { "Not shipped yet." } } @else {
            table {
                thead { tr { th scope="col" { "Shipped" } th scope="col" { "Carrier" } th scope="col" { "Tracking" } th scope="col" { "In Centra" } } }
                tbody { @for s in &t.shipments { tr {
                    td { (layout::time(s.shipped_at.as_ref())) }
                    td { (s.carrier) }
                    td {
                        @if s.tracking_number.is_empty() { "no tracking number yet" }
                        @else if s.tracking_url.is_empty() { (s.tracking_number) }
                        @else { a href=(s.tracking_url) rel="noreferrer" target="_blank" { (s.tracking_number) } }
                    }
                    td { (layout::time(s.in_centra_at.as_ref())) }
                } } }
            }
        }
        p { a.button href=(format!("/orders/{tenant}/{number}/replay")) { "Replay (shows the difference first)" } }
        h2 { "Journey" }
        (steps(&t.steps))
        h2 { "Exceptions" }
        @if t.exceptions.is_empty() { p.empty { "None." } } @else {
            ul { @for e in &t.exceptions {
                li { a href=(exception_href(e)) { (layout::kind_title(&e.kind)) } " — " (e.state) " · " (layout::team(&e.owner)) }
            } }
        }
    };
    Ok(layout::page(&session, Section::Orders, &title, body).into_response())
}

async fn replay(
    console: &Console,
    session: &Session,
    tenant: &str,
    number: i64,
    dry_run: bool,
    request_id: String,
) -> Result<pb::ReplayOrderResponse, Refused> {
    Ok(console
        .api
        .replay_order(Console::call(
            &session.who,
            pb::ReplayOrderRequest {
                name: format!("tenants/{tenant}/orders/{number}"),
                dry_run,
                request_id,
            },
        ))
        .await?
        .into_inner())
}

pub(crate) async fn replay_preview(
    State(console): State<Console>,
    session: Session,
    Path((tenant, number)): Path<(String, i64)>,
) -> Result<Response, Refused> {
    let r = replay(&console, &session, &tenant, number, true, String::new()).await?;
    let may_apply = session.who.role != Role::CustomerService;
    let body = html! {
        p.crumbs { a href=(format!("/orders/{tenant}/{number}")) { "Order " (number) } }
        h1 { "Replay order " (number) " — nothing sent yet" }
        (diff(&r))
        @if r.action == "none" || r.action == "hold" {
            p { "Nothing to apply." }
        } @else if may_apply {
            form method="post" action=(format!("/orders/{tenant}/{number}/replay")) {
                input type="hidden" name="csrf" value=(session.csrf);
                input type="hidden" name="request_id" value=(uuid::Uuid::new_v4());
                button type="submit" { "Apply: " (action_words(&r.action)) }
            }
        } @else {
            p.hint { "Finance, operations or engineering apply replays." }
        }
    };
    Ok(layout::page(&session, Section::Orders, "Replay", body).into_response())
}

#[derive(Deserialize)]
pub(crate) struct ApplyForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    request_id: String,
}

pub(crate) async fn replay_apply(
    State(console): State<Console>,
    session: Session,
    Path((tenant, number)): Path<(String, i64)>,
    Form(form): Form<ApplyForm>,
) -> Result<Response, Refused> {
    if let Some(refused) = session.refuse_forged(&form.csrf) {
        return Ok(refused);
    }
    let r = replay(&console, &session, &tenant, number, false, form.request_id).await?;
    let body = html! {
        h1 { "Replay order " (number) }
        p.notice role="status" {
            @if r.applied { "Done: " (action_words(&r.action)) "." } @else { "Nothing was sent: " (action_words(&r.action)) "." }
        }
        (diff(&r))
        p { a href=(format!("/orders/{tenant}/{number}")) { "Back to the order" } }
    };
    Ok(layout::page(&session, Section::Orders, "Replay", body).into_response())
}

fn action_words(action: &str) -> &str {
    match action {
        "post" => "post it to the ERP",
        "amend" => "send the change to finance as an amendment",
        "hold" => "it is still held",
        "none" => "nothing differs",
        other => other,
    }
}

/// The posted sales order beside what today's mapping and rules make of the order.
fn diff(r: &pb::ReplayOrderResponse) -> Markup {
    let m = |minor: i64| layout::money(Some(minor), &r.currency);
    html! {
        p { "Compared with: " strong { (r.compared_with) } " · what happens on apply: " strong { (action_words(&r.action)) } }
        @if !r.problems.is_empty() {
            ul.problems { @for p in &r.problems { li { (p) } } }
        }
        table.diff {
            caption { "Posted (left) and now (right)" }
            thead { tr {
                th scope="col" { "Change" } th scope="col" { "SKU" }
                th scope="col" { "ERP item" } th scope="col" { "Qty" } th scope="col" { "Gross" } th scope="col" { "Tax" }
                th scope="col" { "ERP item now" } th scope="col" { "Qty now" } th scope="col" { "Gross now" } th scope="col" { "Tax now" }
            } }
            tbody {
                @for l in &r.lines {
                    tr.(l.change.clone()) {
                        td { (l.change) } td { (l.sku) }
                        td { (l.previous_erp_item) } td { (l.previous_quantity) } td.money { (m(l.previous_gross_minor)) } td.money { (m(l.previous_tax_minor)) }
                        td { (l.erp_item) } td { (l.quantity) } td.money { (m(l.gross_minor)) } td.money { (m(l.tax_minor)) }
                    }
                }
                tr.total {
                    td colspan="4" { "Total" }
                    td.money { (m(r.previous_gross_minor)) } td.money { (m(r.previous_tax_minor)) }
                    td colspan="2" {}
                    td.money { (m(r.gross_minor)) } td.money { (m(r.tax_minor)) }
                }
            }
        }
    }
}
