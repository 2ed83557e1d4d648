//! The SKU mapping: the Centra SKUs without an ERP item, with the orders and money they
//! hold back, the orders waiting on them, and a CSV upload (operations) that releases
//! them — the page follows them as the transform releases them.

use axum::extract::{Multipart, Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use ferry_proto::ops::v1 as pb;
use ferry_proto::ops::v1::exception_service_server::ExceptionService as _;
use ferry_proto::ops::v1::mapping_service_server::MappingService as _;
use maud::html;
use serde::Deserialize;
use tonic::Status;

use super::inbox::exception_href;
use super::layout::{self, Section};
use super::session::Session;
use super::{Console, Refused};
use crate::access::Role;
use crate::filter::ExceptionFilter;

#[derive(Deserialize)]
pub(crate) struct MappingsQuery {
    #[serde(default)]
    tenant: String,
    /// How many rows the last upload wrote (the page then follows the release).
    imported: Option<i64>,
}

pub(crate) async fn page(
    State(console): State<Console>,
    session: Session,
    Query(q): Query<MappingsQuery>,
) -> Result<Response, Refused> {
    let tenants = console.api.tenants_of(&session.who);
    let tenant = match q.tenant.trim() {
        "" => tenants.first().cloned().unwrap_or_default(),
        t => t.to_owned(),
    };
    let who = &session.who;
    let skus = console
        .api
        .list_unmapped_skus(Console::call(
            who,
            pb::ListUnmappedSkusRequest {
                parent: format!("tenants/{tenant}"),
            },
        ))
        .await?
        .into_inner()
        .skus;
    let waiting = |state: &str| ExceptionFilter {
        kind: Some("unmapped_sku".into()),
        state: Some(state.into()),
        ..ExceptionFilter::default()
    };
    let mut held = Vec::new();
    let mut released = Vec::new();
    for (state, into) in [("active", &mut held), ("resolved", &mut released)] {
        *into = console
            .api
            .list_exceptions(Console::call(
                who,
                pb::ListExceptionsRequest {
                    parent: format!("tenants/{tenant}"),
                    page_size: 20,
                    page_token: String::new(),
                    filter: waiting(state).to_string(),
                },
            ))
            .await?
            .into_inner()
            .exceptions;
    }
    let may_import = matches!(who.role, Role::Operations | Role::Engineering | Role::Admin);
    let following = q.imported.is_some() && !held.is_empty();
    let body = html! {
        h1 { "SKU mapping · " (tenant) }
        form.filters method="get" action="/mappings" {
            label { "Brand " select name="tenant" { @for t in &tenants { option value=(t) selected[*t == tenant] { (t) } } } }
            button type="submit" { "Show" }
        }
        div data-refresh=[following.then_some("3")] {
            @if let Some(n) = q.imported {
                p.notice role="status" {
                    "Imported " (n) " mapping" @if n != 1 { "s" } ". "
                    @if held.is_empty() { "No order is waiting for a mapping any more." }
                    @else { "Orders they held are released within seconds; this page follows them." }
                }
            }
            h2 { "SKUs without an ERP item" }
            @if skus.is_empty() { p.empty { "Every SKU Centra sold has an ERP item." } } @else {
                table {
                    thead { tr { th scope="col" { "Centra SKU" } th scope="col" { "Orders held" } th scope="col" { "Money held" } } }
                    tbody { @for s in &skus { tr {
                        td { code { (s.sku) } } td { (s.orders) }
                        td.money { (s.blocked.iter().map(|m| layout::money(Some(m.amount_minor), &m.currency)).collect::<Vec<_>>().join(" · ")) }
                    } } }
                }
            }
            h2 { "Orders waiting for a mapping" }
            (orders(&held, "None."))
            h2 { "Released" }
            (orders(&released, "None yet."))
        }
        @if may_import {
            section.upload aria-labelledby="upload-title" {
                h2 #upload-title { "Add mappings" }
                p.hint { "A CSV file with the header " code { "centra_sku,erp_item" } ", one mapping per line (at most 10,000)." }
                form method="post" action=(format!("/mappings/{tenant}")) enctype="multipart/form-data" {
                    input type="hidden" name="csrf" value=(session.csrf);
                    label { "CSV file " input type="file" name="file" accept=".csv,text/csv" required; }
                    button type="submit" { "Upload" }
                }
            }
        } @else {
            p.hint { "Operations, engineering and admins add mappings." }
        }
    };
    Ok(layout::page(&session, Section::Mappings, "SKU mapping", body).into_response())
}

fn orders(rows: &[pb::Exception], none: &str) -> maud::Markup {
    html! {
        @if rows.is_empty() { p.empty { (none) } } @else {
            ul.orders { @for e in rows { li {
                @if let Some(n) = e.order_number { a href=(format!("/orders/{}/{n}", e.tenant)) { "Order " (n) } " — " }
                a href=(exception_href(e)) { (e.message) }
            } } }
        }
    }
}

pub(crate) async fn upload(
    State(console): State<Console>,
    session: Session,
    Path(tenant): Path<String>,
    mut form: Multipart,
) -> Result<Response, Refused> {
    let bad = |why: String| Refused(Status::invalid_argument(why));
    let (mut csrf, mut csv) = (String::new(), None);
    while let Some(field) = form
        .next_field()
        .await
        .map_err(|e| bad(format!("the upload could not be read: {e}")))?
    {
        match field.name() {
            Some("csrf") => csrf = field.text().await.unwrap_or_default(),
            Some("file") => {
                csv = Some(
                    field
                        .text()
                        .await
                        .map_err(|e| bad(format!("the file is not text: {e}")))?,
                );
            }
            _ => {}
        }
    }
    if let Some(refused) = session.refuse_forged(&csrf) {
        return Ok(refused);
    }
    let text = csv.ok_or_else(|| bad("choose a CSV file to upload".into()))?;
    let rows = ferry_domain::rules::parse_mapping_csv(&text).map_err(|e| bad(e.to_string()))?;
    let written = console
        .api
        .import_mappings(Console::call(
            &session.who,
            pb::ImportMappingsRequest {
                parent: format!("tenants/{tenant}"),
                mappings: rows
                    .into_iter()
                    .map(|(centra_sku, erp_item)| pb::Mapping {
                        centra_sku,
                        erp_item,
                    })
                    .collect(),
            },
        ))
        .await?
        .into_inner()
        .written;
    let query = serde_urlencoded::to_string([("tenant", tenant.as_str())]).unwrap_or_default();
    Ok(Redirect::to(&format!("/mappings?{query}&imported={written}")).into_response())
}
