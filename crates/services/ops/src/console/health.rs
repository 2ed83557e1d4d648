//! Sync health at a glance: orders per minute over the last hour, the backlog of every
//! flow (each durable consumer's unread and unacknowledged messages, from JetStream
//! itself), whether posting to the ERP is paused (the writer's breaker), what is left of
//! Centra's mutation quota, and the stock drift still open.

use std::collections::BTreeMap;

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use chrono::{DurationRound as _, Utc};
use ferry_runtime::nats::StreamKind;
use futures::StreamExt as _;
use maud::html;
use serde::Deserialize;
use tonic::Status;

use super::chart::{self, Series};
use super::layout::{self, Section};
use super::session::Session;
use super::{Console, Refused};
use crate::server::internal;

/// The minutes the orders chart covers.
const MINUTES: i32 = 60;

#[derive(Deserialize)]
pub(crate) struct HealthQuery {
    #[serde(default)]
    tenant: String,
}

/// One flow's backlog: a durable consumer of the tenant.
pub(crate) struct Backlog {
    pub consumer: String,
    pub stream: String,
    pub pending: u64,
    pub unacknowledged: u64,
}

impl Console {
    /// Every durable consumer reading `tenant`'s subjects, with what it has not read
    /// (pending) and not yet acknowledged.
    async fn backlog(&self, tenant: &str) -> Result<Vec<Backlog>, Refused> {
        let ours = format!("{}.{tenant}.", self.topology.prefix());
        let mut out = Vec::new();
        for kind in StreamKind::ALL {
            if kind == StreamKind::DeadLetters {
                continue;
            }
            let name = self.topology.stream_name(kind);
            let Ok(stream) = self.jetstream.get_stream(&name).await else {
                continue;
            };
            let mut consumers = stream.consumers();
            while let Some(info) = consumers.next().await {
                let info = info.map_err(|e| {
                    tracing::warn!(error = %e, stream = %name, "console: consumers not listed");
                    Refused(Status::unavailable(
                        "the message broker did not answer; try again",
                    ))
                })?;
                let filters = std::iter::once(&info.config.filter_subject)
                    .chain(info.config.filter_subjects.iter());
                if filters.into_iter().any(|f| f.starts_with(&ours)) {
                    out.push(Backlog {
                        consumer: info.name.clone(),
                        stream: name.clone(),
                        pending: info.num_pending,
                        unacknowledged: u64::try_from(info.num_ack_pending).unwrap_or(0),
                    });
                }
            }
        }
        out.sort_by(|a, b| a.consumer.cmp(&b.consumer));
        Ok(out)
    }
}

pub(crate) async fn page(
    State(console): State<Console>,
    session: Session,
    Query(q): Query<HealthQuery>,
) -> Result<Response, Refused> {
    let tenants = console.api.tenants_of(&session.who);
    let tenant = match q.tenant.trim() {
        "" => tenants.first().cloned().unwrap_or_default(),
        t => t.to_owned(),
    };
    if !session.who.can_see(&tenant) {
        return Err(Status::not_found(format!("no tenant {tenant}")).into());
    }
    let store = console.api.store();
    let minutes = store
        .orders_per_minute(&tenant, MINUTES)
        .await
        .map_err(internal)?;
    let backlog = console.backlog(&tenant).await?;
    let budget = match console.budgets.get(&tenant) {
        Some(b) => store
            .mutation_budget_left(&tenant, b)
            .await
            .map_err(internal)?,
        None => Vec::new(),
    };
    let (drifting, units_apart) = store.open_stock_drift(&tenant).await.map_err(internal)?;
    let paused_since = store
        .erp_breaker_open_since(&tenant)
        .await
        .map_err(internal)?;
    // Every minute of the hour, at zero where no order came.
    let now = Utc::now()
        .duration_trunc(chrono::Duration::minutes(1))
        .unwrap_or_else(|_| Utc::now());
    let by_minute: BTreeMap<_, _> = minutes.iter().map(|m| (m.minute, m)).collect();
    let hour: Vec<_> = (0..MINUTES)
        .rev()
        .map(|ago| now - chrono::Duration::minutes(i64::from(ago)))
        .collect();
    let point = |pick: fn(&ferry_store::health::MinuteRow) -> i64| -> Vec<(String, f64)> {
        hour.iter()
            .map(|t| {
                let v = by_minute.get(t).map_or(0, |m| pick(m));
                (t.format("%H:%M").to_string(), v as f64)
            })
            .collect()
    };
    let peak = minutes.iter().map(|m| m.received).max().unwrap_or(0);
    let last = minutes.last().map_or(0, |m| m.received);
    let total_pending: u64 = backlog.iter().map(|b| b.pending).sum();
    let body = html! {
        h1 { "Sync health · " (tenant) }
        form.filters method="get" action="/health" {
            label { "Brand " select name="tenant" { @for t in &tenants { option value=(t) selected[*t == tenant] { (t) } } } }
            button type="submit" { "Show" }
        }
        div data-refresh="10" {
            @if let Some(since) = paused_since {
                p.notice.error role="alert" {
                    "Posting to the ERP is paused since " (since.format("%Y-%m-%d %H:%M UTC"))
                    ": the ERP does not answer. Orders wait in their flow and go as soon as it answers again."
                }
            }
            dl.figures {
                div { dt { "ERP" } dd { @if paused_since.is_some() { "paused" } @else { "posting" } } }
                div { dt { "Orders in the last minute" } dd { (last) } }
                div { dt { "Waiting in every flow" } dd { (total_pending) } }
                div { dt { "SKUs with stock drift" } dd { (drifting) } }
                @for b in &budget {
                    div { dt { "Centra mutations left (" (b.bucket) ")" } dd { (b.left) " of " (b.capacity) } }
                }
            }
            h2 { "Orders per minute, last hour" }
            (chart::lines("Orders received and posted per minute over the last hour", &[
                Series { name: "received", class: "complete", points: point(|m| m.received) },
                Series { name: "posted (so far)", class: "accurate", points: point(|m| m.posted) },
            ], peak.max(1) as f64, ""))
            h2 { "Backlog per flow" }
            @if backlog.is_empty() { p.empty { "No flow runs for this brand yet." } } @else {
                (chart::bars("Messages waiting per flow", &backlog.iter().map(|b| (b.consumer.clone(), b.pending + b.unacknowledged, (b.pending + b.unacknowledged).to_string())).collect::<Vec<_>>()))
                table {
                    thead { tr { th scope="col" { "Flow (consumer)" } th scope="col" { "Stream" } th scope="col" { "Not read yet" } th scope="col" { "Being worked" } } }
                    tbody { @for b in &backlog { tr { td { (b.consumer) } td { (b.stream) } td { (b.pending) } td { (b.unacknowledged) } } } }
                }
            }
            h2 { "Stock" }
            p {
                @if drifting == 0 { "Centra's stock matches what Ferry expects for every SKU checked." }
                @else { (drifting) " SKUs differ from what Ferry expects, " (units_apart) " units apart in all — " a href="/reconciliation" { "see reconciliation" } "." }
            }
        }
    };
    Ok(layout::page(&session, Section::Health, "Sync health", body).into_response())
}
